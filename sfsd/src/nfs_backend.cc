// nfs_backend.cc: see nfs_backend.h. Each method forwards to the NfsClient
// the handle hashes to.
#include "nfs_backend.h"

#include <atomic>
#include <mutex>

#include "leases.h"

namespace sfsd {

NfsBackend::NfsBackend(NfsBackendOptions opts) : opts_(std::move(opts)) {
  for (unsigned i = 0; i < opts_.connections + 1; ++i) {
    nfs::NfsOptions o;
    o.host = opts_.url.host;
    o.nfs_port = opts_.url.nfs_port;
    o.mount_port = opts_.url.mount_port;
    o.export_path = opts_.url.path;
    o.color = opts_.first_color + i;
    o.machine_name = "sfsd";
    // After every successful mount, the first included: sfsd checks that
    // the export is still the one it started with.
    o.on_reconnect = [on_mount = opts_.on_mount](std::uint64_t, const nfs::FileHandle& root) {
      if (on_mount) on_mount(root);
    };
    clients_.push_back(std::make_unique<nfs::NfsClient>(o));
  }
}

NfsBackend::~NfsBackend() = default;

std::string NfsBackend::describe() const {
  return "nfs://" + opts_.url.host + opts_.url.path + "?nfsport=" + std::to_string(opts_.url.nfs_port) +
         "&mountport=" + std::to_string(opts_.url.mount_port);
}

std::uint64_t NfsBackend::epoch() const {
  // Every successful (re)connect and mount of any connection counts: after
  // one, the server may have lost what it held for us (unstable writes).
  std::uint64_t e = 0;
  for (const auto& c : clients_) e += c->epoch();
  return e;
}

void NfsBackend::start(nfs::Done<nfs::FileHandle> done) {
  // Mount every connection; answer once all have, with the first failure,
  // or the root if all agree on it.
  struct Join {
    std::mutex mu;
    std::vector<nfs::Result<nfs::FileHandle>> results;
    nfs::Done<nfs::FileHandle> done;
  };
  auto j = std::make_shared<Join>();
  j->done = std::move(done);
  const asmp::color_t color = j->done.color();
  const std::size_t n = clients_.size();
  for (auto& c : clients_) {
    c->mount(nfs::Done<nfs::FileHandle>(
        [j, n](nfs::Result<nfs::FileHandle> r) {
          {
            std::lock_guard lk(j->mu);
            j->results.push_back(std::move(r));
            if (j->results.size() < n) return;
          }
          nfs::Result<nfs::FileHandle> out = j->results.front();
          for (const auto& each : j->results) {
            if (!each.ok()) {
              out = each;
              break;
            }
            if (!(each.value == out.value))
              out.error = {nfs::Failure::kRpc, nfs::Status::kOk,
                           "the backend's connections disagree on the export's root handle"};
          }
          j->done(std::move(out));
        },
        color));
  }
}

nfs::NfsClient& NfsBackend::data_conn(const nfs::FileHandle& fh) {
  const std::size_t n = clients_.size() - 1;
  return *clients_[1 + (n == 1 ? 0 : HandleHash{}(fh) % n)];
}

void NfsBackend::getattr(const nfs::CallOptions& o, const nfs::FileHandle& fh, nfs::Done<nfs::Attr> done) {
  meta().getattr(o, fh, std::move(done));
}
void NfsBackend::setattr(const nfs::CallOptions& o, const nfs::FileHandle& fh, const nfs::SetAttr& attr,
                         std::optional<nfs::Time> guard, nfs::Done<nfs::Wcc> done) {
  meta().setattr(o, fh, attr, guard, std::move(done));
}
void NfsBackend::lookup(const nfs::CallOptions& o, const nfs::FileHandle& dir, std::string_view name,
                        nfs::Done<nfs::LookupOk> done) {
  meta().lookup(o, dir, name, std::move(done));
}
void NfsBackend::access(const nfs::CallOptions& o, const nfs::FileHandle& fh, std::uint32_t bits,
                        nfs::Done<nfs::AccessOk> done) {
  meta().access(o, fh, bits, std::move(done));
}
void NfsBackend::readlink(const nfs::CallOptions& o, const nfs::FileHandle& fh,
                          nfs::Done<nfs::ReadlinkOk> done) {
  meta().readlink(o, fh, std::move(done));
}
void NfsBackend::read(const nfs::CallOptions& o, const nfs::FileHandle& fh, std::uint64_t offset,
                      std::uint32_t count, nfs::Done<nfs::ReadOk> done) {
  data_conn(fh).read(o, fh, offset, count, std::move(done));
}
void NfsBackend::write(const nfs::CallOptions& o, const nfs::FileHandle& fh, std::uint64_t offset,
                       nfs::WriteData data, nfs::StableHow stable, nfs::Done<nfs::WriteOk> done) {
  data_conn(fh).write(o, fh, offset, std::move(data), stable, std::move(done));
}
void NfsBackend::create(const nfs::CallOptions& o, const nfs::FileHandle& dir, std::string_view name,
                        nfs::CreateMode mode, const nfs::SetAttr& attr, nfs::Verifier verf,
                        nfs::Done<nfs::CreateOk> done) {
  meta().create(o, dir, name, mode, attr, verf, std::move(done));
}
void NfsBackend::mkdir(const nfs::CallOptions& o, const nfs::FileHandle& dir, std::string_view name,
                       const nfs::SetAttr& attr, nfs::Done<nfs::CreateOk> done) {
  meta().mkdir(o, dir, name, attr, std::move(done));
}
void NfsBackend::symlink(const nfs::CallOptions& o, const nfs::FileHandle& dir, std::string_view name,
                         std::string_view target, const nfs::SetAttr& attr,
                         nfs::Done<nfs::CreateOk> done) {
  meta().symlink(o, dir, name, target, attr, std::move(done));
}
void NfsBackend::mknod(const nfs::CallOptions& o, const nfs::FileHandle& dir, std::string_view name,
                       nfs::FileType type, const nfs::SetAttr& attr, std::uint32_t major,
                       std::uint32_t minor, nfs::Done<nfs::CreateOk> done) {
  meta().mknod(o, dir, name, type, attr, major, minor, std::move(done));
}
void NfsBackend::remove(const nfs::CallOptions& o, const nfs::FileHandle& dir, std::string_view name,
                        nfs::Done<nfs::Wcc> done) {
  meta().remove(o, dir, name, std::move(done));
}
void NfsBackend::rmdir(const nfs::CallOptions& o, const nfs::FileHandle& dir, std::string_view name,
                       nfs::Done<nfs::Wcc> done) {
  meta().rmdir(o, dir, name, std::move(done));
}
void NfsBackend::rename(const nfs::CallOptions& o, const nfs::FileHandle& from_dir,
                        std::string_view from_name, const nfs::FileHandle& to_dir,
                        std::string_view to_name, nfs::Done<nfs::RenameOk> done) {
  meta().rename(o, from_dir, from_name, to_dir, to_name, std::move(done));
}
void NfsBackend::link(const nfs::CallOptions& o, const nfs::FileHandle& fh, const nfs::FileHandle& dir,
                      std::string_view name, nfs::Done<nfs::LinkOk> done) {
  meta().link(o, fh, dir, name, std::move(done));
}
void NfsBackend::readdir(const nfs::CallOptions& o, const nfs::FileHandle& dir, std::uint64_t cookie,
                         const nfs::Verifier& cookieverf, std::uint32_t count,
                         nfs::Done<nfs::ReaddirOk> done) {
  meta().readdir(o, dir, cookie, cookieverf, count, std::move(done));
}
void NfsBackend::readdirplus(const nfs::CallOptions& o, const nfs::FileHandle& dir, std::uint64_t cookie,
                             const nfs::Verifier& cookieverf, std::uint32_t dircount,
                             std::uint32_t maxcount, nfs::Done<nfs::ReaddirOk> done) {
  meta().readdirplus(o, dir, cookie, cookieverf, dircount, maxcount, std::move(done));
}
void NfsBackend::fsstat(const nfs::CallOptions& o, const nfs::FileHandle& root,
                        nfs::Done<nfs::FsstatOk> done) {
  meta().fsstat(o, root, std::move(done));
}
void NfsBackend::fsinfo(const nfs::CallOptions& o, const nfs::FileHandle& root,
                        nfs::Done<nfs::FsinfoOk> done) {
  meta().fsinfo(o, root, std::move(done));
}
void NfsBackend::pathconf(const nfs::CallOptions& o, const nfs::FileHandle& fh,
                          nfs::Done<nfs::PathconfOk> done) {
  meta().pathconf(o, fh, std::move(done));
}
void NfsBackend::commit(const nfs::CallOptions& o, const nfs::FileHandle& fh, std::uint64_t offset,
                        std::uint32_t count, nfs::Done<nfs::CommitOk> done) {
  data_conn(fh).commit(o, fh, offset, count, std::move(done));
}

}  // namespace sfsd
