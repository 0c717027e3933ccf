// posix_more_test.cc: more of what POSIX programs expect of a real /sfs
// mount, per local user (issue 8). Two local users, A and B, each logged
// in with their own key through their own sfsagent, and root with a key
// the server maps to uid 0, do through the mount what people and programs
// do: sticky directories, EXDEV between servers and to a local directory
// (and mv copying across), chown's ctime, statfs against the backend's
// disk, access(), symlinks to self-certifying paths, a full backend disk
// reaching the writer, and unmounting while a read waits on a stopped sfsd.
//
// Starts: ganesha.nfsd and sfsd (two of each in the two-server test),
// sfsclient, one sfsagent per user (running as that user). Creates two
// local users (useradd; userdel at the end). The small-disk test mounts an
// 8 MiB tmpfs over the export directory (unmounted at the end, always).
// Runs as root.
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>

#include <iterator>

#include "mount_test_util.h"

namespace mount_test {
namespace {

using namespace std::chrono_literals;

struct Person {
  std::string name;
  uid_t uid = 0;
  gid_t gid = 0;
  std::string home;
  std::shared_ptr<sfs::UserKey> key;
};

// What a call did, as a program would print it: "ok", or errno's name.
std::string result(long rc) {
  if (rc != -1) return "ok";
  const char* n = ::strerrorname_np(errno);
  return n ? n : std::to_string(errno);
}

// What calls made one after the other said, space separated ("ok EPERM").
// `<<` runs its operands left to right; `+` would not (C++ leaves the order
// of a + b to the compiler, and a rename and an unlink of one name in the
// other order give other answers).
struct Said {
  std::string text;
  Said& operator<<(const std::string& r) {
    text += (text.empty() ? "" : " ") + r;
    return *this;
  }
};

// Writes a whole file and closes it: "ok" once close() said so.
std::string put(const std::string& path, const std::string& data) {
  const int fd = ::open(path.c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0644);
  if (fd < 0) return result(-1);
  if (::write(fd, data.data(), data.size()) != static_cast<ssize_t>(data.size())) {
    const std::string r = result(-1);
    ::close(fd);
    return r;
  }
  return result(::close(fd));
}

std::string contents(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// n bytes that differ from one seed to another.
std::string pattern(std::size_t n, std::uint64_t seed) {
  std::string s(n, '\0');
  std::uint64_t x = seed * 0x9e3779b97f4a7c15ull + 7;
  for (auto& c : s) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    c = static_cast<char>(x >> 56);
  }
  return s;
}

std::string quoted(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

bool later(const timespec& a, const timespec& b) {
  return a.tv_sec > b.tv_sec || (a.tv_sec == b.tv_sec && a.tv_nsec > b.tv_nsec);
}

// What statvfs says is available to users, in bytes (0 if it fails).
std::uint64_t available(const std::string& path) {
  struct statvfs v {};
  return ::statvfs(path.c_str(), &v) == 0 ? static_cast<std::uint64_t>(v.f_bavail) * v.f_frsize : 0;
}

// Waits for fd to have something to read (or EOF), up to `limit`.
bool readable(int fd, std::chrono::milliseconds limit) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, static_cast<int>(limit.count())) > 0;
}

class PosixMoreTest : public MountFixture {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "FUSE mounts need root here";
    if (::access("/dev/fuse", R_OK | W_OK) != 0) GTEST_SKIP() << "no /dev/fuse";
    if (sh("command -v useradd && command -v setpriv") != 0) GTEST_SKIP() << "useradd/setpriv missing";
    std::string why;
    if (!server_.setup(&why)) GTEST_SKIP() << why;
    prepare_export();
    if (HasFailure()) return;
    ::chmod(server_.export_dir().c_str(), 0777);
    // The users reach their homes and the mount point through these.
    const std::string top = std::filesystem::path(server_.dir()).parent_path().string();
    for (const std::string& d : {top, server_.dir()}) ::chmod(d.c_str(), 0755);
    a_ = add_person(0);
    b_ = add_person(1);
    if (HasFailure()) return;
    root_ = Person{"root", 0, 0, server_.dir(), std::make_shared<sfs::UserKey>(sfs::UserKey::generate())};
    ASSERT_TRUE(sfs::write_key_file(server_.dir() + "/root-identity", *root_.key).ok());
    for (const Person* p : {&a_, &b_, &root_}) server_.add_user_with_key(p->name, p->uid, p->gid, p->key);
    server_.write_users();
    ASSERT_TRUE(server_.start_sfsd(&why)) << why;
    m_ = &mount();
    ASSERT_TRUE(m_->mounted());
    ::chmod(std::filesystem::path(m_->path()).parent_path().c_str(), 0755);
    start_agent(a_, a_.home + "/.sfs/identity");
    start_agent(b_, b_.home + "/.sfs/identity");
    start_agent(root_, server_.dir() + "/root-identity");
    d_ = at(*m_);
  }

