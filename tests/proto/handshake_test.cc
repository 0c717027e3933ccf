// Tests for sfs/handshake.h: the handshake matrix (good per cipher, wrong
// HOSTID, wrong server key, wrong location, downgrade, impostor without the
// private key, tampering), malformed messages, a frozen transcript vector,
// and 100 concurrent handshakes.
#include "sfs/handshake.h"

#include <gtest/gtest.h>
#include <sodium.h>

#include <atomic>
#include <set>
#include <thread>

#include "test_util.h"

namespace sfs {
namespace {

using test::counting_key;

const Location kLoc{"sfs.example.org", 4000};

const ServerKey& vector_server_key() {
  static const ServerKey k = ServerKey::from_secrets(counting_key(0), counting_key(0x20));
  return k;
}

ClientHandshakeConfig client_config(const ServerPublicKey& expected,
                                    std::vector<AeadAlg> offer = default_cipher_offer(),
                                    Location loc = kLoc) {
  return ClientHandshakeConfig{name_for(loc, expected), std::move(offer)};
}

struct Outcome {
  Result<ClientResult> client;
  ServerResult server;
};

Outcome run(ClientHandshake& c, ServerHandshake& s) {
  auto m1 = c.start();
  EXPECT_TRUE(m1.ok()) << m1.error();
  ServerResult sr = s.respond(m1.ok() ? m1.value() : Bytes{});
  auto cr = c.finish(sr.reply);
  return Outcome{std::move(cr), std::move(sr)};
}

void expect_channel_works(const SessionKeys& client, const SessionKeys& server, AeadImplChoice ci,
                          AeadImplChoice si) {
  SecureChannel c = make_channel(client, Role::kClient, ci);
  SecureChannel s = make_channel(server, Role::kServer, si);
  for (const std::string msg : {"ping", "a somewhat longer second record"}) {
    Bytes rec(SealState::sealed_size(msg.size())), out(msg.size());
    ASSERT_TRUE(c.send.seal(as_bytes(msg), rec).ok());
    RecordResult r = s.receive.open(rec, out);
    ASSERT_TRUE(r.ok()) << describe(r.error);
    EXPECT_EQ(std::string(out.begin(), out.end()), msg);
    ASSERT_TRUE(s.send.seal(as_bytes(msg), rec).ok());
    r = c.receive.open(rec, out);
    ASSERT_TRUE(r.ok()) << describe(r.error);
    EXPECT_EQ(std::string(out.begin(), out.end()), msg);
  }
  // A record sealed client->server must not open in the other direction.
  Bytes rec(SealState::sealed_size(1)), out(1);
  ASSERT_TRUE(c.send.seal(as_bytes("x"), rec).ok());
  EXPECT_EQ(c.receive.open(rec, out).error, ChannelError::kTampered);
}

class HandshakeCipher : public ::testing::TestWithParam<AeadAlg> {};

TEST_P(HandshakeCipher, GoodHandshake) {
  const ServerKey server_key = ServerKey::generate();
  ClientHandshake c(client_config(server_key.public_key(), {GetParam()}));
  ServerHandshake s(server_key);
  Outcome o = run(c, s);
  ASSERT_TRUE(o.client.ok()) << o.client.error();
  ASSERT_TRUE(o.server.keys.has_value()) << o.server.error;
  const SessionKeys& ck = o.client.value().keys;
  const SessionKeys& sk = *o.server.keys;
  EXPECT_EQ(ck.alg, GetParam());
  EXPECT_EQ(sk.alg, GetParam());
  EXPECT_EQ(ck.session_id, sk.session_id);
  EXPECT_EQ(ck.client_to_server, sk.client_to_server);
  EXPECT_EQ(ck.server_to_client, sk.server_to_client);
  EXPECT_NE(ck.client_to_server, ck.server_to_client);  // separate keys per direction
  EXPECT_EQ(o.client.value().server_key, server_key.public_key());
  expect_channel_works(ck, sk, AeadImplChoice::kSodium, AeadImplChoice::kOpenSsl);
  expect_channel_works(ck, sk, AeadImplChoice::kOpenSsl, AeadImplChoice::kAuto);
}

INSTANTIATE_TEST_SUITE_P(EachCipher, HandshakeCipher,
                         ::testing::Values(AeadAlg::kChaCha20Poly1305, AeadAlg::kAes256Gcm),
                         [](const auto& param_info) {
                           return param_info.param == AeadAlg::kChaCha20Poly1305 ? "chacha"
                                                                                 : "gcm";
                         });

TEST(Handshake, FreshEphemeralsGiveFreshSessions) {
  const ServerKey& key = vector_server_key();
  std::set<SessionId> ids;
  for (int i = 0; i < 3; ++i) {
    ClientHandshake c(client_config(key.public_key()));
    ServerHandshake s(key);
    Outcome o = run(c, s);
    ASSERT_TRUE(o.client.ok()) << o.client.error();
    ids.insert(o.client.value().keys.session_id);
  }
  EXPECT_EQ(ids.size(), 3u);
}

TEST(Handshake, ServerHonoursClientPreference) {
  const ServerKey& key = vector_server_key();
  {
    ClientHandshake c(client_config(key.public_key(), {AeadAlg::kAes256Gcm,
                                                       AeadAlg::kChaCha20Poly1305}));
    ServerHandshake s(key);
    Outcome o = run(c, s);
    ASSERT_TRUE(o.client.ok()) << o.client.error();
    EXPECT_EQ(o.client.value().keys.alg, AeadAlg::kAes256Gcm);
  }
  {
    ClientHandshake c(client_config(key.public_key(), {AeadAlg::kAes256Gcm,
                                                       AeadAlg::kChaCha20Poly1305}));
    ServerHandshake s(key, ServerHandshakeConfig{{AeadAlg::kChaCha20Poly1305}});
    Outcome o = run(c, s);
    ASSERT_TRUE(o.client.ok()) << o.client.error();
    EXPECT_EQ(o.client.value().keys.alg, AeadAlg::kChaCha20Poly1305);
  }
}

TEST(Handshake, NoCommonCipherIsRefusedWithReason) {
  const ServerKey& key = vector_server_key();
  ClientHandshake c(client_config(key.public_key(), {AeadAlg::kAes256Gcm}));
  ServerHandshake s(key, ServerHandshakeConfig{{AeadAlg::kChaCha20Poly1305}});
  Outcome o = run(c, s);
  EXPECT_FALSE(o.server.keys.has_value());
  EXPECT_NE(o.server.error.find("no common cipher"), std::string::npos) << o.server.error;
  ASSERT_FALSE(o.client.ok());
  EXPECT_NE(o.client.error().find("server refused"), std::string::npos) << o.client.error();
}

TEST(Handshake, WrongHostIdIsRefused) {
  const ServerKey& key = vector_server_key();
  ClientHandshakeConfig cfg = client_config(key.public_key());
  cfg.server.hostid[0] ^= 1;
  ClientHandshake c(cfg);
  ServerHandshake s(key);
  Outcome o = run(c, s);
  ASSERT_FALSE(o.client.ok());
  EXPECT_NE(o.client.error().find("server key does not match HOSTID in name @sfs.example.org%4000,"),
            std::string::npos)
      << o.client.error();
}

TEST(Handshake, WrongServerKeyIsRefused) {
  // The name certifies key A; the machine at that address answers with key B
  // (which it really holds).
  const ServerKey& a = vector_server_key();
  const ServerKey b = ServerKey::generate();
  ClientHandshake c(client_config(a.public_key()));
  ServerHandshake s(b);
  Outcome o = run(c, s);
  ASSERT_FALSE(o.client.ok());
  EXPECT_NE(o.client.error().find("server key does not match HOSTID"), std::string::npos)
      << o.client.error();
  EXPECT_NE(o.client.error().find(format_server_public_key(b.public_key())), std::string::npos);
}

TEST(Handshake, SameKeyAtOtherLocationIsRefused) {
  const ServerKey& key = vector_server_key();
  // The client thinks it reached port 4001 but the name is for 4000.
  ClientHandshakeConfig cfg = client_config(key.public_key());
  cfg.server.location.port = 4001;
  ClientHandshake moved(cfg);
  ServerHandshake s(key);
  Outcome o = run(moved, s);
  ASSERT_FALSE(o.client.ok());
  EXPECT_NE(o.client.error().find("does not match HOSTID"), std::string::npos);
}

TEST(Handshake, DowngradeOfTheOfferIsDetected) {
  const ServerKey& key = vector_server_key();
  ClientHandshake c(client_config(key.public_key(), {AeadAlg::kChaCha20Poly1305,
                                                     AeadAlg::kAes256Gcm}));
  ServerHandshake s(key);
  auto m1 = c.start();
  ASSERT_TRUE(m1.ok());
  Bytes edited = m1.value();
  // Frame header (4) + type + version + e (32) = offset 38: the offer count,
  // then the ids. The attacker swaps the preference order.
  ASSERT_EQ(edited.size(), 4u + 2 + 32 + 1 + 2);
  ASSERT_EQ(edited[38], 2);
  std::swap(edited[39], edited[40]);
  ServerResult sr = s.respond(edited);
  ASSERT_TRUE(sr.keys.has_value()) << sr.error;  // the server cannot tell
  EXPECT_EQ(sr.keys->alg, AeadAlg::kAes256Gcm);
  auto cr = c.finish(sr.reply);
  ASSERT_FALSE(cr.ok());  // the client can
  EXPECT_NE(cr.error().find("failed authentication"), std::string::npos) << cr.error();
}

TEST(Handshake, RemovingAnOfferedCipherIsDetected) {
  const ServerKey& key = vector_server_key();
  ClientHandshake c(client_config(key.public_key()));
  ServerHandshake s(key);
  auto m1 = c.start();
  ASSERT_TRUE(m1.ok());
  Bytes edited = m1.value();
  edited[38] = 1;     // offer only the second cipher...
  edited[39] = 2;
  edited.pop_back();  // ...and fix the frame length
  store_be32(edited.data(), static_cast<std::uint32_t>(edited.size() - 4));
  ServerResult sr = s.respond(edited);
  ASSERT_TRUE(sr.keys.has_value()) << sr.error;
  EXPECT_FALSE(c.finish(sr.reply).ok());
}

// Builds message 2 the way a server would, but lets the test choose the
// static public key sent and the secret used for `es`: an impostor knows
// the real server's public keys but not its private key.
Bytes forge_message2(ByteSpan message1, const ServerPublicKey& claimed, const Key32& es_secret,
                     const ServerKey& signer) {
  noise::SymmetricState ss;
  noise::initialize_symmetric(ss, "Noise_NX_25519_ChaChaPoly_BLAKE2b");
  noise::mix_hash(ss, handshake_prologue({}));
  const ByteSpan body = message1.subspan(4);
  const ByteSpan re = body.subspan(2, 32);
  noise::mix_hash(ss, re);
  noise::mix_hash(ss, body.subspan(34));
  Key32 e;
  randombytes_buf(e.data(), e.size());
  Key32 e_pub;
  crypto_scalarmult_base(e_pub.data(), e.data());
  WireWriter w;
  w.u8(kMsgServerHello);
  w.u8(kHandshakeVersion);
  w.bytes(e_pub);
  noise::mix_hash(ss, e_pub);
  std::array<std::uint8_t, 32> shared;
  EXPECT_TRUE(noise::dh(shared, e, re));
  noise::mix_key(ss, shared);
  EXPECT_TRUE(noise::encrypt_and_hash(ss, claimed.x25519, w.buffer()));
  EXPECT_TRUE(noise::dh(shared, es_secret, re));
  noise::mix_key(ss, shared);
  Bytes sig_input(as_bytes("sfs server handshake v1").begin(),
                  as_bytes("sfs server handshake v1").end());
  sig_input.insert(sig_input.end(), ss.h.begin(), ss.h.end());
  WireWriter p;
  p.u8(static_cast<std::uint8_t>(AeadAlg::kChaCha20Poly1305));
  p.bytes(claimed.ed25519);
  p.bytes(signer.sign(sig_input));
  EXPECT_TRUE(noise::encrypt_and_hash(ss, p.buffer(), w.buffer()));
  Bytes framed(4);
  store_be32(framed.data(), static_cast<std::uint32_t>(w.buffer().size()));
  framed.insert(framed.end(), w.buffer().begin(), w.buffer().end());
  return framed;
}

TEST(Handshake, ForgeHelperMatchesTheProtocol) {
  // Control for the impostor test below: with the real secrets the forged
  // message is accepted, so the helper builds real message 2s.
  const ServerKey& key = vector_server_key();
  ClientHandshake c(client_config(key.public_key()));
  auto m1 = c.start();
  ASSERT_TRUE(m1.ok());
  auto r = c.finish(forge_message2(m1.value(), key.public_key(), key.x25519_secret(), key));
  EXPECT_TRUE(r.ok()) << r.error();
}

TEST(Handshake, ImpostorWithoutPrivateKeyCannotFinish) {
  const ServerKey& key = vector_server_key();
  const ServerKey impostor = ServerKey::generate();
  ClientHandshake c(client_config(key.public_key()));
  auto m1 = c.start();
  ASSERT_TRUE(m1.ok());
  // Sends the real public keys, but can only compute es with its own secret.
  auto r = c.finish(forge_message2(m1.value(), key.public_key(), impostor.x25519_secret(), key));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().find("does not hold the private key"), std::string::npos) << r.error();
}

TEST(Handshake, ForgedSignatureIsRefused) {
  // Holds the X25519 key but signs with another Ed25519 key.
  const ServerKey& key = vector_server_key();
  const ServerKey other = ServerKey::generate();
  ClientHandshake c(client_config(key.public_key()));
  auto m1 = c.start();
  ASSERT_TRUE(m1.ok());
  auto r = c.finish(forge_message2(m1.value(), key.public_key(), key.x25519_secret(), other));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().find("signature"), std::string::npos) << r.error();
}

