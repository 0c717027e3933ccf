// privileges.cc: see privileges.h. The order matters: keep-caps before the
// uid change (else the kernel clears the permitted set), the bounding set
// while CAP_SETPCAP is still effective, groups and gid before the uid (they
// need CAP_SETGID, which the uid change takes away).
#include "privileges.h"

#include <dirent.h>
#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>

namespace sfsd {

namespace {

std::string errno_text() { return std::strerror(errno); }

// Threads of this process, from /proc/self/task.
int thread_count() {
  DIR* d = ::opendir("/proc/self/task");
  if (!d) return -1;
  int n = 0;
  while (const dirent* e = ::readdir(d))
    if (e->d_name[0] != '.') ++n;
  ::closedir(d);
  return n;
}

int last_cap() {
  std::ifstream in("/proc/sys/kernel/cap_last_cap");
  int n = 40;  // a safe over-estimate; PR_CAPBSET_DROP of an unknown cap is EINVAL
  in >> n;
  return n;
}

// Effective and permitted = only CAP_NET_BIND_SERVICE; inheritable empty.
bool keep_only_net_bind_service() {
  __user_cap_header_struct hdr{};
  hdr.version = _LINUX_CAPABILITY_VERSION_3;
  hdr.pid = 0;
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3]{};
  data[CAP_TO_INDEX(CAP_NET_BIND_SERVICE)].effective = CAP_TO_MASK(CAP_NET_BIND_SERVICE);
  data[CAP_TO_INDEX(CAP_NET_BIND_SERVICE)].permitted = CAP_TO_MASK(CAP_NET_BIND_SERVICE);
  return ::syscall(SYS_capset, &hdr, data) == 0;
}

}  // namespace

sfs::Result<ServiceUser> lookup_service_user(const std::string& name) {
  ServiceUser u;
  u.name = name;
  const passwd* pw = ::getpwnam(name.c_str());
  if (!pw) {
    unsigned long id = 0;
    auto [p, ec] = std::from_chars(name.data(), name.data() + name.size(), id);
    if (ec == std::errc{} && p == name.data() + name.size()) pw = ::getpwuid(static_cast<uid_t>(id));
  }
  if (!pw)
    return sfs::make_error("user \"" + name + "\" does not exist; create it (useradd --system " + name +
                           ") or name another");
  u.uid = pw->pw_uid;
  u.gid = pw->pw_gid;
  return u;
}

sfs::Result<std::vector<uid_t>> trusted_owners(const std::string& user) {
  if (user.empty()) return std::vector<uid_t>{};
  auto u = lookup_service_user(user);
  if (!u) return sfs::make_error(u.error());
  return std::vector<uid_t>{0, ::geteuid(), u.value().uid};
}

sfs::Status drop_privileges(const ServiceUser& u) {
  const std::string who = "user " + u.name + " (uid " + std::to_string(u.uid) + ")";
  if (::geteuid() != 0) {
    if (::geteuid() == u.uid) return {};  // already that user
    return sfs::make_error("cannot become " + who + ": sfsd was not started as root");
  }
  if (u.uid == 0) return {};  // asked to stay root
  if (int n = thread_count(); n != 1)
    return sfs::make_error("cannot drop privileges with " + std::to_string(n) +
                           " threads running (the uid and capabilities are per thread)");
  if (::prctl(PR_SET_KEEPCAPS, 1L, 0L, 0L, 0L) != 0) return sfs::make_error("PR_SET_KEEPCAPS: " + errno_text());
  for (int cap = 0; cap <= last_cap(); ++cap)
    if (cap != CAP_NET_BIND_SERVICE && ::prctl(PR_CAPBSET_DROP, cap, 0L, 0L, 0L) != 0 && errno != EINVAL)
      return sfs::make_error("cannot drop capability " + std::to_string(cap) + ": " + errno_text());
  if (::setgroups(0, nullptr) != 0) return sfs::make_error("setgroups: " + errno_text());
  if (::setresgid(u.gid, u.gid, u.gid) != 0)
    return sfs::make_error("cannot switch to gid " + std::to_string(u.gid) + ": " + errno_text());
  if (::setresuid(u.uid, u.uid, u.uid) != 0) return sfs::make_error("cannot become " + who + ": " + errno_text());
  if (!keep_only_net_bind_service()) return sfs::make_error("capset: " + errno_text());
  if (::prctl(PR_SET_KEEPCAPS, 0L, 0L, 0L, 0L) != 0) return sfs::make_error("PR_SET_KEEPCAPS: " + errno_text());
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1L, 0L, 0L, 0L) != 0)
    return sfs::make_error("PR_SET_NO_NEW_PRIVS: " + errno_text());
  // Fail closed if anything above did less than it said.
  if (::setresuid(0, 0, 0) == 0 || ::getuid() != u.uid || ::geteuid() != u.uid || ::getegid() != u.gid)
    return sfs::make_error("privileges were not dropped (could regain root); refusing to run");
  return {};
}

}  // namespace sfsd
