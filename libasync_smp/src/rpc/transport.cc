// transport.cc: RPC record marking over a non-blocking TCP socket.
//
// Life of a record, in: the read callback (transport color) readv()s into
// the unfinished fragment of record_ and, past it, into the reused chunk_;
// parse() walks the chunk, collecting 4-byte fragment headers (which may
// straddle reads) and fragment bodies. A header is checked against
// max_record; record_ then grows only for bytes that have arrived (in the
// chunk, or held by the kernel: FIONREAD) plus input_allowance, and
// geometrically as more come, so an announced size costs little until it
// is sent. When the last
// fragment is complete, the filter opens the record and on_record_ gets it.
//
// Reading stops (read fdcb unregistered, parse() leaves the rest of the
// chunk for later) while may_read() is false: held by the owner
// (hold_reading: the Connection, for calls in progress), output answering
// the peer above max_queued_output_bytes, or closing. It resumes in a task
// of its own (resume_reading), which first parses what the chunk still
// holds.
//
// Life of a record, out: transport_output.cc.
//
// close_after_flush: stop reading; when outq_ has drained, shut down the
// write side (FIN after the data) and read and discard until the peer's
// EOF (closing with unread input would make the kernel send a reset, and
// the peer could lose data still in flight); a timer closes regardless.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "asmp/rpc_transport.h"
#include "wire.h"

namespace asmp::rpc {

// ---- Transport ---------------------------------------------------------------

const char* to_string(CloseReason r) {
  switch (r) {
    case CloseReason::kLocal: return "closed locally";
    case CloseReason::kEof: return "peer closed the connection";
    case CloseReason::kSocketError: return "socket error";
    case CloseReason::kRecordTooLarge: return "peer sent a record above the size limit";
    case CloseReason::kFilterRejected: return "record filter rejected a record";
  }
  return "?";
}

namespace {

// Below this, a fragment's next bytes go through the chunk rather than
// straight into the record (not worth growing the record for).
constexpr std::size_t kMinDirect = 4096;

// Bytes the kernel holds for the socket, ready to read (0 if unknown).
std::size_t readable_bytes(int fd) {
  int n = 0;
  if (::ioctl(fd, FIONREAD, &n) != 0 || n < 0) return 0;
  return static_cast<std::size_t>(n);
}

std::uint32_t load_be32(const unsigned char* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
         std::uint32_t{p[3]};
}

}  // namespace

// Shared by the fd callbacks. The runtime destroys them without running them
// if it goes away while the transport is open; then nothing would ever call
// shutdown(), and the cycle transport -> handler -> owner (Connection) ->
// transport would leak. The last fd callback to go takes the handlers with
// it. In a normal close, shutdown() has taken them already. While reading
// is stopped the read callback is gone, and the write callback may be too:
// the transport then keeps the guard itself (idle_guard_), or the handlers
// would go with the read callback. (So a runtime destroyed while a
// transport stops reading leaks that transport and its owner, once.)
struct Transport::FdGuard {
  std::weak_ptr<Transport> t;
  explicit FdGuard(std::weak_ptr<Transport> w) : t(std::move(w)) {}
  ~FdGuard() {
    if (auto s = t.lock()) {
      if (!s->closed_) {
        s->on_record_ = nullptr;
        s->on_close_ = nullptr;
      }
    }
  }
};

std::shared_ptr<Transport> Transport::create(int fd, color_t color, TransportOptions opts) {
  return std::shared_ptr<Transport>(new Transport(fd, color, opts));
}

Transport::Transport(int fd, color_t color, TransportOptions opts)
    : fd_(fd), rt_(&default_runtime()), color_(color), opts_(opts), max_record_(opts.max_record) {
  if (opts_.max_fragment == 0 || opts_.max_fragment > 0x7fffffff)
    throw std::invalid_argument("asmp::rpc::Transport: max_fragment must be in [1, 2^31-1]");
  int fl = ::fcntl(fd_, F_GETFL);
  if (fl >= 0) ::fcntl(fd_, F_SETFL, fl | O_NONBLOCK);
  int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  // fails harmlessly on AF_UNIX
  if (opts_.notsent_lowat) {
    int lowat = static_cast<int>(std::min<std::size_t>(opts_.notsent_lowat, 1u << 30));
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &lowat, sizeof lowat);
  }
}

Transport::~Transport() {
  // Open here means never started, or the runtime is being destroyed (its
  // fd table holds the last reference): no fd callback to remove either way,
  // and calling into a dying runtime would deadlock.
  if (!closed_ && fd_ >= 0) ::close(fd_);
}

bool Transport::on_own_color() const noexcept {
  return Runtime::worker_index() >= 0 && Runtime::current_color() == color_ &&
         Runtime::current() == rt_;
}

