// key_holder_test.cc: the server's private key lives only in sfsd's key
// holder process (sfsd/src/key_holder.h), never in the process that parses
// the network's input. Proven by reading both processes' memory through
// /proc/PID/mem (the test runs as root) and searching it for the key's
// secret bytes and their base32 text: found in the holder (so the search
// works), absent from sfsd. Also: handshakes go through the holder; a lost
// holder fails new handshakes (logged) while open connections go on; a
// stalled one fails only the handshakes it misses; the holder ends with
// sfsd.
// Starts: ganesha.nfsd, sfsd (with its key holder).
#include <dirent.h>
#include <fcntl.h>

#include <cstring>
#include <fstream>
#include <sstream>

#include "sfs/encoding.h"
#include "sfsd_test_util.h"

namespace sfsd_test {
namespace {

// The whole of a small /proc file, or "" if it cannot be read. Read with
// read(2), not an ifstream: a process that exits between open and read makes
// read fail with ESRCH, which libstdc++'s filebuf turns into an exception.
std::string read_proc(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return {};
  std::string out;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;  // end, or the process is gone (ESRCH)
    out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return out;
}

// The pid of PARENT's child whose command name is `comm`, or -1.
pid_t child_named(pid_t parent, const std::string& comm) {
  DIR* d = ::opendir("/proc");
  if (!d) return -1;
  pid_t found = -1;
  while (dirent* e = ::readdir(d)) {
    const pid_t pid = static_cast<pid_t>(std::atoi(e->d_name));
    if (pid <= 0) continue;
    const std::string stat = read_proc("/proc/" + std::to_string(pid) + "/stat");
    // pid (comm) state ppid ...
    const std::size_t open = stat.find('('), close = stat.rfind(')');
    if (open == std::string::npos || close == std::string::npos) continue;
    std::istringstream rest(stat.substr(close + 2));
    char state;
    pid_t ppid = 0;
    rest >> state >> ppid;
    if (ppid == parent && stat.substr(open + 1, close - open - 1) == comm) found = pid;
  }
  ::closedir(d);
  return found;
}

// True once pid has exited (gone, or a zombie nobody reaped yet).
bool gone(pid_t pid) {
  const std::string stat = read_proc("/proc/" + std::to_string(pid) + "/stat");
  const std::size_t close = stat.rfind(')');
  return close == std::string::npos || stat.compare(close + 2, 1, "Z") == 0;
}

// True if any readable mapping of `pid` holds one of the needles. Mappings
// above 1 GiB (sanitizer shadow memory, reserved and mostly untouched) and
// the kernel's [vvar]/[vsyscall] are skipped.
bool memory_holds(pid_t pid, const std::vector<std::string>& needles, std::string* where = nullptr) {
  std::ifstream maps("/proc/" + std::to_string(pid) + "/maps");
  const int mem = ::open(("/proc/" + std::to_string(pid) + "/mem").c_str(), O_RDONLY | O_CLOEXEC);
  EXPECT_GE(mem, 0) << "cannot open /proc/" << pid << "/mem";
  if (mem < 0) return false;
  std::string line;
  std::vector<char> buf;
  bool found = false;
  constexpr std::size_t kChunk = 16 << 20, kOverlap = 128;
  while (!found && std::getline(maps, line)) {
    unsigned long lo = 0, hi = 0;
    char perms[8] = {0};
    if (std::sscanf(line.c_str(), "%lx-%lx %7s", &lo, &hi, perms) != 3 || perms[0] != 'r') continue;
    if (hi - lo > (1ul << 30) || line.find("[vvar") != std::string::npos ||
        line.find("[vsyscall]") != std::string::npos)
      continue;
    for (unsigned long at = lo; at < hi && !found;) {
      const std::size_t want = std::min<unsigned long>(kChunk, hi - at);
      buf.resize(want);
      const ssize_t n = ::pread(mem, buf.data(), want, static_cast<off_t>(at));
      if (n <= 0) break;  // e.g. a guard page
      for (const std::string& needle : needles) {
        if (::memmem(buf.data(), static_cast<std::size_t>(n), needle.data(), needle.size())) {
          found = true;
          if (where) *where = line;
        }
      }
      if (static_cast<std::size_t>(n) < want) break;
      at += want > kOverlap && at + want < hi ? want - kOverlap : want;
    }
  }
  ::close(mem);
  return found;
}

class KeyHolderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "reading another process's memory needs root";
    std::string why;
    if (!server_.setup(&why)) GTEST_SKIP() << why;
    ASSERT_TRUE(server_.start_sfsd(&why)) << why;
    auto kf = sfs::read_key_file(server_.dir() + "/server.key");
    ASSERT_TRUE(kf.ok() && kf.value().server) << (kf.ok() ? "not a server key" : kf.error());
    const sfs::ServerKey& k = *kf.value().server;
    for (const sfs::Key32* s : {&k.x25519_secret(), &k.ed25519_seed()}) {
      secrets_.emplace_back(reinterpret_cast<const char*>(s->data()), s->size());
      secrets_.push_back(sfs::base32_encode(*s));
    }
    holder_ = child_named(server_.sfsd().pid(), "sfsd-key");
    ASSERT_GT(holder_, 0) << "sfsd has no key holder child";
  }
  void TearDown() override {
    if (HasFailure()) std::cerr << "sfsd said:\n" << server_.sfsd().errors();
  }

