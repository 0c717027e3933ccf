// client_impl.h: the inside of NfsClient. Private to src/nfs/.
//
// Protocol (who touches what)
//   Everything below runs under opts.color, on whichever worker that color
//   lives on, except the members marked "any thread". libnfs is only ever
//   entered from this color, and never re-entered: libnfs callbacks only
//   record results, and all decisions (complete, resend, reconnect, tear a
//   context down) are taken after rpc_service() has returned.
//
// Life of a call
//   A public method builds a Call (arguments copied in C++ form, so that the
//   call can be encoded again after a reconnect) and hops to the color. The
//   Call joins `active_` and is either issued at once (Ready) or queued in
//   `waiting_` (not connected). Issued, libnfs holds its pointer
//   (in_libnfs) until libnfs calls back: on success the reply is decoded
//   and handed to the caller's callback under the callback's color; on an
//   error the Call is parked in `errored_` and classified after
//   rpc_service() returns (connection lost -> resend or kConnectionLost;
//   otherwise kRpc). The 100 ms tick fails calls past their deadline; a
//   timed-out call still held by libnfs is freed when libnfs lets go of it.
//
// Connection states
//   kIdle -> kMounting (connect MOUNT port, MNT) -> kConnecting (connect NFS
//   port, NULL) -> kReady. A failure while mounting or connecting goes to
//   kBackoff (timer) and back to kMounting, until give_up_after has passed
//   since the outage began: then kDown, and every waiting call gets
//   kUnavailable. A call made in kDown starts a fresh cycle.
#pragma once

// libnfs's headers are C; they must come first and only here (they define
// global names like UNSTABLE and TRUE that must not leak into callers).
#include <nfsc/libnfs.h>
#include <nfsc/libnfs-raw.h>
#include <nfsc/libnfs-raw-mount.h>
#include <nfsc/libnfs-raw-nfs.h>

#include <atomic>
#include <deque>
#include <mutex>
#include <string>
#include <vector>

#include "asmp/nfs.h"

namespace asmp::nfs {

// One NFS call, from submission until its callback has been scheduled.
class Call {
 public:
  Call(const char* proc, const CallOptions& o, bool resend_ok)
      : name(proc), cred(o.cred), timeout(o.timeout), resend_safe(resend_ok) {}
  virtual ~Call() = default;

  // Encodes the call and queues it on rpc (libnfs copies the arguments).
  virtual int issue(rpc_context* rpc, rpc_cb cb, void* priv) = 0;
  // Decodes libnfs's reply and schedules the caller's callback.
  virtual void complete(Runtime& rt, void* reply) = 0;
  // Schedules the caller's callback with an error.
  virtual void fail(Runtime& rt, Error e) = 0;

  const char* name;
  Cred cred;
  std::chrono::milliseconds timeout;
  bool resend_safe;

  NfsClient::Impl* owner = nullptr;
  std::uint64_t seq = 0;  // submission order, kept across resends
  unsigned jukebox_retries = 0;
  Clock::time_point deadline{};
  unsigned resends = 0;
  bool finished = false;   // the caller's callback has been scheduled
  bool in_libnfs = false;  // libnfs holds this pointer as private_data
  bool queued = false;     // in waiting_ or delayed_
  std::string rpc_error;   // libnfs's message, while parked in errored_
  Call* prev = nullptr;    // active_ list
  Call* next = nullptr;
};

// A Call whose issue and decode steps are lambdas (see procedures.cc).
template <class T, class IssueFn, class DecodeFn>
class ProcCall final : public Call {
 public:
  ProcCall(const char* proc, const CallOptions& o, bool resend_ok, Done<T> done, IssueFn issue,
           DecodeFn decode)
      : Call(proc, o, resend_ok),
        done_(std::move(done)),
        issue_(std::move(issue)),
        decode_(std::move(decode)) {}

  int issue(rpc_context* rpc, rpc_cb cb, void* priv) override { return issue_(rpc, cb, priv); }
  void complete(Runtime& rt, void* reply) override { deliver(rt, decode_(reply)); }
  void fail(Runtime& rt, Error e) override {
    Result<T> r;
    r.error = std::move(e);
    deliver(rt, std::move(r));
  }

 private:
  void deliver(Runtime& rt, Result<T> r) {
    finished = true;
    color_t c = done_.color();
    rt.cpucb(Closure(
        [d = std::move(done_), r = std::move(r)]() mutable { d(std::move(r)); }, c));
  }

