#!/usr/bin/env bash
# sfskey add/list/delete as a user runs them, against a real sfsagent started
# here as a daemon (the way a user starts it), in a temporary HOME. No
# sfsclient runs: the agent keeps retrying its registration, which is fine.
# Starts: one sfsagent daemon (killed at the end), and briefly a second one
# that must refuse to start.
# Usage: sfskey_agent_test.sh PATH_TO_SFSKEY PATH_TO_SFSAGENT
set -u
SFSKEY=$1
SFSAGENT=$2
dir=$(mktemp -d /tmp/sfskey-agent-test.XXXXXX)
agent_pid=
cleanup() {
  if [ -n "$agent_pid" ]; then kill -KILL "$agent_pid" 2>/dev/null; fi
  rm -rf "$dir"
}
trap cleanup EXIT
export HOME=$dir/home
mkdir -m 700 "$HOME"
unset XDG_RUNTIME_DIR SFS_AGENT_SOCK
reg="$dir/reg.sock"
me=$(id -un)

fails=0
check() {  # description, then a command that must succeed
  local what=$1; shift
  if "$@"; then echo "ok   $what"; else echo "FAIL $what"; fails=$((fails + 1)); fi
}
must_fail() {  # description, expected stderr fragment, command...
  local what=$1 frag=$2; shift 2
  local err
  if err=$("$@" 2>&1 >/dev/null); then
    echo "FAIL $what (exit 0)"; fails=$((fails + 1)); return
  fi
  if grep -qF -- "$frag" <<<"$err"; then echo "ok   $what"; else
    echo "FAIL $what: stderr was: $err"; fails=$((fails + 1)); fi
}
# Gone, or a zombie nobody reaped yet (the daemon's parent exited).
gone() { ! kill -0 "$1" 2>/dev/null || grep -q '^[^ ]* ([^)]*) Z' "/proc/$1/stat" 2>/dev/null; }
wait_gone() {
  for _ in $(seq 100); do gone "$1" && return 0; sleep 0.05; done
  return 1
}

must_fail "add without an agent says to start one" "start sfsagent first" "$SFSKEY" add
must_fail "gen --server still needs -o" "needs -o FILE" "$SFSKEY" gen --server

check "gen --user without -o writes ~/.sfs/identity" "$SFSKEY" gen --user
check "  mode 0600" test "$(stat -c %a "$HOME/.sfs/identity")" = 600
check "  in a 0700 ~/.sfs" test "$(stat -c %a "$HOME/.sfs")" = 700
must_fail "  and never overwrites it" "refusing to overwrite" "$SFSKEY" gen --user
pub1=$("$SFSKEY" show "$HOME/.sfs/identity" | sed -n 's/^public //p')

out=$("$SFSAGENT" --registration "$reg")
agent_pid=$(sed -n 's/^sfsagent: started, pid \([0-9]*\),.*/\1/p' <<<"$out")
check "sfsagent daemonizes and prints its pid" test -n "$agent_pid"
check "  it runs" kill -0 "$agent_pid"
sock="$HOME/.sfs/agent.sock"
check "  control socket at ~/.sfs/agent.sock" test -S "$sock"
check "  mode 0600" test "$(stat -c %a "$sock")" = 600
must_fail "a second agent on the same socket refuses to start" "already running" \
  "$SFSAGENT" --foreground --registration "$reg"
check "  and the first still runs" kill -0 "$agent_pid"

check "list on an empty agent" grep -q "holds no keys" <<<"$("$SFSKEY" list)"
check "add (default file)" grep -q "^added $pub1 as $me, for any server" <<<"$("$SFSKEY" add)"
check "list shows it" test "$("$SFSKEY" list)" = "$pub1 $me * $HOME/.sfs/identity"

name=@127.0.0.1%4000,7dxcrcj3cnnrlte6xsmu2ocz2wygnrap
check "add again with --name and --server updates it" \
  grep -q "^updated $pub1 as alice, for $name" <<<"$("$SFSKEY" add --name alice --server "$name")"
check "  list shows the update" test "$("$SFSKEY" list)" = "$pub1 alice $name $HOME/.sfs/identity"

"$SFSKEY" gen --user -o "$dir/k2" >/dev/null
chmod 644 "$dir/k2"
must_fail "add refuses a key file others can read" "chmod 600 $dir/k2" "$SFSKEY" add "$dir/k2"
chmod 600 "$dir/k2"
pub2=$("$SFSKEY" show "$dir/k2" | sed -n 's/^public //p')
check "add a second key" "$SFSKEY" add "$dir/k2" --name bob
check "  list shows two" test "$("$SFSKEY" list | wc -l)" = 2
check "  in the order added" test "$("$SFSKEY" list | sed -n 2p)" = "$pub2 bob * $dir/k2"
check "delete by file" grep -q "deleted 1 key" <<<"$("$SFSKEY" delete "$dir/k2")"
check "delete by public key" grep -q "deleted 1 key" <<<"$("$SFSKEY" delete "$pub1")"
check "  none left" grep -q "holds no keys" <<<"$("$SFSKEY" list)"
must_fail "delete what is not there" "no key in the agent matches" "$SFSKEY" delete
"$SFSKEY" add >/dev/null && "$SFSKEY" add "$dir/k2" >/dev/null
rm "$dir/k2"
check "delete by the name of a file that is gone" grep -q "deleted 1 key" <<<"$("$SFSKEY" delete "$dir/k2")"
"$SFSKEY" gen --user -o "$dir/k3" >/dev/null && "$SFSKEY" add "$dir/k3" >/dev/null
check "delete --all" grep -q "deleted 2 keys" <<<"$("$SFSKEY" delete --all)"

must_fail "bad --name" "not a valid SFS user name" "$SFSKEY" add --name Alice
must_fail "bad --server" "expected @HOST%PORT,HOSTID" "$SFSKEY" add --server 127.0.0.1:4000
must_fail "a missing key file says how to make one" "sfskey gen --user" "$SFSKEY" add "$dir/nope"
if [ "$(id -u)" = 0 ]; then
  "$SFSKEY" gen --user -o "$dir/theirs" >/dev/null && chown 65534 "$dir/theirs"
  must_fail "add refuses someone else's key file" "belongs to uid 65534, not to you" \
    "$SFSKEY" add "$dir/theirs"
fi
SFS_AGENT_SOCK=$dir/elsewhere.sock must_fail "SFS_AGENT_SOCK is honoured" "start sfsagent first" \
  "$SFSKEY" list

check "SIGTERM stops the agent" kill -TERM "$agent_pid"
check "  it exits" wait_gone "$agent_pid"
check "  and removes its socket" test ! -e "$sock"
agent_pid=

if [ "$fails" -ne 0 ]; then echo "$fails check(s) failed"; exit 1; fi
echo "all sfskey agent checks passed"
