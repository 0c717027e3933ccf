// login.h: user login over an established secure channel, and the user
// database that maps keys to local identities.
//
// Contract
//   - The client sends a LoginRequest: the user's Ed25519 public key, user
//     name, a sequence number, and an Ed25519 signature over
//         "sfs login v1" || session id (64) || u64be seqno || u8 len || name
//     (docs/protocol.md, "Login"). The session id binds the signature to
//     this connection (and so to this server's key and these session keys).
//   - The server checks, in order: well-formed; key in the user database;
//     signature; name matches the database; sequence number fresh for this
//     session (ReplayWindow, checked only after the signature so forgeries
//     cannot use up numbers). Then it assigns an auth number (1, 2, ...)
//     that later file RPCs carry. Auth number 0 is the anonymous user.
//   - The user database is a text file, one user per line:
//         ed25519:<base32 key> <name> <uid> <gid> [<gid>,<gid>,...]
//     '#' starts a comment. A malformed line is reported with its line
//     number and skipped; the rest still load. A key listed on two lines is
//     reported and neither line is used.
//   - AuthTable is per connection and not thread-safe: the server keeps it
//     under color 0 with the uid map. UserDb is immutable once built and
//     may be shared (read-only) by any thread.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sfs/encoding.h"
#include "sfs/handshake.h"
#include "sfs/keys.h"
#include "sfs/replay_window.h"
#include "sfs/result.h"

namespace sfs {

inline constexpr std::uint8_t kMsgLoginRequest = 1;
inline constexpr std::uint8_t kMsgLoginReply = 2;
inline constexpr std::uint8_t kMsgHostLoginRequest = 3;
inline constexpr std::uint8_t kLoginVersion = 1;
inline constexpr std::size_t kMaxUserNameChars = 32;
inline constexpr std::size_t kMaxGroups = 16;  // AUTH_UNIX carries at most 16 [RFC 5531] App. A
inline constexpr std::uint32_t kNobody = 65534;
inline constexpr std::uint32_t kAnonymousAuth = 0;

struct LoginRequest {
  std::uint64_t seqno = 0;
  UserPublicKey key;
  std::string user;
  Signature signature{};
};

// Client side: a signed request for `user`, ready to send over the channel.
Bytes encode_login_request(const UserKey& key, std::string_view user, const SessionId& session,
                           std::uint64_t seqno);
Result<LoginRequest> decode_login_request(ByteSpan message);

// A trusted client host speaking for one of its local users (docs/protocol.md,
// "Host logins"): the host's key signs
//     "sfs host login v1" || session id || u64 seqno || u32 uid || u32 gid
//     || u8 n || n x u32 gid
// and the server accepts it only for a host its user database lists, and
// only for uids and gids in the ranges listed for that host.
struct HostLoginRequest {
  std::uint64_t seqno = 0;
  UserPublicKey host;
  std::uint32_t uid = kNobody;
  std::uint32_t gid = kNobody;
  std::vector<std::uint32_t> groups;  // at most kMaxGroups
  Signature signature{};
};

Bytes encode_host_login_request(const UserKey& host_key, std::uint32_t uid, std::uint32_t gid,
                                const std::vector<std::uint32_t>& groups, const SessionId& session,
                                std::uint64_t seqno);
Result<HostLoginRequest> decode_host_login_request(ByteSpan message);

struct LoginReply {
  bool accepted = false;
  std::uint32_t auth_number = kAnonymousAuth;
  std::string reason;  // why it was refused (empty if accepted)
};

Bytes encode_login_reply(const LoginReply& reply);
Result<LoginReply> decode_login_reply(ByteSpan message);

// True for [a-z_][a-z0-9_.-]{0,31}.
bool valid_user_name(std::string_view name);

struct UserEntry {
  UserPublicKey key;
  std::string name;
  std::uint32_t uid = kNobody;
  std::uint32_t gid = kNobody;
  std::vector<std::uint32_t> groups;
  // The key the administrator's line gives (differs from `key` after the
  // user changed theirs: key_change.h).
  UserPublicKey admin_key;
};

// A trusted client host: `host ed25519:KEY NAME UIDS GIDS` in the user
// database, UIDS and GIDS as LO-HI (or one id). uid 0 only if UIDS says so.
struct HostEntry {
  UserPublicKey key;
  std::string name;
  std::uint32_t uid_lo = 0, uid_hi = 0;
  std::uint32_t gid_lo = 0, gid_hi = 0;
  bool allows(std::uint32_t uid, std::uint32_t gid, const std::vector<std::uint32_t>& groups) const;
};

struct DbDiagnostic {
  std::size_t line = 0;
  std::string message;
};

class UserDb {
 public:
  // Parses the whole text; malformed lines go to `diagnostics` (if given)
  // and are skipped.
  static UserDb parse(std::string_view text, std::vector<DbDiagnostic>* diagnostics);
  // Reads path under the rules of secret_file.h (not secret, but refused if
  // anyone but `owners`, default root or the effective uid, could write it).
  static Result<UserDb> load(const std::string& path, std::vector<DbDiagnostic>* diagnostics,
                             std::vector<uid_t> owners = {});

