// xdr_view_test.cc: BytesView / xdr_opaque_view (asmp/rpc.h), the
// zero-copy decoding of opaque<max>: the wire format is rpcgen's, decoding
// points into the buffer, short or oversized input is refused, and over RPC
// a decoded view stays valid as long as the documented owner lives (the
// server's Call; the client's callback).
#include <cstring>

#include "rpc_test_util.h"

namespace asmp::rpc::test {
namespace {

constexpr u_int kMax = SFSTEST_MAXDATA;

std::vector<char> pattern(std::size_t n, unsigned seed) {
  std::vector<char> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<char>((i * 131 + seed) & 0xff);
  return v;
}

// Encodes v then a trailing word with xdrmem into buf; returns the bytes used.
u_int encode(char* buf, u_int cap, BytesView v, u_int trailer) {
  XDR x;
  xdrmem_create(&x, buf, cap, XDR_ENCODE);
  EXPECT_TRUE(xdr_bytes_view<kMax>(&x, &v));
  EXPECT_TRUE(xdr_u_int(&x, &trailer));
  u_int n = XDR_GETPOS(&x);
  XDR_DESTROY(&x);
  return n;
}

TEST(XdrView, DecodesInPlaceWithPadding) {
  alignas(4) char buf[64];
  const char hello[] = "hello";
  u_int n = encode(buf, sizeof buf, BytesView{hello, 5}, 7);
  EXPECT_EQ(n, 4u + 8u + 4u);  // length, 5 bytes + 3 padding, trailer
  XDR x;
  xdrmem_create(&x, buf, n, XDR_DECODE);
  BytesView v;
  ASSERT_TRUE(xdr_bytes_view<kMax>(&x, &v));
  EXPECT_EQ(v.data, buf + 4);  // a pointer into the buffer, not a copy
  EXPECT_EQ(v.len, 5u);
  EXPECT_EQ(0, std::memcmp(v.data, "hello", 5));
  u_int trailer = 0;
  ASSERT_TRUE(xdr_u_int(&x, &trailer));  // the padding was consumed
  EXPECT_EQ(trailer, 7u);
  XDR_DESTROY(&x);
}

TEST(XdrView, SameBytesAsRpcgen) {
  for (std::size_t len : {0u, 1u, 3u, 4u, 5u, 1000u}) {
    std::vector<char> data = pattern(len, 9);
    std::vector<char> a(len + 16), b(len + 16);
    XDR x;
    xdrmem_create(&x, a.data(), static_cast<u_int>(a.size()), XDR_ENCODE);
    BytesView v{data.data(), static_cast<u_int>(len)};
    ASSERT_TRUE(xdr_bytes_view<kMax>(&x, &v));
    u_int na = XDR_GETPOS(&x);
    XDR_DESTROY(&x);
    xdrmem_create(&x, b.data(), static_cast<u_int>(b.size()), XDR_ENCODE);
    sfstest_data d{static_cast<u_int>(len), data.data()};
    ASSERT_TRUE(xdr_sfstest_data(&x, &d));
    u_int nb = XDR_GETPOS(&x);
    XDR_DESTROY(&x);
    ASSERT_EQ(na, nb) << len;
    EXPECT_EQ(0, std::memcmp(a.data(), b.data(), na)) << len;
    EXPECT_EQ(xdr_sizeof(as_xdrproc(xdr_bytes_view<kMax>), &v), na);

    // And rpcgen's encoding decodes into a view.
    xdrmem_create(&x, b.data(), nb, XDR_DECODE);
    BytesView back;
    ASSERT_TRUE(xdr_bytes_view<kMax>(&x, &back));
    EXPECT_EQ(back.len, len);
    ASSERT_NE(back.data, nullptr);  // also when empty
    EXPECT_EQ(0, len ? std::memcmp(back.data, data.data(), len) : 0);
    XDR_DESTROY(&x);
  }
}

TEST(XdrView, TruncatedOrOversizedInputIsRefused) {
  alignas(4) char buf[64];
  std::vector<char> data = pattern(10, 1);
  u_int n = encode(buf, sizeof buf, BytesView{data.data(), 10}, 0);
  // Every proper prefix of length + 10 bytes + 2 padding is refused.
  for (u_int cut = 0; cut < 16; ++cut) {
    XDR x;
    xdrmem_create(&x, buf, cut, XDR_DECODE);
    BytesView v;
    EXPECT_FALSE(xdr_bytes_view<kMax>(&x, &v)) << cut;
    XDR_DESTROY(&x);
  }
  (void)n;
  // A length above the bound, even with the bytes present.
  {
    XDR x;
    xdrmem_create(&x, buf, sizeof buf, XDR_DECODE);
    BytesView v;
    EXPECT_FALSE(xdr_opaque_view(&x, &v, 9));
    XDR_DESTROY(&x);
  }
  // A length near 2^32 (padding would overflow) with nothing behind it.
  for (std::uint32_t huge : {0xffffffffu, 0xfffffffdu, 0x80000000u}) {
    alignas(4) char h[8] = {};
    std::uint32_t be = htonl(huge);
    std::memcpy(h, &be, 4);
    XDR x;
    xdrmem_create(&x, h, sizeof h, XDR_DECODE);
    BytesView v;
    EXPECT_FALSE(xdr_opaque_view(&x, &v, ~0u)) << huge;
    XDR_DESTROY(&x);
  }
  // Encoding refuses a view longer than the bound.
  {
    XDR x;
    xdrmem_create(&x, buf, sizeof buf, XDR_ENCODE);
    BytesView v{data.data(), 10};
    EXPECT_FALSE(xdr_opaque_view(&x, &v, 9));
    XDR_DESTROY(&x);
  }
}

TEST(XdrView, FreeClearsWithoutFreeing) {
  char local[4] = {1, 2, 3, 4};
  BytesView v{local, 4};
  xdr_free(as_xdrproc(xdr_bytes_view<kMax>), &v);  // must not free() a stack pointer
  EXPECT_EQ(v.data, nullptr);
  EXPECT_EQ(v.len, 0u);
}

// ---- lifetime over RPC -----------------------------------------------------

std::shared_ptr<const Interface> view_interface() {
  auto i = std::make_shared<Interface>();
  i->prog = SFSTEST_PROG;
  i->vers = SFSTEST_V1;
  i->procs = {proc(xdr_void, xdr_void), proc(xdr_bytes_view<kMax>, xdr_bytes_view<kMax>)};
  return i;
}

// ECHO with views. A call whose data starts with 'H' is held (its Call kept,
// and with it the record its view points into) until release().
class ViewServer {
 public:
  ViewServer() {
    auto progs = std::make_shared<Programs>();
    Program p;
    p.iface = *view_interface();
    p.dispatch = [this](Call c) {
      if (c.proc() == SFSTEST_ECHO && c.args<BytesView>()->len && c.args<BytesView>()->data[0] == 'H') {
        std::lock_guard lk(mu_);
        held_.push_back(std::move(c));
        return;
      }
      c.reply(c.proc() == SFSTEST_ECHO ? static_cast<const void*>(c.args<BytesView>()) : nullptr);
    };
    progs->add(std::move(p));
    server_ = Server::create(progs);
    EXPECT_EQ(server_->listen("127.0.0.1", 0), 0);
  }
  ~ViewServer() {
    {
      std::lock_guard lk(mu_);
      held_.clear();
    }
    server_->close();
    EXPECT_TRUE(eventually([&] { return server_->connections() == 0; }));
  }
  std::size_t held() {
    std::lock_guard lk(mu_);
    return held_.size();
  }
  // Answers the held calls with their own (view) arguments, from this thread.
  void release() {
    std::vector<Call> calls;
    {
      std::lock_guard lk(mu_);
      calls.swap(held_);
    }
    for (Call& c : calls) c.reply(c.args<BytesView>());
  }
  std::uint16_t port() const { return server_->port(); }

