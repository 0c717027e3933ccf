// fake_backend.h: an in-memory file tree behind sfsd's Backend seam
// (sfsd/src/backend.h), for the fuzz targets that drive a whole server.
//
// Small on purpose: enough of NFSv3's behaviour that the server's replies,
// handle sealing, leases and INVALIDATE all run (files, directories,
// symlinks, links, renames, errors), and nothing else. Every call answers
// at once, through the runtime on the completion's color, as the backend
// contract says. A name starting with '!' fails the call with "connection
// lost" (outcome unknown), so the server's paths for a backend that broke
// mid-change run too.
//
// State lives on the color the server calls from (0); reset() restores the
// fresh tree (a root directory, handle 1), between inputs.
#pragma once

#include <algorithm>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "backend.h"
#include "fuzz_runtime.h"

namespace sfs_fuzz {

namespace nfs = asmp::nfs;

class FakeBackend final : public sfsd::Backend {
 public:
  FakeBackend() { reset(); }

  static nfs::FileHandle handle(std::uint64_t id) {
    std::uint8_t b[8];
    std::memcpy(b, &id, 8);
    return nfs::FileHandle({b, 8});
  }

  void reset() {
    nodes_.assign(2, Node{});
    nodes_[1].attr.type = nfs::FileType::kDir;
    nodes_[1].attr.mode = 0777;
    nodes_[1].attr.nlink = 2;
  }

  void start(nfs::Done<nfs::FileHandle> done) override { answer(std::move(done), ok(handle(1))); }
  std::uint64_t epoch() const override { return 1; }
  std::string describe() const override { return "fake://fuzz"; }

