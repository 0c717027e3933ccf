// Tests for sfs/channel.h: records round-trip; tampering, replay,
// reordering, truncation and oversize are each refused and kill the
// channel; counters stop before wrapping; keys ratchet in step.
#include "sfs/channel.h"

#include <gtest/gtest.h>
#include <openssl/crypto.h>

#include <cstdlib>
#include <new>
#include <string>
#include <vector>

#include "test_util.h"

// Allocation counting for the "no allocation per record" test: C++
// operator new (our code) and OpenSSL's allocator (EVP), counted only on a
// thread that asks for it.
namespace {
thread_local bool g_counting = false;
thread_local long g_allocations = 0;

void* counting_malloc(std::size_t n, const char*, int) {
  if (g_counting) ++g_allocations;
  return std::malloc(n);
}
void* counting_realloc(void* p, std::size_t n, const char*, int) {
  if (g_counting) ++g_allocations;
  return std::realloc(p, n);
}
void counting_free(void* p, const char*, int) { std::free(p); }

// Runs before main, so before any OpenSSL allocation (else it is refused
// and the test skips).
const bool g_openssl_counted =
    CRYPTO_set_mem_functions(counting_malloc, counting_realloc, counting_free) == 1;
}  // namespace

void* operator new(std::size_t n) {
  if (g_counting) ++g_allocations;
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
// noinline: else GCC sees free() of a new'd pointer at each inlined delete
// and warns (-Wmismatched-new-delete), though the pair is consistent.
[[gnu::noinline]] void operator delete(void* p) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace sfs {
namespace {

using test::counting_key;

struct Pair {
  SealState seal;
  OpenState open;
};

Pair make_pair(AeadAlg alg, AeadImpl seal_impl, AeadImpl open_impl,
               const ChannelConfig& config = {}) {
  const AeadKey key = counting_key(0);
  return Pair{SealState(alg, seal_impl, key, config), OpenState(alg, open_impl, key, config)};
}

Bytes seal_text(SealState& s, std::string_view text) {
  Bytes out(SealState::sealed_size(text.size()));
  const RecordResult r = s.seal(as_bytes(text), out);
  EXPECT_TRUE(r.ok()) << describe(r.error);
  out.resize(r.bytes);
  return out;
}

std::string open_text(OpenState& o, const Bytes& record, ChannelError* error = nullptr) {
  Bytes out(record.size());
  const RecordResult r = o.open(record, out);
  if (error) *error = r.error;
  if (!r.ok()) return "<" + std::string(describe(r.error)) + ">";
  return std::string(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(r.bytes));
}

class ChannelTest : public ::testing::TestWithParam<std::tuple<AeadAlg, AeadImpl, AeadImpl>> {
 protected:
  Pair pair(const ChannelConfig& config = {}) {
    auto [alg, s, o] = GetParam();
    return make_pair(alg, s, o, config);
  }
};

TEST_P(ChannelTest, RoundTripInOrder) {
  Pair p = pair();
  for (int i = 0; i < 50; ++i) {
    const std::string msg(static_cast<std::size_t>(i * 31), static_cast<char>('a' + i % 26));
    const Bytes rec = seal_text(p.seal, msg);
    EXPECT_EQ(rec.size(), msg.size() + kRecordOverhead);
    EXPECT_EQ(open_text(p.open, rec), msg);
  }
  EXPECT_EQ(p.seal.sequence(), 50u);
  EXPECT_EQ(p.open.sequence(), 50u);
}

TEST_P(ChannelTest, TamperingAnyByteIsRefusedAndKills) {
  const Bytes clean = [&] {
    Pair p = pair();
    return seal_text(p.seal, "attack at dawn, bring the file handles");
  }();
  for (std::size_t i = 0; i < clean.size(); ++i) {
    Pair p = pair();
    Bytes rec = seal_text(p.seal, "attack at dawn, bring the file handles");
    ASSERT_EQ(rec, clean);
    rec[i] ^= 0x20;
    ChannelError e;
    open_text(p.open, rec, &e);
    if (i < kRecordHeaderBytes) {
      // A changed length is caught as a length error or by the tag (the
      // length is the associated data).
      EXPECT_TRUE(e == ChannelError::kTampered || e == ChannelError::kTruncated ||
                  e == ChannelError::kMalformed || e == ChannelError::kOversized)
          << "byte " << i << ": " << describe(e);
    } else {
      EXPECT_EQ(e, ChannelError::kTampered) << "byte " << i;
    }
    EXPECT_TRUE(p.open.dead());
    // Dead for good: even the untouched record is now refused.
    open_text(p.open, clean, &e);
    EXPECT_EQ(e, ChannelError::kDead);
  }
}

TEST_P(ChannelTest, ReplayIsRefused) {
  Pair p = pair();
  const Bytes r0 = seal_text(p.seal, "first");
  EXPECT_EQ(open_text(p.open, r0), "first");
  ChannelError e;
  open_text(p.open, r0, &e);
  EXPECT_EQ(e, ChannelError::kTampered);
  EXPECT_TRUE(p.open.dead());
}

TEST_P(ChannelTest, ReorderIsRefused) {
  Pair p = pair();
  const Bytes r0 = seal_text(p.seal, "zero");
  const Bytes r1 = seal_text(p.seal, "one");
  ChannelError e;
  open_text(p.open, r1, &e);
  EXPECT_EQ(e, ChannelError::kTampered);
  open_text(p.open, r0, &e);
  EXPECT_EQ(e, ChannelError::kDead);
}

TEST_P(ChannelTest, DroppedRecordIsDetected) {
  Pair p = pair();
  (void)seal_text(p.seal, "zero");
  const Bytes r1 = seal_text(p.seal, "one");
  ChannelError e;
  open_text(p.open, r1, &e);
  EXPECT_EQ(e, ChannelError::kTampered);
}

TEST_P(ChannelTest, TruncationIsRefused) {
  for (std::size_t cut : {std::size_t{0}, std::size_t{2}, std::size_t{4}, std::size_t{10},
                          std::size_t{24}}) {
    Pair p = pair();
    const Bytes rec = seal_text(p.seal, "twelve bytes");  // 32 bytes on the wire
    ASSERT_GT(rec.size(), cut);
    ChannelError e;
    open_text(p.open, Bytes(rec.begin(), rec.begin() + static_cast<std::ptrdiff_t>(cut)), &e);
    EXPECT_EQ(e, ChannelError::kTruncated) << "cut at " << cut;
    EXPECT_TRUE(p.open.dead());
  }
}

TEST_P(ChannelTest, TrailingBytesAreRefused) {
  Pair p = pair();
  Bytes rec = seal_text(p.seal, "x");
  rec.push_back(0);
  ChannelError e;
  open_text(p.open, rec, &e);
  EXPECT_EQ(e, ChannelError::kMalformed);
}

TEST_P(ChannelTest, OversizeIsRefusedOnBothSides) {
  ChannelConfig small;
  small.max_plaintext = 100;
  {
    Pair p = pair(small);
    Bytes out(SealState::sealed_size(101));
    EXPECT_EQ(p.seal.seal(Bytes(101), out).error, ChannelError::kOversized);
    EXPECT_TRUE(p.seal.dead());
  }
  {
    // A peer with a larger limit sends 101 bytes: refused from the header
    // alone, before any body would be read.
    Pair big = pair();
    const Bytes rec = seal_text(big.seal, std::string(101, 'z'));
    Pair p = pair(small);
    const RecordResult hdr = p.open.record_size(rec);
    EXPECT_EQ(hdr.error, ChannelError::kOversized);
    EXPECT_TRUE(p.open.dead());
  }
  {
    Pair big = pair();
    const Bytes rec = seal_text(big.seal, std::string(101, 'z'));
    Pair p = pair(small);
    ChannelError e;
    open_text(p.open, rec, &e);
    EXPECT_EQ(e, ChannelError::kOversized);
  }
  {
    // A length field claiming 4 GiB.
    Pair p = pair();
    const Bytes hdr = {0xff, 0xff, 0xff, 0xff};
    EXPECT_EQ(p.open.record_size(hdr).error, ChannelError::kOversized);
  }
  {
    // A length too small to hold a tag.
    Pair p = pair();
    const Bytes hdr = {0, 0, 0, 15};
    EXPECT_EQ(p.open.record_size(hdr).error, ChannelError::kMalformed);
  }
}

TEST_P(ChannelTest, RecordSizeAnnouncesWholeRecord) {
  Pair p = pair();
  const Bytes rec = seal_text(p.seal, "hello");
  const RecordResult r = p.open.record_size(std::span(rec).first(kRecordHeaderBytes));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.bytes, rec.size());
  EXPECT_EQ(open_text(p.open, rec), "hello");  // record_size consumed nothing
}

TEST_P(ChannelTest, InPlaceSealAndOpen) {
  Pair p = pair();
  const std::string msg(3000, 'q');
  Bytes buf(SealState::sealed_size(msg.size()));
  std::copy(msg.begin(), msg.end(), buf.begin() + kRecordHeaderBytes);
  const RecordResult s =
      p.seal.seal(std::span(buf).subspan(kRecordHeaderBytes, msg.size()), buf);
  ASSERT_TRUE(s.ok());
  const RecordResult o = p.open.open(buf, std::span(buf).subspan(kRecordHeaderBytes));
  ASSERT_TRUE(o.ok()) << describe(o.error);
  EXPECT_EQ(std::string(buf.begin() + kRecordHeaderBytes,
                        buf.begin() + kRecordHeaderBytes + static_cast<std::ptrdiff_t>(o.bytes)),
            msg);
}

TEST_P(ChannelTest, DetachedHeaderMatchesWholeRecord) {
  // seal_in_place / open_in_place keep the 4-byte length apart; the bytes
  // on the wire must be the same as seal()'s, and either side may mix them.
  Pair whole = pair();
  Pair detached = pair();
  for (int i = 0; i < 5; ++i) {
    const std::string msg(static_cast<std::size_t>(100 * i + 1), static_cast<char>('k' + i));
    const Bytes expect = seal_text(whole.seal, msg);
    Bytes body(msg.size() + kAeadTagBytes);
    std::copy(msg.begin(), msg.end(), body.begin());
    std::array<std::uint8_t, kRecordHeaderBytes> header{};
    const RecordResult s = detached.seal.seal_in_place(body, msg.size(), header);
    ASSERT_TRUE(s.ok()) << describe(s.error);
    EXPECT_EQ(s.bytes, body.size());
    Bytes wire(header.size() + body.size());
    std::copy(header.begin(), header.end(), wire.begin());
    std::copy(body.begin(), body.end(), wire.begin() + kRecordHeaderBytes);
    EXPECT_EQ(wire, expect) << "record " << i;
    // Open the whole-record output in place, and the detached output whole.
    Bytes in_place(expect.begin() + kRecordHeaderBytes, expect.end());
    const RecordResult o = detached.open.open_in_place(
        std::span<const std::uint8_t>(expect).first<kRecordHeaderBytes>(), in_place);
    ASSERT_TRUE(o.ok()) << describe(o.error);
    EXPECT_EQ(std::string(in_place.begin(), in_place.begin() + static_cast<std::ptrdiff_t>(o.bytes)),
              msg);
    EXPECT_EQ(open_text(whole.open, wire), msg);
  }
}

TEST_P(ChannelTest, DetachedOpenRefusesTamperedHeaderAndShortBody) {
  Pair p = pair();
  Bytes rec = seal_text(p.seal, "sixteen bytes!!!");
  std::array<std::uint8_t, kRecordHeaderBytes> header{};
  std::copy(rec.begin(), rec.begin() + 4, header.begin());
  Bytes body(rec.begin() + 4, rec.end());
  {
    Pair q = pair();
    Bytes short_body(body.begin(), body.end() - 1);
    EXPECT_EQ(q.open.open_in_place(header, short_body).error, ChannelError::kTruncated);
  }
  {
    // Claim one byte less and drop the last byte: lengths agree, tag fails.
    Pair q = pair();
    std::array<std::uint8_t, kRecordHeaderBytes> h2 = header;
    h2[3] -= 1;
    Bytes b2(body.begin(), body.end() - 1);
    EXPECT_EQ(q.open.open_in_place(h2, b2).error, ChannelError::kTampered);
  }
  Pair q = pair();
  EXPECT_TRUE(q.open.open_in_place(header, body).ok());
}

TEST_P(ChannelTest, SmallOutputBufferIsRefused) {
  Pair p = pair();
  Bytes out(10);
  EXPECT_EQ(p.seal.seal(as_bytes("twelve bytes"), out).error, ChannelError::kBufferTooSmall);
}

TEST_P(ChannelTest, StopsAtSequenceLimit) {
  ChannelConfig cfg;
  cfg.max_records = 3;
  Pair p = pair(cfg);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(open_text(p.open, seal_text(p.seal, "ok")), "ok");
  Bytes out(64);
  EXPECT_EQ(p.seal.seal(as_bytes("no"), out).error, ChannelError::kExhausted);
  EXPECT_EQ(p.seal.seal(as_bytes("no"), out).error, ChannelError::kDead);
}

TEST_P(ChannelTest, KeysRatchetInStep) {
  ChannelConfig cfg;
  cfg.rekey_interval_log2 = 2;  // a new key every 4 records
  Pair p = pair(cfg);
  Pair plain = pair();  // never ratchets within this test
  for (int i = 0; i < 13; ++i) {
    const std::string msg = "record " + std::to_string(i);
    const Bytes rec = seal_text(p.seal, msg);
    const Bytes no_ratchet = seal_text(plain.seal, msg);
    // Same key for the first epoch, different keys after.
    EXPECT_EQ(rec == no_ratchet, i < 4) << "record " << i;
    EXPECT_EQ(open_text(p.open, rec), msg) << "record " << i;
  }
}

TEST_P(ChannelTest, MismatchedRatchetIntervalFails) {
  ChannelConfig a, b;
  a.rekey_interval_log2 = 2;
  b.rekey_interval_log2 = 3;
  auto [alg, s, o] = GetParam();
  const AeadKey key = counting_key(0);
  SealState seal(alg, s, key, a);
  OpenState open(alg, o, key, b);
  ChannelError e = ChannelError::kOk;
  for (int i = 0; i < 5 && e == ChannelError::kOk; ++i) open_text(open, seal_text(seal, "x"), &e);
  EXPECT_EQ(e, ChannelError::kTampered);
}

INSTANTIATE_TEST_SUITE_P(
    AllImplementations, ChannelTest,
    ::testing::Combine(::testing::Values(AeadAlg::kChaCha20Poly1305, AeadAlg::kAes256Gcm),
                       ::testing::Values(AeadImpl::kSodium, AeadImpl::kOpenSsl),
                       ::testing::Values(AeadImpl::kSodium, AeadImpl::kOpenSsl)),
    [](const auto& param_info) {
      return std::string(std::get<0>(param_info.param) == AeadAlg::kChaCha20Poly1305 ? "chacha"
                                                                                 : "gcm") +
             "_" + std::string(aead_impl_name(std::get<1>(param_info.param))) + "_to_" +
             std::string(aead_impl_name(std::get<2>(param_info.param)));
    });

TEST(ChannelVector, FrozenRecords) {
  // docs/protocol.md, "Record format": key 00 01 .. 1f, records 0 and 1 of
  // "hello". Computed once, frozen here.
  const std::pair<AeadAlg, const char*> expect[] = {
      {AeadAlg::kChaCha20Poly1305, "0000001570dd2e5dc2aa4c089a7c71c03692c96cb904874a0e"},
      {AeadAlg::kChaCha20Poly1305, "00000015013910b55e4592ec4d053772e99bd17db880d22cdb"},
      {AeadAlg::kAes256Gcm, "0000001566d9d9b2dab2f5262d8e43e11bff6ae28d7da1687a"},
      {AeadAlg::kAes256Gcm, "000000157db3d3902bda7ce69b53352269eb60f4fc613bf49b"},
  };
  for (AeadImpl impl : {AeadImpl::kSodium, AeadImpl::kOpenSsl}) {
    for (int i = 0; i < 4; i += 2) {
      SealState s(expect[i].first, impl, counting_key(0));
      EXPECT_EQ(hex_encode(seal_text(s, "hello")), expect[i].second);
      EXPECT_EQ(hex_encode(seal_text(s, "hello")), expect[i + 1].second);
    }
  }
}

TEST(ChannelAllocation, NoAllocationPerRecord) {
  if (!g_openssl_counted) GTEST_SKIP() << "OpenSSL allocated before the counter was installed";
  for (AeadAlg alg : {AeadAlg::kChaCha20Poly1305, AeadAlg::kAes256Gcm}) {
    for (AeadImpl impl : {AeadImpl::kSodium, AeadImpl::kOpenSsl}) {
      Pair p = make_pair(alg, impl, impl);
      Bytes pt(65536, 1), rec(SealState::sealed_size(pt.size())), out(pt.size());
      ASSERT_TRUE(p.seal.seal(pt, rec).ok());  // first use outside the count
      ASSERT_TRUE(p.open.open(rec, out).ok());
      g_allocations = 0;
      g_counting = true;
      bool ok = true;
      for (int i = 0; i < 200 && ok; ++i) ok = p.seal.seal(pt, rec).ok() && p.open.open(rec, out).ok();
      g_counting = false;
      EXPECT_TRUE(ok);
      EXPECT_EQ(g_allocations, 0) << aead_name(alg) << " / " << aead_impl_name(impl);
    }
  }
  // The counter itself works: a channel's construction allocates.
  g_allocations = 0;
  g_counting = true;
  { Pair p = make_pair(AeadAlg::kAes256Gcm, AeadImpl::kOpenSsl, AeadImpl::kOpenSsl); }
  g_counting = false;
  EXPECT_GT(g_allocations, 0);
}

TEST(ChannelDescribe, EveryErrorHasText) {
  for (int e = 0; e <= static_cast<int>(ChannelError::kCryptoFailure); ++e)
    EXPECT_NE(describe(static_cast<ChannelError>(e)), "unknown channel error");
}

}  // namespace
}  // namespace sfs
