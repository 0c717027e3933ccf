// dir_cache_test.cc: directories read ahead (sfsclient/src/dir_read.cc)
// and listings the kernel keeps, through real mounts: a stat walk reads a
// directory whole at its second miss, and what it read obeys the leases
// like a LOOKUP's answer (another client's changes seen at once through
// INVALIDATE, a change made in the export directory itself seen when the
// lease ends); a name learnt under a lease that lapsed is not trusted when
// the lease is renewed; a directory that may be searched but not read is
// still walked. Starts: ganesha.nfsd, sfsd (3 s leases), two sfsclient
// mounts.
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <future>
#include <set>
#include <thread>

#include "mount_test_util.h"

namespace mount_test {
namespace {

using namespace std::chrono_literals;

constexpr auto kLease = 3s;

class DirCacheTest : public MountFixture {
 protected:
  std::vector<std::string> sfsd_flags() override { return {"--lease", "3s"}; }

  static off_t size_of(const std::string& p) {
    struct stat st {};
    return ::stat(p.c_str(), &st) == 0 ? st.st_size : -1;
  }
  static std::set<std::string> names_in(const std::string& dir) {
    std::set<std::string> out;
    DIR* d = ::opendir(dir.c_str());
    if (!d) return out;
    while (dirent* e = ::readdir(d))
      if (std::string(e->d_name) != "." && std::string(e->d_name) != "..") out.insert(e->d_name);
    ::closedir(d);
    return out;
  }
};

TEST_F(DirCacheTest, AStatWalkSeesAnotherClientsChangesAtOnce) {
  Mount& a = mount();
  Mount& b = mount();
  const std::string da = at(a) + "/walk", db = at(b) + "/walk";
  ASSERT_EQ(::mkdir(da.c_str(), 0755), 0);
  for (int i = 0; i < 40; ++i) std::ofstream(da + "/f" + std::to_string(i)) << pattern(10 + i, i);
  // Two misses in b: the second reads the directory whole, so f2..f39 are
  // known in b (under their leases) without the kernel having asked.
  EXPECT_EQ(size_of(db + "/f0"), 10);
  EXPECT_EQ(size_of(db + "/f1"), 11);
  // a rewrites a file b has not looked up yet (the directory unchanged):
  // b must not answer from what it read ahead.
  std::ofstream(da + "/f7", std::ios::trunc) << "now 12 bytes";
  EXPECT_EQ(size_of(db + "/f7"), 12);
  // a changes names.
  ASSERT_EQ(::unlink((da + "/f8").c_str()), 0);
  std::ofstream(da + "/f40") << "new";
  ASSERT_EQ(::rename((da + "/f9").c_str(), (da + "/g9").c_str()), 0);
  EXPECT_EQ(size_of(db + "/f8"), -1);
  EXPECT_EQ(errno, ENOENT);
  EXPECT_EQ(size_of(db + "/f40"), 3);
  EXPECT_EQ(size_of(db + "/f9"), -1);
  EXPECT_EQ(size_of(db + "/g9"), 19);
  // The rest as written.
  for (int i = 10; i < 40; ++i) EXPECT_EQ(size_of(db + "/f" + std::to_string(i)), 10 + i) << i;
}

TEST_F(DirCacheTest, AStatWalkSeesAChangeInTheExportDirectoryWhenTheLeaseEnds) {
  Mount& b = mount();
  const std::string backend = server_.export_dir() + "/behind";
  std::filesystem::create_directories(backend);
  for (int i = 0; i < 20; ++i) std::ofstream(backend + "/f" + std::to_string(i)) << "x";
  const std::string db = at(b) + "/behind";
  EXPECT_EQ(size_of(db + "/f0"), 1);
  EXPECT_EQ(size_of(db + "/f1"), 1);  // the directory is read whole here
  // Behind sfsd's back: no INVALIDATE; seen once the lease has ended.
  std::ofstream(backend + "/f5", std::ios::trunc) << "longer";
  ASSERT_EQ(::unlink((backend + "/f6").c_str()), 0);
  std::this_thread::sleep_for(kLease + 1s);
  EXPECT_EQ(size_of(db + "/f5"), 6);
  EXPECT_EQ(size_of(db + "/f6"), -1);
  EXPECT_EQ(errno, ENOENT);
}

// Fails without the rule in InodeTable::store_attr: b's "no such name"
// was kept across the gap and trusted again under the renewed lease.
TEST_F(DirCacheTest, ANameLearntBeforeALapsedLeaseIsAskedAgain) {
  Mount& a = mount();
  Mount& b = mount();
  const std::string da = at(a) + "/gap", db = at(b) + "/gap";
  ASSERT_EQ(::mkdir(da.c_str(), 0755), 0);
  struct stat st {};
  ASSERT_EQ(::stat(db.c_str(), &st), 0);
  EXPECT_EQ(size_of(db + "/later"), -1);  // b learns: no such name
  std::this_thread::sleep_for(kLease + 1s);
  // b holds no lease on the directory now: sfsd tells it nothing of this.
  std::ofstream(da + "/later") << "here";
  ASSERT_EQ(::stat(db.c_str(), &st), 0);  // b's lease on the directory renewed
  EXPECT_EQ(size_of(db + "/later"), 4);
}

TEST_F(DirCacheTest, KeptListingsFollowChanges) {
  Mount& a = mount();
  Mount& b = mount();
  const std::string da = at(a) + "/list", db = at(b) + "/list";
  ASSERT_EQ(::mkdir(da.c_str(), 0755), 0);
  for (int i = 0; i < 5; ++i) std::ofstream(da + "/f" + std::to_string(i)) << "x";
  const std::set<std::string> five = {"f0", "f1", "f2", "f3", "f4"};
  EXPECT_EQ(names_in(db), five);
  EXPECT_EQ(names_in(db), five);  // from the kernel's kept listing
  std::ofstream(da + "/new") << "n";  // another client: INVALIDATE
  auto six = five;
  six.insert("new");
  EXPECT_EQ(names_in(db), six);
  ASSERT_EQ(::unlink((db + "/f0").c_str()), 0);  // this client
  six.erase("f0");
  EXPECT_EQ(names_in(db), six);
  // In the export directory itself: seen when the lease has ended.
  std::ofstream(server_.export_dir() + "/list/behind") << "b";
  std::this_thread::sleep_for(kLease + 1s);
  six.insert("behind");
  EXPECT_EQ(names_in(db), six);
}

// Searchable, not readable: the read-ahead is refused, the names are still
// found one by one.
TEST_F(DirCacheTest, ADirectoryThatCannotBeReadIsStillWalked) {
  Mount& b = mount();
  const std::string backend = server_.export_dir() + "/closed";
  std::filesystem::create_directories(backend);
  for (int i = 0; i < 10; ++i) std::ofstream(backend + "/f" + std::to_string(i)) << "x";
  ASSERT_EQ(::chmod(backend.c_str(), 0711), 0);
  const std::string db = at(b) + "/closed";
  // Root without an agent is the anonymous user on the server.
  for (int i = 0; i < 10; ++i) EXPECT_EQ(size_of(db + "/f" + std::to_string(i)), 1) << i;
  DIR* d = ::opendir(db.c_str());
  ASSERT_NE(d, nullptr);
  errno = 0;
  EXPECT_EQ(::readdir(d), nullptr);
  EXPECT_EQ(errno, EACCES);
  ::closedir(d);
}

// Directories known whole: a directory this client made (empty at its
// MKDIR) or read whole (a stat walk's second miss) is known name by name
// while its lease lasts, so a name that is not there is ENOENT without a
// round trip (a file about to be created, a search path probed). Leases
// long enough that none lapses during a test, under any sanitizer.
class WholeDirTest : public MountFixture {
 protected:
  std::vector<std::string> sfsd_flags() override { return {"--lease", "60s"}; }

