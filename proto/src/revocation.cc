// revocation.cc: see sfs/revocation.h; the format is in docs/protocol.md,
// "Revocation certificates".
#include "sfs/revocation.h"

#include <dirent.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include "sfs/lines.h"
#include "sfs/secret_file.h"

namespace sfs {

namespace {

constexpr std::string_view kHeader = "sfs-revocation v1";
constexpr std::string_view kTag = "sfs revoke v1";  // domain separation from logins, handshakes
constexpr std::size_t kMaxFileBytes = 4096;

Bytes signature_input(const HostId& id) {
  WireWriter w;
  w.bytes(as_bytes(kTag));
  w.bytes(id);
  return w.take();
}

}  // namespace

Revocation make_revocation(const ServerKey& key, const Location& location) {
  Revocation r;
  r.name = name_for(location, key.public_key());
  r.key = key.public_key();
  r.signature = key.sign(signature_input(r.name.hostid));
  return r;
}

std::string format_revocation(const Revocation& r) {
  std::string s(kHeader);
  s += "\n# Revokes " + format_name(r.name) + ": clients refuse to mount it.\n";
  s += "name " + format_name(r.name) + "\n";
  s += "x25519 " + base32_encode(r.key.x25519) + "\n";
  s += "ed25519 " + base32_encode(r.key.ed25519) + "\n";
  s += "signature " + base32_encode(r.signature) + "\n";
  return s;
}

Result<Revocation> parse_revocation(std::string_view text, std::string_view what) {
  const std::string where(what);
  if (text.size() > kMaxFileBytes) return make_error(where + ": too large to be a revocation certificate");
  bool header = false;
  std::optional<SelfCertName> name;
  std::optional<Key32> x, ed;
  std::optional<Signature> sig;
  LineCursor lines(text);
  std::string_view line;
  while (lines.next(&line)) {
    const std::string at = where + ":" + std::to_string(lines.number()) + ": ";
    if (line.empty() || line[0] == '#') continue;
    if (!header) {
      if (line != kHeader)
        return make_error(at + "not a revocation certificate (expected \"" + std::string(kHeader) + "\")");
      header = true;
      continue;
    }
    const std::size_t sp = line.find(' ');
    if (sp == std::string_view::npos) return make_error(at + "expected \"name value\"");
    const std::string_view field = line.substr(0, sp), value = line.substr(sp + 1);
    const auto once = [&](bool seen) { return seen ? make_error(at + std::string(field) + " repeated") : Status{}; };
    if (field == "name") {
      if (Status s = once(name.has_value()); !s) return make_error(s.error());
      auto n = parse_name(value);
      if (!n) return make_error(at + n.error());
      name = n.value();
    } else if (field == "x25519" || field == "ed25519") {
      auto& slot = field == "x25519" ? x : ed;
      if (Status s = once(slot.has_value()); !s) return make_error(s.error());
      auto raw = base32_decode(value);
      if (!raw || raw->size() != kKeyBytes) return make_error(at + std::string(field) + ": not a base32 key");
      slot.emplace();
      std::memcpy(slot->data(), raw->data(), kKeyBytes);
    } else if (field == "signature") {
      if (Status s = once(sig.has_value()); !s) return make_error(s.error());
      auto raw = base32_decode(value);
      if (!raw || raw->size() != kSignatureBytes) return make_error(at + "signature: not a base32 signature");
      sig.emplace();
      std::memcpy(sig->data(), raw->data(), kSignatureBytes);
    } else {
      return make_error(at + "unexpected field \"" + std::string(field) + "\"");
    }
  }
  if (!header) return make_error(where + ": empty, not a revocation certificate");
  if (!name || !x || !ed || !sig) return make_error(where + ": lacks name, x25519, ed25519 or signature");
  Revocation r{*name, ServerPublicKey{*x, *ed}, *sig};
  if (compute_hostid(r.name.location, r.key) != r.name.hostid)
    return make_error(where + ": its keys do not hash to the HOSTID of " + format_name(r.name) + " (forged)");
  if (!verify_signature(r.key.ed25519, signature_input(r.name.hostid), r.signature))
    return make_error(where + ": bad signature (not made by the key of " + format_name(r.name) + ")");
  return r;
}

Result<Revocation> read_revocation(const std::string& path) {
  // Self-authenticating: anyone may own or write the file.
  FileRules rules;
  rules.what = "revocation certificate";
  rules.secret = false;
  rules.check_writers = false;
  auto text = read_checked_file(path, kMaxFileBytes, rules);
  if (!text) return make_error(text.error());
  return parse_revocation(text.value(), path);
}

Result<std::optional<std::string>> find_revocation(const std::string& dir, const HostId& id,
                                                   const std::function<void(const std::string&)>& warn) {
  std::unique_ptr<DIR, int (*)(DIR*)> d(::opendir(dir.c_str()), ::closedir);
  if (!d) {
    if (errno == ENOENT) return std::optional<std::string>{};
    return make_error("cannot read the revocation directory " + dir + ": " + std::strerror(errno));
  }
  const std::string hostid = format_hostid(id);
  while (const dirent* e = ::readdir(d.get())) {
    const std::string entry = e->d_name;
    if (entry == "." || entry == ".." || entry[0] == '.') continue;
    const std::string path = dir + "/" + entry;
    auto r = read_revocation(path);
    if (!r) {
      if (warn) warn("ignoring " + path + ": " + r.error());
      continue;
    }
    if (r.value().name.hostid == id) return std::optional<std::string>(path);
  }
  return std::optional<std::string>{};
}

}  // namespace sfs
