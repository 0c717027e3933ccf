// sfskey: create and inspect SFS key files.
//
//   sfskey gen --server -o FILE     new server key (X25519 + Ed25519)
//   sfskey gen --user -o FILE       new user key (Ed25519)
//   sfskey show FILE [--location HOST:PORT]
//       prints the public key; for a server key with --location, also the
//       HOSTID and the self-certifying name @HOST%PORT,HOSTID.
//
// Private key files are created mode 0600 and never overwritten.
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sfs/keys.h"
#include "sfs/names.h"

namespace {

constexpr const char* kUsage =
    "usage: sfskey gen --server -o FILE\n"
    "       sfskey gen --user -o FILE\n"
    "       sfskey show FILE [--location HOST:PORT]\n";

int usage_error(const std::string& why) {
  std::fprintf(stderr, "sfskey: %s\n%s", why.c_str(), kUsage);
  return 2;
}

int gen(const std::vector<std::string_view>& args) {
  std::optional<sfs::KeyKind> kind;
  std::string out;
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--server" || args[i] == "--user") {
      const auto k = args[i] == "--server" ? sfs::KeyKind::kServer : sfs::KeyKind::kUser;
      if (kind && *kind != k) return usage_error("give only one of --server and --user");
      kind = k;
    } else if (args[i] == "-o") {
      if (i + 1 == args.size()) return usage_error("-o needs a file name");
      out = std::string(args[++i]);
    } else {
      return usage_error("unknown argument \"" + std::string(args[i]) + "\" to gen");
    }
  }
  if (!kind) return usage_error("gen needs --server or --user");
  if (out.empty()) return usage_error("gen needs -o FILE");
  if (*kind == sfs::KeyKind::kServer) {
    const sfs::ServerKey key = sfs::ServerKey::generate();
    if (sfs::Status s = sfs::write_key_file(out, key); !s) {
      std::fprintf(stderr, "sfskey: %s\n", s.error().c_str());
      return 1;
    }
    std::printf("wrote server key to %s\npublic %s\n", out.c_str(),
                sfs::format_server_public_key(key.public_key()).c_str());
  } else {
    const sfs::UserKey key = sfs::UserKey::generate();
    if (sfs::Status s = sfs::write_key_file(out, key); !s) {
      std::fprintf(stderr, "sfskey: %s\n", s.error().c_str());
      return 1;
    }
    std::printf("wrote user key to %s\npublic %s\n", out.c_str(),
                sfs::format_user_public_key(key.public_key()).c_str());
  }
  return 0;
}

int show(const std::vector<std::string_view>& args) {
  std::string file;
  std::optional<std::string> location;
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--location") {
      if (i + 1 == args.size()) return usage_error("--location needs HOST:PORT");
      location = std::string(args[++i]);
    } else if (!args[i].empty() && args[i][0] == '-') {
      return usage_error("unknown option \"" + std::string(args[i]) + "\" to show");
    } else if (file.empty()) {
      file = std::string(args[i]);
    } else {
      return usage_error("show takes one FILE");
    }
  }
  if (file.empty()) return usage_error("show needs a FILE");
  auto kf = sfs::read_key_file(file);
  if (!kf) {
    std::fprintf(stderr, "sfskey: %s\n", kf.error().c_str());
    return 1;
  }
  if (kf.value().kind == sfs::KeyKind::kUser) {
    if (location) {
      std::fprintf(stderr, "sfskey: %s is a user key; --location applies to server keys only\n",
                   file.c_str());
      return 1;
    }
    std::printf("user key\npublic %s\n",
                sfs::format_user_public_key(kf.value().user->public_key()).c_str());
    return 0;
  }
  // Check --location before printing anything, so an error leaves no output.
  std::optional<sfs::Location> loc;
  if (location) {
    auto parsed = sfs::parse_location(*location);
    if (!parsed) {
      std::fprintf(stderr, "sfskey: %s\n", parsed.error().c_str());
      return 1;
    }
    loc = parsed.value();
  }
  const sfs::ServerPublicKey& pub = kf.value().server->public_key();
  std::printf("server key\npublic %s\n", sfs::format_server_public_key(pub).c_str());
  if (loc) {
    const sfs::SelfCertName name = sfs::name_for(*loc, pub);
    std::printf("hostid %s\nname %s\n", sfs::format_hostid(name.hostid).c_str(),
                sfs::format_name(name).c_str());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return usage_error("missing command");
  const std::string_view cmd = argv[1];
  std::vector<std::string_view> args(argv + 2, argv + argc);
  if (cmd == "gen") return gen(args);
  if (cmd == "show") return show(args);
  if (cmd == "-h" || cmd == "--help" || cmd == "help") {
    std::fputs(kUsage, stdout);
    return 0;
  }
  return usage_error("unknown command \"" + std::string(cmd) + "\"");
}
