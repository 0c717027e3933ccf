// agent_process_test.cc: the real sfsagent program, started by the test as
// uid 65534 (nobody) in a forked child, against an AgentRegistry in this
// process (root), with sockets in a temporary directory (never /run/sfs).
// Checks: the registry learns uid 65534 from the kernel and signs for that
// uid only; logins it returns are accepted by the server's AuthTable;
// hostile agents (this process, uid 0) are closed without hurting uid
// 65534; the control socket refuses a third uid; SIGTERM removes the
// sockets; restarts of either side; one agent per control socket; a stale
// socket from a killed agent is replaced. Every child is killed and reaped.
#include <gtest/gtest.h>

#include "agent_test_util.h"

namespace sfs::test {
namespace {

constexpr asmp::color_t kRegistryColor = 1;

class AgentProcessTest : public ::testing::Test {
 protected:
  AgentProcessTest() {
    reg_path_ = dir_.subdir("reg", 0, 0, 0755) + "/agent.sock";
    ctl_dir_ = dir_.subdir("ctl", kNobodyUid, kNobodyUid, 0700);
    ctl_path_ = ctl_dir_ + "/agent.sock";
    key_path_ = ctl_dir_ + "/identity";
    EXPECT_TRUE(write_key_file(key_path_, key_n(42)).ok());
    EXPECT_EQ(::chown(key_path_.c_str(), kNobodyUid, kNobodyUid), 0);
  }

  void start_registry(AgentRegistryOptions o = {}) {
    o.path = reg_path_;
    if (o.sign_timeout == AgentRegistryOptions{}.sign_timeout) o.sign_timeout = 1500ms;
    o.hello_timeout = 500ms;
    o.log = log_.sink();
    reg_ = std::make_unique<AgentRegistry>(rt_.rt(), kRegistryColor, o);
    Status s = reg_->listen();
    ASSERT_TRUE(s.ok()) << s.error();
  }

  void close_registry() {
    std::atomic<bool> done{false};
    reg_->close([&done] { done = true; });
    ASSERT_TRUE(eventually([&] { return done.load(); }));
    reg_.reset();
  }

  // sfsagent --foreground as nobody, its output in agent-N.log.
  void start_agent(Child& child, const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args{"--foreground", "--control", ctl_path_, "--registration",
                                  reg_path_,      "--add",     key_path_};
    args.insert(args.end(), extra.begin(), extra.end());
    ASSERT_TRUE(child.exec(SFSAGENT_BIN, args, kNobodyUid, kNobodyUid,
                           dir_ / ("agent-" + std::to_string(++agents_) + ".log")));
  }

  void expect_good_login(std::uint64_t seqno) {
    const SessionId sid = session_n(static_cast<int>(seqno));
    auto r = sign_sync(*reg_, kNobodyUid, kServerA, sid, seqno);
    ASSERT_TRUE(r.ok()) << r.error();
    EXPECT_EQ(r.value().user, "nobody");  // getpwuid(65534), the default name
    LoginOutcome out = server_check(r.value(), key_n(42).public_key(), "nobody", sid);
    EXPECT_TRUE(out.auth.has_value()) << out.refusal;
  }

