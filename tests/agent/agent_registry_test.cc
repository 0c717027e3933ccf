// agent_registry_test.cc: AgentRegistry (sfsclient's side) and Agent (the
// user's side) together in this process, both as root, on one runtime:
// signed logins the server accepts, many at once, refusals, restarts of
// either side, replacement of an older agent, the control commands, the
// single-agent lock, and refusal to talk to sockets served by another uid
// (a forked child plays that uid). Real sfsagent processes and hostile
// agents are in agent_process_test.cc.
#include <gtest/gtest.h>

#include <atomic>
#include <set>

#include "agent_test_util.h"
#include "sfs/agent_control.h"

namespace sfs::test {
namespace {

constexpr asmp::color_t kRegistryColor = 3;
constexpr asmp::color_t kAgentColor = 4;

class AgentRegistryTest : public ::testing::Test {
 protected:
  AgentRegistryTest() {
    reg_path_ = dir_.subdir("reg", 0, 0, 0755) + "/agent.sock";
    ctl_dir_ = dir_ / "ctl";  // the agent creates it, 0700
  }

  AgentRegistryOptions registry_options() {
    AgentRegistryOptions o;
    o.path = reg_path_;
    o.sign_timeout = 2s;
    o.log = reg_log_.sink();
    return o;
  }

  std::unique_ptr<AgentRegistry> start_registry() {
    auto r = std::make_unique<AgentRegistry>(rt_.rt(), kRegistryColor, registry_options());
    Status s = r->listen();
    EXPECT_TRUE(s.ok()) << s.error();
    return r;
  }

  // Waits until close() is done, so that the socket file is gone.
  static void close_registry(std::unique_ptr<AgentRegistry>& r) {
    std::atomic<bool> done{false};
    r->close([&done] { done = true; });
    ASSERT_TRUE(eventually([&] { return done.load(); }));
    r.reset();
  }

  std::unique_ptr<Agent> start_agent(
      KeyRing keys, const std::string& ctl_name = "agent.sock",
      std::function<void(const std::string&)> on_replaced = nullptr) {
    auto cs = ControlSocket::open(ctl_dir_ + "/" + ctl_name, 0);
    EXPECT_TRUE(cs.ok()) << cs.error();
    if (!cs) return nullptr;
    AgentOptions o;
    o.registration_path = reg_path_;
    o.default_user = "root";
    o.backoff_min = 10ms;
    o.backoff_max = 100ms;
    o.owner = 0;
    o.log = agent_log_.sink();
    o.on_replaced = std::move(on_replaced);
    auto a = std::make_unique<Agent>(rt_.rt(), kAgentColor, std::move(cs.value()), std::move(keys),
                                     std::move(o));
    a->start();
    return a;
  }

  static void stop_agent(std::unique_ptr<Agent>& a) {
    std::atomic<bool> done{false};
    a->stop([&done] { done = true; });
    ASSERT_TRUE(eventually([&] { return done.load(); }));
    a.reset();
  }

  static KeyRing ring_with(int key, const std::string& name, const std::string& server = "") {
    KeyRing k;
    auto r = k.add(key_n(key), name, server, "/keys/" + std::to_string(key));
    EXPECT_TRUE(r.ok()) << r.error();
    return k;
  }

  TempDir dir_;
  std::string reg_path_, ctl_dir_;
  LogCapture reg_log_, agent_log_;
  RunningRuntime rt_;  // declared last: stopped first, before what it runs is destroyed
};

TEST_F(AgentRegistryTest, SignedLoginIsAcceptedByTheServer) {
  auto reg = start_registry();
  auto agent = start_agent(ring_with(1, "alice"));
  ASSERT_TRUE(eventually([&] { return reg->has_agent(0) && agent->registered(); }))
      << reg_log_.all() << agent_log_.all();
  ASSERT_EQ(reg->agents().size(), 1u);
  EXPECT_EQ(reg->agents()[0].pid, ::getpid());

  const SessionId sid = session_n(10);
  auto r = sign_sync(*reg, 0, kServerA, sid, 5);
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r.value().user, "alice");
  EXPECT_EQ(r.value().key, key_n(1).public_key());
  LoginOutcome out = server_check(r.value(), key_n(1).public_key(), "alice", sid);
  ASSERT_TRUE(out.auth.has_value()) << out.refusal;
  EXPECT_EQ(out.auth->uid, 1000u);