TEST(Handshake, AnyChangeToMessage2IsRefused) {
  const ServerKey& key = vector_server_key();
  ClientHandshake probe(client_config(key.public_key()));
  ServerHandshake probe_server(key);
  const Bytes m2 = probe_server.respond(probe.start().value()).reply;
  for (std::size_t i = 0; i < m2.size(); ++i) {
    ClientHandshake c(client_config(key.public_key()), counting_key(0x40));
    ServerHandshake s(key, {}, counting_key(0x60));
    Bytes reply = s.respond(c.start().value()).reply;
    reply[i] ^= 0x04;
    EXPECT_FALSE(c.finish(reply).ok()) << "byte " << i;
  }
}

TEST(Handshake, MalformedClientHellosAreCleanErrors) {
  const ServerKey& key = vector_server_key();
  ClientHandshake c(client_config(key.public_key()));
  const Bytes good = c.start().value();
  std::vector<Bytes> bad;
  bad.push_back({});
  bad.push_back({0, 0, 0});
  bad.push_back({0, 0, 0, 0});
  bad.push_back(Bytes(good.begin(), good.end() - 1));  // frame length mismatch
  Bytes b = good;
  b.push_back(0);
  bad.push_back(b);  // trailing byte
  b = good;
  b[4] = kMsgServerHello;
  bad.push_back(b);  // wrong type
  b = good;
  b[38] = 0;
  bad.push_back(b);  // empty offer with ids left over
  b = good;
  b[38] = 9;
  bad.push_back(b);  // offer claims more than sent
  b = good;
  std::fill(b.begin() + 6, b.begin() + 38, 0);
  bad.push_back(b);  // low-order (zero) ephemeral key
  Bytes huge(4 + 2000, 0);
  store_be32(huge.data(), 2000);
  bad.push_back(huge);
  for (std::size_t i = 0; i < bad.size(); ++i) {
    ServerHandshake s(key);
    ServerResult r = s.respond(bad[i]);
    EXPECT_FALSE(r.keys.has_value()) << "case " << i;
    EXPECT_FALSE(r.error.empty()) << "case " << i;
  }
  b = good;
  b[5] = 1;  // an older version: refused with a reply saying why
  ServerHandshake s(key);
  ServerResult r = s.respond(b);
  EXPECT_FALSE(r.keys.has_value());
  EXPECT_FALSE(r.reply.empty());
}

