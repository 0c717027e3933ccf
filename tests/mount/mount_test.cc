// mount_test.cc: what a person does through a real /sfs mount: cp, tar,
// git, rsync; two mounts of one server; a wrong HOSTID; sfsd restarting
// under an open file; a server gone for good. Starts: ganesha.nfsd, sfsd,
// and sfsclient processes with FUSE mounts of their own (removed at the
// end).
#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include "mount_test_util.h"

namespace mount_test {
namespace {

using namespace std::chrono_literals;

// A tree with the shapes a real one has: nested directories, empty and
// large files, a symlink, odd names.
void make_tree(const std::string& root) {
  std::filesystem::create_directories(root + "/a/b/c");
  std::filesystem::create_directories(root + "/empty-dir");
  std::ofstream(root + "/empty");
  std::ofstream(root + "/a/small.txt") << "small\n";
  std::ofstream(root + "/a/b/big.bin", std::ios::binary) << pattern(3 * 1024 * 1024 + 17, 1);
  std::ofstream(root + "/a/b/c/odd name with spaces") << "x";
  std::ofstream(root + "/a/b/c/\xc3\xa9t\xc3\xa9") << "utf-8";
  for (int i = 0; i < 50; ++i) std::ofstream(root + "/a/f" + std::to_string(i)) << pattern(i * 100, i);
  std::filesystem::create_symlink("a/small.txt", root + "/link");
}

class MountTest : public MountFixture {};

// The mount's read_ahead_kb as the kernel keeps it ("" if not found).
std::string read_ahead_kb_of(const std::string& mountpoint) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream f(line);
    std::string id, parent, devno, root, dir;
    if (f >> id >> parent >> devno >> root >> dir && dir == mountpoint) {
      std::string kb;
      std::ifstream("/sys/class/bdi/" + devno + "/read_ahead_kb") >> kb;
      return kb;
    }
  }
  return "";
}

// The configured read-ahead is the one the kernel uses: FUSE's INIT lowers
// the mount's read_ahead_kb to the daemon's max_readahead, which used to be
// 1 MiB whatever read_ahead_kb said (8192 was silently 1024).
TEST_F(MountTest, TheConfiguredReadAheadIsTheKernels) {
  Mount& a = mount();
  ASSERT_TRUE(a.mounted());
  ASSERT_TRUE(std::filesystem::exists(at(a)));  // a first call: INIT is done by its answer
  EXPECT_EQ(read_ahead_kb_of(a.path()), "8192");
  Mount& b = mount({"--read-ahead-kb", "2048"});
  ASSERT_TRUE(b.mounted());
  ASSERT_TRUE(std::filesystem::exists(at(b)));
  EXPECT_EQ(read_ahead_kb_of(b.path()), "2048");
}

TEST_F(MountTest, CopyATreeInAndDiffIt) {
  Mount& m = mount();
  const std::string src = server_.dir() + "/src";
  make_tree(src);
  std::string out;
  ASSERT_EQ(sh("cp -r " + src + " '" + at(m) + "/copy'", &out), 0) << out;
  ASSERT_EQ(sh("diff -r " + src + " '" + at(m) + "/copy'", &out), 0) << out;
  // And what the server stored is the same, byte for byte.
  ASSERT_EQ(sh("diff -r " + src + " " + server_.export_dir() + "/copy", &out), 0) << out;
  ASSERT_EQ(sh("cp -r '" + at(m) + "/copy' " + server_.dir() + "/back && diff -r " + src + " " +
                   server_.dir() + "/back",
               &out),
            0)
      << out;
}

TEST_F(MountTest, ExtractATarballAndDiffIt) {
  Mount& m = mount();
  const std::string src = server_.dir() + "/src";
  make_tree(src);
  std::string out;
  ASSERT_EQ(sh("tar cf " + server_.dir() + "/t.tar -C " + src + " .", &out), 0) << out;
  ASSERT_EQ(sh("mkdir '" + at(m) + "/x' && tar xf " + server_.dir() + "/t.tar --no-same-owner -C '" + at(m) +
                   "/x' && diff -r " + src + " '" + at(m) + "/x'",
               &out),
            0)
      << out;
}

