// secure_rekey_test.cc: the in-band rekey with a fresh DH (docs/protocol.md
// 4.1). Over a real connection with a small test-only threshold: many calls
// in flight in both directions across many rekeys, every byte intact. On a
// pair of filters driven by hand: a replayed rekey record, and control
// records that authenticate (sealed with the real keys, as a hostile peer
// could) but break the state machine, each close the channel with a reason.
#include "conn_test_util.h"
#include "sfs/handshake.h"
#include "sfs/rekey.h"

namespace sfs::test {
namespace {

TEST(SecureRekey, ManyCallsInFlightAcrossRekeysInBothDirections) {
  RunningRuntime run(2);
  std::mutex mu;
  std::shared_ptr<SecureRecordFilter> server_filter, client_filter;
  TestSecureServer server([&](SecureServerOptions& o) {
    o.channel.wrap_filter = [&](std::shared_ptr<rpc::RecordFilter> f) {
      std::lock_guard lk(mu);
      server_filter = std::dynamic_pointer_cast<SecureRecordFilter>(f);
      return f;
    };
  });
  SecureConnectOptions o;
  o.server = server.name();
  o.color = 60;
  o.channel.rekey_after_records = 8;  // test-only: a rekey every few records
  o.channel.wrap_filter = [&](std::shared_ptr<rpc::RecordFilter> f) {
    std::lock_guard lk(mu);
    client_filter = std::dynamic_pointer_cast<SecureRecordFilter>(f);
    return f;
  };
  auto s = connect_sync(o);
  ASSERT_TRUE(s.ok()) << s.error();
  ASSERT_TRUE(login_sync(s.value(), *server.alice, "alice").ok());

  // Rounds of 48 echo calls at once, sizes from 0 to 96 KiB, so records of
  // both directions cross rekeys while others are in flight.
  struct Pending {
    std::vector<char> bytes;
    sfstest_data arg{}, res{};
    std::atomic<bool> done{false};
    rpc::RpcStatus st;
  };
  int bad = 0;
  for (int round = 0; round < 12; ++round) {
    std::vector<std::shared_ptr<Pending>> calls;
    for (int i = 0; i < 48; ++i) {
      auto p = std::make_shared<Pending>();
      // Multiples of 4: libtirpc decodes an odd opaque's padding into a
      // static scratch array, a benign race under TSan (docs/rpc.md).
      p->bytes = pattern(static_cast<std::size_t>((round * 48 + i) * 196 % (96 * 1024)), round * 48 + i);
      p->arg = {static_cast<u_int>(p->bytes.size()), p->bytes.data()};
      rpc::CallOptions co;
      co.timeout = 20s;
      s.value().connection()->call(SFSTEST_PROG, SFSTEST_V1, SFSTEST_ECHO, rpc::as_xdrproc(xdr_sfstest_data),
                                   &p->arg, rpc::as_xdrproc(xdr_sfstest_data), &p->res,
                                   rpc::CallDone([p](rpc::RpcStatus st) {
                                     p->st = st;
                                     p->done.store(true);
                                   }),
                                   co);
      calls.push_back(p);
    }
    for (auto& p : calls) {
      ASSERT_TRUE(eventually([&] { return p->done.load(); }, 25s));
      if (!p->st.ok()) {
        ++bad;
        continue;
      }
      if (p->res.sfstest_data_len != p->bytes.size() ||
          (!p->bytes.empty() && std::memcmp(p->res.sfstest_data_val, p->bytes.data(), p->bytes.size()) != 0))
        ++bad;
      xdr_free(rpc::as_xdrproc(xdr_sfstest_data), &p->res);
    }
  }
  EXPECT_EQ(bad, 0) << server.log.all();
  std::lock_guard lk(mu);
  ASSERT_TRUE(client_filter && server_filter);
  // Each round starts a rekey by its 8th call, the server's ACK rides on a
  // reply of that round and the client's DONE on the next round's first
  // call: at least one completed rekey per round after the first.
  EXPECT_GE(client_filter->rekeys(), 10u);
  // The server counts a rekey when DONE arrives, which rides on the
  // client's next record: at most one behind.
  EXPECT_GE(server_filter->rekeys() + 1, client_filter->rekeys());
  EXPECT_EQ(client_filter->failure(), ChannelError::kOk) << client_filter->failure_message();
  EXPECT_EQ(server_filter->failure(), ChannelError::kOk) << server_filter->failure_message();
  s.value().close();
}

TEST(SecureRekey, TheTimeTriggerRekeysToo) {
  RunningRuntime run(2);
  std::mutex mu;
  std::shared_ptr<SecureRecordFilter> client_filter;
  TestSecureServer server;
  SecureConnectOptions o;
  o.server = server.name();
  o.color = 61;
  o.channel.rekey_after_records = 0;
  o.channel.rekey_after_time = 1ms;
  o.channel.wrap_filter = [&](std::shared_ptr<rpc::RecordFilter> f) {
    std::lock_guard lk(mu);
    client_filter = std::dynamic_pointer_cast<SecureRecordFilter>(f);
    return f;
  };
  auto s = connect_sync(o);
  ASSERT_TRUE(s.ok()) << s.error();
  // Calls until two rekeys have completed (bounded; no rate asserted).
  EXPECT_TRUE(eventually([&] {
    int sum = 0;
    EXPECT_TRUE(add_sync(s.value(), 2, 3, &sum).ok());
    std::this_thread::sleep_for(2ms);
    std::lock_guard lk(mu);
    return client_filter->rekeys() >= 2;
  }));
  s.value().close();
}

// ---- filters driven by hand ------------------------------------------------------

SessionKeys session_keys() {
  static const ServerKey key = ServerKey::generate();
  ClientHandshake c(ClientHandshakeConfig{name_for(Location{"127.0.0.1", 4000}, key.public_key()), default_cipher_offer()});
  ServerHandshake s(key);
  ServerResult sr = s.respond(c.start().value());
  EXPECT_TRUE(sr.keys.has_value());
  auto cr = c.finish(sr.reply);
  EXPECT_TRUE(cr.ok());
  return cr.value().keys;
}

std::shared_ptr<SecureRecordFilter> filter_for(const SessionKeys& k, Role role, LogCapture& log,
                                               std::uint64_t after_records = 0) {
  RekeyOptions rk;
  rk.role = role;
  rk.chain = k.rekey_chain;
  rk.after_records = after_records;
  return std::make_shared<SecureRecordFilter>(make_channel(k, role), k.alg,
                                              role == Role::kClient ? "server x" : "client x", log.sink(), rk);
}

rpc::RecordBuf buf_of(const std::string& s) {
  rpc::RecordBuf b;
  b.append(s.data(), s.size());
  return b;
}

std::string str_of(const rpc::RecordBuf& b) { return std::string(b.data(), b.size()); }

// Seals [control record] || data record with a raw channel: what a peer
// holding the keys can send, whatever the state machine says.
std::string hand_sealed(SealState& send, std::optional<Bytes> control, const std::string& data) {
  std::string out;
  auto seal_one = [&](ByteSpan plain) {
    Bytes rec(SealState::sealed_size(plain.size()));
    EXPECT_TRUE(send.seal(plain, rec).ok());
    out.append(reinterpret_cast<const char*>(rec.data()), rec.size());
  };
  if (control) seal_one(*control);
  seal_one(as_bytes(data));
  return out;
}

Bytes control_bytes(ControlKind kind, const Key32& key = make_ephemeral().public_key) {
  Bytes b(kControlMaxPlaintext);
  b.resize(encode_control({kind, key}, b));
  return b;
}

TEST(SecureRekeyFilters, AHandDrivenRekeyKeepsBothDirectionsOpen) {
  LogCapture log;
  const SessionKeys k = session_keys();
  auto client = filter_for(k, Role::kClient, log, 3);
  auto server = filter_for(k, Role::kServer, log);
  for (int i = 0; i < 40; ++i) {
    const std::string call = "call " + std::to_string(i), reply = "reply " + std::to_string(i);
    rpc::RecordBuf c = buf_of(call);
    ASSERT_TRUE(client->seal(c));
    ASSERT_TRUE(server->open(c)) << log.all();
    EXPECT_EQ(str_of(c), call);
    rpc::RecordBuf r = buf_of(reply);
    ASSERT_TRUE(server->seal(r));
    ASSERT_TRUE(client->open(r)) << log.all();
    EXPECT_EQ(str_of(r), reply);
  }
  EXPECT_GE(client->rekeys(), 5u);
  EXPECT_GE(server->rekeys() + 1, client->rekeys());
}

TEST(SecureRekeyFilters, AReplayedRekeyRecordClosesTheChannel) {
  LogCapture log;
  const SessionKeys k = session_keys();
  auto client = filter_for(k, Role::kClient, log, 2);
  auto server = filter_for(k, Role::kServer, log);
  rpc::RecordBuf first = buf_of("first");  // the second record sealed starts a rekey
  ASSERT_TRUE(client->seal(first));
  ASSERT_TRUE(server->open(first));
  rpc::RecordBuf with_rekey = buf_of("second");
  ASSERT_TRUE(client->seal(with_rekey));
  const std::string wire = str_of(with_rekey);
  ASSERT_GT(wire.size(), SealState::sealed_size(6)) << "no control record went out";
  rpc::RecordBuf once = buf_of(wire);
  ASSERT_TRUE(server->open(once)) << log.all();
  rpc::RecordBuf again = buf_of(wire);
  EXPECT_FALSE(server->open(again));
  EXPECT_EQ(server->failure(), ChannelError::kTampered);
  EXPECT_TRUE(log.contains("closing the connection"));
}

TEST(SecureRekeyFilters, ControlRecordsThatBreakTheStateMachineCloseTheChannel) {
  struct Case {
    const char* what;
    Role receiver;
    std::vector<std::optional<Bytes>> controls;  // one record each, the last must fail
    const char* reason;
  };
  const Key32 zero{};
  Bytes bad_len = control_bytes(ControlKind::kRekey);
  bad_len.pop_back();
  const std::vector<Case> cases = {
      {"ACK to the server", Role::kServer, {control_bytes(ControlKind::kRekeyAck)}, "unexpected rekey message"},
      {"DONE without a rekey", Role::kServer, {control_bytes(ControlKind::kRekeyDone)}, "unexpected rekey message"},
      {"a second REKEY before DONE", Role::kServer,
       {control_bytes(ControlKind::kRekey), control_bytes(ControlKind::kRekey)}, "unexpected rekey message"},
      {"REKEY to the client", Role::kClient, {control_bytes(ControlKind::kRekey)}, "unexpected rekey message"},
      {"unsolicited ACK to the client", Role::kClient, {control_bytes(ControlKind::kRekeyAck)},
       "unexpected rekey message"},
      {"a low-order ephemeral key", Role::kServer, {control_bytes(ControlKind::kRekey, zero)},
       "invalid ephemeral key"},
      {"a control message of the wrong length", Role::kServer, {bad_len}, "malformed control message"},
      {"an unknown kind", Role::kServer, {Bytes{9}}, "malformed control message"},
  };
  for (const Case& c : cases) {
    LogCapture log;
    const SessionKeys k = session_keys();
    // The sender's side of the channel, sealed by hand.
    SecureChannel raw = make_channel(k, c.receiver == Role::kServer ? Role::kClient : Role::kServer);
    auto receiver = filter_for(k, c.receiver, log);
    bool all_but_last_ok = true;
    for (std::size_t i = 0; i < c.controls.size(); ++i) {
      rpc::RecordBuf rec = buf_of(hand_sealed(raw.send, c.controls[i], "data"));
      const bool ok = receiver->open(rec);
      if (i + 1 < c.controls.size()) all_but_last_ok &= ok;
      else EXPECT_FALSE(ok) << c.what;
    }
    EXPECT_TRUE(all_but_last_ok) << c.what << ": " << log.all();
    EXPECT_NE(receiver->failure_message().find(c.reason), std::string::npos)
        << c.what << ": " << receiver->failure_message();
    // Dead for good: the next ordinary record is refused too.
    rpc::RecordBuf next = buf_of(hand_sealed(raw.send, std::nullopt, "more"));
    EXPECT_FALSE(receiver->open(next)) << c.what;
  }
}

TEST(SecureRekeyFilters, AControlRecordMustBeFollowedByExactlyOneRecord) {
  LogCapture log;
  const SessionKeys k = session_keys();
  SecureChannel raw = make_channel(k, Role::kClient);
  auto server = filter_for(k, Role::kServer, log);
  // Two data records in one transport record: the first is too large to be
  // a control record.
  std::string two = hand_sealed(raw.send, Bytes(40, 1), "data");
  rpc::RecordBuf rec = buf_of(two);
  EXPECT_FALSE(server->open(rec));
  EXPECT_NE(server->failure_message().find("not a control message"), std::string::npos)
      << server->failure_message();
  // A REKEY followed by two records.
  LogCapture log2;
  SecureChannel raw2 = make_channel(k, Role::kClient);
  auto server2 = filter_for(k, Role::kServer, log2);
  std::string three = hand_sealed(raw2.send, control_bytes(ControlKind::kRekey), "data");
  three += hand_sealed(raw2.send, std::nullopt, "more");
  rpc::RecordBuf rec2 = buf_of(three);
  EXPECT_FALSE(server2->open(rec2));
  EXPECT_NE(server2->failure_message().find("exactly one record"), std::string::npos)
      << server2->failure_message();
}

}  // namespace
}  // namespace sfs::test
