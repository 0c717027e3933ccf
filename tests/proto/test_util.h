// test_util.h: small helpers shared by the proto tests.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <string_view>

#include "sfs/encoding.h"
#include "sfs/keys.h"

namespace sfs::test {

inline Bytes unhex(std::string_view text) {
  std::string clean;
  for (char c : text)
    if (c != ' ' && c != '\n') clean.push_back(c);
  auto b = hex_decode(clean);
  EXPECT_TRUE(b.has_value()) << "bad hex literal in test";
  return b.value_or(Bytes{});
}

// 32 bytes start, start+1, ..., start+31: the fixed inputs of the vectors in
// docs/protocol.md.
inline Key32 counting_key(int start) {
  Key32 k;
  for (int i = 0; i < 32; ++i) k[i] = static_cast<std::uint8_t>(start + i);
  return k;
}

template <std::size_t N>
std::array<std::uint8_t, N> to_array(const Bytes& b) {
  std::array<std::uint8_t, N> a{};
  EXPECT_EQ(b.size(), N);
  for (std::size_t i = 0; i < N && i < b.size(); ++i) a[i] = b[i];
  return a;
}

}  // namespace sfs::test
