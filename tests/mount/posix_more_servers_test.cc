// posix_more_servers_test.cc: more of what POSIX programs expect of a real
// /sfs mount, per local user (issue 8), with a second server or a small
// backend disk: EXDEV between servers and to a local directory (and mv
// copying across), and a full backend disk reaching the writer. The users,
// their agents and keys: posix_more_util.h. Starts: ganesha.nfsd and sfsd
// (two of each in the two-server test), sfsclient, one sfsagent per user.
// The small-disk tests mount an 8 MiB tmpfs over the export directory
// (unmounted at the end, always).
#include "posix_more_util.h"

namespace mount_test::posix_more {
namespace {

// Two servers under one mount, A's key known to both.
class PosixMoreTwoServersTest : public PosixMoreTest {
 protected:
  void SetUp() override {
    PosixMoreTest::SetUp();
    if (IsSkipped()) return;
    ASSERT_FALSE(HasFailure()) << "the first server's setup failed";
    other_ = std::make_unique<SfsdServer>();
    std::string why;
    ASSERT_TRUE(other_->setup(&why)) << why;
    ::chmod(other_->export_dir().c_str(), 0777);
    other_->add_user_with_key(a_.name, a_.uid, a_.gid, a_.key);
    other_->write_users();
    ASSERT_TRUE(other_->start_sfsd(&why)) << why;
  }
  std::unique_ptr<SfsdServer> other_;
};

// rename() and link() between two servers, or between the mount and a
// local directory, fail with EXDEV and change nothing; mv, seeing EXDEV,
// copies and removes, for files and directories, and the copy on the
// other server belongs to A.
TEST_F(PosixMoreTwoServersTest, RenameAndLinkAcrossServersGiveExdevAndMvCopies) {
  const std::string s1 = d_, s2 = m_->path() + "/" + other_->name(), local = a_.home + "/local";
  EXPECT_EQ(as(a_,
               [&] {
                 Said r;
                 r << put(s1 + "/f", "one") << put(s1 + "/g", "two") << put(s2 + "/h", "three")
                   << result(::mkdir(local.c_str(), 0755)) << put(local + "/l", "four");
                 const std::vector<std::pair<std::string, std::string>> moves = {
                     {s1 + "/f", s2 + "/f"},
                     {s2 + "/h", s1 + "/h"},
                     {s1 + "/f", local + "/f"},
                     {local + "/l", s1 + "/l"}};
                 for (const auto& [from, to] : moves)
                   r << result(::rename(from.c_str(), to.c_str())) << result(::link(from.c_str(), to.c_str()));
                 return (r << result(::rename((s1 + "/g").c_str(), (s1 + "/g2").c_str()))).text;
               }),
            "ok ok ok ok ok EXDEV EXDEV EXDEV EXDEV EXDEV EXDEV EXDEV EXDEV ok");
  EXPECT_EQ(contents(server_.export_dir() + "/f"), "one");
  EXPECT_FALSE(std::filesystem::exists(other_->export_dir() + "/f"));
  EXPECT_FALSE(std::filesystem::exists(server_.export_dir() + "/h"));
  std::string out;
  ASSERT_EQ(as_sh(a_,
                  "set -e; mkdir -p " + s1 + "/tree/sub; echo x > " + s1 + "/tree/sub/x; mv " + s1 + "/f " + s2 +
                      "/f; mv " + s1 + "/tree " + s2 + "/; mv " + s1 + "/g2 " + local + "/; mv " + local + "/l " +
                      s2 + "/; cat " + s2 + "/f " + s2 + "/tree/sub/x " + local + "/g2 " + s2 +
                      "/l; for p in f tree g2; do ! test -e " + s1 + "/$p; done; ! test -e " + local +
                      "/l; stat -c %u " + s2 + "/f " + s2 + "/tree/sub/x",
                  &out),
            0)
      << out << m_->log();
  const std::string uid = std::to_string(a_.uid) + "\n";
  EXPECT_EQ(out, "onex\ntwofour" + uid + uid);
  // What the servers' disks hold.
  EXPECT_EQ(contents(other_->export_dir() + "/tree/sub/x"), "x\n");
  EXPECT_FALSE(std::filesystem::exists(server_.export_dir() + "/tree"));
}

// The export on an 8 MiB tmpfs of the test's own, so the backend's disk
// can be filled.
class PosixMoreSmallDiskTest : public PosixMoreTest {
 protected:
  void prepare_export() override {
    server_.ganesha().stop();
    const std::string e = server_.export_dir();
    ASSERT_EQ(::mount("tmpfs", e.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, "size=8m,mode=0777"), 0)
        << std::strerror(errno);
    tmpfs_ = e;
    std::string why;
    ASSERT_TRUE(server_.ganesha().start(&why)) << why;
  }
  void TearDown() override {
    PosixMoreTest::TearDown();
    server_.stop_sfsd();
    server_.ganesha().stop();
    unmount_tmpfs();
  }
  ~PosixMoreSmallDiskTest() override { unmount_tmpfs(); }
  void unmount_tmpfs() {
    if (tmpfs_.empty()) return;
    if (::umount2(tmpfs_.c_str(), 0) != 0) ::umount2(tmpfs_.c_str(), MNT_DETACH);
    tmpfs_.clear();
  }
  std::string tmpfs_;
};

// A fills the backend's disk: the error (ENOSPC; EIO if the server took
// part of a write, never silence) reaches A's program at a write(),
// fsync() or close() (ENOSPC at a write() here, the writes being behind;
// and again at fsync(): FsyncReportsAWriteLostAfterItWasAnswered); what
// fsync() and close() acknowledged before stays; statfs shows the disk
// full, then free again once A removes the file; writing works again.
TEST_F(PosixMoreSmallDiskTest, AFullDiskReachesTheWriterAndEarlierDataStays) {
  struct statvfs v {};
  ASSERT_EQ(::statvfs(d_.c_str(), &v), 0);
  EXPECT_EQ(static_cast<std::uint64_t>(v.f_blocks) * v.f_frsize, 8u << 20) << "the backend's 8 MiB tmpfs";
  const std::string keep = pattern(1 << 20, 1), chunk = pattern(1 << 20, 2);
  const std::string big = d_ + "/big";
  const std::string r = as(
      a_,
      [&] {
        std::string s = "keep=" + put(d_ + "/keep", keep);
        const int fd = ::open(big.c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0644);
        if (fd < 0) return s + " open=" + result(-1);
        // 2 MiB made stable by fsync, then on until the disk is full.
        bool ok = ::write(fd, chunk.data(), chunk.size()) == static_cast<ssize_t>(chunk.size()) &&
                  ::write(fd, chunk.data(), chunk.size()) == static_cast<ssize_t>(chunk.size());
        s += std::string(" first=") + (ok ? "ok" : result(-1));
        s += " fsync=" + result(::fsync(fd));
        for (int i = 0; i < 16; ++i) {
          const ssize_t n = ::write(fd, chunk.data(), chunk.size());
          if (n == static_cast<ssize_t>(chunk.size())) continue;
          s += " write" + std::to_string(i) + "=" + (n < 0 ? result(-1) : "short");
          break;
        }
        s += " fsync=" + result(::fsync(fd));
        return s + " close=" + result(::close(fd));
      },
      120);
  const std::string good = "keep=ok first=ok fsync=ok";
  ASSERT_EQ(r.substr(0, good.size()), good) << r;
  const std::string rest = r.substr(good.size());
  const bool nospc = rest.find("ENOSPC") != std::string::npos, eio = rest.find("EIO") != std::string::npos;
  EXPECT_TRUE(nospc || eio) << "writing past the end of the disk gave no error: " << r;
  EXPECT_EQ(rest.find("short"), std::string::npos) << r;
  // Acknowledged data stays: on the server's disk and read back as A.
  EXPECT_TRUE(contents(server_.export_dir() + "/keep") == keep);
  EXPECT_TRUE(contents(server_.export_dir() + "/big").substr(0, 2 * chunk.size()) == chunk + chunk)
      << "the 2 MiB fsync acknowledged are not on the server";
  EXPECT_EQ(as(a_, [&] { return contents(d_ + "/keep") == keep ? "same" : "differs"; }), "same");
  EXPECT_LT(available(d_), 1u << 20) << "statfs does not show the disk full";
  EXPECT_EQ(as(a_, [&] { return result(::unlink(big.c_str())); }), "ok");
  // The backend frees the space once it closes its descriptor of the
  // removed file, a moment later.
  EXPECT_TRUE(eventually([&] { return available(d_) > (5u << 20); }, 30s)) << "statfs does not show the space back";
  EXPECT_EQ(as(a_, [&] { return put(d_ + "/after", chunk); }), "ok");
  EXPECT_TRUE(contents(server_.export_dir() + "/after") == chunk);
}

// A write() that was answered (write-behind) and then failed on the full
// disk: after the next write() reports ENOSPC, fsync() must still fail,
// since that data is not on the disk (fsync and close promise that what
// they acknowledged is). Linux's page cache keeps a writeback error for
// each open file's next fsync (errseq_t), whatever write() said; sfsclient
// used to report the error once and clear it, so fsync() and close()
// returned 0 with the lost megabyte missing.
TEST_F(PosixMoreSmallDiskTest, FsyncReportsAWriteLostAfterItWasAnswered) {
  const std::string chunk = pattern(1 << 20, 4);
  const std::string r = as(a_, [&] {
    Said said;
    said << put(d_ + "/keep", chunk);
    const int fd = ::open((d_ + "/big").c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0644);
    if (fd < 0) return (said << result(-1)).text;
    // Fill the disk to the last page and make it stable.
    bool ok = true;
    for (int i = 0; i < 7 && ok; ++i)
      ok = ::write(fd, chunk.data(), chunk.size()) == static_cast<ssize_t>(chunk.size());
    said << (ok ? "ok" : result(-1)) << result(::fsync(fd));
    // One more megabyte: answered at once, refused by the server.
    said << (::write(fd, chunk.data(), chunk.size()) == static_cast<ssize_t>(chunk.size()) ? "ok" : result(-1));
    ::sleep(1);
    said << result(::write(fd, chunk.data(), 1));
    said << result(::fsync(fd));
    return (said << result(::close(fd))).text;
  });
  // keep, the 7 MiB, their fsync, the answered write, the write that
  // reports its loss (or, if the answer was slow, is queued too), then
  // fsync: it must not say the data is safe.
  std::istringstream in(r);
  std::vector<std::string> said{std::istream_iterator<std::string>(in), {}};
  ASSERT_EQ(said.size(), 7u) << r;
  EXPECT_EQ(said[0] + said[1] + said[2] + said[3], "okokokok") << r;
  EXPECT_EQ(said[5], "ENOSPC") << "fsync() said the lost megabyte was safe: " << r;
  EXPECT_EQ(std::filesystem::file_size(server_.export_dir() + "/big"), 7u << 20);
}

}  // namespace
}  // namespace mount_test::posix_more
