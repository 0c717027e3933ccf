// procedures_test.cc: every SFS_NFS procedure through a real sfsd to a real
// NFS-Ganesha, with the protocol client library; users and permissions;
// what SFS adds (sealed handles, leases, change numbers, FSINFO sizes).
// Starts: ganesha.nfsd (scripts/ganesha.sh) and sfsd (the built binary).
#include <sys/stat.h>

#include <set>

#include "sfsd_test_util.h"

namespace sfsd_test {
namespace {

class SfsdTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    if (!server_.setup(&why)) GTEST_SKIP() << why;
    ASSERT_TRUE(server_.start_sfsd(&why)) << why;
    client_ = connect(server_, 1, log_, &why);
    ASSERT_TRUE(client_) << why;
    root_ = client_->root().fh;
  }
  void TearDown() override {
    if (client_) client_->close();
    client_.reset();
  }

  RunningRuntime run_;
  SfsdServer server_;
  std::shared_ptr<ClientLog> log_ = std::make_shared<ClientLog>();
  std::shared_ptr<fs::FileClient> client_;
  fs::Handle root_;
};

TEST_F(SfsdTest, PrintsItsSelfCertifyingNameAndGetRootAnswers) {
  EXPECT_EQ(server_.name(), sfs::format_name(server_.self_cert_name()));
  const fs::Root& r = client_->root();
  EXPECT_GT(r.fh.size(), 42u) << "a sealed handle carries 42 bytes of overhead";
  EXPECT_LE(r.fh.size(), 128u);
  ASSERT_TRUE(r.attr);
  EXPECT_EQ(r.attr->attr.type, asmp::nfs::FileType::kDir);
  EXPECT_EQ(r.lease_ms, 60000u);
  EXPECT_EQ(r.fsinfo.rtmax, 1048576u);
  EXPECT_EQ(r.fsinfo.wtmax, 1048576u);
  EXPECT_EQ(r.fsinfo.rtpref, 1048576u);
}

