// login_fuzz: the login request and reply decoders and the verifier
// (login.h), the key change request and reply decoders and their proof of
// possession (key_change.h), plus the text parsers that read hostile files
// and names (user database, key change file, key files, self-certifying
// names).
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "sfs/key_change.h"
#include "sfs/keys.h"
#include "sfs/login.h"
#include "sfs/names.h"

namespace {

const sfs::UserKey& alice() {
  static const sfs::UserKey k = [] {
    sfs::Key32 seed;
    for (int i = 0; i < 32; ++i) seed[i] = static_cast<std::uint8_t>(0x80 + i);
    return sfs::UserKey::from_seed(seed);
  }();
  return k;
}

const sfs::UserDb& db() {
  static const sfs::UserDb d = sfs::UserDb::parse(
      sfs::format_user_public_key(alice().public_key()) + " alice 1000 1000 27\n", nullptr);
  return d;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::uint8_t> input(data, size);
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  sfs::SessionId session;
  session.fill(7);

  sfs::AuthTable table(session);
  const sfs::LoginOutcome o = table.login(db(), input);
  if (o.auth.has_value() == !o.refusal.empty()) std::abort();
  // Anything accepted must really be alice's signature for this session, so
  // the same bytes cannot be accepted twice (replay window).
  if (o.auth && table.login(db(), input).auth) std::abort();
  (void)sfs::decode_login_reply(input);

  std::vector<sfs::DbDiagnostic> diags;
  const sfs::UserDb parsed = sfs::UserDb::parse(text, &diags);
  for (const auto& d : diags)
    if (d.line == 0 || d.message.empty()) std::abort();
  (void)parsed;

  // A user's key change: what verifies must decode, and the change file's
  // parser applied over the database.
  if (sfs::verify_key_change_request(session, input).ok() && !sfs::decode_key_change_request(input).ok())
    std::abort();
  (void)sfs::decode_key_change_reply(input);
  std::vector<sfs::DbDiagnostic> change_diags;
  const sfs::KeyChanges changes = sfs::KeyChanges::parse(text, &change_diags);
  for (const auto& d : change_diags)
    if (d.line == 0 || d.message.empty()) std::abort();
  std::vector<std::string> notes;
  (void)changes.apply(db(), &notes);

  auto name = sfs::parse_name(text);
  if (name.ok() && sfs::format_name(name.value()) != text) std::abort();  // canonical
  (void)sfs::parse_key_file(text, "fuzz");
  (void)sfs::parse_location(text);
  return 0;
}
