// secure_handshake_thread_test.cc: SecureServerOptions::run_handshake. A
// server key that asks another process (sfsd's key holder) can wait for
// it; with the handshake on a thread of its own, a stalled key holds no
// worker, so every open connection keeps being served, and the stalled
// handshake still completes (or, if its connection went meanwhile, comes
// to nothing). One worker, so that a blocked worker would block everything.
// Starts no processes.
#include <future>

#include "conn_test_util.h"
#include "sfs/serial_thread.h"

namespace sfs::test {
namespace {

// A server key whose DH, once stall() is called, waits until release() (at
// most 30 s): a key holder that has stopped answering.
class StallingKey final : public ServerKeyOps {
 public:
  explicit StallingKey(std::shared_ptr<const ServerKeyOps> key) : key_(std::move(key)) {}
  const ServerPublicKey& public_key() const override { return key_->public_key(); }
  bool dh(std::span<std::uint8_t, kKeyBytes> out, ByteSpan peer_public) const override {
    {
      std::unique_lock lk(mu_);
      if (stall_) {
        ++waiting_;
        cv_.notify_all();
        cv_.wait_for(lk, 30s, [&] { return !stall_; });  // bounded: a failed test must not hang
        --waiting_;
      }
    }
    return key_->dh(out, peer_public);
  }
  Signature sign(ByteSpan message) const override { return key_->sign(message); }

  void stall() {
    std::lock_guard lk(mu_);
    stall_ = true;
  }
  void release() {
    {
      std::lock_guard lk(mu_);
      stall_ = false;
    }
    cv_.notify_all();
  }
  // A DH is waiting (within `limit`).
  bool wait_for_stalled(std::chrono::milliseconds limit) {
    std::unique_lock lk(mu_);
    return cv_.wait_for(lk, limit, [&] { return waiting_ > 0; });
  }

 private:
  std::shared_ptr<const ServerKeyOps> key_;
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  bool stall_ = false;
  mutable int waiting_ = 0;
};

class HandshakeThreadTest : public ::testing::Test {
 protected:
  RunningRuntime run_{1};
  LogCapture log_;
  SerialThread handshakes_;  // outlives every server below (declared before them)
  std::shared_ptr<StallingKey> key_;

  void TearDown() override {
    if (key_) key_->release();
  }
  std::unique_ptr<TestSecureServer> make_server(std::chrono::milliseconds handshake_timeout = 10s) {
    return std::make_unique<TestSecureServer>([&](SecureServerOptions& o) {
      key_ = std::make_shared<StallingKey>(o.key);
      o.key = key_;
      o.run_handshake = handshakes_.runner();
      o.handshake_timeout = handshake_timeout;
    });
  }
  SecureConnectOptions opts_for(const TestSecureServer& s, asmp::color_t color) {
    return client_options(s, color, log_);
  }
  // Starts a handshake; its result arrives in the future.
  std::future<Result<SecureSession>> connect_async(SecureConnectOptions o) {
    auto p = std::make_shared<std::promise<Result<SecureSession>>>();
    auto f = p->get_future();
    const asmp::color_t color = o.color;
    secure_connect(std::move(o), asmp::Callback<void(Result<SecureSession>)>(
                                     [p](Result<SecureSession> r) { p->set_value(std::move(r)); }, color));
    return f;
  }
};

// Checked the other way too: without run_handshake the DH runs on the one
// worker, and the open connection's echo below gets no answer until the
// key is released (the call times out after 5 s).
TEST_F(HandshakeThreadTest, AStalledKeyHoldsNoWorkerAndItsHandshakeCompletesOnceReleased) {
  auto server = make_server();
  auto open = connect_sync(opts_for(*server, 10));
  ASSERT_TRUE(open.ok()) << open.error();
  auto bytes = pattern(1000, 1);
  ASSERT_TRUE(echo_sync(open.value().connection(), bytes));

  key_->stall();
  auto pending = connect_async(opts_for(*server, 11));
  ASSERT_TRUE(key_->wait_for_stalled(10s)) << "the second handshake never reached the key";
  // While the key holds that handshake: the open connection is served.
  for (int i = 0; i < 5; ++i) {
    sfstest_data arg{static_cast<u_int>(bytes.size()), bytes.data()}, res{};
    rpc::RpcStatus st = call_sync(open.value().connection(), SFSTEST_ECHO, rpc::as_xdrproc(xdr_sfstest_data),
                                  &arg, rpc::as_xdrproc(xdr_sfstest_data), &res, nullptr, 5s);
    ASSERT_TRUE(st.ok()) << "an open connection waited for another's stalled handshake";
    EXPECT_EQ(res.sfstest_data_len, bytes.size());
    xdr_free(rpc::as_xdrproc(xdr_sfstest_data), &res);
  }
  EXPECT_EQ(pending.wait_for(0s), std::future_status::timeout) << "the stalled handshake cannot have finished";
  EXPECT_EQ(server->server->stats().established, 1u);

  key_->release();
  ASSERT_EQ(pending.wait_for(20s), std::future_status::ready);
  auto late = pending.get();
  ASSERT_TRUE(late.ok()) << late.error();
  auto more = pattern(3000, 2);
  EXPECT_TRUE(echo_sync(late.value().connection(), more)) << "the channel switched on at the right record";
  EXPECT_EQ(server->server->stats().established, 2u);
  late.value().close();
  open.value().close();
}

// The connection goes while its handshake is computed (here: the server's
// handshake timeout closes it): the result, when it comes, is dropped;
// nothing is counted as established and the server goes on serving.
TEST_F(HandshakeThreadTest, AHandshakeWhoseConnectionWentMeanwhileComesToNothing) {
  auto server = make_server(300ms);
  key_->stall();
  auto pending = connect_async(opts_for(*server, 12));
  ASSERT_TRUE(key_->wait_for_stalled(10s));
  ASSERT_EQ(pending.wait_for(20s), std::future_status::ready) << "the client heard nothing of the close";
  EXPECT_FALSE(pending.get().ok());
  key_->release();
  auto fresh = connect_sync(opts_for(*server, 13));
  ASSERT_TRUE(fresh.ok()) << fresh.error();
  auto bytes = pattern(500, 3);
  EXPECT_TRUE(echo_sync(fresh.value().connection(), bytes));
  EXPECT_EQ(server->server->stats().established, 1u) << "only the fresh connection";
  fresh.value().close();
}

}  // namespace
}  // namespace sfs::test
