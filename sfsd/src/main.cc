// sfsd: the SFS file server. See `sfsd --help`, docs/sfsd.md and daemon.h.
#include <malloc.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <unistd.h>
#include <vector>

#include "config.h"
#include "daemon.h"
#include "handle_seal.h"
#include "privileges.h"

int main(int argc, char** argv) {
  // 1 MiB buffers (READ and WRITE data, records) come and go all the time:
  // keep them in the heap rather than mmap and unmap each (a fault per
  // page, ~270k faults per GiB; docs/benchmarks.md).
  ::mallopt(M_MMAP_THRESHOLD, 32 << 20);
  ::mallopt(M_TRIM_THRESHOLD, 256 << 20);
  std::vector<std::string> args(argv + 1, argv + argc);
  auto inv = sfsd::parse_command_line(args);
  if (!inv) {
    std::fprintf(stderr, "sfsd: %s\n", inv.error().c_str());
    return 2;
  }
  const sfsd::Invocation& in = inv.value();
  if (in.help) {
    std::fputs(sfsd::usage_text().c_str(), stdout);
    return 0;
  }
  if (in.rotate_handle_key) {
    if (in.config.handle_keys.empty()) {
      std::fprintf(stderr, "sfsd: --rotate-handle-key needs handle_keys (in --config or --handle-keys)\n");
      return 2;
    }
    auto owners = sfsd::trusted_owners(in.config.user);
    if (!owners) {
      std::fprintf(stderr, "sfsd: %s\n", owners.error().c_str());
      return 1;
    }
    auto id = sfsd::rotate_handle_keys(in.config.handle_keys, in.config.handle_key_grace, owners.value());
    if (!id) {
      std::fprintf(stderr, "sfsd: %s\n", id.error().c_str());
      return 1;
    }
    std::printf("new handle key %u now seals; older keys open handles for %lld s more; "
                "send sfsd SIGHUP to use it\n",
                static_cast<unsigned>(id.value()),
                static_cast<long long>(in.config.handle_key_grace.count()));
    return 0;
  }
  if (in.check) {
    std::string name;
    if (sfs::Status s = sfsd::check_config(in.config, &name); !s) {
      std::fprintf(stderr, "sfsd: %s\n", s.error().c_str());
      return 1;
    }
    std::printf("%s: configuration OK; this server is %s\n",
                in.config.config_file.empty() ? "sfsd" : in.config.config_file.c_str(), name.c_str());
    return 0;
  }
  if (!in.pid_file.empty()) {
    std::ofstream pf(in.pid_file);
    pf << getpid() << "\n";
  }
  sfsd::DaemonHooks hooks;
  hooks.on_ready = [](const std::string& name) {
    std::printf("%s\n", name.c_str());
    std::fflush(stdout);
  };
  const int rc = sfsd::run_daemon(in.config, hooks);
  if (!in.pid_file.empty()) ::unlink(in.pid_file.c_str());
  return rc;
}
