// intruder.cc (binary nfs_intruder): a local process that tries to use the
// test's NFS-Ganesha directly through libnfs, bypassing sfsd, and claims to
// be root in its AUTH_UNIX credentials. isolation_test.cc runs it twice: as
// root (the control: every call must work, so the attempts are right) and
// as uid 65534 (every NFS call must be refused).
//
//   nfs_intruder NFS_PORT MNT_PORT EXPORT ROOT_FH_HEX SECRET_FH_HEX SECRET_NAME [--try-writes]
//
// ROOT_FH_HEX and SECRET_FH_HEX are real handles the test learned as root:
// the point is that even a leaked handle gives nothing away. It prints one
// line per attempt on stdout and exits 0 once all attempts were made:
//   uid U                             who ran the attempts
//   srcport P                         the source port of its NFS connection
//   mnt ok|refused ...                MOUNT3 MNT of EXPORT
//   call CRED PROC ok|nfserr N|refused ...   one raw NFSv3 call
//   read-data HEX                     what a successful READ returned
//   readdir-names a,b,...             what a successful READDIR listed
//   url-mount ok|failed ...           libnfs's own mount, as nfs-cat does it
//   url-read ok HEX|failed ...
//   nfs4-mount ok|failed ...          the same over NFSv4
// --try-writes adds WRITE, SETATTR, CREATE, MKDIR, RENAME and REMOVE
// attempts (only for the unprivileged run; the test then checks the files).
#include <nfsc/libnfs.h>
#include <nfsc/libnfs-raw.h>
#include <nfsc/libnfs-raw-mount.h>
#include <nfsc/libnfs-raw-nfs.h>
#include <nfsc/libnfs-raw-nfs4.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

namespace {

constexpr const char* kHost = "127.0.0.1";

std::string hex(const void* p, std::size_t n) {
  static const char* d = "0123456789abcdef";
  std::string s;
  auto* b = static_cast<const unsigned char*>(p);
  for (std::size_t i = 0; i < n; ++i) {
    s += d[b[i] >> 4];
    s += d[b[i] & 15];
  }
  return s;
}

std::vector<char> unhex(const std::string& s) {
  std::vector<char> v;
  for (std::size_t i = 0; i + 1 < s.size(); i += 2) v.push_back(static_cast<char>(std::stoi(s.substr(i, 2), nullptr, 16)));
  return v;
}

// One libnfs callback's outcome.
struct Outcome {
  bool done = false;
  int status = RPC_STATUS_ERROR;
  std::string error;
  std::function<void(void*)> on_success;  // reads the reply while it is valid
};

void record(rpc_context*, int status, void* data, void* priv) {
  auto* o = static_cast<Outcome*>(priv);
  o->done = true;
  o->status = status;
  if (status == RPC_STATUS_SUCCESS) {
    if (o->on_success) o->on_success(data);
  } else {
    o->error = data ? static_cast<const char*>(data) : "no detail";
  }
}

// Drives rpc until o is done or 5 s have passed.
bool wait(rpc_context* rpc, Outcome& o) {
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!o.done) {
    if (std::chrono::steady_clock::now() > until) {
      o.error = "no answer within 5 s";
      return false;
    }
    pollfd p{rpc_get_fd(rpc), static_cast<short>(rpc_which_events(rpc)), 0};
    if (poll(&p, 1, 100) < 0) return false;
    if (rpc_service(rpc, p.revents) < 0) {
      if (!o.done) o.error = std::string("connection: ") + (rpc_get_error(rpc) ? rpc_get_error(rpc) : "?");
      return o.done;
    }
  }
  return true;
}

AUTH* claim(std::uint32_t uid, std::uint32_t gid) {
  return libnfs_authunix_create("intruder", uid, gid, 0, nullptr);
}

