// nfs_backend.h: the Backend over NFSv3 (asmp::nfs::NfsClient, libnfs) to a
// loopback NFS server. Each connection is its own libnfs context on its own
// color and TCP connection: one for metadata (every call but READ, WRITE
// and COMMIT), so that a GETATTR never queues behind megabytes of data,
// and `connections` for data, a call going to the one its file handle
// hashes to (one file's data calls stay in order on one connection, while
// different files spread over all of them).
#pragma once

#include <memory>
#include <vector>

#include "backend.h"
#include "config.h"

namespace sfsd {

struct NfsBackendOptions {
  BackendUrl url;
  unsigned connections = 1;       // for data (one more carries metadata)
  asmp::color_t first_color = 0;  // connection i runs under first_color + i
  // Runs (under that connection's backend color) after every successful
  // mount, the first and each after a reconnect, with the root handle found.
  std::function<void(const nfs::FileHandle& root)> on_mount;
};

class NfsBackend final : public Backend {
 public:
  explicit NfsBackend(NfsBackendOptions opts);
  ~NfsBackend() override;

  void start(nfs::Done<nfs::FileHandle> done) override;
  std::uint64_t epoch() const override;
  std::string describe() const override;

  void getattr(const nfs::CallOptions& o, const nfs::FileHandle& fh, nfs::Done<nfs::Attr> done) override;
  void setattr(const nfs::CallOptions& o, const nfs::FileHandle& fh, const nfs::SetAttr& attr,
               std::optional<nfs::Time> guard, nfs::Done<nfs::Wcc> done) override;
  void lookup(const nfs::CallOptions& o, const nfs::FileHandle& dir, std::string_view name,
              nfs::Done<nfs::LookupOk> done) override;
  void access(const nfs::CallOptions& o, const nfs::FileHandle& fh, std::uint32_t bits,
              nfs::Done<nfs::AccessOk> done) override;
  void readlink(const nfs::CallOptions& o, const nfs::FileHandle& fh,
                nfs::Done<nfs::ReadlinkOk> done) override;
  void read(const nfs::CallOptions& o, const nfs::FileHandle& fh, std::uint64_t offset,
            std::uint32_t count, nfs::Done<nfs::ReadOk> done) override;
  void write(const nfs::CallOptions& o, const nfs::FileHandle& fh, std::uint64_t offset,
             nfs::WriteData data, nfs::StableHow stable, nfs::Done<nfs::WriteOk> done) override;
  void create(const nfs::CallOptions& o, const nfs::FileHandle& dir, std::string_view name,
              nfs::CreateMode mode, const nfs::SetAttr& attr, nfs::Verifier verf,
              nfs::Done<nfs::CreateOk> done) override;
  void mkdir(const nfs::CallOptions& o, const nfs::FileHandle& dir, std::string_view name,
             const nfs::SetAttr& attr, nfs::Done<nfs::CreateOk> done) override;
  void symlink(const nfs::CallOptions& o, const nfs::FileHandle& dir, std::string_view name,
               std::string_view target, const nfs::SetAttr& attr,
               nfs::Done<nfs::CreateOk> done) override;
  void mknod(const nfs::CallOptions& o, const nfs::FileHandle& dir, std::string_view name,
             nfs::FileType type, const nfs::SetAttr& attr, std::uint32_t major,
             std::uint32_t minor, nfs::Done<nfs::CreateOk> done) override;
  void remove(const nfs::CallOptions& o, const nfs::FileHandle& dir, std::string_view name,
              nfs::Done<nfs::Wcc> done) override;
  void rmdir(const nfs::CallOptions& o, const nfs::FileHandle& dir, std::string_view name,
             nfs::Done<nfs::Wcc> done) override;
  void rename(const nfs::CallOptions& o, const nfs::FileHandle& from_dir, std::string_view from_name,
              const nfs::FileHandle& to_dir, std::string_view to_name,
              nfs::Done<nfs::RenameOk> done) override;
  void link(const nfs::CallOptions& o, const nfs::FileHandle& fh, const nfs::FileHandle& dir,
            std::string_view name, nfs::Done<nfs::LinkOk> done) override;
  void readdir(const nfs::CallOptions& o, const nfs::FileHandle& dir, std::uint64_t cookie,
               const nfs::Verifier& cookieverf, std::uint32_t count,
               nfs::Done<nfs::ReaddirOk> done) override;
  void readdirplus(const nfs::CallOptions& o, const nfs::FileHandle& dir, std::uint64_t cookie,
                   const nfs::Verifier& cookieverf, std::uint32_t dircount, std::uint32_t maxcount,
                   nfs::Done<nfs::ReaddirOk> done) override;
  void fsstat(const nfs::CallOptions& o, const nfs::FileHandle& root,
              nfs::Done<nfs::FsstatOk> done) override;
  void fsinfo(const nfs::CallOptions& o, const nfs::FileHandle& root,
              nfs::Done<nfs::FsinfoOk> done) override;
  void pathconf(const nfs::CallOptions& o, const nfs::FileHandle& fh,
                nfs::Done<nfs::PathconfOk> done) override;
  void commit(const nfs::CallOptions& o, const nfs::FileHandle& fh, std::uint64_t offset,
              std::uint32_t count, nfs::Done<nfs::CommitOk> done) override;

 private:
  nfs::NfsClient& meta() { return *clients_.front(); }
  nfs::NfsClient& data_conn(const nfs::FileHandle& fh);
  NfsBackendOptions opts_;
  std::vector<std::unique_ptr<nfs::NfsClient>> clients_;  // [0]: metadata; then data
};

}  // namespace sfsd
