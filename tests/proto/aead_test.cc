// Tests for sfs/aead.h: published known-answer tests for both
// implementations, byte identity between them, in-place use, context reuse,
// and tag verification.
#include "sfs/aead.h"

#include <gtest/gtest.h>
#include <sodium.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "test_util.h"

namespace sfs {
namespace {

using test::unhex;

struct Kat {
  const char* name;
  AeadAlg alg;
  const char* key;
  const char* nonce;
  const char* ad;
  std::string plaintext;  // hex
  const char* sealed;     // ciphertext || tag, hex
};

std::string ascii_hex(std::string_view s) { return hex_encode(as_bytes(s)); }

std::vector<Kat> kats() {
  return {
      // [RFC 8439] 2.8.2, "Example and Test Vector for AEAD_CHACHA20_POLY1305".
      {"rfc8439-2.8.2", AeadAlg::kChaCha20Poly1305,
       "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f",
       "070000004041424344454647", "50515253c0c1c2c3c4c5c6c7",
       ascii_hex("Ladies and Gentlemen of the class of '99: If I could offer you only one tip "
                 "for the future, sunscreen would be it."),
       "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d6"
       "3dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b36"
       "92ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc"
       "3ff4def08e4b7a9de576d26586cec64b6116"
       "1ae10b594f09e26a7e902ecbd0600691"},
      // McGrew & Viega, "The Galois/Counter Mode of Operation (GCM)", test
      // case 16 (AES-256, 60-byte plaintext, 20-byte AAD, 96-bit IV).
      {"gcm-test-case-16", AeadAlg::kAes256Gcm,
       "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
       "cafebabefacedbaddecaf888", "feedfacedeadbeeffeedfacedeadbeefabaddad2",
       "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
       "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
       "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
       "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662"
       "76fc6ece0f4e1768cddf8853bb2d551b"},
      // Same, test case 13 (AES-256, empty plaintext, no AAD, zero key/IV).
      {"gcm-test-case-13", AeadAlg::kAes256Gcm,
       "0000000000000000000000000000000000000000000000000000000000000000",
       "000000000000000000000000", "", "", "530f8afbc74536b9a963b4f1c4cb738b"},
  };
}

const AeadImpl kImpls[] = {AeadImpl::kSodium, AeadImpl::kOpenSsl};
const AeadAlg kAlgs[] = {AeadAlg::kChaCha20Poly1305, AeadAlg::kAes256Gcm};

std::unique_ptr<Aead> make(AeadAlg alg, AeadImpl impl, const Bytes& key) {
  auto a = make_aead(alg, impl, test::to_array<32>(key));
  if (!a && impl == AeadImpl::kSodium && alg == AeadAlg::kAes256Gcm)
    ADD_FAILURE() << "libsodium AES-256-GCM unavailable on this CPU (needs AES-NI)";
  return a;
}

TEST(AeadKat, BothImplementationsSealAndOpen) {
  for (const Kat& k : kats()) {
    for (AeadImpl impl : kImpls) {
      SCOPED_TRACE(std::string(k.name) + " / " + std::string(aead_impl_name(impl)));
      auto a = make(k.alg, impl, unhex(k.key));
      ASSERT_NE(a, nullptr);
      const auto nonce = test::to_array<12>(unhex(k.nonce));
      const Bytes ad = unhex(k.ad);
      const Bytes pt = unhex(k.plaintext);
      Bytes out(pt.size() + kAeadTagBytes);
      ASSERT_TRUE(a->seal(nonce, ad, pt, out));
      EXPECT_EQ(hex_encode(out), k.sealed);
      Bytes back(pt.size());
      ASSERT_TRUE(a->open(nonce, ad, unhex(k.sealed), back));
      EXPECT_EQ(back, pt);
    }
  }
}

TEST(AeadCross, ByteIdenticalAcrossImplementations) {
  Bytes key(32);
  randombytes_buf(key.data(), key.size());
  for (AeadAlg alg : kAlgs) {
    auto sodium = make(alg, AeadImpl::kSodium, key);
    auto openssl = make(alg, AeadImpl::kOpenSsl, key);
    ASSERT_TRUE(sodium && openssl);
    for (std::size_t n : {0u, 1u, 15u, 16u, 17u, 63u, 64u, 255u, 1000u, 4096u, 65536u, 65557u}) {
      SCOPED_TRACE(std::string(aead_name(alg)) + " n=" + std::to_string(n));
      Bytes pt(n), ad(n % 29);
      for (std::size_t i = 0; i < pt.size(); ++i) pt[i] = static_cast<std::uint8_t>(i * 131 + n);
      for (std::size_t i = 0; i < ad.size(); ++i) ad[i] = static_cast<std::uint8_t>(i + 7);
      AeadNonce nonce;
      randombytes_buf(nonce.data(), nonce.size());
      Bytes a(n + kAeadTagBytes), b(n + kAeadTagBytes);
      ASSERT_TRUE(sodium->seal(nonce, ad, pt, a));
      ASSERT_TRUE(openssl->seal(nonce, ad, pt, b));
      EXPECT_EQ(a, b);
      // Seal with one, open with the other, both ways.
      Bytes back(n);
      ASSERT_TRUE(openssl->open(nonce, ad, a, back));
      EXPECT_EQ(back, pt);
      std::fill(back.begin(), back.end(), 0);
      ASSERT_TRUE(sodium->open(nonce, ad, b, back));
      EXPECT_EQ(back, pt);
    }
  }
}

TEST(AeadReuse, OneObjectManyNoncesMatchesFreshObjects) {
  // The OpenSSL implementation keys its EVP context once and only resets the
  // nonce per call; every call must equal a freshly keyed object's output.
  const Bytes key = unhex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f");
  for (AeadAlg alg : kAlgs) {
    for (AeadImpl impl : kImpls) {
      auto reused = make(alg, impl, key);
      ASSERT_NE(reused, nullptr);
      for (int i = 0; i < 20; ++i) {
        AeadNonce nonce{};
        nonce[11] = static_cast<std::uint8_t>(i);
        Bytes pt(100 + i * 7, static_cast<std::uint8_t>(i));
        const Bytes ad = {1, 2, static_cast<std::uint8_t>(i)};
        Bytes a(pt.size() + kAeadTagBytes), b(pt.size() + kAeadTagBytes);
        ASSERT_TRUE(reused->seal(nonce, ad, pt, a));
        ASSERT_TRUE(make(alg, impl, key)->seal(nonce, ad, pt, b));
        EXPECT_EQ(a, b) << aead_name(alg) << " " << aead_impl_name(impl) << " i=" << i;
        if (i % 3 == 0) {  // interleave opens on the same object
          Bytes back(pt.size());
          ASSERT_TRUE(reused->open(nonce, ad, a, back));
          EXPECT_EQ(back, pt);
        }
      }
    }
  }
}

TEST(AeadInPlace, SealAndOpenInPlace) {
  const Bytes key(32, 7);
  for (AeadAlg alg : kAlgs) {
    for (AeadImpl impl : kImpls) {
      auto a = make(alg, impl, key);
      ASSERT_NE(a, nullptr);
      const AeadNonce nonce{1};
      Bytes pt(5000);
      for (std::size_t i = 0; i < pt.size(); ++i) pt[i] = static_cast<std::uint8_t>(i);
      Bytes expect(pt.size() + kAeadTagBytes);
      ASSERT_TRUE(a->seal(nonce, {}, pt, expect));
      Bytes buf = pt;
      buf.resize(pt.size() + kAeadTagBytes);
      ASSERT_TRUE(a->seal(nonce, {}, std::span(buf).first(pt.size()), buf));
      EXPECT_EQ(buf, expect) << aead_name(alg) << " " << aead_impl_name(impl);
      ASSERT_TRUE(a->open(nonce, {}, buf, buf));
      EXPECT_TRUE(std::equal(pt.begin(), pt.end(), buf.begin()));
    }
  }
}

// seal_pieces() of a plaintext cut anywhere (inside a cipher block, empty
// pieces, one byte each) is seal() of the whole.
TEST(AeadPieces, AnyCutSealsAsTheWhole) {
  Bytes key(32);
  randombytes_buf(key.data(), key.size());
  for (AeadAlg alg : kAlgs) {
    for (AeadImpl impl : kImpls) {
      auto a = make(alg, impl, key);
      ASSERT_NE(a, nullptr);
      for (std::size_t n : {0u, 1u, 17u, 100u, 5000u, 65557u}) {
        Bytes pt(n);
        for (std::size_t i = 0; i < n; ++i) pt[i] = static_cast<std::uint8_t>(i * 7 + n);
        const Bytes ad = {4, 0, 1, 2};
        AeadNonce nonce;
        randombytes_buf(nonce.data(), nonce.size());
        Bytes whole(n + kAeadTagBytes);
        ASSERT_TRUE(a->seal(nonce, ad, pt, whole));
        const std::vector<std::vector<std::size_t>> cuts = {
            {}, {0}, {n / 3}, {1, n / 2}, {n / 2, n / 2, n}, {7, 63, 64, 65}};
        for (const auto& cut : cuts) {
          std::vector<std::span<const std::uint8_t>> pieces;
          std::size_t at = 0;
          for (std::size_t c : cut) {
            c = std::min(std::max(c, at), n);
            pieces.emplace_back(pt.data() + at, c - at);
            at = c;
          }
          pieces.emplace_back(pt.data() + at, n - at);
          Bytes got(n + kAeadTagBytes, 0xee);
          ASSERT_TRUE(a->seal_pieces(nonce, ad, pieces, got));
          EXPECT_EQ(got, whole) << aead_name(alg) << " " << aead_impl_name(impl) << " n=" << n << " in "
                                << pieces.size() << " pieces";
        }
        // One byte per piece (small n only: a call per byte).
        if (n <= 100) {
          std::vector<std::span<const std::uint8_t>> bytes;
          for (std::size_t i = 0; i < n; ++i) bytes.emplace_back(pt.data() + i, 1);
          Bytes got(n + kAeadTagBytes);
          ASSERT_TRUE(a->seal_pieces(nonce, ad, bytes, got));
          EXPECT_EQ(got, whole) << aead_name(alg) << " " << aead_impl_name(impl) << " n=" << n << " bytewise";
        }
        Bytes small(n + kAeadTagBytes - 1);
        const std::span<const std::uint8_t> one = pt;
        EXPECT_FALSE(a->seal_pieces(nonce, ad, {&one, 1}, small)) << "an output one byte short";
      }
    }
  }
}

TEST(AeadVerify, RejectsAnyChangeAndZeroesOutput) {
  const Bytes key(32, 9);
  for (AeadAlg alg : kAlgs) {
    for (AeadImpl impl : kImpls) {
      SCOPED_TRACE(std::string(aead_name(alg)) + " / " + std::string(aead_impl_name(impl)));
      auto a = make(alg, impl, key);
      ASSERT_NE(a, nullptr);
      const AeadNonce nonce{};
      const Bytes pt(64, 0xab), ad = {9, 9};
      Bytes sealed(pt.size() + kAeadTagBytes);
      ASSERT_TRUE(a->seal(nonce, ad, pt, sealed));
      Bytes out(pt.size());
      for (std::size_t i = 0; i < sealed.size(); i += 7) {
        Bytes bad = sealed;
        bad[i] ^= 0x01;
        std::fill(out.begin(), out.end(), 0xee);
        EXPECT_FALSE(a->open(nonce, ad, bad, out)) << "byte " << i;
        EXPECT_EQ(out, Bytes(pt.size(), 0)) << "unauthenticated plaintext left in buffer";
      }
      const Bytes other_ad = {9, 8};
      EXPECT_FALSE(a->open(nonce, other_ad, sealed, out));
      AeadNonce other_nonce{};
      other_nonce[11] = 1;
      EXPECT_FALSE(a->open(other_nonce, ad, sealed, out));
      EXPECT_FALSE(a->open(nonce, ad, std::span(sealed).first(kAeadTagBytes - 1), out));
      EXPECT_TRUE(a->open(nonce, ad, sealed, out));
    }
  }
}

TEST(AeadChoice, ForcedAndAuto) {
  for (AeadAlg alg : kAlgs) {
    EXPECT_EQ(choose_aead_impl(alg, AeadImplChoice::kOpenSsl), AeadImpl::kOpenSsl);
    if (aead_available(alg, AeadImpl::kSodium)) {
      EXPECT_EQ(choose_aead_impl(alg, AeadImplChoice::kSodium), AeadImpl::kSodium);
    }
    const AeadImpl first = choose_aead_impl(alg);
    EXPECT_EQ(choose_aead_impl(alg), first) << "auto choice must be stable within a process";
  }
  EXPECT_GT(measure_aead(AeadAlg::kChaCha20Poly1305, AeadImpl::kOpenSsl, 4096, 4), 0.0);
}

TEST(AeadNames, WireIdsAndNames) {
  EXPECT_EQ(aead_from_wire_id(1), AeadAlg::kChaCha20Poly1305);
  EXPECT_EQ(aead_from_wire_id(2), AeadAlg::kAes256Gcm);
  EXPECT_FALSE(aead_from_wire_id(0).has_value());
  EXPECT_FALSE(aead_from_wire_id(3).has_value());
  for (AeadAlg alg : kAlgs) EXPECT_EQ(aead_from_name(aead_name(alg)), alg);
  EXPECT_EQ(aead_impl_choice_from_name("openssl"), AeadImplChoice::kOpenSsl);
  EXPECT_FALSE(aead_impl_choice_from_name("fast").has_value());
}

}  // namespace
}  // namespace sfs
