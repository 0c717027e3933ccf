// connection_test.cc: NfsClient's connection handling against a scripted
// server (fake_nfs_server.h), where a real one cannot be made to misbehave
// on cue: a slow server that answers NULL probes vs. a dead one, the caps on
// calls and bytes at the server, the bound on calls waiting for a
// reconnect, a call that breaks the connection every time it is sent,
// non-idempotent calls caught by a drop, connection epochs, and a Cred that
// cannot be encoded. No ganesha; the client still runs as root so that
// libnfs binds a reserved source port, which one test checks.
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "asmp/nfs.h"
#include "fake_nfs_server.h"
#include "nfs_fixture.h"

namespace sfs_test {
namespace {

using asmp::nfs::Attr;
using asmp::nfs::Buffer;
using asmp::nfs::CreateMode;
using asmp::nfs::CreateOk;
using asmp::nfs::Cred;
using asmp::nfs::Failure;
using asmp::nfs::FileHandle;
using asmp::nfs::NfsClient;
using asmp::nfs::NfsOptions;
using asmp::nfs::Result;
using asmp::nfs::StableHow;
using asmp::nfs::WriteOk;
using Fake = FakeNfsServer;

class NfsConnectionTest : public RuntimeTest {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "libnfs binds a reserved source port only as root";
    ASSERT_NE(fake_.port(), 0) << "the fake server could not listen";
    start_runtime();
  }
  void TearDown() override {
    client_.reset();
    stop_runtime();
  }

  std::unique_ptr<NfsClient> make_client(const std::function<void(NfsOptions&)>& tweak = {}) {
    NfsOptions o;
    o.nfs_port = fake_.port();
    o.mount_port = fake_.port();
    o.export_path = "/fake";
    o.color = kNfsColor;
    o.runtime = rt_.get();
    o.call_timeout = 20s;
    o.connect_timeout = 1s;
    o.backoff_initial = 20ms;
    o.backoff_max = 200ms;
    if (tweak) tweak(o);
    return std::make_unique<NfsClient>(o);
  }

  // Makes client_ and mounts it.
  void mount(const std::function<void(NfsOptions&)>& tweak = {}) {
    client_ = make_client(tweak);
    auto r = sync<FileHandle>([&](auto d) { client_->mount(std::move(d)); });
    ASSERT_TRUE(r.ok()) << r.error.describe();
    root_ = r.value;
  }