TEST(Handshake, UnknownCipherIdsAreIgnored) {
  const ServerKey& key = vector_server_key();
  ClientHandshake c(client_config(key.public_key()));
  Bytes m1 = c.start().value();
  m1[39] = 77;  // an id from the future in front of a known one
  ServerHandshake s(key);
  ServerResult r = s.respond(m1);
  ASSERT_TRUE(r.keys.has_value()) << r.error;
  EXPECT_EQ(r.keys->alg, AeadAlg::kAes256Gcm);
}

TEST(Handshake, MalformedServerHellosAreCleanErrors) {
  const ServerKey& key = vector_server_key();
  const std::vector<Bytes> bad = {{}, {0, 0, 0, 1, 2}, {0, 0, 0, 2, 2, 1}, {0, 0, 0, 2, 9, 1}};
  for (const Bytes& m : bad) {
    ClientHandshake c(client_config(key.public_key()));
    ASSERT_TRUE(c.start().ok());
    EXPECT_FALSE(c.finish(m).ok());
  }
}

TEST(Handshake, MisuseOfCallOrderIsAnError) {
  const ServerKey& key = vector_server_key();
  ClientHandshake c(client_config(key.public_key()));
  EXPECT_FALSE(c.finish({}).ok());  // before start
  ClientHandshake c2(client_config(key.public_key()));
  ASSERT_TRUE(c2.start().ok());
  EXPECT_FALSE(c2.start().ok());
  ServerHandshake s(key);
  ClientHandshake c3(client_config(key.public_key()));
  const Bytes m1 = c3.start().value();
  EXPECT_TRUE(s.respond(m1).keys.has_value());
  EXPECT_FALSE(s.respond(m1).keys.has_value());
  ClientHandshakeConfig empty = client_config(key.public_key());
  empty.offer.clear();
  ClientHandshake c4(empty);
  EXPECT_FALSE(c4.start().ok());
}