  const UserEntry* find(const UserPublicKey& key) const;
  const HostEntry* find_host(const UserPublicKey& key) const;
  // The user entry whose administrator's key is `admin_key`.
  const UserEntry* find_by_admin_key(const UserPublicKey& admin_key) const;
  // A user's key changed (key_change.h): the entry of `current` now has
  // `next`. Refused if `current` is not a user's key, or `next` is already
  // listed (as a user or a host): keys are never shared.
  Status replace_key(const UserPublicKey& current, const UserPublicKey& next);
  std::size_t size() const { return by_key_.size(); }
  std::size_t hosts() const { return hosts_.size(); }

 private:
  std::map<Key32, UserEntry> by_key_;
  std::map<Key32, HostEntry> hosts_;
};

struct AuthResult {
  std::uint32_t auth_number = kAnonymousAuth;
  UserPublicKey key;  // the key that logged in (zero for the anonymous user)
  std::uint32_t uid = kNobody;
  std::uint32_t gid = kNobody;
  std::vector<std::uint32_t> groups;
  std::string user;
  bool host = false;  // a trusted host's login for one of its users
};

struct LoginOutcome {
  std::optional<AuthResult> auth;  // set iff accepted
  std::string refusal;             // why not, for the log and the reply
  Bytes reply;                     // encoded LoginReply to send back
};

// A login request checked against the user database and its signature
// (the costly, stateless part: an Ed25519 verification), ready for the
// per-connection part (AuthTable::admit).
struct VerifiedLogin {
  AuthResult who;
  std::uint64_t seqno = 0;
  std::string label;  // who, for messages
};
// Pure; any thread. The refusal says why, for the log and the reply.
Result<VerifiedLogin> verify_login(const UserDb& db, const SessionId& session, ByteSpan request);

class AuthTable {
 public:
  explicit AuthTable(const SessionId& session, std::size_t max_logins = 256);

  // verify_login, then admit.
  LoginOutcome login(const UserDb& db, ByteSpan request);
  // The per-connection checks of a verified login: still in db (which may
  // have changed since), fresh sequence number, under the cap; then an
  // auth number.
  LoginOutcome admit(VerifiedLogin v, const UserDb& db);
  // An encoded refusal (no state touched).
  static LoginOutcome refusal(std::string why);
  // The identity behind an auth number: anonymous for 0, nullptr if unknown,
  // logged out or revoked.
  const AuthResult* find(std::uint32_t auth_number) const;
  std::size_t size() const { return logins_.size(); }
  // Forgets an auth number (SFS_LOGOUT); later calls with it are refused.
  void logout(std::uint32_t auth_number);
  // After the user database changed: logins whose key is gone, or now
  // belongs to another name, are revoked (find() returns nullptr); the
  // others take the new uid, gid and groups. Returns how many were revoked.
  std::size_t revalidate(const UserDb& db);
  // A user changed their key from `from` to `to` (key_change.h): logins
  // made with `from` stay valid under `to`. Returns how many.
  std::size_t rekey(const UserPublicKey& from, const UserPublicKey& to);

  static const AuthResult& anonymous();

 private:
  LoginOutcome refuse(std::string why);

  SessionId session_;
  std::size_t max_logins_;
  ReplayWindow seen_;
  std::vector<AuthResult> logins_;  // auth number i + 1 at index i
  std::vector<bool> revoked_;       // logged out or revoked, same index
};

}  // namespace sfs
