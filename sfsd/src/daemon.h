// daemon.h: sfsd as a process: load keys, users and settings, mount the
// backend, serve SFS_NFS over SecureServer, print the self-certifying
// name, and handle signals (SIGTERM/SIGINT drain and exit, SIGHUP reloads
// the user database and the handle keys).
//
// The parts and where they run:
//   SecureServer   accepts on color 0; each connection on its own color
//   FileServer     leases, uid map, INVALIDATE on color 0; sealing and
//                  reply encoding on connection colors (file_server.h)
//   NfsBackend     libnfs contexts on colors of their own (kBackendColor..)
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "asmp/callback.h"
#include "config.h"

namespace sfsd {

// Colors of the backend's connections: far from the connection colors the
// server hands out (1, 2, ...), so that they share no slot for a long time.
inline constexpr asmp::color_t kBackendColor = 16000;

struct DaemonHooks {
  // Called once with the name after the server listens (tests; the program
  // prints it).
  std::function<void(const std::string& name)> on_ready;
  std::function<void(const std::string& line)> log;  // default: stderr
};

// Runs sfsd until a signal (or a fatal error) ends it. Returns the exit
// code: 0 after a drain, 1 when it could not start.
int run_daemon(const Config& cfg, DaemonHooks hooks = {});

// Loads and checks everything --check checks (keys, user database, handle
// keys, settings); the error says what and where.
sfs::Status check_config(const Config& cfg, std::string* name_out);

}  // namespace sfsd
