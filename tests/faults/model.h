// model.h: what a file may hold after faults, given what was acknowledged.
//
// The rules (docs/sfsclient.md, "Writes" and "Names and errors"):
//   - data of a write() is acknowledged when a later fsync() or close() of
//     the same descriptor returns 0; until then it may or may not reach the
//     server;
//   - a metadata call (create, open with O_TRUNC, truncate, rename, unlink)
//     is acknowledged when it returns 0: sfsd answers it after the NFSv3
//     call to the backend, and NFSv3 requires the server to have made such
//     a change stable before it replies (RFC 1813 section 3.3);
//   - an operation that failed (EIO, ENOTCONN, ...) during a fault may or
//     may not have happened: sfsclient fails a non-idempotent call whose
//     answer was lost rather than repeating it.
//
// So after a failure a name's state is one of a few Outcomes (a rename: not
// done, or done), each exact except for the bytes of writes not yet
// acknowledged. Such a write may be on the server whole, in part or not at
// all: a SIGKILLed ganesha can stop inside pwrite() between pages (the
// kernel checks for fatal signals there), and sfsclient may have sent some
// of a descriptor's writes and not others. So each of those bytes may hold
// the acknowledged value (zero past the old end) or the value of any
// unacknowledged write that covers it, and the size may be anywhere from
// the acknowledged size to the furthest end of those writes. Every other
// byte, and the size in every other case, must be exactly what was
// acknowledged: that is the property under test.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace faults {

// The bytes of one write, from its id alone (the journal names writes by
// id and length, so a run can be replayed from it).
inline std::string pattern(std::uint64_t id, std::size_t len) {
  std::string s(len, '\0');
  std::uint64_t x = id * 0x9e3779b97f4a7c15ull + 1;
  for (auto& c : s) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    c = static_cast<char>(x >> 32);
  }
  return s;
}

inline std::uint64_t fnv(const std::string& s) {
  std::uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

struct Write {
  std::uint64_t off;
  std::string data;
};

// The content after `w` lands whole (a hole before it reads as zeros).
inline void apply(std::string& content, const Write& w) {
  if (content.size() < w.off + w.data.size()) content.resize(w.off + w.data.size(), '\0');
  content.replace(w.off, w.data.size(), w.data);
}

// One possible state of one name. nullopt: the name does not exist.
struct Expect {
  std::optional<std::string> base;
  std::vector<Write> maybe;  // unacknowledged writes over base (see the top)
};

// "" if `actual` is allowed by `e`, else what differs (for a person).
inline std::string mismatch(const Expect& e, const std::optional<std::string>& actual) {
  if (!e.base && !actual) return "";
  if (!e.base) return "exists (" + std::to_string(actual->size()) + " bytes) but should not";
  if (!actual) return "is gone but " + std::to_string(e.base->size()) + " acknowledged bytes should be there";
  const std::string& a = *e.base;
  const std::string& c = *actual;
  std::uint64_t hi = a.size();
  for (const auto& w : e.maybe) hi = std::max<std::uint64_t>(hi, w.off + w.data.size());
  if (c.size() < a.size() || c.size() > hi)
    return "has " + std::to_string(c.size()) + " bytes, acknowledged " + std::to_string(a.size()) +
           (hi > a.size() ? " (up to " + std::to_string(hi) + " with unacknowledged writes)" : "");
  for (std::size_t i = 0; i < c.size(); ++i) {
    const char acked = i < a.size() ? a[i] : '\0';
    if (c[i] == acked) continue;
    bool covered = false;
    for (const auto& w : e.maybe)
      if (i >= w.off && i < w.off + w.data.size() && w.data[i - w.off] == c[i]) covered = true;
    if (covered) continue;
    char what[160];
    std::snprintf(what, sizeof what, "differs at byte %zu: 0x%02x, acknowledged 0x%02x (size %zu, acknowledged %zu)",
                  i, static_cast<unsigned char>(c[i]), static_cast<unsigned char>(acked), c.size(), a.size());
    return what;
  }
  return "";
}

// A joint state of several names (a rename moves content between two).
using Outcome = std::map<std::string, Expect>;

// "" if the observation matches one of the outcomes, else why not.
inline std::string no_outcome_matches(const std::vector<Outcome>& outcomes,
                                      const std::map<std::string, std::optional<std::string>>& seen) {
  std::string why;
  for (std::size_t k = 0; k < outcomes.size(); ++k) {
    std::string here;
    for (const auto& [name, e] : outcomes[k]) {
      const auto it = seen.find(name);
      const std::string m = mismatch(e, it == seen.end() ? std::nullopt : it->second);
      if (!m.empty()) here += " " + name + " " + m + ";";
    }
    if (here.empty()) return "";
    why += (outcomes.size() > 1 ? " [outcome " + std::to_string(k + 1) + "]" : "") + here;
  }
  return why;
}

// The journal: every acknowledged change (and every failed operation) of
// every writer, one line each, in a file outside the mount, with the
// content's size and hash after the change. The writers keep the content
// itself in memory (their model); the journal is what a person reads to
// replay a failure: write records carry the id that pattern() expands.
class Journal {
 public:
  explicit Journal(const std::string& path) : path_(path), out_(path), t0_(std::chrono::steady_clock::now()) {}
  void add(int writer, const std::string& what, const std::optional<std::string>& content = std::nullopt) {
    const double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
    char head[48];
    std::snprintf(head, sizeof head, "%9.3f w%d ", t, writer);
    std::string line = head + what;
    if (content) {
      char tail[64];
      std::snprintf(tail, sizeof tail, " -> size=%zu fnv=%016llx", content->size(),
                    static_cast<unsigned long long>(fnv(*content)));
      line += tail;
    }
    std::lock_guard lk(mu_);
    out_ << line << "\n";
    out_.flush();
  }
  const std::string& path() const { return path_; }

 private:
  std::mutex mu_;
  std::string path_;
  std::ofstream out_;
  std::chrono::steady_clock::time_point t0_;
};

}  // namespace faults
