// config.h: sfsd's settings: one parser per setting, a default for each,
// read from a file (`name value` lines) and overridden by command-line
// flags. docs/sfsd.md lists them; sfsd.conf.example shows them.
//
// Contract
//   - parse_config reports the first bad line as "FILE:LINE: what is wrong"
//     and nothing is applied from a file that has one.
//   - apply_flags takes argv after the program name; unknown flags and bad
//     values are errors naming the flag.
//   - validate checks what no single setting can (required files given,
//     ports in range) and is run before anything starts.
//   Pure functions; no I/O except reading the config file.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "sfs/result.h"

namespace sfsd {

enum class LogLevel { kError, kWarn, kInfo, kDebug };

// nfs://HOST/PATH?nfsport=N&mountport=M
struct BackendUrl {
  std::string host;
  std::string path;
  std::uint16_t nfs_port = 2049;
  std::uint16_t mount_port = 0;
};
sfs::Result<BackendUrl> parse_backend_url(std::string_view url);

struct Config {
  std::string config_file;              // where the settings came from ("" = flags only)
  std::string listen_address = "127.0.0.1";
  std::uint16_t port = 4000;
  std::string hostname;                 // HOST of @HOST%PORT,HOSTID; "" = listen_address
  std::string server_key;               // private key file (sfskey gen --server)
  std::string users;                    // user database; "" = nobody can log in
  std::string backend;                  // nfs:// URL
  std::string handle_keys;              // handle key file, made on first start
  std::string key_changes;              // keys users changed (key_change.h); "" = beside handle_keys
  bool user_key_changes = true;         // SFS_CHANGEKEY allowed
  std::chrono::seconds handle_key_grace{7 * 24 * 3600};
  std::chrono::milliseconds lease{60000};
  unsigned threads = 0;                 // 0: the CPUs in the affinity mask
  unsigned backend_connections = 1;     // libnfs contexts (each its own color and TCP connection)
  bool allow_anonymous = true;
  std::uint32_t anonymous_uid = 65534;
  std::uint32_t anonymous_gid = 65534;
  std::size_t max_connections = 1024;
  std::size_t max_connections_per_source = 256;
  // sfs::HandshakeLimits (docs/security.md, "Before the handshake").
  unsigned handshakes_per_source = 20;  // a second, and the burst below
  unsigned handshake_burst_per_source = 64;
  std::size_t max_handshakes_in_progress = 256;
  std::size_t max_handshakes_in_progress_per_source = 64;
  std::chrono::milliseconds idle_timeout{15 * 60 * 1000};
  std::chrono::milliseconds handshake_timeout{10000};
  std::chrono::milliseconds progress_timeout{30000};
  std::chrono::milliseconds invalidate_timeout{5000};
  std::size_t max_leases_per_connection = 65536;
  std::size_t max_calls_per_connection = 32;
  unsigned max_failed_logins = 8;
  std::size_t max_queued_bytes_per_connection = 16u << 20;
  std::chrono::milliseconds drain_timeout{10000};
  LogLevel log_level = LogLevel::kInfo;
  std::size_t data_cache = 256u << 20;   // bytes of file data kept (data_cache.h); 0: off
  std::chrono::milliseconds data_cache_revalidate{1000};
  std::string cpu_report;               // "" = no per-color CPU accounting (cpu_report.h)
  std::string user;                     // drop to this user after start (privileges.h); "" = stay
};

// What the command line asked for besides settings.
struct Invocation {
  Config config;
  bool check = false;        // --check: validate and exit
  bool help = false;
  bool rotate_handle_key = false;
  bool foreground = true;
  std::string pid_file;
};

// Reads `path` into cfg (settings not in the file keep their values).
sfs::Status parse_config_file(const std::string& path, Config& cfg);
sfs::Status parse_config_text(std::string_view text, const std::string& name, Config& cfg);
// argv[1..]: --config FILE is read first, then the other flags override it.
sfs::Result<Invocation> parse_command_line(const std::vector<std::string>& args);
sfs::Status validate(const Config& cfg);

std::string usage_text();

// Where the key change file is: key_changes, or "key_changes" in
// handle_keys's directory.
std::string key_changes_path(const Config& c);

}  // namespace sfsd
