// read_bench_report.h: read_bench's figures (used only by read_bench.cc): what one run measured, the per-configuration summary
// (min/median/max over rounds), the table with the ratios and the issue's
// targets, and one JSON line per run.
#pragma once

#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <string>
#include <vector>

#include "read_bench_options.h"

namespace readbench {



struct Latency {
  std::size_t n = 0;
  double p50 = NAN, p99 = NAN, max = NAN;
};

// Nearest-rank percentiles (with ~100 samples a run, p99 is the second
// largest: read it as "the worst but one").
inline Latency summarize_latency(std::vector<double> v) {
  Latency l;
  l.n = v.size();
  if (v.empty()) return l;
  std::sort(v.begin(), v.end());
  auto rank = [&](double p) { return v[static_cast<std::size_t>(std::max(1.0, std::ceil(p * static_cast<double>(v.size())))) - 1]; };
  l.p50 = rank(0.50);
  l.p99 = rank(0.99);
  l.max = v.back();
  return l;
}

struct RunResult {
  ServerConfig config;
  unsigned round = 0;
  std::string when, aead;
  double load1 = 0;
  std::uint64_t bytes = 0;
  double seconds = 0;
  double cpu_clients = 0, cpu_sfsd = -1, cpu_ganesha = -1;  // -1: not known
  double client_mb_per_s_min = 0, client_mb_per_s_max = 0;
  std::vector<double> sfsd_thread_util;  // CPU / wall time of each sfsd thread, busiest first
  double others_cpu_s = -1;              // the rest of the machine (other sessions), -1 unknown
  double steal_s = 0;                    // the hypervisor's
  double runq_wait_s = 0;                // our processes' threads runnable, waiting for a CPU
  double sfsd_runq_wait_s = 0;
  unsigned long long sfsd_sleeps = 0, sfsd_preempted = 0;  // voluntary / involuntary switches
  // sfsd's CPU by color over the run (its cpu_report; -1: not read), summed
  // over copies: color 0, the connections' colors, the backend's colors,
  // and the workers outside callbacks.
  double color0_s = -1, connections_s = -1, backend_s = -1, overhead_s = -1;
  Latency probe, probe_idle;  // while the readers stream; before they start
  unsigned probe_failures = 0;

