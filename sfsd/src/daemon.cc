// daemon.cc: see daemon.h. Start-up is a chain of steps on color 0:
// load (synchronous, before the runtime runs) -> mount the backend ->
// build the file server -> listen -> ready. Any failure prints one line and
// makes run_daemon return 1.
#include "daemon.h"

#include <signal.h>
#include <sys/stat.h>
#include <sodium.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <functional>
#include <mutex>

#include "cpu_report.h"
#include "file_server.h"
#include "handle_seal.h"
#include "key_holder.h"
#include "nfs_backend.h"
#include "privileges.h"
#include "sfs/key_change.h"
#include "sfs/keys.h"
#include "sfs/names.h"
#include "sfs/secure_rpc.h"
#include "sfs/serial_thread.h"

namespace sfsd {

namespace {

using asmp::Closure;

// Polls left() every 20 ms on color 0 until it is 0 or the deadline has
// passed, then calls done() with what is still left.
void poll_until_zero(asmp::Runtime& rt, std::function<std::size_t()> left, asmp::Clock::time_point deadline,
                     std::function<void(std::size_t)> done) {
  const std::size_t n = left();
  if (n == 0 || asmp::Clock::now() >= deadline) return done(n);
  rt.delaycb(std::chrono::milliseconds(20), Closure(
                                                [&rt, left = std::move(left), deadline, done = std::move(done)] {
                                                  poll_until_zero(rt, left, deadline, done);
                                                },
                                                0));
}

struct Loaded {
  std::optional<ServiceUser> user;  // the `user` setting, resolved
  std::vector<uid_t> owners;        // who may own the files we read
  std::shared_ptr<const sfs::ServerKey> key;
  std::shared_ptr<const sfs::UserDb> users;  // the administrator's, with users' key changes applied
  std::shared_ptr<sfs::KeyChanges> changes;  // the key change file; color 0 only once running
  std::vector<std::string> notes;            // key changes skipped, for the log
  std::shared_ptr<const HandleSealer> sealer;
  BackendUrl backend;
  sfs::SelfCertName name;
};

sfs::Result<std::shared_ptr<const sfs::UserDb>> load_users(const std::string& path,
                                                          const std::vector<uid_t>& owners) {
  if (path.empty()) return std::shared_ptr<const sfs::UserDb>(std::make_shared<sfs::UserDb>(sfs::UserDb::parse("", nullptr)));
  std::vector<sfs::DbDiagnostic> diags;
  auto db = sfs::UserDb::load(path, &diags, owners);
  if (!db) return sfs::make_error(db.error());
  // A line sfsd cannot use is an error here, not a skipped user: the
  // administrator meant something by it.
  if (!diags.empty())
    return sfs::make_error(path + ":" + std::to_string(diags.front().line) + ": " + diags.front().message);
  return std::shared_ptr<const sfs::UserDb>(std::make_shared<sfs::UserDb>(std::move(db.value())));
}

// The administrator's database, then the key change file over it
// (key_change.h). An unusable key change file (someone else could write
// it) is an error; entries it cannot apply are notes for the log.
struct EffectiveUsers {
  std::shared_ptr<const sfs::UserDb> users;
  std::shared_ptr<sfs::KeyChanges> changes;
  std::vector<std::string> notes;
};
sfs::Result<EffectiveUsers> load_effective_users(const Config& cfg, const std::vector<uid_t>& owners) {
  auto admin = load_users(cfg.users, owners);
  if (!admin) return sfs::make_error(admin.error());
  const std::string path = key_changes_path(cfg);
  std::vector<sfs::DbDiagnostic> diags;
  auto changes = sfs::KeyChanges::load(path, &diags, owners);
  if (!changes) return sfs::make_error(changes.error());
  EffectiveUsers out;
  for (const auto& d : diags) out.notes.push_back(path + ":" + std::to_string(d.line) + ": " + d.message + "; skipped");
  out.changes = std::make_shared<sfs::KeyChanges>(std::move(changes.value()));
  out.users = std::make_shared<const sfs::UserDb>(out.changes->apply(*admin.value(), &out.notes));
  return out;
}

sfs::Result<std::shared_ptr<const HandleSealer>> load_sealer(const Config& cfg,
                                                            const std::vector<uid_t>& owners) {
  auto keys = load_or_create_handle_keys(cfg.handle_keys, owners);
  if (!keys) return sfs::make_error(keys.error());
  return std::shared_ptr<const HandleSealer>(std::make_shared<HandleSealer>(keys.value(), cfg.handle_key_grace));
}

sfs::Result<Loaded> load(const Config& cfg) {
  if (sfs::Status s = validate(cfg); !s) return sfs::make_error(s.error());
  Loaded l;
  if (!cfg.user.empty()) {
    auto u = lookup_service_user(cfg.user);
    if (!u) return sfs::make_error(u.error());
    l.user = u.value();
    l.owners = {0, ::geteuid(), u.value().uid};
  }
  auto kf = sfs::read_key_file(cfg.server_key, l.owners);
  if (!kf) return sfs::make_error(kf.error());
  if (!kf.value().server)
    return sfs::make_error(cfg.server_key + " is a user key; sfsd needs a server key (sfskey gen --server)");
  l.key = std::make_shared<const sfs::ServerKey>(std::move(*kf.value().server));
  auto users = load_effective_users(cfg, l.owners);
  if (!users) return sfs::make_error(users.error());
  l.users = users.value().users;
  l.changes = users.value().changes;
  l.notes = std::move(users.value().notes);
  auto sealer = load_sealer(cfg, l.owners);
  if (!sealer) return sfs::make_error(sealer.error());
  l.sealer = sealer.value();
  auto url = parse_backend_url(cfg.backend);
  if (!url) return sfs::make_error(url.error());
  l.backend = url.value();
  const std::string host = cfg.hostname.empty() ? cfg.listen_address : cfg.hostname;
  l.name = sfs::name_for(sfs::Location{host, cfg.port}, l.key->public_key());
  return l;
}

class Logger {
 public:
  Logger(LogLevel level, std::function<void(const std::string&)> sink)
      : level_(level), sink_(std::move(sink)) {}
  void operator()(LogLevel l, const std::string& line) const {
    if (l > level_) return;
    if (sink_) return sink_(line);
    std::lock_guard lk(mu_);
    std::fprintf(stderr, "sfsd: %s\n", line.c_str());
    std::fflush(stderr);
  }
  sfs::LogSink sink(LogLevel l) const {
    return [this, l](const std::string& s) { (*this)(l, s); };
  }

