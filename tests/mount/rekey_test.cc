// rekey_test.cc: a mount survives its server's handle key being rotated
// (`sfsd --rotate-handle-key`) and sfsd restarted: the server comes back
// with another root handle for the same export, sfsclient re-keys the root
// and finds the other files again by path when their old handles are
// refused (sfsclient/src/refind.cc, docs/sfsclient.md). Within the old
// key's grace, and past it; and a file replaced while the server was away
// is not taken for the one an open descriptor names.
// Starts: ganesha.nfsd, sfsd (restarted by every test), sfsclient.
#include <fcntl.h>
#include <unistd.h>

#include "mount_test_util.h"

namespace mount_test {
namespace {

using namespace std::chrono_literals;

// What an open descriptor reads from `off` to its end.
std::string read_rest(int fd, std::size_t off, int* err) {
  std::string got;
  char buf[1 << 16];
  for (;;) {
    const ssize_t n = ::pread(fd, buf, sizeof buf, static_cast<off_t>(off));
    if (n < 0) {
      *err = errno;
      return got;
    }
    if (n == 0) break;
    got.append(buf, static_cast<std::size_t>(n));
    off += static_cast<std::size_t>(n);
  }
  *err = 0;
  return got;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class RekeyMountTest : public MountFixture {
 protected:
  // sfsd stops; `while_away` runs; its handle key is rotated; it starts
  // again with `flags`.
  void restart_rotated(std::vector<std::string> flags = {}, std::function<void()> while_away = nullptr) {
    ASSERT_EQ(server_.stop_sfsd(), 0);
    if (while_away) while_away();
    SfsdProcess p;
    std::string out;
    p.start({"--rotate-handle-key", "--handle-keys", server_.dir() + "/handle.keys"}, &out, 30s);
    const int status = p.stop(0, 30s);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << out << p.errors();
    ASSERT_NE((out + p.errors()).find("now seals"), std::string::npos) << out << p.errors();
    std::string why;
    ASSERT_TRUE(server_.start_sfsd(&why, std::move(flags))) << why;
  }
  // Past the old key's grace (1 s, counted in whole seconds from the rotation).
  void restart_rotated_past_grace(std::function<void()> while_away = nullptr) {
    restart_rotated({"--handle-key-grace", "1s"}, std::move(while_away));
    std::this_thread::sleep_for(2500ms);
  }
  bool logged_new_root(const Mount& m) const {
    return m.log().find(server_.name() + " came back with another root handle for the same export") !=
           std::string::npos;
  }
};

// In the grace the old handles still open: the open file and the directory
// (a shell's cwd) go on; the root is re-keyed, so paths work too.
TEST_F(RekeyMountTest, AnOpenFileAndDirectoryGoOnAfterARotatedRestartInTheGrace) {
  Mount& m = mount();
  const std::string data = pattern(3 << 20, 1);
  std::filesystem::create_directories(at(m) + "/d");
  std::ofstream(at(m) + "/d/f", std::ios::binary) << data;
  std::ofstream(at(m) + "/d/g") << "gee";
  ::sync();
  const int fd = ::open((at(m) + "/d/f").c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  const int dfd = ::open((at(m) + "/d").c_str(), O_RDONLY | O_DIRECTORY);
  ASSERT_GE(dfd, 0);
  std::string first(1 << 20, '\0');
  ASSERT_EQ(::pread(fd, first.data(), first.size(), 0), static_cast<ssize_t>(first.size()));
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);  // the rest comes from the server

  restart_rotated();

  int err = 0;
  const std::string rest = read_rest(fd, first.size(), &err);
  EXPECT_EQ(err, 0) << std::strerror(err);
  EXPECT_TRUE(first + rest == data) << "the open file read " << first.size() + rest.size() << " bytes";
  struct stat st;
  EXPECT_EQ(::fstatat(dfd, "g", &st, 0), 0) << std::strerror(errno);
  const int gfd = ::openat(dfd, "g", O_RDONLY);
  EXPECT_GE(gfd, 0) << std::strerror(errno);
  if (gfd >= 0) {
    EXPECT_EQ(read_rest(gfd, 0, &err), "gee");
    ::close(gfd);
  }
  const int nfd = ::openat(dfd, "made-after", O_CREAT | O_WRONLY, 0644);
  EXPECT_GE(nfd, 0) << std::strerror(errno);
  if (nfd >= 0) {
    EXPECT_EQ(::write(nfd, "new", 3), 3);
    EXPECT_EQ(::close(nfd), 0);
  }
  EXPECT_EQ(slurp(server_.export_dir() + "/d/made-after"), "new");
  EXPECT_EQ(slurp(at(m) + "/d/g"), "gee");
  EXPECT_EQ(::stat(at(m).c_str(), &st), 0) << std::strerror(errno);
  ::close(dfd);
  ::close(fd);
  EXPECT_TRUE(logged_new_root(m)) << m.log();
}

// Past the grace every old handle is refused: files looked up before, an
// open file and an open directory are found again by path.
TEST_F(RekeyMountTest, FilesAreFoundAgainByPathPastTheOldKeysGrace) {
  Mount& m = mount();
  const std::string data = pattern(3 << 20, 2);
  std::filesystem::create_directories(at(m) + "/d/e");
  std::ofstream(at(m) + "/d/e/f", std::ios::binary) << data;
  std::ofstream(at(m) + "/d/g") << "gee";
  std::ofstream(at(m) + "/top") << "top";
  ::sync();
  struct stat before;
  ASSERT_EQ(::stat((at(m) + "/d/e/f").c_str(), &before), 0);
  ASSERT_EQ(::stat((at(m) + "/top").c_str(), &before), 0);
  const int fd = ::open((at(m) + "/d/e/f").c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  const int dfd = ::open((at(m) + "/d").c_str(), O_RDONLY | O_DIRECTORY);
  ASSERT_GE(dfd, 0);
  std::string first(1 << 20, '\0');
  ASSERT_EQ(::pread(fd, first.data(), first.size(), 0), static_cast<ssize_t>(first.size()));
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);

  restart_rotated_past_grace();

  // The open file: its attributes, then the rest of its bytes, both asked
  // with a handle the server now refuses.
  struct stat st;
  ASSERT_EQ(::fstat(fd, &st), 0) << std::strerror(errno) << "\n" << m.log();
  EXPECT_EQ(static_cast<std::size_t>(st.st_size), data.size());
  int err = 0;
  const std::string rest = read_rest(fd, first.size(), &err);
  EXPECT_EQ(err, 0) << std::strerror(err);
  EXPECT_TRUE(first + rest == data) << "the open file read " << first.size() + rest.size() << " bytes";
  // The open directory: a name in it, and a file read through it.
  EXPECT_EQ(::fstat(dfd, &st), 0) << std::strerror(errno);
  EXPECT_EQ(::fstatat(dfd, "g", &st, 0), 0) << std::strerror(errno);
  const int gfd = ::openat(dfd, "g", O_RDONLY);
  EXPECT_GE(gfd, 0) << std::strerror(errno);
  if (gfd >= 0) {
    EXPECT_EQ(read_rest(gfd, 0, &err), "gee");
    ::close(gfd);
  }
  // And by path.
  EXPECT_EQ(::stat((at(m) + "/d/e/f").c_str(), &st), 0) << std::strerror(errno);
  EXPECT_EQ(slurp(at(m) + "/top"), "top");
  ::close(dfd);
  ::close(fd);
  EXPECT_TRUE(logged_new_root(m)) << m.log();
}

// Another file now at the path of an open one (replaced on the server
// while it was away): the descriptor gets ESTALE, never the other file's
// bytes; the path opens the new file.
TEST_F(RekeyMountTest, AFileReplacedWhileTheServerWasAwayIsStaleForItsOpenDescriptor) {
  Mount& m = mount();
  std::ofstream(at(m) + "/f") << "old contents";
  ::sync();
  const int fd = ::open((at(m) + "/f").c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  int err = 0;
  ASSERT_EQ(read_rest(fd, 0, &err), "old contents");
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);

  const std::string ex = server_.export_dir();
  restart_rotated_past_grace([&] {
    // Made first, then renamed over: the new file cannot reuse the old
    // one's inode number (its fileid).
    std::ofstream(ex + "/f.new") << "new contents";
    std::filesystem::rename(ex + "/f.new", ex + "/f");
  });

  char buf[64];
  const ssize_t n = ::pread(fd, buf, sizeof buf, 0);
  const int read_err = errno;
  EXPECT_EQ(n, -1) << "the open descriptor read: " << std::string(buf, n > 0 ? static_cast<std::size_t>(n) : 0);
  EXPECT_EQ(read_err, ESTALE) << std::strerror(read_err);
  ::close(fd);
  EXPECT_EQ(slurp(at(m) + "/f"), "new contents");
  EXPECT_NE(m.log().find("another file is now at \"f\""), std::string::npos) << m.log();
}

}  // namespace
}  // namespace mount_test
