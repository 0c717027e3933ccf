// posix_more_util.h: the fixture of posix_more_test.cc and
// posix_more_servers_test.cc (issue 8: what POSIX programs expect of a real
// /sfs mount, per local user). Two local users, A and B, each logged in
// with their own key through their own sfsagent, and root with a key the
// server maps to uid 0; helpers to run a call or a shell command as one of
// them, in a child process, as their programs would.
//
// Starts: ganesha.nfsd, sfsd, sfsclient, one sfsagent per user (running as
// that user). Creates two local users (useradd; userdel at the end).
// Runs as root.
#pragma once

#include <grp.h>
#include <pwd.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>

#include <iterator>

#include "mount_test_util.h"

namespace mount_test::posix_more {

using namespace std::chrono_literals;

struct Person {
  std::string name;
  uid_t uid = 0;
  gid_t gid = 0;
  std::string home;
  std::shared_ptr<sfs::UserKey> key;
};

// What a call did, as a program would print it: "ok", or errno's name.
inline std::string result(long rc) {
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
inline std::string put(const std::string& path, const std::string& data) {
  const int fd = ::open(path.c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0644);
  if (fd < 0) return result(-1);
  if (::write(fd, data.data(), data.size()) != static_cast<ssize_t>(data.size())) {
    const std::string r = result(-1);
    ::close(fd);
    return r;
  }
  return result(::close(fd));
}

inline std::string quoted(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

inline bool later(const timespec& a, const timespec& b) {
  return a.tv_sec > b.tv_sec || (a.tv_sec == b.tv_sec && a.tv_nsec > b.tv_nsec);
}

// What statvfs says is available to users, in bytes (0 if it fails).
inline std::uint64_t available(const std::string& path) {
  struct statvfs v {};
  return ::statvfs(path.c_str(), &v) == 0 ? static_cast<std::uint64_t>(v.f_bavail) * v.f_frsize : 0;
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
    // A failed step stops the test here (fatal), not in its body.
    ASSERT_FALSE(HasFailure()) << "preparing the export failed";
    ::chmod(server_.export_dir().c_str(), 0777);
    // The users reach their homes and the mount point through these.
    const std::string top = std::filesystem::path(server_.dir()).parent_path().string();
    for (const std::string& d : {top, server_.dir()}) ::chmod(d.c_str(), 0755);
    a_ = add_person(0);
    b_ = add_person(1);
    ASSERT_FALSE(HasFailure()) << "adding the local users failed";
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
    ASSERT_FALSE(HasFailure()) << "the users' agents did not start (can the users reach " << SFSCLIENT_BINARY
                               << "? every directory above it must be searchable by others)";
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
    agents_.push_back(start_user_agent(*m_, u.uid, u.gid, u.home, key_file, server_.dir() + "/agent-" + u.name + ".log"));
  }

  // Runs f in a child process as u (u's uid and gid, no other groups), as
  // a program of u's would; returns what f returned, or "timeout" if it
  // had not finished after `seconds` (the child is then killed).
  std::string as(const Person& u, const std::function<std::string()>& f, int seconds = 60) {
    return in_child(f, seconds, [&u] {
      ::setgroups(0, nullptr);
      return ::setgid(u.gid) == 0 && ::setuid(u.uid) == 0;
    });
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

}  // namespace mount_test::posix_more