 private:
  LogLevel level_;
  std::function<void(const std::string&)> sink_;
  mutable std::mutex mu_;
};

// Runs before the runtime starts any thread (privileges.h says why). The
// server key was read as root and is not readable by the user; the files
// SIGHUP rereads (user database, handle keys) must be, so they are read
// again here as the user: a setup that would fail at the first SIGHUP
// fails at start instead.
sfs::Status become_service_user(const Config& cfg, Loaded& l, const Logger& log) {
  if (!l.user) {
    if (::geteuid() == 0)
      log(LogLevel::kWarn, "running as root: set `user` (e.g. user sfsd) so that a flaw in sfsd does not "
                           "give away the machine (docs/sfsd.md, \"Privileges\")");
    return {};
  }
  const ServiceUser& u = *l.user;
  // sfsd's own state: the handle key file becomes the user's, so that SIGHUP
  // can reread it and --rotate-handle-key (as root) keeps that owner.
  struct stat st;
  if (::geteuid() == 0 && u.uid != 0 && ::lstat(cfg.handle_keys.c_str(), &st) == 0 && st.st_uid != u.uid &&
      ::lchown(cfg.handle_keys.c_str(), u.uid, u.gid) != 0)
    return sfs::make_error("cannot give the handle key file " + cfg.handle_keys + " to user " + u.name + ": " +
                           std::strerror(errno));
  // Likewise the key change file, which sfsd rewrites on every key change.
  const std::string changes = key_changes_path(cfg);
  if (::geteuid() == 0 && u.uid != 0 && ::lstat(changes.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
      st.st_uid != u.uid && ::lchown(changes.c_str(), u.uid, u.gid) != 0)
    return sfs::make_error("cannot give the key change file " + changes + " to user " + u.name + ": " +
                           std::strerror(errno));
  if (sfs::Status s = drop_privileges(u); !s) return s;
  const std::string dir = changes.rfind('/') == std::string::npos ? "." : changes.substr(0, changes.rfind('/') + 1);
  if (cfg.user_key_changes && ::access(dir.c_str(), W_OK | X_OK) != 0)
    log(LogLevel::kWarn, "user " + u.name + " cannot write " + dir + ": users' key changes (sfskey update) will "
                         "fail until it can (make the directory " + u.name + "'s, 0700), or set user_key_changes no");
  auto users = load_effective_users(cfg, l.owners);
  if (!users)
    return sfs::make_error("as user " + u.name + ", SIGHUP could not reread the user database: " + users.error());
  auto sealer = load_sealer(cfg, l.owners);
  if (!sealer)
    return sfs::make_error("as user " + u.name + ", SIGHUP could not reread the handle keys: " + sealer.error());
  log(LogLevel::kInfo, "running as user " + u.name + " (uid " + std::to_string(u.uid) +
                           "), keeping only CAP_NET_BIND_SERVICE");
  return {};
}

// Once the server key has moved to its holder (key_holder.h), no copy may
// stay in sfsd. Two places outlive the buffers load() wiped:
// - the vector registers, where memcpy and base32 decoding left pieces of
//   the key file's text. The kernel writes them onto the stack with every
//   signal frame and copies them into every thread created later: the test
//   that reads sfsd's memory found the text on its stack 28 times in 30,
//   and none in 20 once they are cleared;
// - the stack below the caller's frame, where load() read and decoded the
//   file; later calls usually overwrite it (the test never found the key
//   there once the registers were cleared), but need not reach as deep.
[[gnu::noinline]] void wipe_stack_below() {
  unsigned char area[256 << 10];
  sodium_memzero(area, sizeof area);
  asm volatile("" : : "r"(area) : "memory");
}

[[gnu::noinline]] void wipe_vector_registers() {
#if defined(__x86_64__)
  if (__builtin_cpu_supports("avx512f")) {
    // VZEROALL below clears zmm0-15; these are the rest.
    asm volatile(
        "vpxord %%zmm16, %%zmm16, %%zmm16\n\tvpxord %%zmm17, %%zmm17, %%zmm17\n\t"
        "vpxord %%zmm18, %%zmm18, %%zmm18\n\tvpxord %%zmm19, %%zmm19, %%zmm19\n\t"
        "vpxord %%zmm20, %%zmm20, %%zmm20\n\tvpxord %%zmm21, %%zmm21, %%zmm21\n\t"
        "vpxord %%zmm22, %%zmm22, %%zmm22\n\tvpxord %%zmm23, %%zmm23, %%zmm23\n\t"
        "vpxord %%zmm24, %%zmm24, %%zmm24\n\tvpxord %%zmm25, %%zmm25, %%zmm25\n\t"
        "vpxord %%zmm26, %%zmm26, %%zmm26\n\tvpxord %%zmm27, %%zmm27, %%zmm27\n\t"
        "vpxord %%zmm28, %%zmm28, %%zmm28\n\tvpxord %%zmm29, %%zmm29, %%zmm29\n\t"
        "vpxord %%zmm30, %%zmm30, %%zmm30\n\tvpxord %%zmm31, %%zmm31, %%zmm31" ::
            : "memory");
  }
  if (__builtin_cpu_supports("avx")) {
    asm volatile("vzeroall" ::: "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9",
                 "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "memory");
  } else {
    asm volatile(
        "pxor %%xmm0, %%xmm0\n\tpxor %%xmm1, %%xmm1\n\tpxor %%xmm2, %%xmm2\n\tpxor %%xmm3, %%xmm3\n\t"
        "pxor %%xmm4, %%xmm4\n\tpxor %%xmm5, %%xmm5\n\tpxor %%xmm6, %%xmm6\n\tpxor %%xmm7, %%xmm7\n\t"
        "pxor %%xmm8, %%xmm8\n\tpxor %%xmm9, %%xmm9\n\tpxor %%xmm10, %%xmm10\n\tpxor %%xmm11, %%xmm11\n\t"
        "pxor %%xmm12, %%xmm12\n\tpxor %%xmm13, %%xmm13\n\tpxor %%xmm14, %%xmm14\n\tpxor %%xmm15, %%xmm15" ::
            : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11",
              "xmm12", "xmm13", "xmm14", "xmm15", "memory");
  }
#endif
}

}  // namespace

sfs::Status check_config(const Config& cfg, std::string* name_out) {
  auto l = load(cfg);
  if (!l) return sfs::make_error(l.error());
  if (name_out) *name_out = sfs::format_name(l.value().name);
  return {};
}

int run_daemon(const Config& cfg, DaemonHooks hooks) {
  Logger log(cfg.log_level, hooks.log);
  auto loaded = load(cfg);
  if (!loaded) {
    log(LogLevel::kError, "cannot start: " + loaded.error());
    return 1;
  }
  Loaded l = std::move(loaded.value());
  for (const std::string& n : l.notes) log(LogLevel::kError, n);
  if (sfs::Status s = become_service_user(cfg, l, log); !s) {
    log(LogLevel::kError, "cannot start: " + s.error());
    return 1;
  }
  // The server key moves to a process of its own, and this one's copy is
  // wiped (key_holder.h): still before any thread exists.
  auto held = start_key_holder(std::move(l.key), log.sink(LogLevel::kError));
  if (!held) {
    log(LogLevel::kError, "cannot start: " + held.error());
    return 1;
  }
  const std::shared_ptr<const sfs::ServerKeyOps> server_key = held.value();
  wipe_stack_below();
  wipe_vector_registers();  // before the runtime's threads copy them

  asmp::RuntimeOptions ro;
  ro.threads = cfg.threads;
  // A daemon shares its cores (with its clients, the NFS server, ...):
  // sleep when idle rather than spin (docs/architecture.md, "Sleep").
  ro.idle_spins = 0;
  ro.color_cpu = !cfg.cpu_report.empty();
  asmp::Runtime rt(ro);
  std::shared_ptr<FileServer> files;
  auto report_cpu = [&] {
    if (cfg.cpu_report.empty()) return;
    std::string extra;
    if (files) {
      const FileServerStats st = files->stats();
      extra = "\"data_cache_hits\":" + std::to_string(st.cache_hits) +
              ",\"data_cache_misses\":" + std::to_string(st.cache_misses) +
              ",\"data_cache_fills\":" + std::to_string(st.cache_fills) +
              ",\"data_cache_refused\":" + std::to_string(st.cache_refused);
    }
    if (std::string err = write_cpu_report(rt, cfg.cpu_report, extra); !err.empty()) log(LogLevel::kWarn, err);
  };

  NfsBackendOptions bo;
  bo.url = l.backend;
  bo.connections = cfg.backend_connections;
  bo.first_color = kBackendColor;
  // Fail closed if the export behind the URL is not the one we started
  // with: its handles would then mean other files.
  struct RootCheck {
    std::mutex mu;
    nfs::FileHandle first;
    std::weak_ptr<FileServer> files;
  };
  auto root_check = std::make_shared<RootCheck>();
  bo.on_mount = [root_check, &log](const nfs::FileHandle& root) {
    std::lock_guard lk(root_check->mu);
    if (root_check->first.empty()) {
      root_check->first = root;
    } else if (!(root_check->first == root)) {
      if (auto fs = root_check->files.lock())
        fs->fail_closed("the backend's root handle changed (was " + root_check->first.hex() + ", now " +
                        root.hex() + "): not the export sfsd started with");
      log(LogLevel::kError, "backend root handle changed; every file call is refused until sfsd restarts");
    }
  };
  auto backend = std::make_shared<NfsBackend>(bo);

  // Handshakes ask the key holder (another process): on a thread of their
  // own, so that a slow or stalled holder never holds a worker. Declared
  // before the server, so it outlives the server's use of it.
  sfs::SerialThread handshakes;
  std::shared_ptr<sfs::SecureServer> server;
  auto key_changes_saved = std::make_shared<std::uint64_t>(0);  // color 0
  int exit_code = 0;
  bool draining = false;
  const std::string name = sfs::format_name(l.name);

  auto fail = [&](const std::string& why) {
    log(LogLevel::kError, "cannot start: " + why);
    exit_code = 1;
    rt.stop(1);
  };

  // Replies already answered may still sit in a connection's output queue
  // (a 1 MiB READ to a slow reader): each connection sends what it holds
  // before it closes, for up to kFlush; then sfsd stops.
  constexpr std::chrono::milliseconds kFlush{3000};
  auto finish_drain = [&] {
    report_cpu();  // while the workers run: their CPU clocks end with them
    if (files) files->stop();
    if (server) server->close(kFlush);
    // +100 ms: the flush timers close the stragglers themselves first.
    poll_until_zero(
        rt, [&]() -> std::size_t { return server ? server->connections() : 0; },
        asmp::Clock::now() + kFlush + std::chrono::milliseconds(100), [&](std::size_t left) {
          if (left)
            log(LogLevel::kWarn, std::to_string(left) + " connection(s) did not take their replies in " +
                                     std::to_string(kFlush.count()) + " ms; closing");
          rt.stop(exit_code);
        });
  };
  auto drain = [&](const char* why) {
    if (draining) return;
    draining = true;
    log(LogLevel::kInfo, std::string(why) + ": draining (no new connections; answering calls in flight)");
    if (server) server->stop_accepting();
    poll_until_zero(
        rt, [&]() -> std::size_t { return files ? files->stats().in_flight : 0; },
        asmp::Clock::now() + cfg.drain_timeout, [&](std::size_t left) {
          if (left) log(LogLevel::kWarn, "drain timeout: " + std::to_string(left) + " calls still in flight; closing");
          finish_drain();
        });
  };
  // A key change saved between the reload's reading of the files and
  // set_users installing what it read would be missing from the installed
  // database (both run on color 0, set_users a step later): the changes
  // are counted, and a reload that raced one reads the files again.
  std::function<void()> reload_users = [&] {
    auto users = load_effective_users(cfg, l.owners);
    if (!users) {
      log(LogLevel::kError, "SIGHUP: keeping the old user database: " + users.error());
      return;
    }
    if (!server) return;
    for (const std::string& n : users.value().notes) log(LogLevel::kError, "SIGHUP: " + n);
    *l.changes = *users.value().changes;  // color 0, as save_key_change
    const std::uint64_t seen = *key_changes_saved;
    server->set_users(users.value().users, [&, seen](std::size_t revoked) {
      if (*key_changes_saved != seen) return reload_users();
      log(LogLevel::kInfo, "SIGHUP: user database reloaded; " + std::to_string(revoked) + " login(s) revoked");
    });
  };
  auto reload = [&] {
    reload_users();
    auto sealer = load_sealer(cfg, l.owners);
    if (!sealer) log(LogLevel::kError, "SIGHUP: keeping the old handle keys: " + sealer.error());
    else if (files) files->set_sealer(sealer.value());
  };

  rt.sigcb(SIGTERM, Closure([&] { drain("SIGTERM"); }, 0));
  rt.sigcb(SIGINT, Closure([&] { drain("SIGINT"); }, 0));
  rt.sigcb(SIGHUP, Closure([&] { reload(); }, 0));
  if (!cfg.cpu_report.empty()) rt.sigcb(SIGUSR1, Closure([&] { report_cpu(); }, 0));
  ::signal(SIGPIPE, SIG_IGN);

  rt.cpucb(Closure(
      [&] {
        backend->start(nfs::Done<nfs::FileHandle>(
            [&](nfs::Result<nfs::FileHandle> root) {
              if (!root.ok())
                return fail("cannot mount the backend " + backend->describe() + ": " + root.error.describe());
              FileServerOptions fo;
              fo.lease = cfg.lease;
              fo.invalidate_timeout = cfg.invalidate_timeout;
              fo.max_leases_per_connection = cfg.max_leases_per_connection;
              fo.anonymous_uid = cfg.anonymous_uid;
              fo.anonymous_gid = cfg.anonymous_gid;
              fo.data_cache_bytes = cfg.data_cache;
              fo.data_cache_revalidate = cfg.data_cache_revalidate;
              fo.log = log.sink(LogLevel::kWarn);
              files = FileServer::create(fo, backend, l.sealer, root.value);
              {
                std::lock_guard lk(root_check->mu);
                root_check->files = files;
              }
              sfs::SecureServerOptions so;
              so.key = server_key;
              so.users = l.users;
              so.programs.push_back(files->program());
              so.handshake_timeout = cfg.handshake_timeout;
              so.idle_timeout = cfg.idle_timeout;
              so.progress_timeout = cfg.progress_timeout;
              so.max_connections = cfg.max_connections;
              so.max_connections_per_source = cfg.max_connections_per_source;
              so.handshake_limits.per_source_per_second = cfg.handshakes_per_source;
              so.handshake_limits.per_source_burst = cfg.handshake_burst_per_source;
              so.handshake_limits.max_in_progress = cfg.max_handshakes_in_progress;
              so.handshake_limits.max_in_progress_per_source = cfg.max_handshakes_in_progress_per_source;
              so.allow_anonymous = cfg.allow_anonymous;
              so.max_calls_in_progress = cfg.max_calls_per_connection;
              so.max_failed_logins = cfg.max_failed_logins;
              if (cfg.user_key_changes) {
                // On color 0 (the server's shared color), as reload.
                so.save_key_change = [changes = l.changes, path = key_changes_path(cfg),
                                       saved = key_changes_saved](const sfs::KeyChange& c) {
                  sfs::KeyChanges next = *changes;
                  next.set(c);
                  if (sfs::Status s = next.save(path); !s) return s;
                  *changes = std::move(next);
                  ++*saved;
                  return sfs::Status{};
                };
              }
              so.transport.max_queued_output_bytes = cfg.max_queued_bytes_per_connection;
              so.run_handshake = handshakes.runner();
              so.log = log.sink(LogLevel::kInfo);
              std::weak_ptr<FileServer> weak_files = files;
              so.on_close = [weak_files](std::uint64_t id) {
                if (auto f = weak_files.lock()) f->connection_closed(id);
              };
              server = sfs::SecureServer::create(std::move(so));
              if (int err = server->listen(cfg.listen_address, cfg.port)) {
                return fail("cannot listen on " + cfg.listen_address + ":" + std::to_string(cfg.port) + ": " +
                            std::strerror(err) +
                            (err == EADDRINUSE ? " (another process uses the port; pick another with --listen)" : ""));
              }
              files->start();
              log(LogLevel::kInfo, "serving " + backend->describe() + " on " + cfg.listen_address + ":" +
                                       std::to_string(cfg.port) + " as " + name);
              if (hooks.on_ready) hooks.on_ready(name);
            },
            0));
      },
      0));
  const int rc = rt.run();
  (void)rc;
  if (server) server->close();
  if (files) files->stop();
  return exit_code;
}

}  // namespace sfsd
