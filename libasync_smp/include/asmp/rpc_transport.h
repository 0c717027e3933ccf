// rpc_transport.h: a TCP stream of RPC records (RFC 5531 section 11, "record
// marking") on the colored-callback runtime, with a point where a secure
// channel can transform each whole record.
//
// Contract
//   - A Transport owns one connected, non-blocking socket and has one color.
//     Every callback it makes (records, close, the filter's seal and open)
//     runs under that color, so one connection's records are handled one at
//     a time and in order, while transports of different colors proceed in
//     parallel on different workers.
//   - send(), send_response(), close() and close_after_flush() may be
//     called from any thread or color: from the transport's own color they
//     act at once, from elsewhere they hop to it (so records sent from one
//     color keep their order). Everything else (start, set_filter,
//     hold_reading, release_reading) must be called on the transport's
//     color, or before start(). The counters may be read anywhere (exact on
//     the transport's color, a recent value elsewhere).
//   - Framing: a record is one or more fragments, each led by a 4-byte
//     big-endian word (last-fragment bit + 31-bit length). A peer whose
//     record would exceed max_record bytes is disconnected as soon as the
//     fragment header announcing it arrives. The record's buffer grows with
//     the bytes that have actually arrived (what the kernel holds for the
//     socket, then geometrically) plus at most input_allowance, never with
//     what a header announces: a peer announcing 1 MiB and sending 10 bytes
//     costs at most input_allowance + 10 bytes (10 with an allowance of 0).
//   - Writes are queued and flushed with writev (many records per system
//     call) as soon as the socket takes them; reads go into a reused chunk,
//     or straight into the record being assembled when a fragment is large.
//   - Backpressure: records queued with send_response() (answers to what
//     the peer sent, e.g. RPC replies) count toward
//     max_queued_output_bytes; above it the transport stops reading (it
//     unregisters read interest and delivers no further record) until the
//     queue is back under half. So a peer that sends requests and never
//     reads the answers stalls itself, not the server. Records queued with
//     send() (this side's own requests) do not stop reading: a side waiting
//     for answers must keep reading them, or two peers with full queues
//     would wait for each other. hold_reading() lets an owner stop reading
//     for reasons of its own (e.g. too many calls in progress). Stopping
//     reading affects this transport only.
//   - on_close runs exactly once, after which no record is delivered. close()
//     drops queued output; close_after_flush() stops reading, sends what is
//     queued, then closes (bounded by a timeout).
#pragma once

#include <sys/uio.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "asmp/callback.h"
#include "asmp/runtime.h"

namespace asmp::rpc {

// A growable byte buffer whose new bytes are left uninitialized (a record of
// 1 MiB should not be zeroed before it is overwritten). Move-only. Large
// buffers are recycled through a small per-thread cache.
class RecordBuf {
 public:
  RecordBuf() = default;
  explicit RecordBuf(std::size_t capacity) { reserve(capacity); }
  RecordBuf(RecordBuf&& o) noexcept;
  RecordBuf& operator=(RecordBuf&& o) noexcept;
  RecordBuf(const RecordBuf&) = delete;
  RecordBuf& operator=(const RecordBuf&) = delete;
  ~RecordBuf();

  char* data() noexcept { return data_; }
  const char* data() const noexcept { return data_; }
  std::size_t size() const noexcept { return size_; }
  std::size_t capacity() const noexcept { return cap_; }
  bool empty() const noexcept { return size_ == 0; }

  // Keeps the first min(size, n) bytes; bytes past the old size are
  // uninitialized.
  void resize(std::size_t n);
  void reserve(std::size_t n);
  void clear() noexcept { size_ = 0; }
  void append(const void* p, std::size_t n);

