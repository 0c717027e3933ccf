// aead_impl.h: factories of the concrete AEAD implementations (private to
// proto/src; the public entry point is make_aead() in sfs/aead.h).
#pragma once

#include <memory>

#include "sfs/aead.h"

namespace sfs::detail {

std::unique_ptr<Aead> make_sodium_aead(AeadAlg alg, const AeadKey& key);
std::unique_ptr<Aead> make_openssl_aead(AeadAlg alg, const AeadKey& key);
bool sodium_aes_gcm_available();

}  // namespace sfs::detail
