// client_impl.h: the inside of NfsClient. Private to src/nfs/.
//
// Where things are
//   client.cc      the public face: hops to the client's color, stats, epoch
//   connection.cc  the connection: connect, mount, reconnect, probe, and
//                  driving libnfs's sockets from the event loop
//   calls.cc       the calls: queues and caps, issue with per-call
//                  credentials, replies, deadlines, JUKEBOX, and what a
//                  lost connection means for each call in flight
//   procedures_read.cc, procedures_write.cc
//                  the 21 NFSv3 procedures (encode, decode, resend policy)
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
//   Call joins `active_` and `waiting_`; pump() sends waiting calls, in
//   order, while the connection is Ready and the caps (max_in_flight,
//   max_bytes_in_flight) allow. Issued, libnfs holds its pointer
//   (in_libnfs) until libnfs calls back: on success the reply is decoded
//   and handed to the caller's callback under the callback's color; on an
//   error the Call is parked in `errored_` and classified after
//   rpc_service() returns (connection lost -> resend or kConnectionLost;
//   otherwise kRpc). The 100 ms tick fails calls past their deadline; a
//   timed-out call still held by libnfs is freed when libnfs lets go of it.
//
// Lost connections
//   Each call in flight at a loss counts it (Call::losses; a reply resets
//   it). Resend-safe calls go to `suspects_`, which pump() sends one at a
//   time ahead of `waiting_`; a call in flight at a second loss fails. So a
//   call that breaks the connection (a reply too large for libnfs, a server
//   crash it triggers) does so at most twice, and the second time it is the
//   only suspect in flight: the others are not blamed.
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

  // Which queue holds the call (it may also be finished, i.e. dropped lazily).
  enum class Queue : std::uint8_t { kNone, kWaiting, kSuspect, kDelayed };

  const char* name;
  Cred cred;
  std::chrono::milliseconds timeout;
  bool resend_safe;
  std::uint64_t cost_bytes = 0;  // counted against max_bytes_in_flight

  NfsClient::Impl* owner = nullptr;
  std::uint64_t seq = 0;  // submission order, kept across resends
  std::uint64_t epoch = 0;  // of the connection it was last sent on
  unsigned jukebox_retries = 0;
  Clock::time_point deadline{};
  unsigned resends = 0;
  unsigned losses = 0;     // connection losses it was in flight at, since its last reply
  bool finished = false;   // the caller's callback has been scheduled
  bool in_libnfs = false;  // libnfs holds this pointer as private_data
  Queue queue = Queue::kNone;
  std::string rpc_error;   // libnfs's message, while parked in errored_
  Call* prev = nullptr;    // active_ list
  Call* next = nullptr;
};

// A Call whose issue and decode steps are lambdas (see procedures_*.cc).
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
    r.epoch = epoch;
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
  std::uint64_t epoch() const { return epoch_.load(std::memory_order_acquire); }

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
    bool connecting = false;  // rpc_connect_port_async sent, its callback not yet run
  };

  // ---- client.cc
  bool on_color() const;
  void run_on_color(Closure fn);

  // ---- calls.cc: all under opts.color.
  void accept(Call* c);
  void enqueue(Call* c, Call::Queue q, bool front);
  void pump();                    // send what the caps allow
  bool fits(const Call* c) const;
  void issue(Call* c);
  bool set_cred(const Cred& cred, std::string* why);
  rpc_context* new_context(const Cred& cred, std::string* why);  // with cred's AUTH
  void finish(Call* c, Error e);  // fail + unlink + free if possible
  void release(Call* c);          // free if nobody holds it any more
  void link_active(Call* c);
  void unlink_active(Call* c);
  void fail_waiting(Failure f, const std::string& why);
  void fail_everything(const Error& e);  // close
  void calls_lost(const std::string& why);  // sort errored_ into resend / fail
  void check_deadlines(Clock::time_point now);
  void retry_later(Call* c);   // NFS3ERR_JUKEBOX: the server asks to try again
  void on_retry_timer(Call* c);
  static void on_reply(rpc_context* rpc, int status, void* data, void* priv);

  // ---- connection.cc: all under opts.color.
  void start_cycle();
  void start_mount();
  void start_nfs_connect();
  void became_ready();
  void cycle_failed(const std::string& why);
  void connection_lost(const std::string& why);
  void close_now();
  void send_now();  // pump, write what libnfs queued, watch the socket
  void on_fd(int which, std::uint64_t gen, int revents);
  void after_service(int which, int rc);
  void update_events(int which);
  void teardown(int which);
  Conn& conn(int which) { return which == kMountConn ? mnt_ : nfs_; }
  std::string source_port_problem(rpc_context* rpc) const;
  void arm_tick();
  void on_tick();
  void check_stall(Clock::time_point now);
  static void on_probe_reply(rpc_context* rpc, int status, void* data, void* priv);
  static void on_mount_connected(rpc_context* rpc, int status, void* data, void* priv);
  static void on_mnt_reply(rpc_context* rpc, int status, void* data, void* priv);
  static void on_nfs_connected(rpc_context* rpc, int status, void* data, void* priv);

  State state_ = State::kIdle;
  Conn mnt_, nfs_;
  Cred cur_cred_;
  bool cred_set_ = false;
  Call* active_head_ = nullptr;  // unfinished calls, any state
  std::deque<Call*> waiting_;    // not yet sent, in order (finished ones dropped lazily)
  std::deque<Call*> suspects_;   // in flight at a loss: resent one at a time, by seq
  Call* suspect_in_flight_ = nullptr;
  std::size_t queued_live_ = 0;  // unfinished calls in waiting_ and suspects_
  std::vector<Call*> errored_;   // libnfs reported an error during rpc_service
  std::vector<Call*> delayed_;   // waiting out a JUKEBOX delay
  std::uint64_t next_seq_ = 1;
  std::size_t nactive_ = 0;
  std::size_t in_flight_ = 0;              // calls libnfs holds on nfs_
  std::uint64_t bytes_in_flight_ = 0;      // their cost_bytes
  Clock::time_point last_progress_{};      // last reply, or when in_flight_ left 0
  bool probe_out_ = false;                 // a NULL probe awaits its reply
  Clock::time_point probe_sent_{};         // when the first unanswered probe left
  bool in_reconnect_cb_ = false;           // opts.on_reconnect is running

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
  std::atomic<std::uint64_t> epoch_{0};  // any thread (written under opts.color)
  struct AtomicStats {
    std::atomic<std::uint64_t> calls{0}, resent{0}, timeouts{0}, connects{0}, disconnects{0},
        stalls{0}, probes{0}, rejected{0};
  } stats_;  // any thread
};

// Shared by the .cc files.
std::string ms_string(std::chrono::milliseconds d);
std::string last_error(rpc_context* rpc);  // libnfs's message, or a fallback

}  // namespace asmp::nfs
