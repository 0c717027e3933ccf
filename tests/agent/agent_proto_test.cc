// agent_proto_test.cc: the agent protocol codec (sfs/agent_proto.h).
// Every message round-trips; every truncation, every extra byte and every
// field out of bounds is refused; the frame length is checked before a
// body is read. Starts no processes.
#include "sfs/agent_proto.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "sfs/login.h"
#include "sfs/names.h"

namespace sfs {
namespace {

const std::string kServer = "@127.0.0.1%4000,7dxcrcj3cnnrlte6xsmu2ocz2wygnrap";

SessionId some_session() {
  SessionId s;
  for (std::size_t i = 0; i < s.size(); ++i) s[i] = static_cast<std::uint8_t>(i * 7 + 1);
  return s;
}

UserKey test_key() {
  Key32 seed;
  for (int i = 0; i < 32; ++i) seed[i] = static_cast<std::uint8_t>(0x80 + i);
  return UserKey::from_seed(seed);
}

// One valid message of every type.
std::vector<AgentMessage> samples() {
  std::vector<AgentMessage> v;
  v.emplace_back(AgentHello{});
  v.emplace_back(AgentWelcome{1, 65534});
  v.emplace_back(SignLoginRequest{42, kServer, some_session(), 0x0102030405060708ull});
  {
    SignLoginReply r;
    r.id = 42;
    r.ok = true;
    r.user = "alice";
    r.request = encode_login_request(test_key(), "alice", some_session(), 9);
    v.emplace_back(std::move(r));
  }
  {
    SignLoginReply r;
    r.id = 43;
    r.reason = "the agent holds no keys";
    v.emplace_back(std::move(r));
  }
  v.emplace_back(AgentReplaced{1234});
  {
    AddKeyRequest a;
    a.seed = test_key().ed25519_seed();
    a.name = "alice";
    a.server = kServer;
    a.comment = "/home/alice/.sfs/identity";
    v.emplace_back(std::move(a));
  }
  {
    AddKeyRequest a;  // name and server empty: the agent's defaults
    a.seed[0] = 1;
    v.emplace_back(std::move(a));
  }
  v.emplace_back(ListKeysRequest{});
  v.emplace_back(DeleteKeyRequest{DeleteKeyRequest::By::kPublicKey,
                                  format_user_public_key(test_key().public_key())});
  v.emplace_back(DeleteKeyRequest{DeleteKeyRequest::By::kComment, "/home/alice/k\xc3\xa9"});
  v.emplace_back(RemoveAllRequest{});
  v.emplace_back(ControlStatus{true, "added it"});
  v.emplace_back(ControlStatus{false, ""});
  {
    KeyListReply k;
    k.keys.push_back({format_user_public_key(test_key().public_key()), "alice", "", "/a"});
    k.keys.push_back({format_user_public_key(test_key().public_key()), "bob", kServer, ""});
    v.emplace_back(std::move(k));
  }
  v.emplace_back(KeyListReply{});
  return v;
}

// Field-by-field equality (AgentMessage has no operator==: AddKeyRequest
// is move-only and holds a secret).
void expect_same(const AgentMessage& a, const AgentMessage& b) {
  ASSERT_EQ(a.index(), b.index());
  std::visit(
      [&](const auto& x) {
        using T = std::decay_t<decltype(x)>;
        const T& y = std::get<T>(b);
        if constexpr (std::is_same_v<T, AgentHello>) {
          EXPECT_EQ(x.version, y.version);
        } else if constexpr (std::is_same_v<T, AgentWelcome>) {
          EXPECT_EQ(x.version, y.version);
          EXPECT_EQ(x.uid, y.uid);
        } else if constexpr (std::is_same_v<T, SignLoginRequest>) {
          EXPECT_EQ(x.id, y.id);
          EXPECT_EQ(x.server, y.server);
          EXPECT_EQ(x.session, y.session);
          EXPECT_EQ(x.seqno, y.seqno);
        } else if constexpr (std::is_same_v<T, SignLoginReply>) {
          EXPECT_EQ(x.id, y.id);
          EXPECT_EQ(x.ok, y.ok);
          EXPECT_EQ(x.user, y.user);
          EXPECT_EQ(x.request, y.request);
          EXPECT_EQ(x.reason, y.reason);
        } else if constexpr (std::is_same_v<T, AgentReplaced>) {
          EXPECT_EQ(x.new_pid, y.new_pid);
        } else if constexpr (std::is_same_v<T, AddKeyRequest>) {
          EXPECT_EQ(x.seed, y.seed);
          EXPECT_EQ(x.name, y.name);
          EXPECT_EQ(x.server, y.server);
          EXPECT_EQ(x.comment, y.comment);
        } else if constexpr (std::is_same_v<T, DeleteKeyRequest>) {
          EXPECT_EQ(x.by, y.by);
          EXPECT_EQ(x.what, y.what);
        } else if constexpr (std::is_same_v<T, ControlStatus>) {
          EXPECT_EQ(x.ok, y.ok);
          EXPECT_EQ(x.message, y.message);
        } else if constexpr (std::is_same_v<T, KeyListReply>) {
          EXPECT_EQ(x.keys, y.keys);
        }
      },
      a);
}

TEST(AgentProto, EveryMessageRoundTrips) {
  for (const AgentMessage& m : samples()) {
    SCOPED_TRACE(to_string(agent_message_type(m)));
    const Bytes body = encode_agent_message(m);
    ASSERT_FALSE(body.empty());
    EXPECT_EQ(body[0], static_cast<std::uint8_t>(agent_message_type(m)));
    auto back = decode_agent_message(body);
    ASSERT_TRUE(back.ok()) << back.error();
    expect_same(m, back.value());
    EXPECT_EQ(encode_agent_message(back.value()), body);
  }
}

TEST(AgentProto, FrameIsLengthThenBody) {
  for (const AgentMessage& m : samples()) {
    const Bytes body = encode_agent_message(m);
    const Bytes frame = frame_agent_message(m);
    ASSERT_EQ(frame.size(), body.size() + 4);
    std::string why;
    auto len = agent_frame_length(ByteSpan(frame).first(4), &why);
    ASSERT_TRUE(len.has_value()) << why;
    EXPECT_EQ(*len, body.size());
    EXPECT_TRUE(std::equal(body.begin(), body.end(), frame.begin() + 4));
  }
}

// The layouts of docs/agent.md, byte for byte.
TEST(AgentProto, LayoutsMatchTheDocument) {
  EXPECT_EQ(hex_encode(frame_agent_message(AgentHello{})), "000000020101");
  EXPECT_EQ(hex_encode(encode_agent_message(AgentWelcome{1, 0x01020304})), "020101020304");
  SignLoginRequest s{7, "@a%1,aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", SessionId{}, 2};
  const std::string hex = hex_encode(encode_agent_message(s));
  EXPECT_EQ(hex.substr(0, 2 * (1 + 4 + 2)), "03000000070025");
  EXPECT_EQ(hex.size(), 2u * (1 + 4 + 2 + 37 + 64 + 8));
  EXPECT_EQ(hex.substr(hex.size() - 16), "0000000000000002");
  SignLoginReply no;
  no.id = 7;
  no.reason = "no";
  EXPECT_EQ(hex_encode(encode_agent_message(no)),
            "0400000007010002"
            "6e6f");
  EXPECT_EQ(hex_encode(encode_agent_message(ControlStatus{true, "ok"})), "200000026f6b");
  EXPECT_EQ(hex_encode(encode_agent_message(DeleteKeyRequest{DeleteKeyRequest::By::kComment, "f"})),
            "1201000166");
}

TEST(AgentProto, EveryTruncationIsRefused) {
  for (const AgentMessage& m : samples()) {
    const Bytes body = encode_agent_message(m);
    for (std::size_t n = 0; n < body.size(); ++n) {
      auto r = decode_agent_message(ByteSpan(body).first(n));
      EXPECT_FALSE(r.ok()) << to_string(agent_message_type(m)) << " cut to " << n << " bytes";
    }
  }
}

TEST(AgentProto, TrailingBytesAreRefused) {
  for (const AgentMessage& m : samples()) {
    Bytes body = encode_agent_message(m);
    body.push_back(0);
    auto r = decode_agent_message(body);
    ASSERT_FALSE(r.ok()) << to_string(agent_message_type(m));
    EXPECT_NE(r.error().find("left over"), std::string::npos) << r.error();
  }
}

TEST(AgentProto, UnknownTypesAreRefused) {
  for (int t = 0; t < 256; ++t) {
    bool known = false;
    for (const AgentMessage& m : samples()) known |= static_cast<int>(agent_message_type(m)) == t;
    if (known) continue;
    const Bytes body{static_cast<std::uint8_t>(t)};
    auto r = decode_agent_message(body);
    ASSERT_FALSE(r.ok()) << t;
    EXPECT_NE(r.error().find("unknown message type"), std::string::npos) << r.error();
  }
}

TEST(AgentProto, FrameLengthsOutOfBoundsAreRefused) {
  std::string why;
  const std::uint8_t zero[4] = {0, 0, 0, 0};
  EXPECT_FALSE(agent_frame_length(ByteSpan(zero, 4), &why).has_value());
  const std::uint8_t max[4] = {0, 1, 0, 0};  // 65536: the limit itself is fine
  EXPECT_EQ(agent_frame_length(ByteSpan(max, 4), &why).value_or(0), kMaxAgentMessageBytes);
  const std::uint8_t over[4] = {0, 1, 0, 1};
  EXPECT_FALSE(agent_frame_length(ByteSpan(over, 4), &why).has_value());
  EXPECT_NE(why.find("65537"), std::string::npos) << why;
  const std::uint8_t huge[4] = {0xff, 0xff, 0xff, 0xff};
  EXPECT_FALSE(agent_frame_length(ByteSpan(huge, 4), &why).has_value());
  EXPECT_FALSE(agent_frame_length(ByteSpan(huge, 3), &why).has_value());
  // decode refuses bodies above the limit and empty ones too.
  EXPECT_FALSE(decode_agent_message(Bytes(kMaxAgentMessageBytes + 1, 17)).ok());
  EXPECT_FALSE(decode_agent_message(Bytes{}).ok());
}

// Builds a body from pieces, for hand-made malformed messages.
struct Body {
  WireWriter w;
  Body& u8(std::uint8_t v) { return w.u8(v), *this; }
  Body& u16(std::uint16_t v) { return w.u16(v), *this; }
  Body& u32(std::uint32_t v) { return w.u32(v), *this; }
  Body& u64(std::uint64_t v) { return w.u64(v), *this; }
  Body& raw(std::string_view s) { return w.bytes(as_bytes(s)), *this; }
  Body& zeros(std::size_t n) { return w.bytes(Bytes(n, 0)), *this; }
  Body& s8(std::string_view s) { return w.bytes8(as_bytes(s)), *this; }
  Body& s16(std::string_view s) { return u16(static_cast<std::uint16_t>(s.size())).raw(s); }
  Bytes take() { return w.take(); }
};

void expect_refused(Bytes body, const std::string& fragment) {
  auto r = decode_agent_message(body);
  ASSERT_FALSE(r.ok()) << "accepted: " << hex_encode(body);
  EXPECT_NE(r.error().find(fragment), std::string::npos) << r.error();
}

TEST(AgentProto, SignLoginFieldsAreChecked) {
  expect_refused(Body().u8(3).u32(1).s16("").zeros(64).u64(1).take(), "server name has 0 bytes");
  expect_refused(
      Body().u8(3).u32(1).s16(std::string(kMaxNameChars + 1, 'a')).zeros(64).u64(1).take(),
      "server name has 294 bytes");
  expect_refused(Body().u8(3).u32(1).s16("@a\n%1").zeros(64).u64(1).take(), "control characters");
  // A u16 length longer than what follows.
  expect_refused(Body().u8(3).u32(1).u16(500).raw("@x").take(), "too short");
}

TEST(AgentProto, SignReplyFieldsAreChecked) {
  expect_refused(Body().u8(4).u32(1).u8(2).take(), "status 2");
  expect_refused(Body().u8(4).u32(1).u8(0).s8("Alice").s16("x").take(), "not valid");
  expect_refused(Body().u8(4).u32(1).u8(0).s8("").s16("x").take(), "not valid");
  expect_refused(Body().u8(4).u32(1).u8(0).s8("alice").s16("").take(), "login request has 0 bytes");
  expect_refused(Body().u8(4).u32(1).u8(0).s8("alice").s16(std::string(1025, 'x')).take(),
                 "login request has 1025 bytes");
  expect_refused(Body().u8(4).u32(1).u8(1).s16("tab\there").take(), "control characters");
  expect_refused(Body().u8(4).u32(1).u8(1).s16(std::string(1025, 'r')).take(), "reason has 1025");
}

TEST(AgentProto, ControlFieldsAreChecked) {
  expect_refused(Body().u8(16).zeros(32).s8("UPPER").s16("").s16("").take(), "not valid");
  expect_refused(Body().u8(16).zeros(32).s8("").s16("").s16(std::string(1025, 'c')).take(),
                 "comment has 1025");
  expect_refused(Body().u8(16).zeros(32).s8("").s16("\x7f").s16("").take(), "control characters");
  expect_refused(Body().u8(18).u8(2).s16("x").take(), "selector 2");
  expect_refused(Body().u8(18).u8(0).s16("").take(), "key has 0 bytes");
  expect_refused(Body().u8(32).u8(3).s16("").take(), "status 3");
  expect_refused(Body().u8(33).u16(33).take(), "33 keys");
  expect_refused(Body().u8(33).u16(1).s16("ed25519:nope").s8("alice").s16("").s16("").take(),
                 "not a user public key");
  // The count says 2, one follows.
  const std::string pk = format_user_public_key(test_key().public_key());
  expect_refused(Body().u8(33).u16(2).s16(pk).s8("alice").s16("").s16("").take(), "too short");
}

TEST(AgentProto, AddKeyRequestWipesItsSeed) {
  AddKeyRequest a;
  a.seed.fill(0xaa);
  AddKeyRequest b(std::move(a));
  EXPECT_EQ(a.seed, Key32{});  // NOLINT: the moved-from object is specified to be wiped
  EXPECT_EQ(b.seed[0], 0xaa);
  AddKeyRequest c;
  c = std::move(b);
  EXPECT_EQ(b.seed, Key32{});  // NOLINT
  EXPECT_EQ(c.seed[31], 0xaa);
}

TEST(AgentProto, PrintableTextNeutralizesControlCharacters) {
  EXPECT_EQ(printable_text("a\nb\x1b[31m"), "a?b?[31m");
  EXPECT_EQ(printable_text(std::string(10, 'x'), 4), "xxxx...");
}

}  // namespace
}  // namespace sfs
