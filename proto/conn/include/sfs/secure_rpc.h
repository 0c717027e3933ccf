// secure_rpc.h: an encrypted, authenticated Sun RPC connection: the
// handshake (handshake.h) run over SFS_CONNECT, the record layer
// (channel.h) installed as the transport's RecordFilter, and user login
// (login.h) over SFS_LOGIN. docs/protocol.md, "Connection setup", gives the
// sequence and the exact record boundary.
//
// Contract
//   - SecureRecordFilter seals every outgoing record and opens every
//     incoming one, on the transport's color (so N connections' crypto runs
//     on up to N workers; it shares nothing with other connections and
//     takes no lock). A record that fails (altered, replayed, reordered,
//     truncated, oversized, exhausted) makes it log the reason and return
//     false, and the transport closes the connection. It also runs the
//     in-band rekey with a fresh DH (docs/protocol.md 4.1): the client's
//     filter starts one per ChannelOptions::rekey_after_*, the server's
//     answers; control records ride in front of ordinary ones.
//   - secure_connect(): TCP to the server, SFS_CONNECT carrying handshake
//     message 1 in the clear, reply with message 2 in the clear; the client
//     checks it (HOSTID included) and turns its filter on in the reply's
//     callback, on the connection's color, before any later record is
//     read. Every record after that is sealed. The callback runs once,
//     under its own color, with a SecureSession or a message for a person.
//   - SecureSession::login(): SFS_LOGIN over the sealed connection; the
//     answer is an auth number that calls carry with auth_number_cred().
//   - SecureServer: accepts, gives each connection a color of its own
//     (1, 2, ...), answers SFS_CONNECT under that color, turns the filter on
//     right after queueing the (clear) reply, then serves SFS_LOGIN and the
//     given programs. Before the handshake a gate filter passes only an
//     SFS_CONNECT call, of at most HandshakeLimits::max_record bytes;
//     anything else closes the connection with no reply, and so does a
//     second SFS_CONNECT. HandshakeLimits bounds the handshakes in progress
//     and their rate per source. Auth tables (one per
//     connection) and the user database lookups run under the shared color
//     (0); programs that want the caller's identity are dispatched there.
//     A connection that has not completed the handshake within
//     handshake_timeout of accept is closed (a failed handshake's reply is
//     left to drain until then).
//   - Thread safety: SecureServer's and SecureSession's methods may be
//     called from any thread. Filters belong to one transport.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "asmp/rpc.h"
#include "sfs/channel.h"
#include "sfs/handshake.h"
#include "sfs/key_change.h"
#include "sfs/keys.h"
#include "sfs/login.h"
#include "sfs/names.h"
#include "sfs/rekey.h"
#include "sfs/result.h"

namespace sfs {

// Where log lines go (one line, no newline). Default: stderr, "sfs: ...".
using LogSink = std::function<void(const std::string&)>;
void log_to_stderr(const std::string& line);

// ---- the record filter ---------------------------------------------------------

// The in-band rekey with a fresh DH a filter takes part in
// (docs/protocol.md 4.1). Only the client starts one; the server answers.
struct RekeyOptions {
  Role role = Role::kClient;
  noise::Hash chain{};  // SessionKeys::rekey_chain
  // Client: start a rekey once this many records have gone either way since
  // the last one (0: never on count), or this long after it (<= 0: never
  // on time).
  std::uint64_t after_records = 0;
  std::chrono::milliseconds after_time{0};
};

class SecureRecordFilter : public asmp::rpc::RecordFilter {
 public:
  // `alg` is the channel's AEAD; `peer` names the other end in log lines
  // ("server 127.0.0.1:4000").
  SecureRecordFilter(SecureChannel channel, AeadAlg alg, std::string peer,
                     LogSink log = log_to_stderr, RekeyOptions rekey = {});
  ~SecureRecordFilter() override;

