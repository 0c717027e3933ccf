// rekey.h: the pieces of the in-band rekey with a fresh DH
// (docs/protocol.md 4.1) that are pure functions: the control messages and
// the key schedule. The state machine runs in SecureRecordFilter
// (secure_rpc.h), which owns the records.
//
// Contract
//   - A control record is a section 4 record sealed like any other, whose
//     plaintext is u8 kind || body: REKEY and REKEY_ACK carry a fresh
//     X25519 ephemeral public key (32 bytes), REKEY_DONE nothing.
//   - Keys: (chain', t) = HKDF(chain, DH(e_client, e_server)), then
//     key c2s' = BLAKE2b-256(key = t, "sfs c2s rekey v1" || e_c || e_s) and
//     s2c' likewise; chain' replaces chain. The first chain comes from the
//     handshake (SessionKeys::rekey_chain). A thief of the current keys and
//     chain who is not in the middle when the next rekey runs cannot follow
//     it: that needs one of the two fresh ephemeral secrets.
//   - Pure: no sockets, no clock; randomness only in make_ephemeral().
#pragma once

#include <cstdint>
#include <optional>

#include "sfs/aead.h"
#include "sfs/encoding.h"
#include "sfs/keys.h"
#include "sfs/noise.h"

namespace sfs {

enum class ControlKind : std::uint8_t { kRekey = 1, kRekeyAck = 2, kRekeyDone = 3 };
inline constexpr std::size_t kControlMaxPlaintext = 1 + 32;

struct ControlMessage {
  ControlKind kind = ControlKind::kRekeyDone;
  Key32 key{};  // REKEY, REKEY_ACK: the sender's new ephemeral public key
};

// Plaintext of a control record into out (at least kControlMaxPlaintext
// bytes); returns its length.
std::size_t encode_control(const ControlMessage& m, std::span<std::uint8_t> out);
// nullopt for an unknown kind or a wrong length.
std::optional<ControlMessage> decode_control(ByteSpan plaintext);

struct Ephemeral {
  Key32 secret{};
  Key32 public_key{};
  void wipe();
};
Ephemeral make_ephemeral();

struct RekeyKeys {
  noise::Hash chain{};
  AeadKey client_to_server{};
  AeadKey server_to_client{};
  void wipe();
};

// New keys from the chain and the two ephemerals; `mine` is this side's
// secret, `peer` the other side's public key. nullopt if the DH result is
// all zeros (a low-order key): the connection must close.
std::optional<RekeyKeys> derive_rekey(const noise::Hash& chain, const Key32& mine, const Key32& peer,
                                      const Key32& client_public, const Key32& server_public);

}  // namespace sfs
