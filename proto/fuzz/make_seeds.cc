// make_seeds: writes the seed corpora of the fuzz targets into DIR/<target>/
// (the committed ones are proto/fuzz/corpus/). Seeds are valid messages,
// made with the same fixed keys the targets use (fuzz_keys.h), so that the
// fuzzers start past the checks a random input never passes: a real
// SFS_CONNECT hello with the right HOSTID, sealed handles that open,
// well-formed arguments of every procedure, a login that succeeds.
//
//   make_seeds DIR        (run by hand after a wire format changes)
#include <arpa/inet.h>
#include <rpc/rpc.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "fake_backend.h"
#include "fuzz_keys.h"
#include "sfs/fs_wire.h"
#include "sfs/handshake.h"
#include "sfs/names.h"
#include "sfs/sfs_connect.h"
#include "sfs/sfs_login.h"
#include "sfs/sfs_nfs.h"

namespace {

using Bytes = std::vector<std::uint8_t>;
namespace fsys = std::filesystem;

fsys::path out_dir;

void write(const std::string& target, const std::string& name, const Bytes& b) {
  fsys::create_directories(out_dir / target);
  std::ofstream(out_dir / target / name, std::ios::binary)
      .write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

void put32(Bytes& b, std::uint32_t v) {
  const std::uint32_t be = htonl(v);
  const auto* p = reinterpret_cast<const std::uint8_t*>(&be);
  b.insert(b.end(), p, p + 4);
}
void put16(Bytes& b, std::size_t v) {
  b.push_back(static_cast<std::uint8_t>(v >> 8));
  b.push_back(static_cast<std::uint8_t>(v));
}
void append(Bytes& b, const Bytes& more) { b.insert(b.end(), more.begin(), more.end()); }

// Encodes a C value with its rpcgen routine.
template <class T>
Bytes xdr(bool_t (*routine)(XDR*, T*), const T& value) {
  Bytes b(8192);
  XDR x;
  xdrmem_create(&x, reinterpret_cast<char*>(b.data()), static_cast<u_int>(b.size()), XDR_ENCODE);
  if (!routine(&x, const_cast<T*>(&value))) {
    std::fprintf(stderr, "make_seeds: encoding failed\n");
    std::exit(1);
  }
  b.resize(xdr_getpos(&x));
  xdr_destroy(&x);
  return b;
}

// An RPC call message (RFC 5531), AUTH_NONE unless a credential is given.
Bytes call(std::uint32_t xid, std::uint32_t prog, std::uint32_t vers, std::uint32_t proc, const Bytes& args,
           std::uint32_t flavor = 0, const Bytes& cred = {}) {
  Bytes m;
  for (std::uint32_t w : {xid, 0u, 2u, prog, vers, proc, flavor, static_cast<std::uint32_t>(cred.size())})
    put32(m, w);
  append(m, cred);
  m.resize(m.size() + (-cred.size() & 3), 0);
  put32(m, 0);  // verifier: AUTH_NONE
  put32(m, 0);
  append(m, args);
  return m;
}

// Record marking: the message in `fragments` fragments.
Bytes record(const Bytes& msg, std::size_t fragments = 1) {
  Bytes r;
  const std::size_t step = (msg.size() + fragments - 1) / fragments;
  for (std::size_t off = 0; off < msg.size() || off == 0; off += step) {
    const std::size_t n = std::min(step, msg.size() - off);
    put32(r, static_cast<std::uint32_t>(n) | (off + n >= msg.size() ? 0x80000000u : 0));
    r.insert(r.end(), msg.begin() + static_cast<std::ptrdiff_t>(off), msg.begin() + static_cast<std::ptrdiff_t>(off + n));
    if (n == 0) break;
  }
  return r;
}

// ---- connect ----

Bytes connect_arg(const std::string& host, std::uint32_t port, bool right_hostid) {
  const sfs::Location claimed{host, static_cast<std::uint16_t>(port)};
  const sfs::SelfCertName name = sfs::name_for(claimed, sfs_fuzz::fuzz_server_key()->public_key());
  sfs::ClientHandshake hs({name, sfs::default_cipher_offer()}, sfs_fuzz::counting(0x60));
  const sfs::Bytes hello = hs.start().value();
  std::string hostid = sfs::format_hostid(name.hostid);
  if (!right_hostid) hostid[0] = hostid[0] == 'a' ? 'b' : 'a';
  sfs_connect_arg a{};
  a.release = SFS_RELEASE;
  a.host = const_cast<char*>(host.c_str());
  a.port = port;
  a.hostid = hostid.data();
  a.hello.hello_len = static_cast<u_int>(hello.size() - sfs::kHandshakeFrameHeader);
  a.hello.hello_val = reinterpret_cast<char*>(const_cast<std::uint8_t*>(hello.data() + sfs::kHandshakeFrameHeader));
  return xdr(xdr_sfs_connect_arg, a);
}

void connect_seeds() {
  const Bytes ok = call(1, SFS_CONNECT_PROG, SFS_CONNECT_V1, SFS_CONNECT, connect_arg("127.0.0.1", 4000, true));
  write("connect", "hello", record(ok));
  write("connect", "hello_fragments", record(ok, 3));
  write("connect", "wrong_hostid",
        record(call(2, SFS_CONNECT_PROG, SFS_CONNECT_V1, SFS_CONNECT, connect_arg("127.0.0.1", 4000, false))));
  write("connect", "null", record(call(3, SFS_CONNECT_PROG, SFS_CONNECT_V1, SFS_CONNECT_NULL, {})));
  Bytes two = record(call(4, SFS_CONNECT_PROG, SFS_CONNECT_V1, SFS_CONNECT_NULL, {}));
  append(two, record(ok));
  append(two, record(call(5, SFS_NFS_PROG, SFS_NFS_V3, SFS_NFSPROC3_NULL, {})));
  write("connect", "null_hello_then_clear_call", two);
  write("connect", "login_first", record(call(6, SFS_LOGIN_PROG, SFS_LOGIN_V1, SFS_LOGIN_NULL, {})));
}

// ---- file procedure arguments ----

struct Names {
  std::string a = "a", b = "b", target = "/etc/motd";
};

sfs_nfs_fh3 fh3(const Bytes& h) {
  sfs_nfs_fh3 f{};
  f.data.data_len = static_cast<u_int>(h.size());
  f.data.data_val = reinterpret_cast<char*>(const_cast<std::uint8_t*>(h.data()));
  return f;
}

sfs_sattr3 mode_only(std::uint32_t mode) {
  sfs_sattr3 s{};
  s.mode.set_it = TRUE;
  s.mode.sfs_set_mode3_u.mode = mode;
  return s;
}

// Well-formed arguments of procedure `proc` on handle h (and h again
// where a second handle goes). Empty for procedures without arguments.
Bytes args_of(std::uint32_t proc, const Bytes& h, Names& n) {
  const sfs_nfs_fh3 f = fh3(h);
  const sfs_diropargs3 where{f, n.a.data()};
  static char data[] = "hello";
  switch (proc) {
    case SFS_NFSPROC3_GETATTR: return xdr(xdr_sfs_GETATTR3args, sfs_GETATTR3args{f});
    case SFS_NFSPROC3_SETATTR: return xdr(xdr_sfs_SETATTR3args, sfs_SETATTR3args{f, mode_only(0600), {}});
    case SFS_NFSPROC3_LOOKUP: return xdr(xdr_sfs_LOOKUP3args, sfs_LOOKUP3args{where});
    case SFS_NFSPROC3_ACCESS: return xdr(xdr_sfs_ACCESS3args, sfs_ACCESS3args{f, 0x3f});
    case SFS_NFSPROC3_READLINK: return xdr(xdr_sfs_READLINK3args, sfs_READLINK3args{f});
    case SFS_NFSPROC3_READ: return xdr(xdr_sfs_READ3args, sfs_READ3args{f, 0, 4096});
    case SFS_NFSPROC3_WRITE: {
      sfs_WRITE3args w{f, 0, 5, SFS_FILE_SYNC, {5, data}};
      return xdr(xdr_sfs_WRITE3args, w);
    }
    case SFS_NFSPROC3_CREATE: {
      sfs_CREATE3args c{};
      c.where = where;
      c.how.mode = SFS_UNCHECKED;
      c.how.sfs_createhow3_u.obj_attributes = mode_only(0644);
      return xdr(xdr_sfs_CREATE3args, c);
    }
    case SFS_NFSPROC3_MKDIR: return xdr(xdr_sfs_MKDIR3args, sfs_MKDIR3args{where, mode_only(0755)});
    case SFS_NFSPROC3_SYMLINK:
      return xdr(xdr_sfs_SYMLINK3args, sfs_SYMLINK3args{where, {mode_only(0777), n.target.data()}});
    case SFS_NFSPROC3_MKNOD: {
      sfs_MKNOD3args m{};
      m.where = where;
      m.what.type = SFS_NF3FIFO;
      m.what.sfs_mknoddata3_u.pipe_attributes = mode_only(0600);
      return xdr(xdr_sfs_MKNOD3args, m);
    }
    case SFS_NFSPROC3_REMOVE: return xdr(xdr_sfs_REMOVE3args, sfs_REMOVE3args{where});
    case SFS_NFSPROC3_RMDIR: return xdr(xdr_sfs_RMDIR3args, sfs_RMDIR3args{where});
    case SFS_NFSPROC3_RENAME:
      return xdr(xdr_sfs_RENAME3args, sfs_RENAME3args{where, {f, n.b.data()}});
    case SFS_NFSPROC3_LINK: return xdr(xdr_sfs_LINK3args, sfs_LINK3args{f, {f, n.b.data()}});
    case SFS_NFSPROC3_READDIR: return xdr(xdr_sfs_READDIR3args, sfs_READDIR3args{f, 0, {}, 4096});
    case SFS_NFSPROC3_READDIRPLUS:
      return xdr(xdr_sfs_READDIRPLUS3args, sfs_READDIRPLUS3args{f, 0, {}, 4096, 16384});
    case SFS_NFSPROC3_FSSTAT: return xdr(xdr_sfs_FSSTAT3args, sfs_FSSTAT3args{f});
    case SFS_NFSPROC3_FSINFO: return xdr(xdr_sfs_FSINFO3args, sfs_FSINFO3args{f});
    case SFS_NFSPROC3_PATHCONF: return xdr(xdr_sfs_PATHCONF3args, sfs_PATHCONF3args{f});
    case SFS_NFSPROC3_COMMIT: return xdr(xdr_sfs_COMMIT3args, sfs_COMMIT3args{f, 0, 0});
    default: return {};
  }
}

const Bytes& root_sealed() {
  static const Bytes r =
      sfs_fuzz::root_sealer(sfs_fuzz::FakeBackend::handle(1))->seal(sfs_fuzz::FakeBackend::handle(1));
  return r;
}

void nfs_args_seeds() {
  // nfs_args_fuzz's first byte indexes its table: procedures 1..21, then
  // INVALIDATE (22).
  Names n;
  for (std::uint32_t proc = SFS_NFSPROC3_GETATTR; proc <= SFS_NFSPROC3_COMMIT; ++proc) {
    Bytes b{static_cast<std::uint8_t>(proc - 1)};
    append(b, args_of(proc, root_sealed(), n));
    write("nfs_args", "proc" + std::to_string(proc), b);
  }
  Bytes inv{21};
  append(inv, xdr(xdr_sfs_INVALIDATE3args, sfs_INVALIDATE3args{fh3(root_sealed()), 42}));
  write("nfs_args", "invalidate", inv);
}

// ---- sealed handles ----

void handle_seeds() {
  for (std::size_t len : {1u, 8u, 32u, 64u}) {
    Bytes h(len);
    for (std::size_t i = 0; i < len; ++i) h[i] = static_cast<std::uint8_t>(i * 7);
    write("handle", "key1_len" + std::to_string(len), sfs_fuzz::fuzz_sealer()->seal(asmp::nfs::FileHandle(h)));
  }
  // Sealed by key 2 before the rotation (still in its grace in handle_fuzz).
  const sfsd::HandleSealer old(sfs_fuzz::handle_keys({2}), std::chrono::hours(24), sfs_fuzz::at(sfs_fuzz::kKeyEpoch));
  write("handle", "key2_len8", old.seal(sfs_fuzz::FakeBackend::handle(1)));
}

// ---- INVALIDATE, as a server sends it ----

void invalidate_seeds() {
  const auto inval = [](std::uint32_t xid, const std::string& h, std::uint64_t change) {
    const Bytes hb(h.begin(), h.end());
    return record(call(xid, SFS_NFSCB_PROG, SFS_NFSCB_V1, SFS_NFSCBPROC_INVALIDATE,
                       xdr(xdr_sfs_INVALIDATE3args, sfs_INVALIDATE3args{fh3(hb), change})));
  };
  write("invalidate", "one", inval(1, "fuzz-handle-1", 9));
  Bytes many = inval(1, "fuzz-handle-1", 3);  // answered at once (3 % 3 == 0)
  append(many, inval(2, "fuzz-handle-2", 4));  // answered later
  append(many, inval(3, "fuzz-handle-1", 5));  // never answered
  append(many, inval(4, "unknown", 6));
  append(many, record(call(5, SFS_NFSCB_PROG, SFS_NFSCB_V1, 0, {})));
  write("invalidate", "many", many);
  const Bytes one = inval(7, "fuzz-handle-2", 12);
  write("invalidate", "fragments", record(Bytes(one.begin() + 4, one.end()), 4));
}

// ---- config ----

void config_seeds(const fsys::path& example) {
  std::ifstream in(example, std::ios::binary);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  write("config", "example", Bytes(text.begin(), text.end()));
  const std::string url = "nfs://127.0.0.1/srv/export?nfsport=2049&mountport=20048";
  write("config", "url", Bytes(url.begin(), url.end()));
  const std::string flags = "--port\n4001\n--server-key\n/k\n--backend\n" + url + "\n--handle-keys\n/h\n--check";
  write("config", "flags", Bytes(flags.begin(), flags.end()));
}

// ---- session scripts (session_fuzz's op codes) ----

enum : std::uint8_t { kSync, kLoginRaw, kLogout, kCall, kRaw, kLogin, kClose, kRootCall, kOther = 0x80 };

// ROOTCALL: session_fuzz puts the root handle first, so the arguments
// here are what follows it.
void root_call(Bytes& s, std::uint8_t client, std::uint32_t proc, std::uint8_t auth) {
  Names n;
  Bytes a = args_of(proc, root_sealed(), n);
  a.erase(a.begin(), a.begin() + static_cast<std::ptrdiff_t>(4 + sfs::fs::xdr_pad(root_sealed().size())));
  s.push_back(client | kRootCall);
  s.push_back(static_cast<std::uint8_t>(proc));
  s.push_back(auth);
  put16(s, a.size());
  append(s, a);
}

void session_seeds() {
  Bytes every;  // alice logs in and calls every procedure on the root
  every.push_back(kLogin);
  for (std::uint32_t p = SFS_NFSPROC3_GETATTR; p <= SFS_NFSPROC3_COMMIT; ++p) root_call(every, 0, p, 1);
  every.push_back(kSync);
  every.push_back(kLogout);
  every.push_back(1);
  root_call(every, 0, SFS_NFSPROC3_GETATTR, 1);  // with the number just logged out
  write("session", "every_procedure", every);

  Bytes leases;  // client 1 holds leases on the root; client 0 changes it
  root_call(leases, kOther, SFS_NFSPROC3_READDIRPLUS, 0);
  root_call(leases, kOther, SFS_NFSPROC3_GETATTR, 0);
  leases.push_back(kOther | kSync);
  root_call(leases, 0, SFS_NFSPROC3_CREATE, 0);
  root_call(leases, 0, SFS_NFSPROC3_RENAME, 0);
  root_call(leases, 0, SFS_NFSPROC3_REMOVE, 0);
  leases.push_back(kSync);
  leases.push_back(kOther | kClose);
  root_call(leases, 0, SFS_NFSPROC3_MKDIR, 0);
  write("session", "leases", leases);

  Bytes misc;  // GETROOT, a raw NULL call, bad logins, a reconnect
  misc.push_back(kCall);
  misc.push_back(SFS_NFSPROC3_GETROOT);
  misc.push_back(0);
  put16(misc, 0);
  const Bytes null_call = call(77, SFS_NFS_PROG, SFS_NFS_V3, SFS_NFSPROC3_NULL, {});
  misc.push_back(kRaw);
  put16(misc, null_call.size());
  append(misc, null_call);
  misc.push_back(kLoginRaw);
  misc.push_back(4);
  append(misc, {1, 2, 3, 4});
  misc.push_back(kClose);
  misc.push_back(kLogin);
  root_call(misc, 0, SFS_NFSPROC3_WRITE, 1);
  write("session", "misc", misc);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_seeds DIR\n");
    return 2;
  }
  out_dir = argv[1];
  const fsys::path source = fsys::path(__FILE__).parent_path();
  connect_seeds();
  nfs_args_seeds();
  handle_seeds();
  invalidate_seeds();
  config_seeds(source / "../../sfsd/sfsd.conf.example");
  session_seeds();
  return 0;
}
