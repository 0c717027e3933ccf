// Tests for sfs/noise.h against an external interop vector for
// Noise_NX_25519_ChaChaPoly_BLAKE2b, and CipherState rules of [Noise] 5.1.
#include "sfs/noise.h"

#include <gtest/gtest.h>
#include <sodium.h>

#include "test_util.h"

namespace sfs::noise {
namespace {

using test::unhex;

Key32 filled(std::uint8_t b) {
  Key32 k;
  k.fill(b);
  return k;
}

Key32 public_of(const Key32& secret) {
  Key32 p;
  crypto_scalarmult_base(p.data(), secret.data());
  return p;
}

// The "Noise_NX_BLAKE2b interop vector" published with the Julia, Zig and C
// implementations in the todoforai project (initiator ephemeral 01..01,
// responder static 02..02, responder ephemeral 03..03). It replays the
// responder's symmetric-state steps of NX with an empty prologue; the steps
// below are exactly that vector's sequence of primitive calls.
TEST(NoiseVector, NxBlake2bInterop) {
  const Key32 i_e = filled(1), r_s = filled(2), r_e = filled(3);
  const Key32 i_e_pub = public_of(i_e), r_s_pub = public_of(r_s), r_e_pub = public_of(r_e);
  EXPECT_EQ(hex_encode(i_e_pub), "a4e09292b651c278b9772c569f5fa9bb13d906b46ab68c9df9dc2b4409f8a209");
  EXPECT_EQ(hex_encode(r_s_pub), "ce8d3ad1ccb633ec7b70c17814a5c76ecd029685050d344745ba05870e587d59");
  EXPECT_EQ(hex_encode(r_e_pub), "5dfedd3b6bd47f6fa28ee15d969d5bb0ea53774d488bdaf9df1c6e0124b3ef22");

  SymmetricState ss;
  initialize_symmetric(ss, "Noise_NX_25519_ChaChaPoly_BLAKE2b");
  mix_hash(ss, {});  // prologue
  mix_hash(ss, i_e_pub);
  mix_hash(ss, r_e_pub);
  std::array<std::uint8_t, kDhLen> shared;
  ASSERT_TRUE(dh(shared, r_e, i_e_pub));  // ee
  mix_key(ss, shared);
  Bytes out;
  ASSERT_TRUE(encrypt_and_hash(ss, r_s_pub, out));  // s
  ASSERT_TRUE(dh(shared, r_s, i_e_pub));            // es
  mix_key(ss, shared);
  ASSERT_TRUE(encrypt_and_hash(ss, {}, out));  // empty payload
  EXPECT_EQ(hex_encode(ss.h),
            "60456adc43864da532bfb6fc17d81798c87ddb9a1174ddffa2ed5380fc0cd34c"
            "f7518d337c5ecac0c41a4caaf1b5480344e3395fcec1f3ae8dd8e6a2c594f425");
  EXPECT_EQ(hex_encode(ss.ck),
            "575db4282c1573b3ac5aa64eea404f1ede78438b5604285d617c9ff69af77336"
            "217d957a52f0139ef9e0b5965d4741c2df7ba74ff84abae15fa2ab1f34d3af05");
  AeadKey k1, k2;
  split(ss, k1, k2);
  EXPECT_EQ(hex_encode(k1), "661e6648886a7bc3b3aefaafff70c1557806c5f515fff608bb2ddbe8b1cd3f6b");
  EXPECT_EQ(hex_encode(k2), "1fa3239cd269cb397fe050752a88901b704add45a77d44da155d16c64784dbf2");
  CipherState cs;
  cs.k = k1;
  cs.has_key = true;
  Bytes ct;
  ASSERT_TRUE(encrypt_with_ad(cs, {}, as_bytes("hello"), ct));
  EXPECT_EQ(hex_encode(ct), "5cb416d11148b739af724cb50da19b6a1a6c3d5da7");
}

TEST(NoiseCipherState, EmptyKeyPassesThrough) {
  CipherState cs;
  Bytes out;
  ASSERT_TRUE(encrypt_with_ad(cs, {}, as_bytes("abc"), out));
  EXPECT_EQ(std::string(out.begin(), out.end()), "abc");
}

TEST(NoiseCipherState, FailedDecryptDoesNotAdvanceNonce) {
  CipherState a, b;
  a.k = b.k = filled(9);
  a.has_key = b.has_key = true;
  Bytes ct;
  ASSERT_TRUE(encrypt_with_ad(a, {}, as_bytes("x"), ct));
  Bytes bad = ct, out;
  bad[0] ^= 1;
  EXPECT_FALSE(decrypt_with_ad(b, {}, bad, out));
  EXPECT_EQ(b.n, 0u);  // [Noise] 5.1: n is not incremented on failure
  EXPECT_TRUE(decrypt_with_ad(b, {}, ct, out));
  EXPECT_EQ(b.n, 1u);
}

TEST(NoiseCipherState, RefusesReservedNonce) {
  CipherState cs;
  cs.k = filled(9);
  cs.has_key = true;
  cs.n = ~std::uint64_t{0};
  Bytes out;
  EXPECT_FALSE(encrypt_with_ad(cs, {}, as_bytes("x"), out));
}

TEST(NoiseDh, RejectsLowOrderPoint) {
  std::array<std::uint8_t, kDhLen> shared;
  const Key32 zero{};
  EXPECT_FALSE(dh(shared, filled(5), zero));
  EXPECT_FALSE(dh(shared, filled(5), Bytes(31)));
}

TEST(NoiseHmac, DiffersFromKeyedBlake2b) {
  // HMAC must be the RFC 2104 construction, not BLAKE2b's keyed mode.
  const Key32 key = filled(1);
  const Hash h = hmac(key, as_bytes("data"));
  Hash keyed;
  crypto_generichash(keyed.data(), keyed.size(), reinterpret_cast<const unsigned char*>("data"), 4,
                     key.data(), key.size());
  EXPECT_NE(h, keyed);
  EXPECT_EQ(hmac(key, as_bytes("da"), as_bytes("ta")), h);  // parts concatenate
}

}  // namespace
}  // namespace sfs::noise