  void TearDown() override {
    if (sfsd_stopped_) server_.sfsd().signal(SIGCONT);
    if (waiter_ > 0) {
      ::kill(waiter_, SIGKILL);
      ::waitpid(waiter_, nullptr, 0);
    }
    for (pid_t p : agents_) {
      ::kill(p, SIGTERM);
      ::waitpid(p, nullptr, 0);
    }
    MountFixture::TearDown();
    for (auto& u : people_) sh("userdel " + u + " >/dev/null 2>&1; groupdel " + u + " >/dev/null 2>&1");
  }

  // Before sfsd starts (ganesha runs): the small-disk test's tmpfs.
  virtual void prepare_export() {}

  // A local user at a uid nobody else here uses, with a key the server
  // knows (~/.sfs/identity).
  Person add_person(int i) {
    Person u;
    u.name = "sfspm" + std::to_string(::getpid()) + "_" + std::to_string(i);
    u.home = server_.dir() + "/home-" + u.name;
    std::string out;
    for (int k = 0; k < 50; ++k) {
      u.uid = static_cast<uid_t>(47000 + ((::getpid() + k) % 1000) * 2 + i);
      if (sh("useradd -M -d " + u.home + " -u " + std::to_string(u.uid) + " -U " + u.name, &out) == 0) break;
      u.uid = 0;
    }
    if (u.uid == 0) {
      ADD_FAILURE() << "useradd: " << out;
      return u;
    }
    people_.push_back(u.name);
    const passwd* pw = ::getpwnam(u.name.c_str());
    if (!pw) {
      ADD_FAILURE() << "no passwd entry for " << u.name;
      return u;
    }
    u.gid = pw->pw_gid;
    std::filesystem::create_directories(u.home + "/.sfs");
    u.key = std::make_shared<sfs::UserKey>(sfs::UserKey::generate());
    EXPECT_TRUE(sfs::write_key_file(u.home + "/.sfs/identity", *u.key).ok());
    sh("chown -R " + std::to_string(u.uid) + ":" + std::to_string(u.gid) + " " + u.home + " && chmod 700 " +
       u.home + "/.sfs");
    return u;
  }

