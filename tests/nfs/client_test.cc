// client_test.cc: asmp::nfs::NfsClient against a real NFS-Ganesha.
//
// Real processes: one ganesha.nfsd per test process (and rpcbind for the
// moment it registers, if none runs), started by scripts/ganesha.sh on a
// free port pair in 300..511 with its export and state under a fresh
// $TMPDIR/sfs-nfs.XXXXXX, stopped at the end (gtest Environment), also when
// tests fail. Skipped with a reason when ganesha is not installed.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <future>
#include <memory>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "asmp/nfs.h"
#include "nfs_fixture.h"

namespace sfs_test {
namespace {

using asmp::nfs::Attr;
using asmp::nfs::Buffer;
using asmp::nfs::CreateMode;
using asmp::nfs::CreateOk;
using asmp::nfs::Cred;
using asmp::nfs::Done;
using asmp::nfs::Failure;
using asmp::nfs::FileHandle;
using asmp::nfs::NfsClient;
using asmp::nfs::NfsOptions;
using asmp::nfs::Result;
using asmp::nfs::SetAttr;
using asmp::nfs::Status;
using asmp::nfs::StableHow;

TEST_F(NfsClientTest, MountGivesRootDirectoryAndFsinfo) {
  EXPECT_FALSE(root_.empty());
  EXPECT_EQ(client_->root(), root_);
  auto a = sync<Attr>([&](auto d) { client_->getattr(root_cred_, root_, std::move(d)); });
  ASSERT_TRUE(a.ok()) << a.error.describe();
  EXPECT_EQ(a.value.type, asmp::nfs::FileType::kDir);
  auto fi = sync<asmp::nfs::FsinfoOk>([&](auto d) { client_->fsinfo(root_cred_, root_, std::move(d)); });
  ASSERT_TRUE(fi.ok()) << fi.error.describe();
  EXPECT_GE(fi.value.rtmax, 65536u);
  EXPECT_GE(fi.value.wtmax, 65536u);
  auto fs = sync<asmp::nfs::FsstatOk>([&](auto d) { client_->fsstat(root_cred_, root_, std::move(d)); });
  ASSERT_TRUE(fs.ok()) << fs.error.describe();
  EXPECT_GT(fs.value.tbytes, 0u);
  auto pc = sync<asmp::nfs::PathconfOk>([&](auto d) { client_->pathconf(root_cred_, root_, std::move(d)); });
  ASSERT_TRUE(pc.ok()) << pc.error.describe();
  EXPECT_GE(pc.value.name_max, 255u);
}

TEST_F(NfsClientTest, NonRootUserCreatesWritesReadsRenamesListsRemoves) {
  FileHandle home = lookup_ok(nobody_, root_, "nobody");

  SetAttr mode644;
  mode644.mode = 0644;
  auto cr = sync<CreateOk>([&](auto d) {
    client_->create(nobody_, home, "a.txt", CreateMode::kGuarded, mode644, {}, std::move(d));
  });
  ASSERT_TRUE(cr.ok()) << cr.error.describe();
  ASSERT_TRUE(cr.value.fh.has_value());
  FileHandle fh = *cr.value.fh;
  ASSERT_TRUE(cr.value.attr.has_value());
  EXPECT_EQ(cr.value.attr->uid, kNobody);

  // Three writes of 300 KiB at increasing offsets, one FILE_SYNC.
  const std::string data = pattern(900 * 1024, 1);
  for (int i = 0; i < 3; ++i) {
    auto w = sync<asmp::nfs::WriteOk>([&](auto d) {
      client_->write(nobody_, fh, i * 300 * 1024,
                     Buffer::copy_of(std::string_view(data).substr(i * 300 * 1024, 300 * 1024)),
                     i == 2 ? StableHow::kFileSync : StableHow::kUnstable, std::move(d));
    });
    ASSERT_TRUE(w.ok()) << w.error.describe();
    EXPECT_EQ(w.value.count, 300u * 1024);
  }
  auto cm = sync<asmp::nfs::CommitOk>([&](auto d) { client_->commit(nobody_, fh, 0, 0, std::move(d)); });
  ASSERT_TRUE(cm.ok()) << cm.error.describe();

  // Read back in 128 KiB pieces, all outstanding at once.
  std::vector<std::future<Result<asmp::nfs::ReadOk>>> reads;
  for (std::size_t off = 0; off < data.size(); off += 128 * 1024) {
    auto p = std::make_shared<std::promise<Result<asmp::nfs::ReadOk>>>();
    reads.push_back(p->get_future());
    client_->read(nobody_, fh, off, 128 * 1024,
                  Done<asmp::nfs::ReadOk>([p](auto r) { p->set_value(std::move(r)); }, kTestColor));
  }
  std::string back;
  for (auto& f : reads) {
    ASSERT_EQ(f.wait_for(30s), std::future_status::ready);
    auto r = f.get();
    ASSERT_TRUE(r.ok()) << r.error.describe();
    back += r.value.data.view();
  }
  EXPECT_TRUE(back == data) << "read back " << back.size() << " bytes, differing from what was written";

  auto ga = sync<Attr>([&](auto d) { client_->getattr(nobody_, fh, std::move(d)); });
  ASSERT_TRUE(ga.ok());
  EXPECT_EQ(ga.value.size, data.size());
  EXPECT_EQ(ga.value.uid, kNobody);
  EXPECT_EQ(ga.value.mode & 07777, 0644u);

  // A second create of the same name with GUARDED fails with EXIST.
  auto again = sync<CreateOk>([&](auto d) {
    client_->create(nobody_, home, "a.txt", CreateMode::kGuarded, mode644, {}, std::move(d));
  });
  EXPECT_TRUE(again.error.is(Status::kExist)) << again.error.describe();

  auto mv = sync<asmp::nfs::RenameOk>([&](auto d) {
    client_->rename(nobody_, home, "a.txt", home, "b.txt", std::move(d));
  });
  ASSERT_TRUE(mv.ok()) << mv.error.describe();
  auto gone = sync<asmp::nfs::LookupOk>([&](auto d) { client_->lookup(nobody_, home, "a.txt", std::move(d)); });
  EXPECT_TRUE(gone.error.is(Status::kNoent)) << gone.error.describe();
  EXPECT_EQ(lookup_ok(nobody_, home, "b.txt"), fh);

  SetAttr dirmode;
  dirmode.mode = 0755;
  auto mk = sync<CreateOk>([&](auto d) { client_->mkdir(nobody_, home, "sub", dirmode, std::move(d)); });
  ASSERT_TRUE(mk.ok()) << mk.error.describe();
  auto sl = sync<CreateOk>([&](auto d) {
    client_->symlink(nobody_, home, "link", "b.txt", {}, std::move(d));
  });
  ASSERT_TRUE(sl.ok()) << sl.error.describe();
  auto rl = sync<asmp::nfs::ReadlinkOk>([&](auto d) { client_->readlink(nobody_, *sl.value.fh, std::move(d)); });
  ASSERT_TRUE(rl.ok()) << rl.error.describe();
  EXPECT_EQ(rl.value.target, "b.txt");
  auto ln = sync<asmp::nfs::LinkOk>([&](auto d) { client_->link(nobody_, fh, home, "hard", std::move(d)); });
  ASSERT_TRUE(ln.ok()) << ln.error.describe();
  EXPECT_EQ(ln.value.attr->nlink, 2u);

  auto rd = sync<asmp::nfs::ReaddirOk>([&](auto d) {
    client_->readdirplus(nobody_, home, 0, {}, 4096, 65536, std::move(d));
  });
  ASSERT_TRUE(rd.ok()) << rd.error.describe();
  std::set<std::string> names;
  for (auto& e : rd.value.entries) {
    names.insert(e.name);
    if (e.name == "b.txt") {
      ASSERT_TRUE(e.fh.has_value());
      EXPECT_EQ(*e.fh, fh);
      ASSERT_TRUE(e.attr.has_value());
      EXPECT_EQ(e.attr->size, data.size());
    }
  }
  EXPECT_TRUE(rd.value.eof);
  EXPECT_EQ(names, (std::set<std::string>{".", "..", "b.txt", "hard", "link", "sub"}));
  auto rd2 = sync<asmp::nfs::ReaddirOk>([&](auto d) { client_->readdir(nobody_, home, 0, {}, 4096, std::move(d)); });
  ASSERT_TRUE(rd2.ok()) << rd2.error.describe();
  EXPECT_EQ(rd2.value.entries.size(), 6u);

  SetAttr trunc;
  trunc.size = 10;
  auto st = sync<asmp::nfs::Wcc>([&](auto d) { client_->setattr(nobody_, fh, trunc, std::nullopt, std::move(d)); });
  ASSERT_TRUE(st.ok()) << st.error.describe();
  ASSERT_TRUE(st.value.after.has_value());
  EXPECT_EQ(st.value.after->size, 10u);

  for (const char* n : {"b.txt", "hard", "link"}) {
    auto rm = sync<asmp::nfs::Wcc>([&](auto d) { client_->remove(nobody_, home, n, std::move(d)); });
    EXPECT_TRUE(rm.ok()) << n << ": " << rm.error.describe();
  }
  auto rmd = sync<asmp::nfs::Wcc>([&](auto d) { client_->rmdir(nobody_, home, "sub", std::move(d)); });
  EXPECT_TRUE(rmd.ok()) << rmd.error.describe();
  auto empty = sync<asmp::nfs::ReaddirOk>([&](auto d) { client_->readdir(nobody_, home, 0, {}, 4096, std::move(d)); });
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(empty.value.entries.size(), 2u);  // . and ..
}

TEST_F(NfsClientTest, UnprivilegedUserGetsEaccesOnFileItMayNotRead) {
  const std::string path = g_server->export_dir() + "/secret";
  { std::ofstream(path) << "root only\n"; }
  chmod(path.c_str(), 0600);
  FileHandle fh = lookup_ok(nobody_, root_, "secret");  // the directory is searchable

  auto r = sync<asmp::nfs::ReadOk>([&](auto d) { client_->read(nobody_, fh, 0, 100, std::move(d)); });
  EXPECT_TRUE(r.error.is(Status::kAcces)) << r.error.describe();
  EXPECT_EQ(r.error.to_errno(), EACCES);

  auto ac = sync<asmp::nfs::AccessOk>([&](auto d) {
    client_->access(nobody_, fh, asmp::nfs::kAccessRead | asmp::nfs::kAccessModify, std::move(d));
  });
  ASSERT_TRUE(ac.ok()) << ac.error.describe();
  EXPECT_EQ(ac.value.access & (asmp::nfs::kAccessRead | asmp::nfs::kAccessModify), 0u);

  // The same file, read as root: the credentials are per call.
  auto ok = sync<asmp::nfs::ReadOk>([&](auto d) { client_->read(root_cred_, fh, 0, 100, std::move(d)); });
  ASSERT_TRUE(ok.ok()) << ok.error.describe();
  EXPECT_EQ(ok.value.data.view(), "root only\n");
  EXPECT_TRUE(ok.value.eof);

  // Nor may nobody create in the root-owned export root.
  auto cr = sync<CreateOk>([&](auto d) {
    client_->create(nobody_, root_, "nope", CreateMode::kUnchecked, {}, {}, std::move(d));
  });
  EXPECT_TRUE(cr.error.is(Status::kAcces)) << cr.error.describe();

  // Supplementary groups count: a group-readable file of group 4242.
  const std::string gpath = g_server->export_dir() + "/group_file";
  { std::ofstream(gpath) << "group\n"; }
  chown(gpath.c_str(), 0, 4242);
  chmod(gpath.c_str(), 0640);
  FileHandle gfh = lookup_ok(nobody_, root_, "group_file");
  auto denied = sync<asmp::nfs::ReadOk>([&](auto d) { client_->read(nobody_, gfh, 0, 100, std::move(d)); });
  EXPECT_TRUE(denied.error.is(Status::kAcces)) << denied.error.describe();
  const std::uint32_t groups[] = {100, 4242};
  Cred member(kNobody, kNobody, groups);
  auto allowed = sync<asmp::nfs::ReadOk>([&](auto d) { client_->read(member, gfh, 0, 100, std::move(d)); });
  ASSERT_TRUE(allowed.ok()) << allowed.error.describe();
  EXPECT_EQ(allowed.value.data.view(), "group\n");
}

TEST_F(NfsClientTest, ReaddirPagesByCookieGuardedSetattrAndMknod) {
  const std::string dir = g_server->export_dir() + "/many";
  mkdir(dir.c_str(), 0755);
  for (int i = 0; i < 300; ++i) std::ofstream(dir + "/f" + std::to_string(i)) << i;
  FileHandle dfh = lookup_ok(root_cred_, root_, "many");

  // Small replies force paging: cookie and verifier from each page.
  std::set<std::string> names;
  std::uint64_t cookie = 0;
  asmp::nfs::Verifier verf{};
  int pages = 0;
  for (bool eof = false; !eof && pages < 1000; ++pages) {
    auto r = sync<asmp::nfs::ReaddirOk>([&](auto d) {
      client_->readdirplus(root_cred_, dfh, cookie, verf, 512, 4096, std::move(d));
    });
    ASSERT_TRUE(r.ok()) << r.error.describe();
    for (auto& e : r.value.entries) {
      EXPECT_TRUE(names.insert(e.name).second) << e.name << " listed twice";
      cookie = e.cookie;
    }
    verf = r.value.cookieverf;
    eof = r.value.eof;
  }
  EXPECT_GT(pages, 3);
  EXPECT_EQ(names.size(), 302u);  // 300 files, . and ..

  // SETATTR guarded by a stale ctime is refused, by the right one applied.
  FileHandle fh = lookup_ok(root_cred_, dfh, "f1");
  auto a = sync<Attr>([&](auto d) { client_->getattr(root_cred_, fh, std::move(d)); });
  ASSERT_TRUE(a.ok());
  SetAttr mode;
  mode.mode = 0600;
  asmp::nfs::Time stale = a.value.ctime;
  stale.seconds -= 10;
  auto bad = sync<asmp::nfs::Wcc>([&](auto d) { client_->setattr(root_cred_, fh, mode, stale, std::move(d)); });
  EXPECT_TRUE(bad.error.is(Status::kNotSync)) << bad.error.describe();
  auto good = sync<asmp::nfs::Wcc>([&](auto d) {
    client_->setattr(root_cred_, fh, mode, a.value.ctime, std::move(d));
  });
  ASSERT_TRUE(good.ok()) << good.error.describe();
  EXPECT_EQ(good.value.after->mode & 07777, 0600u);

  // MKNOD of a FIFO.
  auto fifo = sync<CreateOk>([&](auto d) {
    client_->mknod(root_cred_, dfh, "pipe", asmp::nfs::FileType::kFifo, mode, 0, 0, std::move(d));
  });
  ASSERT_TRUE(fifo.ok()) << fifo.error.describe();
  ASSERT_TRUE(fifo.value.attr.has_value());
  EXPECT_EQ(fifo.value.attr->type, asmp::nfs::FileType::kFifo);
  struct stat st{};
  ASSERT_EQ(stat((dir + "/pipe").c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
}

TEST_F(NfsClientTest, HandleOfRemovedFileIsStale) {
  FileHandle home = lookup_ok(nobody_, root_, "nobody");
  auto cr = sync<CreateOk>([&](auto d) {
    client_->create(nobody_, home, "doomed", CreateMode::kUnchecked, {}, {}, std::move(d));
  });
  ASSERT_TRUE(cr.ok()) << cr.error.describe();
  FileHandle fh = *cr.value.fh;
  auto rm = sync<asmp::nfs::Wcc>([&](auto d) { client_->remove(nobody_, home, "doomed", std::move(d)); });
  ASSERT_TRUE(rm.ok()) << rm.error.describe();
  auto ga = sync<Attr>([&](auto d) { client_->getattr(nobody_, fh, std::move(d)); });
  EXPECT_TRUE(ga.error.is(Status::kStale)) << ga.error.describe();
  EXPECT_EQ(ga.error.to_errno(), ESTALE);
  auto rd = sync<asmp::nfs::ReadOk>([&](auto d) { client_->read(nobody_, fh, 0, 10, std::move(d)); });
  EXPECT_TRUE(rd.error.is(Status::kStale)) << rd.error.describe();
}

TEST_F(NfsClientTest, ManyCallsFromManyColorsEachCompleteOnceUnderTheirColor) {
  constexpr int kCalls = 2000;
  std::atomic<int> done{0}, wrong_color{0}, failed{0};
  std::promise<void> all;
  for (int i = 0; i < kCalls; ++i) {
    asmp::color_t c = 100 + static_cast<asmp::color_t>(i % 8);
    client_->getattr(nobody_, root_, Done<Attr>([&, c](Result<Attr> r) {
                       if (asmp::Runtime::current_color() != c) wrong_color++;
                       if (!r.ok()) failed++;
                       if (++done == kCalls) all.set_value();
                     }, c));
  }
  ASSERT_EQ(all.get_future().wait_for(60s), std::future_status::ready) << done.load() << " done";
  EXPECT_EQ(wrong_color.load(), 0);
  EXPECT_EQ(failed.load(), 0);
}

TEST_F(NfsClientTest, PerCallTimeoutAndUnreachableServer) {
  // A client pointed at ports where nothing listens: mount reports it.
  auto dead = make_client([](NfsOptions& o) {
    o.nfs_port = 1;
    o.mount_port = 2;
  });
  auto m = sync<FileHandle>([&](auto d) { dead->mount(std::move(d)); });
  EXPECT_EQ(m.error.failure, Failure::kUnavailable) << m.error.describe();
  EXPECT_NE(m.error.message.find("MOUNT"), std::string::npos) << m.error.message;
  // A call on it waits for a reconnect that never comes: its own timeout ends it.
  auto t0 = std::chrono::steady_clock::now();
  auto g = sync<Attr>([&](auto d) { dead->getattr({nobody_, 300ms}, root_, std::move(d)); });
  auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_EQ(g.error.failure, Failure::kTimeout) << g.error.describe();
  EXPECT_GE(took, 250ms);
  EXPECT_LT(took, 5s);
}

TEST_F(NfsClientTest, DroppedConnectionResendsIdempotentCallsOnly) {
  FileHandle home = lookup_ok(nobody_, root_, "nobody");
  const std::string path = g_server->export_dir() + "/nobody/big";
  const std::string data = pattern(4 << 20, 3);
  { std::ofstream(path, std::ios::binary) << data; }
  FileHandle fh = lookup_ok(nobody_, home, "big");

  // MKDIR and 32 READs in flight, then the connection drops under them.
  auto mk = std::make_shared<std::promise<Result<CreateOk>>>();
  client_->mkdir(nobody_, home, "maybe", {}, Done<CreateOk>([mk](auto r) { mk->set_value(std::move(r)); }, kTestColor));
  std::vector<std::future<Result<asmp::nfs::ReadOk>>> reads;
  for (int i = 0; i < 32; ++i) {
    auto p = std::make_shared<std::promise<Result<asmp::nfs::ReadOk>>>();
    reads.push_back(p->get_future());
    client_->read(nobody_, fh, std::uint64_t(i) * 128 * 1024, 128 * 1024,
                  Done<asmp::nfs::ReadOk>([p](auto r) { p->set_value(std::move(r)); }, kTestColor));
  }
  client_->disconnect_for_test();

  std::string back;
  for (auto& f : reads) {
    ASSERT_EQ(f.wait_for(30s), std::future_status::ready);
    auto r = f.get();
    ASSERT_TRUE(r.ok()) << r.error.describe();
    back += r.value.data.view();
  }
  EXPECT_TRUE(back == data);
  auto fmk = mk->get_future();
  ASSERT_EQ(fmk.wait_for(30s), std::future_status::ready);
  auto mkr = fmk.get();
  // Either its reply beat the drop, or it was not resent.
  EXPECT_TRUE(mkr.ok() || mkr.error.failure == Failure::kConnectionLost) << mkr.error.describe();
  auto s = client_->stats();
  EXPECT_EQ(s.disconnects, 1u);
  EXPECT_EQ(s.connects, 2u);
  EXPECT_GT(s.resent, 0u);
}

TEST_F(NfsClientTest, SurvivesGaneshaRestart) {
  FileHandle home = lookup_ok(nobody_, root_, "nobody");
  const std::string path = g_server->export_dir() + "/nobody/kept";
  { std::ofstream(path) << "still here\n"; }
  FileHandle fh = lookup_ok(nobody_, home, "kept");

  g_server->stop();  // every connection to it is gone now
  // Calls made while the server is down wait for the reconnect.
  std::vector<std::future<Result<asmp::nfs::ReadOk>>> reads;
  for (int i = 0; i < 4; ++i) {
    auto p = std::make_shared<std::promise<Result<asmp::nfs::ReadOk>>>();
    reads.push_back(p->get_future());
    client_->read(nobody_, fh, 0, 100,
                  Done<asmp::nfs::ReadOk>([p](auto r) { p->set_value(std::move(r)); }, kTestColor));
  }
  std::this_thread::sleep_for(500ms);
  std::string err;
  ASSERT_TRUE(g_server->start(&err)) << err;

  for (auto& f : reads) {
    ASSERT_EQ(f.wait_for(30s), std::future_status::ready);
    auto r = f.get();
    ASSERT_TRUE(r.ok()) << r.error.describe();
    EXPECT_EQ(r.value.data.view(), "still here\n");
  }
  EXPECT_EQ(client_->root(), root_) << "the export's root handle changed across the restart";
  auto ga = sync<Attr>([&](auto d) { client_->getattr(nobody_, fh, std::move(d)); });
  EXPECT_TRUE(ga.ok()) << ga.error.describe();
  EXPECT_GE(client_->stats().connects, 2u);
}

TEST_F(NfsClientTest, StalledServerIsDetectedByAnUnansweredProbeAndReconnected) {
  auto client = make_client([](NfsOptions& o) {
    o.probe_after = 300ms;
    o.probe_timeout = 700ms;
  });
  auto m = sync<FileHandle>([&](auto d) { client->mount(std::move(d)); });
  ASSERT_TRUE(m.ok()) << m.error.describe();
  pid_t pid = ganesha_pid();
  ASSERT_GT(pid, 0);

  stop_and_wait(pid);  // TCP stays open, nothing answers, not even NULL
  Pending<Attr> p;
  client->getattr({nobody_, 15s}, m.value, p.done());
  // Silence for probe_after, then a probe unanswered for probe_timeout:
  // the connection is dropped and the reconnect waits for the server.
  for (int i = 0; i < 100 && client->stats().stalls == 0; ++i) std::this_thread::sleep_for(50ms);
  kill(pid, SIGCONT);

  auto r = p.get(20s);
  EXPECT_TRUE(r.ok()) << r.error.describe();
  auto s = client->stats();
  EXPECT_GE(s.stalls, 1u);
  EXPECT_GE(s.probes, 1u);
  EXPECT_GE(client->epoch(), 2u);
  EXPECT_EQ(r.epoch, client->epoch()) << "the reply came on the new connection";
  auto again = sync<Attr>([&](auto d) { client->getattr(nobody_, m.value, std::move(d)); });
  EXPECT_TRUE(again.ok()) << again.error.describe();
}

TEST_F(NfsClientTest, CallTimesOutOnALiveConnectionAndItsLateReplyIsDropped) {
  pid_t pid = ganesha_pid();
  ASSERT_GT(pid, 0);
  std::atomic<int> calls{0};
  auto p = std::make_shared<std::promise<Result<Attr>>>();
  stop_and_wait(pid);
  client_->getattr({nobody_, 300ms}, root_, Done<Attr>([p, &calls](auto r) {
                     if (calls++ == 0) p->set_value(std::move(r));
                   }, kTestColor));
  auto f = p->get_future();
  bool ready = f.wait_for(5s) == std::future_status::ready;
  kill(pid, SIGCONT);  // the reply to the timed-out call arrives now
  ASSERT_TRUE(ready);
  EXPECT_EQ(f.get().error.failure, Failure::kTimeout);
  auto ok = sync<Attr>([&](auto d) { client_->getattr(nobody_, root_, std::move(d)); });
  EXPECT_TRUE(ok.ok()) << ok.error.describe();
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(calls.load(), 1);
  EXPECT_EQ(client_->stats().timeouts, 1u);
  EXPECT_EQ(client_->stats().disconnects, 0u);
}

TEST_F(NfsClientTest, ClosingFailsPendingCallsExactlyOnce) {
  FileHandle home = lookup_ok(nobody_, root_, "nobody");
  g_server->stop();
  std::atomic<int> calls{0};
  auto p = std::make_shared<std::promise<Result<Attr>>>();
  client_->getattr(nobody_, home, Done<Attr>([p, &calls](auto r) {
                     calls++;
                     p->set_value(std::move(r));
                   }, kTestColor));
  std::this_thread::sleep_for(200ms);
  client_.reset();
  auto f = p->get_future();
  ASSERT_EQ(f.wait_for(10s), std::future_status::ready);
  EXPECT_EQ(f.get().error.failure, Failure::kClosed);
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(calls.load(), 1);
  std::string err;
  ASSERT_TRUE(g_server->start(&err)) << err;
}

}  // namespace
}  // namespace sfs_test
