// handshake.h: the SFS key exchange as pure message-level state machines.
//
// Contract
//   - The handshake is Noise_NX_25519_ChaChaPoly_BLAKE2b ([Noise] 7.4):
//         -> e                    (payload: the client's cipher offer)
//         <- e, ee, s, es         (payload: chosen cipher, server Ed25519
//                                  key, Ed25519 signature of the transcript)
//     with a prologue (handshake_prologue) that holds the fields SFS_CONNECT
//     carries in the clear beside message 1 and message 1's type and
//     version, so a change to any of them in transit fails the handshake.
//     ee gives forward secrecy; es means
//     only the holder of the server's X25519 private key can derive the
//     keys. The offer is hashed into h, which is the associated data of
//     every encrypted field of message 2, so an edited offer (downgrade)
//     makes the client's decryption of message 2 fail.
//   - The client checks that HOSTID(location, server X25519, server Ed25519)
//     equals the HOSTID in the name it was given, and refuses otherwise.
//   - Session id = the final handshake hash h (64 bytes), which covers every
//     byte of both messages. Record keys per direction are Noise's Split()
//     keys bound to h: key = BLAKE2b-256(key = split key, "sfs c2s v1" || h)
//     (or "sfs s2c v1"), so the negotiated cipher is bound into the keys.
//   - Framing and payload layout: docs/protocol.md, "Handshake". Every
//     message is length-checked; malformed input is an error, never a crash.
//   - Pure: bytes in, bytes out, no sockets, no clock, no global state. One
//     object per connection attempt, used under that connection's color.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <vector>

#include "sfs/aead.h"
#include "sfs/channel.h"
#include "sfs/encoding.h"
#include "sfs/keys.h"
#include "sfs/names.h"
#include "sfs/noise.h"
#include "sfs/result.h"

namespace sfs {

// 2: the prologue binds SFS_CONNECT's clear fields (1 had a constant one).
inline constexpr std::uint8_t kHandshakeVersion = 2;
inline constexpr std::uint8_t kMsgClientHello = 1;
inline constexpr std::uint8_t kMsgServerHello = 2;
inline constexpr std::uint8_t kMsgRefusal = 3;
inline constexpr std::size_t kHandshakeFrameHeader = 4;  // u32be body length
inline constexpr std::size_t kMaxHandshakeBody = 1024;
inline constexpr std::size_t kMaxCipherOffer = 8;
inline constexpr std::size_t kSessionIdBytes = noise::kHashLen;

using SessionId = std::array<std::uint8_t, kSessionIdBytes>;

// What a finished handshake yields on either side. Wipes its keys.
struct SessionKeys {
  AeadAlg alg = AeadAlg::kChaCha20Poly1305;
  AeadKey client_to_server{};
  AeadKey server_to_client{};
  SessionId session_id{};
  // Secret input of the first in-band rekey (rekey.h):
  // BLAKE2b-512(key = Noise ck after message 2, "sfs rekey chain v1" || h).
  noise::Hash rekey_chain{};

  SessionKeys() = default;
  SessionKeys(const SessionKeys&) = default;
  SessionKeys& operator=(const SessionKeys&) = default;
  ~SessionKeys();
};

enum class Role : std::uint8_t { kClient, kServer };

// The two record directions for `role`, with the implementation chosen by
// `impl` (aead.h).
SecureChannel make_channel(const SessionKeys& keys, Role role,
                           AeadImplChoice impl = AeadImplChoice::kAuto,
                           const ChannelConfig& config = {});

// Body length of a handshake frame from its 4 header bytes; refuses a body
// larger than kMaxHandshakeBody.
Result<std::size_t> handshake_body_size(ByteSpan header);

// What SFS_CONNECT sends in the clear beside handshake message 1
// (sfs_connect_arg): both sides hash exactly these values into the
// prologue, the client what it sent, the server what it received.
struct ConnectContext {
  std::uint32_t release = 0;
  std::string host;
  std::uint32_t port = 0;
  std::string hostid;
};
// The prologue's bytes (docs/protocol.md 3, "Prologue"): "sfs handshake v2" ||
// u8 type 1 || u8 version || u32 release || u32 len || host || u32 port ||
// u32 len || hostid.
Bytes handshake_prologue(const ConnectContext& clear);

std::vector<AeadAlg> default_cipher_offer();  // ChaCha20-Poly1305, then AES-256-GCM
// Both, the faster on this CPU first (faster_aead()): what clients offer.
std::vector<AeadAlg> measured_cipher_offer();

struct ClientHandshakeConfig {
  SelfCertName server;                           // the name the user gave
  std::vector<AeadAlg> offer = default_cipher_offer();  // preference order
};

struct ClientResult {
  SessionKeys keys;
  ServerPublicKey server_key;
};

class ClientHandshake {
 public:
  explicit ClientHandshake(ClientHandshakeConfig config);
  // For test vectors only: a fixed ephemeral secret instead of a random one.
  ClientHandshake(ClientHandshakeConfig config, const Key32& ephemeral_secret);
  ~ClientHandshake();
  ClientHandshake(const ClientHandshake&) = delete;
  ClientHandshake& operator=(const ClientHandshake&) = delete;

  // Message 1, framed (header included). Call once. `clear`: the fields
  // that will travel beside it (secure_connect fills them in).
  Result<Bytes> start(const ConnectContext& clear = {});
  // Consumes message 2, framed. On success the handshake is complete. Any
  // failure is final.
  Result<ClientResult> finish(ByteSpan message2);

 private:
  enum class Stage : std::uint8_t { kInit, kSent, kDone, kFailed };
  Error fail(std::string why);

  ClientHandshakeConfig config_;
  Stage stage_ = Stage::kInit;
  noise::SymmetricState ss_;
  Key32 e_secret_{};
  Key32 e_public_{};
};

struct ServerHandshakeConfig {
  // Ciphers this server accepts; it picks the client's most preferred one
  // that is in this list.
  std::vector<AeadAlg> accept = default_cipher_offer();
};

struct ServerResult {
  // Frame to send: message 2 on success, a refusal on some failures (may
  // be empty: then just close).
  Bytes reply;
  std::optional<SessionKeys> keys;  // set iff the handshake succeeded
  std::string error;                // set iff it failed, for the log
};

class ServerHandshake {
 public:
  // `key` must outlive this object.
  ServerHandshake(const ServerKeyOps& key, ServerHandshakeConfig config = {});
  ServerHandshake(const ServerKeyOps& key, ServerHandshakeConfig config,
                  const Key32& ephemeral_secret);  // test vectors only
  ~ServerHandshake();
  ServerHandshake(const ServerHandshake&) = delete;
  ServerHandshake& operator=(const ServerHandshake&) = delete;

  // Consumes message 1 (framed) and produces the reply. Call once. `clear`:
  // the fields received beside it, which the client hashed too.
  ServerResult respond(ByteSpan message1, const ConnectContext& clear = {});

 private:
  const ServerKeyOps& key_;
  ServerHandshakeConfig config_;
  bool used_ = false;
  Key32 e_secret_{};
};

}  // namespace sfs
