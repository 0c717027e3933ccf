// posix_test.cc: POSIX semantics through a real /sfs mount, as a
// conformance suite checks them: errno values, link counts, ownership,
// setgid directories, timestamps to the nanosecond and which calls change
// ctime, O_APPEND/O_TRUNC/O_EXCL, FIFOs. The test runs as root, which this
// mount knows as the anonymous user (no agent): a user with no special
// rights. Starts: ganesha.nfsd, sfsd, sfsclient.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "mount_test_util.h"

namespace mount_test {
namespace {

class PosixTest : public MountFixture {
 protected:
  void SetUp() override {
    MountFixture::SetUp();
    if (IsSkipped() || HasFailure()) return;
    m_ = &mount();
    d_ = at(*m_);
  }
  std::string p(const std::string& name) const { return d_ + "/" + name; }
  // errno of a call that must fail.
  template <class F>
  int fails(F&& f) {
    errno = 0;
    const long rc = static_cast<long>(f());
    return rc == -1 ? errno : 0;
  }
  struct stat st(const std::string& name) {
    struct stat s {};
    EXPECT_EQ(::lstat(p(name).c_str(), &s), 0) << name << ": " << std::strerror(errno);
    return s;
  }
  static bool later(const timespec& a, const timespec& b) {
    return a.tv_sec > b.tv_sec || (a.tv_sec == b.tv_sec && a.tv_nsec > b.tv_nsec);
  }
  // Lets the clock move on, so a changed ctime is visibly later.
  static void tick() { std::this_thread::sleep_for(std::chrono::milliseconds(20)); }

