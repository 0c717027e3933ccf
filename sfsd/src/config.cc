// config.cc: see config.h. Every setting is one row of kSettings: its name
// in the file, the flag (the name with '-' for '_'), a line of help and its
// parser.
#include "config.h"

#include <charconv>
#include <cstring>
#include <fstream>
#include <functional>
#include <limits>
#include <sstream>

#include "sfs/names.h"
#include "sfs/lines.h"
#include "sfs/secret_file.h"

namespace sfsd {

namespace {

using Err = std::optional<std::string>;  // nullopt: accepted

template <class T>
Err parse_uint(std::string_view v, T& out, T max = std::numeric_limits<T>::max()) {
  unsigned long long x = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), x);
  if (ec != std::errc{} || p != v.data() + v.size() || v.empty())
    return "expected a whole number, got \"" + std::string(v) + "\"";
  if (x > max) return "must be at most " + std::to_string(max);
  out = static_cast<T>(x);
  return std::nullopt;
}

// 1048576, 512K, 256M, 2G (powers of 1024).
Err parse_bytes(std::string_view v, std::size_t& out) {
  unsigned shift = 0;
  if (!v.empty()) {
    switch (v.back()) {
      case 'K': case 'k': shift = 10; break;
      case 'M': case 'm': shift = 20; break;
      case 'G': case 'g': shift = 30; break;
      default: break;
    }
  }
  std::size_t n = 0;
  if (auto e = parse_uint<std::size_t>(shift ? v.substr(0, v.size() - 1) : v, n, SIZE_MAX >> shift))
    return "expected a size like 1048576, 512K, 256M or 2G, got \"" + std::string(v) + "\"";
  out = n << shift;
  return std::nullopt;
}

// 60s, 500ms, 15m, 2h, 7d; a bare number is seconds.
Err parse_duration(std::string_view v, std::chrono::milliseconds& out) {
  std::size_t i = 0;
  while (i < v.size() && v[i] >= '0' && v[i] <= '9') ++i;
  std::uint64_t n = 0;
  if (i == 0 || std::from_chars(v.data(), v.data() + i, n).ec != std::errc{})
    return "expected a duration like 500ms, 60s, 15m, 2h or 7d, got \"" + std::string(v) + "\"";
  const std::string_view unit = v.substr(i);
  std::uint64_t ms_per;
  if (unit == "ms") ms_per = 1;
  else if (unit == "s" || unit.empty()) ms_per = 1000;
  else if (unit == "m") ms_per = 60'000;
  else if (unit == "h") ms_per = 3'600'000;
  else if (unit == "d") ms_per = 86'400'000;
  else return "unknown unit \"" + std::string(unit) + "\" (use ms, s, m, h or d)";
  if (n > (1ull << 40) / ms_per) return "duration too long";
  out = std::chrono::milliseconds(n * ms_per);
  return std::nullopt;
}

Err parse_bool(std::string_view v, bool& out) {
  if (v == "yes" || v == "true" || v == "on") out = true;
  else if (v == "no" || v == "false" || v == "off") out = false;
  else return "expected yes or no, got \"" + std::string(v) + "\"";
  return std::nullopt;
}

Err parse_path(std::string_view v, std::string& out) {
  if (v.empty()) return "expected a file name";
  out = std::string(v);
  return std::nullopt;
}

// ADDRESS:PORT or [IPV6]:PORT, numeric addresses only.
Err parse_listen(std::string_view v, Config& c) {
  std::string_view host, port;
  if (!v.empty() && v.front() == '[') {
    const std::size_t close = v.find(']');
    if (close == std::string_view::npos || close + 1 >= v.size() || v[close + 1] != ':')
      return "expected [IPV6]:PORT";
    host = v.substr(1, close - 1);
    port = v.substr(close + 2);
  } else {
    const std::size_t colon = v.rfind(':');
    if (colon == std::string_view::npos) return "expected ADDRESS:PORT, e.g. 127.0.0.1:4000";
    host = v.substr(0, colon);
    port = v.substr(colon + 1);
  }
  if (host.empty()) return "missing address before the port";
  std::uint16_t p = 0;
  if (auto e = parse_uint<std::uint16_t>(port, p); e || p == 0) return "port must be 1-65535";
  c.listen_address = std::string(host);
  c.port = p;
  return std::nullopt;
}

