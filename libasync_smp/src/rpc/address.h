// address.h: numeric socket addresses (internal to asmp_rpc).
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <string>

namespace asmp::rpc {

// Fills ss/len for a numeric IPv4 or IPv6 host; false if host is neither.
bool numeric_address(const std::string& host, std::uint16_t port, sockaddr_storage& ss,
                     socklen_t& len);

}  // namespace asmp::rpc
