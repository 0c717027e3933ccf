// handshake_fuzz: both handshake state machines (handshake.h) on arbitrary
// bytes.
//   - The server's respond() on the input as a client hello.
//   - A client (fixed ephemeral) whose finish() gets the input as the
//     server hello.
//   - The input XORed into the real server hello for that client: the
//     client must refuse unless the XOR changed nothing.
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "sfs/handshake.h"

namespace {

sfs::Key32 counting(int start) {
  sfs::Key32 k;
  for (int i = 0; i < 32; ++i) k[i] = static_cast<std::uint8_t>(start + i);
  return k;
}

const sfs::ServerKey& server_key() {
  static const sfs::ServerKey k = sfs::ServerKey::from_secrets(counting(0), counting(0x20));
  return k;
}

sfs::ClientHandshakeConfig client_config() {
  return {sfs::name_for({"sfs.example.org", 4000}, server_key().public_key()),
          sfs::default_cipher_offer()};
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::uint8_t> input(data, size);
  {
    sfs::ServerHandshake server(server_key(), {}, counting(0x60));
    const sfs::ServerResult r = server.respond(input);
    if (r.keys.has_value() == !r.error.empty()) std::abort();
  }
  {
    sfs::ClientHandshake client(client_config(), counting(0x40));
    if (!client.start().ok()) std::abort();
    (void)client.finish(input);
  }
  {
    sfs::ClientHandshake client(client_config(), counting(0x40));
    auto m1 = client.start();
    sfs::ServerHandshake server(server_key(), {}, counting(0x60));
    std::vector<std::uint8_t> m2 = server.respond(m1.value()).reply;
    bool changed = false;
    for (std::size_t i = 0; i < size && i < m2.size(); ++i) {
      m2[i] ^= data[i];
      changed |= data[i] != 0;
    }
    if (client.finish(m2).ok() == changed) std::abort();
  }
  return 0;
}