Err parse_log_level(std::string_view v, LogLevel& out) {
  if (v == "error") out = LogLevel::kError;
  else if (v == "warn") out = LogLevel::kWarn;
  else if (v == "info") out = LogLevel::kInfo;
  else if (v == "debug") out = LogLevel::kDebug;
  else return "expected error, warn, info or debug";
  return std::nullopt;
}

struct Setting {
  const char* name;
  const char* arg;
  const char* help;
  std::function<Err(std::string_view, Config&)> set;
};

std::chrono::seconds as_seconds(std::chrono::milliseconds m) {
  return std::chrono::duration_cast<std::chrono::seconds>(m);
}

const std::vector<Setting>& settings() {
  static const std::vector<Setting> all = {
      {"listen", "ADDR:PORT", "address and port to accept clients on (default 127.0.0.1:4000)",
       [](std::string_view v, Config& c) { return parse_listen(v, c); }},
      {"hostname", "HOST",
       "the HOST of the self-certifying name @HOST%PORT,HOSTID (default: the listen address)",
       [](std::string_view v, Config& c) -> Err {
         if (auto h = sfs::check_host(v); !h) return h.error();
         c.hostname = std::string(v);
         return std::nullopt;
       }},
      {"server_key", "FILE", "the server's private key (sfskey gen --server -o FILE)",
       [](std::string_view v, Config& c) { return parse_path(v, c.server_key); }},
      {"users", "FILE", "user database: ed25519:KEY NAME UID GID [GID,...] per line (SIGHUP reloads)",
       [](std::string_view v, Config& c) { return parse_path(v, c.users); }},
      {"backend", "URL", "the NFSv3 export: nfs://127.0.0.1/PATH?nfsport=N&mountport=M",
       [](std::string_view v, Config& c) -> Err {
         if (auto u = parse_backend_url(v); !u) return u.error();
         c.backend = std::string(v);
         return std::nullopt;
       }},
      {"handle_keys", "FILE", "file handle keys (0600; created on first start)",
       [](std::string_view v, Config& c) { return parse_path(v, c.handle_keys); }},
      {"key_changes", "FILE",
       "keys users changed themselves (sfskey update); sfsd's own, 0600 (default: key_changes beside handle_keys)",
       [](std::string_view v, Config& c) { return parse_path(v, c.key_changes); }},
      {"user_key_changes", "yes|no", "let logged-in users replace their own key (default yes)",
       [](std::string_view v, Config& c) { return parse_bool(v, c.user_key_changes); }},
      {"handle_key_grace", "DURATION", "how long a rotated handle key still opens handles (default 7d)",
       [](std::string_view v, Config& c) -> Err {
         std::chrono::milliseconds d;
         if (auto e = parse_duration(v, d)) return e;
         c.handle_key_grace = as_seconds(d);
         return std::nullopt;
       }},
      {"lease", "DURATION", "how long clients may cache attributes (default 60s)",
       [](std::string_view v, Config& c) -> Err {
         if (auto e = parse_duration(v, c.lease)) return e;
         if (c.lease > std::chrono::hours(24)) return "at most 24h";
         return std::nullopt;
       }},
      {"threads", "N", "worker threads (default 0: one per CPU in the affinity mask)",
       [](std::string_view v, Config& c) { return parse_uint<unsigned>(v, c.threads, 1024); }},
      {"backend_connections", "N", "NFS connections to the backend, each on its own color (default 1)",
       [](std::string_view v, Config& c) -> Err {
         if (auto e = parse_uint<unsigned>(v, c.backend_connections, 64)) return e;
         if (c.backend_connections == 0) return "must be at least 1";
         return std::nullopt;
       }},
      {"anonymous", "yes|no", "serve calls without a login as the anonymous user (default yes)",
       [](std::string_view v, Config& c) { return parse_bool(v, c.allow_anonymous); }},
      {"anonymous_uid", "UID", "uid of the anonymous user (default 65534)",
       [](std::string_view v, Config& c) { return parse_uint<std::uint32_t>(v, c.anonymous_uid); }},
      {"anonymous_gid", "GID", "gid of the anonymous user (default 65534)",
       [](std::string_view v, Config& c) { return parse_uint<std::uint32_t>(v, c.anonymous_gid); }},
      {"max_connections", "N", "open connections at most (default 1024; 0: no limit)",
       [](std::string_view v, Config& c) { return parse_uint<std::size_t>(v, c.max_connections); }},
      {"max_connections_per_source", "N", "open connections per client address (default 256)",
       [](std::string_view v, Config& c) {
         return parse_uint<std::size_t>(v, c.max_connections_per_source);
       }},
      {"handshakes_per_source", "N", "handshakes a second per client address (default 20; 0: no limit)",
       [](std::string_view v, Config& c) { return parse_uint<unsigned>(v, c.handshakes_per_source); }},
      {"handshake_burst_per_source", "N", "handshakes at once per client address (default 64)",
       [](std::string_view v, Config& c) { return parse_uint<unsigned>(v, c.handshake_burst_per_source); }},
      {"max_handshakes_in_progress", "N", "connections still in their handshake (default 256; 0: no limit)",
       [](std::string_view v, Config& c) { return parse_uint<std::size_t>(v, c.max_handshakes_in_progress); }},
      {"max_handshakes_in_progress_per_source", "N", "the same per client address (default 64; 0: no limit)",
       [](std::string_view v, Config& c) {
         return parse_uint<std::size_t>(v, c.max_handshakes_in_progress_per_source);
       }},
      {"idle_timeout", "DURATION", "close a connection idle this long (default 15m; 0: never)",
       [](std::string_view v, Config& c) { return parse_duration(v, c.idle_timeout); }},
      {"handshake_timeout", "DURATION", "close a connection without a handshake by then (default 10s)",
       [](std::string_view v, Config& c) { return parse_duration(v, c.handshake_timeout); }},
      {"progress_timeout", "DURATION",
       "close a connection whose record has been arriving this long: a trickling peer (default 30s)",
       [](std::string_view v, Config& c) { return parse_duration(v, c.progress_timeout); }},
      {"invalidate_timeout", "DURATION",
       "a client that does not acknowledge INVALIDATE by then is disconnected (default 5s)",
       [](std::string_view v, Config& c) { return parse_duration(v, c.invalidate_timeout); }},
      {"max_leases_per_connection", "N", "leases one connection may hold (default 65536)",
       [](std::string_view v, Config& c) -> Err {
         if (auto e = parse_uint<std::size_t>(v, c.max_leases_per_connection)) return e;
         if (c.max_leases_per_connection == 0) return "must be at least 1";
         return std::nullopt;
       }},
      {"max_calls_per_connection", "N",
       "calls one connection may have in progress; beyond, it is not read (default 32)",
       [](std::string_view v, Config& c) -> Err {
         if (auto e = parse_uint<std::size_t>(v, c.max_calls_per_connection)) return e;
         if (c.max_calls_per_connection == 0) return "must be at least 1";
         return std::nullopt;
       }},
      {"max_failed_logins", "N", "close a connection after this many failed logins (default 8; 0: never)",
       [](std::string_view v, Config& c) { return parse_uint<unsigned>(v, c.max_failed_logins, 1u << 20); }},
      {"max_queued_bytes_per_connection", "BYTES",
       "reply bytes queued for one connection; beyond, it is not read (default 16777216)",
       [](std::string_view v, Config& c) -> Err {
         if (auto e = parse_uint<std::size_t>(v, c.max_queued_bytes_per_connection)) return e;
         if (c.max_queued_bytes_per_connection < (2u << 20)) return "must be at least 2097152 (two 1 MiB replies)";
         return std::nullopt;
       }},
      {"user", "NAME",
       "started as root, run as this user once the keys are read, keeping only the right to bind "
       "reserved ports (default: stay as started, with a warning if that is root)",
       [](std::string_view v, Config& c) -> Err {
         if (v.empty() || v.size() > 32) return "expected a user name or uid";
         c.user = std::string(v);
         return std::nullopt;
       }},
      {"drain_timeout", "DURATION", "on SIGTERM, wait this long for calls in flight (default 10s)",
       [](std::string_view v, Config& c) { return parse_duration(v, c.drain_timeout); }},
      {"data_cache", "BYTES",
       "keep up to BYTES (e.g. 512M) of file data read from the backend, so repeated reads skip it "
       "(default 256M; 0: off)",
       [](std::string_view v, Config& c) { return parse_bytes(v, c.data_cache); }},
      {"data_cache_revalidate", "DURATION",
       "check cached data against the backend's attributes when older than this (default 1s)",
       [](std::string_view v, Config& c) { return parse_duration(v, c.data_cache_revalidate); }},
      {"cpu_report", "FILE",
       "account CPU time per color and write it to FILE as JSON on SIGUSR1 and at exit (default: off)",
       [](std::string_view v, Config& c) { return parse_path(v, c.cpu_report); }},
      {"log_level", "LEVEL", "error, warn, info (default) or debug",
       [](std::string_view v, Config& c) { return parse_log_level(v, c.log_level); }},
  };
  return all;
}