bool Transport::closed() const noexcept { return closed_hint_.load(std::memory_order_acquire); }
std::size_t Transport::queued_output_bytes() const noexcept {
  return out_bytes_hint_.load(std::memory_order_relaxed);
}
std::size_t Transport::input_buffer_bytes() const noexcept {
  return input_capacity_hint_.load(std::memory_order_relaxed);
}
bool Transport::reading_stopped() const noexcept {
  return reading_stopped_hint_.load(std::memory_order_relaxed);
}

void Transport::start(RecordHandler on_record, CloseHandler on_close) {
  if (started_) throw std::logic_error("asmp::rpc::Transport::start called twice");
  started_ = true;
  on_record_ = std::move(on_record);
  on_close_ = std::move(on_close);
  chunk_.reset(new char[opts_.read_chunk]);
  auto guard = std::make_shared<FdGuard>(weak_from_this());
  guard_ = guard;
  if (!may_read()) {
    // Held before start (hold_reading): the release registers the reader.
    idle_guard_ = std::move(guard);
    reading_stopped_hint_.store(true, std::memory_order_relaxed);
    return;
  }
  // Everything is set before registering: start() may run on another
  // color, and the read callback may run on the transport's color at once.
  read_armed_ = true;
  if (int err = rt_->fdcb(fd_, selread, Closure([self = shared_from_this(), guard] { self->on_readable(); }, color_))) {
    // Not a socket epoll can watch (or closed): nothing will ever be read.
    // (No callback is registered, so nothing runs on the color meanwhile.)
    read_armed_ = false;
    shutdown(CloseReason::kSocketError, err);
  }
}

void Transport::set_filter(std::shared_ptr<RecordFilter> filter) { filter_ = std::move(filter); }

void Transport::send(RecordBuf record, RecordTail tail) {
  if (on_own_color()) {
    enqueue(std::move(record), false, tail);
    return;
  }
  rt_->cpucb(Closure(
      [self = shared_from_this(), rec = std::move(record), tail = std::move(tail)]() mutable {
        self->enqueue(std::move(rec), false, tail);
      },
      color_));
}

void Transport::send_response(RecordBuf record, RecordTail tail) {
  if (on_own_color()) {
    enqueue(std::move(record), true, tail);
    return;
  }
  rt_->cpucb(Closure(
      [self = shared_from_this(), rec = std::move(record), tail = std::move(tail)]() mutable {
        self->enqueue(std::move(rec), true, tail);
      },
      color_));
}

void Transport::close_after_flush(std::chrono::milliseconds timeout) {
  if (!on_own_color()) {
    rt_->cpucb(Closure([self = shared_from_this(), timeout] { self->close_after_flush(timeout); }, color_));
    return;
  }
  if (closed_ || closing_) return;
  if (!started_) {
    shutdown(CloseReason::kLocal, 0);
    return;
  }
  closing_ = true;
  reading_stopped_hint_.store(true, std::memory_order_relaxed);
  if (read_armed_) {
    idle_guard_ = guard_.lock();  // the read callback held it
    rt_->fdcb(fd_, selread, nullptr);
    read_armed_ = false;
  }
  if (timeout.count() > 0)
    close_timer_ = rt_->delaycb(
        timeout, Closure([self = shared_from_this()] { self->shutdown(CloseReason::kLocal, 0); }, color_));
  // A queued flush task or the write callback will finish the queue and
  // then linger; with nothing queued, linger now.
  if (outq_.empty() && !flush_pending_ && !write_armed_) start_linger();
}

void Transport::hold_reading() {
  ++read_holds_;
  update_reading();
}

void Transport::release_reading() {
  if (read_holds_ == 0) return;
  --read_holds_;
  update_reading();
}

bool Transport::may_read() const noexcept {
  return started_ && !closed_ && !closing_ && read_holds_ == 0 && !output_full_;
}

void Transport::update_reading() {
  if (closed_ || closing_) return;  // closing owns the read callback (linger)
  bool want = may_read();
  reading_stopped_hint_.store(!want, std::memory_order_relaxed);
  if (!want && read_armed_) {
    // From inside on_readable too: fdcb from the callback's own thread
    // returns at once, and parse() stops at the next record boundary.
    idle_guard_ = guard_.lock();  // the read callback held it
    rt_->fdcb(fd_, selread, nullptr);
    read_armed_ = false;
  } else if (want && !read_armed_ && !resume_pending_ && started_) {
    // Not inline: the caller may be the record handler (a reply answered at
    // once), and parsing here would deliver records inside it.
    resume_pending_ = true;
    rt_->cpucb(Closure([self = shared_from_this()] { self->resume_reading(); }, color_));
  }
}

