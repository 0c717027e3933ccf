// writer.h: one writer of the fault workload: random writes, overwrites,
// truncates, renames, unlinks, fsyncs, closes and reads on a few files of a
// directory of its own under the mount, with a model (model.h) of what the
// server must hold.
//
// Each writer owns its directory, so no other writer's operation is ever
// in doubt for it. It runs one operation at a time (a session is open,
// writes, maybe fsync, close), so after an error exactly one operation is
// in doubt. Then it settles: waits for the mount to answer, reads the names
// involved straight from the server (the page cache dropped first), checks
// them against the outcomes the failed operation allows, and takes what it
// found as acknowledged (the failure is the writer's to see; whatever the
// server holds now, it holds stably). After every fault the test injects
// it also re-reads all its files, so acknowledged data lost in a file
// nobody was touching is caught at once, before a later write hides it.
//
// Run on a thread of its own; the test reads the results after run().
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <random>
#include <thread>

#include "model.h"

namespace faults {

struct WriterOptions {
  int id = 0;
  std::string dir;         // the writer's directory on the mount (exists)
  std::string server_dir;  // the same directory on the server's disk: quoted in failure reports
  std::uint64_t seed = 0;
  int files = 6;
  std::size_t max_file = 768 * 1024;
  std::chrono::seconds mount_wait{120};  // the mount gone longer than this is a failure
  Journal* journal = nullptr;
  const std::atomic<bool>* stop = nullptr;     // finish the operation at hand, settle, return
  const std::atomic<bool>* abandon = nullptr;  // the test failed: return as soon as possible
  const std::atomic<std::uint64_t>* faults = nullptr;  // bumped after each repaired fault
};

class Writer {
 public:
  explicit Writer(WriterOptions o) : o_(std::move(o)), rng_(o_.seed * 1000003 + o_.id) {
    for (int i = 0; i < o_.files; ++i) names_.push_back("f" + std::to_string(i));
  }
  ~Writer() {
    if (dirfd_ >= 0) ::close(dirfd_);
  }

  void run() {
    own_descriptor_table();
    while (!o_.stop->load() && !o_.abandon->load() && !gave_up_) {
      if (const auto f = o_.faults->load(); f != faults_seen_) {
        faults_seen_ = f;
        begin("verify after fault " + std::to_string(f));
        settle({exact_all()}, "after fault " + std::to_string(f));
      } else {
        step();
      }
      begin("");
    }
  }

  // Results, once run() returned.
  std::vector<std::string> violations;
  std::map<int, int> errors;  // errno -> how often an operation failed with it
  int ops = 0, acks = 0, settles = 0;
  const std::map<std::string, std::string>& model() const { return acked_; }
  const std::vector<std::string>& names() const { return names_; }

  // For the test's hang watchdog (any thread): the operation running and
  // since when (ms on steady_clock; 0 between operations).
  std::int64_t busy_since_ms() const { return busy_since_.load(); }
  std::string doing() {
    std::lock_guard lk(mu_);
    return doing_;
  }

