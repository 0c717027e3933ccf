// config_fuzz: sfsd's settings parsers (sfsd/src/config.h) on arbitrary
// text: the config file, the backend URL and the command line. (The user
// database parser is login_fuzz's.)
//
// Properties, per input:
//   1. parse_config_text either applies every line or nothing: on an error
//      the Config is unchanged, and the error names the file and a line.
//   2. A backend URL that parses has a host, an absolute path and ports.
//   3. The input split into lines is a command line that parses or fails
//      with a message; a parsed one validates or fails with a message.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "config.h"

namespace {

bool same(const sfsd::Config& a, const sfsd::Config& b) {
  // The fields a parse may set; enough to see a half-applied file.
  return a.listen_address == b.listen_address && a.port == b.port && a.hostname == b.hostname &&
         a.server_key == b.server_key && a.users == b.users && a.backend == b.backend &&
         a.lease == b.lease && a.threads == b.threads && a.max_connections == b.max_connections &&
         a.allow_anonymous == b.allow_anonymous && a.log_level == b.log_level;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);

  // 1.
  sfsd::Config cfg;
  cfg.port = 4711;
  const sfsd::Config before = cfg;
  const sfs::Status st = sfsd::parse_config_text(text, "fuzz.conf", cfg);
  if (!st) {
    if (!same(cfg, before) || st.error().rfind("fuzz.conf:", 0) != 0) std::abort();
  } else {
    if (cfg.config_file != "fuzz.conf") std::abort();
    const sfs::Status v = sfsd::validate(cfg);
    if (!v && v.error().empty()) std::abort();
  }

  // 2.
  if (auto url = sfsd::parse_backend_url(text); url.ok()) {
    const sfsd::BackendUrl& u = url.value();
    if (u.host.empty() || u.path.empty() || u.path[0] != '/' || u.mount_port == 0 || u.nfs_port == 0)
      std::abort();
  } else if (url.error().empty()) {
    std::abort();
  }

  // 3. "--config" would read a file named by the input: the harness does
  // no file I/O, so that flag is left out.
  std::vector<std::string> args;
  for (std::size_t p = 0; p <= text.size();) {
    std::size_t nl = text.find('\n', p);
    if (nl == std::string_view::npos) nl = text.size();
    std::string a(text.substr(p, nl - p));
    if (a != "--config") args.push_back(std::move(a));
    p = nl + 1;
  }
  if (auto inv = sfsd::parse_command_line(args); inv.ok()) {
    (void)sfsd::validate(inv.value().config);
  } else if (inv.error().empty()) {
    std::abort();
  }
  return 0;
}
