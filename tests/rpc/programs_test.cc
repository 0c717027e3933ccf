// programs_test.cc: the SFS programs of proto/x as rpcgen compiled them:
// wire sizes and round trips of the types this layer relies on, and the
// server-to-client INVALIDATE callback on the same connection. Starts no
// processes; loopback only.
#include <cstring>

#include "rpc_test_util.h"
#include "sfs/sfs_connect.h"
#include "sfs/sfs_login.h"
#include "sfs/sfs_nfs.h"

namespace asmp::rpc::test {
namespace {

template <class T, class X>
std::vector<char> encode(X* xfn, T* v) {
  std::vector<char> buf(xdr_sizeof(as_xdrproc(xfn), v));
  XDR x;
  xdrmem_create(&x, buf.data(), static_cast<u_int>(buf.size()), XDR_ENCODE);
  EXPECT_TRUE(xfn(&x, v));
  return buf;
}

template <class T, class X>
bool decode(X* xfn, std::vector<char>& buf, T* v) {
  XDR x;
  xdrmem_create(&x, buf.data(), static_cast<u_int>(buf.size()), XDR_DECODE);
  return xfn(&x, v);
}

TEST(SfsPrograms, GetattrCarriesALease) {
  sfs_GETATTR3res r{};
  r.status = SFS_NFS3_OK;
  sfs_fattr3& a = r.sfs_GETATTR3res_u.resok.obj_attributes;
  a.type = SFS_NF3REG;
  a.mode = 0644;
  a.size = 123456789012ull;
  a.fileid = 42;
  a.mtime = {1700000000, 5};
  a.change = 0x0102030405060708ull;
  a.lease_ms = 30000;
  auto bytes = encode(xdr_sfs_GETATTR3res, &r);
  // status + RFC 1813 fattr3 (84 bytes) + change + lease_ms.
  EXPECT_EQ(bytes.size(), 4u + 84u + 8u + 4u);
  // The change number sits just before the lease.
  EXPECT_EQ(std::memcmp(bytes.data() + bytes.size() - 12, "\x01\x02\x03\x04\x05\x06\x07\x08", 8), 0);
  // The lease is the last word.
  EXPECT_EQ(std::memcmp(bytes.data() + bytes.size() - 4, "\x00\x00\x75\x30", 4), 0);
  sfs_GETATTR3res back{};
  ASSERT_TRUE(decode(xdr_sfs_GETATTR3res, bytes, &back));
  EXPECT_EQ(back.sfs_GETATTR3res_u.resok.obj_attributes.size, 123456789012ull);
  EXPECT_EQ(back.sfs_GETATTR3res_u.resok.obj_attributes.lease_ms, 30000u);
  EXPECT_EQ(back.sfs_GETATTR3res_u.resok.obj_attributes.change, 0x0102030405060708ull);
  EXPECT_EQ(back.sfs_GETATTR3res_u.resok.obj_attributes.mtime.nseconds, 5u);
}

TEST(SfsPrograms, HandlesUpTo128BytesAndNoMore) {
  std::vector<char> fh(128, 'h');
  sfs_GETATTR3args g{};
  g.object.data.data_len = 128;
  g.object.data.data_val = fh.data();
  auto bytes = encode(xdr_sfs_GETATTR3args, &g);
  EXPECT_EQ(bytes.size(), 4u + 128u);
  // 129 bytes on the wire: refused by the decoder.
  std::vector<char> big(4 + 132, 0);
  big[3] = static_cast<char>(129);
  sfs_GETATTR3args back{};
  EXPECT_FALSE(decode(xdr_sfs_GETATTR3args, big, &back));
  xdr_free(as_xdrproc(xdr_sfs_GETATTR3args), &back);
}

TEST(SfsPrograms, ConnectResultUnion) {
  char hello[] = "server hello bytes";
  sfs_connect_res ok{};
  ok.status = SFS_CONNECT_OK;
  ok.sfs_connect_res_u.ok.release = SFS_RELEASE;
  ok.sfs_connect_res_u.ok.hello.hello_len = sizeof hello;
  ok.sfs_connect_res_u.ok.hello.hello_val = hello;
  auto bytes = encode(xdr_sfs_connect_res, &ok);
  sfs_connect_res back{};
  ASSERT_TRUE(decode(xdr_sfs_connect_res, bytes, &back));
  EXPECT_EQ(back.status, SFS_CONNECT_OK);
  EXPECT_EQ(back.sfs_connect_res_u.ok.hello.hello_len, sizeof hello);
  xdr_free(as_xdrproc(xdr_sfs_connect_res), &back);

  char reason[] = "no such HOSTID here";
  sfs_connect_res no{};
  no.status = SFS_CONNECT_NOSUCHHOST;
  no.sfs_connect_res_u.reason = reason;
  bytes = encode(xdr_sfs_connect_res, &no);
  sfs_connect_res back2{};
  ASSERT_TRUE(decode(xdr_sfs_connect_res, bytes, &back2));
  EXPECT_STREQ(back2.sfs_connect_res_u.reason, reason);
  xdr_free(as_xdrproc(xdr_sfs_connect_res), &back2);
}

// The server, while handling a client's call, calls INVALIDATE back on the
// same connection (the client serves SFS_NFSCB_PROG) and answers the
// client's call only when the callback has been answered.
TEST(SfsPrograms, InvalidateCallbackOnTheSameConnection) {
  RunningRuntime run;
  std::atomic<int> invalidated{0};
  std::string seen_fh;

  auto cb_iface = std::make_shared<Interface>();
  cb_iface->prog = SFS_NFSCB_PROG;
  cb_iface->vers = SFS_NFSCB_V1;
  cb_iface->procs = {proc(xdr_void, xdr_void), proc(xdr_sfs_INVALIDATE3args, xdr_void)};

  // Server: SFSTEST NULL triggers an INVALIDATE to the caller.
  auto progs = std::make_shared<Programs>();
  Program p;
  p.iface = *sfstest_interface();
  p.dispatch = [cb_iface](Call c) {
    auto held = std::make_shared<Call>(std::move(c));
    Client back(held->connection(), cb_iface);
    static char fh[] = "sealed-handle-1";
    sfs_INVALIDATE3args a{};
    a.object.data.data_len = sizeof fh - 1;
    a.object.data.data_val = fh;
    back.call(SFS_NFSCBPROC_INVALIDATE, &a, nullptr, CallDone([held](RpcStatus st) {
                if (st.ok()) held->reply(nullptr);
                else held->reply_error(RpcError::kSystemErr);
              }, held->color()));
  };
  progs->add(std::move(p));
  auto server = Server::create(progs);
  ASSERT_EQ(server->listen("127.0.0.1", 0), 0);

  // Client: serves the callback program on its connection.
  auto cbprogs = std::make_shared<Programs>();
  Program cbp;
  cbp.iface = *cb_iface;
  cbp.dispatch = [&](Call c) {
    if (c.proc() == SFS_NFSCBPROC_INVALIDATE) {
      auto* a = c.args<sfs_INVALIDATE3args>();
      seen_fh.assign(a->object.data.data_val, a->object.data.data_len);
      invalidated++;
    }
    c.reply(nullptr);
  };
  cbprogs->add(std::move(cbp));
  ConnectionOptions co;
  co.programs = cbprogs;
  std::shared_ptr<Connection> conn;
  std::atomic<bool> ready{false};
  connect("127.0.0.1", server->port(), 500, co, {},
          Callback<void(std::shared_ptr<Connection>, int)>([&](std::shared_ptr<Connection> c, int) {
            conn = c;
            ready = true;
          }, 500));
  ASSERT_TRUE(eventually([&] { return ready.load(); }));
  ASSERT_TRUE(conn);
  Client cl(conn, sfstest_interface());
  auto r = call_sync(cl, SFSTEST_NULL, nullptr, nullptr);
  EXPECT_TRUE(r.status.ok()) << r.status.message();
  EXPECT_EQ(invalidated.load(), 1);
  EXPECT_EQ(seen_fh, "sealed-handle-1");
  conn->close();
  server->close();
  EXPECT_TRUE(eventually([&] { return server->connections() == 0; }));
}

}  // namespace
}  // namespace asmp::rpc::test
