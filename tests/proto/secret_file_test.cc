// Tests for sfs/secret_file.h and the readers built on it (key files, the
// user database): what an attacker could plant at or around the path (a
// FIFO, a symlink, a file others can write or read, a writable directory,
// someone else's file) is refused with a line naming the file and the fix,
// and never hangs.
#include "sfs/secret_file.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>

#include "sfs/keys.h"
#include "sfs/login.h"

namespace sfs {
namespace {

class CheckedFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/sfs_secret_file_test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::system(("rm -rf " + dir_).c_str()); }
  std::string write(const std::string& name, const std::string& text, mode_t mode) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path) << text;
    ::chmod(path.c_str(), mode);
    return path;
  }
  std::string user_line(std::uint8_t seed, const std::string& rest) {
    Key32 k{};
    k.fill(seed);
    return format_user_public_key(UserKey::from_seed(k).public_key()) + " " + rest + "\n";
  }
  std::string dir_;
};

bool has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

TEST_F(CheckedFileTest, AFifoIsRefusedWithoutHanging) {
  const std::string path = dir_ + "/fifo.key";
  ASSERT_EQ(::mkfifo(path.c_str(), 0600), 0);
  auto k = read_key_file(path);  // without O_NONBLOCK, open() waits for a writer
  ASSERT_FALSE(k.ok());
  EXPECT_TRUE(has(k.error(), "not a regular file")) << k.error();
  auto db = UserDb::load(path, nullptr);
  ASSERT_FALSE(db.ok());
  EXPECT_TRUE(has(db.error(), "not a regular file")) << db.error();
}

TEST_F(CheckedFileTest, ASymlinkIsRefused) {
  const std::string target = dir_ + "/real.key";
  ASSERT_TRUE(write_key_file(target, UserKey::generate()).ok());
  const std::string link = dir_ + "/link.key";
  ASSERT_EQ(::symlink(target.c_str(), link.c_str()), 0);
  auto k = read_key_file(link);
  ASSERT_FALSE(k.ok());
  EXPECT_TRUE(has(k.error(), "symbolic link")) << k.error();
  const std::string db_target = write("users", user_line(1, "alice 1000 1000"), 0644);
  ASSERT_EQ(::symlink(db_target.c_str(), (dir_ + "/users.link").c_str()), 0);
  auto db = UserDb::load(dir_ + "/users.link", nullptr);
  ASSERT_FALSE(db.ok());
  EXPECT_TRUE(has(db.error(), "symbolic link")) << db.error();
}

TEST_F(CheckedFileTest, AWorldWritableUserDatabaseIsRefused) {
  const std::string path = write("users", user_line(1, "alice 1000 1000"), 0666);
  auto db = UserDb::load(path, nullptr);
  ASSERT_FALSE(db.ok());
  EXPECT_TRUE(has(db.error(), "user database " + path)) << db.error();
  EXPECT_TRUE(has(db.error(), "chmod go-w " + path)) << db.error();
  ::chmod(path.c_str(), 0644);  // readable by all is fine: it holds no secret
  auto ok = UserDb::load(path, nullptr);
  ASSERT_TRUE(ok.ok()) << ok.error();
  EXPECT_EQ(ok.value().size(), 1u);
}

TEST_F(CheckedFileTest, ADuplicateKeyLineIsAnErrorAndGrantsNothing) {
  const std::string path =
      write("users", user_line(1, "alice 1000 1000") + user_line(2, "bob 1001 1001") +
                         user_line(1, "root 0 0"),
            0644);
  std::vector<DbDiagnostic> diags;
  auto db = UserDb::load(path, &diags);
  ASSERT_TRUE(db.ok()) << db.error();
  ASSERT_EQ(diags.size(), 1u);
  EXPECT_EQ(diags[0].line, 3u);
  EXPECT_TRUE(has(diags[0].message, "already listed on line 1")) << diags[0].message;
  Key32 k{};
  k.fill(1);
  EXPECT_EQ(db.value().find(UserKey::from_seed(k).public_key()), nullptr);  // not "first wins"
  EXPECT_EQ(db.value().size(), 1u);  // bob
}

TEST_F(CheckedFileTest, AKeyReadableByOthersIsRefused) {
  const std::string path = dir_ + "/a.key";
  ASSERT_TRUE(write_key_file(path, ServerKey::generate()).ok());
  ASSERT_EQ(::chmod(path.c_str(), 0640), 0);
  auto k = read_key_file(path);
  ASSERT_FALSE(k.ok());
  EXPECT_TRUE(has(k.error(), "key file " + path)) << k.error();
  EXPECT_TRUE(has(k.error(), "chmod 600 " + path)) << k.error();
}

TEST_F(CheckedFileTest, AFileOfAnotherUserIsRefused) {
  const std::string path = dir_ + "/a.key";
  ASSERT_TRUE(write_key_file(path, UserKey::generate()).ok());
  const std::string db = write("users", user_line(1, "alice 1000 1000"), 0644);
  const uid_t other = ::geteuid() == 0 ? 65534 : ::geteuid() + 1;
  if (::chown(path.c_str(), other, static_cast<gid_t>(-1)) != 0 ||
      ::chown(db.c_str(), other, static_cast<gid_t>(-1)) != 0)
    GTEST_SKIP() << "cannot chown here (not root)";
  auto k = read_key_file(path);
  ASSERT_FALSE(k.ok());
  EXPECT_TRUE(has(k.error(), "belongs to uid " + std::to_string(other))) << k.error();
  EXPECT_FALSE(UserDb::load(db, nullptr).ok());
  // Unless the reader says that owner is trusted (sfsd's `user`).
  auto trusted = read_key_file(path, {other});
  EXPECT_TRUE(trusted.ok()) << trusted.error();
}

TEST_F(CheckedFileTest, ADirectoryOthersCanWriteIsRefusedUnlessSticky) {
  const std::string path = dir_ + "/a.key";
  ASSERT_TRUE(write_key_file(path, UserKey::generate()).ok());
  ASSERT_EQ(::chmod(dir_.c_str(), 0777), 0);
  auto k = read_key_file(path);
  ASSERT_FALSE(k.ok());
  EXPECT_TRUE(has(k.error(), "directory " + dir_)) << k.error();
  EXPECT_TRUE(has(k.error(), "chmod go-w " + dir_)) << k.error();
  // Sticky (as /tmp): others cannot rename or remove our entries.
  ASSERT_EQ(::chmod(dir_.c_str(), 01777), 0);
  auto sticky = read_key_file(path);
  EXPECT_TRUE(sticky.ok()) << sticky.error();
  ::chmod(dir_.c_str(), 0700);
}

TEST_F(CheckedFileTest, ReplaceKeepsTheOwnerOfTheFileItReplaces) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to chown";
  const std::string path = dir_ + "/handle.keys";
  ASSERT_TRUE(write_secret_file(path, "one\n").ok());
  ASSERT_EQ(::chown(path.c_str(), 65534, 65534), 0);
  ASSERT_TRUE(replace_secret_file(path, "two\n").ok());
  struct stat st;
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 65534u);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
}

TEST_F(CheckedFileTest, TheSizeLimitIsExact) {
  const std::string path = write("big", std::string(100, 'x'), 0600);
  EXPECT_FALSE(read_secret_file(path, 99).ok());
  auto r = read_secret_file(path, 100);
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r.value().size(), 100u);
}

}  // namespace
}  // namespace sfs