  Mount* m_ = nullptr;
  std::string d_;
};

TEST_F(PosixTest, ErrnoValuesAreALocalFileSystems) {
  // Made on the server's disk before this client knows the directory (one
  // made there behind sfsd's back later is seen when the lease ends).
  {
    std::ofstream(server_.export_dir() + "/roots") << "secret";
    ::chmod((server_.export_dir() + "/roots").c_str(), 0600);
  }
  ASSERT_EQ(::mkdir(p("dir").c_str(), 0755), 0);
  EXPECT_EQ(fails([&] { return ::mkdir(p("dir").c_str(), 0755); }), EEXIST);
  const int fd = ::open(p("file").c_str(), O_CREAT | O_WRONLY, 0644);
  ASSERT_GE(fd, 0);
  ::close(fd);
  EXPECT_EQ(fails([&] { return ::open(p("file").c_str(), O_CREAT | O_EXCL | O_WRONLY, 0644); }), EEXIST);
  EXPECT_EQ(fails([&] { return ::link(p("file").c_str(), p("dir").c_str()); }), EEXIST);
  EXPECT_EQ(fails([&] { return ::symlink("x", p("file").c_str()); }), EEXIST);
  // ENOTEMPTY
  ASSERT_EQ(::mkdir(p("dir/sub").c_str(), 0755), 0);
  EXPECT_EQ(fails([&] { return ::rmdir(p("dir").c_str()); }), ENOTEMPTY);
  // ENAMETOOLONG
  const std::string longname(256, 'n');
  EXPECT_EQ(fails([&] { return ::open(p(longname).c_str(), O_CREAT | O_WRONLY, 0644); }), ENAMETOOLONG);
  EXPECT_EQ(fails([&] { return ::mkdir(p(longname).c_str(), 0755); }), ENAMETOOLONG);
  const std::string maxname(255, 'm');
  const int fdm = ::open(p(maxname).c_str(), O_CREAT | O_WRONLY, 0644);
  EXPECT_GE(fdm, 0) << "255 bytes is a legal name";
  if (fdm >= 0) ::close(fdm);
  // ELOOP
  ASSERT_EQ(::symlink("loop-b", p("loop-a").c_str()), 0);
  ASSERT_EQ(::symlink("loop-a", p("loop-b").c_str()), 0);
  EXPECT_EQ(fails([&] { return ::open(p("loop-a").c_str(), O_RDONLY); }), ELOOP);
  ASSERT_EQ(::symlink("file", p("link").c_str()), 0);
  EXPECT_EQ(fails([&] { return ::open(p("link").c_str(), O_RDONLY | O_NOFOLLOW); }), ELOOP);
  // EISDIR, ENOTDIR
  EXPECT_EQ(fails([&] { return ::open(p("dir").c_str(), O_WRONLY); }), EISDIR);
  EXPECT_EQ(fails([&] { return ::unlink(p("dir").c_str()); }), EISDIR);
  EXPECT_EQ(fails([&] { return ::mkdir(p("file/sub").c_str(), 0755); }), ENOTDIR);
  EXPECT_EQ(fails([&] { return ::rmdir(p("file").c_str()); }), ENOTDIR);
  EXPECT_EQ(fails([&] { return ::rename(p("dir").c_str(), p("file").c_str()); }), ENOTDIR);
  EXPECT_EQ(fails([&] { return ::rename(p("file").c_str(), p("dir").c_str()); }), EISDIR);
  // ENOENT
  EXPECT_EQ(fails([&] { return ::open(p("nope").c_str(), O_RDONLY); }), ENOENT);
  EXPECT_EQ(fails([&] { return ::unlink(p("nope").c_str()); }), ENOENT);
  // EACCES vs EPERM: a root-owned 0600 file in the export (made at the
  // start), as an ordinary user.
  EXPECT_EQ(fails([&] { return ::open(p("roots").c_str(), O_RDONLY); }), EACCES);
  EXPECT_EQ(fails([&] { return ::chmod(p("roots").c_str(), 0644); }), EPERM);
  EXPECT_EQ(fails([&] { return ::chown(p("file").c_str(), 0, 0); }), EPERM);
  // xattrs: NFSv3 has none.
  const int xe = fails([&] { return ::setxattr(p("file").c_str(), "user.x", "1", 1, 0); });
  EXPECT_TRUE(xe == EOPNOTSUPP || xe == ENOTSUP) << std::strerror(xe);
}

TEST_F(PosixTest, OwnersLinkCountsAndSetgidDirectories) {
  const int fd = ::open(p("f").c_str(), O_CREAT | O_WRONLY, 0640);
  ASSERT_GE(fd, 0);
  ::close(fd);
  struct stat s = st("f");
  EXPECT_EQ(s.st_uid, 65534u) << "owned by the caller (the anonymous user here)";
  EXPECT_EQ(s.st_mode & 07777, 0640u);
  EXPECT_EQ(s.st_nlink, 1u);
  ASSERT_EQ(::link(p("f").c_str(), p("g").c_str()), 0);
  EXPECT_EQ(st("f").st_nlink, 2u);
  EXPECT_EQ(st("g").st_ino, st("f").st_ino) << "two names, one file";
  ASSERT_EQ(::unlink(p("f").c_str()), 0);
  EXPECT_EQ(st("g").st_nlink, 1u);
  // Directory link counts: 2 + subdirectories.
  ASSERT_EQ(::mkdir(p("d").c_str(), 0755), 0);
  EXPECT_EQ(st("d").st_nlink, 2u);
  ASSERT_EQ(::mkdir(p("d/e").c_str(), 0755), 0);
  EXPECT_EQ(st("d").st_nlink, 3u);
  // A setgid directory gives new files its group. Made through the mount
  // (a name made on the disk behind sfsd's back is seen when the lease on
  // the directory ends: docs/protocol.md), given to root and a group there.
  const std::string sg = server_.export_dir() + "/sgid";
  ASSERT_EQ(::mkdir(p("sgid").c_str(), 0777), 0);
  ASSERT_EQ(::chown(sg.c_str(), 0, 4242), 0);
  ASSERT_EQ(::chmod(sg.c_str(), 02777), 0);
  const int fd2 = ::open(p("sgid/new").c_str(), O_CREAT | O_WRONLY, 0644);
  ASSERT_GE(fd2, 0);
  ::close(fd2);
  EXPECT_EQ(st("sgid/new").st_gid, 4242u);
  ASSERT_EQ(::mkdir(p("sgid/subdir").c_str(), 0755), 0);
  EXPECT_EQ(st("sgid/subdir").st_gid, 4242u);
  EXPECT_TRUE(st("sgid/subdir").st_mode & S_ISGID) << "and new directories inherit the bit";
  // FIFOs
  ASSERT_EQ(::mkfifo(p("fifo").c_str(), 0600), 0);
  EXPECT_TRUE(S_ISFIFO(st("fifo").st_mode));
}

TEST_F(PosixTest, TimestampsToTheNanosecondAndCtimeUpdates) {
  const int fd = ::open(p("t").c_str(), O_CREAT | O_RDWR, 0644);
  ASSERT_GE(fd, 0);
  const timespec times[2] = {{1600000000, 111111111}, {1600000001, 222222222}};
  ASSERT_EQ(::futimens(fd, times), 0);
  struct stat s = st("t");
  EXPECT_EQ(s.st_atim.tv_sec, 1600000000);
  EXPECT_EQ(s.st_atim.tv_nsec, 111111111);
  EXPECT_EQ(s.st_mtim.tv_sec, 1600000001);
  EXPECT_EQ(s.st_mtim.tv_nsec, 222222222);
  // Each of these changes ctime.
  struct Step {
    const char* what;
    std::function<int()> act;
  } steps[] = {
      {"chmod", [&] { return ::fchmod(fd, 0600); }},
      {"write", [&] { return ::pwrite(fd, "abc", 3, 0) == 3 ? 0 : -1; }},
      {"truncate", [&] { return ::ftruncate(fd, 1); }},
      {"link", [&] { return ::link(p("t").c_str(), p("t2").c_str()); }},
      {"rename", [&] { return ::rename(p("t2").c_str(), p("t3").c_str()); }},
  };
  for (auto& step : steps) {
    const timespec before = st("t").st_ctim;
    tick();
    ASSERT_EQ(step.act(), 0) << step.what << ": " << std::strerror(errno);
    // The write's attributes come back when it is stable.
    if (std::string(step.what) == "write") ::fsync(fd);
    const timespec after = st("t").st_ctim;
    EXPECT_TRUE(later(after, before)) << step.what << " did not change ctime";
  }
  ::close(fd);
}

TEST_F(PosixTest, OpenFlagsAndRenameOverAnExistingName) {
  {
    std::ofstream(p("a")) << "0123456789";
  }
  int fd = ::open(p("a").c_str(), O_WRONLY | O_APPEND);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::write(fd, "AB", 2), 2);
  ::close(fd);
  std::string s;
  std::getline(std::ifstream(p("a")), s);
  EXPECT_EQ(s, "0123456789AB");
  fd = ::open(p("a").c_str(), O_WRONLY | O_TRUNC);
  ASSERT_GE(fd, 0);
  ::close(fd);
  EXPECT_EQ(st("a").st_size, 0);
  // Rename over an existing file replaces it, atomically for a reader.
  std::ofstream(p("b")) << "new";
  std::ofstream(p("c")) << "old";
  ASSERT_EQ(::rename(p("b").c_str(), p("c").c_str()), 0);
  std::getline(std::ifstream(p("c")), s);
  EXPECT_EQ(s, "new");
  EXPECT_NE(::access(p("b").c_str(), F_OK), 0);
  // Sparse files and reads past the end.
  fd = ::open(p("sparse").c_str(), O_CREAT | O_RDWR, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::pwrite(fd, "end", 3, 5 << 20), 3);
  char buf[8];
  EXPECT_EQ(::pread(fd, buf, sizeof buf, 0), static_cast<ssize_t>(sizeof buf));
  EXPECT_EQ(std::string(buf, 8), std::string(8, '\0'));
  EXPECT_EQ(::pread(fd, buf, sizeof buf, (5 << 20) + 3), 0);
  ::close(fd);
  EXPECT_EQ(st("sparse").st_size, (5 << 20) + 3);
}

}  // namespace
}  // namespace mount_test
