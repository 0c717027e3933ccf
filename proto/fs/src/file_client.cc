// file_client.cc: see sfs/file_client.h.
#include "sfs/file_client.h"

namespace sfs::fs {

namespace {

bool_t xdr_read_view(XDR* x, ReadView* v) {
  if (!xdr_sfs_nfsstat3(x, &v->status)) return FALSE;
  if (!xdr_sfs_post_op_attr(x, &v->file_attributes)) return FALSE;
  if (v->status != SFS_NFS3_OK) return TRUE;
  u_int count = 0;
  bool_t eof = FALSE;
  if (!xdr_u_int(x, &count) || !xdr_bool(x, &eof)) return FALSE;
  if (!rpc::xdr_opaque_view(x, &v->data, SFS_NFS3_MAXDATA)) return FALSE;
  v->count = count;
  v->eof = eof != FALSE;
  return TRUE;
}

}  // namespace

rpc::Program callback_program(FileClientOptions::OnInvalidate on_inval) {
  rpc::Program p;
  p.iface = rpc::Interface{SFS_NFSCB_PROG,
                           SFS_NFSCB_V1,
                           {rpc::proc(xdr_void, xdr_void), rpc::proc(xdr_sfs_INVALIDATE3args, xdr_void)}};
  p.flavors = {AUTH_NONE};
  p.dispatch = [on_inval](rpc::Call c) {
    if (c.proc() != SFS_NFSCBPROC_INVALIDATE || !on_inval) return c.reply(nullptr);
    const auto* a = c.args<sfs_INVALIDATE3args>();
    const Handle fh = FileClient::handle_of(a->object);
    const std::uint64_t change = a->change;
    // Answered when the owner says its caches are clear (any thread).
    auto held = std::make_shared<rpc::Call>(std::move(c));
    on_inval(fh, change, [held] { held->reply(nullptr); });
  };
  return p;
}

FileClient::FileClient(SecureSession s, FileClientOptions o) : session_(std::move(s)), opts_(std::move(o)) {}

FileClient::~FileClient() = default;

void FileClient::connect(FileClientOptions opts, ConnectDone done) {
  SecureConnectOptions so;
  so.server = opts.server;
  so.address = opts.address;
  so.port = opts.port;
  so.offer = opts.offer.empty() ? measured_cipher_offer() : opts.offer;
  so.channel = opts.channel;
  so.color = opts.color;
  so.transport = opts.transport;
  so.handshake_timeout = opts.connect_timeout;
  so.log = opts.log;
  so.programs.push_back(callback_program(opts.on_invalidate));
  auto closed = std::make_shared<std::atomic<bool>>(false);
  so.on_close = [closed, user = opts.on_close](const std::string& why) {
    closed->store(true);
    if (user) user(why);
  };
  // done runs under its own color (its owner's state lives there), not the
  // connection's, where the steps below run.
  const asmp::color_t color = done.color();
  auto user_done = std::make_shared<ConnectDone>(std::move(done));
  auto shared_done = std::make_shared<std::function<void(Result<std::shared_ptr<FileClient>>)>>(
      [user_done, color](Result<std::shared_ptr<FileClient>> r) {
        auto result = std::make_shared<Result<std::shared_ptr<FileClient>>>(std::move(r));
        asmp::default_runtime().cpucb(asmp::Closure([user_done, result] { (*user_done)(std::move(*result)); }, color));
      });
  secure_connect(
      std::move(so),
      asmp::Callback<void(Result<SecureSession>)>(
          [opts = std::move(opts), shared_done, closed](Result<SecureSession> s) mutable {
            if (!s.ok()) return (*shared_done)(make_error(s.error()));
            auto client = std::shared_ptr<FileClient>(new FileClient(std::move(s.value()), std::move(opts)));
            client->closed_ = closed;
            auto res = std::make_shared<sfs_GETROOT3res>();
            client->raw_call(
                SFS_NFSPROC3_GETROOT, 0, rpc::as_xdrproc(xdr_void), nullptr,
                rpc::as_xdrproc(xdr_sfs_GETROOT3res), res.get(),
                rpc::CallDone(
                    [client, res, shared_done](rpc::RpcStatus st) {
                      struct Free {
                        sfs_GETROOT3res* r;
                        ~Free() { xdr_free(rpc::as_xdrproc(xdr_sfs_GETROOT3res), r); }
                      } free_res{res.get()};
                      const std::string server = client->server_name();
                      if (!st.ok()) {
                        client->close();
                        return (*shared_done)(make_error("GETROOT at " + server + " failed: " + st.message()));
                      }
                      if (res->status != SFS_NFS3_OK) {
                        client->close();
                        return (*shared_done)(make_error(
                            "GETROOT at " + server + " failed: " +
                            std::string(nfs::to_string(from_wire(res->status)))));
                      }
                      const auto& ok = res->sfs_GETROOT3res_u.resok;
                      client->root_.fh = handle_of(ok.root);
                      client->root_.attr = from_post_op(ok.root_attributes);
                      client->root_.fsinfo = ok.fsinfo;
                      client->root_.lease_ms = ok.lease_ms;
                      (*shared_done)(client);
                    },
                    asmp::Runtime::current_color()));
          },
          opts.color));
}

void FileClient::login(const UserKey& key, std::string user,
                       asmp::Callback<void(Result<std::uint32_t>)> cb) const {
  session_.login(key, std::move(user), std::move(cb));
}

void FileClient::login_signed(Bytes request, std::string user,
                              asmp::Callback<void(Result<std::uint32_t>)> cb) const {
  session_.login_signed(std::move(request), std::move(user), std::move(cb));
}

void FileClient::raw_call(std::uint32_t proc, std::uint32_t auth, xdrproc_t xargs, const void* args,
                          xdrproc_t xres, void* res, rpc::CallDone done) const {
  rpc::CallOptions co;
  co.timeout = opts_.call_timeout;
  rpc::Auth cred = auth ? auth_number_cred(auth) : rpc::Auth::none();
  co.auth = &cred;
  session_.connection()->call(SFS_NFS_PROG, SFS_NFS_V3, proc, xargs, args, xres, res, std::move(done), co);
}

void FileClient::read(std::uint32_t auth, const Handle& fh, std::uint64_t offset, std::uint32_t count,
                      ReadDone done) const {
  sfs_READ3args a{};
  a.file = wire(fh);
  a.offset = offset;
  a.count = count;
  auto view = std::make_unique<ReadView>();
  ReadView* raw = view.get();
  const asmp::color_t color = done.color();
  raw_call(SFS_NFSPROC3_READ, auth, rpc::as_xdrproc(xdr_sfs_READ3args), &a,
           rpc::xdrproc_of<xdr_read_view>(), raw,
           rpc::CallDone(
               [view = std::move(view), done = std::move(done)](rpc::RpcStatus st) mutable {
                 done(st, *view);
               },
               color));
}

}  // namespace sfs::fs
