// sfskey: create and inspect SFS key files, and manage the keys in your
// sfsagent.
//
//   sfskey gen --server -o FILE     new server key (X25519 + Ed25519)
//   sfskey gen --user [-o FILE]     new user key (Ed25519); default
//                                   ~/.sfs/identity (~/.sfs made 0700)
//   sfskey show FILE [--location HOST:PORT]
//       prints the public key; for a server key with --location, also the
//       HOSTID and the self-certifying name @HOST%PORT,HOSTID.
//   sfskey revoke --key FILE --location HOST:PORT -o OUT
//       writes a revocation certificate for the server key in FILE at
//       HOST:PORT (docs/sfsclient.md, "Revocation")
//   sfskey check-revocation FILE    verifies a certificate, prints its name
//   sfskey add [FILE] [--name NAME] [--server @NAME]
//       reads your key file (yours, mode 0600; default ~/.sfs/identity)
//       and hands the key to your running sfsagent (docs/agent.md)
//   sfskey list                     the keys your agent holds
//   sfskey delete [FILE|PUBKEY]     takes a key out of your agent
//   sfskey delete --all
//   sfskey update --server @NAME [--key OLD_FILE] --new NEW_FILE [--user NAME]
//       replaces your key on a server with a new one (sfskey/update.cc)
//
// Private key files are created mode 0600 and never overwritten. The agent
// is found at $SFS_AGENT_SOCK, else $XDG_RUNTIME_DIR/sfs-agent.sock, else
// ~/.sfs/agent.sock.
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "sfs/agent_control.h"
#include "sfs/agent_proto.h"
#include "sfs/keys.h"
#include "sfs/login.h"
#include "sfs/names.h"
#include "sfs/revocation.h"