 private:
  char* data_ = nullptr;
  std::size_t size_ = 0;
  std::size_t cap_ = 0;
};

// An outgoing record's last bytes, where they already are: on the wire
// (and under the seal) `bytes` and then `pad` zero bytes follow the
// record's own. `keep` holds what owns `bytes` until the record is sealed
// or copied. Made by Call::reply_with_tail, so that a READ reply's data
// goes from the buffer it was read into straight into the sealed record.
struct RecordTail {
  std::span<const char> bytes;
  std::uint32_t pad = 0;  // < 4: XDR's padding of an opaque
  std::shared_ptr<const void> keep;
  bool empty() const { return bytes.empty() && pad == 0; }
  // The pad zero bytes (a static buffer).
  std::span<const char> padding() const;
  // Appends bytes and padding to `record` (the path without a filter, and
  // the default RecordFilter::seal_tail).
  void append_to(RecordBuf& record) const;
};

// The layer point for a secure channel: it sees every whole record, on the
// transport's color, in order. seal() transforms an outgoing record in place
// (it may grow or shrink it); open() undoes that for an incoming one and
// returns false if the record is not authentic, which closes the connection.
class RecordFilter {
 public:
  virtual ~RecordFilter() = default;
  virtual bool seal(RecordBuf& record) = 0;
  // seal() of record's bytes followed by tail's; a filter that can read
  // the tail where it is overrides this (the default appends it first).
  virtual bool seal_tail(RecordBuf& record, const RecordTail& tail) {
    tail.append_to(record);
    return seal(record);
  }
  virtual bool open(RecordBuf& record) = 0;
};

struct TransportOptions {
  // Largest record accepted from the peer (sum of its fragments). The
  // default fits a 1 MiB READ or WRITE plus RPC and NFS headers and a
  // secure channel's overhead.
  std::size_t max_record = (1u << 20) + 64 * 1024;
  // Largest fragment this side sends; longer records go out as several
  // fragments. Only tests lower it.
  std::size_t max_fragment = 0x7fffffff;
  // Size of the reused read chunk.
  std::size_t read_chunk = 256 * 1024;
  // TCP_NOTSENT_LOWAT: how much unsent data the kernel may hold for this
  // socket; the rest waits in the transport's queue (0: kernel default,
  // unlimited). Measured on loopback with 1 MiB in flight, 64 KiB cut the
  // kernel's CPU per byte by a quarter (docs/rpc.md).
  std::size_t notsent_lowat = 64 * 1024;
  // Bytes a record being received may be given room for ahead of their
  // arrival. Records up to about this size then need no FIONREAD to size
  // their buffer; 0: room strictly for bytes that have arrived.
  std::size_t input_allowance = 64 * 1024;
  // Bytes of records queued with send_response() and not yet taken by the
  // kernel above which the transport stops reading, until back under half
  // (0: no limit). 8 MiB: a few maximum-size replies.
  std::size_t max_queued_output_bytes = 8u << 20;
};

// Why a transport closed.
enum class CloseReason {
  kLocal,          // close() was called
  kEof,            // the peer closed the connection
  kSocketError,    // read or write failed (errno in the second argument)
  kRecordTooLarge, // the peer announced a record above max_record
  kFilterRejected, // RecordFilter::open returned false (or seal did)
};
const char* to_string(CloseReason r);

class Transport : public std::enable_shared_from_this<Transport> {
 public:
  using RecordHandler = Callback<void(RecordBuf)>;
  using CloseHandler = Callback<void(CloseReason, int err)>;

  // Takes ownership of fd (made non-blocking here).
  static std::shared_ptr<Transport> create(int fd, color_t color, TransportOptions opts = {});
  ~Transport();
  Transport(const Transport&) = delete;
  Transport& operator=(const Transport&) = delete;

  // Starts reading. The handlers run under color() (their own colors are
  // ignored). Call once.
  void start(RecordHandler on_record, CloseHandler on_close);

  // Replaces the filter (nullptr: records pass unchanged). On the
  // transport's color only; applies to records sent and delivered after the
  // call. Calling it from the record handler switches exactly at that
  // record's boundary.
  void set_filter(std::shared_ptr<RecordFilter> filter);
  // Replaces TransportOptions::max_record for records whose first fragment
  // header is read after the call (same boundary rule as set_filter), e.g.
  // a server that accepts only small records until a handshake is done.
  // On the transport's color only.
  void set_max_record(std::size_t max_record) { max_record_ = max_record; }

  // Queues one record. Any thread. Dropped if the transport is closed or
  // closing (close_after_flush).
  // With a tail: record's bytes, then the tail's (RecordTail), sealed or
  // written together without being copied next to each other first.
  void send(RecordBuf record, RecordTail tail = {});
  // The same, for a record that answers the peer (an RPC reply): it counts
  // toward TransportOptions::max_queued_output_bytes (see the contract).
  void send_response(RecordBuf record, RecordTail tail = {});
  // Closes now (kLocal); queued output is dropped. Any thread; idempotent.
  void close();
  // Stops reading (no record is delivered after it takes effect), sends
  // everything queued so far, then closes (kLocal): the write side is shut
  // down once the queue has drained (the peer reads a clean end of stream
  // after the last record), input is read and discarded until the peer
  // closes too, so that unread input does not make the kernel reset the
  // connection and drop what was still in flight. Closes regardless after
  // `timeout`. Records sent after it are dropped. Any thread; a no-op if
  // already closed or closing. E.g. a server refusing a client: reply,
  // then close_after_flush(), and the refusal reaches the client.
  void close_after_flush(std::chrono::milliseconds timeout = std::chrono::seconds(5));