  void getattr(const nfs::CallOptions&, const nfs::FileHandle& fh, nfs::Done<nfs::Attr> done) override {
    const std::optional<nfs::Attr> a = attr(fh);
    answer(std::move(done), a ? ok(*a) : fail<nfs::Attr>(nfs::Status::kStale));
  }
  void setattr(const nfs::CallOptions&, const nfs::FileHandle& fh, const nfs::SetAttr& s,
               std::optional<nfs::Time>, nfs::Done<nfs::Wcc> done) override {
    Node* n = find(fh);
    if (!n) return answer(std::move(done), fail<nfs::Wcc>(nfs::Status::kStale));
    if (s.mode) n->attr.mode = *s.mode & 07777;
    if (s.size) n->data.resize(std::min<std::uint64_t>(*s.size, kMaxData));
    touch(*n);
    answer(std::move(done), ok(wcc(fh)));
  }
  void lookup(const nfs::CallOptions&, const nfs::FileHandle& dir, std::string_view name,
              nfs::Done<nfs::LookupOk> done) override {
    nfs::Result<nfs::LookupOk> r;
    if (auto e = child(dir, name, &r.value.fh); e != nfs::Status::kOk) r.error = err(e, name);
    else r.value.attr = attr(r.value.fh);
    r.value.dir_attr = attr(dir);
    answer(std::move(done), std::move(r));
  }
  void access(const nfs::CallOptions&, const nfs::FileHandle& fh, std::uint32_t bits,
              nfs::Done<nfs::AccessOk> done) override {
    if (!find(fh)) return answer(std::move(done), fail<nfs::AccessOk>(nfs::Status::kStale));
    answer(std::move(done), ok(nfs::AccessOk{attr(fh), bits & 0x1f}));
  }
  void readlink(const nfs::CallOptions&, const nfs::FileHandle& fh, nfs::Done<nfs::ReadlinkOk> done) override {
    Node* n = find(fh);
    if (!n || n->attr.type != nfs::FileType::kLnk)
      return answer(std::move(done), fail<nfs::ReadlinkOk>(n ? nfs::Status::kInval : nfs::Status::kStale));
    answer(std::move(done), ok(nfs::ReadlinkOk{attr(fh), n->data}));
  }
  void read(const nfs::CallOptions&, const nfs::FileHandle& fh, std::uint64_t offset, std::uint32_t count,
            nfs::Done<nfs::ReadOk> done) override {
    Node* n = find(fh);
    if (!n) return answer(std::move(done), fail<nfs::ReadOk>(nfs::Status::kStale));
    nfs::Result<nfs::ReadOk> r;
    const std::size_t from = std::min<std::uint64_t>(offset, n->data.size());
    const std::size_t len = std::min<std::size_t>(count, n->data.size() - from);
    r.value.data = nfs::Buffer::copy_of(std::string_view(n->data).substr(from, len));
    r.value.count = static_cast<std::uint32_t>(len);
    r.value.eof = from + len == n->data.size();
    r.value.attr = attr(fh);
    answer(std::move(done), std::move(r));
  }
  void write(const nfs::CallOptions&, const nfs::FileHandle& fh, std::uint64_t offset, nfs::WriteData data,
             nfs::StableHow stable, nfs::Done<nfs::WriteOk> done) override {
    Node* n = find(fh);
    if (!n || n->attr.type != nfs::FileType::kReg)
      return answer(std::move(done), fail<nfs::WriteOk>(n ? nfs::Status::kIsdir : nfs::Status::kStale));
    if (offset > kMaxData || data.size() > kMaxData - offset) return answer(std::move(done), fail<nfs::WriteOk>(nfs::Status::kFbig));
    if (n->data.size() < offset + data.size()) n->data.resize(offset + data.size());
    std::memcpy(n->data.data() + offset, data.data(), data.size());
    touch(*n);
    answer(std::move(done), ok(nfs::WriteOk{wcc(fh), static_cast<std::uint32_t>(data.size()), stable, {}}));
  }
  void create(const nfs::CallOptions&, const nfs::FileHandle& dir, std::string_view name, nfs::CreateMode,
              const nfs::SetAttr& a, nfs::Verifier, nfs::Done<nfs::CreateOk> done) override {
    answer(std::move(done), make(dir, name, nfs::FileType::kReg, a, ""));
  }
  void mkdir(const nfs::CallOptions&, const nfs::FileHandle& dir, std::string_view name, const nfs::SetAttr& a,
             nfs::Done<nfs::CreateOk> done) override {
    answer(std::move(done), make(dir, name, nfs::FileType::kDir, a, ""));
  }
  void symlink(const nfs::CallOptions&, const nfs::FileHandle& dir, std::string_view name,
               std::string_view target, const nfs::SetAttr& a, nfs::Done<nfs::CreateOk> done) override {
    answer(std::move(done), make(dir, name, nfs::FileType::kLnk, a, target));
  }
  void mknod(const nfs::CallOptions&, const nfs::FileHandle& dir, std::string_view name, nfs::FileType type,
             const nfs::SetAttr& a, std::uint32_t, std::uint32_t, nfs::Done<nfs::CreateOk> done) override {
    answer(std::move(done), make(dir, name, type, a, ""));
  }
  void remove(const nfs::CallOptions&, const nfs::FileHandle& dir, std::string_view name,
              nfs::Done<nfs::Wcc> done) override {
    answer(std::move(done), unlink(dir, name, false));
  }
  void rmdir(const nfs::CallOptions&, const nfs::FileHandle& dir, std::string_view name,
             nfs::Done<nfs::Wcc> done) override {
    answer(std::move(done), unlink(dir, name, true));
  }
  void rename(const nfs::CallOptions&, const nfs::FileHandle& from_dir, std::string_view from_name,
              const nfs::FileHandle& to_dir, std::string_view to_name, nfs::Done<nfs::RenameOk> done) override {
    nfs::Result<nfs::RenameOk> r;
    nfs::FileHandle moved;
    nfs::Status e = child(from_dir, from_name, &moved);
    if (e == nfs::Status::kOk) e = check_new(to_dir, to_name, /*may_exist=*/true);
    if (e != nfs::Status::kOk) {
      r.error = err(e, to_name.empty() ? from_name : to_name);
    } else {
      find(from_dir)->children.erase(std::string(from_name));
      find(to_dir)->children[std::string(to_name)] = id_of(moved);
    }
    r.value.from_dir_wcc = wcc(from_dir);
    r.value.to_dir_wcc = wcc(to_dir);
    answer(std::move(done), std::move(r));
  }
  void link(const nfs::CallOptions&, const nfs::FileHandle& fh, const nfs::FileHandle& dir,
            std::string_view name, nfs::Done<nfs::LinkOk> done) override {
    nfs::Result<nfs::LinkOk> r;
    Node* n = find(fh);
    nfs::Status e = !n ? nfs::Status::kStale : n->attr.type == nfs::FileType::kDir ? nfs::Status::kIsdir
                                                                                : check_new(dir, name, false);
    if (e != nfs::Status::kOk) {
      r.error = err(e, name);
    } else {
      find(dir)->children[std::string(name)] = id_of(fh);
      ++n->attr.nlink;
    }
    r.value.attr = attr(fh);
    r.value.dir_wcc = wcc(dir);
    answer(std::move(done), std::move(r));
  }
  void readdir(const nfs::CallOptions& o, const nfs::FileHandle& dir, std::uint64_t cookie,
               const nfs::Verifier& v, std::uint32_t count, nfs::Done<nfs::ReaddirOk> done) override {
    readdirplus(o, dir, cookie, v, count, count, std::move(done));
  }
  void readdirplus(const nfs::CallOptions&, const nfs::FileHandle& dir, std::uint64_t cookie, const nfs::Verifier&,
                   std::uint32_t, std::uint32_t, nfs::Done<nfs::ReaddirOk> done) override {
    Node* d = find(dir);
    if (!d || d->attr.type != nfs::FileType::kDir)
      return answer(std::move(done), fail<nfs::ReaddirOk>(d ? nfs::Status::kNotdir : nfs::Status::kStale));
    nfs::Result<nfs::ReaddirOk> r;
    r.value.dir_attr = attr(dir);
    std::uint64_t c = 0;
    for (const auto& [name, id] : d->children) {
      if (++c <= cookie) continue;
      nfs::DirEntry e{id, name, c, attr(handle(id)), handle(id)};
      r.value.entries.push_back(std::move(e));
    }
    r.value.eof = true;
    answer(std::move(done), std::move(r));
  }
  void fsstat(const nfs::CallOptions&, const nfs::FileHandle& fh, nfs::Done<nfs::FsstatOk> done) override {
    answer(std::move(done), ok(nfs::FsstatOk{attr(fh), 1 << 30, 1 << 29, 1 << 29, 1000, 900, 900, 0}));
  }
  void fsinfo(const nfs::CallOptions&, const nfs::FileHandle& fh, nfs::Done<nfs::FsinfoOk> done) override {
    nfs::FsinfoOk f;
    f.attr = attr(fh);
    f.rtmax = f.wtmax = 1 << 20;
    f.maxfilesize = kMaxData;
    answer(std::move(done), ok(f));
  }
  void pathconf(const nfs::CallOptions&, const nfs::FileHandle& fh, nfs::Done<nfs::PathconfOk> done) override {
    answer(std::move(done), ok(nfs::PathconfOk{attr(fh), 32, 255, true, true, false, true}));
  }
  void commit(const nfs::CallOptions&, const nfs::FileHandle& fh, std::uint64_t, std::uint32_t,
              nfs::Done<nfs::CommitOk> done) override {
    if (!find(fh)) return answer(std::move(done), fail<nfs::CommitOk>(nfs::Status::kStale));
    answer(std::move(done), ok(nfs::CommitOk{wcc(fh), {}}));
  }

