// revocation.h: server key revocation certificates, as SFS had them.
//
// A revocation certificate says "the server named @HOST%PORT,HOSTID must no
// longer be trusted", signed by that server's own Ed25519 key. It needs no
// authority: anyone can check it against the HOSTID alone, because the
// HOSTID is a hash of the location and both public keys the certificate
// carries. So certificates may come from anywhere (mail, a web page, a
// shared directory) and a forged or altered one revokes nothing.
//
// Contract
//   - The signature is Ed25519 by the server's key over
//         "sfs revoke v1" (13 bytes) || HOSTID (20 bytes)
//     (docs/protocol.md, "Revocation certificates").
//   - parse_revocation() accepts only a certificate whose keys hash, with
//     its location, to its HOSTID and whose signature verifies; anything
//     else is an error naming the file.
//   - find_revocation() scans a directory (a file per certificate, any
//     names) for one that revokes a HOSTID. Files it cannot use are
//     reported through `warn` and skipped; they cannot revoke anything.
//     Files are opened O_NOFOLLOW | O_NONBLOCK (no hang on a FIFO); owner
//     and mode do not matter, the signature does.
//   - Pure functions; any thread.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "sfs/keys.h"
#include "sfs/names.h"
#include "sfs/result.h"

namespace sfs {

struct Revocation {
  SelfCertName name;  // the name (and so HOSTID) revoked
  ServerPublicKey key;
  Signature signature{};
};

// Signed by `key` for its name at `location`.
Revocation make_revocation(const ServerKey& key, const Location& location);
std::string format_revocation(const Revocation& r);
// Parses and verifies; `what` names the text in errors.
Result<Revocation> parse_revocation(std::string_view text, std::string_view what);
// Reads one certificate file and verifies it.
Result<Revocation> read_revocation(const std::string& path);

// The path of a certificate in `dir` revoking `id`, or nullopt. An error
// only if dir itself cannot be read (a missing dir is no revocation).
Result<std::optional<std::string>> find_revocation(const std::string& dir, const HostId& id,
                                                   const std::function<void(const std::string&)>& warn);

}  // namespace sfs
