// faults_test.cc: a random workload through a real FUSE mount while the
// pieces under it are killed and restarted at random points.
//
// Starts: ganesha.nfsd (scripts/ganesha.sh), sfsd, one sfsclient mounting
// sfsd through a ResetProxy (reset_proxy.h), all in one $TMPDIR/sfs-nfs.*
// directory. Several Writers (writer.h) run on threads of their own, each
// in its own directory; meanwhile the test injects, in a shuffled cycle so
// that every kind comes up: SIGKILL of ganesha (then restart), SIGKILL of
// sfsd (then restart), SIGKILL of sfsclient (the dead mount is detached and
// sfsclient mounted again), and a TCP reset of every connection between
// sfsclient and sfsd. After each repaired fault the writers re-read all
// their files; at the end every file is compared, byte for byte, with the
// model, through the mount and on the server's disk, and the mount must
// answer.
//
// Seeded: SFS_FAULTS_SEED=N repeats a run's choices (operations, offsets,
// fault kinds and delays; thread timing still varies); the seed is printed
// at the start and in every failure. Bounded: SFS_FAULTS_SECONDS of faults
// (default 60) plus set-up and the final check; every wait has a limit.
#include <sys/mount.h>

#include <algorithm>
#include <cstdlib>

#include "../mount/mount_test_util.h"
#include "reset_proxy.h"
#include "settings.h"
#include "writer.h"

namespace faults {
namespace {

using namespace std::chrono_literals;
using mount_test::Mount;
using sfsd_test::eventually;

enum class Fault { kGanesha, kSfsd, kSfsclient, kReset };
const char* fault_name(Fault f) {
  switch (f) {
    case Fault::kGanesha: return "SIGKILL ganesha";
    case Fault::kSfsd: return "SIGKILL sfsd";
    case Fault::kSfsclient: return "SIGKILL sfsclient, remount";
    case Fault::kReset: return "reset every TCP connection";
  }
  return "?";
}

class FaultsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    seed_ = env_number("SFS_FAULTS_SEED", std::random_device{}());
    seconds_ = env_number("SFS_FAULTS_SECONDS", 60);
    std::printf("faults: seed %llu (SFS_FAULTS_SEED=%llu repeats it), %llu s of faults\n",
                static_cast<unsigned long long>(seed_), static_cast<unsigned long long>(seed_),
                static_cast<unsigned long long>(seconds_));
    if (::geteuid() != 0) GTEST_SKIP() << "FUSE mounts need root here";
    if (::access("/dev/fuse", R_OK | W_OK) != 0) GTEST_SKIP() << "no /dev/fuse";
    std::string why;
    if (!server_.setup(&why)) GTEST_SKIP() << why;
    ::chmod(server_.export_dir().c_str(), 0777);  // the anonymous user writes
    ASSERT_TRUE(server_.start_sfsd(&why)) << why;
    proxy_ = std::make_unique<ResetProxy>(server_.port());
    ASSERT_NE(proxy_->port(), 0) << "the proxy could not listen";
    // The name sfsclient dials: the proxy's port, certified by sfsd's key.
    auto key = sfs::read_key_file(server_.dir() + "/server.key");
    ASSERT_TRUE(key.ok()) << key.error();
    name_ = sfs::format_name(
        sfs::name_for(sfs::Location{"127.0.0.1", proxy_->port()}, key.value().server->public_key()));
    mount_ = std::make_unique<Mount>(server_.dir() + "/client");
    ASSERT_TRUE(mount_->start(&why, client_flags())) << why;
    journal_ = std::make_unique<Journal>(server_.dir() + "/journal");
  }
  void TearDown() override {
    mount_.reset();  // unmounted (aborted if stuck) before sfsd and ganesha go
    proxy_.reset();
  }
  // Calls wait this long for a lost server, then fail with EIO: longer
  // than any restart here, short enough that a lost server shows.
  static std::vector<std::string> client_flags() { return {"--timeout", "20s"}; }
  std::string at() const { return mount_->path() + "/" + name_; }
  std::string seed_text() const { return "seed " + std::to_string(seed_) + " (SFS_FAULTS_SEED)"; }

  pid_t ganesha_pid() {
    std::ifstream in(server_.ganesha().state_dir() + "/ganesha.pid");
    pid_t pid = -1;
    in >> pid;
    return pid;
  }

  // A process the test did not kill is gone: a crash.
  std::string crashed() {
    if (server_.sfsd().exited()) return "sfsd exited by itself:\n" + server_.sfsd().errors();
    if (mount_->exited()) return "sfsclient exited by itself:\n" + mount_->log();
    if (const pid_t g = ganesha_pid(); g <= 0 || ::kill(g, 0) != 0) return "ganesha is gone";
    return "";
  }

