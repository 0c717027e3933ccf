// connect_fuzz: the pre-handshake path of sfsd as a client reaches it: the
// input is the byte stream a client sends on a new TCP connection, before
// any key is agreed. It goes through the transport's record marking
// (fragments, lengths, limits), the RPC call decoder (headers,
// credentials, program and procedure lookup), SFS_CONNECT's argument
// decoder and checks (release, host, port, HOSTID), the server's side of
// the handshake, and, if a valid hello made the server turn its channel
// on, the record filter's refusal of whatever follows in the clear.
//
// Seeds (corpus/connect, from make_seeds): valid SFS_CONNECT calls for
// "127.0.0.1" port 4000 (the server checks the HOSTID against the location
// the client claims), a NULL call, records in several fragments.
//
// Per input: connect, send it all, close our sending side, read whatever
// the server answers until it closes, and wait until the server has
// finished with the connection. Crashes, sanitizer reports, leaks and a
// server that never closes (30 s) are failures.
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>

#include "fuzz_server.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  sfs_fuzz::FuzzServer& server = sfs_fuzz::FuzzServer::get();
  server.begin();
  const int fd = server.dial();
  // The server reads as we write (no call blocks it), so writing a few
  // kilobytes before reading cannot wait for our own reads. The server
  // closing early (a bad record) is fine.
  sfs_fuzz::send_all(fd, data, size, "the server");
  ::shutdown(fd, SHUT_WR);
  sfs_fuzz::FuzzServer::recv_all(fd);
  ::close(fd);
  server.wait_closed();
  return 0;
}
