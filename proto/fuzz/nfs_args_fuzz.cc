// nfs_args_fuzz: the argument decoders of every SFS_NFS procedure (the
// table sfsd serves, sfs_nfs_interface()) and of the client's INVALIDATE,
// on arbitrary bytes, plus the conversions sfsd applies to what decoded.
//
// The first input byte picks the procedure; the rest is its XDR body, as
// the RPC layer hands it to the decoder (xdrmem over the record).
// Properties, per input:
//   1. Decoding never crashes or leaks (every allocation is released by
//      xdr_free, as the server does with a Call's arguments).
//   2. What decodes re-encodes to at most as many bytes as it consumed
//      (fewer only when a string held a NUL: C strings end there, and the
//      server, like this re-encoding, sees the name only up to it), and
//      that encoding is a fixed point (decode + encode gives it back).
//   3. Handles and names stay within sfs_nfs.x's bounds, and the sattr3
//      conversion (fs_wire.h) accepts whatever decoded.
#include <rpc/rpc.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "file_server_internal.h"
#include "sfs/fs_wire.h"

namespace {

namespace rpc = asmp::rpc;

struct Decoder {
  std::uint32_t proc;
  rpc::Proc p;
};

std::vector<Decoder> decoders() {
  std::vector<Decoder> out;
  const auto& procs = sfsd::sfs_nfs_interface()->procs;
  for (std::uint32_t i = 0; i < procs.size(); ++i)
    if (procs[i].args_size) out.push_back({i, procs[i]});
  out.push_back({~0u, rpc::proc(xdr_sfs_INVALIDATE3args, xdr_void)});
  return out;
}

// Encodes `args` with p; empty if the encoder refused.
std::vector<char> encode(const rpc::Proc& p, void* args, std::size_t room) {
  std::vector<char> buf(room);
  XDR x;
  xdrmem_create(&x, buf.data(), static_cast<u_int>(buf.size()), XDR_ENCODE);
  const bool ok = p.xargs(&x, args);
  buf.resize(ok ? xdr_getpos(&x) : 0);
  xdr_destroy(&x);
  return buf;
}

// Decodes buf into args (zeroed, args_size bytes); the bytes consumed, or
// -1 (args then hold what the decoder allocated before it failed).
long decode(const rpc::Proc& p, const char* buf, std::size_t len, void* args) {
  XDR x;
  xdrmem_create(&x, const_cast<char*>(buf), static_cast<u_int>(len), XDR_DECODE);
  const bool ok = p.xargs(&x, args);
  const long used = ok ? static_cast<long>(xdr_getpos(&x)) : -1;
  xdr_destroy(&x);
  return used;
}

void check_fh(const sfs_nfs_fh3& h) {
  if (h.data.data_len > SFS_NFS3_FHSIZE || (h.data.data_len && !h.data.data_val)) std::abort();
}

void check_name(const char* n) {
  if (n && std::strlen(n) > SFS_NFS3_MAXNAMLEN) std::abort();
}

// What procedures.cc reads from the arguments, minus the backend.
void use(std::uint32_t proc, void* a) {
  switch (proc) {
    case SFS_NFSPROC3_SETATTR: {
      auto* s = static_cast<sfs_SETATTR3args*>(a);
      check_fh(s->object);
      (void)sfs::fs::from_sattr(s->new_attributes);
      break;
    }
    case SFS_NFSPROC3_LOOKUP: {
      auto* l = static_cast<sfs_LOOKUP3args*>(a);
      check_fh(l->what.dir);
      check_name(l->what.name);
      break;
    }
    case SFS_NFSPROC3_CREATE: {
      auto* c = static_cast<sfs_CREATE3args*>(a);
      check_name(c->where.name);
      if (c->how.mode != SFS_EXCLUSIVE) (void)sfs::fs::from_sattr(c->how.sfs_createhow3_u.obj_attributes);
      break;
    }
    case SFS_NFSPROC3_MKDIR: (void)sfs::fs::from_sattr(static_cast<sfs_MKDIR3args*>(a)->attributes); break;
    case SFS_NFSPROC3_SYMLINK: {
      auto* s = static_cast<sfs_SYMLINK3args*>(a);
      if (s->symlink.symlink_data && std::strlen(s->symlink.symlink_data) > SFS_NFS3_MAXPATHLEN) std::abort();
      (void)sfs::fs::from_sattr(s->symlink.symlink_attributes);
      break;
    }
    case SFS_NFSPROC3_MKNOD: {
      auto* m = static_cast<sfs_MKNOD3args*>(a);
      const std::uint32_t type = sfs::fs::wire_value(m->what.type);  // any number decodes
      if (type == SFS_NF3CHR || type == SFS_NF3BLK)
        (void)sfs::fs::from_sattr(m->what.sfs_mknoddata3_u.device.dev_attributes);
      else if (type == SFS_NF3SOCK || type == SFS_NF3FIFO)
        (void)sfs::fs::from_sattr(m->what.sfs_mknoddata3_u.pipe_attributes);
      break;
    }
    case SFS_NFSPROC3_WRITE: {
      auto* w = static_cast<sfsd::WriteArgs*>(a);
      check_fh(w->file);
      if (w->data.len > SFS_NFS3_MAXDATA) std::abort();
      break;
    }
    case SFS_NFSPROC3_RENAME: {
      auto* r = static_cast<sfs_RENAME3args*>(a);
      check_fh(r->from.dir);
      check_fh(r->to.dir);
      check_name(r->from.name);
      check_name(r->to.name);
      break;
    }
    default: break;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::vector<Decoder> table = decoders();
  if (size == 0) return 0;
  const Decoder& d = table[data[0] % table.size()];
  const char* body = reinterpret_cast<const char*>(data + 1);
  const std::size_t len = size - 1;

  std::vector<std::uint8_t> args(d.p.args_size), again(d.p.args_size);
  const long used = decode(d.p, body, len, args.data());
  if (used >= 0) {
    if (static_cast<std::size_t>(used) > len) std::abort();
    use(d.proc, args.data());
    const std::vector<char> enc = encode(d.p, args.data(), len + 16);
    if (enc.empty() != (used == 0) || enc.size() > static_cast<std::size_t>(used)) std::abort();
    if (decode(d.p, enc.data(), enc.size(), again.data()) != static_cast<long>(enc.size())) std::abort();
    if (encode(d.p, again.data(), len + 16) != enc) std::abort();
    xdr_free(d.p.xargs, reinterpret_cast<char*>(again.data()));
  }
  xdr_free(d.p.xargs, reinterpret_cast<char*>(args.data()));
  return 0;
}