// A connection to one program, claiming credentials cred_uid/cred_gid.
rpc_context* connect_to(int port, int program, int version, std::uint32_t uid, std::uint32_t gid,
                        std::string* err) {
  rpc_context* rpc = rpc_init_context();
  rpc_set_auth(rpc, claim(uid, gid));
  Outcome o;
  if (rpc_connect_port_async(rpc, kHost, port, program, version, record, &o) != 0 || !wait(rpc, o) ||
      o.status != RPC_STATUS_SUCCESS) {
    *err = o.error.empty() ? (rpc_get_error(rpc) ? rpc_get_error(rpc) : "connect failed") : o.error;
    rpc_destroy_context(rpc);
    return nullptr;
  }
  return rpc;
}

int source_port(rpc_context* rpc) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (getsockname(rpc_get_fd(rpc), reinterpret_cast<sockaddr*>(&ss), &len) != 0) return -1;
  if (ss.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  if (ss.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
  return -1;
}

nfs_fh3 fh3(std::vector<char>& bytes) {
  nfs_fh3 f;
  f.data.data_len = static_cast<u_int>(bytes.size());
  f.data.data_val = bytes.data();
  return f;
}

struct Intruder {
  int nfs_port, mnt_port;
  std::string export_path, secret_name;
  std::vector<char> root, secret;
  rpc_context* nfs = nullptr;
  std::uint32_t uid = 0, gid = 0;  // what the calls claim

  void reconnect() {
    if (nfs) rpc_destroy_context(nfs);
    std::string err;
    nfs = connect_to(nfs_port, NFS_PROGRAM, NFS_V3, uid, gid, &err);
    if (!nfs) std::printf("nfs-connect failed %s\n", err.c_str());
  }

  // Issues one call through issue(rpc, cb, priv), prints its outcome.
  void call(const char* name, const std::function<int(rpc_context*, rpc_cb, void*)>& issue,
            std::function<void(void*)> on_ok = nullptr) {
    if (!nfs) reconnect();
    if (!nfs) {
      std::printf("call uid%u %s refused (no connection)\n", uid, name);
      return;
    }
    Outcome o;
    int nfs_status = -1;
    o.on_success = [&](void* data) {
      // Every NFSv3 result starts with its nfsstat3; NULL's has no body.
      nfs_status = data ? *static_cast<int*>(data) : NFS3_OK;
      if (nfs_status == NFS3_OK && on_ok) on_ok(data);
    };
    if (issue(nfs, record, &o) != 0) {
      std::printf("call uid%u %s refused (not sent: %s)\n", uid, name, rpc_get_error(nfs));
      return;
    }
    bool ok = wait(nfs, o);
    if (o.status == RPC_STATUS_SUCCESS) {
      if (nfs_status == NFS3_OK) std::printf("call uid%u %s ok\n", uid, name);
      else std::printf("call uid%u %s nfserr %d\n", uid, name, nfs_status);
    } else {
      std::printf("call uid%u %s refused (%s)\n", uid, name, o.error.c_str());
    }
    if (!ok) reconnect();  // the server may have closed the connection
  }

  void try_mount() {
    std::string err;
    rpc_context* m = connect_to(mnt_port, MOUNT_PROGRAM, MOUNT_V3, 0, 0, &err);
    if (!m) {
      std::printf("mnt refused (connect: %s)\n", err.c_str());
      return;
    }
    Outcome o;
    int st = -1;
    o.on_success = [&](void* data) { st = static_cast<mountres3*>(data)->fhs_status; };
    if (rpc_mount3_mnt_async(m, record, const_cast<char*>(export_path.c_str()), &o) == 0 && wait(m, o) &&
        o.status == RPC_STATUS_SUCCESS) {
      if (st == MNT3_OK) std::printf("mnt ok\n");
      else std::printf("mnt refused (mountstat3 %d)\n", st);
    } else {
      std::printf("mnt refused (%s)\n", o.error.c_str());
    }
    rpc_destroy_context(m);
  }

  void reads() {
    call("NULL", [](rpc_context* r, rpc_cb cb, void* p) { return rpc_nfs3_null_async(r, cb, p); },
         nullptr);
    call("GETATTR", [&](rpc_context* r, rpc_cb cb, void* p) {
      GETATTR3args a{};
      a.object = fh3(root);
      return rpc_nfs3_getattr_async(r, cb, &a, p);
    });
    call("LOOKUP", [&](rpc_context* r, rpc_cb cb, void* p) {
      LOOKUP3args a{};
      a.what.dir = fh3(root);
      a.what.name = const_cast<char*>(secret_name.c_str());
      return rpc_nfs3_lookup_async(r, cb, &a, p);
    });
    call("ACCESS", [&](rpc_context* r, rpc_cb cb, void* p) {
      ACCESS3args a{};
      a.object = fh3(secret);
      a.access = ACCESS3_READ | ACCESS3_MODIFY;
      return rpc_nfs3_access_async(r, cb, &a, p);
    });
    call("READ", [&](rpc_context* r, rpc_cb cb, void* p) {
      READ3args a{};
      a.file = fh3(secret);
      a.count = 4096;
      return rpc_nfs3_read_async(r, cb, &a, p);
    }, [](void* data) {
      auto& ok = static_cast<READ3res*>(data)->READ3res_u.resok;
      std::printf("read-data %s\n", hex(ok.data.data_val, ok.data.data_len).c_str());
    });
    call("READDIR", [&](rpc_context* r, rpc_cb cb, void* p) {
      READDIR3args a{};
      a.dir = fh3(root);
      a.count = 8192;
      return rpc_nfs3_readdir_async(r, cb, &a, p);
    }, [](void* data) {
      // libnfs's decoder leaves entries misaligned: copy each out (as
      // xdr_convert.h's load() does).
      std::string names;
      for (const entry3* p = static_cast<READDIR3res*>(data)->READDIR3res_u.resok.reply.entries; p;) {
        entry3 e;
        std::memcpy(&e, p, sizeof e);
        names += std::string(names.empty() ? "" : ",") + e.name;
        p = e.nextentry;
      }
      std::printf("readdir-names %s\n", names.c_str());
    });
    call("READDIRPLUS", [&](rpc_context* r, rpc_cb cb, void* p) {
      READDIRPLUS3args a{};
      a.dir = fh3(root);
      a.dircount = 4096;
      a.maxcount = 8192;
      return rpc_nfs3_readdirplus_async(r, cb, &a, p);
    });
    call("FSSTAT", [&](rpc_context* r, rpc_cb cb, void* p) {
      FSSTAT3args a{};
      a.fsroot = fh3(root);
      return rpc_nfs3_fsstat_async(r, cb, &a, p);
    });
    call("FSINFO", [&](rpc_context* r, rpc_cb cb, void* p) {
      FSINFO3args a{};
      a.fsroot = fh3(root);
      return rpc_nfs3_fsinfo_async(r, cb, &a, p);
    });
  }

  void writes() {
    static char junk[] = "intruder was here\n";
    call("WRITE", [&](rpc_context* r, rpc_cb cb, void* p) {
      WRITE3args a{};
      a.file = fh3(secret);
      a.count = sizeof junk - 1;
      a.stable = FILE_SYNC;
      a.data.data_len = sizeof junk - 1;
      a.data.data_val = junk;
      return rpc_nfs3_write_async(r, cb, &a, p);
    });
    call("SETATTR", [&](rpc_context* r, rpc_cb cb, void* p) {
      SETATTR3args a{};
      a.object = fh3(secret);
      a.new_attributes.mode.set_it = 1;
      a.new_attributes.mode.set_mode3_u.mode = 0666;
      return rpc_nfs3_setattr_async(r, cb, &a, p);
    });
    call("CREATE", [&](rpc_context* r, rpc_cb cb, void* p) {
      CREATE3args a{};
      a.where.dir = fh3(root);
      a.where.name = const_cast<char*>("intruder");
      a.how.mode = UNCHECKED;
      return rpc_nfs3_create_async(r, cb, &a, p);
    });
    call("MKDIR", [&](rpc_context* r, rpc_cb cb, void* p) {
      MKDIR3args a{};
      a.where.dir = fh3(root);
      a.where.name = const_cast<char*>("intruder.d");
      return rpc_nfs3_mkdir_async(r, cb, &a, p);
    });
    call("RENAME", [&](rpc_context* r, rpc_cb cb, void* p) {
      RENAME3args a{};
      a.from.dir = fh3(root);
      a.from.name = const_cast<char*>(secret_name.c_str());
      a.to.dir = fh3(root);
      a.to.name = const_cast<char*>("stolen");
      return rpc_nfs3_rename_async(r, cb, &a, p);
    });
    call("REMOVE", [&](rpc_context* r, rpc_cb cb, void* p) {
      REMOVE3args a{};
      a.object.dir = fh3(root);
      a.object.name = const_cast<char*>(secret_name.c_str());
      return rpc_nfs3_remove_async(r, cb, &a, p);
    });
  }

  // libnfs's high-level API, the way nfs-cat reaches a file: nfs://...&uid=0.
  void url_attempts(int version, const char* label) {
    nfs_context* n = nfs_init_context();
    std::string url = "nfs://127.0.0.1" + export_path + "?nfsport=" + std::to_string(nfs_port) +
                      "&mountport=" + std::to_string(mnt_port) + "&uid=0&gid=0";
    nfs_url* u = nfs_parse_url_dir(n, url.c_str());
    if (!u) {
      std::printf("%s-mount failed (url: %s)\n", label, nfs_get_error(n));
      nfs_destroy_context(n);
      return;
    }
    nfs_set_version(n, version);
    if (nfs_mount(n, u->server, u->path) != 0) {
      std::printf("%s-mount failed (%s)\n", label, nfs_get_error(n));
    } else {
      std::printf("%s-mount ok\n", label);
      nfsfh* f = nullptr;
      std::string path = "/" + secret_name;
      char buf[4096];
      int n_read = -1;
      if (nfs_open(n, path.c_str(), O_RDONLY, &f) == 0) {
        n_read = nfs_pread(n, f, 0, sizeof buf, buf);
        nfs_close(n, f);
      }
      if (n_read >= 0) std::printf("%s-read ok %s\n", label, hex(buf, static_cast<std::size_t>(n_read)).c_str());
      else std::printf("%s-read failed (%s)\n", label, nfs_get_error(n));
    }
    nfs_destroy_url(u);
    nfs_destroy_context(n);
  }
};

}  // namespace

int main(int argc, char** argv) {
  if (argc < 7) {
    std::fprintf(stderr,
                 "usage: %s NFS_PORT MNT_PORT EXPORT ROOT_FH_HEX SECRET_FH_HEX SECRET_NAME [--try-writes]\n",
                 argv[0]);
    return 2;
  }
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  Intruder in;
  in.nfs_port = std::stoi(argv[1]);
  in.mnt_port = std::stoi(argv[2]);
  in.export_path = argv[3];
  in.root = unhex(argv[4]);
  in.secret = unhex(argv[5]);
  in.secret_name = argv[6];
  bool try_writes = argc > 7 && std::string(argv[7]) == "--try-writes";

  std::printf("uid %u\n", static_cast<unsigned>(getuid()));
  in.try_mount();
  in.reconnect();
  if (in.nfs) std::printf("srcport %d\n", source_port(in.nfs));
  in.reads();
  if (try_writes) in.writes();
  // The same, claiming to be the user it really is.
  in.uid = getuid();
  in.gid = getgid();
  in.reconnect();
  in.reads();
  if (in.nfs) rpc_destroy_context(in.nfs);
  in.url_attempts(NFS_V3, "url");
  in.url_attempts(NFS_V4, "nfs4");
  return 0;
}