// What secure_connect sends beside message 1 for the vector's name.
ConnectContext vector_context() {
  return {1, "sfs.example.org", 4000, "hu2wplgqvkirijt7f3lvvxgaeo6ed2ww"};
}

TEST(Handshake, PrologueEncodingIsFrozen) {
  // docs/protocol.md 3.1: label, type, version, release, host, port, hostid.
  EXPECT_EQ(hex_encode(handshake_prologue({1, "ab", 4000, "xyz"})),
            "7366732068616e647368616b65207632" "0102" "00000001" "00000002" "6162"
            "00000fa0" "00000003" "78797a");
}

// A man in the middle who edits any clear field of SFS_CONNECT (so that the
// server sees another context than the client hashed) makes the handshake
// fail at the client, and no keys come out on both sides.
TEST(Handshake, EditedClearFieldsFailTheHandshake) {
  const ServerKey& key = vector_server_key();
  const ConnectContext sent = vector_context();
  std::vector<ConnectContext> edited(6, sent);
  edited[0].release = 2;
  edited[1].host = "sfs.example.net";
  edited[2].port = 4001;
  edited[3].hostid[0] = 'a';
  edited[4].host += '\0';  // lengths are hashed: no two contexts collide
  edited[5] = ConnectContext{};
  for (std::size_t i = 0; i < edited.size(); ++i) {
    ClientHandshake c(client_config(key.public_key()));
    ServerHandshake s(key);
    auto m1 = c.start(sent);
    ASSERT_TRUE(m1.ok());
    ServerResult sr = s.respond(m1.value(), edited[i]);
    ASSERT_TRUE(sr.keys.has_value()) << sr.error;  // the server cannot tell
    auto cr = c.finish(sr.reply);
    ASSERT_FALSE(cr.ok()) << "case " << i;
    EXPECT_NE(cr.error().find("failed authentication"), std::string::npos) << cr.error();
  }
  // Control: the same context on both sides succeeds.
  ClientHandshake c(client_config(key.public_key()));
  ServerHandshake s(key);
  auto cr = c.finish(s.respond(c.start(sent).value(), sent).reply);
  EXPECT_TRUE(cr.ok()) << cr.error();
}