 private:
  std::mutex mu_;
  std::vector<Call> held_;
  std::shared_ptr<Server> server_;
};

constexpr color_t kConn = 77, kCb = 4242;

class XdrViewRpc : public ::testing::TestWithParam<std::size_t> {
 protected:
  RunningRuntime run_;
};

// The server keeps a Call (and its argument view) while other records of
// the same size come and go on the connection, answers it later from
// another thread, and the bytes are intact. The client checks each result
// view inside its callback, which runs under a color other than the
// connection's (so the reply record must travel with the callback).
// Small sizes matter under ASan: their records are freed, not cached.
TEST_P(XdrViewRpc, ViewsLiveAsLongAsTheirOwner) {
  const std::size_t n = GetParam();
  ViewServer server;
  auto conn = connect_to(server.port(), kConn);
  ASSERT_TRUE(conn);
  Client cl(conn, view_interface());

  std::vector<char> held_bytes = pattern(n, 3);
  held_bytes[0] = 'H';
  struct Outcome {
    std::atomic<int> ok{0}, bad{0};
  };
  auto out = std::make_shared<Outcome>();
  auto check = [out](const std::vector<char>* want, BytesView* res) {
    return CallDone(
        [out, want, res](RpcStatus st) {
          EXPECT_EQ(Runtime::current_color(), kCb);
          bool good = st.ok() && res->len == want->size() &&
                      std::memcmp(res->data, want->data(), want->size()) == 0;
          (good ? out->ok : out->bad).fetch_add(1);
        },
        kCb);
  };

  BytesView held_arg{held_bytes.data(), static_cast<u_int>(n)}, held_res;
  cl.call(SFSTEST_ECHO, &held_arg, &held_res, check(&held_bytes, &held_res));
  ASSERT_TRUE(eventually([&] { return server.held() == 1; }));

  // Records of the same size pass through both sides meanwhile.
  constexpr int kOthers = 32;
  std::vector<std::vector<char>> others;
  std::vector<BytesView> args(kOthers), res(kOthers);
  for (int i = 0; i < kOthers; ++i) {
    others.push_back(pattern(n, 100 + static_cast<unsigned>(i)));
    others.back()[0] = 'x';
  }
  for (int i = 0; i < kOthers; ++i) {
    args[i] = BytesView{others[i].data(), static_cast<u_int>(n)};
    cl.call(SFSTEST_ECHO, &args[i], &res[i], check(&others[i], &res[i]));
  }
  ASSERT_TRUE(eventually([&] { return out->ok + out->bad == kOthers; }));

  server.release();
  ASSERT_TRUE(eventually([&] { return out->ok + out->bad == kOthers + 1; }));
  EXPECT_EQ(out->bad.load(), 0);
  EXPECT_EQ(out->ok.load(), kOthers + 1);
  conn->close();
}

INSTANTIATE_TEST_SUITE_P(Sizes, XdrViewRpc, ::testing::Values(std::size_t{1}, std::size_t{100},
                                                              std::size_t{64 * 1024}));

// Truncated view arguments over RPC: GARBAGE_ARGS, and the connection lives.
TEST(XdrViewRpcErrors, TruncatedArgumentsAreGarbage) {
  RunningRuntime run;
  ViewServer server;
  auto conn = connect_to(server.port(), 5);
  ASSERT_TRUE(conn);
  Client cl(conn, view_interface());
  u_int len = 1000;  // a length, and no bytes behind it
  auto r = call_sync(cl, SFSTEST_ECHO, as_xdrproc(xdr_u_int), &len, as_xdrproc(xdr_void), nullptr);
  EXPECT_EQ(r.status.error, RpcError::kGarbageArgs);
  // A reply whose result is shorter than it says: kDecodeResult.
  std::vector<char> bytes = pattern(8, 1);
  sfstest_data arg{8, bytes.data()};
  u_int res_len = 0;
  r = call_sync(cl, SFSTEST_ECHO, as_xdrproc(xdr_sfstest_data), &arg, as_xdrproc(xdr_u_int), &res_len);
  EXPECT_TRUE(r.status.ok());  // u_int reads the length only
  EXPECT_EQ(res_len, 8u);
  BytesView v;
  r = call_sync(cl, SFSTEST_NULL, as_xdrproc(xdr_void), nullptr, as_xdrproc(xdr_bytes_view<kMax>), &v);
  EXPECT_EQ(r.status.error, RpcError::kDecodeResult);  // empty results, a view wanted
  EXPECT_TRUE(call_sync(cl, SFSTEST_NULL, as_xdrproc(xdr_void), nullptr, as_xdrproc(xdr_void), nullptr)
                  .status.ok());
  conn->close();
}

}  // namespace
}  // namespace asmp::rpc::test
