// message_stream.cc: see message_stream.h.
#include "message_stream.h"

#include <fcntl.h>
#include <sodium.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "unix_socket.h"

namespace sfs::agent_detail {

namespace {

constexpr std::size_t kReadChunk = 16 * 1024;
constexpr int kReadsPerCallback = 8;

}  // namespace

std::shared_ptr<MessageStream> MessageStream::create(asmp::Runtime& rt, asmp::color_t color, int fd,
                                                     std::size_t max_output) {
  return std::shared_ptr<MessageStream>(new MessageStream(rt, color, fd, max_output));
}

MessageStream::MessageStream(asmp::Runtime& rt, asmp::color_t color, int fd, std::size_t max_output)
    : rt_(rt), color_(color), fd_(fd), max_output_(max_output) {
  const int fl = ::fcntl(fd_, F_GETFL);
  if (fl >= 0) ::fcntl(fd_, F_SETFL, fl | O_NONBLOCK);
}

MessageStream::~MessageStream() {
  // Still open here: never started, or the runtime is being destroyed with
  // the fd callbacks (the last references) in it. Either way there is no
  // callback left to remove, and calling into a dying runtime would hang.
  if (!closed_ && fd_ >= 0) ::close(fd_);
  if (!in_.empty()) sodium_memzero(in_.data(), in_.size());
  if (!out_.empty()) sodium_memzero(out_.data(), out_.size());
}

void MessageStream::start(MessageHandler on_message, CloseHandler on_close) {
  started_ = true;
  on_message_ = std::move(on_message);
  on_close_ = std::move(on_close);
  rt_.fdcb(fd_, asmp::selread,
           asmp::Closure([self = shared_from_this()] { self->on_readable(); }, color_));
}

void MessageStream::close(const std::string& why) {
  if (closed_) return;
  auto self = shared_from_this();  // the close handler may drop the owner's reference
  closed_ = true;
  if (started_) {
    rt_.fdcb(fd_, asmp::selread, nullptr);
    rt_.fdcb(fd_, asmp::selwrite, nullptr);
  }
  ::close(fd_);
  fd_ = -1;
  write_armed_ = false;
  if (!out_.empty()) sodium_memzero(out_.data(), out_.size());
  out_.clear();
  out_off_ = 0;
  CloseHandler cb = std::move(on_close_);
  on_close_ = nullptr;
  // Inside the message handler, it is still running: drop it when it returns.
  if (!delivering_) on_message_ = nullptr;
  if (cb) cb(why);
}

// ---- input -------------------------------------------------------------------

void MessageStream::on_readable() {
  for (int round = 0; round < kReadsPerCallback && !closed_; ++round) {
    // Room for one more chunk; a frame longer than that grows the buffer in
    // parse(), once its header has been checked against the limit.
    if (in_.size() - in_len_ < kReadChunk / 2) {
      Bytes bigger(in_len_ + kReadChunk);
      if (in_len_) std::memcpy(bigger.data(), in_.data(), in_len_);
      if (!in_.empty()) sodium_memzero(in_.data(), in_.size());
      in_.swap(bigger);
    }
    const ssize_t r = ::recv(fd_, in_.data() + in_len_, in_.size() - in_len_, MSG_DONTWAIT);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      close("read failed: " + errno_text(errno));
      return;
    }
    if (r == 0) {
      close(in_len_ ? "closed the connection in the middle of a message" : "closed the connection");
      return;
    }
    in_len_ += static_cast<std::size_t>(r);
    if (!parse()) return;
  }
}

bool MessageStream::parse() {
  std::size_t pos = 0;
  bool ok = true;
  while (!closed_ && in_len_ - pos >= kAgentFrameHeaderBytes) {
    std::string why;
    const auto len = agent_frame_length(ByteSpan(in_.data() + pos, kAgentFrameHeaderBytes), &why);
    if (!len) {
      close("sent a frame whose " + why);
      return false;
    }
    const std::size_t whole = kAgentFrameHeaderBytes + *len;
    if (in_len_ - pos < whole) {
      // Incomplete: make room for the whole frame plus one chunk (bounded,
      // since *len was checked), keeping what we have at the front.
      if (in_.size() < whole + kReadChunk) {
        Bytes bigger(whole + kReadChunk);
        std::memcpy(bigger.data(), in_.data() + pos, in_len_ - pos);
        sodium_memzero(in_.data(), in_.size());
        in_.swap(bigger);
        in_len_ -= pos;
        pos = 0;
      }
      break;
    }
    delivering_ = true;
    if (on_message_) on_message_(ByteSpan(in_.data() + pos + kAgentFrameHeaderBytes, *len));
    delivering_ = false;
    pos += whole;
  }
  if (closed_) {
    on_message_ = nullptr;  // closed from inside the handler
    ok = false;
  }
  // Move the unparsed tail to the front and wipe what was consumed: the
  // control socket's ADD frames hold private keys.
  if (pos > 0) {
    const std::size_t rest = in_len_ - pos;
    if (rest) std::memmove(in_.data(), in_.data() + pos, rest);
    sodium_memzero(in_.data() + rest, in_len_ - rest);
    in_len_ = rest;
  }
  return ok;
}

// ---- output ------------------------------------------------------------------

void MessageStream::send(const AgentMessage& msg) {
  if (closed_) return;
  queue(frame_agent_message(msg));
  flush();
}

void MessageStream::send_and_close(const AgentMessage& msg, const std::string& why) {
  if (closed_) return;
  queue(frame_agent_message(msg));
  flush();
  close(why);
}

void MessageStream::queue(Bytes frame) {
  if (out_off_ == out_.size()) {
    // Reuse the buffer rather than grow it forever; wipe the old contents
    // first (a KEYS reply is not secret, but the habit costs nothing).
    if (!out_.empty()) sodium_memzero(out_.data(), out_.size());
    out_.clear();
    out_off_ = 0;
  }
  if (out_.size() - out_off_ + frame.size() > max_output_) {
    wipe_bytes(frame);
    close("is not reading its messages (more than " + std::to_string(max_output_ / 1024) +
          " KiB waiting)");
    return;
  }
  out_.insert(out_.end(), frame.begin(), frame.end());
  wipe_bytes(frame);
}

void MessageStream::flush() {
  while (!closed_ && out_off_ < out_.size()) {
    const ssize_t w =
        ::send(fd_, out_.data() + out_off_, out_.size() - out_off_, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        if (!write_armed_ && started_) {
          write_armed_ = true;
          rt_.fdcb(fd_, asmp::selwrite,
                   asmp::Closure([self = shared_from_this()] { self->on_writable(); }, color_));
        }
        return;
      }
      close("write failed: " + errno_text(errno));
      return;
    }
    out_off_ += static_cast<std::size_t>(w);
  }
  if (closed_) return;
  if (!out_.empty()) sodium_memzero(out_.data(), out_.size());
  out_.clear();
  out_off_ = 0;
  if (write_armed_) {
    write_armed_ = false;
    rt_.fdcb(fd_, asmp::selwrite, nullptr);
  }
}

void MessageStream::on_writable() {
  if (!closed_) flush();
}

}  // namespace sfs::agent_detail
