// fs_wire.h: the SFS file protocol's XDR types (sfs_nfs.x, rpcgen) to and
// from the NFSv3 value types of asmp/nfs.h, for both ends: sfsd fills
// results from what its backend answered, the client library turns
// results back into values. Pure functions; any thread.
//
// Memory: fill_* functions write plain values only (no pointers), except
// where a parameter says what the XDR struct will point to; those must
// outlive the encoding.
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <type_traits>

#include "asmp/nfs.h"
#include "sfs/sfs_nfs.h"

namespace sfs::fs {

namespace nfs = asmp::nfs;

// The number in an enum field that came from a peer. xdr_enum accepts any
// 32-bit value, and a union whose default arm is void (sattr3's times,
// mknoddata3) lets any discriminant through; loading a value outside the
// enumerators as the C++ enum type is undefined behaviour (UBSan's
// -fsanitize=enum, found by nfs_args_fuzz). So decoded enums are read as
// numbers and checked before they become values.
template <class E>
std::uint32_t wire_value(const E& field) {
  static_assert(std::is_enum_v<E> && sizeof(E) == sizeof(std::uint32_t));
  std::uint32_t v;
  std::memcpy(&v, &field, sizeof v);
  return v;
}

// nfsstat3 values are RFC 1813's on both sides.
inline sfs_nfsstat3 to_wire(nfs::Status s) { return static_cast<sfs_nfsstat3>(s); }
inline nfs::Status from_wire(sfs_nfsstat3 s) { return static_cast<nfs::Status>(s); }

void fill_fattr(sfs_fattr3& out, const nfs::Attr& a, std::uint64_t change, std::uint32_t lease_ms);
nfs::Attr from_fattr(const sfs_fattr3& f);

void fill_post_op(sfs_post_op_attr& out, const std::optional<nfs::Attr>& a, std::uint64_t change,
                  std::uint32_t lease_ms);
// The attributes and their lease fields, if present.
struct LeasedAttr {
  nfs::Attr attr;
  std::uint64_t change = 0;
  std::uint32_t lease_ms = 0;
};
std::optional<LeasedAttr> from_post_op(const sfs_post_op_attr& p);
LeasedAttr leased(const sfs_fattr3& f);

void fill_wcc(sfs_wcc_data& out, const nfs::Wcc& w, std::uint64_t change, std::uint32_t lease_ms);

nfs::SetAttr from_sattr(const sfs_sattr3& s);
void fill_sattr(sfs_sattr3& out, const nfs::SetAttr& s);

inline nfs::Time from_time(const sfs_nfstime3& t) { return {t.seconds, t.nseconds}; }
inline sfs_nfstime3 to_time(const nfs::Time& t) { return {t.seconds, t.nseconds}; }

// XDR sizes, for keeping replies under the client's count.
inline std::size_t xdr_pad(std::size_t n) { return (n + 3) & ~std::size_t{3}; }
constexpr std::size_t kFattrSize = 84 + 8 + 4;            // RFC 1813 fattr3 + change + lease_ms
constexpr std::size_t kPostOpAttrSize = 4 + kFattrSize;   // with attributes
// One READDIRPLUS entry as sfs_nfs.x encodes it, including the "value
// follows" word before it.
std::size_t entryplus_size(std::size_t name_len, bool has_attr, std::size_t handle_len);
// One READDIR entry, likewise.
std::size_t entry_size(std::size_t name_len);

}  // namespace sfs::fs