  // Plaintext record -> section 4 record (u32 L || ciphertext || tag),
  // preceded by a control record when a rekey message is due.
  bool seal(asmp::rpc::RecordBuf& record) override;
  // The same for record || tail, the tail read where it is (a READ's data).
  bool seal_tail(asmp::rpc::RecordBuf& record, const asmp::rpc::RecordTail& tail) override;
  // Section 4 record(s) -> plaintext; false (and a log line) if not
  // authentic, or a control record breaks the rekey state machine.
  bool open(asmp::rpc::RecordBuf& record) override;
  // Rekeys completed (each side counts its own). Any thread.
  std::uint64_t rekeys() const { return rekeys_.load(std::memory_order_relaxed); }

  // Why the filter refused a record (kOk if it has not). On the
  // transport's color, e.g. in the close handler.
  ChannelError failure() const { return failure_; }
  const std::string& failure_message() const { return failure_message_; }
  AeadAlg aead() const { return alg_; }
  AeadImpl impl() const { return channel_.send.impl(); }

 private:
  bool fail(ChannelError e, const char* direction, std::uint64_t seq);
  bool fail_rekey(const std::string& why, std::uint64_t seq);
  // The control message to send before the next record, if any.
  std::optional<ControlMessage> next_control();
  // After it went out: the send key switches for ACK and DONE.
  bool sent_control(const ControlMessage& m);
  bool received_control(const ControlMessage& m, std::uint64_t seq);
  // seal() and seal_tail(): the plaintext is the pieces' concatenation.
  bool seal_pieces(asmp::rpc::RecordBuf& record, std::span<const std::span<const std::uint8_t>> pieces);

  // Rekey state (docs/protocol.md 4.1). Client: kIdle -> kAwaitAck (REKEY
  // sent) -> kDonePending (ACK received, receive key switched) -> kIdle
  // (DONE sent, send key switched). Server: kIdle -> kAckPending (REKEY
  // received) -> kAwaitDone (ACK sent, send key switched) -> kIdle (DONE
  // received, receive key switched).
  enum class RekeyStage : std::uint8_t { kIdle, kAwaitAck, kDonePending, kAckPending, kAwaitDone };
  RekeyOptions rekey_;
  RekeyStage stage_ = RekeyStage::kIdle;
  Ephemeral mine_;                // this side's ephemeral of the rekey in progress
  Key32 peer_public_{};           // the other side's (server: the client's)
  std::optional<RekeyKeys> next_; // keys derived, not yet all installed
  std::uint64_t records_since_ = 0;
  std::chrono::steady_clock::time_point since_;
  std::atomic<std::uint64_t> rekeys_{0};

  SecureChannel channel_;
  AeadAlg alg_;
  std::string peer_;
  LogSink log_;
  ChannelError failure_ = ChannelError::kOk;
  std::string failure_message_;
};

// How both ends build their filter.
struct ChannelOptions {
  AeadImplChoice impl = AeadImplChoice::kAuto;  // kAuto: the faster one here
  ChannelConfig config;
  // The client starts a rekey with a fresh DH after this many records (in
  // both directions together) or this long since the handshake or the last
  // rekey, whichever comes first (docs/protocol.md 4.1; WireGuard's
  // REKEY_AFTER_TIME is 2 minutes). Tests lower the count. 0: never.
  std::uint64_t rekey_after_records = std::uint64_t{1} << 30;
  std::chrono::milliseconds rekey_after_time{120000};
  // Test hook: wraps the filter before it is installed (e.g. to observe
  // which worker runs the crypto). Null: installed as is.
  std::function<std::shared_ptr<asmp::rpc::RecordFilter>(std::shared_ptr<asmp::rpc::RecordFilter>)>
      wrap_filter;
};

// The credential a call carries to act as a logged-in user.
asmp::rpc::Auth auth_number_cred(std::uint32_t auth_number);

// ---- client --------------------------------------------------------------------

struct SecureConnectOptions {
  SelfCertName server;     // whom to reach; the handshake checks its HOSTID
  std::string address;     // numeric address to dial; empty: server.location.host
  std::uint16_t port = 0;  // port to dial; 0: server.location.port
  std::vector<AeadAlg> offer = default_cipher_offer();
  ChannelOptions channel;
  asmp::color_t color = 1;  // the connection's color (its records and crypto)
  // Programs the server may call on this connection (e.g. SFS_NFSCB); they
  // are refused until the handshake is done.
  std::vector<asmp::rpc::Program> programs;
  asmp::rpc::TransportOptions transport;
  std::chrono::milliseconds handshake_timeout{10000};
  // Runs once, on the connection's color, when the connection closes,
  // with a sentence saying why.
  std::function<void(const std::string& why)> on_close;
  LogSink log = log_to_stderr;
};

class SecureSession {
 public:
  struct State;
  explicit SecureSession(std::shared_ptr<State> s) : s_(std::move(s)) {}