namespace {

constexpr const char* kUsage =
    "usage: sfskey gen --server -o FILE\n"
    "       sfskey gen --user [-o FILE]          (default ~/.sfs/identity)\n"
    "       sfskey show FILE [--location HOST:PORT]\n"
    "       sfskey revoke --key FILE --location HOST:PORT -o OUT\n"
    "                                           revocation certificate for a server key\n"
    "       sfskey check-revocation FILE        verify one; print the name it revokes\n"
    "       sfskey add [FILE] [--name NAME] [--server @NAME]\n"
    "                                           give your key to your sfsagent\n"
    "                                           (default FILE ~/.sfs/identity)\n"
    "       sfskey list                         keys your sfsagent holds\n"
    "       sfskey delete [FILE|PUBKEY]         take a key out of your sfsagent\n"
    "       sfskey delete --all\n"
    "       sfskey update --server @HOST%PORT,HOSTID [--key OLD_FILE] --new NEW_FILE [--user NAME]\n"
    "                                           replace your key on a server (default OLD_FILE\n"
    "                                           ~/.sfs/identity, NAME your login name)\n"
    "The agent is found at $SFS_AGENT_SOCK, else $XDG_RUNTIME_DIR/sfs-agent.sock,\n"
    "else ~/.sfs/agent.sock.\n";

int usage_error(const std::string& why) {
  std::fprintf(stderr, "sfskey: %s\n%s", why.c_str(), kUsage);
  return 2;
}

int fail(const std::string& why) {
  std::fprintf(stderr, "sfskey: %s\n", why.c_str());
  return 1;
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
  if (out.empty() && *kind == sfs::KeyKind::kServer)
    return usage_error("gen --server needs -o FILE");
  if (out.empty()) {
    // A user's key goes where sfskey add and sfsagent look by default.
    auto path = sfs::default_identity_path();
    if (!path) return fail(path.error());
    out = path.value();
    const std::string dir = out.substr(0, out.rfind('/'));
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
      return fail("cannot create " + dir + ": " + std::strerror(errno));
  }
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

// ---- revocation -------------------------------------------------------------

int revoke(const std::vector<std::string_view>& args) {
  std::string key_file, location, out;
  for (std::size_t i = 0; i < args.size(); ++i) {
    std::string* slot = args[i] == "--key" ? &key_file
                        : args[i] == "--location" ? &location
                        : args[i] == "-o" ? &out
                                          : nullptr;
    if (!slot) return usage_error("unknown argument \"" + std::string(args[i]) + "\" to revoke");
    if (i + 1 == args.size()) return usage_error(std::string(args[i]) + " needs a value");
    *slot = std::string(args[++i]);
  }
  if (key_file.empty() || location.empty() || out.empty())
    return usage_error("revoke needs --key FILE, --location HOST:PORT and -o OUT");
  auto loc = sfs::parse_location(location);
  if (!loc) return fail(loc.error());
  auto kf = sfs::read_key_file(key_file);
  if (!kf) return fail(kf.error());
  if (!kf.value().server) return fail(key_file + " is a user key; revoke takes a server key");
  const sfs::Revocation r = sfs::make_revocation(*kf.value().server, loc.value());
  // Not secret, but never overwrite a file: write_secret_file's O_EXCL,
  // then readable by all (it is meant to be handed out).
  if (sfs::Status s = sfs::write_secret_file(out, sfs::format_revocation(r), "revocation certificate"); !s)
    return fail(s.error());
  ::chmod(out.c_str(), 0644);
  std::printf("wrote revocation certificate for %s to %s\n"
              "clients refuse this name once the file is in their revocation directory\n",
              sfs::format_name(r.name).c_str(), out.c_str());
  return 0;
}

int check_revocation(const std::vector<std::string_view>& args) {
  if (args.size() != 1) return usage_error("check-revocation takes one FILE");
  auto r = sfs::read_revocation(std::string(args[0]));
  if (!r) return fail(r.error());
  std::printf("valid revocation of %s\nhostid %s\n", sfs::format_name(r.value().name).c_str(),
              sfs::format_hostid(r.value().name.hostid).c_str());
  return 0;
}

// ---- the agent ----------------------------------------------------------------

std::string absolute(const std::string& path) {
  char buf[PATH_MAX];
  if (::realpath(path.c_str(), buf)) return buf;
  if (!path.empty() && path[0] == '/') return path;
  if (::getcwd(buf, sizeof buf)) return std::string(buf) + "/" + path;
  return path;
}

// The caller's agent, or a message saying how to start one.
sfs::Result<sfs::ControlClient> connect_agent() {
  auto path = sfs::default_control_path();
  if (!path) return sfs::make_error(path.error());
  return sfs::ControlClient::connect(path.value());
}

// Sends one request to the agent; prints a STATUS answer. Returns the exit
// code, and the KEYS answer (if any) in *keys.
int agent_call(sfs::ControlClient& client, const sfs::AgentMessage& request,
               sfs::KeyListReply* keys = nullptr) {
  auto answer = client.call(request);
  if (!answer) return fail(answer.error());
  if (auto* st = std::get_if<sfs::ControlStatus>(&answer.value())) {
    if (!st->ok) return fail(st->message);
    std::printf("%s\n", st->message.c_str());
    return 0;
  }
  if (auto* k = std::get_if<sfs::KeyListReply>(&answer.value()); k && keys) {
    *keys = std::move(*k);
    return 0;
  }
  return fail("the agent answered with an unexpected message");
}

int add(const std::vector<std::string_view>& args) {
  std::string file, name, server;
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--name" || args[i] == "--server") {
      if (i + 1 == args.size()) return usage_error(std::string(args[i]) + " needs a value");
      std::string& field = args[i] == "--name" ? name : server;
      field = std::string(args[++i]);
    } else if (!args[i].empty() && args[i][0] == '-') {
      return usage_error("unknown option \"" + std::string(args[i]) + "\" to add");
    } else if (file.empty()) {
      file = std::string(args[i]);
    } else {
      return usage_error("add takes one FILE");
    }
  }
  if (!name.empty() && !sfs::valid_user_name(name))
    return fail("\"" + name + "\" is not a valid SFS user name ([a-z_][a-z0-9_.-]{0,31})");
  if (!server.empty()) {
    auto parsed = sfs::parse_name(server);
    if (!parsed) return fail(parsed.error());
  }
  if (file.empty()) {
    auto path = sfs::default_identity_path();
    if (!path) return fail(path.error());
    file = path.value();
  }
  // The agent first: without one, the key file does not matter yet.
  auto client = connect_agent();
  if (!client) return fail(client.error());
  auto key = sfs::read_own_user_key(file, ::getuid());
  if (!key) return fail(key.error());
  sfs::AddKeyRequest req;
  req.seed = key.value().ed25519_seed();
  req.name = name;
  req.server = server;
  req.comment = absolute(file);
  return agent_call(client.value(), std::move(req));
}