  Done<T> done_;
  IssueFn issue_;
  DecodeFn decode_;
};

template <class T, class IssueFn, class DecodeFn>
std::unique_ptr<Call> make_call(const char* proc, const CallOptions& o, bool resend_safe,
                                Done<T> done, IssueFn issue, DecodeFn decode) {
  return std::make_unique<ProcCall<T, IssueFn, DecodeFn>>(proc, o, resend_safe, std::move(done),
                                                          std::move(issue), std::move(decode));
}

class NfsClient::Impl : public std::enable_shared_from_this<NfsClient::Impl> {
 public:
  explicit Impl(NfsOptions o);
  ~Impl();

  // Any thread: hands the call to the client's color.
  void submit(std::unique_ptr<Call> call);
  // Any thread.
  void mount(Done<FileHandle> done);
  void close();              // any thread; hops
  void disconnect_for_test();  // any thread; hops
  FileHandle root() const;
  NfsStats stats() const;

  const NfsOptions opts;
  Runtime& rt;

 private:
  enum class State { kIdle, kMounting, kConnecting, kReady, kBackoff, kDown, kClosed };
  enum Which : int { kMountConn = 0, kNfsConn = 1 };
  struct Conn {
    rpc_context* rpc = nullptr;
    int fd = -1;
    unsigned ops = 0;       // Selop bits registered with the runtime
    std::uint64_t gen = 0;  // bumped on teardown; stale fd callbacks check it
  };

  // All below: under opts.color.
  bool on_color() const;
  void run_on_color(Closure fn);
  void accept(Call* c);
  void issue(Call* c);
  void finish(Call* c, Error e);  // fail + unlink + free if possible
  void release(Call* c);          // free if nobody holds it any more
  void link_active(Call* c);
  void unlink_active(Call* c);

  void start_cycle();
  void start_mount();
  void start_nfs_connect();
  void became_ready();
  void cycle_failed(const std::string& why);
  void connection_lost(const std::string& why);
  void fail_waiting(Failure f, const std::string& why);
  void close_now();

  void on_fd(int which, std::uint64_t gen, int revents);
  void after_service(int which, int rc);
  void update_events(int which);
  void teardown(int which);
  Conn& conn(int which) { return which == kMountConn ? mnt_ : nfs_; }
  rpc_context* new_context(const Cred& cred);
  void set_cred(const Cred& cred);

  void arm_tick();
  void on_tick();
  void retry_later(Call* c);   // NFS3ERR_JUKEBOX: the server asks to try again
  void on_retry_timer(Call* c);

  static void on_reply(rpc_context* rpc, int status, void* data, void* priv);
  static void on_mount_connected(rpc_context* rpc, int status, void* data, void* priv);
  static void on_mnt_reply(rpc_context* rpc, int status, void* data, void* priv);
  static void on_nfs_connected(rpc_context* rpc, int status, void* data, void* priv);

  State state_ = State::kIdle;
  Conn mnt_, nfs_;
  Cred cur_cred_;
  bool cred_set_ = false;
  Call* active_head_ = nullptr;  // unfinished calls, any state
  std::deque<Call*> waiting_;    // accepted while not Ready, in order
  std::vector<Call*> errored_;   // libnfs reported an error during rpc_service
  std::vector<Call*> delayed_;   // waiting out a JUKEBOX delay (queued == true)
  std::uint64_t next_seq_ = 1;
  std::size_t nactive_ = 0;
  std::size_t in_flight_ = 0;              // calls libnfs holds on nfs_
  Clock::time_point last_progress_{};      // last reply, or when in_flight_ left 0

  Done<FileHandle> mount_done_;  // the first mount()'s callback, until it runs
  // Results the libnfs connect/MNT callbacks leave for after_service().
  enum class Step { kPending, kOk, kFailed } mount_step_ = Step::kPending, nfs_step_ = Step::kPending;
  std::string step_error_;
  FileHandle mounted_root_;

  Clock::time_point cycle_deadline_{};  // of the current connect + mount attempt
  Clock::time_point outage_start_{};
  std::chrono::milliseconds backoff_{0};
  bool tick_armed_ = false;
  bool ever_connected_ = false;

  mutable std::mutex root_mu_;  // any thread
  FileHandle root_;
  struct AtomicStats {
    std::atomic<std::uint64_t> calls{0}, resent{0}, timeouts{0}, connects{0}, disconnects{0},
        stalls{0};
  } stats_;  // any thread
};

}  // namespace asmp::nfs
