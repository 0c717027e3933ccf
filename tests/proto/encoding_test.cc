// Tests for sfs/encoding.h: base32 against RFC 4648 section 10 (lowercased),
// strict decoding, and the bounds-checked wire reader.
#include "sfs/encoding.h"

#include <gtest/gtest.h>

#include "test_util.h"

namespace sfs {
namespace {

TEST(Base32, Rfc4648Vectors) {
  // [RFC 4648] 10, BASE32 test vectors, lowercased and without padding.
  const std::pair<const char*, const char*> cases[] = {
      {"", ""},           {"f", "my"},           {"fo", "mzxq"},          {"foo", "mzxw6"},
      {"foob", "mzxw6yq"}, {"fooba", "mzxw6ytb"}, {"foobar", "mzxw6ytboi"},
  };
  for (auto [plain, encoded] : cases) {
    EXPECT_EQ(base32_encode(as_bytes(plain)), encoded) << plain;
    auto back = base32_decode(encoded);
    ASSERT_TRUE(back.has_value()) << encoded;
    EXPECT_EQ(std::string(back->begin(), back->end()), plain);
  }
}

TEST(Base32, RoundTripsEveryLength) {
  Bytes b;
  for (int n = 0; n < 70; ++n) {
    const std::string text = base32_encode(b);
    EXPECT_EQ(text.size(), base32_length(b.size()));
    auto back = base32_decode(text);
    ASSERT_TRUE(back.has_value()) << n;
    EXPECT_EQ(*back, b);
    b.push_back(static_cast<std::uint8_t>(n * 37 + 11));
  }
}

TEST(Base32, RejectsNonCanonicalText) {
  EXPECT_FALSE(base32_decode("MZXW6").has_value());      // uppercase
  EXPECT_FALSE(base32_decode("my======").has_value());   // padding
  EXPECT_FALSE(base32_decode("mzxw1").has_value());      // '1' is not in the alphabet
  EXPECT_FALSE(base32_decode("mzxw6 ").has_value());     // whitespace
  EXPECT_FALSE(base32_decode("m").has_value());          // impossible length
  EXPECT_FALSE(base32_decode("mzx").has_value());        // impossible length
  EXPECT_FALSE(base32_decode("mz").has_value());         // "my" with non-zero spare bits
  EXPECT_TRUE(base32_decode("my").has_value());
}

TEST(Hex, RoundTripAndRejects) {
  const Bytes b = {0x00, 0x7f, 0x80, 0xff};
  EXPECT_EQ(hex_encode(b), "007f80ff");
  EXPECT_EQ(hex_decode("007F80ff"), b);
  EXPECT_FALSE(hex_decode("0").has_value());
  EXPECT_FALSE(hex_decode("zz").has_value());
}

TEST(WireReader, NeverReadsPastTheEnd) {
  const Bytes b = {1, 2, 3};
  WireReader r(b);
  EXPECT_EQ(r.u16(), 0x0102);
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(r.u32(), 0u);  // only one byte left
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.u8(), 0);  // sticky failure
  EXPECT_FALSE(r.done());
}

TEST(WireReader, LengthPrefixedBytes) {
  const Bytes b = {3, 'a', 'b', 'c', 9, 'x'};
  WireReader r(b);
  ByteSpan s = r.bytes8();
  EXPECT_EQ(std::string(s.begin(), s.end()), "abc");
  EXPECT_TRUE(r.ok());
  EXPECT_TRUE(r.bytes8().empty());  // claims 9, has 1
  EXPECT_FALSE(r.ok());
}

TEST(WireWriter, BigEndian) {
  WireWriter w;
  w.u8(1);
  w.u16(0x0203);
  w.u32(0x04050607);
  w.u64(0x08090a0b0c0d0e0fULL);
  EXPECT_EQ(hex_encode(w.buffer()), "0102030405060708090a0b0c0d0e0f");
}

}  // namespace
}  // namespace sfs
