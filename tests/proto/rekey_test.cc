// rekey_test.cc: the rekey's control messages and key schedule
// (sfs/rekey.h, docs/protocol.md 4.1), with a frozen vector.
#include "sfs/rekey.h"

#include <gtest/gtest.h>
#include <sodium.h>

#include <cstring>

#include "test_util.h"

namespace sfs {
namespace {

using test::counting_key;

Key32 public_of(const Key32& secret) {
  Key32 p;
  crypto_scalarmult_base(p.data(), secret.data());
  return p;
}

TEST(Rekey, ControlMessagesRoundTripAndRefuseAnythingElse) {
  std::uint8_t buf[kControlMaxPlaintext];
  const Key32 k = counting_key(7);
  for (ControlKind kind : {ControlKind::kRekey, ControlKind::kRekeyAck, ControlKind::kRekeyDone}) {
    const std::size_t n = encode_control({kind, k}, buf);
    EXPECT_EQ(n, kind == ControlKind::kRekeyDone ? 1u : 33u);
    auto m = decode_control({buf, n});
    ASSERT_TRUE(m.has_value());
    EXPECT_EQ(m->kind, kind);
    if (kind != ControlKind::kRekeyDone) EXPECT_EQ(m->key, k);
    if (n > 1) EXPECT_FALSE(decode_control({buf, n - 1}).has_value());
    std::uint8_t longer[kControlMaxPlaintext + 1] = {};
    std::memcpy(longer, buf, n);
    EXPECT_FALSE(decode_control({longer, n + 1}).has_value());
  }
  const std::uint8_t unknown[] = {0}, four[] = {4};
  EXPECT_FALSE(decode_control({unknown, 1}).has_value());
  EXPECT_FALSE(decode_control({four, 1}).has_value());
  EXPECT_FALSE(decode_control({}).has_value());
}

// docs/protocol.md 4.1: chain = the handshake vector's rekey chain (3.7),
// client ephemeral secret 80..9f, server ephemeral secret a0..bf.
TEST(Rekey, FrozenKeyScheduleVector) {
  noise::Hash chain;
  auto bytes = hex_decode(
      "ca7f8803d73dc47c552d4138cc17b0d6ce20a4fd0a330e6a91f3fba6b112a6b9"
      "19ada8d34452c8bcdf7f5f1c73eefd98630a90cdbd5a86b6b2ffd39f7d95f187");
  ASSERT_TRUE(bytes && bytes->size() == chain.size());
  std::memcpy(chain.data(), bytes->data(), chain.size());
  const Key32 c = counting_key(0x80), s = counting_key(0xa0);
  const Key32 cp = public_of(c), sp = public_of(s);
  auto at_client = derive_rekey(chain, c, sp, cp, sp);
  auto at_server = derive_rekey(chain, s, cp, cp, sp);
  ASSERT_TRUE(at_client && at_server);
  EXPECT_EQ(hex_encode(at_client->chain), hex_encode(at_server->chain));
  EXPECT_EQ(at_client->client_to_server, at_server->client_to_server);
  EXPECT_EQ(at_client->server_to_client, at_server->server_to_client);
  EXPECT_NE(at_client->client_to_server, at_client->server_to_client);
  EXPECT_EQ(hex_encode(at_client->chain),
            "4a74e0b262a3b5084a395f439adf8d447c7c8a30bd58e8e59f53d10f1713b836"
            "5ec10b0f291ce8a4d6850cef4e061014dd55ae115cd63cdb6d50ee416e9f7f7a");
  EXPECT_EQ(hex_encode(at_client->client_to_server),
            "06bac4751264f7fec95be7f96595f3fa16a3470887d6b586ceb569e9b55e0b63");
  EXPECT_EQ(hex_encode(at_client->server_to_client),
            "8f901386c8ea776d8e7fd1cc22bed8baab5e67a7de4c05073e3e9fe5887d2e39");
}

TEST(Rekey, ALowOrderKeyIsRefused) {
  noise::Hash chain{};
  const Key32 zero{};
  EXPECT_FALSE(derive_rekey(chain, counting_key(1), zero, zero, zero).has_value());
}

}  // namespace
}  // namespace sfs
