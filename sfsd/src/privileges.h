// privileges.h: sfsd gives up root once its files are read.
//
// Contract
//   - lookup_service_user() resolves the `user` setting (a name or a
//     number) to a uid and gid.
//   - drop_privileges() must run while the process has one thread (before
//     the runtime starts its workers): the uid change and the capability
//     set are per thread in the kernel, and threads created later inherit
//     them. It refuses (an error, never a half-dropped process) if other
//     threads exist.
//     Afterwards the process runs as that uid and gid with no supplementary
//     groups, keeps exactly CAP_NET_BIND_SERVICE (effective and permitted;
//     the NFS backend trusts AUTH_UNIX only from reserved source ports, and
//     libnfs binds one on every reconnect), has every other capability
//     dropped from its bounding set, cannot regain root (checked), and has
//     PR_SET_NO_NEW_PRIVS set.
//   - Linux only; raw syscalls (no libcap).
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "sfs/result.h"

namespace sfsd {

struct ServiceUser {
  std::string name;
  uid_t uid = 0;
  gid_t gid = 0;
};

sfs::Result<ServiceUser> lookup_service_user(const std::string& name);
// Who may own the files sfsd reads (sfs/secret_file.h): root, us, and the
// `user` setting's uid if set (it owns the handle key file). Empty user:
// the default (root or us).
sfs::Result<std::vector<uid_t>> trusted_owners(const std::string& user);
sfs::Status drop_privileges(const ServiceUser& user);

}  // namespace sfsd