  double mb_per_s() const { return static_cast<double>(bytes) / 1e6 / seconds; }
  double others_cores() const { return others_cpu_s < 0 ? -1 : others_cpu_s / seconds; }
  double gib() const { return static_cast<double>(bytes) / double(1ull << 30); }
  double cpu_total() const { return cpu_clients + std::max(cpu_sfsd, 0.0) + std::max(cpu_ganesha, 0.0); }
  bool cpu_complete() const { return cpu_sfsd >= 0 && cpu_ganesha >= 0; }
  // All processes' CPU per GiB; -1 unless every process was counted (a
  // partial sum would look like a figure).
  double cpu_per_gib() const { return cpu_complete() ? cpu_total() / gib() : -1; }
  // "color 0 3%, connections 71%, backend 20%, outside callbacks 6%"
  std::string color_shares() const {
    const double all = color0_s + connections_s + backend_s + overhead_s;
    if (color0_s < 0 || all <= 0) return "n/a";
    char b[160];
    std::snprintf(b, sizeof b, "color 0 %.0f%%, connections %.0f%%, backend %.0f%%, outside callbacks %.0f%%",
                  100 * color0_s / all, 100 * connections_s / all, 100 * backend_s / all, 100 * overhead_s / all);
    return b;
  }
};

inline double load_average() {
  double l[1] = {0};
  return getloadavg(l, 1) == 1 ? l[0] : -1;
}

inline std::string utc_now() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char b[32];
  std::strftime(b, sizeof b, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return b;
}

// A free TCP port on 127.0.0.1 (bound and released; sfsd binds it right
// after).
inline std::uint16_t free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

inline std::string num_or_null(double v, const char* fmt = "%.3f") {
  if (v < 0 || std::isnan(v)) return "null";
  char b[48];
  std::snprintf(b, sizeof b, fmt, v);
  return b;
}

// "93% 41%": the two busiest sfsd threads' CPU share of the run.
inline std::string utils(const RunResult& r) {
  std::string s;
  for (std::size_t i = 0; i < r.sfsd_thread_util.size() && i < 2; ++i)
    s += (i ? " " : "") + std::to_string(static_cast<int>(std::lround(100 * r.sfsd_thread_util[i]))) + "%";
  return s.empty() ? "n/a" : s;
}

inline void print_run(std::FILE* f, const RunResult& r) {
  std::fprintf(f,
               "  %-10s round %u: %7.0f MB/s, %s CPU-s/GiB (clients %.2f s, sfsd %s s, ganesha %s s), "
               "probe p50 %.2f p99 %.2f max %.2f ms (n=%zu; idle p50 %.2f), clients %.0f..%.0f MB/s, load %.2f, "
               "others %s cores, busiest sfsd threads %s, waiting for a CPU %.2f s (sfsd %.2f s), "
               "sfsd sleeps %llu preempted %llu, sfsd CPU by color: %s\n",
               r.config.label.c_str(), r.round, r.mb_per_s(), num_or_null(r.cpu_per_gib(), "%.2f").c_str(), r.cpu_clients,
               num_or_null(r.cpu_sfsd, "%.2f").c_str(), num_or_null(r.cpu_ganesha, "%.2f").c_str(), r.probe.p50,
               r.probe.p99, r.probe.max, r.probe.n, r.probe_idle.p50, r.client_mb_per_s_min, r.client_mb_per_s_max,
               r.load1, num_or_null(r.others_cores(), "%.2f").c_str(), utils(r).c_str(), r.runq_wait_s,
               r.sfsd_runq_wait_s, r.sfsd_sleeps, r.sfsd_preempted, r.color_shares().c_str());
}

inline std::string join(const std::vector<double>& v) {
  std::string s;
  for (double x : v) s += (s.empty() ? "" : ",") + num_or_null(x);
  return s;
}

inline void write_json(std::FILE* f, const Options& o, const RunResult& r, const char* build) {
  std::fprintf(
      f,
      "{\"bench\":\"read_bench\",\"impl\":\"%s\",\"config\":\"%s\",\"round\":%u,\"time\":\"%s\",\"load1\":%.2f,"
      "\"clients\":%u,\"server_threads\":%u,\"copies\":%u,\"depth\":%u,\"chunk\":%u,\"file_bytes\":%llu,"
      "\"aead\":\"%s\",\"bytes\":%llu,\"seconds\":%.6f,\"mb_per_s\":%.1f,\"cpu_s_per_gib\":%s,"
      "\"cpu_complete\":%s,\"cpu_s\":{\"sfsd\":%s,\"ganesha\":%s,\"clients\":%.3f},"
      "\"probe_p50_ms\":%s,\"probe_p99_ms\":%s,\"probe_max_ms\":%s,\"probe_samples\":%zu,\"probe_failures\":%u,"
      "\"probe_idle_p50_ms\":%s,\"probe_idle_p99_ms\":%s,\"probe_shared_runtime\":%s,\"probe_alone\":%s,"
      "\"client_mb_per_s_min\":%.1f,\"client_mb_per_s_max\":%.1f,\"others_cpu_s\":%s,\"steal_s\":%.3f,"
      "\"sfsd_thread_util\":[%s],\"runq_wait_s\":%.3f,\"sfsd_runq_wait_s\":%.3f,\"sfsd_sleeps\":%llu,"
      "\"sfsd_preempted\":%llu,\"sfsd_color_cpu_s\":{\"color0\":%s,\"connections\":%s,\"backend\":%s,"
      "\"outside_callbacks\":%s},\"build_type\":\"%s\"}\n",
      r.config.impl.c_str(), r.config.label.c_str(), r.round, r.when.c_str(), r.load1, o.clients,
      r.config.threads, r.config.copies, o.depth, o.chunk, static_cast<unsigned long long>(o.size), r.aead.c_str(),
      static_cast<unsigned long long>(r.bytes), r.seconds, r.mb_per_s(), num_or_null(r.cpu_per_gib()).c_str(),
      r.cpu_complete() ? "true" : "false", num_or_null(r.cpu_sfsd).c_str(), num_or_null(r.cpu_ganesha).c_str(),
      r.cpu_clients, num_or_null(r.probe.p50).c_str(), num_or_null(r.probe.p99).c_str(),
      num_or_null(r.probe.max).c_str(), r.probe.n, r.probe_failures, num_or_null(r.probe_idle.p50).c_str(),
      num_or_null(r.probe_idle.p99).c_str(), o.probe_shared ? "true" : "false", r.config.probe_alone ? "true" : "false", r.client_mb_per_s_min,
      r.client_mb_per_s_max, num_or_null(r.others_cpu_s).c_str(), r.steal_s, join(r.sfsd_thread_util).c_str(),
      r.runq_wait_s, r.sfsd_runq_wait_s, r.sfsd_sleeps, r.sfsd_preempted, num_or_null(r.color0_s).c_str(),
      num_or_null(r.connections_s).c_str(), num_or_null(r.backend_s).c_str(), num_or_null(r.overhead_s).c_str(),
      build);
  std::fflush(f);
}

inline double median(std::vector<double> v) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

struct Summary {
  ServerConfig config;
  std::vector<const RunResult*> runs;
  double min = NAN, med = NAN, max = NAN;               // MB/s
  double cpu = NAN, sfsd = NAN, ganesha = NAN, clients = NAN;  // CPU-s/GiB, medians
  double p50 = NAN, p99 = NAN, p99_worst = NAN;         // ms
  double others = NAN, top_thread = NAN;                // cores; busiest sfsd thread's share
};

inline Summary summarize(const ServerConfig& c, const std::vector<RunResult>& all) {
  Summary s;
  s.config = c;
  std::vector<double> mb, cpu, sf, ga, cl, p50, p99, oth, top;
  for (auto& r : all) {
    if (r.config.label != c.label) continue;
    s.runs.push_back(&r);
    mb.push_back(r.mb_per_s());
    if (r.cpu_complete()) cpu.push_back(r.cpu_per_gib());
    if (r.cpu_sfsd >= 0) sf.push_back(r.cpu_sfsd / r.gib());
    if (r.cpu_ganesha >= 0) ga.push_back(r.cpu_ganesha / r.gib());
    cl.push_back(r.cpu_clients / r.gib());
    if (r.others_cpu_s >= 0) oth.push_back(r.others_cores());
    if (!r.sfsd_thread_util.empty()) top.push_back(r.sfsd_thread_util.front());
    if (r.probe.n) {
      p50.push_back(r.probe.p50);
      p99.push_back(r.probe.p99);
    }
  }
  if (mb.empty()) return s;
  s.min = *std::min_element(mb.begin(), mb.end());
  s.max = *std::max_element(mb.begin(), mb.end());
  s.med = median(mb);
  s.cpu = median(cpu);
  s.sfsd = median(sf);
  s.ganesha = median(ga);
  s.clients = median(cl);
  s.p50 = median(p50);
  s.p99 = median(p99);
  s.others = median(oth);
  s.top_thread = median(top);
  if (!p99.empty()) s.p99_worst = *std::max_element(p99.begin(), p99.end());
  return s;
}

inline const char* verdict(bool met) { return met ? "met" : "MISSED"; }

inline void print_table(std::FILE* f, const Options& o, const std::vector<ServerConfig>& cfgs,
                        const std::vector<RunResult>& results) {
  std::string aead = results.empty() ? "?" : results.front().aead;
  std::fprintf(f,
               "read_bench: %u clients x %llu MiB, %u x %u KiB outstanding each, %s, %u round(s), "
               "%s\n",
               o.clients, static_cast<unsigned long long>(o.size >> 20), o.depth, o.chunk >> 10, aead.c_str(),
               o.rounds, results.empty() ? "" : ("first run " + results.front().when).c_str());
  std::fprintf(f, "%-11s %4s %8s %6s %6s | %9s %5s %7s %7s | %9s %9s %9s | %6s %7s\n", "config", "runs",
               "min MB/s", "median", "max", "CPU-s/GiB", "sfsd", "ganesha", "clients", "probe p50", "p99 (med)",
               "p99 worst", "others", "top thr");
  std::vector<Summary> sums;
  for (auto& c : cfgs) {
    Summary s = summarize(c, results);
    sums.push_back(s);
    auto na = [](double v) { return std::isnan(v) ? std::string("n/a") : num_or_null(v, "%.2f"); };
    std::fprintf(f, "%-11s %4zu %8.0f %6.0f %6.0f | %9s %5s %7s %7s | %9s %9s %9s | %6s %6.0f%%\n", c.label.c_str(),
                 s.runs.size(), s.min, s.med, s.max, na(s.cpu).c_str(), na(s.sfsd).c_str(), na(s.ganesha).c_str(),
                 na(s.clients).c_str(), na(s.p50).c_str(), na(s.p99).c_str(), na(s.p99_worst).c_str(),
                 na(s.others).c_str(), 100 * s.top_thread);
  }
  std::fprintf(f, "(MB/s = 10^6 B/s over all clients; CPU-s/GiB = utime+stime of every process per GiB read, "
                  "medians; probe = GETATTR round trip in ms while the readers stream; others = cores used by "
                  "everything else on the machine; top thr = the busiest sfsd thread's CPU share)\n");
  auto find = [&](const char* label) -> const Summary* {
    for (auto& s : sums)
      if (s.config.label == label && !s.runs.empty()) return &s;
    return nullptr;
  };
  const Summary* t1 = find("1 thread");
  const Summary* t2 = find("2 threads");
  const Summary* c2 = find("2 copies");
  std::string ratios;
  char b[96];
  if (t1 && t2) {
    std::snprintf(b, sizeof b, "2 threads / 1 thread = %.2f    ", t2->med / t1->med);
    ratios += b;
  }
  if (t1 && c2) {
    std::snprintf(b, sizeof b, "2 copies / 1 copy (= 1 thread) = %.2f    ", c2->med / t1->med);
    ratios += b;
  }
  if (t2 && c2) {
    std::snprintf(b, sizeof b, "2 threads / 2 copies = %.2f", t2->med / c2->med);
    ratios += b;
  }
  if (!ratios.empty()) std::fprintf(f, "ratios of medians: %s\n", ratios.c_str());
  if (t2 && c2) {
    std::fprintf(f, "2 threads / 2 copies per round:");
    for (unsigned r = 1; r <= o.rounds; ++r) {
      const RunResult *a = nullptr, *c = nullptr;
      for (auto* x : t2->runs)
        if (x->round == r) a = x;
      for (auto* x : c2->runs)
        if (x->round == r) c = x;
      if (a && c) std::fprintf(f, " %.2f", a->mb_per_s() / c->mb_per_s());
    }
    std::fprintf(f, "\n");
    std::fprintf(f, "target: 2 threads >= 0.9x the 2-copy bound: %.2f, %s\n", t2->med / c2->med,
                 verdict(t2->med >= 0.9 * c2->med));
  }
  // The aggregate target is for the configuration sfsd runs with by default
  // (one worker per CPU): "2 threads" under --all, else what was run.
  const Summary* main = t2;
  for (auto& s : sums)
    if (!main && !s.runs.empty() && !s.config.probe_alone) main = &s;
  if (main)
    std::fprintf(f, "target: aggregate >= 1 GB/s (%s, %s): median %.0f MB/s, %s\n", main->config.label.c_str(),
                 aead.c_str(), main->med, verdict(main->med >= 1000));
  for (auto& s : sums) {
    if (s.runs.empty()) continue;
    if (s.config.probe_alone)
      std::fprintf(f, "probe alone (its sfsd serves nothing else; a floor, not a target): p99 worst round %.2f ms\n",
                   s.p99_worst);
    else
      std::fprintf(f, "target: probe p99 <= 5 ms (%s): worst round %.2f ms, %s\n", s.config.label.c_str(),
                   s.p99_worst, verdict(s.p99_worst <= 5.0));
  }
}

}  // namespace readbench
