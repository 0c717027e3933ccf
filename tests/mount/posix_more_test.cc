// posix_more_test.cc: more of what POSIX programs expect of a real /sfs
// mount, per local user (issue 8), one server: sticky directories, chown's
// ctime, statfs and df against the backend's disk, access(), symlinks to
// self-certifying paths, and unmounting while a read waits on a stopped
// sfsd. The users, their agents and keys: posix_more_util.h. Starts:
// ganesha.nfsd, sfsd, sfsclient, one sfsagent per user.
#include "posix_more_util.h"

namespace mount_test::posix_more {
namespace {

// In a 1777 directory (/tmp's mode), B may not remove or rename A's file,
// nor replace it by a rename: EPERM, as Linux answers on a local disk.
// A may, and root may remove anyone's.
TEST_F(PosixMoreTest, StickyDirectoryOnlyTheOwnerOrRootRemovesAFile) {
  const std::string t = d_ + "/shared-tmp", plain = d_ + "/open";
  ASSERT_EQ(::mkdir(t.c_str(), 0755), 0) << std::strerror(errno) << m_->log();
  ASSERT_EQ(::chmod(t.c_str(), 01777), 0) << std::strerror(errno);
  ASSERT_EQ(::mkdir(plain.c_str(), 0755), 0);
  ASSERT_EQ(::chmod(plain.c_str(), 0777), 0);
  struct stat s {};
  ASSERT_EQ(::stat(t.c_str(), &s), 0);
  EXPECT_EQ(s.st_uid, 0u) << "root's key makes root uid 0 on the server";
  EXPECT_EQ(s.st_mode & 07777, 01777u);
  EXPECT_EQ(as(a_,
               [&] {
                 return (Said() << put(t + "/a1", "A's") << put(t + "/a2", "A's") << put(plain + "/a3", "A's")).text;
               }),
            "ok ok ok");
  EXPECT_EQ(as(b_, [&] { return (Said() << put(t + "/b1", "B's") << put(t + "/b2", "B's")).text; }), "ok ok");
  EXPECT_EQ(as(b_,
               [&] {
                 return (Said() << result(::unlink((t + "/a1").c_str()))
                                << result(::rename((t + "/a1").c_str(), (t + "/stolen").c_str()))
                                << result(::rename((t + "/b1").c_str(), (t + "/a1").c_str())))
                     .text;
               }),
            "EPERM EPERM EPERM");
  // Without the sticky bit, write permission on the directory is enough.
  EXPECT_EQ(as(b_, [&] { return result(::unlink((plain + "/a3").c_str())); }), "ok");
  // A's file is untouched, and A may rename and remove theirs.
  EXPECT_EQ(as(a_, [&] { return contents(t + "/a1"); }), "A's");
  EXPECT_EQ(as(a_,
               [&] {
                 return (Said() << result(::rename((t + "/a1").c_str(), (t + "/a1-renamed").c_str()))
                                << result(::unlink((t + "/a1-renamed").c_str()))
                                << result(::rename((t + "/a2").c_str(), (t + "/a2-renamed").c_str())))
                     .text;
               }),
            "ok ok ok");
  // root removes and renames other users' files.
  EXPECT_EQ(::unlink((t + "/b1").c_str()), 0) << std::strerror(errno);
  EXPECT_EQ(::rename((t + "/b2").c_str(), (t + "/moved-by-root").c_str()), 0) << std::strerror(errno);
  // The server's disk agrees.
  const std::string e = server_.export_dir() + "/shared-tmp/";
  for (const char* gone : {"a1", "a1-renamed", "a2", "b1", "b2"})
    EXPECT_FALSE(std::filesystem::exists(e + gone)) << gone;
  EXPECT_EQ(contents(e + "a2-renamed"), "A's");
  EXPECT_EQ(contents(e + "moved-by-root"), "B's");
}

// Root chowns a file: the new owner shows at once, to every user, and
// ctime moves forward (a sane time, nanoseconds in range); mtime does not.
// chgrp and the new owner's chmod move it again; nobody else may chown.
TEST_F(PosixMoreTest, ChownAndChmodMoveCtime) {
  const std::string f = d_ + "/owned";
  ASSERT_EQ(put(f, "x"), "ok") << m_->log();
  struct stat before {}, after {};
  ASSERT_EQ(::stat(f.c_str(), &before), 0);
  EXPECT_EQ(before.st_uid, 0u);
  std::this_thread::sleep_for(20ms);
  timespec wall0{}, wall1{};
  ::clock_gettime(CLOCK_REALTIME, &wall0);
  ASSERT_EQ(::chown(f.c_str(), a_.uid, a_.gid), 0) << std::strerror(errno);
  ::clock_gettime(CLOCK_REALTIME, &wall1);
  ASSERT_EQ(::stat(f.c_str(), &after), 0);
  EXPECT_EQ(after.st_uid, a_.uid);
  EXPECT_EQ(after.st_gid, a_.gid);
  EXPECT_TRUE(later(after.st_ctim, before.st_ctim)) << "chown did not change ctime";
  EXPECT_GE(after.st_ctim.tv_nsec, 0);
  EXPECT_LT(after.st_ctim.tv_nsec, 1000000000);
  // Same host, same clock (file systems stamp with a coarse clock: 1 s slack).
  EXPECT_GE(after.st_ctim.tv_sec, wall0.tv_sec - 1);
  EXPECT_LE(after.st_ctim.tv_sec, wall1.tv_sec + 1);
  EXPECT_EQ(after.st_mtim.tv_sec, before.st_mtim.tv_sec);
  EXPECT_EQ(after.st_mtim.tv_nsec, before.st_mtim.tv_nsec) << "chown changed mtime";
  auto owner_and_ctime = [&] {
    struct stat s {};
    if (::stat(f.c_str(), &s) != 0) return result(-1);
    return (Said() << std::to_string(s.st_uid) << std::to_string(s.st_ctim.tv_sec) << std::to_string(s.st_ctim.tv_nsec))
        .text;
  };
  const std::string seen_by_root = owner_and_ctime();
  EXPECT_EQ(as(a_, owner_and_ctime), seen_by_root);
  EXPECT_EQ(as(b_, owner_and_ctime), seen_by_root);
  // chgrp alone.
  std::this_thread::sleep_for(20ms);
  ASSERT_EQ(::chown(f.c_str(), static_cast<uid_t>(-1), b_.gid), 0) << std::strerror(errno);
  struct stat regrouped {};
  ASSERT_EQ(::stat(f.c_str(), &regrouped), 0);
  EXPECT_EQ(regrouped.st_gid, b_.gid);
  EXPECT_EQ(regrouped.st_uid, a_.uid);
  EXPECT_TRUE(later(regrouped.st_ctim, after.st_ctim)) << "chgrp did not change ctime";
  // The new owner may chmod (ctime moves again); B may not; and neither
  // may give the file away or take it.
  std::this_thread::sleep_for(20ms);
  EXPECT_EQ(as(a_, [&] { return result(::chmod(f.c_str(), 0600)); }), "ok");
  struct stat chmodded {};
  ASSERT_EQ(::stat(f.c_str(), &chmodded), 0);
  EXPECT_EQ(chmodded.st_mode & 07777, 0600u);
  EXPECT_TRUE(later(chmodded.st_ctim, regrouped.st_ctim)) << "chmod by the owner did not change ctime";
  EXPECT_EQ(as(b_, [&] { return result(::chmod(f.c_str(), 0644)); }), "EPERM");
  EXPECT_EQ(as(a_, [&] { return result(::chown(f.c_str(), b_.uid, static_cast<gid_t>(-1))); }), "EPERM");
  EXPECT_EQ(as(b_, [&] { return result(::chown(f.c_str(), b_.uid, static_cast<gid_t>(-1))); }), "EPERM");
  struct stat last {};
  ASSERT_EQ(::stat(f.c_str(), &last), 0);
  EXPECT_EQ(last.st_uid, a_.uid);
  EXPECT_EQ(last.st_mode & 07777, 0600u);
}

// statvfs and df on the mount show the backend's disk: the export
// directory's own statvfs, within rounding (and, for the free space,
// whatever others wrote to the shared disk in between).
TEST_F(PosixMoreTest, StatfsAndDfShowTheBackendsDisk) {
  struct statvfs e1 {}, m {}, e2 {};
  ASSERT_EQ(::statvfs(server_.export_dir().c_str(), &e1), 0);
  ASSERT_EQ(::statvfs(d_.c_str(), &m), 0) << std::strerror(errno);
  ASSERT_EQ(::statvfs(server_.export_dir().c_str(), &e2), 0);
  // A sees the same disk.
  EXPECT_EQ(as(a_,
               [&] {
                 struct statvfs v {};
                 if (::statvfs(d_.c_str(), &v) != 0) return result(-1);
                 return std::to_string(v.f_blocks * v.f_frsize) + " " + std::to_string(v.f_namemax);
               }),
            std::to_string(m.f_blocks * m.f_frsize) + " 255");
  EXPECT_GT(m.f_bsize, 0u);
  EXPECT_GT(m.f_frsize, 0u);
  EXPECT_GT(m.f_blocks, 0u);
  EXPECT_LE(m.f_bfree, m.f_blocks);
  EXPECT_LE(m.f_bavail, m.f_bfree);
  EXPECT_LE(m.f_ffree, m.f_files);
  EXPECT_EQ(m.f_namemax, 255u);
  auto bytes = [](const struct statvfs& v, fsblkcnt_t n) { return static_cast<double>(n) * v.f_frsize; };
  EXPECT_NEAR(bytes(m, m.f_blocks), bytes(e1, e1.f_blocks), m.f_frsize) << "total size";
  const double slack = 64.0 * (1 << 20);
  const double lo = std::min(bytes(e1, e1.f_bfree), bytes(e2, e2.f_bfree)) - slack;
  const double hi = std::max(bytes(e1, e1.f_bfree), bytes(e2, e2.f_bfree)) + slack;
  EXPECT_GE(bytes(m, m.f_bfree), lo);
  EXPECT_LE(bytes(m, m.f_bfree), hi);
  EXPECT_GE(bytes(m, m.f_bavail), std::min(bytes(e1, e1.f_bavail), bytes(e2, e2.f_bavail)) - slack);
  EXPECT_LE(bytes(m, m.f_bavail), std::max(bytes(e1, e1.f_bavail), bytes(e2, e2.f_bavail)) + slack);
  EXPECT_EQ(m.f_files, e1.f_files);
  // df, as A: one line for the mount, its size that of the backend's disk.
  std::string out;
  ASSERT_EQ(as_sh(a_, "df -P -k " + d_ + " | tail -n 1", &out), 0) << out;
  std::istringstream line(out);
  std::string fsname;
  double kb = 0, used = 0, avail = 0;
  line >> fsname >> kb >> used >> avail;
  EXPECT_EQ(fsname, "sfs") << out;
  EXPECT_NEAR(kb * 1024, bytes(e1, e1.f_blocks), 8192) << out;
  EXPECT_GT(avail, 0) << out;
}

// access() answers for the caller: B may read A's 0644 file but not write
// it, nor search A's 0700 directory; A may not write A's own 0444 file;
// root may write anything but execute only what has an x bit.
TEST_F(PosixMoreTest, AccessAnswersForTheCallingUser) {
  EXPECT_EQ(as(a_,
               [&] {
                 return (Said() << put(d_ + "/mine", "m") << put(d_ + "/ro", "r")
                                << result(::chmod((d_ + "/ro").c_str(), 0444))
                                << result(::mkdir((d_ + "/private").c_str(), 0700))
                                << result(::mkdir((d_ + "/pub").c_str(), 0755)) << put(d_ + "/pub/file", "p"))
                     .text;
               }),
            "ok ok ok ok ok ok");
  auto check = [&](const std::string& name, int mode) { return result(::access((d_ + "/" + name).c_str(), mode)); };
  EXPECT_EQ(as(b_,
               [&] {
                 return (Said() << check("mine", W_OK) << check("mine", R_OK) << check("private", X_OK)
                                << check("private", R_OK) << check("pub", X_OK) << check("pub", W_OK)
                                << check("pub/file", R_OK) << check("mine", F_OK))
                     .text;
               }),
            "EACCES ok EACCES EACCES ok EACCES ok ok");
  // And what access() said is what open() does.
  EXPECT_EQ(as(b_, [&] { return result(::open((d_ + "/mine").c_str(), O_WRONLY)); }), "EACCES");
  EXPECT_EQ(as(a_,
               [&] {
                 return (Said() << check("ro", W_OK) << check("ro", R_OK) << check("mine", W_OK)
                                << check("private", X_OK | W_OK | R_OK) << check("mine", X_OK))
                     .text;
               }),
            "EACCES ok ok ok EACCES");
  EXPECT_EQ((Said() << check("ro", W_OK) << check("private", X_OK) << check("mine", X_OK)).text, "ok ok EACCES");
}

// A symlink on the local disk to a self-certifying path: followed by cat
// and cd as a path given by hand would be. Inside the mount, a relative
// link and an absolute one into the mount itself work, and the server
// stores their text as given.
TEST_F(PosixMoreTest, SymlinksToASelfCertifyingPathAndWithinTheMount) {
  const std::string link = a_.home + "/work";
  std::string out;
  ASSERT_EQ(as_sh(a_,
                  "set -e; mkdir " + d_ + "/proj " + d_ + "/other; echo hello > " + d_ + "/proj/file; ln -s " + d_ +
                      "/proj " + link + "; cat " + link + "/file; cd " + link + "; pwd -P; echo again > " + link +
                      "/new; ln -s ../proj/file " + d_ + "/other/rel; cat " + d_ + "/other/rel; readlink " + d_ +
                      "/other/rel; ln -s " + d_ + "/proj/new " + d_ + "/abs; cat " + d_ + "/abs",
                  &out),
            0)
      << out << m_->log();
  EXPECT_EQ(out, "hello\n" + d_ + "/proj\nhello\n../proj/file\nagain\n");
  // B follows A's links too (links are not permission checked; the files are 0644).
  ASSERT_EQ(as_sh(b_, "cat " + link + "/file " + d_ + "/other/rel", &out), 0) << out;
  EXPECT_EQ(out, "hello\nhello\n");
  EXPECT_EQ(std::filesystem::read_symlink(server_.export_dir() + "/other/rel").string(), "../proj/file");
  EXPECT_EQ(std::filesystem::read_symlink(server_.export_dir() + "/abs").string(), d_ + "/proj/new");
  EXPECT_EQ(contents(server_.export_dir() + "/proj/new"), "again\n");
}

// With sfsd stopped (SIGSTOP: its connection stays open and silent) and a
// program of A's blocked reading a file whose data the client never had,
// `sfsclient umount` returns, the daemon exits, and the blocked read ends
// with an error instead of waiting forever: ENOTCONN (what the kernel
// answers on a FUSE connection that was aborted; seen here every time) or
// ECONNABORTED (its answer to a request pending at the abort).
TEST_F(PosixMoreTest, UmountWithAReadWaitingOnAStoppedServer) {
  const std::string cold = server_.export_dir() + "/cold";
  std::ofstream(cold) << pattern(256 << 10, 3);
  ASSERT_EQ(::chown(cold.c_str(), a_.uid, a_.gid), 0);
  int ready[2], go[2], res[2];
  ASSERT_EQ(::pipe2(ready, O_CLOEXEC), 0);
  ASSERT_EQ(::pipe2(go, O_CLOEXEC), 0);
  ASSERT_EQ(::pipe2(res, O_CLOEXEC), 0);
  const std::string path = d_ + "/cold";
  waiter_ = ::fork();
  if (waiter_ == 0) {
    ::setgroups(0, nullptr);
    if (::setgid(a_.gid) != 0 || ::setuid(a_.uid) != 0) ::_exit(126);
    const int fd = ::open(path.c_str(), O_RDONLY);
    char c = fd >= 0 ? '1' : '0';
    if (::write(ready[1], &c, 1) != 1 || ::read(go[0], &c, 1) != 1) ::_exit(1);
    char buf[4096];
    const ssize_t n = ::read(fd, buf, sizeof buf);
    const std::string r = n >= 0 ? "read " + std::to_string(n) : result(-1);
    if (::write(res[1], r.data(), r.size()) < 0) ::_exit(1);
    ::_exit(0);
  }
  ::close(ready[1]);
  ::close(go[0]);
  ::close(res[1]);
  char c = 0;
  ASSERT_TRUE(readable(ready[0], 30s));
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  ASSERT_EQ(c, '1') << "A could not open the file";
  sfsd_stopped_ = true;
  ASSERT_TRUE(server_.sfsd().freeze()) << "sfsd's threads did not all stop";
  ASSERT_EQ(::write(go[1], "g", 1), 1);
  // A waits in that read() of 4096 bytes (the kernel shows the call).
  const std::string proc_syscall = "/proc/" + std::to_string(waiter_) + "/syscall";
  EXPECT_TRUE(eventually(
      [&] {
        const std::string sc = contents(proc_syscall);
        return sc.rfind(std::to_string(SYS_read) + " ", 0) == 0 && sc.find(" 0x1000 ") != std::string::npos;
      },
      10s))
      << contents(proc_syscall);
  EXPECT_FALSE(readable(res[0], 1000ms)) << "the read was answered with sfsd stopped";
  const auto t0 = std::chrono::steady_clock::now();
  int status = -1;
  EXPECT_TRUE(m_->unmount(&status)) << "sfsclient did not exit after umount:\n" << m_->log();
  EXPECT_EQ(status, 0);
  EXPECT_FALSE(m_->mounted());
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 60s);
  // The blocked program: an error, not a hang.
  std::string answer = "no answer within 30 s";
  if (readable(res[0], 30s)) {
    char buf[256];
    const ssize_t n = ::read(res[0], buf, sizeof buf);
    answer = n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : "the reader died";
  }
  EXPECT_TRUE(answer == "ENOTCONN" || answer == "ECONNABORTED") << answer;
  for (int fd : {ready[0], go[1], res[0]}) ::close(fd);
  server_.sfsd().signal(SIGCONT);
  sfsd_stopped_ = false;
  ::kill(waiter_, SIGKILL);
  ::waitpid(waiter_, nullptr, 0);
  waiter_ = -1;
}

}  // namespace
}  // namespace mount_test::posix_more