  Fake fake_;
  std::unique_ptr<NfsClient> client_;
  FileHandle root_;
  Cred root_cred_{0, 0};
};

TEST_F(NfsConnectionTest, ConnectsFromAReservedSourcePort) {
  mount();
  EXPECT_EQ(root_, FileHandle(Fake::root_handle()));
  auto ports = fake_.peer_ports();
  ASSERT_EQ(ports.size(), 2u);  // MOUNT, then NFS
  for (int p : ports) EXPECT_LT(p, 1024) << "libnfs did not bind a reserved port";
}

TEST_F(NfsConnectionTest, SlowServerThatAnswersProbesIsNotDisconnected) {
  mount([](NfsOptions& o) {
    o.probe_after = 100ms;
    o.probe_timeout = 300ms;
  });
  fake_.set_hold({Fake::kGetattr, Fake::kCommit});  // a long COMMIT, say
  Pending<Attr> slow;
  client_->getattr(root_cred_, root_, slow.done());
  int nulls = fake_.nulls();
  // Several probes, each answered, while the call itself stays unanswered
  // for many times probe_after + probe_timeout.
  ASSERT_TRUE(Fake::eventually([&] { return fake_.nulls() >= nulls + 4; }));
  EXPECT_EQ(slow.f.wait_for(0s), std::future_status::timeout);
  fake_.set_hold({});
  auto r = slow.get();
  EXPECT_TRUE(r.ok()) << r.error.describe();
  auto s = client_->stats();
  EXPECT_EQ(s.stalls, 0u);
  EXPECT_EQ(s.disconnects, 0u);
  EXPECT_GE(s.probes, 4u);
  EXPECT_EQ(fake_.connections(), 2);
  EXPECT_EQ(client_->epoch(), 1u);
}

TEST_F(NfsConnectionTest, DeadServerIsDetectedByAnUnansweredProbe) {
  mount([](NfsOptions& o) {
    o.probe_after = 100ms;
    o.probe_timeout = 300ms;
  });
  fake_.set_mute(true);  // as if SIGSTOPped: TCP open, nothing answers
  Pending<Attr> p;
  client_->getattr(root_cred_, root_, p.done());
  ASSERT_TRUE(Fake::eventually([&] { return client_->stats().stalls >= 1; }));
  fake_.set_mute(false);
  auto r = p.get();
  ASSERT_TRUE(r.ok()) << r.error.describe();
  EXPECT_GE(client_->epoch(), 2u);
  EXPECT_EQ(r.epoch, client_->epoch()) << "the reply came on a new connection";
  EXPECT_GE(client_->stats().probes, 1u);
}

TEST_F(NfsConnectionTest, AtMostMaxInFlightCallsAreAtTheServer) {
  mount([](NfsOptions& o) { o.max_in_flight = 8; });
  fake_.set_hold({Fake::kGetattr});
  std::vector<Pending<Attr>> calls(20);
  for (auto& c : calls) client_->getattr(root_cred_, root_, c.done());
  ASSERT_TRUE(Fake::eventually([&] { return fake_.outstanding() == 8; }));
  std::this_thread::sleep_for(100ms);  // room for a 9th to arrive, were it sent
  EXPECT_EQ(fake_.outstanding(), 8);
  fake_.set_hold({});
  for (auto& c : calls) {
    auto r = c.get();
    EXPECT_TRUE(r.ok()) << r.error.describe();
  }
  EXPECT_EQ(fake_.max_outstanding(), 8);
  EXPECT_EQ(fake_.count(Fake::kGetattr), 20);
}

TEST_F(NfsConnectionTest, AtMostMaxBytesInFlightAreAtTheServer) {
  constexpr std::size_t kChunk = 256 << 10;
  mount([](NfsOptions& o) { o.max_bytes_in_flight = 1 << 20; });
  fake_.set_hold({Fake::kWrite, Fake::kRead});
  std::vector<Pending<WriteOk>> writes(6);
  for (std::size_t i = 0; i < writes.size(); ++i)
    client_->write(root_cred_, root_, i * kChunk, Buffer(kChunk), StableHow::kUnstable, writes[i].done());
  ASSERT_TRUE(Fake::eventually([&] { return fake_.outstanding() == 4; }));
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(fake_.outstanding(), 4);
  EXPECT_EQ(fake_.max_outstanding_bytes(), 1u << 20);
  fake_.release();  // the last two go out now
  ASSERT_TRUE(Fake::eventually([&] { return fake_.count(Fake::kWrite) == 6 && fake_.outstanding() == 2; }));
  fake_.release();
  for (auto& w : writes) {
    auto r = w.get();
    ASSERT_TRUE(r.ok()) << r.error.describe();
    EXPECT_EQ(r.value.count, kChunk);
  }
  // A call larger than the cap still goes, alone; READ counts count too.
  Pending<WriteOk> big;
  Pending<asmp::nfs::ReadOk> read;
  client_->write(root_cred_, root_, 0, Buffer(2 << 20), StableHow::kUnstable, big.done());
  client_->read(root_cred_, root_, 0, 4096, read.done());
  ASSERT_TRUE(Fake::eventually([&] { return fake_.outstanding() == 1; }));
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(fake_.outstanding(), 1) << "the READ went out beside a 2 MiB WRITE";
  fake_.set_hold({});
  EXPECT_TRUE(big.get().ok());
  EXPECT_TRUE(read.get().ok());
  EXPECT_EQ(fake_.max_outstanding_bytes(), 2u << 20);
}

TEST_F(NfsConnectionTest, CallsWaitingForAReconnectAreBounded) {
  // Nothing listens on port 1: every connect fails, calls wait.
  client_ = make_client([](NfsOptions& o) {
    o.nfs_port = 1;
    o.mount_port = 1;
    o.max_waiting = 5;
  });
  std::vector<Pending<Attr>> calls(8);
  for (auto& c : calls) client_->getattr({root_cred_, 500ms}, root_, c.done());
  for (std::size_t i = 0; i < calls.size(); ++i) {
    auto r = calls[i].get();
    if (i < 5) {
      EXPECT_EQ(r.error.failure, Failure::kTimeout) << i << ": " << r.error.describe();
    } else {
      EXPECT_EQ(r.error.failure, Failure::kUnavailable) << i << ": " << r.error.describe();
      EXPECT_NE(r.error.message.find("max_waiting"), std::string::npos) << r.error.message;
    }
    EXPECT_EQ(r.epoch, 0u) << "never connected";
  }
  EXPECT_EQ(client_->stats().rejected, 3u);
}

TEST_F(NfsConnectionTest, CallThatBreaksTheConnectionFailsOnItsSecondLossAndOthersSucceed) {
  mount();
  // Stands for a READDIRPLUS whose reply libnfs cannot take: the
  // connection drops whenever one arrives.
  fake_.set_close_on(Fake::kReaddirplus);
  Pending<asmp::nfs::ReaddirOk> poison;
  client_->readdirplus(root_cred_, root_, 0, {}, 4096, 65536, poison.done());
  std::vector<Pending<Attr>> others(5);
  for (auto& o : others) client_->getattr(root_cred_, root_, o.done());
  Pending<CreateOk> mkdir;
  client_->mkdir(root_cred_, root_, "d", {}, mkdir.done());

  auto p = poison.get();
  EXPECT_EQ(p.error.failure, Failure::kConnectionLost) << p.error.describe();
  EXPECT_NE(p.error.message.find("lost before too"), std::string::npos) << p.error.message;
  for (auto& o : others) {
    auto r = o.get();
    EXPECT_TRUE(r.ok()) << r.error.describe();
  }
  auto m = mkdir.get();
  EXPECT_EQ(m.error.failure, Failure::kConnectionLost) << m.error.describe();
  EXPECT_EQ(fake_.count(Fake::kReaddirplus), 2) << "sent, resent once, then given up";
  EXPECT_EQ(client_->stats().disconnects, 2u);
  // The connection is fine without it.
  auto after = sync<Attr>([&](auto d) { client_->getattr(root_cred_, root_, std::move(d)); });
  EXPECT_TRUE(after.ok()) << after.error.describe();
}

// Every call's error, whatever its result type.
struct ErrorOf {
  std::string what;
  bool resend_safe = false;
  std::shared_ptr<std::promise<asmp::nfs::Error>> p = std::make_shared<std::promise<asmp::nfs::Error>>();
  std::future<asmp::nfs::Error> f = p->get_future();
  template <class T>
  asmp::nfs::Done<T> done() {
    return asmp::nfs::Done<T>([q = p](Result<T> r) { q->set_value(r.error); }, kTestColor);
  }
};

TEST_F(NfsConnectionTest, NonIdempotentCallsInFlightAtADropFailWithOutcomeUnknown) {
  mount();
  std::set<std::uint32_t> all;
  for (std::uint32_t p = Fake::kGetattr; p <= Fake::kCommit; ++p) all.insert(p);
  fake_.set_hold(all);
  asmp::nfs::SetAttr mode;
  mode.mode = 0600;
  std::vector<std::unique_ptr<ErrorOf>> ex;
  auto add = [&](const char* what, bool resend_safe) -> ErrorOf& {
    ex.push_back(std::make_unique<ErrorOf>());
    ex.back()->what = what;
    ex.back()->resend_safe = resend_safe;
    return *ex.back();
  };
  Cred& c = root_cred_;
  client_->create(c, root_, "g", CreateMode::kGuarded, mode, {}, add("CREATE GUARDED", false).done<CreateOk>());
  client_->create(c, root_, "u", CreateMode::kUnchecked, mode, {}, add("CREATE UNCHECKED", false).done<CreateOk>());
  client_->mkdir(c, root_, "d", mode, add("MKDIR", false).done<CreateOk>());
  client_->symlink(c, root_, "s", "t", mode, add("SYMLINK", false).done<CreateOk>());
  client_->mknod(c, root_, "f", asmp::nfs::FileType::kFifo, mode, 0, 0, add("MKNOD", false).done<CreateOk>());
  client_->remove(c, root_, "x", add("REMOVE", false).done<asmp::nfs::Wcc>());
  client_->rmdir(c, root_, "y", add("RMDIR", false).done<asmp::nfs::Wcc>());
  client_->rename(c, root_, "a", root_, "b", add("RENAME", false).done<asmp::nfs::RenameOk>());
  client_->link(c, root_, root_, "l", add("LINK", false).done<asmp::nfs::LinkOk>());
  client_->setattr(c, root_, mode, asmp::nfs::Time{1, 2}, add("SETATTR guarded", false).done<asmp::nfs::Wcc>());
  client_->setattr(c, root_, mode, std::nullopt, add("SETATTR", true).done<asmp::nfs::Wcc>());
  client_->create(c, root_, "e", CreateMode::kExclusive, mode, {1, 2, 3},
                  add("CREATE EXCLUSIVE", true).done<CreateOk>());
  client_->read(c, root_, 0, 100, add("READ", true).done<asmp::nfs::ReadOk>());
  client_->write(c, root_, 0, Buffer(100), StableHow::kUnstable, add("WRITE", true).done<WriteOk>());
  client_->commit(c, root_, 0, 0, add("COMMIT", true).done<asmp::nfs::CommitOk>());
  const int n = static_cast<int>(ex.size());
  ASSERT_TRUE(Fake::eventually([&] { return fake_.outstanding() == n; })) << fake_.outstanding();

  client_->disconnect_for_test();
  // The non-idempotent ones fail at once, before any reconnect.
  for (auto& e : ex) {
    if (e->resend_safe) continue;
    ASSERT_EQ(e->f.wait_for(20s), std::future_status::ready) << e->what;
    auto err = e->f.get();
    EXPECT_EQ(err.failure, Failure::kConnectionLost) << e->what << ": " << err.describe();
    EXPECT_NE(err.message.find("outcome unknown"), std::string::npos) << e->what << ": " << err.message;
  }
  fake_.set_hold({});  // the resent ones are answered (NOTSUPP, or data)
  for (auto& e : ex) {
    if (!e->resend_safe) continue;
    ASSERT_EQ(e->f.wait_for(20s), std::future_status::ready) << e->what;
    auto err = e->f.get();
    EXPECT_NE(err.failure, Failure::kConnectionLost) << e->what << ": " << err.describe();
    EXPECT_TRUE(err.ok() || err.failure == Failure::kNfs) << e->what << ": " << err.describe();
  }
  // Each non-idempotent procedure reached the server exactly once.
  for (auto p : {Fake::kMkdir, Fake::kSymlink, Fake::kMknod, Fake::kRemove, Fake::kRmdir,
                 Fake::kRename, Fake::kLink})
    EXPECT_EQ(fake_.count(p), 1) << "procedure " << p;
  EXPECT_EQ(fake_.count(Fake::kCreate), 4);   // GUARDED, UNCHECKED once; EXCLUSIVE twice
  EXPECT_EQ(fake_.count(Fake::kSetattr), 3);  // guarded once, unguarded twice
  EXPECT_EQ(fake_.count(Fake::kRead), 2);
  EXPECT_EQ(client_->stats().resent, 5u);
}

TEST_F(NfsConnectionTest, EpochCountsMountsAndOnReconnectRunsUnderTheClientsColor) {
  struct Seen {
    std::mutex mu;
    std::vector<std::pair<std::uint64_t, FileHandle>> calls;
    std::atomic<int> wrong_color{0};
    std::atomic<int> inner_ok{0};
  };
  auto seen = std::make_shared<Seen>();
  NfsClient* self = nullptr;
  client_ = make_client([&](NfsOptions& o) {
    o.on_reconnect = [seen, &self](std::uint64_t epoch, const FileHandle& root) {
      if (asmp::Runtime::current_color() != kNfsColor) seen->wrong_color++;
      {
        std::lock_guard lk(seen->mu);
        seen->calls.emplace_back(epoch, root);
      }
      // A call made from inside goes out too.
      self->getattr(Cred{0, 0}, root, asmp::nfs::Done<Attr>([seen](Result<Attr> r) {
                      if (r.ok()) seen->inner_ok++;
                    }, kTestColor));
    };
  });
  self = client_.get();
  EXPECT_EQ(client_->epoch(), 0u);
  auto m = sync<FileHandle>([&](auto d) { client_->mount(std::move(d)); });
  ASSERT_TRUE(m.ok()) << m.error.describe();
  EXPECT_EQ(m.epoch, 1u);
  EXPECT_EQ(client_->epoch(), 1u);
  auto a = sync<Attr>([&](auto d) { client_->getattr(root_cred_, m.value, std::move(d)); });
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a.epoch, 1u);