 private:
  static constexpr std::size_t kMaxNodes = 256;
  static constexpr std::uint64_t kMaxData = 1 << 16;
  struct Node {
    nfs::Attr attr;
    std::string data;  // file contents or symlink target
    std::map<std::string, std::uint64_t> children;
  };

  template <class T>
  static nfs::Result<T> ok(T v) {
    nfs::Result<T> r;
    r.value = std::move(v);
    return r;
  }
  static nfs::Error err(nfs::Status s, std::string_view name = {}) {
    nfs::Error e;
    if (!name.empty() && name[0] == '!') {
      e.failure = nfs::Failure::kConnectionLost;
      e.message = "fake: lost";
    } else {
      e.failure = nfs::Failure::kNfs;
      e.status = s;
    }
    return e;
  }
  template <class T>
  static nfs::Result<T> fail(nfs::Status s) {
    nfs::Result<T> r;
    r.error = err(s);
    return r;
  }
  // The completion runs under its own color, as from a real backend.
  template <class T>
  static void answer(nfs::Done<T> done, nfs::Result<T> r) {
    const asmp::color_t color = done.color();
    runtime().cpucb(asmp::Closure(
        [done = std::move(done), r = std::move(r)]() mutable { done(std::move(r)); }, color));
  }

  static std::uint64_t id_of(const nfs::FileHandle& fh) {
    std::uint64_t id = 0;
    if (fh.size() == 8) std::memcpy(&id, fh.bytes().data(), 8);
    return id;
  }
  Node* find(const nfs::FileHandle& fh) {
    const std::uint64_t id = id_of(fh);
    return id > 0 && id < nodes_.size() && nodes_[id].attr.nlink > 0 ? &nodes_[id] : nullptr;
  }
  std::optional<nfs::Attr> attr(const nfs::FileHandle& fh) {
    Node* n = find(fh);
    if (!n) return std::nullopt;
    nfs::Attr a = n->attr;
    a.fileid = id_of(fh);
    a.size = a.used = n->data.size();
    return a;
  }
  nfs::Wcc wcc(const nfs::FileHandle& fh) { return nfs::Wcc{std::nullopt, attr(fh)}; }
  void touch(Node& n) { ++n.attr.ctime.seconds; }