TEST(Handshake, FrozenTranscriptVector) {
  // docs/protocol.md, "Handshake": server key from secrets 00..1f / 20..3f,
  // client ephemeral 40..5f, server ephemeral 60..7f, default offer, name
  // @sfs.example.org%4000,hu2wplgqvkirijt7f3lvvxgaeo6ed2ww, and the clear
  // SFS_CONNECT fields secure_connect sends for that name.
  const ServerKey& key = vector_server_key();
  ClientHandshake c(client_config(key.public_key()), counting_key(0x40));
  ServerHandshake s(key, {}, counting_key(0x60));
  const Bytes m1 = c.start(vector_context()).value();
  EXPECT_EQ(hex_encode(m1),
            "00000025010279a631eede1bf9c98f12032cdeadd0e7a079398fc786b88cc846ec89af85a51a020102");
  ServerResult sr = s.respond(m1, vector_context());
  ASSERT_TRUE(sr.keys.has_value()) << sr.error;
  EXPECT_EQ(hex_encode(sr.reply),
            "000000c30202675dd574ed7789310b3d2e7681f3790b466c773b1521fecf36577958371ea52f3276557e"
            "1bdc2fed77495ce2c68bdc9016ff6f35c8fcefb504572e5f932af123d7d0b88464c17003e226f873414f"
            "510a7e08c1b7b31c9e968813cd33c01c9097bee46d69a98db85a788966d5795fc6c3fb31012b6ee14141"
            "0eaac156dc26fdd62d72940fbe5863df455beafd6beb65e7df8dfbe5395bd75103512a58523c35dd173e"
            "8d97fe092b70265ee33f33b1c2a3824fdb797933a7a93236a733b09e3d35fe");
  auto cr = c.finish(sr.reply);
  ASSERT_TRUE(cr.ok()) << cr.error();
  EXPECT_EQ(hex_encode(cr.value().keys.session_id),
            "3e502b1d73776440457ccdf42b59eeffbdddb92798fefda63002c747c5f1daba"
            "f979bdac141251809f6bdab2af60c2e122db195285c4568ac46e8678edbb1367");
  EXPECT_EQ(hex_encode(cr.value().keys.client_to_server),
            "e312bad59427e679241c2860a1e883687190cc7732bd33680c5fdf111d4d0ffb");
  EXPECT_EQ(hex_encode(cr.value().keys.server_to_client),
            "edc9d64e3dc9a06574ae71cfb0d03bdba8e44e2218444aa4107ab2c631aa2384");
  EXPECT_EQ(hex_encode(cr.value().keys.rekey_chain),
            "ca7f8803d73dc47c552d4138cc17b0d6ce20a4fd0a330e6a91f3fba6b112a6b9"
            "19ada8d34452c8bcdf7f5f1c73eefd98630a90cdbd5a86b6b2ffd39f7d95f187");
  EXPECT_EQ(hex_encode(sr.keys->rekey_chain), hex_encode(cr.value().keys.rekey_chain));
}