void Transport::resume_reading() {
  resume_pending_ = false;
  if (!may_read() || read_armed_) return;
  if (chunk_pos_ < chunk_end_ && !parse()) return;  // closed
  if (!may_read()) return;                          // a record stopped it again
  std::shared_ptr<FdGuard> guard = guard_.lock();
  if (int err = rt_->fdcb(fd_, selread, Closure([self = shared_from_this(), guard] { self->on_readable(); }, color_))) {
    shutdown(CloseReason::kSocketError, err);
    return;
  }
  read_armed_ = true;
  idle_guard_.reset();
}

void Transport::close() {
  if (on_own_color()) {
    shutdown(CloseReason::kLocal, 0);
    return;
  }
  rt_->cpucb(Closure([self = shared_from_this()] { self->shutdown(CloseReason::kLocal, 0); }, color_));
}

void Transport::shutdown(CloseReason why, int err) {
  if (closed_) return;
  closed_ = true;
  closed_hint_.store(true, std::memory_order_release);
  // Take the handlers first: removing the fd callbacks below may destroy the
  // FdGuard, which would drop them. The record handler stays if this is
  // called from inside it; fragment_done drops it when it returns.
  CloseHandler cb = std::move(on_close_);
  RecordHandler rh;
  if (!delivering_) rh = std::move(on_record_);
  rt_->fdcb(fd_, selread, nullptr);
  rt_->fdcb(fd_, selwrite, nullptr);
  read_armed_ = write_armed_ = false;
  if (close_timer_) {
    rt_->timecb_remove(close_timer_);
    close_timer_ = 0;
  }
  idle_guard_.reset();
  ::close(fd_);
  outq_.clear();
  out_offset_ = out_bytes_ = response_bytes_ = 0;
  out_bytes_hint_.store(0, std::memory_order_relaxed);
  record_ = RecordBuf();
  chunk_.reset();
  chunk_pos_ = chunk_end_ = 0;
  note_input_capacity();
  reading_stopped_hint_.store(true, std::memory_order_relaxed);
  if (cb) cb(why, err);
  filter_.reset();
  // rh (and the owner it holds) goes here.
}

// ---- input -------------------------------------------------------------------

void Transport::on_readable() {
  // A bounded number of reads per callback, then back to the scheduler so
  // that other colors on this worker get their turn; the fd callback is
  // re-armed. Bytes of an unfinished fragment go straight into the record
  // (as far as it has grown for bytes that arrived). What follows goes into
  // the chunk and is copied out, so after a large record only a small chunk
  // is read: the next record's header arrives with a little of its body,
  // and the rest of the body is again read straight into place. Small
  // records keep the full chunk (many records per system call).
  constexpr std::size_t kLargeRecord = 32 * 1024;
  constexpr std::size_t kSmallChunk = 4 * 1024;
  for (int round = 0; round < 8 && may_read(); ++round) {
    if (chunk_pos_ < chunk_end_) {  // left from when reading stopped
      if (!parse()) return;
      continue;
    }
    iovec iov[2];
    int n = 0;
    std::size_t direct = 0;
    if (in_body_ && frag_left_ > 0) {
      direct = grow_record();
      if (direct) iov[n++] = {record_.data() + record_.size(), direct};
    }
    std::size_t want = last_record_ >= kLargeRecord ? std::min(kSmallChunk, opts_.read_chunk) : opts_.read_chunk;
    iov[n++] = {chunk_.get(), want};
    ssize_t r = ::readv(fd_, iov, n);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      shutdown(CloseReason::kSocketError, errno);
      return;
    }
    if (r == 0) {
      shutdown(CloseReason::kEof, 0);
      return;
    }
    std::size_t got = static_cast<std::size_t>(r);
    // The first bytes of a record start its clock (partial_record_age).
    if (!in_body_ && hdr_have_ == 0 && record_.empty() && partial_since_ == Clock::time_point{})
      partial_since_ = Clock::now();
    if (direct) {
      std::size_t d = std::min(got, direct);
      record_.resize(record_.size() + d);
      frag_left_ -= d;
      got -= d;
      if (frag_left_ == 0 && !fragment_done()) return;
    }
    chunk_pos_ = 0;
    chunk_end_ = got;
    if (got && !parse()) return;
    if (static_cast<std::size_t>(r) < direct + want) return;  // drained
  }
}

