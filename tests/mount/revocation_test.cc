// revocation_test.cc: sfsclient honours revocation certificates (sfskey
// revoke; sfs/revocation.h): a revoked HOSTID is refused with EACCES at
// mount, and on reconnect once the certificate appears while mounted; a
// forged certificate revokes nothing.
// Starts: ganesha.nfsd, sfsd (restarted by one test), sfsclient.
#include "sfs/revocation.h"

#include "mount_test_util.h"

namespace mount_test {
namespace {

class RevocationTest : public MountFixture {
 protected:
  void SetUp() override {
    MountFixture::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    revoked_ = server_.dir() + "/revoked";
    std::filesystem::create_directories(revoked_);
  }
  // A certificate for this server, signed with its key.
  void revoke(const std::string& file) {
    auto kf = sfs::read_key_file(server_.dir() + "/server.key");
    ASSERT_TRUE(kf.ok()) << kf.error();
    const sfs::Revocation r = sfs::make_revocation(*kf.value().server, sfs::Location{"127.0.0.1", server_.port()});
    std::ofstream(revoked_ + "/" + file) << sfs::format_revocation(r);
  }
  std::string revoked_;
};

TEST_F(RevocationTest, ARevokedServerIsRefusedAtMount) {
  revoke("cert");
  Mount& m = mount({"--revoked-dir", revoked_});
  std::string out;
  EXPECT_NE(sh("ls " + at(m), &out, 30), 0);
  EXPECT_NE(out.find("Permission denied"), std::string::npos) << out;
  EXPECT_NE(m.log().find("refusing " + server_.name() + ": revoked by the certificate " + revoked_ + "/cert"),
            std::string::npos)
      << m.log();
}

TEST_F(RevocationTest, AForgedCertificateRevokesNothing) {
  revoke("cert");
  // Another key's signature over the same name: the keys no longer hash to
  // the HOSTID.
  std::ifstream in(revoked_ + "/cert");
  std::string text((std::istreambuf_iterator<char>(in)), {});
  const sfs::ServerKey other = sfs::ServerKey::generate();
  const sfs::Revocation o = sfs::make_revocation(other, sfs::Location{"127.0.0.1", server_.port()});
  const std::string other_text = sfs::format_revocation(o);
  const auto line = [](const std::string& t, const std::string& field) {
    const std::size_t a = t.find("\n" + field + " ") + 1;
    return t.substr(a, t.find('\n', a) - a);
  };
  text.replace(text.find(line(text, "signature")), line(text, "signature").size(), line(other_text, "signature"));
  std::filesystem::remove(revoked_ + "/cert");
  std::ofstream(revoked_ + "/forged") << text;
  Mount& m = mount({"--revoked-dir", revoked_});
  std::string out;
  EXPECT_EQ(sh("ls " + at(m), &out, 30), 0) << out << m.log();
  EXPECT_NE(m.log().find("ignoring " + revoked_ + "/forged: "), std::string::npos) << m.log();
}

TEST_F(RevocationTest, ACertificateThatAppearsWhileMountedIsHonouredAtReconnect) {
  Mount& m = mount({"--revoked-dir", revoked_, "--timeout", "10s"});
  std::string out;
  ASSERT_EQ(sh("echo before > " + at(m) + "/f && cat " + at(m) + "/f", &out, 30), 0) << out << m.log();
  revoke("cert");
  // sfsd restarts: the connection is lost and the client reconnects.
  server_.stop_sfsd();
  std::string why;
  ASSERT_TRUE(server_.start_sfsd(&why)) << why;
  EXPECT_NE(sh("touch " + at(m) + "/g", &out, 60), 0) << "a create must reach the server";
  EXPECT_NE(out.find("Permission denied"), std::string::npos) << out << m.log();
  EXPECT_NE(m.log().find("revoked by the certificate"), std::string::npos) << m.log();
}

}  // namespace
}  // namespace mount_test
