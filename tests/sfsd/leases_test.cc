// leases_test.cc: leases and INVALIDATE between two clients of one sfsd,
// and what changes behind sfsd's back. Starts: ganesha.nfsd and sfsd.
#include <fstream>
#include <iostream>
#include <sstream>

#include "sfsd_test_util.h"

namespace sfsd_test {
namespace {

class LeaseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    if (!server_.setup(&why)) GTEST_SKIP() << why;
    server_.set_lease(lease_);
    ASSERT_TRUE(server_.start_sfsd(&why)) << why;
    reader_ = connect(server_, 1, reader_log_, &why);
    ASSERT_TRUE(reader_) << why;
    writer_ = connect(server_, 2, writer_log_, &why);
    ASSERT_TRUE(writer_) << why;
    root_ = reader_->root().fh;
    ASSERT_EQ(root_, writer_->root().fh) << "two connections, one sealed root handle";
    wroot_ = login(*writer_, server_.user("root"));
    rroot_ = login(*reader_, server_.user("root"));
  }
  void TearDown() override {
    for (auto& c : {reader_, writer_})
      if (c) c->close();
    if (HasFailure()) std::cerr << "sfsd said:\n" << server_.sfsd().errors();
  }

  std::string lease_ = "60s";
  RunningRuntime run_;
  SfsdServer server_;
  std::shared_ptr<ClientLog> reader_log_ = std::make_shared<ClientLog>();
  std::shared_ptr<ClientLog> writer_log_ = std::make_shared<ClientLog>();
  std::shared_ptr<fs::FileClient> reader_, writer_;
  fs::Handle root_;
  std::uint32_t wroot_ = 0, rroot_ = 0;
};

TEST_F(LeaseTest, AHolderIsInvalidatedBeforeTheWriterHearsBack) {
  auto f = create(*writer_, wroot_, root_, "shared");
  ASSERT_TRUE(f);
  // The reader caches the file's attributes: it holds a lease now.
  auto before = getattr(*reader_, rroot_, *f);
  ASSERT_TRUE(before);
  EXPECT_EQ(before->lease_ms, 60000u);

  // The writer's WRITE reply must come after the reader got INVALIDATE.
  const int before_count = reader_log_->invalidations.load();
  ASSERT_EQ(write(*writer_, wroot_, *f, 0, "new contents"), SFS_NFS3_OK);
  const int after_count = reader_log_->invalidations.load();
  EXPECT_EQ(after_count, before_count + 1)
      << "INVALIDATE must have reached the reader before the writer's reply";
  // The reader's next look sees the new size, and its lease is new.
  auto after = getattr(*reader_, rroot_, *f);
  ASSERT_TRUE(after);
  EXPECT_EQ(after->attr.size, 12u);
  EXPECT_GE(after->change, before->change);
  // The writer itself was not invalidated for its own change.
  EXPECT_EQ(writer_log_->invalidations.load(), 0);
}

TEST_F(LeaseTest, DirectoryChangesInvalidateTheDirectory) {
  // The reader caches the root directory (its entries and a negative lookup).
  sfs_nfsstat3 st;
  EXPECT_FALSE(lookup(*reader_, rroot_, root_, "newfile", &st));
  EXPECT_EQ(st, SFS_NFS3ERR_NOENT);
  const int n0 = reader_log_->invalidations.load();
  ASSERT_TRUE(create(*writer_, wroot_, root_, "newfile"));
  EXPECT_EQ(reader_log_->invalidations.load(), n0 + 1) << "CREATE must invalidate the directory's lease";
  EXPECT_TRUE(lookup(*reader_, rroot_, root_, "newfile"));
  // REMOVE invalidates the directory, and the file the reader looked at.
  auto fh = lookup(*reader_, rroot_, root_, "newfile");
  ASSERT_TRUE(fh);
  const int n1 = reader_log_->invalidations.load();
  sfs_REMOVE3args rm{};
  rm.object.dir = fs::FileClient::wire(root_);
  rm.object.name = const_cast<char*>("newfile");
  ASSERT_TRUE(call<SFS_NFSPROC3_REMOVE>(*writer_, wroot_, rm).ok());
  EXPECT_EQ(reader_log_->invalidations.load(), n1 + 2) << "the directory and the removed file";
}

TEST_F(LeaseTest, NoLeaseNoInvalidate) {
  // The reader holds a lease on the root (from GETROOT): a new name there
  // invalidates it once; changes to a file it never looked at do not.
  auto f = create(*writer_, wroot_, root_, "private");
  ASSERT_TRUE(f);
  EXPECT_EQ(reader_log_->invalidations.load(), 1);
  for (int i = 0; i < 5; ++i) ASSERT_EQ(write(*writer_, wroot_, *f, i, "x"), SFS_NFS3_OK);
  EXPECT_EQ(reader_log_->invalidations.load(), 1);
}

