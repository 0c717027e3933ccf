// login.cc: login messages, the user database and the auth table
// (see sfs/login.h and docs/protocol.md, "Login").
#include "sfs/login.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>

#include "sfs/secret_file.h"

namespace sfs {

namespace {

constexpr std::string_view kLoginTag = "sfs login v1";
constexpr std::string_view kHostLoginTag = "sfs host login v1";
constexpr std::size_t kMaxDbLineChars = 4096;
constexpr std::size_t kMaxDbBytes = 64u << 20;
constexpr std::uint32_t kMaxId = 4294967294u;  // (uint32_t)-1 means "no id" to POSIX calls

Bytes login_signature_input(const SessionId& session, std::uint64_t seqno, std::string_view user) {
  WireWriter w;
  w.bytes(as_bytes(kLoginTag));
  w.bytes(session);
  w.u64(seqno);
  w.bytes8(as_bytes(user));
  return w.take();
}

Bytes host_login_signature_input(const SessionId& session, std::uint64_t seqno, std::uint32_t uid,
                                 std::uint32_t gid, const std::vector<std::uint32_t>& groups) {
  WireWriter w;
  w.bytes(as_bytes(kHostLoginTag));
  w.bytes(session);
  w.u64(seqno);
  w.u32(uid);
  w.u32(gid);
  w.u8(static_cast<std::uint8_t>(groups.size()));
  for (std::uint32_t g : groups) w.u32(g);
  return w.take();
}

std::string printable(ByteSpan b) {
  return printable_text(std::string_view(reinterpret_cast<const char*>(b.data()), b.size()));
}

std::optional<std::uint32_t> parse_id(std::string_view s) {
  if (s.empty() || s.size() > 10) return std::nullopt;
  if (s.size() > 1 && s[0] == '0') return std::nullopt;
  std::uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<std::uint64_t>(c - '0');
  }
  if (v > kMaxId) return std::nullopt;
  return static_cast<std::uint32_t>(v);
}

std::vector<std::string_view> split_fields(std::string_view line) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    if (i == line.size()) break;
    std::size_t j = i;
    while (j < line.size() && line[j] != ' ' && line[j] != '\t') ++j;
    out.push_back(line.substr(i, j - i));
    i = j;
  }
  return out;
}

}  // namespace

// ---- messages ----

bool valid_user_name(std::string_view name) {
  if (name.empty() || name.size() > kMaxUserNameChars) return false;
  for (std::size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool lower = c >= 'a' && c <= 'z';
    const bool digit = c >= '0' && c <= '9';
    if (i == 0 ? !(lower || c == '_') : !(lower || digit || c == '_' || c == '.' || c == '-'))
      return false;
  }
  return true;
}

Bytes encode_login_request(const UserKey& key, std::string_view user, const SessionId& session,
                           std::uint64_t seqno) {
  const std::string_view name = user.substr(0, kMaxUserNameChars);
  WireWriter w;
  w.u8(kMsgLoginRequest);
  w.u8(kLoginVersion);
  w.u64(seqno);
  w.bytes(key.public_key().ed25519);
  w.bytes8(as_bytes(name));
  w.bytes(key.sign(login_signature_input(session, seqno, name)));
  return w.take();
}

Result<LoginRequest> decode_login_request(ByteSpan message) {
  WireReader r(message);
  const std::uint8_t type = r.u8();
  const std::uint8_t version = r.u8();
  if (!r.ok() || type != kMsgLoginRequest) return make_error("not a login request");
  if (version != kLoginVersion)
    return make_error("login request version " + std::to_string(version) + " is not supported");
  LoginRequest req;
  req.seqno = r.u64();
  r.copy(req.key.ed25519);
  ByteSpan name = r.bytes8();
  r.copy(req.signature);
  if (!r.done()) return make_error("login request has the wrong length");
  req.user.assign(name.begin(), name.end());
  if (!valid_user_name(req.user))
    return make_error("login request has an invalid user name \"" + printable(name) + "\"");
  return req;
}