  // The same signed request is worthless on another connection.
  LoginOutcome other = server_check(r.value(), key_n(1).public_key(), "alice", session_n(11));
  EXPECT_FALSE(other.auth.has_value());
  EXPECT_NE(other.refusal.find("bad signature"), std::string::npos) << other.refusal;
  EXPECT_TRUE(agent_log_.contains("signed a login to " + kServerA + " as alice"));
  stop_agent(agent);
}

TEST_F(AgentRegistryTest, ManyRequestsOutstandingFromManyThreads) {
  auto reg = start_registry();
  auto agent = start_agent(ring_with(2, "bob"));
  ASSERT_TRUE(eventually([&] { return reg->has_agent(0); }));
  const SessionId sid = session_n(20);
  constexpr int kThreads = 4, kEach = 12;  // 48 < max_pending_per_agent
  std::vector<std::optional<Result<SignedLogin>>> results(kThreads * kEach);
  std::mutex mu;
  std::condition_variable cv;
  int left = kThreads * kEach;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        const int n = t * kEach + i;
        reg->sign_login(0, kServerB, sid, static_cast<std::uint64_t>(n + 1),
                        asmp::Callback<void(Result<SignedLogin>)>(
                            [&, n](Result<SignedLogin> r) {
                              std::lock_guard lk(mu);
                              results[n].emplace(std::move(r));
                              if (--left == 0) cv.notify_all();
                            },
                            static_cast<asmp::color_t>(100 + n % 5)));
      }
    });
  }
  for (auto& th : threads) th.join();
  {
    std::unique_lock lk(mu);
    ASSERT_TRUE(cv.wait_for(lk, 15s, [&] { return left == 0; })) << left << " outstanding";
  }
  // One server-side table accepts them all: distinct, fresh sequence numbers.
  const UserDb db =
      UserDb::parse(format_user_public_key(key_n(2).public_key()) + " bob 7 7\n", nullptr);
  AuthTable table(sid);
  for (auto& r : results) {
    ASSERT_TRUE(r.has_value() && r->ok()) << (r ? r->error() : "missing");
    LoginOutcome out = table.login(db, r->value().request);
    EXPECT_TRUE(out.auth.has_value()) << out.refusal;
  }
  stop_agent(agent);
}

TEST_F(AgentRegistryTest, NoAgentForAUidIsAClearError) {
  auto reg = start_registry();
  auto r = sign_sync(*reg, 12345, kServerA, session_n(1), 1);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().find("no sfsagent is registered for uid 12345"), std::string::npos)
      << r.error();
  auto bad = sign_sync(*reg, 0, "", session_n(1), 1);
  EXPECT_FALSE(bad.ok());
}

TEST_F(AgentRegistryTest, AgentWithoutASuitableKeyRefuses) {
  auto reg = start_registry();
  auto agent = start_agent(KeyRing{});
  ASSERT_TRUE(eventually([&] { return reg->has_agent(0); }));
  auto none = sign_sync(*reg, 0, kServerA, session_n(1), 1);
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.error().find("refused to sign: the agent holds no keys"), std::string::npos)
      << none.error();
  stop_agent(agent);
  // The registry must have seen it go: else has_agent() below is still the
  // old agent's, and the next request races its departure.
  ASSERT_TRUE(eventually([&] { return !reg->has_agent(0); }));

  // A key restricted to server A signs for A only.
  agent = start_agent(ring_with(3, "carol", kServerA));
  ASSERT_TRUE(eventually([&] { return reg->has_agent(0); }));
  auto for_b = sign_sync(*reg, 0, kServerB, session_n(1), 1);
  ASSERT_FALSE(for_b.ok());
  EXPECT_NE(for_b.error().find("no key for " + kServerB), std::string::npos) << for_b.error();
  auto for_a = sign_sync(*reg, 0, kServerA, session_n(1), 2);
  ASSERT_TRUE(for_a.ok()) << for_a.error();
  EXPECT_EQ(for_a.value().user, "carol");
  // A refusal is an answer, not a fault: the agent stays registered.
  EXPECT_TRUE(reg->has_agent(0));
  stop_agent(agent);
}

