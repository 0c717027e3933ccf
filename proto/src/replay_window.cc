// replay_window.cc: see sfs/replay_window.h.
#include "sfs/replay_window.h"

namespace sfs {

ReplayWindow::Verdict ReplayWindow::check_and_record(std::uint64_t seq) {
  const auto bit = [](std::uint64_t s) { return std::uint64_t{1} << (s % kWordBits); };
  const auto word = [](std::uint64_t s) { return (s / kWordBits) % (kWindow / kWordBits); };
  if (!any_ || seq > highest_) {
    // Slide forward: forget the numbers that fall out of the window. Each
    // position of the circular bitmap between the old and new highest is
    // cleared once (all of them if we jumped a whole window or more).
    const std::uint64_t jump = any_ ? seq - highest_ : kWindow;
    if (jump >= kWindow) {
      bits_.fill(0);
    } else {
      for (std::uint64_t s = highest_ + 1; s != seq + 1; ++s) bits_[word(s)] &= ~bit(s);
    }
    any_ = true;
    highest_ = seq;
    bits_[word(seq)] |= bit(seq);
    return Verdict::kFresh;
  }
  if (highest_ - seq >= kWindow) return Verdict::kTooOld;
  if (bits_[word(seq)] & bit(seq)) return Verdict::kReplayed;
  bits_[word(seq)] |= bit(seq);
  return Verdict::kFresh;
}

}  // namespace sfs