TEST_F(SfsdTest, EveryProcedureDoesWhatNfsv3Says) {
  const std::uint32_t alice = login(*client_, server_.user("alice"));
  ASSERT_NE(alice, 0u);
  // Alice's own directory, made as root through sfsd (root is in the user
  // database explicitly), then chowned to her.
  const std::uint32_t root = login(*client_, server_.user("root"));
  {
    sfs_MKDIR3args a{};
    a.where.dir = fs::FileClient::wire(root_);
    a.where.name = const_cast<char*>("home");
    a.attributes.mode.set_it = TRUE;
    a.attributes.mode.sfs_set_mode3_u.mode = 0755;
    a.attributes.uid.set_it = TRUE;
    a.attributes.uid.sfs_set_uid3_u.uid = 1000;
    a.attributes.gid.set_it = TRUE;
    a.attributes.gid.sfs_set_gid3_u.gid = 1000;
    auto r = call<SFS_NFSPROC3_MKDIR>(*client_, root, a);
    ASSERT_TRUE(r.ok()) << r.status();
  }
  auto home = lookup(*client_, alice, root_, "home");
  ASSERT_TRUE(home);
  struct stat st;
  ASSERT_EQ(::stat((server_.export_dir() + "/home").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 1000u);

  // CREATE, WRITE, COMMIT, READ, GETATTR.
  auto f = create(*client_, alice, *home, "notes.txt", 0640);
  ASSERT_TRUE(f);
  const std::string text = "SFS: the name certifies the key.\n";
  std::string verf1, verf2;
  ASSERT_EQ(write(*client_, alice, *f, 0, text, SFS_UNSTABLE, &verf1), SFS_NFS3_OK);
  {
    sfs_COMMIT3args a{};
    a.file = fs::FileClient::wire(*f);
    auto r = call<SFS_NFSPROC3_COMMIT>(*client_, alice, a);
    ASSERT_TRUE(r.ok());
    verf2.assign(r.res->sfs_COMMIT3res_u.resok.verf, 8);
    EXPECT_EQ(verf1, verf2) << "same server, same connection: the verifier must not change";
  }
  EXPECT_EQ(read(*client_, alice, *f, 0, 4096), text);
  EXPECT_EQ(read(*client_, alice, *f, 5, 3), text.substr(5, 3));
  auto at = getattr(*client_, alice, *f);
  ASSERT_TRUE(at);
  EXPECT_EQ(at->attr.size, text.size());
  EXPECT_EQ(at->attr.uid, 1000u);
  EXPECT_EQ(at->attr.mode & 07777, 0640u);
  EXPECT_EQ(at->lease_ms, 60000u);
  EXPECT_GT(at->change, 0u);
  ASSERT_EQ(::stat((server_.export_dir() + "/home/notes.txt").c_str(), &st), 0);
  EXPECT_EQ(st.st_size, static_cast<off_t>(text.size()));

  // SETATTR: truncate and chmod, with nanosecond mtime.
  {
    sfs_SETATTR3args a{};
    a.object = fs::FileClient::wire(*f);
    a.new_attributes.size.set_it = TRUE;
    a.new_attributes.size.sfs_set_size3_u.size = 3;
    a.new_attributes.mode.set_it = TRUE;
    a.new_attributes.mode.sfs_set_mode3_u.mode = 0600;
    a.new_attributes.mtime.set_it = SFS_SET_TO_CLIENT_TIME;
    a.new_attributes.mtime.sfs_set_mtime_u.mtime = {1700000000, 123456789};
    auto r = call<SFS_NFSPROC3_SETATTR>(*client_, alice, a);
    ASSERT_TRUE(r.ok()) << r.status();
    auto after = fs::from_post_op(r.res->sfs_SETATTR3res_u.resok.obj_wcc.after);
    ASSERT_TRUE(after);
    EXPECT_EQ(after->attr.size, 3u);
    EXPECT_EQ(after->attr.mode & 07777, 0600u);
    EXPECT_EQ(after->attr.mtime.seconds, 1700000000u);
    EXPECT_EQ(after->attr.mtime.nseconds, 123456789u);
  }
  // ACCESS.
  {
    sfs_ACCESS3args a{};
    a.object = fs::FileClient::wire(*f);
    a.access = SFS_ACCESS3_READ | SFS_ACCESS3_MODIFY | SFS_ACCESS3_EXECUTE;
    auto r = call<SFS_NFSPROC3_ACCESS>(*client_, alice, a);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r.res->sfs_ACCESS3res_u.resok.access, static_cast<u_int>(SFS_ACCESS3_READ | SFS_ACCESS3_MODIFY));
  }
  // SYMLINK, READLINK.
  {
    sfs_SYMLINK3args a{};
    a.where.dir = fs::FileClient::wire(*home);
    a.where.name = const_cast<char*>("link");
    a.symlink.symlink_data = const_cast<char*>("notes.txt");
    auto r = call<SFS_NFSPROC3_SYMLINK>(*client_, alice, a);
    ASSERT_TRUE(r.ok()) << r.status();
    auto lfh = fs::FileClient::handle_of(r.res->sfs_SYMLINK3res_u.resok.obj.sfs_post_op_fh3_u.handle);
    sfs_READLINK3args rl{};
    rl.symlink = fs::FileClient::wire(lfh);
    auto rr = call<SFS_NFSPROC3_READLINK>(*client_, alice, rl);
    ASSERT_TRUE(rr.ok());
    EXPECT_STREQ(rr.res->sfs_READLINK3res_u.resok.data, "notes.txt");
  }
  // MKNOD (a FIFO).
  {
    sfs_MKNOD3args a{};
    a.where.dir = fs::FileClient::wire(*home);
    a.where.name = const_cast<char*>("pipe");
    a.what.type = SFS_NF3FIFO;
    a.what.sfs_mknoddata3_u.pipe_attributes.mode.set_it = TRUE;
    a.what.sfs_mknoddata3_u.pipe_attributes.mode.sfs_set_mode3_u.mode = 0600;
    auto r = call<SFS_NFSPROC3_MKNOD>(*client_, alice, a);
    ASSERT_TRUE(r.ok()) << r.status();
    ASSERT_EQ(::lstat((server_.export_dir() + "/home/pipe").c_str(), &st), 0);
    EXPECT_TRUE(S_ISFIFO(st.st_mode));
  }
  // LINK, then the link count.
  {
    sfs_LINK3args a{};
    a.file = fs::FileClient::wire(*f);
    a.link.dir = fs::FileClient::wire(*home);
    a.link.name = const_cast<char*>("hard");
    auto r = call<SFS_NFSPROC3_LINK>(*client_, alice, a);
    ASSERT_TRUE(r.ok()) << r.status();
    auto fa = fs::from_post_op(r.res->sfs_LINK3res_u.resok.file_attributes);
    ASSERT_TRUE(fa);
    EXPECT_EQ(fa->attr.nlink, 2u);
  }
  // READDIR and READDIRPLUS see every name, with handles that work.
  std::set<std::string> want = {".", "..", "notes.txt", "link", "pipe", "hard"};
  {
    sfs_READDIR3args a{};
    a.dir = fs::FileClient::wire(*home);
    a.count = 8192;
    auto r = call<SFS_NFSPROC3_READDIR>(*client_, alice, a);
    ASSERT_TRUE(r.ok()) << r.status();
    std::set<std::string> got;
    for (auto* e = r.res->sfs_READDIR3res_u.resok.reply.entries; e; e = e->nextentry) got.insert(e->name);
    EXPECT_TRUE(r.res->sfs_READDIR3res_u.resok.reply.eof);
    EXPECT_EQ(got, want);
  }
  {
    sfs_READDIRPLUS3args a{};
    a.dir = fs::FileClient::wire(*home);
    a.dircount = 8192;
    a.maxcount = 32768;
    auto r = call<SFS_NFSPROC3_READDIRPLUS>(*client_, alice, a);
    ASSERT_TRUE(r.ok()) << r.status();
    std::set<std::string> got;
    for (auto* e = r.res->sfs_READDIRPLUS3res_u.resok.reply.entries; e; e = e->nextentry) {
      got.insert(e->name);
      if (std::string(e->name) == "notes.txt") {
        ASSERT_TRUE(e->name_handle.handle_follows);
        auto h = fs::FileClient::handle_of(e->name_handle.sfs_post_op_fh3_u.handle);
        EXPECT_EQ(h, *f) << "one file, one sealed handle";
        ASSERT_TRUE(e->name_attributes.attributes_follow);
        EXPECT_EQ(e->name_attributes.sfs_post_op_attr_u.attributes.size, 3u);
        EXPECT_EQ(e->name_attributes.sfs_post_op_attr_u.attributes.lease_ms, 60000u);
      }
    }
    EXPECT_EQ(got, want);
  }
  // RENAME over an existing name, REMOVE, RMDIR.
  ASSERT_TRUE(create(*client_, alice, *home, "other"));
  {
    sfs_RENAME3args a{};
    a.from.dir = fs::FileClient::wire(*home);
    a.from.name = const_cast<char*>("notes.txt");
    a.to.dir = fs::FileClient::wire(*home);
    a.to.name = const_cast<char*>("other");
    auto r = call<SFS_NFSPROC3_RENAME>(*client_, alice, a);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(lookup(*client_, alice, *home, "other"), f);
    sfs_nfsstat3 s;
    EXPECT_FALSE(lookup(*client_, alice, *home, "notes.txt", &s));
    EXPECT_EQ(s, SFS_NFS3ERR_NOENT);
  }
  for (const char* n : {"other", "hard", "link", "pipe"}) {
    sfs_REMOVE3args a{};
    a.object.dir = fs::FileClient::wire(*home);
    a.object.name = const_cast<char*>(n);
    EXPECT_TRUE(call<SFS_NFSPROC3_REMOVE>(*client_, alice, a).ok()) << n;
  }
  {
    sfs_RMDIR3args a{};
    a.object.dir = fs::FileClient::wire(root_);
    a.object.name = const_cast<char*>("home");
    auto r = call<SFS_NFSPROC3_RMDIR>(*client_, alice, a);
    EXPECT_EQ(r.status(), SFS_NFS3ERR_ACCES) << "alice may not write the root directory";
    r = call<SFS_NFSPROC3_RMDIR>(*client_, root, a);
    EXPECT_TRUE(r.ok()) << r.status();
  }
  // FSSTAT, FSINFO, PATHCONF.
  {
    sfs_FSSTAT3args a{};
    a.fsroot = fs::FileClient::wire(root_);
    auto r = call<SFS_NFSPROC3_FSSTAT>(*client_, alice, a);
    ASSERT_TRUE(r.ok());
    EXPECT_GT(r.res->sfs_FSSTAT3res_u.resok.tbytes, 0u);
    sfs_FSINFO3args b{};
    b.fsroot = fs::FileClient::wire(root_);
    auto i = call<SFS_NFSPROC3_FSINFO>(*client_, alice, b);
    ASSERT_TRUE(i.ok());
    EXPECT_EQ(i.res->sfs_FSINFO3res_u.resok.rtmax, 1048576u);
    EXPECT_EQ(i.res->sfs_FSINFO3res_u.resok.wtmax, 1048576u);
    sfs_PATHCONF3args c{};
    c.object = fs::FileClient::wire(root_);
    auto p = call<SFS_NFSPROC3_PATHCONF>(*client_, alice, c);
    ASSERT_TRUE(p.ok());
    EXPECT_EQ(p.res->sfs_PATHCONF3res_u.resok.name_max, 255u);
  }
}

