// read_bench_options.h: read_bench's command line (used only by
// read_bench.cc; the options themselves are described at the top of it)
// and the server configurations it runs.
#pragma once

#include <sys/types.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "sfs/aead.h"

#ifndef SFSD_BINARY
#define SFSD_BINARY "sfsd"
#endif

namespace readbench {

struct Options {
  unsigned clients = 4, depth = 4, rounds = 3, server_threads = 2, copies = 0, client_threads = 0;
  std::uint64_t size = 256ull << 20, warmup = 32ull << 20;
  std::uint32_t chunk = 1u << 20;
  bool all = false, quick = false, perf_dwarf = false, probe_shared = false;
  std::string json, aead, perf, sfsd, export_dir, configs;
  std::vector<std::string> names, sfsd_env, sfsd_args;
  std::vector<pid_t> sfsd_pids, ganesha_pids;
  unsigned probe_ms = 10;
  unsigned timeout_s = 1800;
};

struct ServerConfig {
  std::string label;  // "1 thread", "2 threads", "2 copies", "probe alone"
  std::string impl;   // "sfsd" (one process) or "sfsd-ncopy" (single-thread copies)
  unsigned threads = 1, copies = 1;
  // Every reader on the first copy, the probe alone on the last: the probe's
  // round trip when its server does nothing else (a floor for the probe).
  bool probe_alone = false;
  std::string key() const {  // label for file names
    std::string k = label;
    std::replace(k.begin(), k.end(), ' ', '-');
    return k;
  }
};

namespace {

[[noreturn]] void usage(const std::string& msg) {
  std::fprintf(stderr,
               "read_bench: %s\n"
               "usage: read_bench [--clients M] [--depth K] [--chunk S] [--size BYTES]\n"
               "                  [--server-threads k | --copies k | --all | --configs t1,t2,c2,p] [--rounds R] [--quick]\n"
               "                  [--json FILE] [--aead NAME] [--client-threads N] [--warmup BYTES]\n"
               "                  [--probe-interval-ms MS] [--timeout S] [--perf PREFIX] [--sfsd PATH]\n"
               "                  [--name @HOST%%PORT,HOSTID ... --export-dir DIR [--sfsd-pid P ...] "
               "[--ganesha-pid P]]\n"
               "(see the comment at the top of bench/read_bench.cc)\n",
               msg.c_str());
  std::exit(2);
}

std::uint64_t parse_size(const std::string& s) {
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  double mult = 1;
  if (end && *end) {
    switch (*end) {
      case 'k': case 'K': mult = 1 << 10; break;
      case 'm': case 'M': mult = 1 << 20; break;
      case 'g': case 'G': mult = 1 << 30; break;
      default: usage("bad size '" + s + "' (e.g. 256M, 1G)");
    }
  }
  if (!(v > 0)) usage("bad size '" + s + "'");
  return static_cast<std::uint64_t>(v * mult);
}

Options parse(int argc, char** argv) {
  Options o;
  o.sfsd = SFSD_BINARY;
  std::map<std::string, bool> given;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    auto val = [&]() -> std::string {
      if (i + 1 >= argc) usage("missing value for " + k);
      return argv[++i];
    };
    auto num = [&]() -> unsigned {
      std::string v = val();
      char* e = nullptr;
      unsigned long n = std::strtoul(v.c_str(), &e, 10);
      if (!e || *e || v.empty()) usage("bad number '" + v + "' for " + k);
      return static_cast<unsigned>(n);
    };
    given[k] = true;
    if (k == "--clients") o.clients = num();
    else if (k == "--depth") o.depth = num();
    else if (k == "--chunk") o.chunk = static_cast<std::uint32_t>(parse_size(val()));
    else if (k == "--size") o.size = parse_size(val());
    else if (k == "--server-threads") o.server_threads = num();
    else if (k == "--copies") o.copies = num();
    else if (k == "--all") o.all = true;
    else if (k == "--configs") o.configs = val();
    else if (k == "--rounds") o.rounds = num();
    else if (k == "--quick") o.quick = true;
    else if (k == "--json") o.json = val();
    else if (k == "--aead") o.aead = val();
    else if (k == "--client-threads") o.client_threads = num();
    else if (k == "--warmup") o.warmup = parse_size(val());
    else if (k == "--probe-interval-ms") o.probe_ms = num();
    else if (k == "--probe-shared") o.probe_shared = true;
    else if (k == "--timeout") o.timeout_s = num();
    else if (k == "--perf") o.perf = val();
    else if (k == "--perf-dwarf") o.perf_dwarf = true;
    else if (k == "--sfsd") o.sfsd = val();
    else if (k == "--sfsd-env") o.sfsd_env.push_back(val());
    else if (k == "--sfsd-arg") o.sfsd_args.push_back(val());
    else if (k == "--name") o.names.push_back(val());
    else if (k == "--export-dir") o.export_dir = val();
    else if (k == "--sfsd-pid") o.sfsd_pids.push_back(static_cast<pid_t>(num()));
    else if (k == "--ganesha-pid") o.ganesha_pids.push_back(static_cast<pid_t>(num()));
    else if (k == "-h" || k == "--help") usage("help");
    else usage("unknown argument " + k);
  }
  if (o.quick) {
    if (!given["--clients"]) o.clients = 2;
    if (!given["--size"]) o.size = 32ull << 20;
    if (!given["--rounds"]) o.rounds = 1;
    if (!given["--warmup"]) o.warmup = 4ull << 20;
    if (!given["--timeout"]) o.timeout_s = 180;
  }
  if (!o.clients || !o.depth || !o.chunk || !o.rounds || !o.server_threads || !o.probe_ms || !o.timeout_s)
    usage("values must be > 0");
  if (o.clients >= 1000) usage("--clients must be below 1000");
  if (o.chunk > (1u << 20)) usage("--chunk is at most 1M (SFS_NFS3_MAXDATA)");
  if (given["--copies"] && given["--server-threads"]) usage("--copies and --server-threads exclude each other");
  if ((o.all || given["--configs"]) && (given["--copies"] || given["--server-threads"]))
    usage("--all and --configs choose the configurations themselves");
  if (o.all && given["--configs"]) usage("--all is --configs t1,t2,c2");
  if (!o.names.empty() && o.export_dir.empty()) usage("--name needs --export-dir");
  if (!o.names.empty() && (o.all || o.copies || given["--configs"]))
    usage("--all, --configs and --copies start their own servers; not with --name");
  if (!o.aead.empty() && !sfs::aead_from_name(o.aead)) usage("unknown --aead " + o.aead);
  return o;
}

ServerConfig threads_config(unsigned k) {
  return {std::to_string(k) + (k == 1 ? " thread" : " threads"), "sfsd", k, 1};
}
ServerConfig copies_config(unsigned k) {
  return {std::to_string(k) + (k == 1 ? " copy" : " copies"), "sfsd-ncopy", 1, k};
}
ServerConfig probe_alone_config() { return {"probe alone", "sfsd-ncopy", 1, 2, true}; }

std::vector<ServerConfig> configurations(const Options& o) {
  if (!o.names.empty()) return {ServerConfig{"running", "sfsd", 0, static_cast<unsigned>(o.names.size())}};
  if (o.all) return {threads_config(1), threads_config(2), copies_config(2)};
  if (!o.configs.empty()) {
    // "t1,t2,c2": k threads / k copies, interleaved as --all does; "p":
    // probe alone.
    std::vector<ServerConfig> out;
    std::size_t at = 0;
    while (at <= o.configs.size()) {
      std::size_t end = o.configs.find(',', at);
      if (end == std::string::npos) end = o.configs.size();
      const std::string tok = o.configs.substr(at, end - at);
      if (tok == "p") {
        out.push_back(probe_alone_config());
        at = end + 1;
        continue;
      }
      char* e = nullptr;
      const unsigned long k = tok.size() > 1 ? std::strtoul(tok.c_str() + 1, &e, 10) : 0;
      if (!k || !e || *e || (tok[0] != 't' && tok[0] != 'c')) usage("bad --configs entry '" + tok + "'");
      out.push_back(tok[0] == 't' ? threads_config(static_cast<unsigned>(k)) : copies_config(static_cast<unsigned>(k)));
      at = end + 1;
    }
    return out;
  }
  if (o.copies) return {copies_config(o.copies)};
  return {threads_config(o.server_threads)};
}

}  // namespace
}  // namespace readbench
