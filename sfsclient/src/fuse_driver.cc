// fuse_driver.cc: see fuse_driver.h.
#include "fuse_driver.h"

#include <fcntl.h>

#include <cerrno>
#include <cstdlib>

namespace sfsclient {

FuseDriver::FuseDriver(fuse_session* se, asmp::color_t color, std::function<void()> on_exit)
    : se_(se), color_(color), on_exit_(std::move(on_exit)) {
  fd_ = fuse_session_fd(se_);
  ::fcntl(fd_, F_SETFL, ::fcntl(fd_, F_GETFL) | O_NONBLOCK);
  thread_ = std::thread([this] { notifier(); });
}

FuseDriver::~FuseDriver() {
  stop();
  if (thread_.joinable()) thread_.join();
  std::free(buf_.mem);
}

void FuseDriver::start() {
  asmp::default_runtime().fdcb(fd_, asmp::selread, asmp::Closure([this] { on_readable(); }, color_));
}

void FuseDriver::stop() {
  asmp::default_runtime().fdcb(fd_, asmp::selread, nullptr);
  std::lock_guard lk(mu_);
  stopping_ = true;
  cv_.notify_all();
}

void FuseDriver::on_readable() {
  // A bounded batch per readiness, so that replies and other colors' work
  // on this worker are not held up by a flood of requests.
  for (int i = 0; i < 32 && !exited_; ++i) {
    const int res = fuse_session_receive_buf(se_, &buf_);
    if (res == -EAGAIN || res == -EINTR) return;
    if (res <= 0 || fuse_session_exited(se_)) {
      exited_ = true;
      asmp::default_runtime().fdcb(fd_, asmp::selread, nullptr);
      if (on_exit_) on_exit_();
      return;
    }
    fuse_session_process_buf(se_, &buf_);
  }
}

std::shared_ptr<const void> FuseDriver::take_request_buffer(const char* p, std::size_t n) {
  // libfuse 3.14 reads a request into up to 1 MiB + 4 KiB (its bufsize);
  // a 1 MiB write fills it.
  constexpr std::size_t kWorthTaking = 512 << 10;
  const auto* mem = static_cast<const char*>(buf_.mem);
  if (!mem || (buf_.flags & FUSE_BUF_IS_FD) || n < kWorthTaking || p < mem || p + n > mem + buf_.size)
    return nullptr;
  std::shared_ptr<const void> owner(buf_.mem, std::free);
  buf_.mem = nullptr;  // fuse_session_receive_buf allocates the next one
  return owner;
}

void FuseDriver::inval_inode(fuse_ino_t ino, off_t off, off_t len) {
  std::lock_guard lk(mu_);
  notes_.push_back({false, ino, off, len, {}, nullptr});
  cv_.notify_all();
}

void FuseDriver::inval_entry(fuse_ino_t parent, std::string name) {
  std::lock_guard lk(mu_);
  notes_.push_back({true, parent, 0, 0, std::move(name), nullptr});
  cv_.notify_all();
}

void FuseDriver::after_notifications(std::function<void()> fn) {
  std::lock_guard lk(mu_);
  if (stopping_) return fn();
  notes_.push_back({false, 0, 0, 0, {}, std::move(fn)});
  cv_.notify_all();
}

void FuseDriver::notifier() {
  std::unique_lock lk(mu_);
  for (;;) {
    cv_.wait(lk, [&] { return stopping_ || !notes_.empty(); });
    if (stopping_ && notes_.empty()) return;
    Note n = std::move(notes_.front());
    notes_.pop_front();
    lk.unlock();
    // -ENOENT: the kernel has already forgotten it, which is what we wanted.
    if (n.then) n.then();
    else if (n.entry) fuse_lowlevel_notify_inval_entry(se_, n.ino, n.name.c_str(), n.name.size());
    else fuse_lowlevel_notify_inval_inode(se_, n.ino, n.off, n.len);
    lk.lock();
    cv_.notify_all();
  }
}

}  // namespace sfsclient