  // Kills one piece and brings it back; "" or why it could not.
  std::string inject(Fault f, std::mt19937_64& rng) {
    const auto pause = std::chrono::milliseconds(std::uniform_int_distribution<int>(0, 1500)(rng));
    std::string why;
    switch (f) {
      case Fault::kGanesha: {
        const pid_t g = ganesha_pid();
        if (g <= 0 || ::kill(g, SIGKILL) != 0) return "no ganesha to kill";
        if (!eventually([&] { return ::kill(g, 0) != 0; }, 10s)) return "ganesha outlived SIGKILL";
        std::this_thread::sleep_for(pause);
        // stop() first: it ends the old watchdog and forgets the pid file.
        return server_.restart_ganesha(&why) ? "" : why;
      }
      case Fault::kSfsd: {
        server_.stop_sfsd(SIGKILL);
        std::this_thread::sleep_for(pause);
        // It starts in about a second. (It once took 20 s and more: its exec
        // flushed the writers' files, which waited for sfsd itself; see
        // Writer::own_descriptor_table.)
        std::string out;
        return server_.sfsd().start(server_.args(), &out, 30s).empty() ? "sfsd did not start:\n" + out : "";
      }
      case Fault::kSfsclient: {
        ::kill(mount_->pid(), SIGKILL);
        if (!eventually([&] { return mount_->exited(); }, 10s)) return "sfsclient outlived SIGKILL";
        old_logs_ += mount_->log();
        mount_->stop();  // detaches the dead mount (its files answer ENOTCONN)
        std::this_thread::sleep_for(pause);
        return mount_->start(&why, client_flags()) ? "" : why;
      }
      case Fault::kReset:
        proxy_->reset_all();
        return "";
    }
    return "unknown fault";
  }

  // Sleeps, watching the writers: one stuck in an operation for
  // kHangLimit is a hang (every call through the mount fails by
  // --timeout once the server is back or gone for good).
  static constexpr auto kHangLimit = 150s;
  bool sleep_watching(std::chrono::milliseconds d, std::vector<std::unique_ptr<Writer>>& writers) {
    const auto end = std::chrono::steady_clock::now() + d;
    while (std::chrono::steady_clock::now() < end) {
      std::this_thread::sleep_for(50ms);
      const auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                              std::chrono::steady_clock::now().time_since_epoch())
                              .count();
      for (auto& w : writers) {
        const auto since = w->busy_since_ms();
        if (since && now_ms - since > std::chrono::milliseconds(kHangLimit).count()) {
          ADD_FAILURE() << seed_text() << ": hang: a writer has been in \"" << w->doing() << "\" for "
                        << (now_ms - since) / 1000 << " s\nsfsclient log:\n" << mount_->log();
          mount_->abort_fuse();  // frees the writer (ENOTCONN) so the test can end
          return false;
        }
      }
    }
    return true;
  }

  // Every writer's files, read through the mount and from the server's
  // disk, must be exactly the model, and no other name may be there.
  void final_check(std::vector<std::unique_ptr<Writer>>& writers) {
    struct stat st;
    ASSERT_TRUE(eventually([&] { return ::stat(at().c_str(), &st) == 0; }, 60s))
        << seed_text() << ": the mount does not answer after the faults: " << std::strerror(errno);
    for (std::size_t i = 0; i < writers.size(); ++i) {
      const std::string sub = "/w" + std::to_string(i);
      const int dirfd = ::open((at() + sub).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      ASSERT_GE(dirfd, 0) << seed_text() << ": " << std::strerror(errno);
      const auto& model = writers[i]->model();
      for (const auto& name : writers[i]->names()) {
        const auto it = model.find(name);
        const Expect e{it == model.end() ? std::nullopt : std::optional(it->second), {}};
        std::string got;
        const int rc = Writer::read_fresh(dirfd, name, &got);
        EXPECT_GE(rc, 0) << seed_text() << ": reading w" << i << "/" << name << ": " << std::strerror(errno);
        std::string m = mismatch(e, rc == 1 ? std::optional(got) : std::nullopt);
        EXPECT_EQ(m, "") << seed_text() << ": through the mount, w" << i << "/" << name << " " << m
                         << "\njournal: " << journal_->path();
        std::optional<std::string> on_disk;
        if (const int fd = ::open((server_.export_dir() + sub + "/" + name).c_str(), O_RDONLY | O_CLOEXEC); fd >= 0) {
          on_disk.emplace();
          EXPECT_EQ(Writer::read_all(fd, &*on_disk), 1) << std::strerror(errno);
          ::close(fd);
        }
        m = mismatch(e, on_disk);
        EXPECT_EQ(m, "") << seed_text() << ": on the server's disk, w" << i << "/" << name << " " << m;
      }
      ::close(dirfd);
      for (const auto& entry : std::filesystem::directory_iterator(server_.export_dir() + sub)) {
        const auto n = entry.path().filename().string();
        EXPECT_TRUE(model.count(n)) << seed_text() << ": w" << i << "/" << n << " exists but was never acknowledged";
      }
    }
  }

  sfsd_test::SfsdServer server_;
  std::unique_ptr<ResetProxy> proxy_;
  std::unique_ptr<Mount> mount_;
  std::unique_ptr<Journal> journal_;
  std::string name_, old_logs_;
  std::uint64_t seed_ = 0, seconds_ = 0;
};

