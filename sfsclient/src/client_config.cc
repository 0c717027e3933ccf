// client_config.cc: see client_config.h.
#include "client_config.h"

#include <charconv>
#include <cstring>
#include <fstream>
#include <functional>
#include <optional>
#include <sstream>

#include "sfs/secret_file.h"

namespace sfsclient {

namespace {

using Err = std::optional<std::string>;

Err parse_ms(std::string_view v, std::chrono::milliseconds& out) {
  std::size_t i = 0;
  while (i < v.size() && v[i] >= '0' && v[i] <= '9') ++i;
  unsigned long long n = 0;
  if (i == 0 || std::from_chars(v.data(), v.data() + i, n).ec != std::errc{})
    return "expected a duration like 500ms, 30s or 5m";
  const std::string_view u = v.substr(i);
  unsigned long long mult = u == "ms" ? 1 : (u == "s" || u.empty()) ? 1000 : u == "m" ? 60000 : u == "h" ? 3600000 : 0;
  if (!mult) return "unknown unit \"" + std::string(u) + "\" (use ms, s, m or h)";
  out = std::chrono::milliseconds(n * mult);
  return std::nullopt;
}

Err parse_unsigned(std::string_view v, unsigned& out) {
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  if (ec != std::errc{} || p != v.data() + v.size() || v.empty()) return "expected a whole number";
  return std::nullopt;
}

struct Setting {
  const char* name;
  const char* arg;
  const char* help;
  std::function<Err(std::string_view, ClientConfig&)> set;
};

const std::vector<Setting>& settings() {
  static const std::vector<Setting> all = {
      {"mountpoint", "DIR", "where to mount (default /sfs)",
       [](std::string_view v, ClientConfig& c) -> Err {
         if (v.empty() || v[0] != '/') return "must be an absolute path";
         c.mountpoint = std::string(v);
         return std::nullopt;
       }},
      {"agent_socket", "PATH", "where users' sfsagent processes register (default /run/sfs/agent.sock)",
       [](std::string_view v, ClientConfig& c) -> Err {
         c.agent_socket = std::string(v);
         return std::nullopt;
       }},
      {"timeout", "DURATION", "a server gone this long makes calls fail with EIO (default 60s)",
       [](std::string_view v, ClientConfig& c) { return parse_ms(v, c.timeout); }},
      {"hard", "yes|no", "wait for a lost server forever, as NFS hard mounts (default no)",
       [](std::string_view v, ClientConfig& c) -> Err {
         if (v == "yes") c.hard = true;
         else if (v == "no") c.hard = false;
         else return "expected yes or no";
         return std::nullopt;
       }},
      {"threads", "N", "worker threads (default 0: one per CPU)",
       [](std::string_view v, ClientConfig& c) { return parse_unsigned(v, c.threads); }},
      {"read_ahead_kb", "KB", "the mount's read-ahead (default 8192)",
       [](std::string_view v, ClientConfig& c) { return parse_unsigned(v, c.read_ahead_kb); }},
      {"connections", "N",
       "connections to each server: reads go in turn over all N, everything else over the first "
       "(default 0: one per worker thread, at most 4)",
       [](std::string_view v, ClientConfig& c) -> Err {
         if (auto e = parse_unsigned(v, c.connections)) return e;
         if (c.connections > 16) return "at most 16";
         return std::nullopt;
       }},
      {"write_behind_mb", "MIB",
       "per open file, MiB of writes answered before the server has them; more waits (default 16)",
       [](std::string_view v, ClientConfig& c) -> Err {
         if (auto e = parse_unsigned(v, c.write_behind_mb)) return e;
         if (c.write_behind_mb < 1 || c.write_behind_mb > 1024) return "between 1 and 1024";
         return std::nullopt;
       }},
      {"uncommitted_mb", "MIB",
       "per open file, MiB written but not yet stable (kept here to write again if the server "
       "restarts) before a COMMIT in the background (default 64)",
       [](std::string_view v, ClientConfig& c) -> Err {
         if (auto e = parse_unsigned(v, c.uncommitted_mb)) return e;
         if (c.uncommitted_mb < 1 || c.uncommitted_mb > 4096) return "between 1 and 4096";
         return std::nullopt;
       }},
      {"log_file", "FILE", "log when in the background (default /var/log/sfsclient.log)",
       [](std::string_view v, ClientConfig& c) -> Err {
         c.log_file = std::string(v);
         return std::nullopt;
       }},
      {"host_key", "FILE",
       "this host's key (sfskey gen --user): users without an agent log in as their own uid, on "
       "servers that list the host as trusted (default: off)",
       [](std::string_view v, ClientConfig& c) -> Err {
         c.host_key = std::string(v);
         return std::nullopt;
       }},
      {"revoked_dir", "DIR",
       "revocation certificates (sfskey revoke): servers they name are refused with EACCES, at "
       "mount and reconnect; \"none\" turns checking off (default /etc/sfs/revoked)",
       [](std::string_view v, ClientConfig& c) -> Err {
         if (v.empty() || (v != "none" && v[0] != '/')) return "must be an absolute path or none";
         c.revoked_dir = v == "none" ? std::string() : std::string(v);
         return std::nullopt;
       }},
      {"pid_file", "FILE", "write the daemon's pid here",
       [](std::string_view v, ClientConfig& c) -> Err {
         c.pid_file = std::string(v);
         return std::nullopt;
       }},
  };
  return all;
}

std::string flag_of(const char* name) {
  std::string f = "--";
  for (const char* p = name; *p; ++p) f += *p == '_' ? '-' : *p;
  return f;
}

}  // namespace

sfs::Status parse_client_config_text(std::string_view text, const std::string& name, ClientConfig& c) {
  ClientConfig next = c;
  std::size_t line_no = 0;
  std::istringstream in{std::string(text)};
  std::string line;
  while (std::getline(in, line)) {
    ++line_no;
    if (auto h = line.find('#'); h != std::string::npos) line.resize(h);
    std::istringstream words(line);
    std::string key, value, extra;
    if (!(words >> key)) continue;
    const std::string where = name + ":" + std::to_string(line_no) + ": ";
    if (!(words >> value)) return sfs::make_error(where + key + " needs a value");
    if (words >> extra) return sfs::make_error(where + key + ": one value expected");
    const Setting* s = nullptr;
    for (const Setting& cand : settings())
      if (key == cand.name) s = &cand;
    if (!s) return sfs::make_error(where + "unknown setting \"" + key + "\" (sfsclient --help lists them)");
    if (Err e = s->set(value, next)) return sfs::make_error(where + key + ": " + *e);
  }
  c = std::move(next);
  return {};
}

sfs::Result<ClientInvocation> parse_client_command_line(const std::vector<std::string>& args) {
  ClientInvocation inv;
  std::vector<std::string> rest;
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--config") {
      if (i + 1 == args.size()) return sfs::make_error("--config needs a file name");
      // It names the host key and the revocation directory: refused if
      // anyone but root or us could have written it (sfs/secret_file.h).
      sfs::FileRules rules;
      rules.what = "config file";
      rules.secret = false;
      auto text = sfs::read_checked_file(args[i + 1], 1u << 20, rules);
      if (!text) return sfs::make_error(text.error());
      if (auto st = parse_client_config_text(text.value(), args[i + 1], inv.config); !st)
        return sfs::make_error(st.error());
    }
  }
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--config") { ++i; continue; }
    if (a == "--help" || a == "-h") { inv.help = true; continue; }
    if (a == "--foreground" || a == "-f") { inv.config.foreground = true; continue; }
    if (a.rfind("--", 0) == 0) {
      const Setting* s = nullptr;
      for (const Setting& cand : settings())
        if (a == flag_of(cand.name)) s = &cand;
      if (!s) return sfs::make_error("unknown flag \"" + a + "\"");
      if (i + 1 == args.size()) return sfs::make_error(a + " needs a value (" + s->arg + ")");
      if (Err e = s->set(args[++i], inv.config)) return sfs::make_error(a + ": " + *e);
      continue;
    }
    rest.push_back(a);
  }
  if (inv.help) return inv;
  if (rest.empty()) return sfs::make_error("say mount or umount");
  inv.command = rest[0];
  if (inv.command != "mount" && inv.command != "umount")
    return sfs::make_error("unknown command \"" + inv.command + "\" (mount or umount)");
  if (rest.size() > 2) return sfs::make_error("too many arguments");
  if (rest.size() == 2) {
    if (rest[1].empty() || rest[1][0] != '/') return sfs::make_error("the mount point must be an absolute path");
    inv.config.mountpoint = rest[1];
  }
  return inv;
}

std::string client_usage() {
  std::string s =
      "usage: sfsclient mount [--config FILE] [--foreground] [--FLAG VALUE]... [MOUNTPOINT]\n"
      "       sfsclient umount [MOUNTPOINT]\n"
      "Mounts SFS servers under MOUNTPOINT (default /sfs): cd /sfs/@HOST%PORT,HOSTID connects to\n"
      "the server whose key that HOSTID certifies. Runs as root. umount is lazy: it always works.\n\n"
      "  --config FILE          settings as `name value` lines; flags override them\n"
      "  --foreground, -f       stay in the foreground, log to stderr\n"
      "  --help                 this text\n\nSettings:\n";
  for (const Setting& st : settings()) {
    std::string left = "  " + flag_of(st.name) + " " + st.arg;
    if (left.size() < 32) left.resize(32, ' ');
    s += left + st.help + "\n";
  }
  return s;
}

}  // namespace sfsclient