  const std::shared_ptr<asmp::rpc::Connection>& connection() const;
  const SessionId& session_id() const;
  AeadAlg aead() const;
  AeadImpl impl() const;
  const ServerPublicKey& server_key() const;
  std::string server_name() const;  // "@host%port,hostid"

  // Logs `user` in with `key`: cb gets the auth number, or why the server
  // refused. seqno 0: the next number of this session (1, 2, ...); tests
  // pass one to replay it. Any thread; cb runs under its own color.
  void login(const UserKey& key, std::string user, asmp::Callback<void(Result<std::uint32_t>)> cb,
             std::uint64_t seqno = 0) const;
  // Sends a login request signed elsewhere (by the user's agent, which
  // holds the key): encode_login_request(key, user, session_id(), seqno)
  // with seqno from next_seqno(). `user` only names it in messages.
  void login_signed(Bytes request, std::string user,
                    asmp::Callback<void(Result<std::uint32_t>)> cb) const;
  std::uint64_t next_seqno() const;
  // Replaces the key of `user`, logged in on this session as auth number
  // `auth`, with new_key (SFS_CHANGEKEY; the request is signed by new_key).
  // cb gets nothing, or why the server refused. Any thread.
  void change_key(const UserKey& new_key, std::string user, std::uint32_t auth,
                  asmp::Callback<void(Status)> cb) const;
  // Sends a request built elsewhere (tests send forged ones).
  void change_key_signed(Bytes request, std::uint32_t auth, asmp::Callback<void(Status)> cb) const;
  // Forgets an auth number on the server (fire and forget).
  void logout(std::uint32_t auth_number) const;
  void close() const;