TEST(Handshake, HundredConcurrentHandshakes) {
  // Pure state machines, no shared state: 100 handshakes on 4 threads,
  // each followed by one record each way.
  const ServerKey key = ServerKey::generate();
  const ServerPublicKey pub = key.public_key();
  std::atomic<int> good{0};
  std::vector<SessionId> ids(100);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = t; i < 100; i += 4) {
        ClientHandshake c(client_config(pub, {i % 2 ? AeadAlg::kAes256Gcm
                                                    : AeadAlg::kChaCha20Poly1305}));
        ServerHandshake s(key);
        auto m1 = c.start();
        if (!m1.ok()) continue;
        ServerResult sr = s.respond(m1.value());
        auto cr = c.finish(sr.reply);
        if (!cr.ok() || !sr.keys) continue;
        SecureChannel cc = make_channel(cr.value().keys, Role::kClient, AeadImplChoice::kOpenSsl);
        SecureChannel sc = make_channel(*sr.keys, Role::kServer, AeadImplChoice::kSodium);
        Bytes rec(SealState::sealed_size(8)), out(8);
        if (!cc.send.seal(as_bytes("request!"), rec).ok() || !sc.receive.open(rec, out).ok())
          continue;
        if (!sc.send.seal(as_bytes("reply..."), rec).ok() || !cc.receive.open(rec, out).ok())
          continue;
        ids[static_cast<std::size_t>(i)] = cr.value().keys.session_id;
        good.fetch_add(1);
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(good.load(), 100);
  EXPECT_EQ(std::set<SessionId>(ids.begin(), ids.end()).size(), 100u);
}

TEST(Handshake, BodySizeLimit) {
  const Bytes ok = {0, 0, 4, 0};
  ASSERT_TRUE(handshake_body_size(ok).ok());
  EXPECT_EQ(handshake_body_size(ok).value(), 1024u);
  const Bytes big = {0, 0, 4, 1};
  EXPECT_FALSE(handshake_body_size(big).ok());
  EXPECT_FALSE(handshake_body_size(Bytes{0, 0}).ok());
}

}  // namespace
}  // namespace sfs