const Setting* find_setting(std::string_view name) {
  for (const Setting& s : settings())
    if (name == s.name) return &s;
  return nullptr;
}

std::string flag_of(const char* name) {
  std::string f = "--";
  for (const char* p = name; *p; ++p) f += *p == '_' ? '-' : *p;
  return f;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

}  // namespace

sfs::Result<BackendUrl> parse_backend_url(std::string_view url) {
  const std::string_view scheme = "nfs://";
  const auto bad = [&](const std::string& why) {
    return sfs::make_error("backend URL \"" + std::string(url) + "\": " + why +
                           " (expected nfs://HOST/PATH?nfsport=N&mountport=M)");
  };
  if (url.substr(0, scheme.size()) != scheme) return bad("must start with nfs://");
  std::string_view rest = url.substr(scheme.size());
  const std::size_t slash = rest.find('/');
  if (slash == 0 || slash == std::string_view::npos) return bad("missing host or path");
  BackendUrl b;
  b.host = std::string(rest.substr(0, slash));
  rest = rest.substr(slash);
  const std::size_t q = rest.find('?');
  b.path = std::string(rest.substr(0, q));
  std::string_view query = q == std::string_view::npos ? std::string_view{} : rest.substr(q + 1);
  while (!query.empty()) {
    const std::size_t amp = query.find('&');
    std::string_view kv = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    const std::size_t eq = kv.find('=');
    if (eq == std::string_view::npos) return bad("option \"" + std::string(kv) + "\" has no value");
    std::string_view k = kv.substr(0, eq), v = kv.substr(eq + 1);
    std::uint16_t* port = k == "nfsport" ? &b.nfs_port : k == "mountport" ? &b.mount_port : nullptr;
    if (!port) return bad("unknown option \"" + std::string(k) + "\"");
    if (parse_uint<std::uint16_t>(v, *port) || *port == 0) return bad(std::string(k) + " must be 1-65535");
  }
  if (b.mount_port == 0) return bad("mountport is required (sfsd never asks rpcbind)");
  return b;
}

