// record_buf.cc: RecordBuf, the byte buffer of one RPC record, and the
// per-thread cache its storage comes from (asmp/rpc_transport.h).
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

#include "asmp/rpc_transport.h"

namespace asmp::rpc {

namespace {

// A per-thread cache of record-sized buffers. Records of 64 KiB to 1 MiB
// come and go at a high rate; handed back to malloc, glibc returns freed
// memory at the top of a thread arena to the OS (madvise), and the next
// record page-faults it in again: measured, that cut a 64 KiB echo to a
// sixth of its speed (docs/rpc.md). A record is usually allocated and freed
// on the same worker (its transport's color lives there), so a small cache
// per thread catches nearly all of them, without locks.
class BufferCache {
 public:
  static constexpr std::size_t kMinPooled = 16 * 1024;
  static constexpr std::size_t kMaxBytes = 32u << 20;
  static constexpr std::size_t kMaxCount = 64;

  ~BufferCache() {
    alive_ = false;
    for (auto& b : bufs_) delete[] b.p;
  }
  static BufferCache* get() { return alive_ ? &cache_ : nullptr; }

  // The most recently cached buffer of at least n bytes (and not much more),
  // or nullptr. Most recent first: it is likely still in this core's cache.
  char* take(std::size_t n, std::size_t* cap) {
    for (std::size_t i = bufs_.size(); i-- > 0;) {
      if (bufs_[i].cap < n || bufs_[i].cap / 2 > n) continue;
      Buf b = bufs_[i];
      bufs_.erase(bufs_.begin() + static_cast<std::ptrdiff_t>(i));
      bytes_ -= b.cap;
      *cap = b.cap;
      return b.p;
    }
    return nullptr;
  }
  // Keeps p if there is room; otherwise frees it.
  void give(char* p, std::size_t cap) {
    if (cap < kMinPooled || cap > kMaxBytes / 4 || bufs_.size() == kMaxCount || bytes_ + cap > kMaxBytes) {
      delete[] p;
      return;
    }
    bufs_.push_back({p, cap});
    bytes_ += cap;
  }

 private:
  struct Buf {
    char* p;
    std::size_t cap;
  };
  std::vector<Buf> bufs_;
  std::size_t bytes_ = 0;
  static thread_local BufferCache cache_;
  static thread_local bool alive_;
};

thread_local BufferCache BufferCache::cache_;
thread_local bool BufferCache::alive_ = true;

char* allocate(std::size_t n, std::size_t* cap) {
  if (n >= BufferCache::kMinPooled) {
    if (BufferCache* c = BufferCache::get())
      if (char* p = c->take(n, cap)) return p;
    n = (n + 4095) & ~std::size_t{4095};  // round up so that near sizes share buffers
  }
  *cap = n;
  return new char[n];
}

void release(char* p, std::size_t cap) {
  if (!p) return;
  if (BufferCache* c = BufferCache::get()) {
    c->give(p, cap);
    return;
  }
  delete[] p;
}

}  // namespace

RecordBuf::~RecordBuf() { release(data_, cap_); }

RecordBuf::RecordBuf(RecordBuf&& o) noexcept : data_(o.data_), size_(o.size_), cap_(o.cap_) {
  o.data_ = nullptr;
  o.size_ = o.cap_ = 0;
}

RecordBuf& RecordBuf::operator=(RecordBuf&& o) noexcept {
  if (this != &o) {
    release(data_, cap_);
    data_ = o.data_;
    size_ = o.size_;
    cap_ = o.cap_;
    o.data_ = nullptr;
    o.size_ = o.cap_ = 0;
  }
  return *this;
}

void RecordBuf::reserve(std::size_t n) {
  if (n <= cap_) return;
  std::size_t cap;
  char* p = allocate(n, &cap);
  if (size_) std::memcpy(p, data_, size_);
  release(data_, cap_);
  data_ = p;
  cap_ = cap;
}

void RecordBuf::resize(std::size_t n) {
  if (n > cap_) reserve(std::max(n, cap_ + cap_ / 2));
  size_ = n;
}

void RecordBuf::append(const void* p, std::size_t n) {
  if (n == 0) return;  // data_ may be null, and memcpy(nullptr, ..., 0) is UB
  std::size_t old = size_;
  resize(size_ + n);
  std::memcpy(data_ + old, p, n);
}

std::span<const char> RecordTail::padding() const {
  static constexpr char kZeros[4] = {};
  return {kZeros, std::min<std::size_t>(pad, sizeof kZeros)};
}

void RecordTail::append_to(RecordBuf& record) const {
  const std::span<const char> zeros = padding();
  record.reserve(record.size() + bytes.size() + zeros.size());
  record.append(bytes.data(), bytes.size());
  record.append(zeros.data(), zeros.size());
}

}  // namespace asmp::rpc