  nfs::Status child(const nfs::FileHandle& dir, std::string_view name, nfs::FileHandle* out) {
    Node* d = find(dir);
    if (!d) return nfs::Status::kStale;
    if (d->attr.type != nfs::FileType::kDir) return nfs::Status::kNotdir;
    if (name == ".") return *out = dir, nfs::Status::kOk;
    auto it = d->children.find(std::string(name));
    if (it == d->children.end() || name[0] == '!') return nfs::Status::kNoent;
    *out = handle(it->second);
    return nfs::Status::kOk;
  }
  nfs::Status check_new(const nfs::FileHandle& dir, std::string_view name, bool may_exist) {
    Node* d = find(dir);
    if (!d) return nfs::Status::kStale;
    if (d->attr.type != nfs::FileType::kDir) return nfs::Status::kNotdir;
    if (name.empty() || name == "." || name == ".." || name[0] == '!') return nfs::Status::kInval;
    if (!may_exist && d->children.count(std::string(name))) return nfs::Status::kExist;
    return nfs::Status::kOk;
  }
  nfs::Result<nfs::CreateOk> make(const nfs::FileHandle& dir, std::string_view name, nfs::FileType type,
                                  const nfs::SetAttr& a, std::string_view target) {
    nfs::Result<nfs::CreateOk> r;
    nfs::Status e = check_new(dir, name, false);
    if (e == nfs::Status::kOk && nodes_.size() >= kMaxNodes) e = nfs::Status::kNospc;
    if (e != nfs::Status::kOk) {
      r.error = err(e, name);
    } else {
      Node n;
      n.attr.type = type;
      n.attr.mode = a.mode.value_or(0644) & 07777;
      n.attr.nlink = 1;
      n.data = std::string(target.substr(0, 4096));
      nodes_.push_back(std::move(n));
      find(dir)->children[std::string(name)] = nodes_.size() - 1;
      r.value.fh = handle(nodes_.size() - 1);
      r.value.attr = attr(*r.value.fh);
    }
    r.value.dir_wcc = wcc(dir);
    return r;
  }
  nfs::Result<nfs::Wcc> unlink(const nfs::FileHandle& dir, std::string_view name, bool is_dir) {
    nfs::Result<nfs::Wcc> r;
    nfs::FileHandle fh;
    nfs::Status e = child(dir, name, &fh);
    Node* n = e == nfs::Status::kOk ? find(fh) : nullptr;
    if (n && (n->attr.type == nfs::FileType::kDir) != is_dir) e = is_dir ? nfs::Status::kNotdir : nfs::Status::kIsdir;
    else if (n && is_dir && !n->children.empty()) e = nfs::Status::kNotempty;
    else if (n && fh == dir) e = nfs::Status::kInval;
    if (e != nfs::Status::kOk) {
      r.error = err(e, name);
    } else {
      find(dir)->children.erase(std::string(name));
      --n->attr.nlink;
    }
    r.value = wcc(dir);
    return r;
  }

  std::vector<Node> nodes_;  // by id; 0 unused, 1 the root
};

}  // namespace sfs_fuzz