// Parses chunk_[chunk_pos_, chunk_end_) while reading is allowed; what is
// left stays for resume_reading. Returns false if the transport closed.
bool Transport::parse() {
  while (chunk_pos_ < chunk_end_) {
    if (!may_read()) return !closed_;
    const char* p = chunk_.get() + chunk_pos_;
    std::size_t n = chunk_end_ - chunk_pos_;
    if (!in_body_) {
      std::size_t take = std::min<std::size_t>(4 - hdr_have_, n);
      std::memcpy(hdr_ + hdr_have_, p, take);
      hdr_have_ += static_cast<unsigned>(take);
      chunk_pos_ += take;
      if (hdr_have_ < 4) break;
      hdr_have_ = 0;
      if (!take_header(chunk_end_ - chunk_pos_)) return false;
      if (frag_left_ == 0 && !fragment_done()) return false;
      continue;
    }
    std::size_t take = std::min(frag_left_, n);
    record_.append(p, take);  // grows by half its size at most: bytes that arrived
    note_input_capacity();
    frag_left_ -= take;
    chunk_pos_ += take;
    if (frag_left_ == 0 && !fragment_done()) return false;
  }
  if (chunk_pos_ == chunk_end_) {
    chunk_pos_ = chunk_end_ = 0;
    // Everything that arrived was whole records: no record is in progress.
    if (!in_body_ && hdr_have_ == 0 && record_.empty()) partial_since_ = Clock::time_point{};
  }
  return !closed_;
}

// A complete fragment header is in hdr_: check it. in_chunk: bytes of the
// chunk after the header, already read.
bool Transport::take_header(std::size_t in_chunk) {
  std::uint32_t word = load_be32(hdr_);
  last_fragment_ = (word & wire::kLastFragment) != 0;
  std::size_t len = word & ~wire::kLastFragment;
  // RFC 5531 11: the record is the concatenation of its fragments; the
  // limit is on the record, so check the sum before allocating anything.
  if (len > max_record_ || record_.size() + len > max_record_) {
    shutdown(CloseReason::kRecordTooLarge, 0);
    return false;
  }
  in_body_ = true;
  frag_left_ = len;
  // Room for the part of the body that has arrived (plus a small allowance),
  // not for what the header announces: a peer that announces 1 MiB and
  // sends 10 bytes (or nothing) must not cost 1 MiB. The allowance spares
  // records up to about its size a FIONREAD each (measured: ~10% of the CPU
  // of a 64 KiB echo on this VM); larger ones ask the kernel what arrived.
  std::size_t have = std::min(len, in_chunk + opts_.input_allowance);
  if (have < len) have = std::min(len, std::max(have, in_chunk + readable_bytes(fd_)));
  if (record_.capacity() < record_.size() + have) {
    record_.reserve(record_.size() + have);
    note_input_capacity();
  }
  return true;
}

// Room for the rest of the current fragment to be read straight into
// record_: what the record already has spare, else (the spare is used up)
// grown to hold what the kernel holds now or, for a trickle, as much again
// as the record has received so far (so the growth is geometric and the
// buffer stays within twice the bytes received). Returns 0 when the next
// bytes are better read through the chunk (too few to grow for).
std::size_t Transport::grow_record() {
  std::size_t room = record_.capacity() - record_.size();
  if (room >= std::min(frag_left_, kMinDirect)) return std::min(room, frag_left_);
  std::size_t more = std::min(frag_left_, std::max(readable_bytes(fd_), record_.size()));
  if (more < std::min(frag_left_, kMinDirect)) return 0;
  record_.reserve(record_.size() + more);
  note_input_capacity();
  return std::min(record_.capacity() - record_.size(), frag_left_);
}

void Transport::note_input_capacity() {
  input_capacity_hint_.store(record_.capacity(), std::memory_order_relaxed);
}

// The current fragment is complete; deliver the record if it was the last.
// Returns false if the transport closed meanwhile.
std::optional<Clock::duration> Transport::partial_record_age() const {
  if (partial_since_ == Clock::time_point{}) return std::nullopt;
  return Clock::now() - partial_since_;
}

bool Transport::fragment_done() {
  in_body_ = false;
  if (!last_fragment_) return true;
  // The next record's clock starts with its first byte (or now, if its
  // bytes are already in the chunk).
  partial_since_ = chunk_pos_ < chunk_end_ ? Clock::now() : Clock::time_point{};
  RecordBuf rec = std::move(record_);
  record_ = RecordBuf();
  note_input_capacity();
  last_record_ = rec.size();
  if (std::shared_ptr<RecordFilter> f = filter_; f && !f->open(rec)) {
    shutdown(CloseReason::kFilterRejected, 0);
    return false;
  }
  if (!on_record_) return !closed_;
  delivering_ = true;
  on_record_(std::move(rec));
  delivering_ = false;
  if (closed_) {
    on_record_ = nullptr;  // closed from inside the handler: drop it now
    return false;
  }
  return true;
}

}  // namespace asmp::rpc