  client_->disconnect_for_test();
  ASSERT_TRUE(Fake::eventually([&] { return client_->epoch() == 2; }));
  auto b = sync<Attr>([&](auto d) { client_->getattr(root_cred_, m.value, std::move(d)); });
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b.epoch, 2u);
  ASSERT_TRUE(Fake::eventually([&] { return seen->inner_ok.load() == 2; }));
  std::lock_guard lk(seen->mu);
  ASSERT_EQ(seen->calls.size(), 2u);
  EXPECT_EQ(seen->calls[0].first, 1u);
  EXPECT_EQ(seen->calls[1].first, 2u);
  EXPECT_EQ(seen->calls[0].second, FileHandle(Fake::root_handle()));
  EXPECT_EQ(seen->calls[1].second, FileHandle(Fake::root_handle()));
  EXPECT_EQ(seen->wrong_color.load(), 0);
}

TEST_F(NfsConnectionTest, CredThatCannotBeEncodedFailsAndIsNeverSent) {
  mount();
  // Cred's fields are public: nothing stops a caller from claiming 17
  // groups. Such a call must fail, not go out under the previous caller's
  // AUTH (or read past the group array).
  Cred bad(1000, 1000);
  bad.ngroups = 17;
  auto ok1 = sync<Attr>([&](auto d) { client_->getattr(Cred(0, 0), root_, std::move(d)); });
  ASSERT_TRUE(ok1.ok());
  auto r = sync<Attr>([&](auto d) { client_->getattr(bad, root_, std::move(d)); });
  EXPECT_EQ(r.error.failure, Failure::kRpc) << r.error.describe();
  EXPECT_NE(r.error.message.find("16 groups"), std::string::npos) << r.error.message;
  auto ok2 = sync<Attr>([&](auto d) { client_->getattr(Cred(kNobody, kNobody), root_, std::move(d)); });
  ASSERT_TRUE(ok2.ok());
  auto got = fake_.received();
  ASSERT_EQ(got.size(), 2u) << "the bad call was sent";
  EXPECT_EQ(got[0].uid, 0u);
  EXPECT_EQ(got[1].uid, kNobody);
}

TEST_F(NfsConnectionTest, ReaddirCountsAreClampedToWhatLibnfsAccepts) {
  mount();
  auto a = sync<asmp::nfs::ReaddirOk>([&](auto d) {
    client_->readdirplus(root_cred_, root_, 0, {}, 64u << 20, 8u << 20, std::move(d));
  });
  ASSERT_TRUE(a.ok()) << a.error.describe();
  auto b = sync<asmp::nfs::ReaddirOk>([&](auto d) {
    client_->readdir(root_cred_, root_, 0, {}, 8u << 20, std::move(d));
  });
  ASSERT_TRUE(b.ok()) << b.error.describe();
  auto got = fake_.received();
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].count, NfsClient::kMaxReaddirCount);     // maxcount
  EXPECT_EQ(got[0].dircount, NfsClient::kMaxReaddirCount);  // dircount <= maxcount
  EXPECT_EQ(got[1].count, NfsClient::kMaxReaddirCount);
}

}  // namespace
}  // namespace sfs_test
