// replay_window.h: has this sequence number been seen before?
//
// Contract
//   - A sliding window in the manner of [RFC 6479] ("IPsec Anti-Replay
//     Algorithm without Bit Shifting"): the highest number seen plus a
//     circular bitmap of the kWindow numbers at or below it. A number is
//     accepted once; numbers more than kWindow below the highest are
//     refused as too old (they may never have been seen, but we cannot tell).
//   - Used by login (login.h) for the per-session login sequence numbers,
//     which may arrive out of order (users' agents sign concurrently).
//   - Plain value type; not thread-safe.
#pragma once

#include <array>
#include <cstdint>

namespace sfs {

class ReplayWindow {
 public:
  static constexpr std::uint64_t kWindow = 1024;

  enum class Verdict : std::uint8_t { kFresh, kReplayed, kTooOld };

  // Records `seq` if it is fresh.
  Verdict check_and_record(std::uint64_t seq);

 private:
  static constexpr std::uint64_t kWordBits = 64;
  bool any_ = false;
  std::uint64_t highest_ = 0;
  std::array<std::uint64_t, kWindow / kWordBits> bits_{};
};

}  // namespace sfs
