// invalidate_fuzz: the client's side of INVALIDATE. The input is the byte
// stream a server sends on a client's connection: record marking, RPC
// calls (and stray replies), SFS_NFSCB's argument decoder, then the
// client's callback program (file_client.h, callback_program) and the
// inode table's invalidation (sfsclient/src/inodes.h) that sfsclient runs
// from it. The secure channel is left out (record_fuzz covers it): this is
// what runs on the records it lets through.
//
// Per input, over a socketpair: write the input, close our sending side,
// read the client's answers until it closes, and wait for its close
// handler. Each INVALIDATE is answered at once, later from another color,
// or never (dropped: the connection must still answer, SYSTEM_ERR), by its
// change number.
// Properties: no crash, leak or hang; after INVALIDATE(fh, c) the inode of
// fh has no cached attributes and never again caches attributes older
// than c.
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>

#include "fuzz_runtime.h"
#include "fuzz_socket.h"
#include "inodes.h"
#include "sfs/file_client.h"

namespace {

namespace rpc = asmp::rpc;
namespace nfs = asmp::nfs;
using sfs_fuzz::runtime;
constexpr asmp::color_t kConnColor = 7;

// The inodes a client would have: the handles make_seeds puts in its
// INVALIDATE calls.
void populate(sfsclient::InodeTable& t) {
  for (const char* h : {"fuzz-handle-1", "fuzz-handle-2", ""}) {
    sfsclient::Inode& in = t.get(1, h, true);
    nfs::Attr a;
    a.type = nfs::FileType::kDir;
    t.store_attr(in, a, 5, 60000, asmp::Clock::now());
    in.children["x"] = 1;
  }
}

void on_invalidate(sfsclient::InodeTable& t, const sfs::fs::Handle& fh, std::uint64_t change,
                   sfs::fs::FileClientOptions::Invalidated done) {
  const auto now = asmp::Clock::now();
  if (sfsclient::Inode* in = t.invalidate(1, fh, change)) {
    if (in->fh != fh || in->invalidated_at < change || t.cached_attr(*in, now)) std::abort();
    // Attributes computed before the change must not be cached.
    if (change > 0 && t.store_attr(*in, nfs::Attr{}, change - 1, 60000, now) != now) std::abort();
  }
  switch (change % 3) {
    case 0: done(); break;
    case 1: runtime().cpucb(asmp::Closure([done] { done(); }, kConnColor + 1)); break;
    default: break;  // dropped unanswered
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  runtime();  // before anything takes the current runtime
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) std::abort();
  auto table = std::make_shared<sfsclient::InodeTable>();
  populate(*table);
  auto programs = std::make_shared<rpc::Programs>();
  programs->add(sfs::fs::callback_program(
      [table](const sfs::fs::Handle& fh, std::uint64_t change, sfs::fs::FileClientOptions::Invalidated done) {
        on_invalidate(*table, fh, change, std::move(done));
      }));
  auto closed = std::make_shared<sfs_fuzz::Signal>();
  rpc::ConnectionOptions co;
  co.programs = programs;
  co.on_close = [closed](rpc::CloseReason, int) { closed->raise(); };
  {
    auto conn = rpc::Connection::create(rpc::Transport::create(sv[0], kConnColor), std::move(co));
    (void)conn;  // lives while its transport is open
  }
  // A client that closes early (a bad record) is fine; one that neither
  // reads, answers nor closes for 30 s is a hang (fuzz_socket.h: not a
  // socket timeout, which libFuzzer's SIGALRM cuts short).
  sfs_fuzz::send_all(sv[1], data, size, "the client");
  ::shutdown(sv[1], SHUT_WR);
  sfs_fuzz::recv_until_closed(sv[1], "the client");
  ::close(sv[1]);
  closed->wait_for(1, "the client's connection to close");
  // Deferred answers still queued hold the table: let them run first.
  sfs_fuzz::run_on(kConnColor + 1, [] {});
  return 0;
}
