// signer.cc: see signer.h.
#include "signer.h"

namespace sfsclient {

namespace {

// No agents yet: everyone is the anonymous user.
class NoAgents final : public Signer {
 public:
  void start() override {}
  void stop() override {}
  void sign_login(uid_t, const std::string&, const sfs::SessionId&, std::uint64_t,
                  asmp::Callback<void(sfs::Result<SignedLogin>)> cb) override {
    cb(sfs::make_error("no agent for this user"));
  }
};

}  // namespace

sfs::Result<std::unique_ptr<Signer>> make_signer(const ClientConfig&, sfs::LogSink) {
  return std::unique_ptr<Signer>(std::make_unique<NoAgents>());
}

}  // namespace sfsclient
