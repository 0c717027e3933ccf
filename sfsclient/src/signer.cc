// signer.cc: see signer.h.
#include "signer.h"

namespace sfsclient {

namespace {

class AgentSigner final : public Signer {
 public:
  AgentSigner(asmp::Runtime& rt, asmp::color_t color, sfs::AgentRegistryOptions o)
      : registry_(rt, color, std::move(o)) {}
  sfs::Status start() override { return registry_.listen(); }
  void stop() override { registry_.close(); }
  void sign_login(uid_t uid, const std::string& server, const sfs::SessionId& session, std::uint64_t seqno,
                  asmp::Callback<void(sfs::Result<SignedLogin>)> cb) override {
    registry_.sign_login(uid, server, session, seqno, std::move(cb));
  }

 private:
  sfs::AgentRegistry registry_;
};

}  // namespace

std::unique_ptr<Signer> make_agent_signer(const ClientConfig& cfg, asmp::Runtime& rt, asmp::color_t color,
                                          sfs::LogSink log) {
  sfs::AgentRegistryOptions o;
  o.path = cfg.agent_socket;
  o.log = std::move(log);
  return std::make_unique<AgentSigner>(rt, color, std::move(o));
}

}  // namespace sfsclient
