// client_config_test.cc: sfsclient's settings as an administrator writes
// them: the shipped example parses and shows the real defaults, a bad line
// names its file and line, flags override the file. Starts nothing.
#include "client_config.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

namespace sfsclient {
namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// The example's lines, uncommented: what an administrator gets by removing
// the `# ` in front of each setting.
std::string uncommented(const std::string& text) {
  std::istringstream in(text);
  std::string line, out;
  while (std::getline(in, line)) {
    if (line.rfind("# ", 0) != 0) continue;
    const std::string rest = line.substr(2);
    const std::size_t sp = rest.find(' ');
    if (sp == 0 || sp == std::string::npos ||
        rest.find_first_not_of("abcdefghijklmnopqrstuvwxyz_") != sp)
      continue;  // prose, not a `name value` line
    out += rest + "\n";
  }
  return out;
}

TEST(ClientConfig, TheShippedExampleParsesAndItsValuesAreTheDefaults) {
  const std::string path = std::string(SFS_SOURCE_DIR) + "/sfsclient/sfsclient.conf.example";
  const std::string text = slurp(path);
  ASSERT_FALSE(text.empty()) << path;
  ClientConfig as_shipped;
  ASSERT_TRUE(parse_client_config_text(text, path, as_shipped)) << "comments only: nothing to refuse";
  ClientConfig all;
  const std::string settings = uncommented(text);
  auto st = parse_client_config_text(settings, path, all);
  ASSERT_TRUE(st) << st.error() << "\n" << settings;
  const ClientConfig d;
  EXPECT_EQ(all.mountpoint, d.mountpoint);
  EXPECT_EQ(all.agent_socket, d.agent_socket);
  EXPECT_EQ(all.timeout, d.timeout);
  EXPECT_EQ(all.hard, d.hard);
  EXPECT_EQ(all.threads, d.threads);
  EXPECT_EQ(all.read_ahead_kb, d.read_ahead_kb);
  EXPECT_EQ(all.log_file, d.log_file);
  EXPECT_EQ(all.revoked_dir, d.revoked_dir);
  // The two that are off by default are shown with an example value.
  EXPECT_EQ(all.host_key, "/etc/sfs/host.key");
  EXPECT_EQ(all.pid_file, "/run/sfsclient.pid");
  // Every setting sfsclient knows is in the example.
  for (const char* name : {"mountpoint", "agent_socket", "timeout", "hard", "threads", "read_ahead_kb", "log_file",
                           "revoked_dir", "host_key", "pid_file"})
    EXPECT_NE(settings.find(std::string(name) + " "), std::string::npos) << name;
  EXPECT_NE(client_usage().find("--pid-file"), std::string::npos) << "a setting --help does not list";
}

TEST(ClientConfig, ABadLineNamesTheFileAndTheLine) {
  struct Case {
    const char* text;
    const char* says;
  };
  for (const Case& c : {Case{"timeout 5s\nhard maybe\n", "sfsclient.conf:2: "},
                        Case{"\n\nmountpoint relative/dir\n", "sfsclient.conf:3: "},
                        Case{"# fine\nnosuch 1\n", "sfsclient.conf:2: "},
                        Case{"timeout\n", "sfsclient.conf:1: "}}) {
    ClientConfig cfg;
    auto st = parse_client_config_text(c.text, "sfsclient.conf", cfg);
    ASSERT_FALSE(st) << c.text;
    EXPECT_NE(st.error().find(c.says), std::string::npos) << st.error();
  }
}

TEST(ClientConfig, FlagsOverrideTheFile) {
  char path[] = "/tmp/sfsclient-conf-XXXXXX";
  const int fd = ::mkstemp(path);
  ASSERT_GE(fd, 0);
  const std::string text = "mountpoint /from/file\ntimeout 5s\nread_ahead_kb 64\n";
  ASSERT_EQ(::write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
  ::close(fd);
  auto inv = parse_client_command_line({"mount", "--config", path, "--timeout", "7s", "/from/flag"});
  ::unlink(path);
  ASSERT_TRUE(inv) << inv.error();
  EXPECT_EQ(inv.value().command, "mount");
  EXPECT_EQ(inv.value().config.mountpoint, "/from/flag");
  EXPECT_EQ(inv.value().config.timeout, std::chrono::milliseconds(7000));
  EXPECT_EQ(inv.value().config.read_ahead_kb, 64u);
}

}  // namespace
}  // namespace sfsclient