sfs::Status parse_config_text(std::string_view text, const std::string& name, Config& cfg) {
  Config next = cfg;
  sfs::LineCursor lines(text);
  std::string_view line;
  while (lines.next(&line)) {
    if (const std::size_t hash = line.find('#'); hash != std::string_view::npos)
      line = line.substr(0, hash);
    line = trim(line);
    if (line.empty()) continue;
    const std::string where = name + ":" + std::to_string(lines.number()) + ": ";
    std::size_t sp = line.find_first_of(" \t");
    std::string_view key = line.substr(0, sp);
    std::string_view value = sp == std::string_view::npos ? std::string_view{} : trim(line.substr(sp));
    const Setting* s = find_setting(key);
    if (!s) return sfs::make_error(where + "unknown setting \"" + std::string(key) + "\" (sfsd --help lists them)");
    if (value.empty()) return sfs::make_error(where + std::string(key) + " needs a value (" + s->arg + ")");
    if (Err e = s->set(value, next)) return sfs::make_error(where + std::string(key) + ": " + *e);
  }
  cfg = std::move(next);
  cfg.config_file = name;
  return {};
}

sfs::Status parse_config_file(const std::string& path, Config& cfg) {
  // The config names the keys and the user database: refused if anyone but
  // root or us could have written it (sfs/secret_file.h).
  sfs::FileRules rules;
  rules.what = "config file";
  rules.secret = false;
  auto text = sfs::read_checked_file(path, 1u << 20, rules);
  if (!text) return sfs::make_error(text.error());
  return parse_config_text(text.value(), path, cfg);
}

