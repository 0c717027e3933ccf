// rekey.cc: control messages and the rekey key schedule (sfs/rekey.h,
// docs/protocol.md 4.1).
#include "sfs/rekey.h"

#include <sodium.h>

#include <cstring>

namespace sfs {

namespace {

AeadKey direction_key(const noise::Hash& t, std::string_view tag, const Key32& c, const Key32& s) {
  AeadKey out;
  crypto_generichash_state st;
  crypto_generichash_init(&st, t.data(), t.size(), out.size());
  crypto_generichash_update(&st, reinterpret_cast<const unsigned char*>(tag.data()), tag.size());
  crypto_generichash_update(&st, c.data(), c.size());
  crypto_generichash_update(&st, s.data(), s.size());
  crypto_generichash_final(&st, out.data(), out.size());
  sodium_memzero(&st, sizeof st);
  return out;
}

}  // namespace

std::size_t encode_control(const ControlMessage& m, std::span<std::uint8_t> out) {
  out[0] = static_cast<std::uint8_t>(m.kind);
  if (m.kind == ControlKind::kRekeyDone) return 1;
  std::memcpy(out.data() + 1, m.key.data(), m.key.size());
  return 1 + m.key.size();
}

std::optional<ControlMessage> decode_control(ByteSpan p) {
  if (p.empty()) return std::nullopt;
  ControlMessage m;
  switch (p[0]) {
    case static_cast<std::uint8_t>(ControlKind::kRekey):
    case static_cast<std::uint8_t>(ControlKind::kRekeyAck):
      if (p.size() != 1 + m.key.size()) return std::nullopt;
      m.kind = static_cast<ControlKind>(p[0]);
      std::memcpy(m.key.data(), p.data() + 1, m.key.size());
      return m;
    case static_cast<std::uint8_t>(ControlKind::kRekeyDone):
      if (p.size() != 1) return std::nullopt;
      m.kind = ControlKind::kRekeyDone;
      return m;
    default:
      return std::nullopt;
  }
}

void Ephemeral::wipe() { sodium_memzero(secret.data(), secret.size()); }

Ephemeral make_ephemeral() {
  ensure_sodium();
  Ephemeral e;
  randombytes_buf(e.secret.data(), e.secret.size());
  crypto_scalarmult_base(e.public_key.data(), e.secret.data());
  return e;
}

void RekeyKeys::wipe() {
  sodium_memzero(chain.data(), chain.size());
  sodium_memzero(client_to_server.data(), client_to_server.size());
  sodium_memzero(server_to_client.data(), server_to_client.size());
}

std::optional<RekeyKeys> derive_rekey(const noise::Hash& chain, const Key32& mine, const Key32& peer,
                                      const Key32& client_public, const Key32& server_public) {
  noise::SharedSecret shared;
  if (!noise::dh(shared, mine, peer)) return std::nullopt;
  RekeyKeys k;
  noise::Hash t;
  noise::hkdf2(chain, shared, k.chain, t);
  sodium_memzero(shared.data(), shared.size());
  k.client_to_server = direction_key(t, "sfs c2s rekey v1", client_public, server_public);
  k.server_to_client = direction_key(t, "sfs s2c rekey v1", client_public, server_public);
  sodium_memzero(t.data(), t.size());
  return k;
}

}  // namespace sfs
