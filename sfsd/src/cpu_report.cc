// cpu_report.cc: see cpu_report.h.
#include "cpu_report.h"

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "daemon.h"

namespace sfsd {

std::string cpu_report_json(const asmp::Runtime& rt, const std::string& extra) {
  std::uint64_t color0 = 0, connections = 0, backend = 0, threads = 0, overhead = 0;
  std::uint64_t connection_slots = 0;
  const unsigned backend_slot = kBackendColor & (rt.color_slots() - 1);
  for (const asmp::SlotCpu& s : rt.color_cpu()) {
    if (s.slot == 0) {
      color0 += s.cpu_ns;
    } else if (s.slot >= backend_slot) {
      // Connection colors count up from 1 and reach these slots only after
      // ~16,000 connections; a report that old mixes the two a little.
      backend += s.cpu_ns;
    } else {
      connections += s.cpu_ns;
      ++connection_slots;
    }
  }
  for (const asmp::WorkerStats& w : rt.worker_stats()) {
    threads += w.cpu_ns;
    overhead += w.overhead_cpu_ns;
  }
  char line[1024];
  std::snprintf(line, sizeof line,
                "{\"color0_s\":%.6f,\"connections_s\":%.6f,\"backend_s\":%.6f,\"overhead_s\":%.6f,"
                "\"threads_s\":%.6f,\"connection_colors\":%llu,\"workers\":%u%s%s}",
                static_cast<double>(color0) / 1e9, static_cast<double>(connections) / 1e9,
                static_cast<double>(backend) / 1e9, static_cast<double>(overhead) / 1e9,
                static_cast<double>(threads) / 1e9, static_cast<unsigned long long>(connection_slots),
                rt.threads(), extra.empty() ? "" : ",", extra.c_str());
  return line;
}

std::string write_cpu_report(const asmp::Runtime& rt, const std::string& path, const std::string& extra) {
  const std::string tmp = path + ".tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "w");
  if (!f) return "cannot write " + tmp + ": " + std::strerror(errno);
  const std::string line = cpu_report_json(rt, extra) + "\n";
  const bool ok = std::fwrite(line.data(), 1, line.size(), f) == line.size();
  if (std::fclose(f) != 0 || !ok) return "cannot write " + tmp + ": " + std::strerror(errno);
  if (std::rename(tmp.c_str(), path.c_str()) != 0)
    return "cannot rename " + tmp + " to " + path + ": " + std::strerror(errno);
  return "";
}

}  // namespace sfsd