TEST_F(AgentRegistryTest, AgentRestartReRegisters) {
  auto reg = start_registry();
  auto agent = start_agent(ring_with(4, "dave"));
  ASSERT_TRUE(eventually([&] { return reg->has_agent(0); }));
  stop_agent(agent);
  ASSERT_TRUE(eventually([&] { return !reg->has_agent(0); }));
  EXPECT_FALSE(std::filesystem::exists(ctl_dir_ + "/agent.sock"));  // stop removed it
  auto gone = sign_sync(*reg, 0, kServerA, session_n(1), 1);
  EXPECT_FALSE(gone.ok());

  agent = start_agent(ring_with(5, "erin"));
  ASSERT_TRUE(eventually([&] { return reg->has_agent(0); }));
  auto r = sign_sync(*reg, 0, kServerA, session_n(1), 2);
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r.value().user, "erin");
  stop_agent(agent);
}

TEST_F(AgentRegistryTest, RegistryRestartAgentsComeBack) {
  auto reg = start_registry();
  auto agent = start_agent(ring_with(6, "frank"));
  ASSERT_TRUE(eventually([&] { return agent->registered(); }));
  close_registry(reg);
  EXPECT_FALSE(std::filesystem::exists(reg_path_));  // close removed it
  ASSERT_TRUE(eventually([&] { return !agent->registered(); }));

  reg = start_registry();
  ASSERT_TRUE(eventually([&] { return reg->has_agent(0) && agent->registered(); }))
      << agent_log_.all();
  auto r = sign_sync(*reg, 0, kServerA, session_n(2), 1);
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r.value().user, "frank");
  stop_agent(agent);
}

TEST_F(AgentRegistryTest, ClosingTheRegistryFailsWhatIsPending) {
  AgentRegistryOptions o = registry_options();
  auto reg = std::make_unique<AgentRegistry>(rt_.rt(), kRegistryColor, o);
  ASSERT_TRUE(reg->listen().ok());
  // A peer that says HELLO and never answers.
  const int fd = raw_connect(reg_path_);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(raw_send(fd, AgentHello{}));
  ASSERT_TRUE(eventually([&] { return reg->has_agent(0); }));
  std::atomic<int> calls{0};
  std::string error;
  std::mutex mu;
  reg->sign_login(0, kServerA, session_n(1), 1,
                  asmp::Callback<void(Result<SignedLogin>)>([&](Result<SignedLogin> r) {
                    std::lock_guard lk(mu);
                    error = r.ok() ? "" : r.error();
                    ++calls;
                  }));
  auto req = raw_receive(fd);  // WELCOME
  ASSERT_TRUE(req.ok()) << req.error();
  req = raw_receive(fd);  // SIGN_LOGIN
  ASSERT_TRUE(req.ok() && std::holds_alternative<SignLoginRequest>(req.value()));
  close_registry(reg);
  ASSERT_TRUE(eventually([&] { return calls.load() == 1; }));
  {
    std::lock_guard lk(mu);
    EXPECT_NE(error.find("shutting down"), std::string::npos) << error;
  }
  EXPECT_TRUE(raw_closed_by_peer(fd));
  ::close(fd);
}