TEST_F(MountTest, GitInitCommitCloneAndFsck) {
  if (sh("command -v git") != 0) GTEST_SKIP() << "git is not installed";
  Mount& m = mount();
  // The files belong to the anonymous user this test runs as: tell git
  // (and the git processes it starts) that this is expected.
  const std::string home = server_.dir() + "/home";
  std::filesystem::create_directories(home);
  std::ofstream(home + "/.gitconfig") << "[safe]\n\tdirectory = *\n[user]\n\temail = t@example.org\n\tname = t\n";
  const std::string g = "HOME=" + home + " git ";
  std::string out;
  const std::string repo = at(m) + "/repo";
  ASSERT_EQ(sh(g + "init -q '" + repo + "' && cd '" + repo + "' && for i in $(seq 1 30); do echo line $i > f$i; done && " +
                   g + "add -A && " + g + "commit -qm first && echo more >> f1 && " + g + "commit -qam second",
               &out),
            0)
      << out;
  ASSERT_EQ(sh(g + "clone -q '" + repo + "' '" + at(m) + "/clone' && cd '" + at(m) + "/clone' && " + g +
                   "fsck --strict && " + g + "log --oneline | wc -l",
               &out),
            0)
      << out;
  EXPECT_NE(out.find("2"), std::string::npos) << out;
}

TEST_F(MountTest, RsyncInAndOut) {
  if (sh("command -v rsync") != 0) GTEST_SKIP() << "rsync is not installed";
  Mount& m = mount();
  const std::string src = server_.dir() + "/src";
  make_tree(src);
  std::string out;
  // -rlt: owners cannot be kept by the anonymous user this test runs as.
  ASSERT_EQ(sh("rsync -rlt " + src + "/ '" + at(m) + "/r/' && rsync -rlt '" + at(m) + "/r/' " + server_.dir() +
                   "/out/ && diff -r " + src + " " + server_.dir() + "/out",
               &out),
            0)
      << out;
  // A second rsync finds nothing to do (sizes and times survived), but for
  // the symlink's time: the backend (NFS-Ganesha's VFS) answers SETATTR of
  // a symlink's times with success and keeps the creation time
  // (docs/sfsclient.md), which rsync notices whenever the link was made in
  // another second than the original.
  ASSERT_EQ(sh("o=$(rsync -rlti " + src + "/ '" + at(m) + "/r/') || exit 1; printf '%s' \"$o\" | "
                   "grep -v '^[.]L[.][.]t[.]* link -> ' || true",
               &out),
            0)
      << out;
  EXPECT_EQ(out, "") << "rsync saw changes that were not there";
}