sfs::Result<Invocation> parse_command_line(const std::vector<std::string>& args) {
  Invocation inv;
  // --config first, so that flags override the file wherever they stand.
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--config") {
      if (i + 1 == args.size()) return sfs::make_error("--config needs a file name");
      if (sfs::Status s = parse_config_file(args[i + 1], inv.config); !s) return sfs::make_error(s.error());
    }
  }
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&]() -> std::optional<std::string> {
      if (i + 1 == args.size()) return std::nullopt;
      return args[++i];
    };
    if (a == "--config") { ++i; continue; }
    if (a == "--help" || a == "-h") { inv.help = true; continue; }
    if (a == "--check") { inv.check = true; continue; }
    if (a == "--rotate-handle-key") { inv.rotate_handle_key = true; continue; }
    if (a == "--pid-file") {
      auto v = value();
      if (!v) return sfs::make_error("--pid-file needs a file name");
      inv.pid_file = *v;
      continue;
    }
    const Setting* s = nullptr;
    for (const Setting& cand : settings())
      if (a == flag_of(cand.name)) s = &cand;
    if (!s) return sfs::make_error("unknown argument \"" + a + "\" (sfsd --help lists the flags)");
    auto v = value();
    if (!v) return sfs::make_error(a + " needs a value (" + s->arg + ")");
    if (Err e = s->set(*v, inv.config)) return sfs::make_error(a + ": " + *e);
  }
  return inv;
}

sfs::Status validate(const Config& c) {
  if (c.server_key.empty()) return sfs::make_error("no server key: set server_key in the config or pass --server-key FILE");
  if (c.backend.empty()) return sfs::make_error("no backend: set backend (nfs://127.0.0.1/PATH?nfsport=N&mountport=M)");
  if (c.handle_keys.empty()) return sfs::make_error("no handle key file: set handle_keys (created on first start)");
  if (!c.key_changes.empty() && c.key_changes == c.users)
    return sfs::make_error("key_changes must not be the user database: sfsd writes it");
  const std::string host = c.hostname.empty() ? c.listen_address : c.hostname;
  if (auto h = sfs::check_host(host); !h)
    return sfs::make_error("the name's host \"" + host + "\" is not usable in a self-certifying name (" + h.error() +
                           "); set hostname");
  return {};
}

std::string key_changes_path(const Config& c) {
  if (!c.key_changes.empty()) return c.key_changes;
  const std::size_t slash = c.handle_keys.rfind('/');
  return (slash == std::string::npos ? std::string() : c.handle_keys.substr(0, slash + 1)) + "key_changes";
}

std::string usage_text() {
  std::string s =
      "usage: sfsd [--config FILE] [--FLAG VALUE]... [--check] [--rotate-handle-key]\n"
      "Serves an NFSv3 export to SFS clients over encrypted, authenticated connections.\n"
      "On start it prints its self-certifying name @HOST%PORT,HOSTID.\n"
      "SIGTERM drains and exits; SIGHUP reloads the user database and handle keys.\n\n"
      "  --config FILE          read settings from FILE (`name value` lines); flags override it\n"
      "  --check                check the settings, keys, user database and backend URL; exit\n"
      "  --rotate-handle-key    put a new handle key first in the handle key file; exit\n"
      "  --pid-file FILE        write the pid to FILE\n"
      "  --help                 this text\n\nSettings (in the file as `name value`, as flags --name-with-dashes):\n";
  for (const Setting& st : settings()) {
    std::string left = "  " + flag_of(st.name) + " " + st.arg;
    if (left.size() < 40) left.resize(40, ' ');
    else left += "\n" + std::string(40, ' ');
    s += left + st.help + "\n";
  }
  return s;
}

}  // namespace sfsd