Bytes encode_host_login_request(const UserKey& host_key, std::uint32_t uid, std::uint32_t gid,
                                const std::vector<std::uint32_t>& groups, const SessionId& session,
                                std::uint64_t seqno) {
  std::vector<std::uint32_t> g(groups.begin(), groups.begin() + std::min(groups.size(), kMaxGroups));
  WireWriter w;
  w.u8(kMsgHostLoginRequest);
  w.u8(kLoginVersion);
  w.u64(seqno);
  w.bytes(host_key.public_key().ed25519);
  w.u32(uid);
  w.u32(gid);
  w.u8(static_cast<std::uint8_t>(g.size()));
  for (std::uint32_t x : g) w.u32(x);
  w.bytes(host_key.sign(host_login_signature_input(session, seqno, uid, gid, g)));
  return w.take();
}

Result<HostLoginRequest> decode_host_login_request(ByteSpan message) {
  WireReader r(message);
  const std::uint8_t type = r.u8();
  const std::uint8_t version = r.u8();
  if (!r.ok() || type != kMsgHostLoginRequest) return make_error("not a host login request");
  if (version != kLoginVersion)
    return make_error("host login request version " + std::to_string(version) + " is not supported");
  HostLoginRequest req;
  req.seqno = r.u64();
  r.copy(req.host.ed25519);
  req.uid = r.u32();
  req.gid = r.u32();
  const std::uint8_t n = r.u8();
  if (n > kMaxGroups) return make_error("host login request has more than 16 groups");
  for (std::uint8_t i = 0; i < n; ++i) req.groups.push_back(r.u32());
  r.copy(req.signature);
  if (!r.done()) return make_error("host login request has the wrong length");
  return req;
}

bool HostEntry::allows(std::uint32_t uid, std::uint32_t gid, const std::vector<std::uint32_t>& groups) const {
  auto in_gids = [&](std::uint32_t g) { return g >= gid_lo && g <= gid_hi; };
  if (uid < uid_lo || uid > uid_hi || !in_gids(gid)) return false;
  for (std::uint32_t g : groups)
    if (!in_gids(g)) return false;
  return true;
}

Bytes encode_login_reply(const LoginReply& reply) {
  WireWriter w;
  w.u8(kMsgLoginReply);
  w.u8(kLoginVersion);
  w.u8(reply.accepted ? 0 : 1);
  w.u32(reply.accepted ? reply.auth_number : kAnonymousAuth);
  const std::string_view reason = std::string_view(reply.reason).substr(0, 255);
  w.bytes8(as_bytes(reason));
  return w.take();
}

Result<LoginReply> decode_login_reply(ByteSpan message) {
  WireReader r(message);
  const std::uint8_t type = r.u8();
  const std::uint8_t version = r.u8();
  const std::uint8_t status = r.u8();
  LoginReply reply;
  reply.auth_number = r.u32();
  ByteSpan reason = r.bytes8();
  if (!r.done() || type != kMsgLoginReply || version != kLoginVersion || status > 1)
    return make_error("malformed login reply");
  reply.accepted = status == 0;
  if (reply.accepted == (reply.auth_number == kAnonymousAuth))
    return make_error("malformed login reply: status and auth number disagree");
  reply.reason = printable(reason);
  return reply;
}

// ---- user database ----

