// update.cc: `sfskey update`, a user replacing their own key on a server
// (SFS_CHANGEKEY; docs/protocol.md, "Key changes"). Linked into sfskey when
// the secure connection library (sfsconn) and the agent's helpers are
// built; see sfsclient/agent/CMakeLists.txt.
//
//   sfskey update --server @HOST%PORT,HOSTID [--key OLD_FILE] --new NEW_FILE [--user NAME]
//
// Connects (the handshake checks the HOSTID), logs in as NAME (default:
// the login name) with the old key (default ~/.sfs/identity), asks the
// server to replace it with the new key (signed by the new key), and
// prints one line. Exit 0 when changed, 1 when refused or unreachable.
#include <pwd.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <future>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "asmp/runtime.h"
#include "sfs/agent_control.h"
#include "sfs/secure_rpc.h"

int sfskey_update(const std::vector<std::string_view>& args) {
  std::string server, old_file, new_file, user;
  for (std::size_t i = 0; i < args.size(); ++i) {
    std::string* slot = args[i] == "--server" ? &server
                        : args[i] == "--key"  ? &old_file
                        : args[i] == "--new"  ? &new_file
                        : args[i] == "--user" ? &user
                                              : nullptr;
    if (!slot || i + 1 == args.size()) {
      std::fprintf(stderr, "sfskey: update: %s\nusage: sfskey update --server @HOST%%PORT,HOSTID "
                           "[--key OLD_FILE] --new NEW_FILE [--user NAME]\n",
                   slot ? (std::string(args[i]) + " needs a value").c_str()
                        : ("unknown argument \"" + std::string(args[i]) + "\"").c_str());
      return 2;
    }
    *slot = std::string(args[++i]);
  }
  auto fail = [](const std::string& why) {
    std::fprintf(stderr, "sfskey: update: %s\n", why.c_str());
    return 1;
  };
  if (server.empty() || new_file.empty()) return fail("needs --server @HOST%PORT,HOSTID and --new NEW_FILE");
  auto name = sfs::parse_name(server);
  if (!name) return fail(name.error());
  if (old_file.empty()) {
    auto path = sfs::default_identity_path();
    if (!path) return fail(path.error());
    old_file = path.value();
  }
  if (user.empty()) {
    const passwd* pw = ::getpwuid(::getuid());
    if (!pw) return fail("cannot tell your login name; give --user NAME");
    user = pw->pw_name;
  }
  if (!sfs::valid_user_name(user)) return fail("\"" + user + "\" is not a valid SFS user name");
  auto old_key = sfs::read_own_user_key(old_file, ::getuid());
  if (!old_key) return fail(old_key.error());
  auto new_key = sfs::read_own_user_key(new_file, ::getuid());
  if (!new_key) return fail(new_key.error());

  asmp::Runtime rt(asmp::RuntimeOptions{.threads = 1});
  std::thread runner([&] { rt.run(); });
  std::promise<sfs::Status> done;
  sfs::SecureConnectOptions o;
  o.server = name.value();
  o.color = 1;
  o.log = [](const std::string&) {};
  const sfs::UserKey& ok = old_key.value();
  const sfs::UserKey& nk = new_key.value();
  sfs::secure_connect(o, asmp::Callback<void(sfs::Result<sfs::SecureSession>)>(
                             [&](sfs::Result<sfs::SecureSession> s) {
                               if (!s) return done.set_value(sfs::make_error(s.error()));
                               sfs::SecureSession session = s.value();
                               session.login(
                                   ok, user,
                                   asmp::Callback<void(sfs::Result<std::uint32_t>)>(
                                       [&, session](sfs::Result<std::uint32_t> auth) {
                                         if (!auth) return done.set_value(sfs::make_error(auth.error()));
                                         session.change_key(nk, user, auth.value(),
                                                            asmp::Callback<void(sfs::Status)>(
                                                                [&](sfs::Status st) { done.set_value(st); }, 2));
                                       },
                                       2));
                             },
                             2));
  auto fut = done.get_future();
  sfs::Status result = fut.wait_for(std::chrono::seconds(60)) == std::future_status::ready
                           ? fut.get()
                           : sfs::Status(sfs::make_error("no answer from " + server + " in 60 s"));
  rt.stop();
  runner.join();
  if (!result.ok()) return fail(result.error());
  std::printf("key of %s at %s replaced by %s\n", user.c_str(), server.c_str(),
              sfs::format_user_public_key(nk.public_key()).c_str());
  return 0;
}
