// names.cc: HOSTID computation and the strict `@HOST%PORT,HOSTID` parser.
#include "sfs/names.h"

#include <sodium.h>

#include <cstring>

namespace sfs {

namespace {

// Domain-separation tag: a HOSTID hash can never be confused with any other
// BLAKE2b use in SFS (docs/protocol.md, "Names and HOSTID").
constexpr std::string_view kHostIdTag = "sfs hostid v1";
constexpr std::size_t kMaxLabelChars = 63;  // [RFC 1035] 2.3.4: "labels 63 octets or less"

bool is_ldh(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'; }

}  // namespace

HostId compute_hostid(const Location& location, const ServerPublicKey& key) {
  ensure_sodium();
  WireWriter w;
  w.bytes(as_bytes(kHostIdTag));
  w.bytes8(as_bytes(location.host));  // host is at most 253 bytes (check_host)
  w.u16(location.port);
  w.bytes(key.x25519);
  w.bytes(key.ed25519);
  HostId id;
  crypto_generichash(id.data(), id.size(), w.buffer().data(), w.buffer().size(), nullptr, 0);
  return id;
}

std::string format_hostid(const HostId& id) { return base32_encode(id); }

Result<HostId> parse_hostid(std::string_view text) {
  if (text.size() != kHostIdChars)
    return make_error("HOSTID must be exactly 32 characters, got " + std::to_string(text.size()));
  auto raw = base32_decode(text);
  if (!raw || raw->size() != kHostIdBytes)
    return make_error("HOSTID must use only the characters a-z and 2-7");
  HostId id;
  std::memcpy(id.data(), raw->data(), id.size());
  return id;
}

Status check_host(std::string_view host) {
  if (host.empty()) return make_error("host is empty");
  if (host.size() > kMaxHostChars)
    return make_error("host is longer than 253 characters");
  std::size_t label = 0;
  for (std::size_t i = 0; i < host.size(); ++i) {
    const char c = host[i];
    if (c == '.') {
      if (label == 0) return make_error("host has an empty label (leading or double dot)");
      if (host[i - 1] == '-') return make_error("a host label may not end with '-'");
      label = 0;
      continue;
    }
    if (c >= 'A' && c <= 'Z') return make_error("host must be lowercase");
    if (!is_ldh(c))
      return make_error("host may contain only a-z, 0-9, '-' and '.'");
    if (label == 0 && c == '-') return make_error("a host label may not start with '-'");
    if (++label > kMaxLabelChars) return make_error("a host label is longer than 63 characters");
  }
  if (label == 0) return make_error("host ends with a dot");
  if (host.back() == '-') return make_error("a host label may not end with '-'");
  return {};
}

Result<std::uint16_t> parse_port(std::string_view text) {
  if (text.empty()) return make_error("port is empty");
  if (text.size() > 5) return make_error("port has more than 5 digits");
  if (text[0] == '0') return make_error("port must be 1-65535 without leading zeros");
  std::uint32_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return make_error("port must be decimal digits");
    v = v * 10 + static_cast<std::uint32_t>(c - '0');
  }
  if (v > 65535) return make_error("port must be at most 65535");
  return static_cast<std::uint16_t>(v);
}

std::string format_name(const SelfCertName& name) {
  return "@" + name.location.host + "%" + std::to_string(name.location.port) + "," +
         format_hostid(name.hostid);
}

Result<SelfCertName> parse_name(std::string_view text) {
  const auto bad = [&](const std::string& why) {
    // Quote at most kMaxNameChars of hostile input, never control bytes.
    std::string shown;
    for (char c : text.substr(0, kMaxNameChars))
      shown.push_back(c >= 0x20 && c < 0x7f ? c : '?');
    return make_error("bad self-certifying name \"" + shown + "\": " + why +
                      " (expected @HOST%PORT,HOSTID)");
  };
  if (text.empty()) return bad("empty");
  if (text.size() > kMaxNameChars) return bad("longer than " + std::to_string(kMaxNameChars));
  if (text[0] != '@') return bad("must start with '@'");
  const std::size_t pct = text.find('%');
  const std::size_t comma = text.find(',');
  if (pct == std::string_view::npos) return bad("no '%' before the port");
  if (comma == std::string_view::npos) return bad("no ',' before the HOSTID");
  if (comma < pct) return bad("',' comes before '%'");
  SelfCertName out;
  const std::string_view host = text.substr(1, pct - 1);
  if (Status s = check_host(host); !s) return bad(s.error());
  auto port = parse_port(text.substr(pct + 1, comma - pct - 1));
  if (!port) return bad(port.error());
  if (port.value() == 0) return bad("port must be 1-65535");
  auto id = parse_hostid(text.substr(comma + 1));
  if (!id) return bad(id.error());
  out.location = Location{std::string(host), port.value()};
  out.hostid = id.value();
  return out;
}

SelfCertName name_for(const Location& location, const ServerPublicKey& key) {
  return SelfCertName{location, compute_hostid(location, key)};
}

Result<Location> parse_location(std::string_view text) {
  const std::size_t colon = text.rfind(':');
  if (colon == std::string_view::npos)
    return make_error("location \"" + std::string(text) + "\" must be HOST:PORT");
  const std::string_view host = text.substr(0, colon);
  if (Status s = check_host(host); !s)
    return make_error("location \"" + std::string(text) + "\": " + s.error());
  auto port = parse_port(text.substr(colon + 1));
  if (!port) return make_error("location \"" + std::string(text) + "\": " + port.error());
  return Location{std::string(host), port.value()};
}

}  // namespace sfs
