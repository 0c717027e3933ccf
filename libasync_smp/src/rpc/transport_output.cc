// transport_output.cc: the output half of the Transport (transport.cc has
// its life and its input).
//
// Life of a record, out: send() and send_response() hop to the transport
// color; enqueue() seals it (with its tail, if it has one) and appends it
// to outq_; one flush task per burst writes the whole queue with sendmsg
// (fragment headers are built in a scratch array at flush time), and if
// the socket is full, a write fdcb finishes the job. close_after_flush
// ends here: when the queue has drained, the write side is shut down and
// input is read and discarded until the peer's EOF (start_linger).
#include <arpa/inet.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "asmp/rpc_transport.h"
#include "wire.h"

namespace asmp::rpc {

namespace {

constexpr int kMaxIov = 256;

}  // namespace

void Transport::enqueue(RecordBuf record, bool response, const RecordTail& tail) {
  if (closed_ || closing_) return;
  if (std::shared_ptr<RecordFilter> f = filter_) {
    if (!(tail.empty() ? f->seal(record) : f->seal_tail(record, tail))) {
      shutdown(CloseReason::kFilterRejected, 0);
      return;
    }
  } else if (!tail.empty()) {
    tail.append_to(record);
  }
  std::size_t wire = wire::wire_size(record.size(), opts_.max_fragment);
  out_bytes_ += wire;
  out_bytes_hint_.store(out_bytes_ - out_offset_, std::memory_order_relaxed);
  if (response) {
    response_bytes_ += wire;
    if (opts_.max_queued_output_bytes && response_bytes_ > opts_.max_queued_output_bytes && !output_full_) {
      // The peer is not reading its answers: stop reading its requests.
      output_full_ = true;
      update_reading();
    }
  }
  outq_.push_back(Out{std::move(record), response});
  if (!write_armed_ && !flush_pending_) {
    // Flush after the callbacks already queued on this color have run, so
    // that a burst of sends goes out in one system call.
    flush_pending_ = true;
    rt_->cpucb(Closure(wrap(color_, &Transport::flush, shared_from_this())));
  }
}

void Transport::on_writable() { flush(); }

void Transport::flush() {
  flush_pending_ = false;
  if (closed_) return;
  const std::size_t frag = opts_.max_fragment;
  while (!outq_.empty()) {
    iovec iov[kMaxIov];
    std::uint32_t marks[kMaxIov];
    int n = 0, m = 0;
    std::size_t requested = 0;
    std::size_t skip = out_offset_;
    for (Out& out : outq_) {
      RecordBuf& rec = out.rec;
      std::size_t size = rec.size();
      std::size_t off = 0;
      do {
        std::size_t len = std::min(frag, size - off);
        bool last = off + len == size;
        if (n + 2 > kMaxIov) break;
        // Fragment header.
        if (skip >= 4) {
          skip -= 4;
        } else {
          marks[m] = htonl((last ? wire::kLastFragment : 0) | static_cast<std::uint32_t>(len));
          iov[n++] = {reinterpret_cast<char*>(&marks[m]) + skip, 4 - skip};
          requested += 4 - skip;
          ++m;
          skip = 0;
        }
        // Fragment body.
        if (skip >= len) {
          skip -= len;
        } else if (len) {
          iov[n++] = {rec.data() + off + skip, len - skip};
          requested += len - skip;
          skip = 0;
        }
        off += len;
      } while (off < size);
      if (n + 2 > kMaxIov) break;
    }
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = static_cast<std::size_t>(n);
    ssize_t r = ::sendmsg(fd_, &msg, MSG_NOSIGNAL);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      shutdown(CloseReason::kSocketError, errno);
      return;
    }
    // Retire what was written.
    std::size_t done = static_cast<std::size_t>(r);
    while (done > 0 && !outq_.empty()) {
      Out& front = outq_.front();
      std::size_t wire = wire::wire_size(front.rec.size(), frag);
      std::size_t left = wire - out_offset_;
      if (done >= left) {
        done -= left;
        out_offset_ = 0;
        out_bytes_ -= wire;
        if (front.response) response_bytes_ -= wire;
        outq_.pop_front();
      } else {
        out_offset_ += done;
        done = 0;
      }
    }
    if (static_cast<std::size_t>(r) < requested) break;  // socket full
  }
  out_bytes_hint_.store(out_bytes_ - out_offset_, std::memory_order_relaxed);
  if (output_full_ && response_bytes_ <= opts_.max_queued_output_bytes / 2) {
    output_full_ = false;
    update_reading();
  }
  if (outq_.empty()) {
    if (write_armed_) {
      rt_->fdcb(fd_, selwrite, nullptr);
      write_armed_ = false;
    }
  } else if (!write_armed_) {
    write_armed_ = true;
    if (int err = rt_->fdcb(fd_, selwrite, Closure([self = shared_from_this(), guard = guard_.lock()] {
                              self->on_writable();
                            }, color_))) {
      shutdown(CloseReason::kSocketError, err);
      return;
    }
  }
  if (closing_ && !lingering_ && outq_.empty()) start_linger();
}

void Transport::start_linger() {
  lingering_ = true;
  // FIN after the last queued byte; the peer sees the end of the stream
  // once it has read everything.
  ::shutdown(fd_, SHUT_WR);
  std::shared_ptr<FdGuard> guard = guard_.lock();
  if (rt_->fdcb(fd_, selread, Closure([self = shared_from_this(), guard] { self->on_linger_readable(); }, color_)) != 0) {
    shutdown(CloseReason::kLocal, 0);
    return;
  }
  read_armed_ = true;
  idle_guard_.reset();
}

// Discards input until the peer closes; then closes.
void Transport::on_linger_readable() {
  char buf[4096];
  for (int round = 0; round < 8 && !closed_; ++round) {
    ssize_t r = ::read(fd_, buf, sizeof buf);
    if (r > 0) continue;
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    shutdown(CloseReason::kLocal, 0);  // EOF or error: nothing more to wait for
    return;
  }
}

}  // namespace asmp::rpc
