// agent_proto.h: the messages sfsagent exchanges with sfsclient (the
// registration socket) and with the user's own commands (the control
// socket), and their binary encoding. docs/agent.md gives every layout.
//
// Contract
//   - A message on either socket is a frame: u32 length L (big-endian,
//     1 <= L <= kMaxAgentMessageBytes), then L bytes of body: u8 type and the
//     type's fields, integers big-endian, strings as u8 or u16 length + bytes.
//   - decode_agent_message() is strict: unknown type, a field out of bounds,
//     a string with control characters, a bad user name, a short body or
//     bytes left over are all refused with a message for a person. It never
//     reads outside its span and never allocates more than the span holds.
//     Which types a side accepts is the caller's business (sfsclient accepts
//     only HELLO and SIGN_REPLY, and so on).
//   - AddKeyRequest carries a private key seed; the struct wipes it when it
//     dies, and encode_agent_message's output for it must be wiped by the
//     caller (wipe_bytes) once sent.
//   - Pure functions; safe on any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "sfs/encoding.h"
#include "sfs/handshake.h"
#include "sfs/keys.h"
#include "sfs/result.h"
#include "sfs/secret_file.h"  // wipe_string

namespace sfs {

inline constexpr std::uint8_t kAgentProtocolVersion = 1;
// Largest body of one frame. A full key list (kMaxAgentKeys entries with
// the longest fields) fits in it; anything longer is an attack or a bug.
inline constexpr std::size_t kMaxAgentMessageBytes = 64 * 1024;
inline constexpr std::size_t kAgentFrameHeaderBytes = 4;
inline constexpr std::size_t kMaxAgentKeys = 32;
inline constexpr std::size_t kMaxAgentCommentChars = 1024;  // a file name, usually
inline constexpr std::size_t kMaxAgentReasonChars = 1024;
inline constexpr std::size_t kMaxAgentLoginRequestBytes = 1024;

// The default place of sfsclient's registration socket.
inline constexpr const char* kDefaultRegistrationPath = "/run/sfs/agent.sock";

enum class AgentMsgType : std::uint8_t {
  // registration socket
  kHello = 1,      // agent -> sfsclient
  kWelcome = 2,    // sfsclient -> agent
  kSignLogin = 3,  // sfsclient -> agent
  kSignReply = 4,  // agent -> sfsclient
  kReplaced = 5,   // sfsclient -> agent, then sfsclient closes
  // control socket (the user's commands -> agent)
  kAdd = 16,
  kList = 17,
  kDelete = 18,
  kRemoveAll = 19,
  // control socket (agent -> the user's commands)
  kStatus = 32,
  kKeys = 33,
};

struct AgentHello {
  std::uint8_t version = kAgentProtocolVersion;
};

struct AgentWelcome {
  std::uint8_t version = kAgentProtocolVersion;
  std::uint32_t uid = 0;  // the agent's uid as sfsclient saw it (SO_PEERCRED)
};

struct SignLoginRequest {
  std::uint32_t id = 0;
  std::string server;  // "@host%port,HOSTID", 1..kMaxNameChars printable
  SessionId session{};
  std::uint64_t seqno = 0;
};

struct SignLoginReply {
  std::uint32_t id = 0;
  bool ok = false;
  std::string user;    // ok: the name signed for (valid_user_name)
  Bytes request;       // ok: encode_login_request(...), 1..1024 bytes
  std::string reason;  // !ok: why the agent refused
};

struct AgentReplaced {
  std::uint32_t new_pid = 0;  // the agent that took this uid's place
};

struct AddKeyRequest {
  AddKeyRequest() = default;
  AddKeyRequest(const AddKeyRequest&) = delete;
  AddKeyRequest& operator=(const AddKeyRequest&) = delete;
  AddKeyRequest(AddKeyRequest&& o) noexcept;
  AddKeyRequest& operator=(AddKeyRequest&& o) noexcept;
  ~AddKeyRequest();

  Key32 seed{};         // the user key's Ed25519 seed (secret)
  std::string name;     // login name to use; empty: the local user's name
  std::string server;   // "@host%port,HOSTID" the key is for; empty: any
  std::string comment;  // where it came from (the key file), for LIST and DELETE
};

struct ListKeysRequest {};

struct DeleteKeyRequest {
  enum class By : std::uint8_t { kPublicKey = 0, kComment = 1 };
  By by = By::kPublicKey;
  std::string what;  // "ed25519:..." or the comment (file name) given at ADD
};

struct RemoveAllRequest {};

struct ControlStatus {
  bool ok = false;
  std::string message;  // what was done, or what went wrong
};

struct AgentKeyInfo {
  std::string public_key;  // "ed25519:..."
  std::string name;
  std::string server;  // empty: any server
  std::string comment;
  bool operator==(const AgentKeyInfo&) const = default;
};

struct KeyListReply {
  std::vector<AgentKeyInfo> keys;  // at most kMaxAgentKeys
};

using AgentMessage = std::variant<AgentHello, AgentWelcome, SignLoginRequest, SignLoginReply,
                                  AgentReplaced, AddKeyRequest, ListKeysRequest, DeleteKeyRequest,
                                  RemoveAllRequest, ControlStatus, KeyListReply>;

// The body (type and fields, no length prefix). Fields are truncated to
// their limits where that is harmless (reasons, messages) and must
// otherwise already be within them: the encoder asserts nothing, but a
// decoder will refuse an out-of-bounds field.
Bytes encode_agent_message(const AgentMessage& msg);
// The body with its u32 length prefix, ready to write.
Bytes frame_agent_message(const AgentMessage& msg);
Result<AgentMessage> decode_agent_message(ByteSpan body);

// The length a frame header announces, or nullopt (with *why set) if it is
// out of bounds (0 or above kMaxAgentMessageBytes). `header` has 4 bytes.
std::optional<std::size_t> agent_frame_length(ByteSpan header, std::string* why);

AgentMsgType agent_message_type(const AgentMessage& msg);
const char* to_string(AgentMsgType t);

// Zeroes a buffer that held a secret (sodium_memzero), then clears it.
void wipe_bytes(Bytes& b);


}  // namespace sfs
