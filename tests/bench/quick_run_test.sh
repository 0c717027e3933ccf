#!/usr/bin/env bash
# quick_run_test.sh: runs `bench/run --quick` end to end on tiny data
# (--size 16: 4 x 16 MiB and 64 MiB files) and checks that every mount it
# made produced a figure for both read workloads, that the summary, the
# JSON lines and the plots are there, and that everything was cleaned up:
# no mount and no process of the run left (nothing whose command line
# names its state directory), the state directory gone.
# Starts (through bench/run) Ganesha, sfsd, sfsagent, sfsclient, sshd and
# two sshfs mounts, and stops them. Needs root and /dev/fuse; otherwise it
# skips (exit 77).
# Usage: bash tests/bench/quick_run_test.sh [BUILD_DIR]   (CTest: fsbench_quick_run)
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd -P)
repo=$(cd "$here/../.." && pwd -P)
[[ $(id -u) == 0 && -w /dev/fuse ]] || { echo "SKIP: needs root and /dev/fuse"; exit 77; }
for c in fio sshfs /usr/sbin/sshd ganesha.nfsd gnuplot; do
  command -v "$c" >/dev/null || { echo "SKIP: $c is not installed (scripts/install-deps.sh)"; exit 77; }
done
export SFS_BUILD_DIR=${1:-${SFS_BUILD_DIR:-$repo/build}}
out=$(mktemp -d /tmp/fsbench-quick.XXXXXX)
trap 'rm -rf "$out"' EXIT
pass=0 fail=0
check() { local name=$1; shift; if "$@"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $name" >&2; fi; }

t0=$SECONDS
timeout -k 10 150 bash "$repo/bench/run" --quick --size 16 --out "$out/res" >"$out/stdout" 2>"$out/stderr"
rc=$?
took=$((SECONDS - t0))
check "bench/run --quick exits 0 (rc $rc; stderr below)" test "$rc" = 0
[[ $rc == 0 ]] || tail -n 40 "$out/stderr" >&2
check "it took under 150 s ($took s)" test "$took" -lt 150
state=$(cat "$out/res/state-dir.txt" 2>/dev/null)
check "it says where its state was" test -n "$state"

# Every mount produced a figure for both workloads.
mapfile -t fss <"$out/res/fs.txt"
check "sfs and both sshfs mounts were made (${fss[*]})" test "${#fss[@]}" -ge 3
for fs in "${fss[@]}"; do
  for w in seq-read-4 seq-read-1; do
    n=$(/usr/bin/python3 - "$out/res/results.jsonl" "$w" "$fs" <<'EOF'
import json, sys
ok = 0
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r["workload"] == sys.argv[2] and r["fs"] == sys.argv[3] and r["rc"] == 0 and r["mb_per_s"] > 0 \
            and r["cpu_s_per_gib"] > 0 and "workload" in r["cpu_s"]:
        ok += 1
print(ok)
EOF
)
    check "$w on $fs has a figure" test "$n" = 1
    check "$w on $fs is in the summary" grep -Eq "^$w +$fs " "$out/stdout"
  done
done
# The SFS records carry each process of both ends.
for p in sfsclient sfsagent sfsd ganesha; do
  check "sfs records carry the CPU of $p" bash -c "grep '\"fs\": \"sfs\"' '$out/res/results.jsonl' | grep -q '\"$p\": '"
done
check "sshfs records name sshfs and sshd" grep -q '"fs": "sshfs-tuned".*"sshfs".*"sshd"' "$out/res/results.jsonl"
for p in throughput cpu; do check "plot $p" test -s "$out/res/plots/fsbench-$p.png"; done
check "section.md has the table" grep -q '| seq-read-4 | sfs |' "$out/res/section.md"
check "progress on stderr shows the time left" grep -q 'left)' "$out/stderr"

# Nothing left behind.
no_mount_left() { ! grep -qF "$state" /proc/mounts; }
no_process_left() {  # (pgrep from here: a `bash -c` would match itself)
  local left
  left=$(pgrep -af -- "$state") || return 0
  echo "left running: $left" >&2
  return 1
}
check "no mount of the run is left" no_mount_left
check "no process of the run is left" no_process_left
check "the state directory is gone" test ! -e "$state"

# Ctrl-C in the middle of a run: everything is stopped and unmounted too.
# (SIGINT is ignored in a script's background jobs; python resets it to the
# default before exec, as a terminal would have it.)
/usr/bin/python3 -c 'import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execvp("bash", sys.argv[1:])' \
  bash "$repo/bench/run" --quick --size 16 --out "$out/int" >/dev/null 2>"$out/int.stderr" &
run=$!
for _ in $(seq 600); do grep -q '\[1/' "$out/int.stderr" 2>/dev/null && break; sleep 0.1; done
check "the interrupted run got as far as its first workload" grep -q '\[1/' "$out/int.stderr"
state=$(cat "$out/int/state-dir.txt" 2>/dev/null)
kill -INT "$run"
rc=0; wait "$run" || rc=$?
check "SIGINT: exits 130 (rc $rc)" test "$rc" = 130
check "SIGINT: says it stops" grep -q 'caught SIGINT' "$out/int.stderr"
check "SIGINT: no mount of the run is left" no_mount_left
check "SIGINT: no process of the run is left" no_process_left
check "SIGINT: the state directory is gone" test ! -e "$state"

echo "quick_run: $pass passed, $fail failed"
[[ $fail == 0 ]]