  // Reads `name` from the server: 1 and its bytes, 0 if it does not exist,
  // -1 if the mount did not answer (errno set). The page cache is dropped
  // first, so the bytes come from sfsd, not from what this client wrote.
  static int read_fresh(int dirfd, const std::string& name, std::string* out) {
    const int fd = ::openat(dirfd, name.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return errno == ENOENT ? 0 : -1;
    ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    const int rc = read_all(fd, out);
    ::close(fd);
    return rc;
  }
  static int read_all(int fd, std::string* out) {
    out->clear();
    char buf[128 * 1024];
    for (;;) {
      const ssize_t n = ::read(fd, buf, sizeof buf);
      if (n < 0) return -1;
      if (n == 0) return 1;
      out->append(buf, static_cast<std::size_t>(n));
    }
  }

 private:
  // Gives this thread a descriptor table of its own, so that the files it
  // opens on the mount are never in the table the test's fork() copies.
  // A child holding a copy of a descriptor that was written through closes
  // it at exec (O_CLOEXEC), and a close on FUSE is a FLUSH: sfsclient
  // commits the file's data first, which waits for sfsd. When the child is
  // the sfsd being restarted, it waits for itself until the client's
  // --timeout fails the commit (EIO for the writer; seen in CI as an sfsd
  // that took 20 s, and once over 90 s, to get past exec). A user's program
  // that forks while holding written files waits the same way, on a server
  // that is up: that is close-to-open, as with NFS.
  //
  // The copy starts with everything the test had open: the proxy's sockets
  // (a copy here would keep a "reset" connection open) and pipes (a copy
  // of a write end keeps its reader from end of file) are closed in it;
  // regular files (the journal) stay. The raw close(2) leaves the test's
  // own table, and a sanitizer's idea of it, alone.
  static void own_descriptor_table() {
    if (::unshare(CLONE_FILES) != 0) return;
    DIR* d = ::opendir("/proc/thread-self/fd");
    if (!d) return;
    std::vector<int> drop;
    while (const dirent* e = ::readdir(d)) {
      const int fd = std::atoi(e->d_name);
      struct stat st;
      if (fd > 2 && fd != ::dirfd(d) && ::fstat(fd, &st) == 0 && !S_ISREG(st.st_mode)) drop.push_back(fd);
    }
    ::closedir(d);
    for (int fd : drop) ::syscall(SYS_close, fd);
  }

  static std::int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
  void begin(const std::string& what) {
    std::lock_guard lk(mu_);
    doing_ = what;
    busy_since_ = what.empty() ? 0 : now_ms();
  }
  std::string path(const std::string& name) const { return o_.dir + "/" + name; }
  std::uint64_t pick(std::uint64_t n) { return std::uniform_int_distribution<std::uint64_t>(0, n - 1)(rng_); }
  void note(const std::string& what, const std::optional<std::string>& content = std::nullopt) {
    o_.journal->add(o_.id, what, content);
  }
  void failed(const std::string& what, int err) {
    errors[err]++;
    note("FAILED " + what + ": " + std::strerror(err));
  }
  void ack(const std::string& what, const std::string& name) {
    acks++;
    note(what + " " + name, acked_[name]);
  }

  void step() {
    ++ops;
    std::vector<std::string> existing;
    for (const auto& [n, c] : acked_) existing.push_back(n);
    const std::string name = names_[pick(names_.size())];
    const auto r = pick(100);
    if (existing.empty() || r < 40) return session(name, false);
    if (r < 52) return session(name, true);
    const std::string& old = existing[pick(existing.size())];
    if (r < 64) return truncate_op(old);
    if (r < 80) return old == name ? session(name, false) : rename_op(old, name);
    if (r < 86) return unlink_op(old);
    return read_op(old);
  }

  // A write somewhere near the current end (files stay dense, grow and
  // shrink); its bytes are pattern(*id, len).
  Write random_write(std::size_t size, std::uint64_t* id) {
    const auto r = pick(100);
    const std::size_t len = r < 50 ? 1 + pick(4096) : r < 85 ? 4096 + pick(124 * 1024) : 128 * 1024 + pick(384 * 1024);
    const std::size_t room = std::min(o_.max_file - len, size + 64 * 1024);
    *id = rng_();
    return Write{pick(room + 1), pattern(*id, len)};
  }

  // open (maybe creating or truncating), 1-4 writes with an occasional
  // fsync between them, close.
  void session(const std::string& name, bool trunc) {
    const bool existed = acked_.count(name) > 0;
    const std::string what = std::string(trunc ? "overwrite " : "write ") + name;
    begin(what);
    const int fd = ::open(path(name).c_str(), O_RDWR | O_CREAT | O_CLOEXEC | (trunc ? O_TRUNC : 0), 0666);
    if (fd < 0) {
      const int err = errno;  // before the string is built
      failed("open " + what, err);
      std::vector<Outcome> may{{{name, Expect{existed ? std::optional(acked_[name]) : std::nullopt, {}}}}};
      if (!existed || trunc) may.push_back({{name, Expect{std::string(), {}}}});
      return settle(may, "open " + what);
    }
    // The create or the truncation is acknowledged by open's return.
    if (!existed || trunc) {
      acked_[name].clear();
      ack(existed ? "truncated-by-open" : "created", name);
    }
    std::vector<Write> unacked;
    auto give_up = [&](const std::string& op, int err) {
      failed(op + " " + name, err);
      ::close(fd);  // its result acknowledges nothing more than the failure allows
      settle({{{name, Expect{acked_[name], unacked}}}}, op + " " + name);
    };
    const int writes = 1 + static_cast<int>(pick(4));
    for (int i = 0; i < writes; ++i) {
      std::string content = acked_[name];
      for (const auto& w : unacked) apply(content, w);
      std::uint64_t id;
      Write w = random_write(content.size(), &id);
      unacked.push_back(w);  // in doubt from the moment it is issued
      note("write " + name + " off=" + std::to_string(w.off) + " len=" + std::to_string(w.data.size()) +
           " id=" + std::to_string(id));
      const ssize_t n = ::pwrite(fd, w.data.data(), w.data.size(), static_cast<off_t>(w.off));
      if (n != static_cast<ssize_t>(w.data.size())) {
        const int err = n < 0 ? errno : EIO;  // a short write: the rest is the error's
        return give_up("pwrite", err);
      }
      if (pick(4) == 0) {
        if (::fsync(fd) != 0) {
          const int err = errno;
          return give_up("fsync", err);
        }
        for (const auto& u : unacked) apply(acked_[name], u);
        unacked.clear();
        ack("fsync", name);
      }
    }
    if (::close(fd) != 0) {
      const int err = errno;
      failed("close " + name, err);
      return settle({{{name, Expect{acked_[name], unacked}}}}, "close " + name);
    }
    for (const auto& u : unacked) apply(acked_[name], u);
    ack("close", name);
  }

  void truncate_op(const std::string& name) {
    const std::string before = acked_[name];
    const std::size_t len = pick(2) ? pick(before.size() + 1) : pick(o_.max_file + 1);
    begin("truncate " + name + " to " + std::to_string(len));
    if (::truncate(path(name).c_str(), static_cast<off_t>(len)) != 0) {
      const int err = errno;  // before the string is built
      failed("truncate " + name, err);
      std::string after = before;
      after.resize(len, '\0');
      return settle({{{name, Expect{before, {}}}}, {{name, Expect{after, {}}}}}, "truncate " + name);
    }
    acked_[name].resize(len, '\0');
    ack("truncate to " + std::to_string(len), name);
  }

  void rename_op(const std::string& from, const std::string& to) {
    begin("rename " + from + " " + to);
    const std::string moved = acked_[from];
    const auto it = acked_.find(to);
    const std::optional<std::string> replaced = it == acked_.end() ? std::nullopt : std::optional(it->second);
    if (::rename(path(from).c_str(), path(to).c_str()) != 0) {
      const int err = errno;  // before the string is built
      failed("rename " + from + " " + to, err);
      return settle({{{from, Expect{moved, {}}}, {to, Expect{replaced, {}}}},
                     {{from, Expect{std::nullopt, {}}}, {to, Expect{moved, {}}}}},
                    "rename " + from + " " + to);
    }
    acked_.erase(from);
    acked_[to] = moved;
    ack("rename " + from + " to", to);
  }

  void unlink_op(const std::string& name) {
    begin("unlink " + name);
    if (::unlink(path(name).c_str()) != 0) {
      const int err = errno;  // before the string is built
      failed("unlink " + name, err);
      return settle({{{name, Expect{acked_[name], {}}}}, {{name, Expect{std::nullopt, {}}}}}, "unlink " + name);
    }
    acked_.erase(name);
    acks++;
    note("unlink " + name);
  }

  // A plain read through the mount (page cache and all) must show exactly
  // what was acknowledged: nothing of this file is in doubt.
  void read_op(const std::string& name) {
    begin("read " + name);
    const int fd = ::open(path(name).c_str(), O_RDONLY | O_CLOEXEC);
    std::string got;
    if (fd < 0 || read_all(fd, &got) < 0) {
      const int err = errno;  // before the string is built
      failed("read " + name, err);
      if (fd >= 0) ::close(fd);
      return settle({exact_all()}, "read " + name);
    }
    ::close(fd);
    if (const std::string m = mismatch(Expect{acked_[name], {}}, got); !m.empty())
      violation("a read through the mount of " + name + ": it " + m);
  }

  Outcome exact_all() const {
    Outcome o;
    for (const auto& n : names_) {
      const auto it = acked_.find(n);
      o[n] = Expect{it == acked_.end() ? std::nullopt : std::optional(it->second), {}};
    }
    return o;
  }

  // The mount answers at o_.dir again (a FUSE file system there, not the
  // bare mount point of a remount in progress); false after `end`.
  bool wait_for_mount(std::chrono::steady_clock::time_point end) {
    for (;;) {
      if (o_.abandon->load()) {
        gave_up_ = true;
        return false;
      }
      if (dirfd_ >= 0) ::close(dirfd_);
      dirfd_ = ::open(o_.dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      struct statfs sf;
      constexpr long kFuseMagic = 0x65735546;
      if (dirfd_ >= 0 && ::fstatfs(dirfd_, &sf) == 0 && sf.f_type == kFuseMagic) return true;
      if (std::chrono::steady_clock::now() > end) {
        violation("the mount did not answer at " + o_.dir + " for " + std::to_string(o_.mount_wait.count()) +
                  " s (last: " + std::strerror(errno) + "): " + doing());
        gave_up_ = true;
        return false;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }

  // Waits for the mount, reads the names of `may`, checks them against the
  // outcomes and takes what the server holds as acknowledged.
  void settle(const std::vector<Outcome>& may, const std::string& after) {
    ++settles;
    begin("settle after " + after);
    std::map<std::string, std::optional<std::string>> seen;
    const auto end = std::chrono::steady_clock::now() + o_.mount_wait;
    for (bool done = false; !done;) {
      if (!wait_for_mount(end)) return;
      done = true;
      seen.clear();
      for (const auto& [name, e] : may.front()) {
        std::string content;
        const int rc = read_fresh(dirfd_, name, &content);
        if (rc < 0) {
          errors[errno]++;
          done = false;  // a fault again: wait for the mount, read it all again
          std::this_thread::sleep_for(std::chrono::milliseconds(100));
          break;
        }
        seen[name] = rc ? std::optional(std::move(content)) : std::nullopt;
      }
    }
    if (const std::string why = no_outcome_matches(may, seen); !why.empty())
      violation("after " + after + ":" + why + server_view(may.front()));
    for (const auto& [name, content] : seen) {
      if (content)
        acked_[name] = *content;
      else
        acked_.erase(name);
    }
    note("settled after " + after);
  }

  // What the server's disk holds for those names (it tells a lost write
  // from a client showing stale data).
  std::string server_view(const Outcome& names) const {
    std::string s = " (on the server's disk:";
    for (const auto& [name, e] : names) {
      struct stat st;
      s += " " + name + (::stat((o_.server_dir + "/" + name).c_str(), &st) == 0
                             ? " " + std::to_string(st.st_size) + " bytes"
                             : " absent");
    }
    return s + ")";
  }

  void violation(const std::string& what) {
    violations.push_back("writer " + std::to_string(o_.id) + ": " + what);
    note("VIOLATION " + what);
  }

  WriterOptions o_;
  std::mt19937_64 rng_;
  std::vector<std::string> names_;
  std::map<std::string, std::string> acked_;  // name -> acknowledged content
  std::uint64_t faults_seen_ = 0;
  int dirfd_ = -1;
  bool gave_up_ = false;
  std::mutex mu_;
  std::string doing_;
  std::atomic<std::int64_t> busy_since_{0};
};

}  // namespace faults
