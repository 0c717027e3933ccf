// key_change.h: a logged-in user replacing their own public key (as SFS's
// `sfskey update`), and the file of changed keys a server keeps beside the
// administrator's user database (docs/protocol.md, "Key changes";
// docs/security.md, "Key lifecycle").
//
// Contract
//   - The client, logged in as NAME (the call carries that login's auth
//     number), sends a KeyChangeRequest: NAME, the new public key and a
//     signature BY THE NEW KEY over
//         "sfs key change v1" || session id (64) || u8 len || NAME || 32 new key
//     proving that whoever asks holds the new key's private half, for this
//     session only (a request seen on one connection is worthless on
//     another). The old key is proven by the login itself.
//   - verify_key_change_request decodes and checks that signature; pure,
//     any thread (the server runs it on the connection's color).
//   - KeyChanges is the file of changed keys: one line per change,
//         NAME ADMINKEY NEWKEY
//     ADMINKEY being the key the administrator's database lists for NAME
//     (so a user with two keys changes one of them, and an administrator
//     who gives a user a new key in the database makes the user's earlier
//     change void). apply() rewrites a UserDb: each entry whose ADMINKEY is
//     still listed for NAME replaces that key; others are reported and
//     skipped (never an error that stops a server: the administrator's file
//     stays in charge). Not thread-safe; a server keeps it on one color.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "sfs/login.h"

namespace sfs {

inline constexpr std::uint8_t kMsgKeyChangeRequest = 4;
inline constexpr std::uint8_t kMsgKeyChangeReply = 5;

struct KeyChangeRequest {
  std::string user;
  UserPublicKey new_key;
  Signature signature{};
};

// Client side: the request for `user`, signed by `new_key`.
Bytes encode_key_change_request(const UserKey& new_key, std::string_view user, const SessionId& session);
Result<KeyChangeRequest> decode_key_change_request(ByteSpan message);
// Decodes and checks the proof of possession; the error says why not.
Result<KeyChangeRequest> verify_key_change_request(const SessionId& session, ByteSpan message);

struct KeyChangeReply {
  bool changed = false;
  std::string reason;  // why not (empty when changed)
};
Bytes encode_key_change_reply(const KeyChangeReply& reply);
Result<KeyChangeReply> decode_key_change_reply(ByteSpan message);

// One change, as the server's persistence hook sees it.
struct KeyChange {
  std::string user;
  UserPublicKey admin_key;  // the administrator's line for this user
  UserPublicKey old_key;    // the key the user logged in with
  UserPublicKey new_key;
};

class KeyChanges {
 public:
  // Parses the file's text; bad lines go to diagnostics and are skipped.
  static KeyChanges parse(std::string_view text, std::vector<DbDiagnostic>* diagnostics);
  // Reads path under secret_file.h's rules (owners: as UserDb::load). A
  // missing file is no changes.
  static Result<KeyChanges> load(const std::string& path, std::vector<DbDiagnostic>* diagnostics,
                                 std::vector<uid_t> owners = {});
  // Writes every entry to path atomically (temporary file, fsync, rename),
  // created 0600.
  Status save(const std::string& path) const;
  std::string format() const;

  // Records a change (a change back to the administrator's key removes the
  // entry).
  void set(const KeyChange& c);
  // `db` with every applicable entry applied; what was skipped, and why,
  // goes to `notes` (one line each).
  UserDb apply(const UserDb& db, std::vector<std::string>* notes) const;
  std::size_t size() const { return entries_.size(); }

 private:
  // (name, administrator's key) -> new key
  std::map<std::pair<std::string, Key32>, UserPublicKey> entries_;
};

}  // namespace sfs
