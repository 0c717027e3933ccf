// limits_test.cc: NfsClient against a real NFS-Ganesha at libnfs's limits.
// A READDIRPLUS or READDIR asking for more than libnfs 4.0 accepts in one
// reply (1 MiB + 4 KiB) on a directory that has that much to say would drop
// the connection under every call in flight, and again on each resend; the
// client clamps the counts, so the listing comes in pages and the calls
// beside it are untouched.
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "asmp/nfs.h"
#include "nfs_fixture.h"

namespace sfs_test {
namespace {

using asmp::nfs::FileHandle;
using asmp::nfs::ReaddirOk;
using asmp::nfs::ReadOk;

TEST_F(NfsClientTest, OverLargeReaddirIsClampedAndCallsBesideItSucceed) {
  // 16000 entries with 60-byte names: about 3.5 MB of READDIRPLUS reply and
  // 1.4 MB of READDIR reply if nothing clamped them.
  const std::string dir = g_server->export_dir() + "/big_dir";
  ASSERT_EQ(mkdir(dir.c_str(), 0755), 0);
  const std::string stem(52, 'n');
  for (int i = 0; i < 16000; ++i) {
    char name[16];
    std::snprintf(name, sizeof name, "%08d", i);
    std::ofstream(dir + "/" + stem + name);
  }
  const std::string data = pattern(1 << 20, 5);
  { std::ofstream(g_server->export_dir() + "/beside", std::ios::binary) << data; }
  FileHandle dfh = lookup_ok(root_cred_, root_, "big_dir");
  FileHandle ffh = lookup_ok(root_cred_, root_, "beside");

  Pending<ReaddirOk> plus, plain;
  std::vector<Pending<ReadOk>> reads(16);
  client_->readdirplus(root_cred_, dfh, 0, {}, 64u << 20, 64u << 20, plus.done());
  for (std::size_t i = 0; i < reads.size(); ++i)
    client_->read(root_cred_, ffh, i * 65536, 65536, reads[i].done());
  client_->readdir(root_cred_, dfh, 0, {}, 64u << 20, plain.done());

  auto p = plus.get();
  ASSERT_TRUE(p.ok()) << p.error.describe();
  EXPECT_GT(p.value.entries.size(), 1000u);
  EXPECT_FALSE(p.value.eof) << "a clamped reply cannot hold all 16000 entries";
  auto q = plain.get();
  ASSERT_TRUE(q.ok()) << q.error.describe();
  EXPECT_GT(q.value.entries.size(), 1000u);
  std::string back;
  for (auto& r : reads) {
    auto got = r.get();
    ASSERT_TRUE(got.ok()) << got.error.describe();
    back += got.value.data.view();
  }
  EXPECT_TRUE(back == data);
  EXPECT_EQ(client_->stats().disconnects, 0u);

  // And the rest of the listing pages in by cookie as usual.
  std::set<std::string> names;
  std::uint64_t cookie = 0;
  asmp::nfs::Verifier verf{};
  for (bool eof = false; !eof;) {
    auto r = sync<ReaddirOk>([&](auto d) {
      client_->readdirplus(root_cred_, dfh, cookie, verf, 64u << 20, 64u << 20, std::move(d));
    });
    ASSERT_TRUE(r.ok()) << r.error.describe();
    ASSERT_FALSE(r.value.entries.empty());
    for (auto& e : r.value.entries) {
      names.insert(e.name);
      cookie = e.cookie;
    }
    verf = r.value.cookieverf;
    eof = r.value.eof;
  }
  EXPECT_EQ(names.size(), 16002u);  // and . and ..
  EXPECT_EQ(client_->stats().disconnects, 0u);
}

}  // namespace
}  // namespace sfs_test