  // Stops reading until a matching release_reading() (holds nest). On the
  // transport's color. A record already being assembled stays; records
  // already read but not yet delivered are delivered after the release.
  void hold_reading();
  void release_reading();

  color_t color() const noexcept { return color_; }
  // True on the transport's color once it has closed; elsewhere a hint.
  bool closed() const noexcept;
  // Bytes queued for the socket and not yet taken by the kernel (records
  // of both kinds plus fragment headers).
  std::size_t queued_output_bytes() const noexcept;
  // Capacity of the buffer of the record being assembled from the peer.
  std::size_t input_buffer_bytes() const noexcept;
  // How long the record being received has been in progress (since its
  // first byte arrived), or nullopt between records. A peer that trickles
  // a record byte by byte (slow loris) shows here. On the transport's color.
  std::optional<Clock::duration> partial_record_age() const;
  // True while the transport is not reading (held, output above the limit,
  // or closing).
  bool reading_stopped() const noexcept;
  const TransportOptions& options() const noexcept { return opts_; }
  // True when the calling thread runs a callback of this transport's color.
  bool on_own_color() const noexcept;

 private:
  struct FdGuard;
  Transport(int fd, color_t color, TransportOptions opts);

  void on_readable();
  void on_writable();
  void enqueue(RecordBuf record, bool response, const RecordTail& tail = {});
  void flush();
  void shutdown(CloseReason why, int err);
  bool parse();
  bool take_header(std::size_t in_chunk);
  bool fragment_done();
  // Reading: may it read and deliver now? Registers or unregisters read
  // interest to match; a resume task finishes the chunk first.
  bool may_read() const noexcept;
  void update_reading();
  void resume_reading();
  // Makes room in record_ for the body still to come, as far as bytes have
  // arrived (FIONREAD) or the record has already grown; returns the room.
  std::size_t grow_record();
  void note_input_capacity();
  void start_linger();
  void on_linger_readable();

  int fd_;
  Runtime* const rt_;
  const color_t color_;
  const TransportOptions opts_;

  // Everything below: on color_ only.
  std::size_t max_record_;  // opts_.max_record until set_max_record
  std::shared_ptr<RecordFilter> filter_;
  RecordHandler on_record_;
  CloseHandler on_close_;
  bool started_ = false;
  bool closed_ = false;
  bool delivering_ = false;  // inside on_record_
  std::weak_ptr<FdGuard> guard_;  // owned by the fd callbacks (see transport.cc)
  std::shared_ptr<FdGuard> idle_guard_;  // the guard, while no read callback holds it
  std::atomic<bool> closed_hint_{false};

  // Input: a partial fragment header, the record being assembled, and how
  // much of the current fragment is still to come.
  unsigned char hdr_[4];
  unsigned hdr_have_ = 0;
  bool in_body_ = false;
  Clock::time_point partial_since_{};  // first byte of the record in progress
  bool last_fragment_ = false;
  std::size_t frag_left_ = 0;
  RecordBuf record_;
  std::size_t last_record_ = 0;  // size of the last record delivered
  std::unique_ptr<char[]> chunk_;
  // Bytes read into chunk_ and not yet parsed: [chunk_pos_, chunk_end_).
  // Left there when reading stops between two records.
  std::size_t chunk_pos_ = 0, chunk_end_ = 0;
  bool read_armed_ = false;      // the read fdcb is registered
  bool resume_pending_ = false;  // a resume_reading task is queued
  unsigned read_holds_ = 0;      // hold_reading() minus release_reading()
  bool output_full_ = false;     // response bytes above the limit

  // Output: records with whether they count toward the limit.
  struct Out {
    RecordBuf rec;
    bool response;
  };
  std::deque<Out> outq_;
  std::size_t out_offset_ = 0;     // bytes of outq_.front() already written
  std::size_t out_bytes_ = 0;      // wire bytes queued (headers included)
  std::size_t response_bytes_ = 0; // of which queued by send_response
  bool write_armed_ = false;
  bool flush_pending_ = false;

  // close_after_flush: reading stopped, waiting for the queue to drain;
  // then lingering (write side shut, discarding input until EOF).
  bool closing_ = false;
  bool lingering_ = false;
  TimerId close_timer_ = 0;

