// handshake.cc: Noise NX with SFS payloads (see sfs/handshake.h and
// docs/protocol.md, "Handshake").
#include "sfs/handshake.h"

#include <sodium.h>

#include <algorithm>
#include <cstring>

namespace sfs {

namespace {

// [Noise] 8: protocol name; [Noise] 6: the prologue both sides mix in first.
constexpr std::string_view kProtocolName = "Noise_NX_25519_ChaChaPoly_BLAKE2b";
constexpr std::string_view kPrologueLabel = "sfs handshake v2";
constexpr std::string_view kServerSignatureTag = "sfs server handshake v1";
constexpr std::string_view kClientToServerTag = "sfs c2s v1";
constexpr std::string_view kServerToClientTag = "sfs s2c v1";

// Message 2 payload: u8 cipher | ed25519 public (32) | signature (64).
constexpr std::size_t kServerPayloadBytes = 1 + kKeyBytes + kSignatureBytes;
constexpr std::size_t kMessage2Body =
    2 + noise::kDhLen + (noise::kDhLen + noise::kTagLen) + (kServerPayloadBytes + noise::kTagLen);

void start_noise(noise::SymmetricState& ss, const ConnectContext& clear) {
  noise::initialize_symmetric(ss, kProtocolName);
  noise::mix_hash(ss, handshake_prologue(clear));
}

Bytes frame(const Bytes& body) {
  Bytes out(kHandshakeFrameHeader + body.size());
  store_be32(out.data(), static_cast<std::uint32_t>(body.size()));
  std::memcpy(out.data() + kHandshakeFrameHeader, body.data(), body.size());
  return out;
}

// Splits a frame into its body; nullopt unless the header matches exactly.
std::optional<ByteSpan> unframe(ByteSpan message) {
  if (message.size() < kHandshakeFrameHeader) return std::nullopt;
  const std::uint32_t n = load_be32(message.data());
  if (n > kMaxHandshakeBody || message.size() != kHandshakeFrameHeader + n) return std::nullopt;
  return message.subspan(kHandshakeFrameHeader);
}

Bytes refusal(std::string_view reason) {
  WireWriter w;
  w.u8(kMsgRefusal);
  w.u8(kHandshakeVersion);
  w.bytes8(as_bytes(reason.substr(0, 200)));
  return frame(w.buffer());
}

// Record keys bound to the transcript: BLAKE2b-256(key = k, tag || h).
AeadKey bind_key(const AeadKey& split_key, std::string_view tag, const SessionId& h) {
  AeadKey out;
  crypto_generichash_state st;
  crypto_generichash_init(&st, split_key.data(), split_key.size(), out.size());
  crypto_generichash_update(&st, as_bytes(tag).data(), tag.size());
  crypto_generichash_update(&st, h.data(), h.size());
  crypto_generichash_final(&st, out.data(), out.size());
  sodium_memzero(&st, sizeof st);
  return out;
}

SessionKeys derive_session(const noise::SymmetricState& ss, AeadAlg alg) {
  SessionKeys keys;
  keys.alg = alg;
  std::memcpy(keys.session_id.data(), ss.h.data(), ss.h.size());
  AeadKey k1, k2;
  noise::split(ss, k1, k2);
  keys.client_to_server = bind_key(k1, kClientToServerTag, keys.session_id);
  keys.server_to_client = bind_key(k2, kServerToClientTag, keys.session_id);
  // The rekey chain: from ck (which the record keys came from only through
  // Split) and h, under a tag of its own, so it is independent of both
  // record keys.
  constexpr std::string_view kChainTag = "sfs rekey chain v1";
  crypto_generichash_state st;
  crypto_generichash_init(&st, ss.ck.data(), ss.ck.size(), keys.rekey_chain.size());
  crypto_generichash_update(&st, as_bytes(kChainTag).data(), kChainTag.size());
  crypto_generichash_update(&st, keys.session_id.data(), keys.session_id.size());
  crypto_generichash_final(&st, keys.rekey_chain.data(), keys.rekey_chain.size());
  sodium_memzero(&st, sizeof st);
  sodium_memzero(k1.data(), k1.size());
  sodium_memzero(k2.data(), k2.size());
  return keys;
}

// The server signs tag || h, with h taken after the es token of message 2.
std::array<std::uint8_t, kServerSignatureTag.size() + noise::kHashLen> server_signature_input(
    const noise::Hash& h) {
  std::array<std::uint8_t, kServerSignatureTag.size() + noise::kHashLen> m;
  std::memcpy(m.data(), kServerSignatureTag.data(), kServerSignatureTag.size());
  std::memcpy(m.data() + kServerSignatureTag.size(), h.data(), h.size());
  return m;
}

std::string offer_text(const std::vector<AeadAlg>& algs) {
  std::string s;
  for (AeadAlg a : algs) {
    if (!s.empty()) s += ", ";
    s += aead_name(a);
  }
  return s.empty() ? "nothing" : s;
}

void random_ephemeral(Key32& secret) {
  ensure_sodium();
  randombytes_buf(secret.data(), secret.size());
}

}  // namespace

SessionKeys::~SessionKeys() {
  sodium_memzero(client_to_server.data(), client_to_server.size());
  sodium_memzero(server_to_client.data(), server_to_client.size());
  sodium_memzero(rekey_chain.data(), rekey_chain.size());
}

Bytes handshake_prologue(const ConnectContext& clear) {
  // Fixed-size fields and 32-bit lengths: one byte string per context, so
  // no two contexts hash alike. Message 1's type and version are in here
  // because they are not otherwise hashed (Noise hashes tokens and payload).
  WireWriter w;
  w.bytes(as_bytes(kPrologueLabel));
  w.u8(kMsgClientHello);
  w.u8(kHandshakeVersion);
  w.u32(clear.release);
  w.u32(static_cast<std::uint32_t>(clear.host.size()));
  w.bytes(as_bytes(clear.host));
  w.u32(clear.port);
  w.u32(static_cast<std::uint32_t>(clear.hostid.size()));
  w.bytes(as_bytes(clear.hostid));
  return w.buffer();
}

std::vector<AeadAlg> default_cipher_offer() {
  return {AeadAlg::kChaCha20Poly1305, AeadAlg::kAes256Gcm};
}

std::vector<AeadAlg> measured_cipher_offer() {
  if (faster_aead() == AeadAlg::kAes256Gcm) return {AeadAlg::kAes256Gcm, AeadAlg::kChaCha20Poly1305};
  return default_cipher_offer();
}

SecureChannel make_channel(const SessionKeys& keys, Role role, AeadImplChoice impl,
                           const ChannelConfig& config) {
  const AeadImpl chosen = choose_aead_impl(keys.alg, impl);
  const bool client = role == Role::kClient;
  return SecureChannel{
      SealState(keys.alg, chosen, client ? keys.client_to_server : keys.server_to_client, config),
      OpenState(keys.alg, chosen, client ? keys.server_to_client : keys.client_to_server, config)};
}

Result<std::size_t> handshake_body_size(ByteSpan header) {
  if (header.size() < kHandshakeFrameHeader) return make_error("handshake frame header truncated");
  const std::uint32_t n = load_be32(header.data());
  if (n > kMaxHandshakeBody)
    return make_error("handshake message of " + std::to_string(n) + " bytes exceeds the " +
                      std::to_string(kMaxHandshakeBody) + "-byte limit");
  return std::size_t{n};
}

// ---- client ----

ClientHandshake::ClientHandshake(ClientHandshakeConfig config) : config_(std::move(config)) {
  random_ephemeral(e_secret_);
}

ClientHandshake::ClientHandshake(ClientHandshakeConfig config, const Key32& ephemeral_secret)
    : config_(std::move(config)), e_secret_(ephemeral_secret) {}

ClientHandshake::~ClientHandshake() {
  ss_.wipe();
  sodium_memzero(e_secret_.data(), e_secret_.size());
}

Error ClientHandshake::fail(std::string why) {
  stage_ = Stage::kFailed;
  ss_.wipe();
  sodium_memzero(e_secret_.data(), e_secret_.size());
  return make_error(std::move(why));
}

Result<Bytes> ClientHandshake::start(const ConnectContext& clear) {
  if (stage_ != Stage::kInit) return fail("handshake: start() called twice");
  if (config_.offer.empty() || config_.offer.size() > kMaxCipherOffer)
    return fail("handshake: the cipher offer must name 1 to 8 ciphers");
  ensure_sodium();
  start_noise(ss_, clear);
  crypto_scalarmult_base(e_public_.data(), e_secret_.data());

  WireWriter body;
  body.u8(kMsgClientHello);
  body.u8(kHandshakeVersion);
  // [Noise] 7.4 NX, message 1: "-> e". Token e: write e.public, MixHash.
  body.bytes(e_public_);
  noise::mix_hash(ss_, e_public_);
  // Payload (no key yet, so EncryptAndHash is MixHash of the plaintext).
  WireWriter payload;
  payload.u8(static_cast<std::uint8_t>(config_.offer.size()));
  for (AeadAlg a : config_.offer) payload.u8(static_cast<std::uint8_t>(a));
  if (!noise::encrypt_and_hash(ss_, payload.buffer(), body.buffer()))
    return fail("handshake: internal error");
  stage_ = Stage::kSent;
  return frame(body.buffer());
}

Result<ClientResult> ClientHandshake::finish(ByteSpan message2) {
  if (stage_ != Stage::kSent) return fail("handshake: finish() called out of order");
  const std::string server = format_name(config_.server);
  auto body = unframe(message2);
  if (!body) return fail("handshake with " + server + ": reply is not a well-formed frame");
  WireReader r(*body);
  const std::uint8_t type = r.u8();
  const std::uint8_t version = r.u8();
  if (type == kMsgRefusal && r.ok()) {
    ByteSpan why = r.bytes8();
    const std::string text = printable_text(std::string_view(reinterpret_cast<const char*>(why.data()), why.size()));
    return fail("handshake with " + server + ": server refused (unauthenticated reply): " + text);
  }
  if (!r.ok() || type != kMsgServerHello)
    return fail("handshake with " + server + ": reply is not a server hello");
  if (version != kHandshakeVersion)
    return fail("handshake with " + server + ": server speaks handshake version " +
                std::to_string(version) + ", we speak " + std::to_string(kHandshakeVersion));
  if (body->size() != kMessage2Body)
    return fail("handshake with " + server + ": server hello has the wrong length");

  // [Noise] 7.4 NX, message 2: "<- e, ee, s, es".
  ByteSpan re = r.bytes(noise::kDhLen);
  noise::mix_hash(ss_, re);  // token e
  noise::SharedSecret shared;
  if (!noise::dh(shared, e_secret_, re))  // token ee: DH(e, re)
    return fail("handshake with " + server + ": server sent an invalid ephemeral key");
  noise::mix_key(ss_, shared);
  Bytes rs;
  // token s: DecryptAndHash(s). Fails if any byte so far differs between
  // the two sides, including our cipher offer (downgrade attempt).
  if (!noise::decrypt_and_hash(ss_, r.bytes(noise::kDhLen + noise::kTagLen), rs))
    return fail("handshake with " + server +
                ": server hello failed authentication (altered in transit, or our cipher "
                "offer was altered)");
  if (!noise::dh(shared, e_secret_, rs))  // token es: DH(e, rs)
    return fail("handshake with " + server + ": server sent an invalid static key");
  noise::mix_key(ss_, shared);
  sodium_memzero(shared.data(), shared.size());
  const noise::Hash signed_h = ss_.h;
  Bytes payload;
  if (!noise::decrypt_and_hash(ss_, r.bytes(kServerPayloadBytes + noise::kTagLen), payload))
    return fail("handshake with " + server +
                ": server hello failed authentication (the server does not hold the private "
                "key for the key it sent, or the message was altered)");
  if (!r.done() || payload.size() != kServerPayloadBytes)
    return fail("handshake with " + server + ": server hello has the wrong length");

  WireReader p(payload);
  const std::uint8_t cipher_id = p.u8();
  ServerPublicKey key;
  std::memcpy(key.x25519.data(), rs.data(), kKeyBytes);
  p.copy(key.ed25519);
  Signature sig;
  p.copy(sig);

  // The self-certifying check: the key must hash to the HOSTID we were given.
  const HostId got = compute_hostid(config_.server.location, key);
  if (!equal_ct(got, config_.server.hostid))
    return fail("server key does not match HOSTID in name " + server + ": the server at " +
                config_.server.location.host + ":" + std::to_string(config_.server.location.port) +
                " presented key " + format_server_public_key(key) + " (HOSTID " +
                format_hostid(got) +
                "). Refusing to connect: this is not the server that name certifies.");
  if (!verify_signature(key.ed25519, server_signature_input(signed_h), sig))
    return fail("handshake with " + server + ": server's transcript signature is invalid");
  const auto alg = aead_from_wire_id(cipher_id);
  if (!alg || std::find(config_.offer.begin(), config_.offer.end(), *alg) == config_.offer.end())
    return fail("handshake with " + server + ": server chose cipher id " +
                std::to_string(cipher_id) + ", which we did not offer");

  ClientResult out{derive_session(ss_, *alg), key};
  stage_ = Stage::kDone;
  ss_.wipe();
  sodium_memzero(e_secret_.data(), e_secret_.size());
  return out;
}

// ---- server ----

ServerHandshake::ServerHandshake(const ServerKeyOps& key, ServerHandshakeConfig config)
    : key_(key), config_(std::move(config)) {
  random_ephemeral(e_secret_);
}

ServerHandshake::ServerHandshake(const ServerKeyOps& key, ServerHandshakeConfig config,
                                 const Key32& ephemeral_secret)
    : key_(key), config_(std::move(config)), e_secret_(ephemeral_secret) {}

ServerHandshake::~ServerHandshake() { sodium_memzero(e_secret_.data(), e_secret_.size()); }

ServerResult ServerHandshake::respond(ByteSpan message1, const ConnectContext& clear) {
  ServerResult out;
  const auto fail = [&](std::string why, Bytes reply = {}) {
    sodium_memzero(e_secret_.data(), e_secret_.size());
    out.error = std::move(why);
    out.reply = std::move(reply);
    return std::move(out);
  };
  if (used_) return fail("handshake: respond() called twice");
  used_ = true;
  auto body = unframe(message1);
  if (!body) return fail("client hello is not a well-formed frame");
  WireReader r(*body);
  const std::uint8_t type = r.u8();
  const std::uint8_t version = r.u8();
  if (!r.ok() || type != kMsgClientHello) return fail("first message is not a client hello");
  if (version != kHandshakeVersion)
    return fail("client speaks handshake version " + std::to_string(version),
                refusal("unsupported handshake version; this server speaks version " +
                        std::to_string(kHandshakeVersion)));

  noise::SymmetricState ss;
  // Type and version were checked equal to ours, so the prologue's copy of
  // them is what the client sent.
  start_noise(ss, clear);
  // [Noise] 7.4 NX, message 1: "-> e".
  ByteSpan re = r.bytes(noise::kDhLen);
  if (!r.ok()) return fail("client hello truncated");
  noise::mix_hash(ss, re);
  const ByteSpan payload = r.bytes(r.remaining());
  noise::mix_hash(ss, payload);  // EncryptAndHash with no key yet

  WireReader p(payload);
  const std::uint8_t n = p.u8();
  ByteSpan ids = p.bytes(n);
  if (!p.done() || n == 0 || n > kMaxCipherOffer) {
    ss.wipe();
    return fail("client hello has a malformed cipher offer");
  }
  std::vector<AeadAlg> offered;
  for (std::uint8_t id : ids)
    if (auto a = aead_from_wire_id(id)) offered.push_back(*a);  // unknown ids: ignored
  std::optional<AeadAlg> chosen;
  for (AeadAlg a : offered) {
    if (std::find(config_.accept.begin(), config_.accept.end(), a) != config_.accept.end()) {
      chosen = a;
      break;
    }
  }
  if (!chosen) {
    ss.wipe();
    return fail("no common cipher: client offered " + offer_text(offered) +
                "; this server accepts " + offer_text(config_.accept),
                refusal("no common cipher; server accepts " + offer_text(config_.accept)));
  }

  // [Noise] 7.4 NX, message 2: "<- e, ee, s, es".
  WireWriter w;
  w.u8(kMsgServerHello);
  w.u8(kHandshakeVersion);
  Key32 e_public;
  crypto_scalarmult_base(e_public.data(), e_secret_.data());
  w.bytes(e_public);  // token e
  noise::mix_hash(ss, e_public);
  noise::SharedSecret shared;
  if (!noise::dh(shared, e_secret_, re)) {  // token ee: DH(e, re)
    ss.wipe();
    return fail("client sent an invalid ephemeral key");
  }
  noise::mix_key(ss, shared);
  bool ok = noise::encrypt_and_hash(ss, key_.public_key().x25519, w.buffer());  // token s
  ok = ok && key_.dh(shared, re);                                                // token es
  noise::mix_key(ss, shared);
  sodium_memzero(shared.data(), shared.size());
  sodium_memzero(e_secret_.data(), e_secret_.size());

  WireWriter sp;
  sp.u8(static_cast<std::uint8_t>(*chosen));
  sp.bytes(key_.public_key().ed25519);
  sp.bytes(key_.sign(server_signature_input(ss.h)));
  ok = ok && noise::encrypt_and_hash(ss, sp.buffer(), w.buffer());
  if (!ok) {
    ss.wipe();
    return fail("handshake: internal error");
  }
  out.keys = derive_session(ss, *chosen);
  ss.wipe();
  out.reply = frame(w.buffer());
  return out;
}

}  // namespace sfs