TEST_F(SfsdTest, EachUserGetsTheirOwnPermissionsAndAnonymousIsNobody) {
  const std::uint32_t alice = login(*client_, server_.user("alice"));
  const std::uint32_t bob = login(*client_, server_.user("bob"));
  const std::uint32_t root = login(*client_, server_.user("root"));
  // A world-writable, sticky directory, like /tmp.
  {
    sfs_MKDIR3args a{};
    a.where.dir = fs::FileClient::wire(root_);
    a.where.name = const_cast<char*>("tmp");
    a.attributes.mode.set_it = TRUE;
    a.attributes.mode.sfs_set_mode3_u.mode = 01777;
    ASSERT_TRUE(call<SFS_NFSPROC3_MKDIR>(*client_, root, a).ok());
  }
  auto tmp = lookup(*client_, alice, root_, "tmp");
  ASSERT_TRUE(tmp);
  auto secret = create(*client_, alice, *tmp, "secret", 0600);
  ASSERT_TRUE(secret);
  ASSERT_EQ(write(*client_, alice, *secret, 0, "alice only"), SFS_NFS3_OK);
  auto at = getattr(*client_, alice, *secret);
  ASSERT_TRUE(at);
  EXPECT_EQ(at->attr.uid, 1000u) << "a new file belongs to its creator";

  sfs_nfsstat3 st;
  EXPECT_FALSE(read(*client_, bob, *secret, 0, 100, &st));
  EXPECT_EQ(st, SFS_NFS3ERR_ACCES);
  EXPECT_FALSE(read(*client_, 0, *secret, 0, 100, &st));
  EXPECT_EQ(st, SFS_NFS3ERR_ACCES) << "the anonymous user is nobody";
  EXPECT_EQ(read(*client_, root, *secret, 0, 100), "alice only") << "root only because the database says so";
  EXPECT_EQ(write(*client_, bob, *secret, 0, "bob was here"), SFS_NFS3ERR_ACCES);

  // Sticky directory: bob may not remove alice's file.
  sfs_REMOVE3args rm{};
  rm.object.dir = fs::FileClient::wire(*tmp);
  rm.object.name = const_cast<char*>("secret");
  auto r = call<SFS_NFSPROC3_REMOVE>(*client_, bob, rm);
  EXPECT_TRUE(r.status() == SFS_NFS3ERR_ACCES || r.status() == SFS_NFS3ERR_PERM) << r.status();

  // An anonymous file is owned by nobody.
  auto anon = create(*client_, 0, *tmp, "anon");
  ASSERT_TRUE(anon);
  at = getattr(*client_, 0, *anon);
  ASSERT_TRUE(at);
  EXPECT_EQ(at->attr.uid, 65534u);
}

