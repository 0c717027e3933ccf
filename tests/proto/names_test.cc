// Tests for sfs/names.h: frozen HOSTID vectors (docs/protocol.md), the
// canonical name format, and the strict parser on hostile input.
#include "sfs/names.h"

#include <gtest/gtest.h>

#include "test_util.h"

namespace sfs {
namespace {

using test::counting_key;

ServerPublicKey vector_key() {
  return ServerKey::from_secrets(counting_key(0), counting_key(0x20)).public_key();
}

TEST(HostId, FrozenVectors) {
  // docs/protocol.md, "Names and HOSTID": computed once, frozen here.
  EXPECT_EQ(format_name(name_for({"sfs.example.org", 4000}, vector_key())),
            "@sfs.example.org%4000,hu2wplgqvkirijt7f3lvvxgaeo6ed2ww");
  EXPECT_EQ(format_name(name_for({"sfs.example.org", 4001}, vector_key())),
            "@sfs.example.org%4001,tvntoeatdc5jj5mseyanzxs5vomf3drl");
  EXPECT_EQ(format_name(name_for({"127.0.0.1", 4000}, vector_key())),
            "@127.0.0.1%4000,7dxcrcj3cnnrlte6xsmu2ocz2wygnrap");
}

TEST(HostId, DependsOnEveryInput) {
  const ServerPublicKey k = vector_key();
  const HostId base = compute_hostid({"a.example", 1}, k);
  EXPECT_NE(base, compute_hostid({"b.example", 1}, k));
  EXPECT_NE(base, compute_hostid({"a.example", 2}, k));
  ServerPublicKey k2 = k;
  k2.x25519[0] ^= 1;
  EXPECT_NE(base, compute_hostid({"a.example", 1}, k2));
  k2 = k;
  k2.ed25519[31] ^= 0x80;
  EXPECT_NE(base, compute_hostid({"a.example", 1}, k2));
}

TEST(Names, ParseFormatRoundTrip) {
  const SelfCertName n = name_for({"files.example.com", 65535}, vector_key());
  auto back = parse_name(format_name(n));
  ASSERT_TRUE(back.ok()) << back.error();
  EXPECT_EQ(back.value(), n);
}

TEST(Names, ParsesTheVector) {
  auto n = parse_name("@sfs.example.org%4000,hu2wplgqvkirijt7f3lvvxgaeo6ed2ww");
  ASSERT_TRUE(n.ok()) << n.error();
  EXPECT_EQ(n.value().location.host, "sfs.example.org");
  EXPECT_EQ(n.value().location.port, 4000);
  EXPECT_EQ(n.value().hostid, compute_hostid({"sfs.example.org", 4000}, vector_key()));
}

TEST(Names, RejectsHostileInput) {
  const std::string id = "hu2wplgqvkirijt7f3lvvxgaeo6ed2ww";
  const std::string bad[] = {
      "",
      "@",
      "sfs.example.org%4000," + id,               // no '@'
      "@sfs.example.org," + id,                   // no port
      "@sfs.example.org%4000",                    // no HOSTID
      "@%4000," + id,                             // empty host
      "@SFS.example.org%4000," + id,              // uppercase host
      "@sfs..example.org%4000," + id,             // empty label
      "@.sfs.example.org%4000," + id,             // leading dot
      "@sfs.example.org.%4000," + id,             // trailing dot
      "@-sfs.example.org%4000," + id,             // label starts with '-'
      "@sfs-.example.org%4000," + id,             // label ends with '-'
      "@sfs_x.example.org%4000," + id,            // '_' not allowed
      "@sfs/x%4000," + id,                        // path separator
      "@sfs x%4000," + id,                        // space
      std::string("@sfs\0x%4000,", 11) + id,      // NUL byte
      "@[::1]%4000," + id,                        // IPv6 unsupported
      "@" + std::string(64, 'a') + "%4000," + id,  // label of 64
      "@sfs.example.org%0," + id,                 // port 0
      "@sfs.example.org%04000," + id,             // leading zero
      "@sfs.example.org%65536," + id,             // port too large
      "@sfs.example.org%123456," + id,            // too many digits
      "@sfs.example.org%-1," + id,                // sign
      "@sfs.example.org%+1," + id,                // sign
      "@sfs.example.org%40a0," + id,              // not decimal
      "@sfs.example.org%," + id,                  // empty port
      "@sfs.example.org%4000," + id.substr(1),    // HOSTID too short
      "@sfs.example.org%4000," + id + "a",        // HOSTID too long
      "@sfs.example.org%4000," + id.substr(0, 31) + "1",  // '1' not base32
      "@sfs.example.org%4000," + id.substr(0, 31) + "W",  // uppercase HOSTID
      "@sfs.example.org%4000,," + id.substr(1),   // extra comma
      "@a,b%4000," + id,                          // comma before '%'
      "@sfs.example.org%4000," + id + "/x",       // trailing path
      "@" + std::string(300, 'a') + "%4000," + id,  // overlong
  };
  for (const std::string& s : bad) {
    auto r = parse_name(s);
    EXPECT_FALSE(r.ok()) << "accepted: " << s;
    if (!r.ok()) {
      EXPECT_NE(r.error().find("@HOST%PORT,HOSTID"), std::string::npos);
    }
  }
}

TEST(Names, AcceptsLimits) {
  const std::string id = "hu2wplgqvkirijt7f3lvvxgaeo6ed2ww";
  std::string host;
  while (host.size() + 64 <= kMaxHostChars) host += std::string(63, 'a') + ".";
  host += std::string(kMaxHostChars - host.size(), 'b');
  ASSERT_EQ(host.size(), kMaxHostChars);
  EXPECT_TRUE(parse_name("@" + host + "%1," + id).ok());
  EXPECT_FALSE(parse_name("@" + host + "b%1," + id).ok());
  EXPECT_TRUE(parse_name("@a%65535," + id).ok());
  EXPECT_TRUE(parse_name("@xn--nxasmq6b.example%1," + id).ok());
}

TEST(Location, Parse) {
  auto l = parse_location("sfs.example.org:4000");
  ASSERT_TRUE(l.ok()) << l.error();
  EXPECT_EQ(l.value(), (Location{"sfs.example.org", 4000}));
  EXPECT_FALSE(parse_location("sfs.example.org").ok());
  EXPECT_FALSE(parse_location("sfs.example.org:").ok());
  EXPECT_FALSE(parse_location(":4000").ok());
  EXPECT_FALSE(parse_location("Sfs.example.org:4000").ok());
  EXPECT_FALSE(parse_location("sfs.example.org:99999").ok());
}

}  // namespace
}  // namespace sfs