TEST_F(AgentRegistryTest, ANewerAgentOfTheSameUidReplacesTheOlder) {
  auto reg = start_registry();
  std::atomic<bool> replaced{false};
  auto first = start_agent(ring_with(7, "gina"), "first.sock",
                           [&replaced](const std::string&) { replaced = true; });
  ASSERT_TRUE(eventually([&] { return first->registered(); }));
  auto second = start_agent(ring_with(8, "hank"), "second.sock");
  ASSERT_TRUE(eventually([&] { return replaced.load() && second->registered(); }))
      << reg_log_.all() << agent_log_.all();
  EXPECT_FALSE(first->registered());
  auto r = sign_sync(*reg, 0, kServerA, session_n(3), 1);
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r.value().user, "hank");
  // The replaced one does not come back and push the newer one out.
  std::this_thread::sleep_for(300ms);
  EXPECT_TRUE(second->registered());
  EXPECT_FALSE(first->registered());
  EXPECT_TRUE(reg_log_.contains("is replaced by a newer one"));
  stop_agent(first);
  stop_agent(second);
}

TEST_F(AgentRegistryTest, ControlCommandsOverTheSocket) {
  auto agent = start_agent(KeyRing{});
  const std::string path = ctl_dir_ + "/agent.sock";
  struct stat st;
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(::stat(ctl_dir_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);

  auto call = [&](const AgentMessage& m) -> Result<AgentMessage> {
    auto c = ControlClient::connect(path);
    if (!c) return make_error(c.error());
    return c.value().call(m);
  };
  AddKeyRequest add;
  add.seed = key_n(9).ed25519_seed();
  add.comment = "/keys/9";
  auto r = call(std::move(add));
  ASSERT_TRUE(r.ok()) << r.error();
  auto* st1 = std::get_if<ControlStatus>(&r.value());
  ASSERT_TRUE(st1 && st1->ok) << (st1 ? st1->message : "not a status");
  EXPECT_NE(st1->message.find("as root"), std::string::npos) << st1->message;  // default name
  EXPECT_EQ(agent->key_count(), 1u);

  AddKeyRequest add2;
  add2.seed = key_n(10).ed25519_seed();
  add2.name = "ivy";
  add2.server = kServerB;
  ASSERT_TRUE(call(std::move(add2)).ok());
  AddKeyRequest bad;
  bad.seed = key_n(11).ed25519_seed();
  bad.server = "@not-a-name";
  r = call(std::move(bad));
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(std::get<ControlStatus>(r.value()).ok);

  r = call(ListKeysRequest{});
  ASSERT_TRUE(r.ok()) << r.error();
  const auto& keys = std::get<KeyListReply>(r.value()).keys;
  ASSERT_EQ(keys.size(), 2u);
  EXPECT_EQ(keys[0],
            (AgentKeyInfo{format_user_public_key(key_n(9).public_key()), "root", "", "/keys/9"}));
  EXPECT_EQ(keys[1],
            (AgentKeyInfo{format_user_public_key(key_n(10).public_key()), "ivy", kServerB, ""}));

  r = call(DeleteKeyRequest{DeleteKeyRequest::By::kComment, "/keys/9"});
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(std::get<ControlStatus>(r.value()).ok);
  r = call(DeleteKeyRequest{DeleteKeyRequest::By::kComment, "/keys/9"});
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(std::get<ControlStatus>(r.value()).ok);
  r = call(RemoveAllRequest{});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(std::get<ControlStatus>(r.value()).message, "deleted 1 key");
  EXPECT_EQ(agent->key_count(), 0u);

  // Garbage on the control socket: a refusal, then the door closes.
  const int fd = raw_connect(path);
  ASSERT_GE(fd, 0);
  const std::uint8_t junk[] = {0, 0, 0, 3, 99, 1, 2};
  ASSERT_TRUE(raw_send(fd, ByteSpan(junk, sizeof junk)));
  auto answer = raw_receive(fd);
  ASSERT_TRUE(answer.ok()) << answer.error();
  EXPECT_FALSE(std::get<ControlStatus>(answer.value()).ok);
  EXPECT_TRUE(raw_closed_by_peer(fd));
  ::close(fd);
  stop_agent(agent);
}

TEST_F(AgentRegistryTest, OneAgentPerControlSocket) {
  const std::string path = ctl_dir_ + "/agent.sock";
  auto first = ControlSocket::open(path, 0);
  ASSERT_TRUE(first.ok()) << first.error();
  auto second = ControlSocket::open(path, 0);
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.error().find("already running"), std::string::npos) << second.error();
  EXPECT_NE(second.error().find(std::to_string(::getpid())), std::string::npos) << second.error();
  {
    ControlSocket gone = std::move(first.value());  // removed when it dies
  }
  EXPECT_FALSE(std::filesystem::exists(path));

  // A stale socket file (its agent died without removing it) is replaced.
  const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ::close(fd);
  ASSERT_TRUE(std::filesystem::exists(path));
  auto third = ControlSocket::open(path, 0);
  ASSERT_TRUE(third.ok()) << third.error();

  // A file that is not a socket is never removed.
  const std::string plain = ctl_dir_ + "/plain";
  std::ofstream(plain) << "x";
  auto fourth = ControlSocket::open(plain, 0);
  ASSERT_FALSE(fourth.ok());
  EXPECT_NE(fourth.error().find("not a socket"), std::string::npos) << fourth.error();
  EXPECT_TRUE(std::filesystem::exists(plain));
}