TEST_F(SfsdTest, ForgedAlteredAndForeignHandlesAreRefused) {
  const std::uint32_t root = login(*client_, server_.user("root"));
  auto f = create(*client_, root, root_, "real");
  ASSERT_TRUE(f);
  ASSERT_TRUE(getattr(*client_, root, *f));
  sfs_nfsstat3 st;
  // One bit flipped anywhere.
  for (std::size_t i = 0; i < f->size(); i += 7) {
    fs::Handle bad = *f;
    bad[i] ^= 0x01;
    EXPECT_FALSE(getattr(*client_, root, bad, &st)) << "byte " << i;
    EXPECT_EQ(st, SFS_NFS3ERR_BADHANDLE);
  }
  // Truncated, extended, empty, random.
  for (fs::Handle bad : {f->substr(0, f->size() - 1), *f + "x", fs::Handle(), fs::Handle(80, 'A')}) {
    EXPECT_FALSE(getattr(*client_, root, bad, &st));
    EXPECT_EQ(st, SFS_NFS3ERR_BADHANDLE);
  }
  // The backend's own handle is not accepted either: a sealed handle is
  // the only way in.
  // A foreign handle: sealed by another sfsd's keys (a second sfsd on the
  // same export, with its own handle key file).
  SfsdProcess other;
  auto args = server_.args();
  const std::uint16_t port2 = free_port();
  for (std::size_t i = 0; i + 1 < args.size(); ++i) {
    if (args[i] == "--listen") args[i + 1] = "127.0.0.1:" + std::to_string(port2);
    if (args[i] == "--handle-keys") args[i + 1] = server_.dir() + "/other.keys";
  }
  std::string out;
  const std::string other_name = other.start(args, &out);
  ASSERT_FALSE(other_name.empty()) << out;
  auto parsed = sfs::parse_name(other_name);
  ASSERT_TRUE(parsed.ok());
  auto c2 = connect(server_, 2, nullptr, nullptr, parsed.value());
  ASSERT_TRUE(c2);
  auto foreign = lookup(*c2, 0, c2->root().fh, "real");
  ASSERT_TRUE(foreign);
  EXPECT_NE(*foreign, *f);
  EXPECT_FALSE(getattr(*client_, root, *foreign, &st));
  EXPECT_EQ(st, SFS_NFS3ERR_BADHANDLE);
  c2->close();
  EXPECT_EQ(other.stop(), 0);
}

