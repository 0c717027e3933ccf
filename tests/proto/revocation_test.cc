// Tests for sfs/revocation.h: a certificate verifies against the HOSTID
// alone; one moved to another name, re-signed by another key or altered is
// refused; a directory scan skips (and reports) what it cannot use, FIFOs
// included, without hanging.
#include "sfs/revocation.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>

namespace sfs {
namespace {

const Location kHere{"127.0.0.1", 4000};

std::string replace_line(std::string text, const std::string& field, const std::string& value) {
  const std::size_t a = text.find("\n" + field + " ") + 1;
  const std::size_t b = text.find('\n', a);
  return text.replace(a, b - a, field + " " + value);
}

TEST(Revocation, RoundTripsAndNamesTheHostid) {
  const ServerKey k = ServerKey::generate();
  const Revocation r = make_revocation(k, kHere);
  EXPECT_EQ(r.name, name_for(kHere, k.public_key()));
  auto back = parse_revocation(format_revocation(r), "cert");
  ASSERT_TRUE(back.ok()) << back.error();
  EXPECT_EQ(back.value().name.hostid, r.name.hostid);
}

TEST(Revocation, ForgedOrAlteredCertificatesAreRefused) {
  const ServerKey k = ServerKey::generate();
  const std::string good = format_revocation(make_revocation(k, kHere));
  // The same certificate claimed for another port: another HOSTID.
  const SelfCertName moved = name_for(Location{"127.0.0.1", 4001}, k.public_key());
  auto r1 = parse_revocation(replace_line(good, "name", format_name(moved)), "cert");
  ASSERT_FALSE(r1.ok());
  EXPECT_NE(r1.error().find("bad signature"), std::string::npos) << r1.error();
  // Someone else's key and signature over our name: keys do not hash to it.
  const ServerKey other = ServerKey::generate();
  const std::string theirs = format_revocation(make_revocation(other, kHere));
  std::string swapped = good;
  for (const char* f : {"x25519", "ed25519", "signature"}) {
    const std::size_t a = theirs.find(std::string("\n") + f + " ") + 1;
    swapped = replace_line(swapped, f, theirs.substr(a + std::strlen(f) + 1, theirs.find('\n', a) - a - std::strlen(f) - 1));
  }
  auto r2 = parse_revocation(swapped, "cert");
  ASSERT_FALSE(r2.ok());
  EXPECT_NE(r2.error().find("do not hash"), std::string::npos) << r2.error();
  // Garbage, truncation, a repeated field.
  EXPECT_FALSE(parse_revocation("", "cert").ok());
  EXPECT_FALSE(parse_revocation("sfs-revocation v1\n", "cert").ok());
  EXPECT_FALSE(parse_revocation(good + "name x\n", "cert").ok());
  EXPECT_FALSE(parse_revocation(replace_line(good, "signature", "aaaa"), "cert").ok());
  EXPECT_FALSE(parse_revocation(std::string(5000, 'x'), "cert").ok());
}

TEST(Revocation, DirectoryScanFindsTheCertificateAndSkipsTheRest) {
  char tmpl[] = "/tmp/sfs_revocation_test.XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  const ServerKey revoked = ServerKey::generate();
  const ServerKey fine = ServerKey::generate();
  std::ofstream(dir + "/garbage") << "not a certificate\n";
  ASSERT_EQ(::mkfifo((dir + "/fifo").c_str(), 0644), 0);  // must not hang the scan
  std::ofstream(dir + "/any-name") << format_revocation(make_revocation(revoked, kHere));
  std::vector<std::string> warnings;
  const auto warn = [&](const std::string& w) { warnings.push_back(w); };
  auto hit = find_revocation(dir, name_for(kHere, revoked.public_key()).hostid, warn);
  ASSERT_TRUE(hit.ok()) << hit.error();
  ASSERT_TRUE(hit.value().has_value());
  EXPECT_EQ(*hit.value(), dir + "/any-name");
  warnings.clear();
  auto miss = find_revocation(dir, name_for(kHere, fine.public_key()).hostid, warn);
  ASSERT_TRUE(miss.ok());
  EXPECT_FALSE(miss.value().has_value());
  EXPECT_EQ(warnings.size(), 2u);  // garbage and fifo, each named
  auto none = find_revocation(dir + "/missing", name_for(kHere, fine.public_key()).hostid, warn);
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none.value().has_value());
  std::system(("rm -rf " + dir).c_str());
}

}  // namespace
}  // namespace sfs