TEST_F(AgentRegistryTest, ControlDirectoryOpenToOthersIsRefused) {
  const std::string open_dir = dir_.subdir("open", 0, 0, 0777);
  auto cs = ControlSocket::open(open_dir + "/agent.sock", 0);
  ASSERT_FALSE(cs.ok());
  EXPECT_NE(cs.error().find("chmod 700"), std::string::npos) << cs.error();
  const std::string theirs = dir_.subdir("theirs", kStrangerUid, kStrangerUid, 0700);
  cs = ControlSocket::open(theirs + "/agent.sock", 0);
  // Root may use a directory of its own only; a stranger's is refused.
  ASSERT_FALSE(cs.ok());
  EXPECT_NE(cs.error().find("belongs to uid 54321"), std::string::npos) << cs.error();
}

// A process of another uid listening where we expect our agent or
// sfsclient: neither sfskey nor the agent may talk to it.
class StrangerListener {
 public:
  explicit StrangerListener(const std::string& path) {
    int pipefd[2];
    if (::pipe(pipefd) != 0) std::abort();
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
    child_.run(
        [&] {
          const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
          if (fd < 0 || ::bind(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0 ||
              ::listen(fd, 8) != 0)
            return 1;
          const char ok = 'k';
          if (::write(pipefd[1], &ok, 1) != 1) return 2;
          for (;;) {  // accept and hold connections until killed
            const int c = ::accept(fd, nullptr, nullptr);
            (void)c;
          }
        },
        kStrangerUid, kStrangerUid);
    ::close(pipefd[1]);
    char ok = 0;
    pollfd pf{pipefd[0], POLLIN, 0};
    ready_ = ::poll(&pf, 1, 10000) == 1 && ::read(pipefd[0], &ok, 1) == 1 && ok == 'k';
    ::close(pipefd[0]);
  }
  bool ready() const { return ready_; }

 private:
  Child child_;
  bool ready_ = false;
};

TEST_F(AgentRegistryTest, NeverTalksToASocketOfAnotherUid) {
  const std::string d = dir_.subdir("stranger", kStrangerUid, kStrangerUid, 0755);
  StrangerListener fake(d + "/sock");
  ASSERT_TRUE(fake.ready());
  // sfskey's client: a key must not go to someone else's process.
  auto c = ControlClient::connect(d + "/sock");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.error().find("served by uid 54321"), std::string::npos) << c.error();

  // The agent: whoever serves the registration socket gets signatures.
  reg_path_ = d + "/sock";
  auto agent = start_agent(ring_with(12, "jack"));
  ASSERT_TRUE(eventually([&] { return agent_log_.contains("served by uid 54321, not by root"); }))
      << agent_log_.all();
  EXPECT_FALSE(agent->registered());
  stop_agent(agent);
}

}  // namespace
}  // namespace sfs::test
