// limits_test.cc: sfsd's limits and fail-safes, each shown to act: the
// global connection cap, the per-connection lease cap (the oldest lease
// ends with an INVALIDATE), leases that end by themselves, names at and
// past the protocol's 255-byte limit, handle keys past their grace, and a
// backend whose export changed under a running sfsd.
// Starts: ganesha.nfsd (restarted by one test) and sfsd (sfsd_test_util.h);
// one test also runs `sfsd --rotate-handle-key`.
#include <algorithm>
#include <fstream>
#include <iostream>
#include <mutex>

#include "sfsd_test_util.h"

namespace sfsd_test {
namespace {

class LimitsTest : public ::testing::Test {
 protected:
  // Ganesha, then sfsd with `flags` added to the harness's.
  void start(std::vector<std::string> flags = {}) {
    std::string why;
    if (!server_.setup(&why)) GTEST_SKIP() << why;
    ASSERT_TRUE(server_.start_sfsd(&why, std::move(flags))) << why;
  }
  void TearDown() override {
    for (auto& c : clients_)
      if (c) c->close();
    if (HasFailure()) std::cerr << "sfsd said:\n" << server_.sfsd().errors();
  }
  // A connected client (nullptr and *why on failure), closed at the end.
  std::shared_ptr<fs::FileClient> client(asmp::color_t color, std::string* why,
                                         std::shared_ptr<ClientLog> log = nullptr) {
    auto c = connect(server_, color, std::move(log), why);
    if (c) clients_.push_back(c);
    return c;
  }
  // start(flags), then one client logged in as root (c_, root_). False if
  // the test is skipped or failed.
  bool start_as_root(std::vector<std::string> flags = {}) {
    start(std::move(flags));
    if (IsSkipped() || HasFatalFailure()) return false;
    std::string why;
    c_ = client(1, &why);
    if (!c_) {
      ADD_FAILURE() << why;
      return false;
    }
    root_ = login(*c_, server_.user("root"));
    return !HasFailure();
  }
  bool served(const fs::FileClient& c) { return getattr(c, 0, c.root().fh).has_value(); }

  RunningRuntime run_;
  SfsdServer server_;
  std::vector<std::shared_ptr<fs::FileClient>> clients_;
  std::shared_ptr<fs::FileClient> c_;
  std::uint32_t root_ = 0;
};

// ---- max_connections ------------------------------------------------------

TEST_F(LimitsTest, ConnectionsPastTheGlobalCapAreRefusedAndTheHeldOnesKeepWorking) {
  constexpr int kCap = 4;
  start({"--max-connections", std::to_string(kCap), "--max-connections-per-source", "64"});
  if (IsSkipped() || HasFatalFailure()) return;
  std::vector<std::shared_ptr<fs::FileClient>> held;
  for (int i = 0; i < kCap; ++i) {
    std::string why;
    held.push_back(client(static_cast<asmp::color_t>(1 + i), &why));
    ASSERT_TRUE(held.back()) << "connection " << i << " of " << kCap << ": " << why;
  }
  // One more is closed at accept: its connect fails (an error, not the
  // harness's 30 s "connect timed out"), twice in a row.
  for (int attempt = 0; attempt < 2; ++attempt) {
    std::string why;
    EXPECT_FALSE(client(static_cast<asmp::color_t>(20 + attempt), &why)) << "connection " << kCap + 1 << " got in";
    EXPECT_FALSE(why.empty());
    EXPECT_EQ(why.find("timed out"), std::string::npos) << why;
  }
  EXPECT_NE(server_.sfsd().errors().find("refused: too many connections"), std::string::npos);
  // The held ones are untouched.
  for (auto& c : held) {
    EXPECT_FALSE(c->closed());
    EXPECT_TRUE(served(*c));
  }
  // One goes; a new connection gets its place (once sfsd has seen the close).
  held.front()->close();
  std::shared_ptr<fs::FileClient> late;
  for (int attempt = 0; attempt < 100 && !late; ++attempt) {
    std::string why;
    late = client(static_cast<asmp::color_t>(30 + attempt), &why);
    if (!late) std::this_thread::sleep_for(100ms);
  }
  ASSERT_TRUE(late) << "no room after a connection closed";
  EXPECT_TRUE(served(*late));
  for (std::size_t i = 1; i < held.size(); ++i) EXPECT_TRUE(served(*held[i]));
  // Full again.
  std::string why;
  EXPECT_FALSE(client(200, &why));
}

// ---- leases ---------------------------------------------------------------

// A reader (leases logged per handle) and a writer (root) on one sfsd.
class LimitsLeaseTest : public LimitsTest {
 protected:
  void start_pair(std::vector<std::string> flags) {
    start(std::move(flags));
    if (IsSkipped() || HasFatalFailure()) return;
    std::string why;
    writer_ = client(1, &why);
    ASSERT_TRUE(writer_) << why;
    reader_ = client(2, &why, log_);
    ASSERT_TRUE(reader_) << why;
    wroot_ = login(*writer_, server_.user("root"));
    rroot_ = login(*reader_, server_.user("root"));
    root_ = writer_->root().fh;
  }
  // Waits (bounded) for the reader to have received `n` INVALIDATEs in all.
  bool reader_invalidated(int n) { return eventually([&] { return log_->invalidations.load() >= n; }, 10s); }