int list(const std::vector<std::string_view>& args) {
  if (!args.empty()) return usage_error("list takes no arguments");
  auto client = connect_agent();
  if (!client) return fail(client.error());
  sfs::KeyListReply keys;
  if (int rc = agent_call(client.value(), sfs::ListKeysRequest{}, &keys); rc != 0) return rc;
  if (keys.keys.empty()) {
    std::printf("the agent holds no keys (add one: sfskey add)\n");
    return 0;
  }
  // One key per line: public key, user name, server ("*": any), comment.
  for (const sfs::AgentKeyInfo& k : keys.keys)
    std::printf("%s %s %s %s\n", k.public_key.c_str(), k.name.c_str(),
                k.server.empty() ? "*" : k.server.c_str(), k.comment.c_str());
  return 0;
}

int del(const std::vector<std::string_view>& args) {
  std::string what;
  bool all = false;
  for (std::string_view a : args) {
    if (a == "--all") {
      all = true;
    } else if (!a.empty() && a[0] == '-') {
      return usage_error("unknown option \"" + std::string(a) + "\" to delete");
    } else if (what.empty()) {
      what = std::string(a);
    } else {
      return usage_error("delete takes one FILE or PUBKEY");
    }
  }
  if (all && !what.empty()) return usage_error("give either --all or a key, not both");
  auto client = connect_agent();
  if (!client) return fail(client.error());
  if (all) return agent_call(client.value(), sfs::RemoveAllRequest{});
  sfs::DeleteKeyRequest req;
  if (what.rfind("ed25519:", 0) == 0) {
    if (auto k = sfs::parse_user_public_key(what); !k) return fail(k.error());
    req.what = what;
    return agent_call(client.value(), std::move(req));
  }
  if (what.empty()) {
    auto path = sfs::default_identity_path();
    if (!path) return fail(path.error());
    what = path.value();
  }
  // By the key in the file if we can still read it (the same key may have
  // been added from another path), else by the file name given at add.
  if (auto key = sfs::read_own_user_key(what, ::getuid()); key) {
    req.what = sfs::format_user_public_key(key.value().public_key());
  } else {
    req.by = sfs::DeleteKeyRequest::By::kComment;
    req.what = absolute(what);
  }
  return agent_call(client.value(), std::move(req));
}

}  // namespace

#ifdef SFSKEY_UPDATE
int sfskey_update(const std::vector<std::string_view>& args);  // sfskey/update.cc
#endif

int main(int argc, char** argv) {
  if (argc < 2) return usage_error("missing command");
  const std::string_view cmd = argv[1];
  std::vector<std::string_view> args(argv + 2, argv + argc);
  if (cmd == "gen") return gen(args);
  if (cmd == "show") return show(args);
  if (cmd == "revoke") return revoke(args);
  if (cmd == "check-revocation") return check_revocation(args);
  if (cmd == "add") return add(args);
  if (cmd == "list") return list(args);
  if (cmd == "delete") return del(args);
#ifdef SFSKEY_UPDATE
  if (cmd == "update") return sfskey_update(args);
#endif
  if (cmd == "-h" || cmd == "--help" || cmd == "help") {
    std::fputs(kUsage, stdout);
    return 0;
  }
  return usage_error("unknown command \"" + std::string(cmd) + "\"");
}
