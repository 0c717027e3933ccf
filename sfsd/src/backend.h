// backend.h: the one narrow seam between sfsd's file protocol and the
// storage behind it (as NFS-Ganesha's FSALs are to its protocol layer).
// Today the only backend is NFSv3 over libnfs (nfs_backend.h); a local
// helper-pool backend would implement this same interface.
//
// Contract (what sfsd relies on)
//   - Every method may be called from any color and returns at once; each
//     completion runs exactly once, under the color of the callback given.
//   - Calls carry the caller's credentials (uid, gid, groups); the backend
//     enforces permissions with them.
//   - epoch() changes whenever the backend's connection (and so its write
//     cache) may have been lost: sfsd folds it into the write verifier.
//   - Types are the NFSv3 ones of asmp/nfs.h.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string_view>

#include "asmp/nfs.h"

namespace sfsd {

namespace nfs = asmp::nfs;

class Backend {
 public:
  virtual ~Backend() = default;

  // Connects and returns the export's root handle.
  virtual void start(nfs::Done<nfs::FileHandle> done) = 0;
  virtual std::uint64_t epoch() const = 0;
  virtual std::string describe() const = 0;  // for logs, e.g. "nfs://127.0.0.1/srv"

  virtual void getattr(const nfs::CallOptions& o, const nfs::FileHandle& fh,
                       nfs::Done<nfs::Attr> done) = 0;
  virtual void setattr(const nfs::CallOptions& o, const nfs::FileHandle& fh,
                       const nfs::SetAttr& attr, std::optional<nfs::Time> guard,
                       nfs::Done<nfs::Wcc> done) = 0;
  virtual void lookup(const nfs::CallOptions& o, const nfs::FileHandle& dir, std::string_view name,
                      nfs::Done<nfs::LookupOk> done) = 0;
  virtual void access(const nfs::CallOptions& o, const nfs::FileHandle& fh, std::uint32_t bits,
                      nfs::Done<nfs::AccessOk> done) = 0;
  virtual void readlink(const nfs::CallOptions& o, const nfs::FileHandle& fh,
                        nfs::Done<nfs::ReadlinkOk> done) = 0;
  virtual void read(const nfs::CallOptions& o, const nfs::FileHandle& fh, std::uint64_t offset,
                    std::uint32_t count, nfs::Done<nfs::ReadOk> done) = 0;
  virtual void write(const nfs::CallOptions& o, const nfs::FileHandle& fh, std::uint64_t offset,
                     nfs::WriteData data, nfs::StableHow stable, nfs::Done<nfs::WriteOk> done) = 0;
  virtual void create(const nfs::CallOptions& o, const nfs::FileHandle& dir, std::string_view name,
                      nfs::CreateMode mode, const nfs::SetAttr& attr, nfs::Verifier verf,
                      nfs::Done<nfs::CreateOk> done) = 0;
  virtual void mkdir(const nfs::CallOptions& o, const nfs::FileHandle& dir, std::string_view name,
                     const nfs::SetAttr& attr, nfs::Done<nfs::CreateOk> done) = 0;
  virtual void symlink(const nfs::CallOptions& o, const nfs::FileHandle& dir, std::string_view name,
                       std::string_view target, const nfs::SetAttr& attr,
                       nfs::Done<nfs::CreateOk> done) = 0;
  virtual void mknod(const nfs::CallOptions& o, const nfs::FileHandle& dir, std::string_view name,
                     nfs::FileType type, const nfs::SetAttr& attr, std::uint32_t major,
                     std::uint32_t minor, nfs::Done<nfs::CreateOk> done) = 0;
  virtual void remove(const nfs::CallOptions& o, const nfs::FileHandle& dir, std::string_view name,
                      nfs::Done<nfs::Wcc> done) = 0;
  virtual void rmdir(const nfs::CallOptions& o, const nfs::FileHandle& dir, std::string_view name,
                     nfs::Done<nfs::Wcc> done) = 0;
  virtual void rename(const nfs::CallOptions& o, const nfs::FileHandle& from_dir,
                      std::string_view from_name, const nfs::FileHandle& to_dir,
                      std::string_view to_name, nfs::Done<nfs::RenameOk> done) = 0;
  virtual void link(const nfs::CallOptions& o, const nfs::FileHandle& fh,
                    const nfs::FileHandle& dir, std::string_view name,
                    nfs::Done<nfs::LinkOk> done) = 0;
  virtual void readdir(const nfs::CallOptions& o, const nfs::FileHandle& dir, std::uint64_t cookie,
                       const nfs::Verifier& cookieverf, std::uint32_t count,
                       nfs::Done<nfs::ReaddirOk> done) = 0;
  virtual void readdirplus(const nfs::CallOptions& o, const nfs::FileHandle& dir,
                           std::uint64_t cookie, const nfs::Verifier& cookieverf,
                           std::uint32_t dircount, std::uint32_t maxcount,
                           nfs::Done<nfs::ReaddirOk> done) = 0;
  virtual void fsstat(const nfs::CallOptions& o, const nfs::FileHandle& root,
                      nfs::Done<nfs::FsstatOk> done) = 0;
  virtual void fsinfo(const nfs::CallOptions& o, const nfs::FileHandle& root,
                      nfs::Done<nfs::FsinfoOk> done) = 0;
  virtual void pathconf(const nfs::CallOptions& o, const nfs::FileHandle& fh,
                        nfs::Done<nfs::PathconfOk> done) = 0;
  virtual void commit(const nfs::CallOptions& o, const nfs::FileHandle& fh, std::uint64_t offset,
                      std::uint32_t count, nfs::Done<nfs::CommitOk> done) = 0;
};

}  // namespace sfsd
