// lanes_test.cc: one mount, several connections to one server
// (`--connections N`, sfsclient/src/read_lanes.h). Reads go in turn over
// all of them and come back right; a read connection lost in the middle of
// a read costs nothing but a resend; a server that refuses the extra
// connections still serves the mount over the main one.
//
// The connections are looked at from outside, as the kernel sees them:
// the test (root) takes copies of sfsclient's sockets with pidfd_getfd,
// reads TCP_INFO from them (bytes each one received) and, to cut one,
// shuts the copy down (which shuts the socket sfsclient holds): conns_util.h.
// Starts: ganesha.nfsd, sfsd, sfsclient.
#include <sys/socket.h>
#include <sys/syscall.h>

#include <thread>

#include "conns_util.h"

namespace mount_test {
namespace {

using namespace std::chrono_literals;

class LanesTest : public MountFixture {
 protected:
  // A file written straight into the export (not through the mount, so no
  // client cache holds it), and its copy outside for cmp.
  std::string make_file(const std::string& name, std::size_t mib) {
    const std::string data = pattern(mib << 20, mib);
    std::ofstream(server_.export_dir() + "/" + name, std::ios::binary) << data;
    const std::string ref = server_.dir() + "/" + name + ".ref";
    std::ofstream(ref, std::ios::binary) << data;
    return ref;
  }
  // The local port of m's main connection: the only one before any read
  // (made when the server's directory is first looked at). 0: not found.
  std::uint16_t main_connection_port(Mount& m) {
    if (sh("ls '" + at(m) + "' > /dev/null") != 0) return 0;
    Conns c = connections_to(m.pid(), server_.port());
    return c.all.size() == 1 ? c.all[0].local_port : 0;
  }
};

TEST_F(LanesTest, ReadsGoInTurnOverEveryConnectionAndComeBackRight) {
  if (!pidfd_getfd_works()) GTEST_SKIP() << "no pidfd_getfd here";
  Mount& m = mount({"--connections", "3"});
  const std::string ref = make_file("big", 48);
  std::string out;
  const std::uint16_t main_port = main_connection_port(m);
  ASSERT_NE(main_port, 0) << m.log();
  ASSERT_EQ(sh("cmp " + ref + " '" + at(m) + "/big'", &out), 0) << out << m.log();
  Conns c = connections_to(m.pid(), server_.port());
  ASSERT_EQ(c.all.size(), 3u) << "sfsclient should hold 3 connections to sfsd:\n" << m.log();
  // Each carried a share of the 48 MiB (the lanes join after a read or two).
  for (const auto& k : c.all) EXPECT_GT(k.received(), 4u << 20) << "connection from port " << k.local_port;
  // Metadata stays on the main connection: creating 50 files and listing
  // them moves no data over a lane (at most the INVALIDATEs sfsd sends a
  // lane for the attributes its READ and GETROOT replies carried).
  std::vector<std::uint64_t> before;
  for (const auto& k : c.all) before.push_back(k.received());
  ASSERT_EQ(sh("for i in $(seq 50); do touch '" + at(m) + "'/f$i; done; ls -l '" + at(m) + "' > /dev/null", &out), 0)
      << out;
  for (std::size_t i = 0; i < c.all.size(); ++i) {
    const std::uint64_t moved = c.all[i].received() - before[i];
    if (c.all[i].local_port == main_port) EXPECT_GT(moved, 50u * 100) << "the main connection carries metadata";
    else EXPECT_LT(moved, 32u << 10) << "a read lane carried metadata";
  }
}

TEST_F(LanesTest, OneConnectionMeansOne) {
  if (!pidfd_getfd_works()) GTEST_SKIP() << "no pidfd_getfd here";
  Mount& m = mount({"--connections", "1"});
  const std::string ref = make_file("big", 8);
  std::string out;
  ASSERT_EQ(sh("cmp " + ref + " '" + at(m) + "/big'", &out), 0) << out;
  EXPECT_EQ(connections_to(m.pid(), server_.port()).all.size(), 1u);
}

TEST_F(LanesTest, AReadConnectionCutMidReadCostsOnlyAResend) {
  if (!pidfd_getfd_works()) GTEST_SKIP() << "no pidfd_getfd here";
  Mount& m = mount({"--connections", "2"});
  const std::string ref = make_file("big", 192);
  std::string out;
  const std::uint16_t main_port = main_connection_port(m);
  ASSERT_NE(main_port, 0) << m.log();
  int rc = -1;
  std::thread reader([&] { rc = sh("cmp " + ref + " '" + at(m) + "/big'", &out); });
  // Cut the lane once it carries data.
  bool cut = false;
  eventually(
      [&] {
        Conns c = connections_to(m.pid(), server_.port());
        for (auto& k : c.all)
          if (k.local_port != main_port && k.received() > (8u << 20)) {
            ::shutdown(k.fd, SHUT_RDWR);
            cut = true;
          }
        return cut;
      },
      60s);
  reader.join();
  ASSERT_TRUE(cut) << "no read connection carried data:\n" << m.log();
  EXPECT_EQ(rc, 0) << out << m.log();
  EXPECT_NE(m.log().find("lost read connection"), std::string::npos) << m.log();
  // And it comes back for later reads.
  EXPECT_TRUE(eventually(
      [&] {
        sh("cat '" + at(m) + "/big' > /dev/null");
        return connections_to(m.pid(), server_.port()).all.size() == 2;
      },
      30s))
      << m.log();
}

// sfsd lets one connection per source in: the lanes are refused, the mount
// carries on over its main connection.
class RefusedLanesTest : public LanesTest {
  std::vector<std::string> sfsd_flags() override { return {"--max-connections-per-source", "1"}; }
};

TEST_F(RefusedLanesTest, ReadsStayOnTheMainConnection) {
  Mount& m = mount({"--connections", "3"});
  const std::string ref = make_file("big", 16);
  std::string out;
  ASSERT_EQ(sh("cmp " + ref + " '" + at(m) + "/big'", &out), 0) << out << m.log();
  ASSERT_EQ(sh("cat '" + at(m) + "/big' > /dev/null && cmp " + ref + " '" + at(m) + "/big'", &out), 0) << out;
  EXPECT_NE(m.log().find("its reads go over the main connection meanwhile"), std::string::npos) << m.log();
}

}  // namespace
}  // namespace mount_test