 private:
  std::shared_ptr<State> s_;
};

// Connects, runs the handshake and turns the channel on. cb runs once,
// under its own color.
void secure_connect(SecureConnectOptions opts, asmp::Callback<void(Result<SecureSession>)> cb);

// ---- server --------------------------------------------------------------------

// Who is calling, as a program served with dispatch_as_user sees it.
struct Caller {
  std::uint64_t conn_id = 0;         // unique among this server's connections, never reused
  const AuthResult* user = nullptr;  // never null: the anonymous user without a login
  const std::string* peer = nullptr; // "ADDRESS:PORT" of the client
};

// A program served over secure connections. Set exactly one dispatch:
//   dispatch          on the connection's color, no identity lookup (cheap;
//                     e.g. echo, or a handler that hops by itself);
//   dispatch_as_user  on the shared color, with the identity behind the
//                     call's auth number (anonymous for none or 0). An
//                     unknown, logged-out or revoked number is refused with
//                     AUTH_ERROR / AUTH_REJECTEDCRED before it gets there;
//                     so is the anonymous user when anonymous access is off
//                     (AUTH_ERROR / AUTH_TOOWEAK).
// prepare (optional, with dispatch_as_user) runs first, on the connection's
// color, before the hop to the shared color: it may rewrite the decoded
// arguments in place (sfsd opens sealed file handles there, keeping that
// crypto off the shared color), or answer the call itself and return false.
struct SecureProgram {
  asmp::rpc::Interface iface;
  std::function<void(asmp::rpc::Call)> dispatch;
  std::function<void(asmp::rpc::Call, const Caller& who)> dispatch_as_user;
  std::function<bool(asmp::rpc::Call&)> prepare;
  // Procedures served to callers without a login even when anonymous access
  // is off (e.g. what a client needs before its users log in).
  std::vector<std::uint32_t> open_procs;
};

// What a client may cost a server before its handshake is done
// (docs/security.md, "Before the handshake", gives each default's reason).
struct HandshakeLimits {
  // Per source (an IPv4 address, or an IPv6 /64): SFS_CONNECTs answered
  // with public-key work, a token bucket refilled at this rate holding at
  // most `per_source_burst` (at least 1). An SFS_CONNECT finding it empty
  // is answered SFS_CONNECT_BUSY, before any DH, and the connection closed.
  // <= 0: no rate limit.
  double per_source_per_second = 20;
  unsigned per_source_burst = 64;
  // Connections accepted whose handshake has not yet succeeded or failed,
  // in all and per source; one more is closed at accept. 0: no limit.
  std::size_t max_in_progress = 256;
  std::size_t max_in_progress_per_source = 64;
  // Sources remembered (buckets and counts); when it is full of sources
  // that are not idle, connections from new sources are closed at accept.
  std::size_t max_sources = 16384;
  // Largest record accepted before the handshake (SFS_CONNECT's call with
  // the largest host, HOSTID and hello is 1404 bytes); a larger one closes
  // the connection from its record mark alone. After the handshake
  // transport.max_record applies.
  std::size_t max_record = 2048;
};

struct SecureServerOptions {
  std::shared_ptr<const ServerKeyOps> key;  // a ServerKey, or sfsd's key holder
  std::shared_ptr<const UserDb> users;  // null: every login is refused
  ServerHandshakeConfig handshake;
  ChannelOptions channel;
  // Answer SFS_CONNECT with NOSUCHHOST when the client's HOSTID is not this
  // key's at the location it dialled. (Tests turn it off to play an
  // impostor and see the client's own check.)
  bool refuse_other_hostids = true;
  std::vector<SecureProgram> programs;
  // A connection whose handshake has not succeeded this long after accept
  // (silent, failed, or refused) is closed. <= 0: never.
  std::chrono::milliseconds handshake_timeout{10000};
  // An open connection that makes no call for this long is closed (its
  // client reconnects when it needs to). <= 0: never.
  std::chrono::milliseconds idle_timeout{0};
  // A record that has been arriving for this long (a peer trickling bytes)
  // closes the connection. <= 0: never.
  std::chrono::milliseconds progress_timeout{30000};
  // Connections beyond these counts are closed as soon as they are accepted
  // (and the refusal is logged, at most once a second). 0: no limit.
  std::size_t max_connections = 0;
  std::size_t max_connections_per_source = 0;  // per client address
  // Calls without a login (dispatch_as_user programs only): allowed, as the
  // anonymous user, or refused with AUTH_TOOWEAK.
  bool allow_anonymous = true;
  // A connection whose logins fail this many times is closed (each failed
  // login costs the server a signature check). 0: never.
  unsigned max_failed_logins = 8;
  // Key changes (SFS_CHANGEKEY, sfs/key_change.h): a logged-in user
  // replacing their own key. Null: every request is refused ("turned off").
  // Runs on the shared color once a change is verified and allowed, and
  // must make it durable before it returns (sfsd writes its key change
  // file); an error refuses the change, which is then not applied. After
  // it, later logins need the new key; logins made with the old one stay.
  std::function<Status(const KeyChange&)> save_key_change;
  HandshakeLimits handshake_limits;
  // Where SFS_CONNECT's handshake (the DH and the signature with `key`) is
  // computed. Null: on the connection's color. A key that asks another
  // process (sfsd's key holder) may wait for it, up to seconds if that
  // process stalls: give a thread of its own (sfs::SerialThread::runner())
  // so that no worker waits. The result comes back to the connection's
  // color; meanwhile any other record on the connection closes it.
  std::function<void(std::function<void()>)> run_handshake;
  asmp::color_t shared_color = 0;  // auth tables, uid map
  // Per connection: calls being handled (beyond it the connection is not
  // read until half have been answered), and transport limits (among them
  // max_queued_output_bytes: replies queued and not yet sent).
  std::size_t max_calls_in_progress = 64;
  asmp::rpc::TransportOptions transport;
  // Runs on the shared color once for every accepted connection, after it
  // closed (whatever its stage), with its Caller::conn_id.
  std::function<void(std::uint64_t conn_id)> on_close;
  LogSink log = log_to_stderr;
};

struct SecureServerStats {
  std::uint64_t accepted = 0;
  std::uint64_t established = 0;        // handshakes completed
  std::uint64_t handshake_failures = 0;
  std::uint64_t logins = 0;             // accepted
  std::uint64_t login_refusals = 0;
  std::uint64_t filter_rejections = 0;  // connections closed by the channel
  std::uint64_t refused_over_limit = 0; // closed at accept: too many connections
  std::uint64_t idle_closed = 0;        // closed by idle_timeout
  std::uint64_t logins_revoked = 0;     // by set_users()
  std::uint64_t stalled_closed = 0;     // closed by progress_timeout
  // Handshake limits (HandshakeLimits): SFS_CONNECTs answered BUSY (rate),
  // connections closed at accept (too many in progress), and connections
  // whose records before the handshake were not an SFS_CONNECT call.
  std::uint64_t handshakes_rate_limited = 0;
  std::uint64_t refused_handshakes_in_progress = 0;
  std::uint64_t prehandshake_rejected = 0;
  std::uint64_t key_changes = 0;          // accepted SFS_CHANGEKEYs
};

class SecureServer : public std::enable_shared_from_this<SecureServer> {
 public:
  static std::shared_ptr<SecureServer> create(SecureServerOptions opts);
  ~SecureServer();

