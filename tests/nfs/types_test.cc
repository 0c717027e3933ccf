// types_test.cc: nfs.h's value types (no server needed).
#include <cerrno>

#include <gtest/gtest.h>

#include "asmp/nfs.h"

namespace {

using namespace asmp::nfs;

TEST(NfsTypes, StatusMapsToLocalErrno) {
  EXPECT_EQ(to_errno(Status::kStale), ESTALE);
  EXPECT_EQ(to_errno(Status::kNotempty), ENOTEMPTY);
  EXPECT_EQ(to_errno(Status::kNametoolong), ENAMETOOLONG);
  EXPECT_EQ(to_errno(Status::kAcces), EACCES);
  EXPECT_EQ(to_string(Status::kJukebox), "NFS3ERR_JUKEBOX");
}

TEST(NfsTypes, ErrorDescribesWhatHappened) {
  Error ok;
  EXPECT_TRUE(ok.ok());
  EXPECT_EQ(ok.to_errno(), 0);
  Error nfs{Failure::kNfs, Status::kNoent, ""};
  EXPECT_TRUE(nfs.is(Status::kNoent));
  EXPECT_EQ(nfs.describe(), "NFS3ERR_NOENT");
  Error t{Failure::kTimeout, Status::kOk, "READ: no reply within 10 ms"};
  EXPECT_FALSE(t.is(Status::kOk));
  EXPECT_EQ(t.to_errno(), ETIMEDOUT);
  EXPECT_EQ(t.describe(), "timeout: READ: no reply within 10 ms");
}

TEST(NfsTypes, FileHandleHoldsUpTo64Bytes) {
  std::uint8_t bytes[65];
  for (int i = 0; i < 65; ++i) bytes[i] = static_cast<std::uint8_t>(i);
  FileHandle a(std::span<const std::uint8_t>(bytes, 64));
  EXPECT_EQ(a.size(), 64u);
  EXPECT_EQ(a.hex().substr(0, 6), "000102");
  FileHandle b(std::span<const std::uint8_t>(bytes, 65));
  EXPECT_TRUE(b.empty());
  FileHandle c(std::span<const std::uint8_t>(bytes, 64));
  EXPECT_EQ(a, c);
  FileHandle d(std::span<const std::uint8_t>(bytes, 63));
  EXPECT_FALSE(a == d);
}

TEST(NfsTypes, BufferReusesItsCapacity) {
  Buffer b = Buffer::copy_of(std::string_view("hello"));
  EXPECT_EQ(b.view(), "hello");
  const std::byte* p = b.data();
  b.resize(3);
  EXPECT_EQ(b.data(), p);
  EXPECT_EQ(b.view(), "hel");
  b.resize(1000);
  EXPECT_EQ(b.size(), 1000u);
  EXPECT_GE(b.capacity(), 1000u);
}

TEST(NfsTypes, CredKeepsAtMost16Groups) {
  std::uint32_t groups[20];
  for (int i = 0; i < 20; ++i) groups[i] = static_cast<std::uint32_t>(i);
  Cred c(1, 2, groups);
  EXPECT_EQ(c.ngroups, 16);
  EXPECT_EQ(c.groups[15], 15u);
  EXPECT_EQ(Cred(1, 2), Cred(1, 2));
  EXPECT_FALSE(Cred(1, 2) == c);
}

}  // namespace
