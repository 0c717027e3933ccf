// cpu_report.h: where sfsd's CPU time goes, by color (the `cpu_report`
// setting). With it, the runtime accounts each color slot's CPU time
// (RuntimeOptions::color_cpu) and sfsd writes one JSON line on SIGUSR1 and
// at exit, grouped as docs/architecture.md draws the colors:
//   color0_s       color 0: accepting, leases, uid map, auth table
//   connections_s  the connections' colors: records, AEAD, sealing, replies
//   backend_s      the libnfs contexts' colors (kBackendColor and up)
//   overhead_s     worker threads outside callbacks: polling, waking, stealing
//   threads_s      the workers' whole CPU time (the sum of the above)
// and, from sfsd, data_cache_hits / _misses / _fills / _refused (data_cache.h).
// read_bench reads it before and after its measured window.
#pragma once

#include <string>

#include "asmp/runtime.h"

namespace sfsd {

// `extra`: more fields for the same object (e.g. "\"data_cache_hits\":3"), or "".
std::string cpu_report_json(const asmp::Runtime& rt, const std::string& extra = "");

// Replaces `path` with the report (a temporary file renamed over it, so a
// reader never sees half a line). Returns an error message, or "".
std::string write_cpu_report(const asmp::Runtime& rt, const std::string& path, const std::string& extra = "");

}  // namespace sfsd
