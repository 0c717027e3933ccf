// data_cache_sfsd_test.cc: sfsd with its data cache on (data_cache.h),
// through the protocol: repeated reads are served from it, and nothing it
// serves is staler or more permissive than the backend would be. Starts:
// ganesha.nfsd and sfsd.
#include <fstream>
#include <iostream>
#include <sstream>

#include "sfsd_test_util.h"

namespace sfsd_test {
namespace {

constexpr std::uint32_t kMiB = 1u << 20;

class DataCacheSfsdTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    if (!server_.setup(&why)) GTEST_SKIP() << why;
    report_ = server_.export_dir() + "/../sfsd/cpu.json";
    ASSERT_TRUE(server_.start_sfsd(&why, {"--data-cache", "64M", "--data-cache-revalidate", "300ms",
                                          "--cpu-report", report_}))
        << why;
    reader_ = connect(server_, 1, nullptr, &why);
    ASSERT_TRUE(reader_) << why;
    writer_ = connect(server_, 2, nullptr, &why);
    ASSERT_TRUE(writer_) << why;
    root_ = reader_->root().fh;
    // The files belong to root (the export's root directory is root's);
    // bob is the other user.
    ralice_ = login(*reader_, server_.user("root"));
    rbob_ = login(*reader_, server_.user("bob"));
    walice_ = login(*writer_, server_.user("root"));
  }
  void TearDown() override {
    for (auto& c : {reader_, writer_})
      if (c) c->close();
    if (HasFailure()) std::cerr << "sfsd said:\n" << server_.sfsd().errors();
  }

  // sfsd's data cache hits so far (its cpu_report, rewritten on SIGUSR1).
  long hits() {
    std::string before = slurp();
    server_.sfsd().signal(SIGUSR1);
    std::string now;
    if (!eventually([&] { return !(now = slurp()).empty() && now != before; }, 5s)) now = slurp();
    const std::string key = "\"data_cache_hits\":";
    const auto at = now.find(key);
    return at == std::string::npos ? -1 : std::strtol(now.c_str() + at + key.size(), nullptr, 10);
  }
  std::string slurp() {
    std::ifstream in(report_);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }
  // A 1 MiB + 10 byte file of `c`s, root's, mode 0600.
  std::optional<fs::Handle> make_file(const char* name, char c) {
    auto f = create(*writer_, walice_, root_, name, 0600);
    if (!f) return f;
    if (write(*writer_, walice_, *f, 0, std::string(kMiB, c)) != SFS_NFS3_OK) return std::nullopt;
    if (write(*writer_, walice_, *f, kMiB, std::string(10, c)) != SFS_NFS3_OK) return std::nullopt;
    return f;
  }

  RunningRuntime run_;
  SfsdServer server_;
  std::string report_;
  std::shared_ptr<fs::FileClient> reader_, writer_;
  fs::Handle root_;
  std::uint32_t ralice_ = 0, rbob_ = 0, walice_ = 0;
};

TEST_F(DataCacheSfsdTest, ARepeatedReadIsAHitWithTheSameBytes) {
  auto f = make_file("repeat", 'r');
  ASSERT_TRUE(f);
  const long h0 = hits();
  ASSERT_GE(h0, 0) << "no data_cache_hits in " << slurp();
  auto first = read(*reader_, ralice_, *f, 0, kMiB);
  auto second = read(*reader_, ralice_, *f, 0, kMiB);
  auto tail = read(*reader_, ralice_, *f, kMiB, kMiB);
  auto tail_again = read(*reader_, ralice_, *f, kMiB, kMiB);
  ASSERT_TRUE(first && second && tail && tail_again);
  EXPECT_EQ(*first, std::string(kMiB, 'r'));
  EXPECT_EQ(*second, *first);
  EXPECT_EQ(*tail, std::string(10, 'r'));
  EXPECT_EQ(*tail_again, *tail);
  EXPECT_GE(hits() - h0, 2) << "the second reads of both blocks came from the cache";
}

// Root's reads filled the cache; bob (and the anonymous user) may not read
// root's 0600 file, cache or not.
TEST_F(DataCacheSfsdTest, TheCacheDoesNotBypassPermissions) {
  auto f = make_file("private", 'p');
  ASSERT_TRUE(f);
  ASSERT_TRUE(read(*reader_, ralice_, *f, 0, kMiB));
  ASSERT_TRUE(read(*reader_, ralice_, *f, 0, kMiB));
  sfs_nfsstat3 st = SFS_NFS3_OK;
  EXPECT_FALSE(read(*reader_, rbob_, *f, 0, kMiB, &st));
  EXPECT_EQ(st, SFS_NFS3ERR_ACCES);
  EXPECT_FALSE(read(*reader_, 0, *f, 0, kMiB, &st));
  EXPECT_EQ(st, SFS_NFS3ERR_ACCES);
}

// A write through another connection is seen by the very next read.
TEST_F(DataCacheSfsdTest, AWriteThroughSfsdIsSeenAtOnce) {
  auto f = make_file("written", 'o');
  ASSERT_TRUE(f);
  ASSERT_TRUE(read(*reader_, ralice_, *f, 0, kMiB));
  ASSERT_TRUE(read(*reader_, ralice_, *f, 0, kMiB));
  ASSERT_EQ(write(*writer_, walice_, *f, 100, "NEW"), SFS_NFS3_OK);
  auto after = read(*reader_, ralice_, *f, 0, kMiB);
  ASSERT_TRUE(after);
  EXPECT_EQ(after->substr(99, 5), "oNEWo");
}

// Changed in the exported directory, behind sfsd's back: seen once the
// cached blocks are older than data_cache_revalidate (300 ms here).
TEST_F(DataCacheSfsdTest, AChangeBehindSfsdsBackIsSeenAfterTheRevalidateTime) {
  auto f = make_file("behind", 'b');
  ASSERT_TRUE(f);
  ASSERT_TRUE(read(*reader_, ralice_, *f, 0, kMiB));
  ASSERT_TRUE(read(*reader_, ralice_, *f, 0, kMiB));
  {
    std::fstream io(server_.export_dir() + "/behind", std::ios::in | std::ios::out | std::ios::binary);
    io.seekp(7);
    io << "XYZ";  // same size: only mtime and ctime tell
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  auto after = read(*reader_, ralice_, *f, 0, kMiB);
  ASSERT_TRUE(after);
  EXPECT_EQ(after->substr(6, 5), "bXYZb");
}

}  // namespace
}  // namespace sfsd_test