UserDb UserDb::parse(std::string_view text, std::vector<DbDiagnostic>* diagnostics) {
  UserDb db;
  const auto report = [&](std::size_t line, std::string msg) {
    if (diagnostics) diagnostics->push_back({line, std::move(msg)});
  };
  // A key listed twice is an error, not "first wins": which identity the
  // administrator meant is unknown, so neither line grants anything.
  std::map<Key32, std::size_t> first_line;
  std::set<Key32> duplicated;
  const auto listed_before = [&](const Key32& k, std::size_t line) {
    auto [it, fresh] = first_line.emplace(k, line);
    if (fresh) return false;
    duplicated.insert(k);
    report(line, "key already listed on line " + std::to_string(it->second) +
                     "; neither line is used (list each key once)");
    return true;
  };
  std::size_t line_no = 0;
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) nl = text.size();
    std::string_view line = text.substr(pos, nl - pos);
    pos = nl + 1;
    ++line_no;
    if (line.size() > kMaxDbLineChars) {
      report(line_no, "line longer than 4096 characters");
      continue;
    }
    if (const std::size_t hash = line.find('#'); hash != std::string_view::npos)
      line = line.substr(0, hash);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    const auto f = split_fields(line);
    if (f.empty()) continue;
    if (f[0] == "host") {
      // host ed25519:KEY NAME UIDS GIDS
      auto range = [](std::string_view r, std::uint32_t& lo, std::uint32_t& hi) {
        const std::size_t dash = r.find('-');
        auto a = parse_id(r.substr(0, dash));
        auto b = dash == std::string_view::npos ? a : parse_id(r.substr(dash + 1));
        if (!a || !b || *a > *b) return false;
        lo = *a;
        hi = *b;
        return true;
      };
      HostEntry h;
      auto key = f.size() == 5 ? parse_user_public_key(f[1]) : Result<UserPublicKey>(make_error(""));
      if (f.size() != 5 || !key) {
        report(line_no, "expected \"host ed25519:<key> name uidlo-uidhi gidlo-gidhi\"");
        continue;
      }
      h.key = key.value();
      h.name = std::string(f[2]);
      if (!valid_user_name(h.name) || !range(f[3], h.uid_lo, h.uid_hi) || !range(f[4], h.gid_lo, h.gid_hi)) {
        report(line_no, "host line: a name, then uid and gid ranges like 1000-60000");
        continue;
      }
      if (listed_before(h.key.ed25519, line_no)) continue;
      db.hosts_.emplace(h.key.ed25519, std::move(h));
      continue;
    }
    if (f.size() < 4 || f.size() > 5) {
      report(line_no, "expected \"ed25519:<key> name uid gid [gid,gid,...]\", got " +
                          std::to_string(f.size()) + " fields");
      continue;
    }
    auto key = parse_user_public_key(f[0]);
    if (!key) {
      report(line_no, key.error());
      continue;
    }
    UserEntry e;
    e.key = key.value();
    e.name = std::string(f[1]);
    if (!valid_user_name(e.name)) {
      report(line_no, "invalid user name \"" + printable(as_bytes(f[1])) +
                          "\" (want [a-z_][a-z0-9_.-]{0,31})");
      continue;
    }
    const auto uid = parse_id(f[2]);
    const auto gid = parse_id(f[3]);
    if (!uid || !gid) {
      report(line_no, "uid and gid must be decimal numbers 0-4294967294");
      continue;
    }
    e.uid = *uid;
    e.gid = *gid;
    bool bad_groups = false;
    if (f.size() == 5) {
      std::string_view g = f[4];
      while (!bad_groups) {
        const std::size_t comma = g.find(',');
        const auto id = parse_id(g.substr(0, comma));
        if (!id || e.groups.size() == kMaxGroups) {
          bad_groups = true;
          break;
        }
        e.groups.push_back(*id);
        if (comma == std::string_view::npos) break;
        g = g.substr(comma + 1);
      }
    }
    if (bad_groups) {
      report(line_no, "supplementary groups must be up to 16 comma-separated decimal gids");
      continue;
    }
    e.admin_key = e.key;
    if (listed_before(e.key.ed25519, line_no)) continue;
    db.by_key_.emplace(e.key.ed25519, std::move(e));
  }
  for (const Key32& k : duplicated) {
    db.by_key_.erase(k);
    db.hosts_.erase(k);
  }
  return db;
}