  // Listens on host (numeric) and port (0: ephemeral). 0 or an errno value.
  int listen(const std::string& host, std::uint16_t port = 0);
  std::uint16_t port() const noexcept { return port_; }
  // Stops accepting new connections; open ones go on. Any thread.
  void stop_accepting();
  // Stops accepting and closes every connection (soon). Any thread. With a
  // flush time, each connection stops reading and first sends the replies
  // it has queued (up to that long), so a drain loses no answered call;
  // connections() reaches 0 as they finish.
  void close(std::chrono::milliseconds flush = std::chrono::milliseconds(0));
  // Replaces the user database (e.g. on SIGHUP) without dropping
  // connections: later logins use the new one, and logins made with a key
  // that is no longer listed (or listed under another name) are revoked, so
  // calls carrying their auth numbers are refused. Applied on the shared
  // color; done (optional) runs there afterwards with the number revoked.
  void set_users(std::shared_ptr<const UserDb> users,
                 std::function<void(std::size_t revoked)> done = nullptr);
  std::size_t connections() const;
  SecureServerStats stats() const;

  struct Shared;
  struct Conn;

 private:
  explicit SecureServer(SecureServerOptions opts);
  void serve_fd(int fd);
  // Closes a connection at accept because of a HandshakeLimits limit.
  void refuse_at_accept(int fd, const std::string& peer, const std::string& why);
  void close_listener();  // on the shared color
  // Under mu_: room for one more connection from `source`? Counts it if so.
  bool admit(const std::string& source);

  std::shared_ptr<Shared> shared_;
  asmp::Runtime* const rt_;
  std::shared_ptr<asmp::rpc::Acceptor> acceptor_;
  std::uint16_t port_ = 0;
  std::atomic<asmp::color_t> next_color_{0};
  // Only at accept and close, never per record; never held while starting
  // a transport (fdcb may wait for a callback whose close handler takes it).
  mutable std::mutex mu_;
  std::unordered_map<std::uint64_t, std::weak_ptr<asmp::rpc::Connection>> conns_;  // by Caller::conn_id
  std::unordered_map<std::string, std::size_t> per_source_;  // open connections per address
};

}  // namespace sfs