TEST_F(LeaseTest, NoReplyAfterAnInvalidateCarriesALeaseOnOlderAttributes) {
  // Many GETATTRs in flight while the file changes. On the reader's
  // connection (replies and INVALIDATE handled in channel order on its
  // color), every reply that comes after INVALIDATE(change c) and carries a
  // lease must have been computed after the change: its change number is
  // at least c. Otherwise a client would cache stale attributes.
  auto f = create(*writer_, wroot_, root_, "race");
  ASSERT_TRUE(f);
  ASSERT_TRUE(getattr(*reader_, rroot_, *f));
  std::atomic<int> left{0};
  for (int round = 0; round < 30; ++round) {
    for (int i = 0; i < 8; ++i) {
      ++left;
      sfs_GETATTR3args a{};
      a.object = fs::FileClient::wire(*f);
      auto log = reader_log_;
      reader_->call<SFS_NFSPROC3_GETATTR>(
          rroot_, a,
          fs::FileClient::Done<SFS_NFSPROC3_GETATTR>(
              [log, &left](rpc::RpcStatus st, fs::Reply<sfs_GETATTR3res> r) {
                if (st.ok() && r->status == SFS_NFS3_OK) {
                  const auto& at = r->sfs_GETATTR3res_u.resok.obj_attributes;
                  log->add("reply " + std::to_string(at.change) + " " + std::to_string(at.lease_ms));
                }
                --left;
              },
              1));  // the connection's color
    }
    ASSERT_EQ(write(*writer_, wroot_, *f, 0, std::string(round + 1, 'w')), SFS_NFS3_OK);
  }
  ASSERT_TRUE(eventually([&] { return left.load() == 0; }));
  ASSERT_GE(reader_log_->invalidations.load(), 1);
  std::uint64_t last_inval = 0;
  int checked = 0;
  for (const std::string& e : reader_log_->snapshot()) {
    std::istringstream in(e);
    std::string kind;
    in >> kind;
    if (kind == "invalidate") {
      std::size_t len;
      in >> len >> last_inval;
    } else if (kind == "reply") {
      std::uint64_t change, lease;
      in >> change >> lease;
      if (lease > 0) {
        EXPECT_GE(change, last_inval) << "a leased reply older than an INVALIDATE already seen";
        ++checked;
      }
    }
  }
  EXPECT_GT(checked, 0);
  auto last = getattr(*reader_, rroot_, *f);
  ASSERT_TRUE(last);
  EXPECT_EQ(last->attr.size, 30u);
}

class ShortLeaseTest : public LeaseTest {
 protected:
  ShortLeaseTest() { lease_ = "1s"; }
};

TEST_F(ShortLeaseTest, AChangeBehindSfsdsBackIsSeenWhenTheLeaseEnds) {
  auto f = create(*writer_, wroot_, root_, "behind");
  ASSERT_TRUE(f);
  ASSERT_EQ(write(*writer_, wroot_, *f, 0, "v1"), SFS_NFS3_OK);
  auto a1 = getattr(*reader_, rroot_, *f);
  ASSERT_TRUE(a1);
  EXPECT_EQ(a1->lease_ms, 1000u);
  const int n0 = reader_log_->invalidations.load();
  // Changed directly in the exported directory: sfsd cannot know, so no
  // INVALIDATE; a client trusting its lease sees v1 until the lease ends,
  // then asks again and sees the truth.
  {
    std::ofstream out(server_.export_dir() + "/behind", std::ios::trunc);
    out << "version two";
  }
  std::this_thread::sleep_for(1100ms);
  auto a2 = getattr(*reader_, rroot_, *f);
  ASSERT_TRUE(a2);
  EXPECT_EQ(a2->attr.size, 11u);
  EXPECT_EQ(reader_log_->invalidations.load(), n0);
}

TEST_F(LeaseTest, AClosedConnectionsLeasesAreDropped) {
  auto f = create(*writer_, wroot_, root_, "gone");
  ASSERT_TRUE(f);
  ASSERT_TRUE(getattr(*reader_, rroot_, *f));
  reader_->close();
  ASSERT_TRUE(eventually([&] { return reader_log_->closed.load(); }));
  // The writer is not held up by a holder that is gone.
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_EQ(write(*writer_, wroot_, *f, 0, "x"), SFS_NFS3_OK);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 4s);
}

}  // namespace
}  // namespace sfsd_test