Result<UserDb> UserDb::load(const std::string& path, std::vector<DbDiagnostic>* diagnostics,
                            std::vector<uid_t> owners) {
  // Not secret, but it says who may log in as whom: refused if anyone but
  // its owners could have written it (secret_file.h).
  FileRules rules;
  rules.what = "user database";
  rules.secret = false;
  rules.owners = std::move(owners);
  auto text = read_checked_file(path, kMaxDbBytes, rules);
  if (!text) return make_error(text.error());
  return parse(text.value(), diagnostics);
}

const UserEntry* UserDb::find(const UserPublicKey& key) const {
  auto it = by_key_.find(key.ed25519);
  return it == by_key_.end() ? nullptr : &it->second;
}

const HostEntry* UserDb::find_host(const UserPublicKey& key) const {
  auto it = hosts_.find(key.ed25519);
  return it == hosts_.end() ? nullptr : &it->second;
}

const UserEntry* UserDb::find_by_admin_key(const UserPublicKey& admin_key) const {
  for (const auto& [k, e] : by_key_)
    if (e.admin_key == admin_key) return &e;
  return nullptr;
}

Status UserDb::replace_key(const UserPublicKey& current, const UserPublicKey& next) {
  auto it = by_key_.find(current.ed25519);
  if (it == by_key_.end()) return make_error("key " + format_user_public_key(current) + " is not a user's key here");
  if (by_key_.count(next.ed25519) || hosts_.count(next.ed25519))
    return make_error("key " + format_user_public_key(next) + " is already in the user database");
  UserEntry e = std::move(it->second);
  by_key_.erase(it);
  e.key = next;
  by_key_.emplace(next.ed25519, std::move(e));
  return {};
}

// ---- auth table ----

AuthTable::AuthTable(const SessionId& session, std::size_t max_logins)
    : session_(session), max_logins_(max_logins) {}

const AuthResult& AuthTable::anonymous() {
  static const AuthResult nobody{kAnonymousAuth, {}, kNobody, kNobody, {}, ""};
  return nobody;
}

const AuthResult* AuthTable::find(std::uint32_t auth_number) const {
  if (auth_number == kAnonymousAuth) return &anonymous();
  if (auth_number > logins_.size() || revoked_[auth_number - 1]) return nullptr;
  return &logins_[auth_number - 1];
}

void AuthTable::logout(std::uint32_t auth_number) {
  if (auth_number != kAnonymousAuth && auth_number <= logins_.size())
    revoked_[auth_number - 1] = true;
}

static bool still_listed(const UserDb& db, AuthResult& a) {
  if (a.host) {
    const HostEntry* h = db.find_host(a.key);
    return h && h->allows(a.uid, a.gid, a.groups);
  }
  const UserEntry* e = db.find(a.key);
  if (!e || e->name != a.user) return false;
  a.uid = e->uid;
  a.gid = e->gid;
  a.groups = e->groups;
  return true;
}

std::size_t AuthTable::revalidate(const UserDb& db) {
  std::size_t revoked = 0;
  for (std::size_t i = 0; i < logins_.size(); ++i) {
    if (revoked_[i] || still_listed(db, logins_[i])) continue;
    revoked_[i] = true;
    ++revoked;
  }
  return revoked;
}

std::size_t AuthTable::rekey(const UserPublicKey& from, const UserPublicKey& to) {
  std::size_t n = 0;
  for (std::size_t i = 0; i < logins_.size(); ++i) {
    if (revoked_[i] || logins_[i].host || !(logins_[i].key == from)) continue;
    logins_[i].key = to;
    ++n;
  }
  return n;
}

LoginOutcome AuthTable::refuse(std::string why) { return refusal(std::move(why)); }

LoginOutcome AuthTable::refusal(std::string why) {
  LoginOutcome out;
  out.reply = encode_login_reply(LoginReply{false, kAnonymousAuth, why});
  out.refusal = std::move(why);
  return out;
}

