// isolation_test.cc: only root on 127.0.0.1 may use the loopback NFS
// server. A local process of another user that talks to ganesha directly
// with libnfs (MOUNT, raw NFSv3 calls, libnfs's own mount; claiming uid 0 in
// AUTH_UNIX, then its own uid; handed real file handles) gets nothing: no
// byte of a 0600 root file, no directory listing, no change. The same
// helper run as root is the control: it reads and lists, so the attempts
// are right and the refusals come from the server's rules
// (docs/nfs-backend.md, "The back door is closed").
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "asmp/nfs.h"
#include "nfs_fixture.h"

#ifndef SFS_NFS_INTRUDER
#error "SFS_NFS_INTRUDER (the path of nfs_intruder) must be defined by the build"
#endif

namespace sfs_test {
namespace {

constexpr const char* kSecretName = "secret_of_root";
constexpr const char* kSecret = "root only: nobody else may read this\n";

std::string hex(std::string_view s) {
  static const char* d = "0123456789abcdef";
  std::string h;
  for (unsigned char c : s) {
    h += d[c >> 4];
    h += d[c & 15];
  }
  return h;
}

struct IntruderRun {
  int status = -1;  // exit status, or -1
  std::vector<std::string> lines;
  std::string text;
  bool has(const std::string& prefix) const {
    for (auto& l : lines)
      if (l.rfind(prefix, 0) == 0) return true;
    return false;
  }
  std::string line(const std::string& prefix) const {
    for (auto& l : lines)
      if (l.rfind(prefix, 0) == 0) return l;
    return "";
  }
};

// fork, drop to uid/gid 65534 with no groups (if drop), exec nfs_intruder.
// Between fork and exec only system calls: the test process has threads.
IntruderRun run_intruder(bool drop, const std::vector<std::string>& args) {
  std::vector<std::string> all{SFS_NFS_INTRUDER};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);
  int fds[2];
  IntruderRun run;
  if (pipe2(fds, O_CLOEXEC) != 0) return run;
  pid_t pid = fork();
  if (pid == 0) {
    dup2(fds[1], 1);
    dup2(fds[1], 2);
    if (drop) {
      if (setgroups(0, nullptr) != 0 || setgid(kNobody) != 0 || setuid(kNobody) != 0) _exit(125);
      if (setuid(0) == 0) _exit(126);  // root could come back: not unprivileged
    }
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(fds[1]);
  auto until = std::chrono::steady_clock::now() + 120s;
  char buf[4096];
  for (;;) {
    pollfd p{fds[0], POLLIN, 0};
    if (std::chrono::steady_clock::now() > until) {
      ADD_FAILURE() << "nfs_intruder did not finish within 120 s";
      kill(pid, SIGKILL);
      break;
    }
    if (poll(&p, 1, 500) <= 0) continue;
    ssize_t n = read(fds[0], buf, sizeof buf);
    if (n <= 0) break;
    run.text.append(buf, static_cast<std::size_t>(n));
  }
  close(fds[0]);
  int st = 0;
  if (pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st)) run.status = WEXITSTATUS(st);
  std::istringstream in(run.text);
  for (std::string l; std::getline(in, l);) run.lines.push_back(l);
  return run;
}

TEST_F(NfsClientTest, UnprivilegedLocalProcessIsRefusedEveryNfsCall) {
  const std::string export_dir = std::filesystem::canonical(g_server->export_dir()).string();
  const std::string path = export_dir + "/" + kSecretName;
  { std::ofstream(path) << kSecret; }
  ASSERT_EQ(chmod(path.c_str(), 0600), 0);
  asmp::nfs::FileHandle fh = lookup_ok(root_cred_, root_, kSecretName);
  ASSERT_FALSE(fh.empty());
  const std::vector<std::string> args{std::to_string(g_server->nfs_port()),
                                      std::to_string(g_server->mnt_port()),
                                      export_dir,
                                      root_.hex(),
                                      fh.hex(),
                                      kSecretName};

  // The control, as root: every attempt works except NFSv4, which is off.
  IntruderRun root = run_intruder(false, args);
  SCOPED_TRACE("nfs_intruder as root:\n" + root.text);
  ASSERT_EQ(root.status, 0);
  EXPECT_TRUE(root.has("uid 0"));
  ASSERT_TRUE(root.has("srcport "));
  EXPECT_LT(std::stoi(root.line("srcport ").substr(8)), 1024) << "libnfs as root binds a reserved port";
  EXPECT_TRUE(root.has("mnt ok"));
  for (const char* proc : {"GETATTR", "LOOKUP", "ACCESS", "READ", "READDIR", "READDIRPLUS", "FSSTAT", "FSINFO"})
    EXPECT_TRUE(root.has(std::string("call uid0 ") + proc + " ok")) << proc;
  EXPECT_TRUE(root.has("read-data " + hex(kSecret)));
  EXPECT_NE(root.line("readdir-names ").find(kSecretName), std::string::npos);
  EXPECT_TRUE(root.has("url-mount ok"));
  EXPECT_TRUE(root.has("url-read ok " + hex(kSecret)));
  EXPECT_TRUE(root.has("nfs4-mount failed")) << "NFSv4 must be off";

  // uid 65534, claiming uid 0 and then itself, trying to write as well.
  std::vector<std::string> wargs = args;
  wargs.push_back("--try-writes");
  IntruderRun nobody = run_intruder(true, wargs);
  SCOPED_TRACE("nfs_intruder as uid 65534:\n" + nobody.text);
  ASSERT_EQ(nobody.status, 0) << "125: could not drop privileges; 126: could regain root; 127: exec failed";
  EXPECT_TRUE(nobody.has("uid 65534"));
  ASSERT_TRUE(nobody.has("srcport "));
  EXPECT_GE(std::stoi(nobody.line("srcport ").substr(8)), 1024) << "an unprivileged process cannot bind below 1024";
  int calls = 0;
  for (auto& l : nobody.lines) {
    if (l.rfind("call ", 0) != 0 || l.find(" NULL ") != std::string::npos) continue;
    ++calls;
    EXPECT_NE(l.find(" refused"), std::string::npos) << "served: " << l;
  }
  EXPECT_EQ(calls, 8 + 6 + 8);  // reads and writes as uid 0, reads as itself
  EXPECT_FALSE(nobody.has("read-data"));
  EXPECT_FALSE(nobody.has("readdir-names"));
  EXPECT_TRUE(nobody.has("url-mount failed"));
  EXPECT_FALSE(nobody.has("url-read ok"));
  EXPECT_TRUE(nobody.has("nfs4-mount failed"));

  // Nothing changed.
  struct stat st {};
  ASSERT_EQ(stat(path.c_str(), &st), 0) << "the secret was removed or renamed";
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_EQ(st.st_uid, 0u);
  std::string content;
  std::getline(std::ifstream(path), content, '\0');
  EXPECT_EQ(content, kSecret);
  for (const char* n : {"intruder", "intruder.d", "stolen"})
    EXPECT_FALSE(std::filesystem::exists(export_dir + "/" + n)) << n;
}

}  // namespace
}  // namespace sfs_test
