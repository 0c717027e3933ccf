// key_holder.h: privilege separation for the server's private key.
//
// sfsd parses everything the network sends (SFS_CONNECT, handshakes,
// records, XDR) in one process. So that a memory-disclosure or
// code-execution flaw there does not give away the server's long-term key
// (and with it the server's identity), the key lives in a second process,
// forked by sfsd at start before any thread exists, which keeps nothing
// else: no descriptor but one end of a socketpair, no network input. It
// answers two questions, one datagram each (SOCK_SEQPACKET), each tagged
// with sfsd's sequence number, which the answer carries back:
//     DH:   u8 1 || seq (8) || peer X25519 public (32)  ->  seq || u8 ok || X25519(s, peer) (32)
//     SIGN: u8 2 || seq (8) || message (<= 256 bytes)   ->  seq || Ed25519 signature (64)
// The handshake asks each once (the "es" DH and the transcript signature;
// docs/protocol.md). sfsd then destroys (wipes) its own copy of the key.
// What a compromised sfsd can still do: have handshakes signed while it
// runs (impersonate the server for as long as it is compromised), not take
// the key away.
//
// Failures close: a question the holder does not answer within 2 s fails
// that handshake (logged) and nothing else: its late answer, recognized by
// its sequence number, is dropped when it comes, so a holder that was only
// stalled (a loaded machine, a stopped process) serves the next handshake.
// If the holder dies or answers malformed, every later handshake fails
// (logged once); connections already open are untouched either way. The
// holder dies with sfsd (PR_SET_PDEATHSIG) and ends when sfsd closes its
// end.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "sfs/keys.h"
#include "sfs/result.h"

namespace sfsd {

// Forks the holder with `key` and returns sfsd's side; the caller then drops
// its own reference to `key`. Call while the process has one thread.
// `log` is called (from any thread) for each unanswered question, and once
// if the holder is lost.
sfs::Result<std::shared_ptr<const sfs::ServerKeyOps>> start_key_holder(
    std::shared_ptr<const sfs::ServerKey> key, std::function<void(const std::string&)> log);

}  // namespace sfsd