namespace {

Result<VerifiedLogin> verify_user_login(const UserDb& db, const SessionId& session, ByteSpan request) {
  auto req = decode_login_request(request);
  if (!req) return make_error("login refused: " + req.error());
  const LoginRequest& r = req.value();
  const UserEntry* e = db.find(r.key);
  if (!e)
    return make_error("login refused for \"" + r.user + "\": unknown key " + format_user_public_key(r.key) +
                      " (not in the server's user database)");
  // The signature before the name check: only the key's holder learns
  // which name the database has for it.
  if (!verify_signature(r.key.ed25519, login_signature_input(session, r.seqno, r.user), r.signature))
    return make_error("login refused for \"" + r.user + "\": bad signature (not made by this key for this session)");
  if (e->name != r.user)
    return make_error("login refused: key is registered to user \"" + e->name + "\", not \"" + r.user + "\"");
  VerifiedLogin v;
  v.seqno = r.seqno;
  v.label = "\"" + r.user + "\"";
  v.who.key = e->key;
  v.who.uid = e->uid;
  v.who.gid = e->gid;
  v.who.groups = e->groups;
  v.who.user = e->name;
  return v;
}

Result<VerifiedLogin> verify_host_login(const UserDb& db, const SessionId& session, ByteSpan request) {
  auto req = decode_host_login_request(request);
  if (!req) return make_error("host login refused: " + req.error());
  const HostLoginRequest& r = req.value();
  const HostEntry* h = db.find_host(r.host);
  if (!h)
    return make_error("host login refused: unknown host key " + format_user_public_key(r.host) +
                      " (not a trusted host in the server's user database)");
  if (!verify_signature(r.host.ed25519, host_login_signature_input(session, r.seqno, r.uid, r.gid, r.groups),
                        r.signature))
    return make_error("host login refused: bad signature (not made by this host key for this session)");
  VerifiedLogin v;
  v.label = "uid " + std::to_string(r.uid) + " of host \"" + h->name + "\"";
  if (!h->allows(r.uid, r.gid, r.groups))
    return make_error("host login refused for " + v.label + ": outside the uids and gids the host may speak for");
  v.seqno = r.seqno;
  v.who.key = r.host;
  v.who.uid = r.uid;
  v.who.gid = r.gid;
  v.who.groups = r.groups;
  v.who.user = h->name + ":" + std::to_string(r.uid);
  v.who.host = true;
  return v;
}

}  // namespace

Result<VerifiedLogin> verify_login(const UserDb& db, const SessionId& session, ByteSpan request) {
  if (!request.empty() && request[0] == kMsgHostLoginRequest) return verify_host_login(db, session, request);
  return verify_user_login(db, session, request);
}

LoginOutcome AuthTable::admit(VerifiedLogin v, const UserDb& db) {
  // The database may have changed since the request was verified.
  if (!still_listed(db, v.who)) return refuse("login refused for " + v.label + ": no longer in the user database");
  switch (seen_.check_and_record(v.seqno)) {
    case ReplayWindow::Verdict::kFresh:
      break;
    case ReplayWindow::Verdict::kReplayed:
      return refuse("login refused for " + v.label + ": sequence number " + std::to_string(v.seqno) +
                    " already used in this session (replay)");
    case ReplayWindow::Verdict::kTooOld:
      return refuse("login refused for " + v.label + ": sequence number " + std::to_string(v.seqno) +
                    " is too old for this session (possible replay)");
  }
  if (logins_.size() >= max_logins_)
    return refuse("login refused for " + v.label + ": too many logins on this connection (" +
                  std::to_string(max_logins_) + ")");
  AuthResult a = std::move(v.who);
  a.auth_number = static_cast<std::uint32_t>(logins_.size() + 1);
  logins_.push_back(a);
  revoked_.push_back(false);
  LoginOutcome out;
  out.reply = encode_login_reply(LoginReply{true, a.auth_number, ""});
  out.auth = std::move(a);
  return out;
}

LoginOutcome AuthTable::login(const UserDb& db, ByteSpan request) {
  auto v = verify_login(db, session_, request);
  if (!v) return refuse(v.error());
  return admit(std::move(v.value()), db);
}

}  // namespace sfs
