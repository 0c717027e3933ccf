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
//   - send() and close() may be called from any thread or color: from the
//     transport's own color they act at once, from elsewhere they hop to it
//     (so records sent from one color keep their order). Everything else
//     (start, set_filter) must be called on the transport's color, or before
//     start().
//   - Framing: a record is one or more fragments, each led by a 4-byte
//     big-endian word (last-fragment bit + 31-bit length). A peer whose
//     record would exceed max_record bytes is disconnected as soon as the
//     fragment header announcing it arrives, before anything is allocated
//     for it.
//   - Writes are queued and flushed with writev (many records per system
//     call) as soon as the socket takes them; reads go into a reused chunk,
//     or straight into the record being assembled when a fragment is large.
//   - on_close runs exactly once, after which no record is delivered; queued
//     output is dropped. Closing does not wait for the queue to drain.
#pragma once

#include <sys/uio.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
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

// The layer point for a secure channel: it sees every whole record, on the
// transport's color, in order. seal() transforms an outgoing record in place
// (it may grow or shrink it); open() undoes that for an incoming one and
// returns false if the record is not authentic, which closes the connection.
class RecordFilter {
 public:
  virtual ~RecordFilter() = default;
  virtual bool seal(RecordBuf& record) = 0;
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

  // Queues one record. Any thread. Dropped if the transport is closed.
  void send(RecordBuf record);
  // Closes now (kLocal). Any thread; idempotent.
  void close();

  color_t color() const noexcept { return color_; }
  // True on the transport's color once it has closed; elsewhere a hint.
  bool closed() const noexcept;
  const TransportOptions& options() const noexcept { return opts_; }
  // True when the calling thread runs a callback of this transport's color.
  bool on_own_color() const noexcept;

 private:
  struct FdGuard;
  Transport(int fd, color_t color, TransportOptions opts);

  void on_readable();
  void on_writable();
  void enqueue(RecordBuf record);
  void flush();
  void shutdown(CloseReason why, int err);
  bool parse(const char* p, std::size_t n);
  bool take_header();
  bool fragment_done();

  int fd_;
  Runtime* const rt_;
  const color_t color_;
  const TransportOptions opts_;

  // Everything below: on color_ only.
  std::shared_ptr<RecordFilter> filter_;
  RecordHandler on_record_;
  CloseHandler on_close_;
  bool started_ = false;
  bool closed_ = false;
  bool delivering_ = false;  // inside on_record_
  std::weak_ptr<FdGuard> guard_;  // owned by the fd callbacks (see transport.cc)
  std::atomic<bool> closed_hint_{false};

  // Input: a partial fragment header, the record being assembled, and how
  // much of the current fragment is still to come.
  unsigned char hdr_[4];
  unsigned hdr_have_ = 0;
  bool in_body_ = false;
  bool last_fragment_ = false;
  std::size_t frag_left_ = 0;
  RecordBuf record_;
  std::size_t last_record_ = 0;  // size of the last record delivered
  std::unique_ptr<char[]> chunk_;

  // Output.
  std::deque<RecordBuf> outq_;
  std::size_t out_offset_ = 0;  // bytes of outq_.front() already written
  bool write_armed_ = false;
  bool flush_pending_ = false;
};

// Connects to host:port (a numeric IPv4 or IPv6 address) without blocking
// the caller; cb runs under its own color with a connected fd (blocking
// flag unspecified), or with -1 and an errno value.
void tcp_connect(const std::string& host, std::uint16_t port, Callback<void(int fd, int err)> cb);

// Opens a non-blocking, close-on-exec TCP listening socket on host:port (a
// numeric IPv4 or IPv6 address; port 0 picks a free one). Returns 0 and sets
// fd and bound_port, or returns an errno value (EINVAL for a host that is
// not a numeric address).
int tcp_listen(const std::string& host, std::uint16_t port, int& fd, std::uint16_t& bound_port);

}  // namespace asmp::rpc
