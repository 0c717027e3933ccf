// read.cc: READ, the data path. Dispatched on color 0 like every call; the
// reply skips color 0 on the way back: it is encoded and sent from the
// connection's color as soon as the data is there, from the backend or
// from the data cache (data_cache.h). READ replies carry no lease
// (granting one needs color 0, see lease_for); a client caches attributes
// from GETATTR, LOOKUP and READDIRPLUS instead.
#include "data_cache.h"
#include "file_server_internal.h"

namespace sfsd {

namespace {

using sfs::fs::fill_post_op;

// `keep` owns `data` until the reply is sealed: the data goes from where
// it was read (the NFS reply's buffer, a cached block) straight into the
// sealed record (Call::reply_with_tail), never copied into the reply first.
void reply_read(asmp::rpc::Call& call, std::uint64_t sample, sfs_nfsstat3 status, const std::optional<nfs::Attr>& attr,
                std::span<const std::byte> data, bool eof, std::shared_ptr<const void> keep) {
  ReplyOf<sfs_READ3res> out;
  out.res.status = status;
  auto& a = status == SFS_NFS3_OK ? out.res.sfs_READ3res_u.resok.file_attributes
                                  : out.res.sfs_READ3res_u.resfail.file_attributes;
  fill_post_op(a, attr, sample, 0);
  if (status != SFS_NFS3_OK) return out.encode(call);
  auto& ok = out.res.sfs_READ3res_u.resok;
  ok.count = static_cast<std::uint32_t>(data.size());
  ok.eof = eof;
  // Encoded empty: data is the result's last field, and its bytes follow
  // as the record's tail.
  ok.data.data_len = 0;
  ok.data.data_val = nullptr;
  call.reply_with_tail(&out.res, {reinterpret_cast<const char*>(data.data()), data.size()}, std::move(keep));
}

}  // namespace

void FileServer::do_read(const std::shared_ptr<Req>& r, bool revalidated) {
  const auto* a = r->call.args<sfs_READ3args>();
  const nfs::FileHandle fh = fh_of(a->file);
  const std::uint32_t count = std::min(a->count, kMaxData);
  std::uint64_t generation = 0;
  if (cache_->enabled()) {
    DataCache::Hit hit;
    switch (cache_->lookup(fh, r->cred.cred, a->offset, count, &hit, &generation)) {
      case DataCache::Lookup::kHit:
        rt_.cpucb(asmp::Closure(
            [r, hit = std::move(hit)]() mutable {
              const auto bytes =
                  std::span<const std::byte>(hit.block->data).subspan(hit.offset_in_block, hit.count);
              reply_read(r->call, r->sample, SFS_NFS3_OK, hit.attr, bytes, hit.eof, std::move(hit.block));
            },
            r->call.color()));
        return;
      case DataCache::Lookup::kRevalidate:
        if (!revalidated) {
          // The blocks are older than data_cache_revalidate: the file may
          // have changed behind sfsd's back. Its attributes decide.
          backend_->getattr(r->cred, fh, on_shared<nfs::Attr>([this, r, fh](nfs::Result<nfs::Attr> res) {
                              if (res.ok()) cache_->observe(fh, res.value);
                              else cache_->changed(fh);
                              do_read(r, true);
                            }));
          return;
        }
        break;
      case DataCache::Lookup::kMiss:
        break;
    }
  }
  backend_->read(r->cred, fh, a->offset, count,
                 nfs::Done<nfs::ReadOk>(
                     [r, fh, generation, offset = a->offset, cache = cache_](nfs::Result<nfs::ReadOk> res) {
                       if (res.ok() && res.value.attr)
                         cache->fill(fh, generation, r->cred.cred, offset, res.value.data.span(), res.value.eof,
                                     *res.value.attr);
                       auto data = std::make_shared<const nfs::Buffer>(std::move(res.value.data));
                       reply_read(r->call, r->sample, status_of(res.error, false), res.value.attr, data->span(),
                                  res.value.eof, data);
                     },
                     r->call.color()));
}

}  // namespace sfsd