  TempDir dir_;
  std::string reg_path_, ctl_dir_, ctl_path_, key_path_;
  int agents_ = 0;
  LogCapture log_;
  RunningRuntime rt_;
  std::unique_ptr<AgentRegistry> reg_;  // after rt_: closed while it still runs
};

TEST_F(AgentProcessTest, RegistryLearnsTheUidFromTheKernel) {
  start_registry();
  Child agent;
  start_agent(agent);
  ASSERT_TRUE(eventually([&] { return reg_->has_agent(kNobodyUid); })) << agent.log() << log_.all();
  const auto agents = reg_->agents();
  ASSERT_EQ(agents.size(), 1u);
  EXPECT_EQ(agents[0].uid, kNobodyUid);
  EXPECT_EQ(agents[0].pid, agent.pid());
  expect_good_login(1);

  // A request for root does not go to nobody's agent.
  EXPECT_FALSE(reg_->has_agent(0));
  auto root = sign_sync(*reg_, 0, kServerA, session_n(1), 2);
  ASSERT_FALSE(root.ok());
  EXPECT_NE(root.error().find("no sfsagent is registered for uid 0"), std::string::npos)
      << root.error();

  // The sockets as documented.
  struct stat st;
  ASSERT_EQ(::stat(ctl_path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, kNobodyUid);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(::stat(reg_path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0666u);

  EXPECT_EQ(agent.stop(SIGTERM), std::optional<int>(0)) << agent.log();
  EXPECT_FALSE(std::filesystem::exists(ctl_path_)) << "SIGTERM must remove the control socket";
  EXPECT_FALSE(std::filesystem::exists(ctl_path_ + ".lock"));
  EXPECT_TRUE(eventually([&] { return !reg_->has_agent(kNobodyUid); }));
  EXPECT_NE(agent.log().find("registered with sfsclient"), std::string::npos) << agent.log();
  close_registry();
}

TEST_F(AgentProcessTest, HostileAgentsHurtOnlyTheirOwnUid) {
  start_registry();
  Child agent;
  start_agent(agent);
  ASSERT_TRUE(eventually([&] { return reg_->has_agent(kNobodyUid); })) << agent.log();

  // 1. An absurd length: closed at the header, nothing allocated.
  {
    const int fd = raw_connect(reg_path_);
    const std::uint8_t huge[] = {0xff, 0xff, 0xff, 0xff, 1};
    ASSERT_TRUE(raw_send(fd, ByteSpan(huge, sizeof huge)));
    EXPECT_TRUE(raw_closed_by_peer(fd));
    ::close(fd);
  }
  // 2. Something that is not the protocol at all.
  {
    const int fd = raw_connect(reg_path_);
    ASSERT_TRUE(raw_send(fd, as_bytes("GET / HTTP/1.0\r\n\r\n")));
    EXPECT_TRUE(raw_closed_by_peer(fd));
    ::close(fd);
  }
  // 3. Silence: closed after hello_timeout.
  {
    const int fd = raw_connect(reg_path_);
    EXPECT_TRUE(raw_closed_by_peer(fd, 5s));
    ::close(fd);
  }
  // 4. A message agents do not send, and a truncated one.
  {
    const int fd = raw_connect(reg_path_);
    ASSERT_TRUE(raw_send(fd, AgentWelcome{1, 0}));
    EXPECT_TRUE(raw_closed_by_peer(fd));
    ::close(fd);
    const int fd2 = raw_connect(reg_path_);
    const std::uint8_t cut[] = {0, 0, 0, 9, 4, 0};
    ASSERT_TRUE(raw_send(fd2, ByteSpan(cut, sizeof cut)));
    ::shutdown(fd2, SHUT_WR);
    EXPECT_TRUE(raw_closed_by_peer(fd2));
    ::close(fd2);
  }
  // 5. Registers as uid 0 and never answers: uid 0's logins time out,
  //    uid 65534's go on.
  {
    const int fd = raw_connect(reg_path_);
    ASSERT_TRUE(raw_send(fd, AgentHello{}));
    ASSERT_TRUE(eventually([&] { return reg_->has_agent(0); }));
    const auto t0 = std::chrono::steady_clock::now();
    std::thread mute([&] {
      auto r = sign_sync(*reg_, 0, kServerA, session_n(5), 1);
      ASSERT_FALSE(r.ok());
      EXPECT_NE(r.error().find("did not answer within 1500 ms"), std::string::npos) << r.error();
    });
    expect_good_login(2);  // while uid 0's request hangs
    mute.join();
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
    EXPECT_TRUE(reg_->has_agent(0));  // slow is not a protocol violation
    ::close(fd);
    ASSERT_TRUE(eventually([&] { return !reg_->has_agent(0); }));
  }
  // 6. Answers a request that was never made.
  {
    const int fd = raw_connect(reg_path_);
    ASSERT_TRUE(raw_send(fd, AgentHello{}));
    ASSERT_TRUE(eventually([&] { return reg_->has_agent(0); }));
    std::thread waiting([&] {
      auto r = sign_sync(*reg_, 0, kServerA, session_n(6), 1);
      ASSERT_FALSE(r.ok());
      EXPECT_NE(r.error().find("which was never made"), std::string::npos) << r.error();
    });
    auto w = raw_receive(fd);  // WELCOME
    ASSERT_TRUE(w.ok()) << w.error();
    auto req = raw_receive(fd);
    ASSERT_TRUE(req.ok()) << req.error();
    const auto& s = std::get<SignLoginRequest>(req.value());
    SignLoginReply wrong;
    wrong.id = s.id + 1;
    wrong.ok = true;
    wrong.user = "root";
    wrong.request = encode_login_request(key_n(1), "root", s.session, s.seqno);
    ASSERT_TRUE(raw_send(fd, wrong));
    waiting.join();
    EXPECT_TRUE(raw_closed_by_peer(fd));
    ::close(fd);
  }
  // 7. Answers with a login signed for another session (or seqno).
  {
    const int fd = raw_connect(reg_path_);
    ASSERT_TRUE(raw_send(fd, AgentHello{}));
    ASSERT_TRUE(eventually([&] { return reg_->has_agent(0); }));
    std::thread waiting([&] {
      auto r = sign_sync(*reg_, 0, kServerA, session_n(7), 1);
      ASSERT_FALSE(r.ok());
      EXPECT_NE(r.error().find("does not verify"), std::string::npos) << r.error();
    });
    ASSERT_TRUE(raw_receive(fd).ok());  // WELCOME
    auto req = raw_receive(fd);
    ASSERT_TRUE(req.ok()) << req.error();
    const auto& s = std::get<SignLoginRequest>(req.value());
    SignLoginReply forged;
    forged.id = s.id;
    forged.ok = true;
    forged.user = "root";
    forged.request = encode_login_request(key_n(1), "root", session_n(99), s.seqno);
    ASSERT_TRUE(raw_send(fd, forged));
    waiting.join();
    EXPECT_TRUE(raw_closed_by_peer(fd));
    ::close(fd);
  }
  // 8. More connections than one uid may have: the extra one is closed.
  {
    std::vector<int> fds;
    for (std::size_t i = 0; i < AgentRegistryOptions{}.max_connections_per_uid; ++i)
      fds.push_back(raw_connect(reg_path_));
    const int extra = raw_connect(reg_path_);
    // At once, long before hello_timeout would have closed it.
    EXPECT_TRUE(raw_closed_by_peer(extra, 300ms));
    EXPECT_TRUE(log_.contains("it already has 4 connections")) << log_.all();
    ::close(extra);
    for (int fd : fds) ::close(fd);
  }
  // Through all of it, nobody's agent stayed registered and working.
  EXPECT_TRUE(reg_->has_agent(kNobodyUid));
  expect_good_login(3);
  EXPECT_TRUE(log_.contains("out of bounds")) << log_.all();
  EXPECT_TRUE(log_.contains("did not say HELLO")) << log_.all();
  EXPECT_EQ(agent.stop(SIGTERM), std::optional<int>(0)) << agent.log();
  close_registry();
}

TEST_F(AgentProcessTest, ControlSocketRefusesAnotherUid) {
  Child agent;
  start_agent(agent);
  ASSERT_TRUE(eventually([&] { return std::filesystem::exists(ctl_path_); })) << agent.log();

  // Prepared before fork; the child only makes system calls.
  const Bytes list = frame_agent_message(ListKeysRequest{});
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, ctl_path_.c_str(), sizeof a.sun_path - 1);
  int pipefd[2];
  ASSERT_EQ(::pipe(pipefd), 0);
  auto intruder = [&]() -> int {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0)
      return errno == EACCES ? 3 : 4;
    // The refusal may already be on its way and the socket closed: no SIGPIPE.
    (void)::send(fd, list.data(), list.size(), MSG_NOSIGNAL);
    std::uint8_t buf[2048];
    ssize_t n, total = 0;
    while ((n = ::read(fd, buf, sizeof buf)) > 0) {
      if (::write(pipefd[1], buf, static_cast<std::size_t>(n)) != n) return 6;
      total += n;
    }
    return total > 0 ? 0 : 7;
  };

  // The file system stops it first: the directory is nobody's, 0700.
  {
    Child c;
    ASSERT_TRUE(c.run(intruder, kStrangerUid, kStrangerUid));
    EXPECT_EQ(c.wait(), std::optional<int>(3));
  }
  // With the modes opened by mistake, the agent's own check refuses it.
  ASSERT_EQ(::chmod(ctl_dir_.c_str(), 0755), 0);
  ASSERT_EQ(::chmod(ctl_path_.c_str(), 0666), 0);
  {
    Child c;
    ASSERT_TRUE(c.run(intruder, kStrangerUid, kStrangerUid));
    EXPECT_EQ(c.wait(), std::optional<int>(0));
  }
  ::close(pipefd[1]);
  Bytes got(4096);
  const ssize_t n = ::read(pipefd[0], got.data(), got.size());
  ::close(pipefd[0]);
  ASSERT_GT(n, 4);
  got.resize(static_cast<std::size_t>(n));
  auto msg = decode_agent_message(ByteSpan(got).subspan(4));
  ASSERT_TRUE(msg.ok()) << msg.error();
  const auto& st = std::get<ControlStatus>(msg.value());
  EXPECT_FALSE(st.ok);
  EXPECT_EQ(st.message, "uid 54321 may not use the sfsagent of uid 65534");
  EXPECT_EQ(agent.stop(SIGTERM), std::optional<int>(0)) << agent.log();
  EXPECT_NE(agent.log().find("refused a control connection from uid 54321"), std::string::npos)
      << agent.log();
}

TEST_F(AgentProcessTest, AgentRestartAndSfsclientRestart) {
  start_registry();
  {
    Child agent;
    start_agent(agent);
    ASSERT_TRUE(eventually([&] { return reg_->has_agent(kNobodyUid); })) << agent.log();
    expect_good_login(1);
    EXPECT_EQ(agent.stop(SIGTERM), std::optional<int>(0));
    ASSERT_TRUE(eventually([&] { return !reg_->has_agent(kNobodyUid); }));
    EXPECT_FALSE(sign_sync(*reg_, kNobodyUid, kServerA, session_n(1), 2).ok());
  }
  Child agent;
  start_agent(agent);
  ASSERT_TRUE(eventually([&] { return reg_->has_agent(kNobodyUid); })) << agent.log();
  expect_good_login(3);

  // sfsclient goes away and comes back: the agent registers again by itself.
  close_registry();
  std::this_thread::sleep_for(300ms);  // a few failed reconnects
  start_registry();
  ASSERT_TRUE(eventually([&] { return reg_->has_agent(kNobodyUid); })) << agent.log();
  expect_good_login(4);
  EXPECT_NE(agent.log().find("lost sfsclient"), std::string::npos) << agent.log();
  EXPECT_EQ(agent.stop(SIGTERM), std::optional<int>(0));
  close_registry();
}

TEST_F(AgentProcessTest, StartsBeforeSfsclient) {
  Child agent;
  start_agent(agent);
  ASSERT_TRUE(eventually([&] { return std::filesystem::exists(ctl_path_); })) << agent.log();
  std::this_thread::sleep_for(200ms);
  start_registry();
  ASSERT_TRUE(eventually([&] { return reg_->has_agent(kNobodyUid); })) << agent.log();
  expect_good_login(1);
  EXPECT_EQ(agent.stop(SIGTERM), std::optional<int>(0));
  close_registry();
}

TEST_F(AgentProcessTest, OneAgentPerControlSocketAndStaleSocketsReplaced) {
  start_registry();
  Child first;
  start_agent(first);
  ASSERT_TRUE(eventually([&] { return reg_->has_agent(kNobodyUid); })) << first.log();
  Child second;
  start_agent(second);
  EXPECT_EQ(second.wait(), std::optional<int>(1));
  EXPECT_NE(second.log().find("is already running for " + ctl_path_), std::string::npos)
      << second.log();
  EXPECT_NE(second.log().find("pid " + std::to_string(first.pid())), std::string::npos)
      << second.log();
  EXPECT_EQ(reg_->agents().at(0).pid, first.pid());  // the first is untouched

  // Killed without a chance to clean up: its socket file stays, stale.
  EXPECT_EQ(first.stop(SIGKILL), std::optional<int>(128 + SIGKILL));
  ASSERT_TRUE(std::filesystem::exists(ctl_path_));
  Child third;
  start_agent(third);
  ASSERT_TRUE(eventually([&] {
    auto a = reg_->agents();
    return a.size() == 1 && a[0].pid == third.pid();
  })) << third.log();
  expect_good_login(1);
  EXPECT_EQ(third.stop(SIGTERM), std::optional<int>(0));
  close_registry();
}

TEST_F(AgentProcessTest, BadOptionsAndKeyFilesAreRefused) {
  {
    Child c;
    ASSERT_TRUE(c.exec(SFSAGENT_BIN, {"--help"}, kNobodyUid, kNobodyUid, dir_ / "help.log"));
    EXPECT_EQ(c.wait(), std::optional<int>(0));
    EXPECT_NE(c.log().find("usage: sfsagent"), std::string::npos);
  }
  {
    Child c;
    ASSERT_TRUE(c.exec(SFSAGENT_BIN, {"--bogus"}, kNobodyUid, kNobodyUid, dir_ / "bogus.log"));
    EXPECT_EQ(c.wait(), std::optional<int>(2));
  }
  // A key file others may read.
  ASSERT_EQ(::chmod(key_path_.c_str(), 0644), 0);
  {
    Child c;
    start_agent(c);
    EXPECT_EQ(c.wait(), std::optional<int>(1));
    EXPECT_NE(c.log().find("run chmod 600 " + key_path_), std::string::npos) << c.log();
  }
  // A key file of someone else's (root's), even if nobody could read it.
  ASSERT_EQ(::chmod(key_path_.c_str(), 0600), 0);
  ASSERT_EQ(::chown(key_path_.c_str(), 0, 0), 0);
  {
    Child c;
    start_agent(c);
    EXPECT_EQ(c.wait(), std::optional<int>(1));
    EXPECT_NE(c.log().find("cannot read key file " + key_path_), std::string::npos) << c.log();
  }
  EXPECT_FALSE(std::filesystem::exists(ctl_path_));
}

}  // namespace
}  // namespace sfs::test