TEST_F(SfsdTest, HostileArgumentsGetNfsErrorsNotCrashes) {
  const std::uint32_t root = login(*client_, server_.user("root"));
  sfs_nfsstat3 st;
  // Names with '/', and empty names.
  EXPECT_FALSE(create(*client_, root, root_, "a/b", 0644, &st));
  EXPECT_EQ(st, SFS_NFS3ERR_INVAL);
  EXPECT_FALSE(lookup(*client_, root, root_, "../../etc", &st));
  EXPECT_EQ(st, SFS_NFS3ERR_NOENT);
  EXPECT_FALSE(create(*client_, root, root_, "", 0644, &st));
  EXPECT_EQ(st, SFS_NFS3ERR_INVAL);
  // ".." at the export's root is the root itself.
  auto up = lookup(*client_, root, root_, "..");
  ASSERT_TRUE(up);
  EXPECT_EQ(*up, root_);
  // WRITE whose count is not its data's length.
  auto f = create(*client_, root, root_, "w");
  ASSERT_TRUE(f);
  {
    sfs_WRITE3args a{};
    a.file = fs::FileClient::wire(*f);
    a.count = 10;
    a.stable = SFS_FILE_SYNC;
    a.data.data_len = 3;
    a.data.data_val = const_cast<char*>("abc");
    EXPECT_EQ(call<SFS_NFSPROC3_WRITE>(*client_, root, a).status(), SFS_NFS3ERR_INVAL);
  }
  // READ past any limit is clamped to 1 MiB.
  std::string big(3 << 20, 'z');
  for (std::size_t off = 0; off < big.size(); off += 1 << 20)
    ASSERT_EQ(write(*client_, root, *f, off, big.substr(off, 1 << 20)), SFS_NFS3_OK);
  auto got = read(*client_, root, *f, 0, 0xffffffffu);
  ASSERT_TRUE(got);
  EXPECT_EQ(got->size(), 1u << 20);
  // A tiny READDIRPLUS maxcount is TOOSMALL or a short page, never over.
  sfs_READDIRPLUS3args rp{};
  rp.dir = fs::FileClient::wire(root_);
  rp.dircount = 1;
  rp.maxcount = 1;
  auto r = call<SFS_NFSPROC3_READDIRPLUS>(*client_, root, rp);
  EXPECT_TRUE(r.status() == SFS_NFS3ERR_TOOSMALL || r.ok()) << r.status();
  // Garbage arguments: a GETATTR whose argument is not XDR for a handle.
  {
    std::uint32_t junk = 0xffffffffu;  // a length no handle has
    auto res = std::make_shared<Box<rpc::RpcStatus>>();
    sfs_GETATTR3res out{};
    client_->raw_call(SFS_NFSPROC3_GETATTR, root, rpc::as_xdrproc(xdr_u_int), &junk,
                      rpc::as_xdrproc(xdr_sfs_GETATTR3res), &out,
                      rpc::CallDone([res](rpc::RpcStatus s) { res->set(s); }));
    auto s = res->wait();
    ASSERT_TRUE(s);
    EXPECT_EQ(s->error, rpc::RpcError::kGarbageArgs);
  }
  // The server is still fine.
  EXPECT_TRUE(getattr(*client_, root, root_));
}

}  // namespace
}  // namespace sfsd_test
