// read_bench_load.h: the client side of read_bench (used only by
// read_bench.cc): a streaming reader per connection and the GETATTR probe,
// plus synchronous connect/LOOKUP for set-up.
//
//   Reader   K READs of S bytes outstanding on one FileClient, all of its
//            callbacks under the connection's own color (so a completion
//            runs in the record handler that decrypted it and issues the
//            next READ without a hop); checks the first and last word of
//            every chunk (each 8-byte word of a file holds its offset and
//            the file's number).
//   Probe    one GETATTR at a time on another connection, the next one
//            ~interval after the previous was sent; keeps every round trip.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "asmp/runtime.h"
#include "sfs/file_client.h"

namespace readbench {

namespace fs = sfs::fs;
namespace rpc = asmp::rpc;
using Clock = std::chrono::steady_clock;

// The value of the 8-byte word at byte offset `off` of file number `file`.
inline std::uint64_t word_at(unsigned file, std::uint64_t off) {
  return (static_cast<std::uint64_t>(file + 1) << 48) ^ off;
}

// Waits for one value set from a callback; safe if the wait gives up first.
template <class T>
struct Slot {
  std::shared_ptr<std::promise<T>> p = std::make_shared<std::promise<T>>();
  std::future<T> f = p->get_future();
  std::optional<T> wait(std::chrono::milliseconds limit) {
    if (f.wait_for(limit) != std::future_status::ready) return std::nullopt;
    return f.get();
  }
};

// Connects from a callback of `rt`: the connection belongs to the runtime
// that is current where it is made (the probe has a runtime of its own).
inline sfs::Result<std::shared_ptr<fs::FileClient>> connect_sync(asmp::Runtime& rt, fs::FileClientOptions o,
                                                                 std::chrono::milliseconds limit) {
  using R = sfs::Result<std::shared_ptr<fs::FileClient>>;
  Slot<R> s;
  const asmp::color_t c = o.color;
  rt.cpucb(asmp::Closure(
      [o = std::move(o), p = s.p, c]() mutable {
        fs::FileClient::connect(std::move(o), fs::FileClient::ConnectDone([p](R r) { p->set_value(std::move(r)); }, c));
      },
      c));
  auto r = s.wait(limit);
  if (!r) return sfs::make_error("connect timed out");
  return std::move(*r);
}

inline sfs::Result<fs::Handle> lookup_sync(const fs::FileClient& c, const fs::Handle& dir, const std::string& name) {
  using R = sfs::Result<fs::Handle>;
  Slot<R> s;
  sfs_LOOKUP3args a{};
  a.what.dir = fs::FileClient::wire(dir);
  a.what.name = const_cast<char*>(name.c_str());
  c.call<SFS_NFSPROC3_LOOKUP>(
      0, a,
      fs::FileClient::Done<SFS_NFSPROC3_LOOKUP>([p = s.p, name](rpc::RpcStatus st, fs::Reply<sfs_LOOKUP3res> r) {
        if (!st.ok()) return p->set_value(sfs::make_error("LOOKUP " + name + ": " + st.message()));
        if (r->status != SFS_NFS3_OK)
          return p->set_value(sfs::make_error("LOOKUP " + name + ": status " + std::to_string(r->status)));
        p->set_value(fs::FileClient::handle_of(r->sfs_LOOKUP3res_u.resok.object));
      }));
  auto r = s.wait(std::chrono::seconds(30));
  if (!r) return sfs::make_error("LOOKUP " + name + " timed out");
  return std::move(*r);
}

// Counts down to zero; wait() is bounded.
class Latch {
 public:
  explicit Latch(unsigned n) : n_(n) {}
  void arrive() {
    std::lock_guard lk(mu_);
    if (n_ && --n_ == 0) cv_.notify_all();
  }
  bool wait(std::chrono::milliseconds limit) {
    std::unique_lock lk(mu_);
    return cv_.wait_for(lk, limit, [&] { return n_ == 0; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  unsigned n_;
};

class Reader : public std::enable_shared_from_this<Reader> {
 public:
  Reader(std::shared_ptr<fs::FileClient> c, fs::Handle fh, unsigned file, std::uint64_t size, std::uint32_t chunk,
         unsigned depth, asmp::color_t color, std::shared_ptr<Latch> done)
      : c_(std::move(c)), fh_(std::move(fh)), file_(file), size_(size), chunk_(chunk), depth_(depth),
        color_(color), done_(std::move(done)) {}

  // Reads [0, size) (from any thread); done->arrive() at the end or on the
  // first error.
  void start(asmp::Runtime& rt) {
    rt.cpucb(asmp::Closure([self = shared_from_this()] {
      for (unsigned i = 0; i < self->depth_ && self->next_ < self->size_; ++i) self->issue();
      if (self->inflight_ == 0) self->finish();
    }, color_));
  }
  std::uint64_t bytes() const { return bytes_.load(); }
  Clock::time_point finished() const { return finished_; }
  std::string error() const {
    std::lock_guard lk(err_mu_);
    return error_;
  }

 private:
  void issue() {
    const std::uint64_t off = next_;
    const auto n = static_cast<std::uint32_t>(std::min<std::uint64_t>(chunk_, size_ - off));
    next_ += n;
    ++inflight_;
    c_->read(0, fh_, off, n,
             fs::FileClient::ReadDone(
                 [self = shared_from_this(), off, n](rpc::RpcStatus st, const fs::ReadView& v) {
                   self->on_read(off, n, st, v);
                 },
                 color_));
  }

  void on_read(std::uint64_t off, std::uint32_t n, const rpc::RpcStatus& st, const fs::ReadView& v) {
    --inflight_;
    std::string err;
    if (!st.ok()) err = st.message();
    else if (v.status != SFS_NFS3_OK) err = "NFS status " + std::to_string(v.status);
    else if (v.data.len != n) err = "short read (" + std::to_string(v.data.len) + " of " + std::to_string(n) + ")";
    else if (!check(off, v.data)) err = "wrong data";
    if (!err.empty() && !failed_) {
      failed_ = true;
      std::lock_guard lk(err_mu_);
      error_ = "file " + std::to_string(file_) + ", READ at " + std::to_string(off) + ": " + err;
    }
    if (err.empty()) bytes_ += n;
    if (!failed_ && next_ < size_) return issue();
    if (inflight_ == 0) finish();
  }

  bool check(std::uint64_t off, const rpc::BytesView& d) const {
    if (d.len < 8 || off % 8) return true;
    std::uint64_t first, last;
    const std::size_t lo = (d.len - 8) & ~std::size_t{7};
    std::memcpy(&first, d.data, 8);
    std::memcpy(&last, d.data + lo, 8);
    return first == word_at(file_, off) && last == word_at(file_, off + lo);
  }

  void finish() {
    finished_ = Clock::now();
    done_->arrive();
  }

  const std::shared_ptr<fs::FileClient> c_;
  const fs::Handle fh_;
  const unsigned file_;
  const std::uint64_t size_;
  const std::uint32_t chunk_;
  const unsigned depth_;
  const asmp::color_t color_;
  const std::shared_ptr<Latch> done_;
  // Only touched under color_.
  std::uint64_t next_ = 0;
  unsigned inflight_ = 0;
  bool failed_ = false;
  // Read by the main thread after the latch (which orders them).
  std::atomic<std::uint64_t> bytes_{0};
  Clock::time_point finished_{};
  mutable std::mutex err_mu_;
  std::string error_;
};

class Probe : public std::enable_shared_from_this<Probe> {
 public:
  Probe(std::shared_ptr<fs::FileClient> c, fs::Handle fh, asmp::color_t color, std::chrono::microseconds interval)
      : c_(std::move(c)), fh_(std::move(fh)), color_(color), interval_(interval) {}

  void start(asmp::Runtime& rt) {
    rt_ = &rt;
    rt.cpucb(asmp::Closure([self = shared_from_this()] { self->send(); }, color_));
  }
  // Stops after the GETATTR in flight (bounded wait); returns the round
  // trips in ms and the number of failed calls.
  std::vector<double> stop(unsigned* failures) {
    stopping_ = true;
    stopped_.wait(std::chrono::seconds(70));
    std::lock_guard lk(mu_);
    *failures = failures_;
    return samples_;
  }

 private:
  void send() {
    if (stopping_) return stopped_.arrive();
    sfs_GETATTR3args a{};
    a.object = fs::FileClient::wire(fh_);
    const auto sent = Clock::now();
    c_->call<SFS_NFSPROC3_GETATTR>(
        0, a,
        fs::FileClient::Done<SFS_NFSPROC3_GETATTR>(
            [self = shared_from_this(), sent](rpc::RpcStatus st, fs::Reply<sfs_GETATTR3res> r) {
              const auto now = Clock::now();
              {
                std::lock_guard lk(self->mu_);
                if (st.ok() && r->status == SFS_NFS3_OK)
                  self->samples_.push_back(std::chrono::duration<double, std::milli>(now - sent).count());
                else
                  ++self->failures_;
              }
              // Next one `interval` after this one was sent (at once if that
              // has passed), never two in flight.
              const auto next = sent + self->interval_;
              if (next <= now) return self->send();
              self->rt_->delaycb(next - now, asmp::Closure([self] { self->send(); }, self->color_));
            },
            color_));
  }

  const std::shared_ptr<fs::FileClient> c_;
  const fs::Handle fh_;
  const asmp::color_t color_;
  const std::chrono::microseconds interval_;
  asmp::Runtime* rt_ = nullptr;
  std::atomic<bool> stopping_{false};
  Latch stopped_{1};
  std::mutex mu_;
  std::vector<double> samples_;
  unsigned failures_ = 0;
};

}  // namespace readbench
