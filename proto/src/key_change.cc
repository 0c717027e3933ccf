// key_change.cc: key change messages and the file of changed keys (see
// sfs/key_change.h and docs/protocol.md, "Key changes").
#include "sfs/key_change.h"

#include <cerrno>
#include <sys/stat.h>

#include "sfs/lines.h"
#include "sfs/secret_file.h"

namespace sfs {

namespace {

constexpr std::string_view kKeyChangeTag = "sfs key change v1";
constexpr std::size_t kMaxChangesBytes = 16u << 20;

Bytes key_change_signature_input(const SessionId& session, std::string_view user, const UserPublicKey& key) {
  WireWriter w;
  w.bytes(as_bytes(kKeyChangeTag));
  w.bytes(session);
  w.bytes8(as_bytes(user));
  w.bytes(key.ed25519);
  return w.take();
}

std::vector<std::string_view> fields(std::string_view line) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    std::size_t j = i;
    while (j < line.size() && line[j] != ' ' && line[j] != '\t') ++j;
    if (j > i) out.push_back(line.substr(i, j - i));
    i = j;
  }
  return out;
}

}  // namespace

Bytes encode_key_change_request(const UserKey& new_key, std::string_view user, const SessionId& session) {
  const std::string_view name = user.substr(0, kMaxUserNameChars);
  WireWriter w;
  w.u8(kMsgKeyChangeRequest);
  w.u8(kLoginVersion);
  w.bytes8(as_bytes(name));
  w.bytes(new_key.public_key().ed25519);
  w.bytes(new_key.sign(key_change_signature_input(session, name, new_key.public_key())));
  return w.take();
}

Result<KeyChangeRequest> decode_key_change_request(ByteSpan message) {
  WireReader r(message);
  const std::uint8_t type = r.u8();
  const std::uint8_t version = r.u8();
  if (!r.ok() || type != kMsgKeyChangeRequest) return make_error("not a key change request");
  if (version != kLoginVersion)
    return make_error("key change request version " + std::to_string(version) + " is not supported");
  KeyChangeRequest req;
  ByteSpan name = r.bytes8();
  r.copy(req.new_key.ed25519);
  r.copy(req.signature);
  if (!r.done()) return make_error("key change request has the wrong length");
  req.user.assign(name.begin(), name.end());
  if (!valid_user_name(req.user)) return make_error("key change request has an invalid user name");
  return req;
}

Result<KeyChangeRequest> verify_key_change_request(const SessionId& session, ByteSpan message) {
  auto req = decode_key_change_request(message);
  if (!req) return req;
  const KeyChangeRequest& r = req.value();
  if (!verify_signature(r.new_key.ed25519, key_change_signature_input(session, r.user, r.new_key), r.signature))
    return make_error("bad signature (the request must be signed by the new key, for this session)");
  return req;
}

Bytes encode_key_change_reply(const KeyChangeReply& reply) {
  WireWriter w;
  w.u8(kMsgKeyChangeReply);
  w.u8(kLoginVersion);
  w.u8(reply.changed ? 0 : 1);
  w.bytes8(as_bytes(std::string_view(reply.reason).substr(0, 255)));
  return w.take();
}

Result<KeyChangeReply> decode_key_change_reply(ByteSpan message) {
  WireReader r(message);
  const std::uint8_t type = r.u8();
  const std::uint8_t version = r.u8();
  const std::uint8_t status = r.u8();
  ByteSpan reason = r.bytes8();
  if (!r.done() || type != kMsgKeyChangeReply || version != kLoginVersion || status > 1)
    return make_error("malformed key change reply");
  KeyChangeReply out;
  out.changed = status == 0;
  out.reason = printable_text(std::string_view(reinterpret_cast<const char*>(reason.data()), reason.size()));
  return out;
}

// ---- the file of changed keys ----

KeyChanges KeyChanges::parse(std::string_view text, std::vector<DbDiagnostic>* diagnostics) {
  KeyChanges out;
  LineCursor lines(text);
  std::string_view line;
  while (lines.next(&line)) {
    if (const std::size_t hash = line.find('#'); hash != std::string_view::npos) line = line.substr(0, hash);
    const auto f = fields(line);
    if (f.empty()) continue;
    auto admin = f.size() == 3 ? parse_user_public_key(f[1]) : Result<UserPublicKey>(make_error(""));
    auto next = f.size() == 3 ? parse_user_public_key(f[2]) : Result<UserPublicKey>(make_error(""));
    if (f.size() != 3 || !valid_user_name(f[0]) || !admin || !next) {
      if (diagnostics)
        diagnostics->push_back({lines.number(), "expected \"NAME ed25519:<administrator's key> ed25519:<new key>\""});
      continue;
    }
    out.entries_[{std::string(f[0]), admin.value().ed25519}] = next.value();
  }
  return out;
}

Result<KeyChanges> KeyChanges::load(const std::string& path, std::vector<DbDiagnostic>* diagnostics,
                                    std::vector<uid_t> owners) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0 && errno == ENOENT) return KeyChanges{};
  FileRules rules;
  rules.what = "key change file";
  rules.secret = false;  // public keys only; but nobody else may write it
  rules.owners = std::move(owners);
  auto text = read_checked_file(path, kMaxChangesBytes, rules);
  if (!text) return make_error(text.error());
  return parse(text.value(), diagnostics);
}

std::string KeyChanges::format() const {
  std::string out = "# Keys users changed themselves (sfskey update); written by sfsd. NAME ADMINKEY NEWKEY\n";
  for (const auto& [k, next] : entries_) {
    UserPublicKey admin;
    admin.ed25519 = k.second;
    out += k.first + " " + format_user_public_key(admin) + " " + format_user_public_key(next) + "\n";
  }
  return out;
}

Status KeyChanges::save(const std::string& path) const {
  return replace_secret_file(path, format(), "key change file");
}

void KeyChanges::set(const KeyChange& c) {
  const auto k = std::make_pair(c.user, c.admin_key.ed25519);
  if (c.new_key == c.admin_key) entries_.erase(k);
  else entries_[k] = c.new_key;
}

UserDb KeyChanges::apply(const UserDb& db, std::vector<std::string>* notes) const {
  UserDb out = db;
  for (const auto& [k, next] : entries_) {
    UserPublicKey admin;
    admin.ed25519 = k.second;
    const UserEntry* e = db.find(admin);
    if (!e || e->name != k.first) {
      if (notes)
        notes->push_back("key change of \"" + k.first + "\" ignored: the user database no longer lists " +
                         format_user_public_key(admin) + " for that user");
      continue;
    }
    if (Status s = out.replace_key(admin, next); !s) {
      if (notes) notes->push_back("key change of \"" + k.first + "\" refused: " + s.error());
    }
  }
  return out;
}

}  // namespace sfs