  // The user's agent (running as them) with their key; returns once it
  // has registered with sfsclient.
  void start_agent(const Person& u, const std::string& key_file) {
    const std::string log = server_.dir() + "/agent-" + u.name + ".log";
    const std::string reg = std::filesystem::path(m_->path()).parent_path().string() + "/agent.sock";
    std::string bin = SFSCLIENT_BINARY;
    bin = bin.substr(0, bin.rfind('/')) + "/sfsagent";
    const std::string ctl = u.home + "/.sfs/agent.sock";
    const pid_t p = ::fork();
    if (p == 0) {
      const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      ::setgroups(0, nullptr);
      if (::setgid(u.gid) != 0 || ::setuid(u.uid) != 0) ::_exit(126);
      ::setenv("HOME", u.home.c_str(), 1);
      ::unsetenv("XDG_RUNTIME_DIR");
      ::unsetenv("SFS_AGENT_SOCK");
      ::execl(bin.c_str(), bin.c_str(), "--foreground", "--control", ctl.c_str(), "--registration", reg.c_str(),
              "--add", key_file.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
    agents_.push_back(p);
    EXPECT_TRUE(eventually([&] { return contents(log).find("registered with sfsclient") != std::string::npos; }))
        << u.name << "'s agent did not register:\n" << contents(log);
  }

  // Runs f in a child process as u (u's uid and gid, no other groups), as
  // a program of u's would; returns what f returned, or "timeout" if it
  // had not finished after `seconds` (the child is then killed).
  std::string as(const Person& u, const std::function<std::string()>& f, int seconds = 60) {
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) return "pipe failed";
    const pid_t pid = ::fork();
    if (pid == 0) {
      ::close(p[0]);
      ::setgroups(0, nullptr);
      if (::setgid(u.gid) != 0 || ::setuid(u.uid) != 0) ::_exit(126);
      const std::string r = f();
      if (::write(p[1], r.data(), r.size()) < 0) ::_exit(1);
      ::_exit(0);
    }
    ::close(p[1]);
    std::string out;
    bool done = false;
    const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
    while (!done && std::chrono::steady_clock::now() < end) {
      if (!readable(p[0], 100ms)) continue;
      char buf[4096];
      const ssize_t n = ::read(p[0], buf, sizeof buf);
      if (n <= 0) done = true;
      else out.append(buf, static_cast<std::size_t>(n));
    }
    ::close(p[0]);
    if (!done) ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    return done ? out : "timeout";
  }
  // A shell command as u; its exit status, output in *out.
  int as_sh(const Person& u, const std::string& cmd, std::string* out) {
    return sh("setpriv --reuid=" + std::to_string(u.uid) + " --regid=" + std::to_string(u.gid) +
                  " --clear-groups env HOME=" + u.home + " bash -c " + quoted(cmd),
              out);
  }

  Person a_, b_, root_;
  std::vector<std::string> people_;
  std::vector<pid_t> agents_;
  Mount* m_ = nullptr;
  std::string d_;  // the server's directory under the mount
  bool sfsd_stopped_ = false;
  pid_t waiter_ = -1;
};

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
  server_.sfsd().signal(SIGSTOP);
  sfsd_stopped_ = true;
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

// Two servers under one mount, A's key known to both.
class PosixMoreTwoServersTest : public PosixMoreTest {
 protected:
  void SetUp() override {
    PosixMoreTest::SetUp();
    if (IsSkipped() || HasFailure()) return;
    other_ = std::make_unique<SfsdServer>();
    std::string why;
    ASSERT_TRUE(other_->setup(&why)) << why;
    ::chmod(other_->export_dir().c_str(), 0777);
    other_->add_user_with_key(a_.name, a_.uid, a_.gid, a_.key);
    other_->write_users();
    ASSERT_TRUE(other_->start_sfsd(&why)) << why;
  }
  std::unique_ptr<SfsdServer> other_;
};

// rename() and link() between two servers, or between the mount and a
// local directory, fail with EXDEV and change nothing; mv, seeing EXDEV,
// copies and removes, for files and directories, and the copy on the
// other server belongs to A.
TEST_F(PosixMoreTwoServersTest, RenameAndLinkAcrossServersGiveExdevAndMvCopies) {
  const std::string s1 = d_, s2 = m_->path() + "/" + other_->name(), local = a_.home + "/local";
  EXPECT_EQ(as(a_,
               [&] {
                 Said r;
                 r << put(s1 + "/f", "one") << put(s1 + "/g", "two") << put(s2 + "/h", "three")
                   << result(::mkdir(local.c_str(), 0755)) << put(local + "/l", "four");
                 const std::vector<std::pair<std::string, std::string>> moves = {
                     {s1 + "/f", s2 + "/f"},
                     {s2 + "/h", s1 + "/h"},
                     {s1 + "/f", local + "/f"},
                     {local + "/l", s1 + "/l"}};
                 for (const auto& [from, to] : moves)
                   r << result(::rename(from.c_str(), to.c_str())) << result(::link(from.c_str(), to.c_str()));
                 return (r << result(::rename((s1 + "/g").c_str(), (s1 + "/g2").c_str()))).text;
               }),
            "ok ok ok ok ok EXDEV EXDEV EXDEV EXDEV EXDEV EXDEV EXDEV EXDEV ok");
  EXPECT_EQ(contents(server_.export_dir() + "/f"), "one");
  EXPECT_FALSE(std::filesystem::exists(other_->export_dir() + "/f"));
  EXPECT_FALSE(std::filesystem::exists(server_.export_dir() + "/h"));
  std::string out;
  ASSERT_EQ(as_sh(a_,
                  "set -e; mkdir -p " + s1 + "/tree/sub; echo x > " + s1 + "/tree/sub/x; mv " + s1 + "/f " + s2 +
                      "/f; mv " + s1 + "/tree " + s2 + "/; mv " + s1 + "/g2 " + local + "/; mv " + local + "/l " +
                      s2 + "/; cat " + s2 + "/f " + s2 + "/tree/sub/x " + local + "/g2 " + s2 +
                      "/l; for p in f tree g2; do ! test -e " + s1 + "/$p; done; ! test -e " + local +
                      "/l; stat -c %u " + s2 + "/f " + s2 + "/tree/sub/x",
                  &out),
            0)
      << out << m_->log();
  const std::string uid = std::to_string(a_.uid) + "\n";
  EXPECT_EQ(out, "onex\ntwofour" + uid + uid);
  // What the servers' disks hold.
  EXPECT_EQ(contents(other_->export_dir() + "/tree/sub/x"), "x\n");
  EXPECT_FALSE(std::filesystem::exists(server_.export_dir() + "/tree"));
}

// The export on an 8 MiB tmpfs of the test's own, so the backend's disk
// can be filled.
class PosixMoreSmallDiskTest : public PosixMoreTest {
 protected:
  void prepare_export() override {
    server_.ganesha().stop();
    const std::string e = server_.export_dir();
    ASSERT_EQ(::mount("tmpfs", e.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, "size=8m,mode=0777"), 0)
        << std::strerror(errno);
    tmpfs_ = e;
    std::string why;
    ASSERT_TRUE(server_.ganesha().start(&why)) << why;
  }
  void TearDown() override {
    PosixMoreTest::TearDown();
    server_.stop_sfsd();
    server_.ganesha().stop();
    unmount_tmpfs();
  }
  ~PosixMoreSmallDiskTest() override { unmount_tmpfs(); }
  void unmount_tmpfs() {
    if (tmpfs_.empty()) return;
    if (::umount2(tmpfs_.c_str(), 0) != 0) ::umount2(tmpfs_.c_str(), MNT_DETACH);
    tmpfs_.clear();
  }
  std::string tmpfs_;
};

// A fills the backend's disk: the error (ENOSPC; EIO if the server took
// part of a write, never silence) reaches A's program at a write(),
// fsync() or close() (ENOSPC at a write() here, the writes being behind;
// but see DISABLED_FsyncReportsAWriteLostAfterItWasAnswered); what
// fsync() and close() acknowledged before stays; statfs shows the disk
// full, then free again once A removes the file; writing works again.
TEST_F(PosixMoreSmallDiskTest, AFullDiskReachesTheWriterAndEarlierDataStays) {
  struct statvfs v {};
  ASSERT_EQ(::statvfs(d_.c_str(), &v), 0);
  EXPECT_EQ(static_cast<std::uint64_t>(v.f_blocks) * v.f_frsize, 8u << 20) << "the backend's 8 MiB tmpfs";
  const std::string keep = pattern(1 << 20, 1), chunk = pattern(1 << 20, 2);
  const std::string big = d_ + "/big";
  const std::string r = as(
      a_,
      [&] {
        std::string s = "keep=" + put(d_ + "/keep", keep);
        const int fd = ::open(big.c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0644);
        if (fd < 0) return s + " open=" + result(-1);
        // 2 MiB made stable by fsync, then on until the disk is full.
        bool ok = ::write(fd, chunk.data(), chunk.size()) == static_cast<ssize_t>(chunk.size()) &&
                  ::write(fd, chunk.data(), chunk.size()) == static_cast<ssize_t>(chunk.size());
        s += std::string(" first=") + (ok ? "ok" : result(-1));
        s += " fsync=" + result(::fsync(fd));
        for (int i = 0; i < 16; ++i) {
          const ssize_t n = ::write(fd, chunk.data(), chunk.size());
          if (n == static_cast<ssize_t>(chunk.size())) continue;
          s += " write" + std::to_string(i) + "=" + (n < 0 ? result(-1) : "short");
          break;
        }
        s += " fsync=" + result(::fsync(fd));
        return s + " close=" + result(::close(fd));
      },
      120);
  const std::string good = "keep=ok first=ok fsync=ok";
  ASSERT_EQ(r.substr(0, good.size()), good) << r;
  const std::string rest = r.substr(good.size());
  const bool nospc = rest.find("ENOSPC") != std::string::npos, eio = rest.find("EIO") != std::string::npos;
  EXPECT_TRUE(nospc || eio) << "writing past the end of the disk gave no error: " << r;
  EXPECT_EQ(rest.find("short"), std::string::npos) << r;
  // Acknowledged data stays: on the server's disk and read back as A.
  EXPECT_TRUE(contents(server_.export_dir() + "/keep") == keep);
  EXPECT_TRUE(contents(server_.export_dir() + "/big").substr(0, 2 * chunk.size()) == chunk + chunk)
      << "the 2 MiB fsync acknowledged are not on the server";
  EXPECT_EQ(as(a_, [&] { return contents(d_ + "/keep") == keep ? "same" : "differs"; }), "same");
  EXPECT_LT(available(d_), 1u << 20) << "statfs does not show the disk full";
  EXPECT_EQ(as(a_, [&] { return result(::unlink(big.c_str())); }), "ok");
  // The backend frees the space once it closes its descriptor of the
  // removed file, a moment later.
  EXPECT_TRUE(eventually([&] { return available(d_) > (5u << 20); }, 30s)) << "statfs does not show the space back";
  EXPECT_EQ(as(a_, [&] { return put(d_ + "/after", chunk); }), "ok");
  EXPECT_TRUE(contents(server_.export_dir() + "/after") == chunk);
}

// A write() that was answered (write-behind) and then failed on the full
// disk: after the next write() reports ENOSPC, fsync() must still fail,
// since that data is not on the disk (close-to-open and fsync promise
// what they acknowledged is). DISABLED: fails, an sfsclient bug: the error
// kept for the file is reported once and cleared (ops_file.cc, write():
// `std::exchange(f->error, 0)`, and flush()/fsync() the same), so fsync()
// and close() return 0 with the lost megabyte missing. A program that
// checks every call (the failing write() looks like *its own* data was
// refused) believes the earlier data safe. (Linux's page cache keeps a
// writeback error for each open file's next fsync, errseq_t, whatever
// write() said.) Enable when fixed.
TEST_F(PosixMoreSmallDiskTest, DISABLED_FsyncReportsAWriteLostAfterItWasAnswered) {
  const std::string chunk = pattern(1 << 20, 4);
  const std::string r = as(a_, [&] {
    Said said;
    said << put(d_ + "/keep", chunk);
    const int fd = ::open((d_ + "/big").c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0644);
    if (fd < 0) return (said << result(-1)).text;
    // Fill the disk to the last page and make it stable.
    bool ok = true;
    for (int i = 0; i < 7 && ok; ++i)
      ok = ::write(fd, chunk.data(), chunk.size()) == static_cast<ssize_t>(chunk.size());
    said << (ok ? "ok" : result(-1)) << result(::fsync(fd));
    // One more megabyte: answered at once, refused by the server.
    said << (::write(fd, chunk.data(), chunk.size()) == static_cast<ssize_t>(chunk.size()) ? "ok" : result(-1));
    ::sleep(1);
    said << result(::write(fd, chunk.data(), 1));
    said << result(::fsync(fd));
    return (said << result(::close(fd))).text;
  });
  // keep, the 7 MiB, their fsync, the answered write, the write that
  // reports its loss (or, if the answer was slow, is queued too), then
  // fsync: it must not say the data is safe.
  std::istringstream in(r);
  std::vector<std::string> said{std::istream_iterator<std::string>(in), {}};
  ASSERT_EQ(said.size(), 7u) << r;
  EXPECT_EQ(said[0] + said[1] + said[2] + said[3], "okokokok") << r;
  EXPECT_EQ(said[5], "ENOSPC") << "fsync() said the lost megabyte was safe: " << r;
  EXPECT_EQ(std::filesystem::file_size(server_.export_dir() + "/big"), 7u << 20);
}

}  // namespace
}  // namespace mount_test
