// names.h: self-certifying server names, `@HOST%PORT,HOSTID`.
//
// Contract
//   - HOSTID = base32(BLAKE2b-160(tag || len(host) || host || port ||
//     server X25519 public key || server Ed25519 public key)), exactly 32
//     lowercase base32 characters. The tag and byte layout are specified in
//     docs/protocol.md, section "Names and HOSTID", with test vectors.
//     Because the location is hashed, the same key at another host or port
//     has another name.
//   - parse_name() is strict: it accepts only the canonical form that
//     format_name() produces (lowercase host, decimal port 1-65535 without
//     leading zeros, 32-character HOSTID), so two different strings never
//     name the same server. Hosts are DNS names (LDH labels) or dotted IPv4;
//     IPv6 literals are not supported.
//   - Pure functions; safe on any thread.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "sfs/keys.h"
#include "sfs/result.h"

namespace sfs {

inline constexpr std::size_t kHostIdBytes = 20;  // 160 bits, as in SFS
inline constexpr std::size_t kHostIdChars = 32;  // base32 of 20 bytes
inline constexpr std::size_t kMaxHostChars = 253;
// '@' + host + '%' + 5 digits + ',' + HOSTID.
inline constexpr std::size_t kMaxNameChars = 1 + kMaxHostChars + 1 + 5 + 1 + kHostIdChars;

using HostId = std::array<std::uint8_t, kHostIdBytes>;

struct Location {
  std::string host;  // canonical: lowercase LDH or dotted IPv4
  std::uint16_t port = 0;
  bool operator==(const Location&) const = default;
};

struct SelfCertName {
  Location location;
  HostId hostid{};
  bool operator==(const SelfCertName&) const = default;
};

// Precondition: check_host(location.host) succeeded and port != 0.
HostId compute_hostid(const Location& location, const ServerPublicKey& key);

std::string format_hostid(const HostId& id);
Result<HostId> parse_hostid(std::string_view text);

// "@host%port,hostid"
std::string format_name(const SelfCertName& name);
Result<SelfCertName> parse_name(std::string_view text);

// The name a server with `key` has at `location`.
SelfCertName name_for(const Location& location, const ServerPublicKey& key);

// "host:port", as given to `sfskey show --location`.
Result<Location> parse_location(std::string_view text);
Status check_host(std::string_view host);
Result<std::uint16_t> parse_port(std::string_view text);

}  // namespace sfs