  // stat(): 0 or errno.
  static int stat_errno(const std::string& p) {
    struct stat st {};
    return ::stat(p.c_str(), &st) == 0 ? 0 : errno;
  }
};

// With sfsd stopped (SIGSTOP: the connection stays up, nothing answers)
// a LOOKUP sent to it would wait; the absent names must be answered at
// once, the names present from the table.
TEST_F(WholeDirTest, AbsentNamesAreAnsweredWithoutTheServer) {
  Mount& a = mount();
  const std::string made = at(a) + "/made";
  ASSERT_EQ(::mkdir(made.c_str(), 0755), 0);
  { std::ofstream(made + "/kept") << "k"; }
  const std::string backend = server_.export_dir() + "/read";
  std::filesystem::create_directories(backend);
  for (int i = 0; i < 20; ++i) std::ofstream(backend + "/f" + std::to_string(i)) << "x";
  const std::string read = at(a) + "/read";
  EXPECT_EQ(stat_errno(read + "/f0"), 0);
  EXPECT_EQ(stat_errno(read + "/f1"), 0);  // the second miss: read whole here

  server_.sfsd().signal(SIGSTOP);
  auto answers = std::async(std::launch::async, [&] {
    return std::vector<int>{stat_errno(made + "/absent"), stat_errno(made + "/kept"),
                            stat_errno(read + "/absent"), stat_errno(read + "/f19")};
  });
  const bool at_once = answers.wait_for(std::chrono::seconds(5)) == std::future_status::ready;
  server_.sfsd().signal(SIGCONT);
  EXPECT_TRUE(at_once) << "a lookup waited for the stopped server";
  EXPECT_EQ(answers.get(), (std::vector<int>{ENOENT, 0, ENOENT, 0}));
}

// What another client makes in a directory known whole reaches this one at
// once (INVALIDATE), the kernel's cached "no such name" included; what
// this client makes is in its own table.
TEST_F(WholeDirTest, NamesMadeElsewhereAreSeenAtOnce) {
  Mount& a = mount();
  Mount& b = mount();
  const std::string da = at(a) + "/shared", db = at(b) + "/shared";
  ASSERT_EQ(::mkdir(da.c_str(), 0755), 0);
  EXPECT_EQ(stat_errno(da + "/late"), ENOENT);  // answered in a; its kernel keeps it
  { std::ofstream(db + "/late") << "from b"; }
  EXPECT_EQ(stat_errno(da + "/late"), 0);
  { std::ofstream(da + "/mine") << "a"; }
  EXPECT_EQ(stat_errno(da + "/mine"), 0);
  EXPECT_EQ(stat_errno(db + "/mine"), 0);
  ASSERT_EQ(::rename((db + "/late").c_str(), (db + "/moved").c_str()), 0);
  EXPECT_EQ(stat_errno(da + "/late"), ENOENT);
  EXPECT_EQ(stat_errno(da + "/moved"), 0);
  // a's own rename and unlink keep its table right.
  ASSERT_EQ(::rename((da + "/mine").c_str(), (da + "/renamed").c_str()), 0);
  EXPECT_EQ(stat_errno(da + "/mine"), ENOENT);
  EXPECT_EQ(stat_errno(da + "/renamed"), 0);
  ASSERT_EQ(::unlink((da + "/renamed").c_str()), 0);
  EXPECT_EQ(stat_errno(da + "/renamed"), ENOENT);
  EXPECT_EQ(stat_errno(db + "/renamed"), ENOENT);
}

}  // namespace
}  // namespace mount_test