TEST_F(MountTest, TwoMountsSeeEachOthersWritesAtOnce) {
  Mount& a = mount();
  Mount& b = mount();
  const std::string fa = at(a) + "/shared", fb = at(b) + "/shared";
  std::ofstream(fa) << "one";
  struct stat st;
  ASSERT_EQ(::stat(fb.c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 3);
  std::string seen;
  std::getline(std::ifstream(fb), seen);
  EXPECT_EQ(seen, "one");
  // b has the attributes under a 60 s lease now. a writes: sfsd sends b
  // INVALIDATE before a's write returns, b drops its caches, and b's next
  // stat and read see the change, with no waiting.
  {
    std::ofstream w(fa, std::ios::trunc);
    w << "second version";
  }
  ASSERT_EQ(::stat(fb.c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 14);
  std::getline(std::ifstream(fb), seen);
  EXPECT_EQ(seen, "second version");
  // A new name in the directory, and a removed one, likewise.
  std::ofstream(at(a) + "/new") << "n";
  EXPECT_EQ(::access((at(b) + "/new").c_str(), F_OK), 0);
  ASSERT_EQ(::unlink((at(a) + "/new").c_str()), 0);
  EXPECT_NE(::access((at(b) + "/new").c_str(), F_OK), 0);
  EXPECT_EQ(errno, ENOENT);
}

TEST_F(MountTest, AWrongHostIdIsRefusedAndOtherNamesDoNotExist) {
  Mount& m = mount();
  // The right location with someone else's HOSTID.
  auto other = sfs::name_for(sfs::Location{"127.0.0.1", server_.port()}, sfs::ServerKey::generate().public_key());
  struct stat st;
  EXPECT_NE(::stat((m.path() + "/" + sfs::format_name(other)).c_str(), &st), 0);
  EXPECT_EQ(errno, EACCES);
  EXPECT_NE(m.log().find("cannot mount " + sfs::format_name(other)), std::string::npos) << m.log();
  // Nothing listening.
  auto nobody = sfs::name_for(sfs::Location{"127.0.0.1", free_port()}, sfs::ServerKey::generate().public_key());
  EXPECT_NE(::stat((m.path() + "/" + sfs::format_name(nobody)).c_str(), &st), 0);
  EXPECT_EQ(errno, EHOSTUNREACH);
  // Not a self-certifying name.
  EXPECT_NE(::stat((m.path() + "/hello").c_str(), &st), 0);
  EXPECT_EQ(errno, ENOENT);
  // The refused names were not mounted; the real one is, and is listed.
  ASSERT_EQ(::stat(at(m).c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  std::string out;
  ASSERT_EQ(sh("ls " + m.path(), &out), 0);
  EXPECT_EQ(out, server_.name() + "\n");
}

TEST_F(MountTest, AReadGoesOnWhileSfsdRestarts) {
  Mount& m = mount();
  const std::string data = pattern(8 << 20, 7);
  std::ofstream(at(m) + "/movie", std::ios::binary) << data;
  ::sync();
  const int fd = ::open((at(m) + "/movie").c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  std::string got(data.size(), '\0');
  ASSERT_EQ(::pread(fd, got.data(), 1 << 20, 0), 1 << 20);
  // Drop the client's page cache for the file, so the rest must come from
  // the server.
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  server_.stop_sfsd(SIGKILL);
  std::thread restart([&] {
    std::this_thread::sleep_for(500ms);
    std::string why;
    EXPECT_TRUE(server_.start_sfsd(&why)) << why;
  });
  std::size_t off = 1 << 20;
  while (off < data.size()) {
    const ssize_t n = ::pread(fd, got.data() + off, data.size() - off, static_cast<off_t>(off));
    ASSERT_GT(n, 0) << std::strerror(errno);
    off += static_cast<std::size_t>(n);
  }
  restart.join();
  ::close(fd);
  EXPECT_TRUE(got == data) << "the bytes read across the restart differ";
  EXPECT_NE(m.log().find("reconnected to " + server_.name()), std::string::npos) << m.log();
}

TEST_F(MountTest, AServerGonePastTheTimeoutGivesEioAndTheMountStillUnmounts) {
  Mount& m = mount({"--timeout", "2s"});
  std::ofstream(at(m) + "/f") << "x";
  const int fd = ::open((at(m) + "/f").c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  server_.stop_sfsd(SIGKILL);
  // The kernel may still hold the attributes under their lease: ask for
  // something it cannot have cached.
  const auto t0 = std::chrono::steady_clock::now();
  struct stat st;
  const int rc = ::stat((at(m) + "/not-there-yet").c_str(), &st);
  const int err = errno;
  EXPECT_NE(rc, 0);
  EXPECT_EQ(err, EIO) << std::strerror(err);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 20s);
  int status = -1;
  EXPECT_TRUE(m.unmount(&status)) << "sfsclient did not exit after umount:\n" << m.log();
  EXPECT_EQ(status, 0);
  EXPECT_FALSE(m.mounted());
  ::close(fd);
}

// `hard yes`: a server gone past the timeout makes calls wait, as NFS's
// hard mounts do, instead of failing with EIO (the default, above); when
// the server is back, the waiting call is answered.
TEST_F(MountTest, AHardMountWaitsPastTheTimeoutUntilTheServerIsBack) {
  Mount& m = mount({"--timeout", "1s", "--hard", "yes"});
  std::ofstream(at(m) + "/f") << "x";
  server_.stop_sfsd(SIGKILL);
  // The path is made here: restarting sfsd below rewrites the server's
  // name, which at() reads (TSan saw the race when the thread made it).
  const std::string path = at(m) + "/made-while-away";
  std::atomic<int> answer{-1};  // -1: none yet; then 0 or the errno
  std::thread asker([&answer, path] {
    struct stat st;
    const int rc = ::stat(path.c_str(), &st);
    answer = rc == 0 ? 0 : errno;
  });
  // Three times the timeout: still waiting.
  std::this_thread::sleep_for(3s);
  EXPECT_EQ(answer.load(), -1) << "a hard mount answered while its server was away: "
                               << std::strerror(answer.load() > 0 ? answer.load() : 0);
  // The server comes back, with a file made while it was away.
  std::ofstream(server_.export_dir() + "/made-while-away") << "y";
  std::string why;
  EXPECT_TRUE(server_.start_sfsd(&why)) << why;
  EXPECT_TRUE(eventually([&] { return answer.load() != -1; }, 30s)) << "the waiting stat() was never answered";
  int status = -1;
  EXPECT_TRUE(m.unmount(&status)) << "sfsclient did not exit after umount:\n" << m.log();  // frees a stuck asker
  asker.join();
  EXPECT_EQ(answer.load(), 0) << std::strerror(answer.load());
  EXPECT_EQ(status, 0);
}

}  // namespace
}  // namespace mount_test
