// fuse_driver.h: a libfuse low-level session driven by the libasync_smp
// loop, and the thread that tells the kernel to drop what it cached.
//
// Requests: the session fd (non-blocking) is watched with fdcb under one
// color; each readiness reads requests into one reused buffer (never a
// malloc per request: libfuse 3.14 would otherwise allocate ~1 MiB each
// time) and hands them to fuse_session_process_buf, which calls the file
// system's operations right there, on that color. Replies (fuse_reply_*)
// may be sent from any thread. A handler that keeps a large part of its
// request (a write's data, until committed) takes the buffer over instead
// of copying it, and the next request is read into a new one.
//
// Notifications (fuse_lowlevel_notify_inval_inode/_entry) take the kernel's
// inode and directory locks; a request handler or a thread a handler waits
// for must never make them. They are queued to a thread of their own.
#pragma once

#include <fuse3/fuse_lowlevel.h>

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "asmp/runtime.h"

namespace sfsclient {

class FuseDriver {
 public:
  // Takes a mounted session (not owned). on_exit runs on `color` once the
  // session ends (unmounted, or a read error).
  FuseDriver(fuse_session* se, asmp::color_t color, std::function<void()> on_exit);
  ~FuseDriver();

  void start();  // any thread
  void stop();   // stops watching the fd and the notifier; any thread

  // Queued to the notifier thread; any thread.
  void inval_inode(fuse_ino_t ino, off_t off = 0, off_t len = 0);
  void inval_entry(fuse_ino_t parent, std::string name);
  // Runs fn (on the notifier thread) once every notification queued so far
  // has been made.
  void after_notifications(std::function<void()> fn);

  // For the handler of the request being processed (on the driver's
  // color), which means to keep the bytes [p, p + n) of it: takes over the
  // buffer they lie in and returns what keeps them alive; the next request
  // is read into a new buffer. Null (copy them instead) if they are not in
  // the buffer or are less than half of it: a kept buffer holds ~1 MiB
  // whatever the size of the write.
  std::shared_ptr<const void> take_request_buffer(const char* p, std::size_t n);

 private:
  void on_readable();
  void notifier();

  fuse_session* se_;
  asmp::color_t color_;
  std::function<void()> on_exit_;
  int fd_ = -1;
  fuse_buf buf_{};
  bool exited_ = false;

  struct Note {
    bool entry;
    fuse_ino_t ino;
    off_t off, len;
    std::string name;
    std::function<void()> then;  // a marker: run it, notify nothing
  };
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Note> notes_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace sfsclient