  RunningRuntime run_;
  SfsdServer server_;
  std::vector<std::string> secrets_;  // raw secrets and their base32 text
  pid_t holder_ = -1;
};

TEST_F(KeyHolderTest, TheKeyIsInTheHolderAndNotInSfsdWhichStillServes) {
  std::string why;
  // A handshake (through the holder) and a login, so that every path that
  // touches the key has run in sfsd before its memory is read.
  auto c = connect(server_, 1, nullptr, &why);
  ASSERT_TRUE(c) << why;
  const std::uint32_t root = login(*c, server_.user("root"));
  EXPECT_TRUE(getattr(*c, root, c->root().fh).has_value());

  std::string where;
  EXPECT_TRUE(memory_holds(holder_, {secrets_[0]}, &where))
      << "the holder's memory does not hold the X25519 secret: the search is broken";
  EXPECT_FALSE(memory_holds(server_.sfsd().pid(), secrets_, &where))
      << "sfsd's memory holds the server key (or its base32 text) in " << where;
  c->close();
}

TEST_F(KeyHolderTest, ALostHolderFailsNewHandshakesAndOpenConnectionsGoOn) {
  std::string why;
  auto before = connect(server_, 1, nullptr, &why);
  ASSERT_TRUE(before) << why;
  const std::uint32_t root = login(*before, server_.user("root"));
  ASSERT_EQ(::kill(holder_, SIGKILL), 0);
  EXPECT_FALSE(connect(server_, 2, nullptr, &why)) << "a handshake succeeded without the key";
  EXPECT_TRUE(eventually([&] { return server_.sfsd().errors().find("server key holder lost") != std::string::npos; }, 10s))
      << server_.sfsd().errors();
  EXPECT_TRUE(getattr(*before, root, before->root().fh).has_value()) << "an open connection stopped working";
  EXPECT_FALSE(server_.sfsd().exited());
  before->close();
}

// A holder that is only slow (here: stopped for longer than sfsd waits)
// fails the handshakes it misses, and no more: its late answers are dropped
// by number, and once it runs again new handshakes succeed.
TEST_F(KeyHolderTest, AStalledHolderFailsOnlyTheHandshakesItMisses) {
  std::string why;
  ASSERT_EQ(::kill(holder_, SIGSTOP), 0);
  EXPECT_FALSE(connect(server_, 1, nullptr, &why)) << "a handshake succeeded with the holder stopped";
  EXPECT_TRUE(eventually([&] { return server_.sfsd().errors().find("did not answer in 2 s") != std::string::npos; }, 10s))
      << server_.sfsd().errors();
  ASSERT_EQ(::kill(holder_, SIGCONT), 0);
  // Its answer to the missed question is now on its way (or there): the
  // next handshake must get its own answer, not that one.
  auto after = connect(server_, 2, nullptr, &why);
  ASSERT_TRUE(after) << "no handshake after the holder ran again: " << why;
  const std::uint32_t root = login(*after, server_.user("root"));
  EXPECT_TRUE(getattr(*after, root, after->root().fh).has_value());
  EXPECT_EQ(server_.sfsd().errors().find("server key holder lost"), std::string::npos) << server_.sfsd().errors();
  after->close();
}

TEST_F(KeyHolderTest, TheHolderEndsWithSfsd) {
  server_.sfsd().stop(SIGTERM, 10s);
  EXPECT_TRUE(eventually([&] { return gone(holder_); }, 10s)) << "the key holder outlived sfsd";
  // SIGKILLed sfsd: the holder dies too (PR_SET_PDEATHSIG).
  std::string why;
  ASSERT_TRUE(server_.start_sfsd(&why)) << why;
  const pid_t holder = child_named(server_.sfsd().pid(), "sfsd-key");
  ASSERT_GT(holder, 0);
  server_.sfsd().stop(SIGKILL, 10s);
  EXPECT_TRUE(eventually([&] { return gone(holder); }, 10s)) << "the key holder outlived a killed sfsd";
}

}  // namespace
}  // namespace sfsd_test