  // Counters for any thread.
  std::atomic<std::size_t> out_bytes_hint_{0};
  std::atomic<std::size_t> input_capacity_hint_{0};
  std::atomic<bool> reading_stopped_hint_{false};
};

// Connects to host:port (a numeric IPv4 or IPv6 address) without blocking
// the caller; cb runs under its own color with a connected fd (blocking
// flag unspecified), or with -1 and an errno value.
void tcp_connect(const std::string& host, std::uint16_t port, Callback<void(int fd, int err)> cb);

// ---- accepting ------------------------------------------------------------------

struct AcceptorOptions {
  // Running out of descriptors (EMFILE, ENFILE) or kernel memory (ENOBUFS,
  // ENOMEM): stop watching the listening socket and retry after
  // min_backoff, doubling up to max_backoff, until an accept succeeds.
  std::chrono::milliseconds min_backoff{10};
  std::chrono::milliseconds max_backoff{1000};
  // Accepts per wakeup before letting other callbacks of the color run.
  unsigned max_per_wakeup = 64;
  // Where the once-per-episode messages go (on the acceptor's color): when
  // backing off starts and when accepting works again. Null: stderr.
  std::function<void(const std::string&)> log;
};

struct AcceptorStats {
  std::uint64_t accepted = 0;
  std::uint64_t failures = 0;  // accepts that failed for lack of resources
  std::uint64_t episodes = 0;  // times it started backing off
  std::uint64_t retries = 0;   // retry timers that fired
  bool backing_off = false;
};

// Accepts connections on a listening socket under one color and hands each
// to a callback, with the accept loop's failure modes handled once for
// every server built on the transport (asmp::rpc::Server uses it; a server
// with its own protocol can too).
//
// Contract
//   - on_accept(fd) runs under `color` for each accepted connection (fd is
//     non-blocking and close-on-exec; the callback owns it). Connection
//     errors reported by accept (ECONNABORTED, EPROTO, ...) are skipped.
//   - Out of descriptors or memory: accept would fail at once on every
//     wakeup while the listen queue is non-empty, spinning a core. The
//     acceptor unregisters the listening socket instead, retries after a
//     delay that doubles from min_backoff to max_backoff, and registers it
//     again once an accept succeeds or the queue is empty. One message when
//     an episode starts and one when it ends, none per retry.
//   - Any other accept error (EBADF, EINVAL, ...) stops the acceptor, with
//     a message.
//   - It owns the listening socket and closes it on close() or when it
//     stops. It stays alive while it accepts or waits to retry (its fd
//     callback or retry timer holds it): the caller need not keep it.
//   - close() may be called from any thread (it hops to the color);
//     stats() anywhere.
class Acceptor : public std::enable_shared_from_this<Acceptor> {
 public:
  static std::shared_ptr<Acceptor> create(int listen_fd, color_t color, std::function<void(int fd)> on_accept,
                                          AcceptorOptions opts = {});
  ~Acceptor();
  Acceptor(const Acceptor&) = delete;
  Acceptor& operator=(const Acceptor&) = delete;

  // Starts watching the listening socket. Returns 0 or fdcb's errno.
  int start();
  // Stops accepting and closes the listening socket: at once on the
  // acceptor's color (no accept callback after it returns), soon elsewhere.
  // Idempotent.
  void close();
  AcceptorStats stats() const;
  color_t color() const noexcept { return color_; }

 private:
  Acceptor(int fd, color_t color, std::function<void(int)> on_accept, AcceptorOptions opts);
  void on_ready();
  void on_retry();
  void stop_now();
  void say(const std::string& msg) const;
  std::string where() const;

  int fd_;
  Runtime* const rt_;
  const color_t color_;
  const AcceptorOptions opts_;
  // On color_ only.
  std::function<void(int)> on_accept_;
  bool closed_ = false;
  bool in_callback_ = false;  // inside on_accept_
  std::chrono::milliseconds backoff_{0};  // 0: not backing off
  TimerId retry_timer_ = 0;
  std::uint64_t episode_failures_ = 0;
  // Counters for stats().
  std::atomic<std::uint64_t> accepted_{0}, failures_{0}, episodes_{0}, retries_{0};
  std::atomic<bool> backing_off_{false};
};

// Opens a non-blocking, close-on-exec TCP listening socket on host:port (a
// numeric IPv4 or IPv6 address; port 0 picks a free one). Returns 0 and sets
// fd and bound_port, or returns an errno value (EINVAL for a host that is
// not a numeric address).
int tcp_listen(const std::string& host, std::uint16_t port, int& fd, std::uint16_t& bound_port);

}  // namespace asmp::rpc
