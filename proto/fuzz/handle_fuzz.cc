// handle_fuzz: sfsd's sealed-handle opener (handle_seal.h) on arbitrary
// bytes, the check every file call's handles go through before anything
// reaches the backend.
//
// Properties, per input:
//   1. open() never crashes and never yields more than a backend handle
//      (at most 64 bytes).
//   2. Whatever opens was sealed by us: resealing it under its key gives
//      the input back, byte for byte (one sealed form per handle, so a
//      client cannot make two names for one file).
//   3. Any handle (the input's first 64 bytes) seals to something that
//      opens to it again; flipping one bit of the sealed form refuses it.
//   4. A key past its grace opens nothing, whenever the sealer was made.
//   5. What opens unbound does not open bound to an export, and the other
//      way round.
// Keys are fixed (fuzz_keys.h) so the seeds stay valid.
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "fuzz_keys.h"

namespace {

using namespace std::chrono_literals;
using sfs_fuzz::at;
using sfs_fuzz::handle_keys;
constexpr std::int64_t kNow = sfs_fuzz::kKeyEpoch;

// Key 1 seals; key 2 was rotated out an hour before it and is still in its
// grace.
const sfsd::HandleSealer& sealer() {
  static const sfsd::HandleSealer s(handle_keys({1, 2}), 24h, at(kNow));
  return s;
}

// The same keys once the grace is over: what key 2 sealed opens no more.
const sfsd::HandleSealer& later() {
  static const sfsd::HandleSealer s(handle_keys({1, 2}), 24h, at(kNow + 25 * 3600));
  return s;
}

// The same keys bound to an export (root handle 1, 2, 3, 4).
const sfsd::HandleSealer& bound() {
  static const auto s = sealer().bound_to(asmp::nfs::FileHandle(std::vector<std::uint8_t>{1, 2, 3, 4}));
  return *s;
}

// Before the rotation: key 2 sealed.
const sfsd::HandleSealer& before() {
  static const sfsd::HandleSealer s(handle_keys({2}), 24h, at(kNow - 3600));
  return s;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::uint8_t> input(data, size);

  // 1, 2, 4.
  const asmp::nfs::FileHandle fh = sealer().open(input, at(kNow));
  if (fh.size() > asmp::nfs::FileHandle::kMaxSize) std::abort();
  if (!fh.empty()) {
    if (input[1] != 1 && input[1] != 2) std::abort();  // no other key exists
    const sfsd::HandleSealer& by = input[1] == 1 ? sealer() : before();
    if (by.seal(fh) != std::vector<std::uint8_t>(input.begin(), input.end())) std::abort();
    if (input[1] == 2 && !later().open(input, at(kNow + 25 * 3600)).empty()) std::abort();
    // open() checks the grace again at its own time: key 2 is past it
    // there even for the sealer made while it was in it.
    if (input[1] == 2 && !sealer().open(input, at(kNow + 25 * 3600)).empty()) std::abort();
    // Bound to an export, the same keys open nothing sealed unbound.
    if (!bound().open(input, at(kNow)).empty()) std::abort();
  }

  // 3.
  const asmp::nfs::FileHandle any(input.first(std::min(size, asmp::nfs::FileHandle::kMaxSize)));
  if (!any.empty()) {
    std::vector<std::uint8_t> sealed = sealer().seal(any);
    if (sealed.size() != any.size() + sfsd::kSealOverhead || sealed.size() > sfsd::kSealedHandleMax)
      std::abort();
    if (!(sealer().open(sealed, at(kNow)) == any)) std::abort();
    const std::vector<std::uint8_t> for_export = bound().seal(any);
    if (!(bound().open(for_export, at(kNow)) == any) || !sealer().open(for_export, at(kNow)).empty())
      std::abort();
    const std::size_t bit = (size * 131u) % (sealed.size() * 8);
    sealed[bit / 8] ^= static_cast<std::uint8_t>(1u << (bit % 8));
    if (!sealer().open(sealed, at(kNow)).empty()) std::abort();
  }
  return 0;
}
