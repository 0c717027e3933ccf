// agent_proto.cc: encoding and strict decoding of agent messages
// (sfs/agent_proto.h; layouts in docs/agent.md, "Messages").
#include "sfs/agent_proto.h"

#include <sodium.h>

#include <algorithm>
#include <type_traits>

#include "sfs/login.h"
#include "sfs/names.h"

namespace sfs {

namespace {

// Strings cross a trust boundary (an agent's reason ends up in sfsclient's
// log, a comment in the user's terminal), so none may carry control
// characters. Bytes >= 0x80 are allowed: file names may be UTF-8.
bool no_control_chars(std::string_view s) {
  return std::none_of(s.begin(), s.end(), [](char ch) {
    const auto c = static_cast<unsigned char>(ch);
    return c < 0x20 || c == 0x7f;
  });
}

std::string_view clamp(std::string_view s, std::size_t max) { return s.substr(0, max); }

void put8(WireWriter& w, std::string_view s) { w.bytes8(as_bytes(clamp(s, 255))); }
void put16(WireWriter& w, ByteSpan b) {
  b = b.first(std::min<std::size_t>(b.size(), 0xffff));
  w.u16(static_cast<std::uint16_t>(b.size()));
  w.bytes(b);
}
void put16(WireWriter& w, std::string_view s) { put16(w, as_bytes(s)); }

// Reads a u16-length string of min..max bytes without control characters.
// Returns false (and fails the reader) otherwise; *why names the field.
bool get16(WireReader& r, std::string& out, std::size_t min, std::size_t max, const char* field,
           std::string* why) {
  const std::uint16_t n = r.u16();
  ByteSpan b = r.bytes(n);
  if (!r.ok()) return false;
  if (n < min || n > max) {
    *why = std::string(field) + " has " + std::to_string(n) + " bytes (allowed " +
           std::to_string(min) + ".." + std::to_string(max) + ")";
    r.fail();
    return false;
  }
  out.assign(b.begin(), b.end());
  if (!no_control_chars(out)) {
    *why = std::string(field) + " contains control characters";
    r.fail();
    return false;
  }
  return true;
}

// A u8-length user name: empty only if allow_empty, else valid_user_name.
bool get_name(WireReader& r, std::string& out, bool allow_empty, std::string* why) {
  ByteSpan b = r.bytes8();
  if (!r.ok()) return false;
  out.assign(b.begin(), b.end());
  if (out.empty() && allow_empty) return true;
  if (!valid_user_name(out)) {
    *why = "user name \"" + printable_text(out) + "\" is not valid ([a-z_][a-z0-9_.-]{0,31})";
    r.fail();
    return false;
  }
  return true;
}

struct Encoder {
  WireWriter& w;
  void operator()(const AgentHello& m) { w.u8(m.version); }
  void operator()(const AgentWelcome& m) {
    w.u8(m.version);
    w.u32(m.uid);
  }
  void operator()(const SignLoginRequest& m) {
    w.u32(m.id);
    put16(w, m.server);
    w.bytes(m.session);
    w.u64(m.seqno);
  }
  void operator()(const SignLoginReply& m) {
    w.u32(m.id);
    w.u8(m.ok ? 0 : 1);
    if (m.ok) {
      put8(w, m.user);
      put16(w, ByteSpan(m.request));
    } else {
      put16(w, clamp(m.reason, kMaxAgentReasonChars));
    }
  }
  void operator()(const AgentReplaced& m) { w.u32(m.new_pid); }
  void operator()(const AddKeyRequest& m) {
    w.bytes(m.seed);
    put8(w, m.name);
    put16(w, m.server);
    put16(w, m.comment);
  }
  void operator()(const ListKeysRequest&) {}
  void operator()(const DeleteKeyRequest& m) {
    w.u8(static_cast<std::uint8_t>(m.by));
    put16(w, m.what);
  }
  void operator()(const RemoveAllRequest&) {}
  void operator()(const ControlStatus& m) {
    w.u8(m.ok ? 0 : 1);
    put16(w, clamp(m.message, kMaxAgentReasonChars));
  }
  void operator()(const KeyListReply& m) {
    const std::size_t n = std::min(m.keys.size(), kMaxAgentKeys);
    w.u16(static_cast<std::uint16_t>(n));
    for (std::size_t i = 0; i < n; ++i) {
      const AgentKeyInfo& k = m.keys[i];
      put16(w, k.public_key);
      put8(w, k.name);
      put16(w, k.server);
      put16(w, k.comment);
    }
  }
};

// Decodes the fields after the type byte. On failure returns an Error whose
// message says what was wrong with which message.
Result<AgentMessage> decode_fields(AgentMsgType type, WireReader& r) {
  std::string why;
  auto bad = [&](const char* what) -> Result<AgentMessage> {
    std::string m = std::string("malformed ") + what + " message";
    if (!why.empty())
      m += ": " + why;
    else if (r.ok())
      m += ": bytes left over at the end";
    else
      m += ": too short";
    return make_error(m);
  };
  switch (type) {
    case AgentMsgType::kHello: {
      AgentHello m;
      m.version = r.u8();
      if (!r.done()) return bad("HELLO");
      return AgentMessage(m);
    }
    case AgentMsgType::kWelcome: {
      AgentWelcome m;
      m.version = r.u8();
      m.uid = r.u32();
      if (!r.done()) return bad("WELCOME");
      return AgentMessage(m);
    }
    case AgentMsgType::kSignLogin: {
      SignLoginRequest m;
      m.id = r.u32();
      get16(r, m.server, 1, kMaxNameChars, "server name", &why);
      r.copy(m.session);
      m.seqno = r.u64();
      if (!r.done()) return bad("SIGN_LOGIN");
      return AgentMessage(std::move(m));
    }
    case AgentMsgType::kSignReply: {
      SignLoginReply m;
      m.id = r.u32();
      const std::uint8_t status = r.u8();
      if (r.ok() && status > 1) {
        why = "status " + std::to_string(status) + " is not 0 or 1";
        return bad("SIGN_REPLY");
      }
      m.ok = status == 0;
      if (m.ok) {
        if (get_name(r, m.user, false, &why)) {
          const std::uint16_t n = r.u16();
          ByteSpan b = r.bytes(n);
          if (r.ok() && (n == 0 || n > kMaxAgentLoginRequestBytes)) {
            why = "login request has " + std::to_string(n) + " bytes (allowed 1.." +
                  std::to_string(kMaxAgentLoginRequestBytes) + ")";
            return bad("SIGN_REPLY");
          }
          m.request.assign(b.begin(), b.end());
        }
      } else {
        get16(r, m.reason, 0, kMaxAgentReasonChars, "reason", &why);
      }
      if (!r.done()) return bad("SIGN_REPLY");
      return AgentMessage(std::move(m));
    }
    case AgentMsgType::kReplaced: {
      AgentReplaced m;
      m.new_pid = r.u32();
      if (!r.done()) return bad("REPLACED");
      return AgentMessage(m);
    }
    case AgentMsgType::kAdd: {
      AddKeyRequest m;
      r.copy(m.seed);
      if (get_name(r, m.name, true, &why) &&
          get16(r, m.server, 0, kMaxNameChars, "server name", &why))
        get16(r, m.comment, 0, kMaxAgentCommentChars, "comment", &why);
      if (!r.done()) return bad("ADD");
      return AgentMessage(std::move(m));
    }
    case AgentMsgType::kList:
      if (!r.done()) return bad("LIST");
      return AgentMessage(ListKeysRequest{});
    case AgentMsgType::kDelete: {
      DeleteKeyRequest m;
      const std::uint8_t by = r.u8();
      if (r.ok() && by > 1) {
        why = "selector " + std::to_string(by) + " is not 0 (public key) or 1 (comment)";
        return bad("DELETE");
      }
      m.by = static_cast<DeleteKeyRequest::By>(by);
      get16(r, m.what, 1, kMaxAgentCommentChars, "key", &why);
      if (!r.done()) return bad("DELETE");
      return AgentMessage(std::move(m));
    }
    case AgentMsgType::kRemoveAll:
      if (!r.done()) return bad("REMOVE_ALL");
      return AgentMessage(RemoveAllRequest{});
    case AgentMsgType::kStatus: {
      ControlStatus m;
      const std::uint8_t status = r.u8();
      if (r.ok() && status > 1) {
        why = "status " + std::to_string(status) + " is not 0 or 1";
        return bad("STATUS");
      }
      m.ok = status == 0;
      get16(r, m.message, 0, kMaxAgentReasonChars, "message", &why);
      if (!r.done()) return bad("STATUS");
      return AgentMessage(std::move(m));
    }
    case AgentMsgType::kKeys: {
      KeyListReply m;
      const std::uint16_t n = r.u16();
      if (r.ok() && n > kMaxAgentKeys) {
        why = std::to_string(n) + " keys (at most " + std::to_string(kMaxAgentKeys) + ")";
        return bad("KEYS");
      }
      for (std::uint16_t i = 0; i < n && r.ok(); ++i) {
        AgentKeyInfo k;
        if (!get16(r, k.public_key, 1, 128, "public key", &why)) break;
        if (!parse_user_public_key(k.public_key)) {
          why = "\"" + printable_text(k.public_key) + "\" is not a user public key";
          return bad("KEYS");
        }
        if (!get_name(r, k.name, false, &why)) break;
        if (!get16(r, k.server, 0, kMaxNameChars, "server name", &why)) break;
        if (!get16(r, k.comment, 0, kMaxAgentCommentChars, "comment", &why)) break;
        m.keys.push_back(std::move(k));
      }
      if (!r.done()) return bad("KEYS");
      return AgentMessage(std::move(m));
    }
  }
  return make_error("unknown message type " + std::to_string(static_cast<unsigned>(type)));
}

}  // namespace

AddKeyRequest::AddKeyRequest(AddKeyRequest&& o) noexcept
    : seed(o.seed),
      name(std::move(o.name)),
      server(std::move(o.server)),
      comment(std::move(o.comment)) {
  sodium_memzero(o.seed.data(), o.seed.size());
}

AddKeyRequest& AddKeyRequest::operator=(AddKeyRequest&& o) noexcept {
  if (this != &o) {
    seed = o.seed;
    sodium_memzero(o.seed.data(), o.seed.size());
    name = std::move(o.name);
    server = std::move(o.server);
    comment = std::move(o.comment);
  }
  return *this;
}

AddKeyRequest::~AddKeyRequest() { sodium_memzero(seed.data(), seed.size()); }

AgentMsgType agent_message_type(const AgentMessage& msg) {
  static constexpr AgentMsgType kTypes[] = {
      AgentMsgType::kHello,     AgentMsgType::kWelcome,  AgentMsgType::kSignLogin,
      AgentMsgType::kSignReply, AgentMsgType::kReplaced, AgentMsgType::kAdd,
      AgentMsgType::kList,      AgentMsgType::kDelete,   AgentMsgType::kRemoveAll,
      AgentMsgType::kStatus,    AgentMsgType::kKeys};
  static_assert(std::size(kTypes) == std::variant_size_v<AgentMessage>);
  return kTypes[msg.index()];
}

const char* to_string(AgentMsgType t) {
  switch (t) {
    case AgentMsgType::kHello: return "HELLO";
    case AgentMsgType::kWelcome: return "WELCOME";
    case AgentMsgType::kSignLogin: return "SIGN_LOGIN";
    case AgentMsgType::kSignReply: return "SIGN_REPLY";
    case AgentMsgType::kReplaced: return "REPLACED";
    case AgentMsgType::kAdd: return "ADD";
    case AgentMsgType::kList: return "LIST";
    case AgentMsgType::kDelete: return "DELETE";
    case AgentMsgType::kRemoveAll: return "REMOVE_ALL";
    case AgentMsgType::kStatus: return "STATUS";
    case AgentMsgType::kKeys: return "KEYS";
  }
  return "?";
}

Bytes encode_agent_message(const AgentMessage& msg) {
  WireWriter w;
  w.u8(static_cast<std::uint8_t>(agent_message_type(msg)));
  std::visit(Encoder{w}, msg);
  return w.take();
}

Bytes frame_agent_message(const AgentMessage& msg) {
  WireWriter w;
  w.u32(0);  // patched below, once the body's length is known
  w.u8(static_cast<std::uint8_t>(agent_message_type(msg)));
  std::visit(Encoder{w}, msg);
  Bytes out = w.take();
  store_be32(out.data(), static_cast<std::uint32_t>(out.size() - kAgentFrameHeaderBytes));
  return out;
}

Result<AgentMessage> decode_agent_message(ByteSpan body) {
  if (body.empty()) return make_error("empty agent message");
  if (body.size() > kMaxAgentMessageBytes)
    return make_error("agent message of " + std::to_string(body.size()) + " bytes (limit " +
                      std::to_string(kMaxAgentMessageBytes) + ")");
  WireReader r(body);
  const auto type = static_cast<AgentMsgType>(r.u8());
  return decode_fields(type, r);
}

std::optional<std::size_t> agent_frame_length(ByteSpan header, std::string* why) {
  if (header.size() < kAgentFrameHeaderBytes) {
    if (why) *why = "frame header is short";
    return std::nullopt;
  }
  const std::uint32_t n = load_be32(header.data());
  if (n == 0 || n > kMaxAgentMessageBytes) {
    if (why)
      *why = "message length " + std::to_string(n) + " is out of bounds (1.." +
             std::to_string(kMaxAgentMessageBytes) + ")";
    return std::nullopt;
  }
  return n;
}

void wipe_bytes(Bytes& b) {
  if (!b.empty()) sodium_memzero(b.data(), b.size());
  b.clear();
}




}  // namespace sfs