TEST_F(FaultsTest, AcknowledgedDataSurvivesKillsRestartsAndResets) {
  constexpr int kWriters = 4;
  std::atomic<bool> stop{false}, abandon{false};
  std::atomic<std::uint64_t> faults{0};
  std::vector<std::unique_ptr<Writer>> writers;
  for (int i = 0; i < kWriters; ++i) {
    const std::string sub = "/w" + std::to_string(i);
    ASSERT_EQ(::mkdir((at() + sub).c_str(), 0777), 0) << std::strerror(errno);
    WriterOptions o;
    o.id = i;
    o.dir = at() + sub;
    o.server_dir = server_.export_dir() + sub;
    o.seed = seed_;
    o.journal = journal_.get();
    o.stop = &stop;
    o.abandon = &abandon;
    o.faults = &faults;
    writers.push_back(std::make_unique<Writer>(std::move(o)));
  }
  std::atomic<int> running{kWriters};
  std::vector<std::thread> threads;
  for (auto& w : writers)
    threads.emplace_back([&, w = w.get()] {
      w->run();
      running--;
    });

  std::mt19937_64 rng(seed_);
  std::vector<Fault> cycle = {Fault::kGanesha, Fault::kSfsd, Fault::kSfsclient, Fault::kReset};
  std::map<std::string, int> injected;
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(seconds_);
  bool alive = true;
  for (std::size_t k = 0; alive && std::chrono::steady_clock::now() < end; ++k) {
    if (k % cycle.size() == 0) std::shuffle(cycle.begin(), cycle.end(), rng);
    alive = sleep_watching(std::chrono::milliseconds(std::uniform_int_distribution<int>(1000, 4000)(rng)), writers);
    if (!alive) break;
    if (const std::string c = crashed(); !c.empty()) {
      ADD_FAILURE() << seed_text() << ": " << c;
      break;
    }
    const Fault f = cycle[k % cycle.size()];
    journal_->add(-1, std::string("FAULT ") + fault_name(f));
    const auto t0 = std::chrono::steady_clock::now();
    if (const std::string why = inject(f, rng); !why.empty()) {
      ADD_FAILURE() << seed_text() << ": could not repair \"" << fault_name(f) << "\": " << why;
      mount_->abort_fuse();  // the writers' calls would only wait for --timeout
      alive = false;
      break;
    }
    const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    journal_->add(-1, "repaired in " + std::to_string(took) + " s");
    std::printf("faults: %s, repaired in %.1f s\n", fault_name(f), took);
    injected[fault_name(f)]++;
    faults++;
  }
  stop = true;
  if (HasFailure()) abandon = true;  // a crash or a hang: nothing more to learn from the writers
  while (running > 0 && alive) alive = sleep_watching(200ms, writers);
  abandon = true;
  for (auto& t : threads) t.join();

  std::string summary;
  int ops = 0, acks = 0, settles = 0;
  std::map<int, int> errors;
  for (auto& w : writers) {
    ops += w->ops;
    acks += w->acks;
    settles += w->settles;
    for (auto [e, n] : w->errors) errors[e] += n;
    for (const auto& v : w->violations) ADD_FAILURE() << seed_text() << ": " << v << "\njournal: " << journal_->path();
  }
  for (auto& [f, n] : injected) summary += "  " + f + ": " + std::to_string(n) + "\n";
  for (auto& [e, n] : errors) summary += "  failed with " + std::string(std::strerror(e)) + ": " + std::to_string(n) + "\n";
  std::printf("faults: seed %llu: %d operations, %d acknowledged, %d settled after a failure or fault; "
              "proxy resets %llu\n%s",
              static_cast<unsigned long long>(seed_), ops, acks, settles,
              static_cast<unsigned long long>(proxy_->resets()), summary.c_str());
  if (const std::string c = crashed(); !c.empty()) ADD_FAILURE() << seed_text() << ": " << c;
  // After a hang or a failed repair the mount was aborted: nothing to check.
  if (alive) final_check(writers);
  if (HasFailure()) {
    // Keep the journal and logs for a person: the test's directory goes.
    const std::string keep = std::filesystem::temp_directory_path().string() + "/sfs-faults-" + std::to_string(seed_);
    std::filesystem::create_directories(keep);
    std::filesystem::copy_file(journal_->path(), keep + "/journal", std::filesystem::copy_options::overwrite_existing);
    std::ofstream(keep + "/sfsclient.log") << old_logs_ << mount_->log();
    std::ofstream(keep + "/sfsd.log") << server_.sfsd().errors();
    std::printf("faults: journal and logs kept in %s\n", keep.c_str());
  }
}

}  // namespace
}  // namespace faults