  std::shared_ptr<ClientLog> log_ = std::make_shared<ClientLog>();
  std::shared_ptr<fs::FileClient> writer_, reader_;
  std::uint32_t wroot_ = 0, rroot_ = 0;
  fs::Handle root_;
};

TEST_F(LimitsLeaseTest, AConnectionHoldsAtMostTheCapAndTheOldestLeaseIsInvalidated) {
  constexpr int kCap = 4;
  start_pair({"--max-leases-per-connection", std::to_string(kCap)});
  if (IsSkipped() || HasFatalFailure()) return;
  // Files made first: the reader's lease on the root (from GETROOT) ends
  // with the first CREATE's INVALIDATE, so it holds nothing afterwards.
  std::vector<fs::Handle> f;
  for (int i = 0; i <= kCap; ++i) {
    auto h = create(*writer_, wroot_, root_, "f" + std::to_string(i));
    ASSERT_TRUE(h);
    f.push_back(*h);
  }
  ASSERT_TRUE(reader_invalidated(1));
  std::this_thread::sleep_for(200ms);
  ASSERT_EQ(log_->invalidations.load(), 1) << "only the root's lease was ended";
  const int base = log_->invalidations.load();
  // The reader caches kCap files: room for all of them.
  for (int i = 0; i < kCap; ++i) {
    auto a = getattr(*reader_, rroot_, f[i]);
    ASSERT_TRUE(a);
    ASSERT_GT(a->lease_ms, 0u);
  }
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(log_->invalidations.load(), base) << "under the cap, nothing is evicted";
  // One more: the oldest (f0) is evicted, with an INVALIDATE for f0 only.
  ASSERT_TRUE(getattr(*reader_, rroot_, f[kCap]));
  ASSERT_TRUE(reader_invalidated(base + 1));
  EXPECT_EQ(log_->invalidations_of(f[0]), 1) << "the evicted lease is the oldest one";
  // The writer changes every file. f1..f4 are held: one INVALIDATE each.
  // f0 is not any more: none for it.
  for (int i = 0; i <= kCap; ++i) ASSERT_EQ(write(*writer_, wroot_, f[i], 0, "changed"), SFS_NFS3_OK);
  ASSERT_TRUE(reader_invalidated(base + 1 + kCap));
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(log_->invalidations.load(), base + 1 + kCap) << "held at most " << kCap << " leases";
  EXPECT_EQ(log_->invalidations_of(f[0]), 1) << "a change to an evicted file sent it another INVALIDATE";
  for (int i = 1; i <= kCap; ++i) EXPECT_EQ(log_->invalidations_of(f[i]), 1) << "f" << i;
}

TEST_F(LimitsLeaseTest, ALeaseThatEndedBringsNoInvalidate) {
  start_pair({"--lease", "1s"});
  if (IsSkipped() || HasFatalFailure()) return;
  auto f = create(*writer_, wroot_, root_, "short");
  ASSERT_TRUE(f);
  ASSERT_TRUE(reader_invalidated(1));  // the root's lease, ended by the CREATE
  const int base = log_->invalidations.load();
  // A lease held: the writer's change invalidates it (the control).
  auto a = getattr(*reader_, rroot_, *f);
  ASSERT_TRUE(a);
  ASSERT_EQ(a->lease_ms, 1000u);
  ASSERT_EQ(write(*writer_, wroot_, *f, 0, "one"), SFS_NFS3_OK);
  ASSERT_TRUE(reader_invalidated(base + 1));
  EXPECT_EQ(log_->invalidations_of(*f), 1);
  // A lease that has ended: no INVALIDATE, for a change of the file and of
  // its directory alike.
  ASSERT_TRUE(getattr(*reader_, rroot_, *f));
  ASSERT_TRUE(getattr(*reader_, rroot_, root_));
  std::this_thread::sleep_for(1500ms);  // the lease counts from before the reply: over
  ASSERT_EQ(write(*writer_, wroot_, *f, 0, "two"), SFS_NFS3_OK);
  ASSERT_TRUE(create(*writer_, wroot_, root_, "another"));
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(log_->invalidations.load(), base + 1) << "an expired lease was invalidated";
  // And the reader sees the change when it asks again.
  auto b = getattr(*reader_, rroot_, *f);
  ASSERT_TRUE(b);
  EXPECT_EQ(b->attr.size, 3u);
}

// ---- names ----------------------------------------------------------------

// LOOKUP, CREATE, MKDIR or RENAME arguments encoded without the
// protocol's 255-byte name limit, so that a client can send what a correct
// encoder refuses to: the directory and name, then what the procedure has
// after them (CREATE: UNCHECKED with no attributes; MKDIR: no attributes;
// RENAME: the same directory and to_name).
struct UncheckedNames {
  std::uint32_t proc = SFS_NFSPROC3_LOOKUP;
  const fs::Handle* dir = nullptr;
  std::string name, to_name;
  std::uint32_t claimed = 0;  // nonzero: claim this length for name, and end the record there
};

UncheckedNames unchecked(std::uint32_t proc, const fs::Handle& dir, std::string name, std::string to_name = "",
                         std::uint32_t claimed = 0) {
  UncheckedNames a;
  a.proc = proc;
  a.dir = &dir;
  a.name = std::move(name);
  a.to_name = std::move(to_name);
  a.claimed = claimed;
  return a;
}

bool_t put_name(XDR* x, const std::string& s) {
  char* p = const_cast<char*>(s.c_str());
  return xdr_string(x, &p, ~0u);
}

bool_t xdr_unchecked_names(XDR* x, UncheckedNames* a) {
  sfs_nfs_fh3 dir = fs::FileClient::wire(*a->dir);
  if (!xdr_sfs_nfs_fh3(x, &dir)) return FALSE;
  if (a->claimed) return xdr_u_int(x, &a->claimed);
  if (!put_name(x, a->name)) return FALSE;
  sfs_sattr3 none{};
  sfs_createmode3 how = SFS_UNCHECKED;
  switch (a->proc) {
    case SFS_NFSPROC3_CREATE: return xdr_sfs_createmode3(x, &how) && xdr_sfs_sattr3(x, &none);
    case SFS_NFSPROC3_MKDIR: return xdr_sfs_sattr3(x, &none);
    case SFS_NFSPROC3_RENAME: return xdr_sfs_nfs_fh3(x, &dir) && put_name(x, a->to_name);
    default: return TRUE;
  }
}

// Sends proc with `a`; the RPC-level answer (the NFS status is ignored).
rpc::RpcStatus send_unchecked(const fs::FileClient& c, std::uint32_t auth, UncheckedNames a) {
  auto box = std::make_shared<Box<rpc::RpcStatus>>();
  c.raw_call(a.proc, auth, rpc::as_xdrproc(xdr_unchecked_names), &a, rpc::as_xdrproc(xdr_void), nullptr,
             rpc::CallDone([box](rpc::RpcStatus st) { box->set(st); }, 7));
  auto r = box->wait();
  if (r) return *r;
  rpc::RpcStatus t;
  t.error = rpc::RpcError::kTimeout;
  return t;
}

TEST_F(LimitsTest, NamesPastTheProtocolLimitAreGarbageAndTheConnectionStaysUsable) {
  if (!start_as_root()) return;
  std::string why;
  auto c = c_;
  const std::uint32_t root = root_;
  const fs::Handle dir = c->root().fh;
  // 255 bytes (SFS_NFS3_MAXNAMLEN, and the backend's NAME_MAX) is a name.
  const std::string max_a(255, 'a'), max_b(255, 'b'), max_d(255, 'd');
  auto f = create(*c, root, dir, max_a);
  ASSERT_TRUE(f);
  EXPECT_EQ(lookup(*c, root, dir, max_a), f);
  {
    sfs_MKDIR3args m{};
    m.where.dir = fs::FileClient::wire(dir);
    m.where.name = const_cast<char*>(max_d.c_str());
    EXPECT_EQ(call<SFS_NFSPROC3_MKDIR>(*c, root, m).status(), SFS_NFS3_OK);
    sfs_RENAME3args r{};
    r.from.dir = r.to.dir = fs::FileClient::wire(dir);
    r.from.name = const_cast<char*>(max_a.c_str());
    r.to.name = const_cast<char*>(max_b.c_str());
    EXPECT_EQ(call<SFS_NFSPROC3_RENAME>(*c, root, r).status(), SFS_NFS3_OK);
  }
  EXPECT_TRUE(std::filesystem::exists(server_.export_dir() + "/" + max_b));

  // 256 bytes: the client's own encoder refuses to send it...
  const std::string long_name(256, 'n');
  sfs_LOOKUP3args la{};
  la.what.dir = fs::FileClient::wire(dir);
  la.what.name = const_cast<char*>(long_name.c_str());
  EXPECT_EQ(call<SFS_NFSPROC3_LOOKUP>(*c, root, la).st.error, rpc::RpcError::kEncodeArgs);
  // ...and sent anyway, sfsd answers GARBAGE_ARGS (its decoder enforces the
  // limit; nothing reaches the backend, so never NFS3ERR_NAMETOOLONG).
  auto garbage = [&](UncheckedNames a) {
    const std::uint32_t proc = a.proc;
    const rpc::RpcStatus st = send_unchecked(*c, root, std::move(a));
    EXPECT_EQ(st.error, rpc::RpcError::kGarbageArgs) << "proc " << proc << ": " << st.message();
  };
  // The control: the same encoder with a 255-byte name is answered.
  EXPECT_TRUE(send_unchecked(*c, root, unchecked(SFS_NFSPROC3_LOOKUP, dir, max_b)).ok());
  garbage(unchecked(SFS_NFSPROC3_LOOKUP, dir, long_name));
  garbage(unchecked(SFS_NFSPROC3_CREATE, dir, long_name));
  garbage(unchecked(SFS_NFSPROC3_MKDIR, dir, long_name));
  garbage(unchecked(SFS_NFSPROC3_RENAME, dir, max_b, long_name));  // to a name too long
  garbage(unchecked(SFS_NFSPROC3_RENAME, dir, long_name, max_a));  // from one
  // Far past it: 64 KiB of name, and a 4 GiB length with nothing behind it.
  garbage(unchecked(SFS_NFSPROC3_LOOKUP, dir, std::string(64 * 1024, 'x')));
  garbage(unchecked(SFS_NFSPROC3_CREATE, dir, "", "", 0xfffffff0u));
  // The connection is still open and serves; the file kept its name.
  EXPECT_FALSE(c->closed());
  EXPECT_EQ(lookup(*c, root, dir, max_b), f);
  sfs_nfsstat3 st;
  EXPECT_FALSE(lookup(*c, root, dir, max_a, &st));
  EXPECT_EQ(st, SFS_NFS3ERR_NOENT);
  for (const auto& e : std::filesystem::directory_iterator(server_.export_dir()))
    EXPECT_LE(e.path().filename().string().size(), 255u);
  // Another client is served too, and sfsd is still running.
  auto other = client(2, &why);
  ASSERT_TRUE(other) << why;
  EXPECT_TRUE(served(*other));
  EXPECT_FALSE(server_.sfsd().exited());
}

// ---- handle keys ----------------------------------------------------------

// Runs `sfsd --rotate-handle-key` on the harness's key file; its output.
std::string rotate_handle_key(const SfsdServer& s) {
  SfsdProcess p;
  std::string out;
  p.start({"--rotate-handle-key", "--handle-keys", s.dir() + "/handle.keys"}, &out, 30s);
  const int status = p.stop(0, 30s);
  return out + p.errors() + (WIFEXITED(status) && WEXITSTATUS(status) == 0 ? "" : "\n(exit status not 0)");
}

TEST_F(LimitsTest, AHandleSealedUnderAKeyPastItsGraceIsRefused) {
  if (!start_as_root({"--handle-key-grace", "1s"})) return;
  std::string why;
  auto c = c_;
  const std::uint32_t root = root_;
  const fs::Handle old_root = c->root().fh;
  auto f = create(*c, root, old_root, "f");
  ASSERT_TRUE(f);
  ASSERT_EQ(write(*c, root, *f, 0, "kept"), SFS_NFS3_OK);
  ASSERT_EQ(static_cast<unsigned char>((*f)[1]), 1) << "sealed with key 1";

  const std::string out = rotate_handle_key(server_);
  ASSERT_NE(out.find("new handle key 2 now seals"), std::string::npos) << out;
  // SIGHUP makes key 2 seal; key 1 still opens, in its grace.
  server_.sfsd().signal(SIGHUP);
  bool key2_seals = false;
  for (int i = 0; i < 40 && !key2_seals; ++i) {
    std::string ignored;
    auto probe = client(static_cast<asmp::color_t>(10 + i), &ignored);
    key2_seals = probe && static_cast<unsigned char>(probe->root().fh[1]) == 2;
    if (!key2_seals) std::this_thread::sleep_for(50ms);
  }
  ASSERT_TRUE(key2_seals) << "SIGHUP did not load key 2";
  EXPECT_EQ(read(*c, root, *f, 0, 100), "kept") << "key 1 is still in its grace";
  // Past the grace (1 s after key 2 was made, counted in whole seconds) the
  // running sfsd refuses key-1 handles by itself, with no other SIGHUP.
  std::this_thread::sleep_for(2100ms);
  sfs_nfsstat3 st = SFS_NFS3_OK;
  ASSERT_TRUE(eventually([&] { return !getattr(*c, root, *f, &st) && st == SFS_NFS3ERR_BADHANDLE; }, 10s))
      << "a key-1 handle still opens past the grace (status " << st << ")";
  EXPECT_FALSE(read(*c, root, *f, 0, 100, &st));
  EXPECT_EQ(st, SFS_NFS3ERR_BADHANDLE);
  EXPECT_FALSE(lookup(*c, root, old_root, "f", &st));
  EXPECT_EQ(st, SFS_NFS3ERR_BADHANDLE);
  // The files are there: a new connection gets a key-2 root, and through it
  // a key-2 handle that opens the same file.
  auto fresh = client(2, &why);
  ASSERT_TRUE(fresh) << why;
  EXPECT_NE(fresh->root().fh, old_root);
  EXPECT_EQ(static_cast<unsigned char>(fresh->root().fh[1]), 2);
  auto f2 = lookup(*fresh, 0, fresh->root().fh, "f");
  ASSERT_TRUE(f2);
  EXPECT_EQ(static_cast<unsigned char>((*f2)[1]), 2);
  EXPECT_EQ(read(*fresh, 0, *f2, 0, 100), "kept");
  // The same after a restart: the key file still holds key 1, unused.
  ASSERT_EQ(server_.stop_sfsd(), 0);
  ASSERT_TRUE(server_.start_sfsd(&why, {"--handle-key-grace", "1s"})) << why;
  auto after = client(3, &why);
  ASSERT_TRUE(after) << why;
  EXPECT_FALSE(getattr(*after, 0, *f, &st));
  EXPECT_EQ(st, SFS_NFS3ERR_BADHANDLE);
  EXPECT_EQ(read(*after, 0, *f2, 0, 100), "kept");
}

// ---- a changed backend ----------------------------------------------------

// Behind sfsd's back, the export directory is replaced by another (the old
// one kept aside, on the same file system: its files' backend handles still
// open them), with a file of the same name.
void swap_export(SfsdServer& server) {
  const std::string ex = server.export_dir();
  std::filesystem::rename(ex, ex + "-before");
  std::filesystem::create_directories(ex);
  std::ofstream(ex + "/secret") << "another export";
}

std::string first_line(const std::string& path) {
  std::string s;
  std::getline(std::ifstream(path), s);
  return s;
}

// sfsd compares the root handle of every (re)mount with the first one of
// its run.
TEST_F(LimitsTest, ABackendWhoseRootChangedIsRefusedNotServed) {
  if (!start_as_root()) return;
  std::string why;
  auto c = c_;
  const std::uint32_t root = root_;
  const fs::Handle old_root = c->root().fh;
  auto f = create(*c, root, old_root, "secret");
  ASSERT_TRUE(f);
  ASSERT_EQ(write(*c, root, *f, 0, "the export sfsd started with"), SFS_NFS3_OK);

  server_.ganesha().stop();
  const std::string ex = server_.export_dir();
  swap_export(server_);
  ASSERT_TRUE(server_.ganesha().start(&why)) << why;
  // sfsd reconnects by itself, sees another root handle and stops serving.
  ASSERT_TRUE(eventually([&] { return server_.sfsd().errors().find("refusing every file call") != std::string::npos; },
                         30s))
      << "sfsd did not notice the new root";
  // A handle issued before opens neither the old file nor the new one.
  sfs_nfsstat3 st = SFS_NFS3_OK;
  EXPECT_EQ(read(*c, root, *f, 0, 100, &st), std::nullopt);
  EXPECT_EQ(st, SFS_NFS3ERR_SERVERFAULT);
  EXPECT_FALSE(getattr(*c, root, old_root, &st));
  EXPECT_EQ(st, SFS_NFS3ERR_SERVERFAULT);
  EXPECT_FALSE(lookup(*c, root, old_root, "secret", &st));
  EXPECT_EQ(st, SFS_NFS3ERR_SERVERFAULT);
  EXPECT_NE(write(*c, root, *f, 0, "overwritten"), SFS_NFS3_OK);
  // Nor does a new client get the new export's root.
  auto late = client(2, &why);
  EXPECT_FALSE(late);
  EXPECT_NE(why.find("GETROOT"), std::string::npos) << why;
  // Neither file was touched.
  EXPECT_EQ(first_line(ex + "-before/secret"), "the export sfsd started with");
  EXPECT_EQ(first_line(ex + "/secret"), "another export");
}

// A call that was waiting for the backend while the export was swapped is
// not sent to the new one: its handle came from the old export, where the
// backend would still open the old file.
TEST_F(LimitsTest, ACallWaitingWhileTheRootChangesIsNotSent) {
  if (!start_as_root({"--data-cache", "0"})) return;  // the READ must need the backend
  std::string why;
  auto c = c_;
  const std::uint32_t root = root_;
  auto f = create(*c, root, c->root().fh, "secret");
  ASSERT_TRUE(f);
  ASSERT_EQ(write(*c, root, *f, 0, "the export sfsd started with"), SFS_NFS3_OK);
  server_.ganesha().stop();
  sfs_nfsstat3 st = SFS_NFS3_OK;
  std::optional<std::string> got;
  std::thread reader([&] { got = read(*c, root, *f, 0, 100, &st); });
  // The READ waits in sfsd for the backend (sfsd counts it in flight).
  std::this_thread::sleep_for(500ms);
  const std::string ex = server_.export_dir();
  swap_export(server_);
  ASSERT_TRUE(server_.ganesha().start(&why)) << why;
  reader.join();
  EXPECT_FALSE(got) << "the waiting READ reached the old file: " << got.value_or("");
  EXPECT_EQ(st, SFS_NFS3ERR_SERVERFAULT);
  EXPECT_EQ(first_line(ex + "-before/secret"), "the export sfsd started with");
}

// Restarted on another export, sfsd takes the new root as it is, but the
// handles it gave out for the old one were sealed for that root: they open
// nothing now, although the backend still knows the old files by them.
TEST_F(LimitsTest, AnSfsdRestartedOnAnotherExportOpensNoOldHandle) {
  if (!start_as_root()) return;
  std::string why;
  auto c = c_;
  const std::uint32_t root = root_;
  const fs::Handle old_root = c->root().fh;
  auto f = create(*c, root, old_root, "secret");
  ASSERT_TRUE(f);
  ASSERT_EQ(write(*c, root, *f, 0, "the export sfsd started with"), SFS_NFS3_OK);
  c->close();
  ASSERT_EQ(server_.stop_sfsd(), 0);
  server_.ganesha().stop();
  const std::string ex = server_.export_dir();
  swap_export(server_);
  ASSERT_TRUE(server_.ganesha().start(&why)) << why;
  ASSERT_TRUE(server_.start_sfsd(&why)) << why;
  auto after = client(2, &why);
  ASSERT_TRUE(after) << why;
  const std::uint32_t root2 = login(*after, server_.user("root"));
  sfs_nfsstat3 st = SFS_NFS3_OK;
  EXPECT_FALSE(read(*after, root2, *f, 0, 100, &st)) << "an old handle opened the old export's file";
  EXPECT_EQ(st, SFS_NFS3ERR_BADHANDLE);
  EXPECT_EQ(write(*after, root2, *f, 0, "overwritten"), SFS_NFS3ERR_BADHANDLE);
  EXPECT_FALSE(lookup(*after, root2, old_root, "secret", &st));
  EXPECT_EQ(st, SFS_NFS3ERR_BADHANDLE);
  // The new export is served through its own root.
  EXPECT_NE(after->root().fh, old_root);
  auto g = lookup(*after, root2, after->root().fh, "secret");
  ASSERT_TRUE(g);
  EXPECT_EQ(read(*after, root2, *g, 0, 100), "another export");
  EXPECT_EQ(first_line(ex + "-before/secret"), "the export sfsd started with");
}

}  // namespace
}  // namespace sfsd_test
