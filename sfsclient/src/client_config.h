// client_config.h: sfsclient's settings, from `name value` lines in a file
// (--config) and flags (which override the file), and its command line.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "sfs/result.h"

namespace sfsclient {

struct ClientConfig {
  std::string mountpoint = "/sfs";
  std::string agent_socket = "/run/sfs/agent.sock";  // where users' agents register
  std::chrono::milliseconds timeout{60000};  // a lost server: calls fail with EIO after this
  bool hard = false;                         // ...or wait forever
  unsigned threads = 0;                      // 0: one per CPU in the affinity mask
  unsigned read_ahead_kb = 8192;  // 8 MiB: eight 1 MiB READs in flight for one sequential reader
  unsigned connections = 0;  // per server; 0: one per worker thread, at most 4
  unsigned write_behind_mb = 16;  // per open file: writes answered before the server has them
  unsigned uncommitted_mb = 64;   // per open file: then a COMMIT in the background
  bool foreground = false;
  std::string log_file = "/var/log/sfsclient.log";
  std::string pid_file;
  std::string host_key;  // a trusted client host's key (off when empty)
  std::string revoked_dir = "/etc/sfs/revoked";  // revocation certificates (sfs/revocation.h)
};

struct ClientInvocation {
  std::string command;  // "mount" or "umount"
  ClientConfig config;
  bool help = false;
};

sfs::Status parse_client_config_text(std::string_view text, const std::string& name, ClientConfig& c);
sfs::Result<ClientInvocation> parse_client_command_line(const std::vector<std::string>& args);
std::string client_usage();

}  // namespace sfsclient
