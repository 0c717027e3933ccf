// secure_server_keychange.cc: SFS_CHANGEKEY, a logged-in user replacing
// their own key (sfs/key_change.h; docs/protocol.md, "Key changes").
//
// As for logins, the costly part (the Ed25519 check of the new key's
// signature) runs on the connection's color, and counts as a failed login
// when it fails (max_failed_logins closes a connection that floods them);
// what needs the auth table and the user database runs on the shared
// color, where the change is saved (SecureServerOptions::save_key_change),
// the new database installed, and every connection's logins made with the
// old key moved to the new one, so that they stay valid.
#include "secure_server_conn.h"
#include "sfs/key_change.h"
#include "sfs/sfs_login.h"

namespace sfs::conn_detail {

namespace {

using Conn = SecureServer::Conn;

void reply_change(rpc::Call& call, bool changed, const std::string& reason) {
  Bytes out = encode_key_change_reply(KeyChangeReply{changed, reason});
  sfs_login_msg res{};
  res.sfs_login_msg_len = static_cast<u_int>(out.size());
  res.sfs_login_msg_val = reinterpret_cast<char*>(out.data());
  call.reply(&res);
}

// On the shared color: who is asking, may they, then save and apply.
std::string change_on_shared_color(Conn& sc, std::uint32_t number, const KeyChangeRequest& req) {
  auto& sh = *sc.shared;
  const AuthResult* who = sc.auth ? sc.auth->find(number) : nullptr;
  if (!who) return "auth number " + std::to_string(number) + " is not a login on this connection";
  if (who->host) return "a host login cannot change a key; log in as the user";
  if (who->user != req.user) return "logged in as \"" + who->user + "\", not \"" + req.user + "\"";
  std::shared_ptr<const UserDb> db = sh.users.load();
  const UserEntry* e = db ? db->find(who->key) : nullptr;
  if (!e || e->name != who->user) return "the key this login used is no longer in the user database";
  auto next = std::make_shared<UserDb>(*db);
  if (Status s = next->replace_key(who->key, req.new_key); !s) return s.error();
  const KeyChange change{who->user, e->admin_key, who->key, req.new_key};
  if (Status s = sh.opts.save_key_change(change); !s) {
    sh.log("key change of \"" + change.user + "\" not saved: " + s.error());
    return "the server could not save the change";
  }
  sh.opts.users = next;
  sh.users.store(next);
  for (auto& [id, weak] : sh.live)
    if (auto other = weak.lock(); other && other->auth) other->auth->rekey(change.old_key, change.new_key);
  sh.key_changes.fetch_add(1, std::memory_order_relaxed);
  sh.log("user \"" + change.user + "\" (connection from " + sc.peer + ") changed key " +
         format_user_public_key(change.old_key) + " to " + format_user_public_key(change.new_key));
  return "";
}

}  // namespace

void serve_change_key(const std::shared_ptr<Conn>& sc, rpc::Call c) {
  auto& sh = *sc->shared;
  std::uint32_t number = kAnonymousAuth;
  if (!auth_number_of(c, number)) return;
  if (!sh.opts.save_key_change) return reply_change(c, false, "key changes are turned off on this server");
  if (number == kAnonymousAuth)
    return reply_change(c, false, "not logged in: log in with the key to be replaced first");
  const auto* m = c.args<sfs_login_msg>();
  ByteSpan msg{reinterpret_cast<const std::uint8_t*>(m->sfs_login_msg_val), m->sfs_login_msg_len};
  auto req = verify_key_change_request(sc->session_id, msg);
  if (!req) {
    if (std::uint64_t dropped; sh.refusal_log.allow(&dropped))
      sh.log("key change on connection from " + sc->peer + " refused: " + req.error());
    std::shared_ptr<rpc::Connection> conn = c.connection();
    reply_change(c, false, req.error());
    if (++sc->failed_logins >= sh.opts.max_failed_logins && sh.opts.max_failed_logins > 0)
      conn->close_after_flush(std::chrono::seconds(2));
    return;
  }
  auto held = std::make_shared<rpc::Call>(std::move(c));
  auto r = std::make_shared<KeyChangeRequest>(std::move(req.value()));
  asmp::default_runtime().cpucb(asmp::Closure(
      [sc, held, r, number] {
        const std::string why = change_on_shared_color(*sc, number, *r);
        if (!why.empty()) {
          if (std::uint64_t dropped; sc->shared->refusal_log.allow(&dropped))
            sc->shared->log("key change of \"" + r->user + "\" on connection from " + sc->peer + " refused: " + why);
        }
        reply_change(*held, why.empty(), why);
      },
      sh.opts.shared_color));
}

}  // namespace sfs::conn_detail
