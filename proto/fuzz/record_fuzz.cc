// record_fuzz: the record decoder (channel.h) on arbitrary bytes.
//
// Three properties, per input:
//   1. A receiver fed the input as a stream of records (through open() or
//      open_in_place()) never crashes, never reads outside the input, and
//      stops at its first failure for good.
//   2. Sealing the input as plaintext and opening it gives the input back,
//      for every algorithm and implementation pairing.
//   3. Flipping any one bit of that record makes open() fail.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "sfs/channel.h"

namespace {

sfs::AeadKey fixed_key() {
  sfs::AeadKey k;
  for (std::size_t i = 0; i < k.size(); ++i) k[i] = static_cast<std::uint8_t>(i);
  return k;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const sfs::AeadAlg alg = data[0] & 1 ? sfs::AeadAlg::kAes256Gcm : sfs::AeadAlg::kChaCha20Poly1305;
  const sfs::AeadImpl seal_impl = data[0] & 2 ? sfs::AeadImpl::kOpenSsl : sfs::AeadImpl::kSodium;
  const sfs::AeadImpl open_impl = data[0] & 4 ? sfs::AeadImpl::kOpenSsl : sfs::AeadImpl::kSodium;
  sfs::ChannelConfig config;
  config.max_plaintext = 4096;
  config.rekey_interval_log2 = 1 + (data[0] >> 4);
  const std::span<const std::uint8_t> input(data + 1, size - 1);

  // 1. Stream decoding of hostile bytes.
  {
    sfs::OpenState open(alg, open_impl, fixed_key(), config);
    std::vector<std::uint8_t> out(config.max_plaintext);
    std::size_t pos = 0;
    bool failed = false;
    while (pos < input.size()) {
      const sfs::RecordResult hdr = open.record_size(input.subspan(pos));
      if (!hdr.ok()) {
        failed = true;
        break;
      }
      const std::size_t take = std::min(hdr.bytes, input.size() - pos);
      sfs::RecordResult r;
      if ((data[0] & 8) != 0 && take >= sfs::kRecordHeaderBytes) {
        // The detached-header variant, on a copy of the body.
        std::vector<std::uint8_t> body(input.begin() + static_cast<std::ptrdiff_t>(pos + 4),
                                       input.begin() + static_cast<std::ptrdiff_t>(pos + take));
        r = open.open_in_place(input.subspan(pos).first<sfs::kRecordHeaderBytes>(), body);
      } else {
        r = open.open(input.subspan(pos, take), out);
      }
      if (!r.ok()) {
        failed = true;
        break;
      }
      pos += take;
    }
    if (failed && open.open(input, out).error != sfs::ChannelError::kDead) std::abort();
  }

  // 2 and 3. Round trip and single-bit tampering.
  if (input.size() <= config.max_plaintext) {
    sfs::SealState seal(alg, seal_impl, fixed_key(), config);
    std::vector<std::uint8_t> rec(sfs::SealState::sealed_size(input.size()));
    // Two records, so the second uses sequence 1 (and, with a small
    // interval, a ratcheted key).
    for (int i = 0; i < 2; ++i)
      if (!seal.seal(input, rec).ok()) std::abort();
    sfs::OpenState open(alg, open_impl, fixed_key(), config);
    std::vector<std::uint8_t> scratch(rec.size());
    std::vector<std::uint8_t> out(input.size());
    {
      sfs::SealState first(alg, seal_impl, fixed_key(), config);
      if (!first.seal(input, scratch).ok()) std::abort();
      if (!open.open(scratch, out).ok()) std::abort();
    }
    const sfs::RecordResult r = open.open(rec, out);
    if (!r.ok() || r.bytes != input.size() ||
        (!input.empty() && std::memcmp(out.data(), input.data(), input.size()) != 0))
      std::abort();
    const std::size_t bit = (size * 7919u) % (rec.size() * 8);
    rec[bit / 8] ^= static_cast<std::uint8_t>(1u << (bit % 8));
    sfs::OpenState fresh(alg, open_impl, fixed_key(), config);
    if (!fresh.open(scratch, out).ok()) std::abort();
    if (fresh.open(rec, out).ok()) std::abort();
  }
  return 0;
}
