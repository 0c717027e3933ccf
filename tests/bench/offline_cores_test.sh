#!/usr/bin/env bash
# offline_cores_test.sh: the --offline-cores path of bench/run
# (bench/fsbench/lib.sh) on a fake sysfs directory, never the real one:
# cores taken offline come back online when the run ends normally, on an
# error (exit 1 from fsb_die), and on SIGINT/SIGTERM while a workload runs;
# a core that was offline before the run stays offline; cpu0 (no online
# switch) is left alone. Starts only child bash processes and `sleep`.
# Usage: bash tests/bench/offline_cores_test.sh   (CTest: fsbench_offline_cores)
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd -P)
lib=$here/../../bench/fsbench/lib.sh
pass=0 fail=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

check() {  # name condition...
  local name=$1; shift
  if "$@"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $name" >&2; fi
}

# fake_sysfs DIR [OFFLINE...]: cpu0 (no online file), cpu1..cpu3 online,
# except those listed.
fake_sysfs() {
  local d=$1 c; shift
  rm -rf "$d"; mkdir -p "$d/cpu0"
  for c in 1 2 3; do mkdir -p "$d/cpu$c"; echo 1 >"$d/cpu$c/online"; done
  for c in "$@"; do echo 0 >"$d/cpu$c/online"; done
  mkdir -p "$d/cpufreq"   # not a CPU: must be ignored
}
states() { local d=$1 c s=; for c in 1 2 3; do s+=$(<"$d/cpu$c/online"); done; echo "$s"; }

# run_case SYSFS BODY: a child bash (in the foreground: a background job of
# a script starts with SIGINT ignored, which no trap can undo) that sources
# lib.sh as bench/run does, installs its traps, and runs BODY. Prints the
# child's exit status.
run_case() {
  local sys=$1 body=$2
  mkdir -p "$tmp/state"
  FSB_STATE=$tmp/state FSB_SYSFS_CPU=$sys bash -c "
    set -euo pipefail
    source '$lib'
    : >\"\$FSB_STATE/pids\"; : >\"\$FSB_STATE/mounts\"
    echo \$\$ >'$tmp/pid'
    fsb_install_traps
    $body" 2>"$tmp/log" </dev/null
  echo "$?"
}

sys=$tmp/sys

# 1. A normal end: cores go offline for k=1, back at exit.
fake_sysfs "$sys"
rc=$(run_case "$sys" 'fsb_cores_keep_online 1 0,1,2,3
  echo "$(cat $FSB_SYSFS_CPU/cpu1/online)$(cat $FSB_SYSFS_CPU/cpu2/online)$(cat $FSB_SYSFS_CPU/cpu3/online)" >'"$tmp"'/during')
check "normal end exits 0 (rc $rc)" test "$rc" = 0
check "k=1 took cpu1-3 offline (saw $(cat "$tmp/during" 2>/dev/null))" test "$(cat "$tmp/during" 2>/dev/null)" = 000
check "normal end restores all ($(states "$sys"))" test "$(states "$sys")" = 111

# 2. k=2 keeps the first two of the list (0 and 2 here) online.
fake_sysfs "$sys"
rc=$(run_case "$sys" 'fsb_cores_keep_online 2 0,2,1,3; echo "$(cat $FSB_SYSFS_CPU/cpu1/online)$(cat $FSB_SYSFS_CPU/cpu2/online)$(cat $FSB_SYSFS_CPU/cpu3/online)" >'"$tmp"'/during
  fsb_cores_keep_online 3 0,2,1,3; echo "$(cat $FSB_SYSFS_CPU/cpu1/online)$(cat $FSB_SYSFS_CPU/cpu2/online)$(cat $FSB_SYSFS_CPU/cpu3/online)" >'"$tmp"'/during3')
check "k=2 of 0,2,1,3 keeps cpu2 (saw $(cat "$tmp/during"))" test "$(cat "$tmp/during")" = 010
check "k=3 brings cpu1 back (saw $(cat "$tmp/during3"))" test "$(cat "$tmp/during3")" = 110
check "k steps restore all ($(states "$sys"))" test "$(states "$sys")" = 111

# 3. An error in the middle of the run (fsb_die, set -e).
fake_sysfs "$sys"
rc=$(run_case "$sys" 'fsb_cores_keep_online 1 0,1,2,3; false; echo not reached')
check "error exits non-zero (rc $rc)" test "$rc" != 0
check "error restores all ($(states "$sys"))" test "$(states "$sys")" = 111
fake_sysfs "$sys"
rc=$(run_case "$sys" 'fsb_cores_keep_online 1 0,1,2,3; fsb_die "a workload failed"')
check "fsb_die exits 1 (rc $rc)" test "$rc" = 1
check "fsb_die restores all ($(states "$sys"))" test "$(states "$sys")" = 111

# 4. Ctrl-C (SIGINT) and SIGTERM while a workload runs in the background.
for sig in INT TERM; do
  fake_sysfs "$sys"
  rm -f "$tmp/ready"
  (
    for _ in $(seq 200); do [[ -e $tmp/ready ]] && break; sleep 0.05; done
    kill -"$sig" "$(cat "$tmp/pid")"
  ) &
  killer=$!
  t0=$SECONDS
  rc=$(run_case "$sys" 'fsb_cores_keep_online 1 0,1,2,3; touch '"$tmp"'/ready; fsb_bg sleep 30')
  wait "$killer"
  expect=$((128 + $(kill -l "$sig")))
  check "SIG$sig exits $expect (rc $rc)" test "$rc" = "$expect"
  check "SIG$sig does not wait for the workload ($((SECONDS - t0)) s)" test $((SECONDS - t0)) -lt 10
  check "SIG$sig restores all ($(states "$sys"))" test "$(states "$sys")" = 111
done

# 5. A core offline before the run is not ours: it stays offline.
fake_sysfs "$sys" 3
rc=$(run_case "$sys" 'fsb_cores_keep_online 1 0,1,2,3')
check "pre-offline core: rc $rc" test "$rc" = 0
check "cpu3 (offline before) stays offline ($(states "$sys"))" test "$(states "$sys")" = 110
check "the record is removed after a full restore" test ! -e "$tmp/state/cores-offline"

# 6. A core that refuses to come back is reported and kept in the record.
fake_sysfs "$sys"
rc=$(run_case "$sys" 'fsb_cores_keep_online 1 0,1,2,3; rm -rf "$FSB_SYSFS_CPU/cpu2"; mkdir "$FSB_SYSFS_CPU/cpu2"; mkdir "$FSB_SYSFS_CPU/cpu2/online"')
check "a stuck core is reported" grep -q "could NOT bring cpu2 back online" "$tmp/log"
check "the others came back" test "$(cat "$sys/cpu1/online")$(cat "$sys/cpu3/online")" = 11

echo "offline_cores: $pass passed, $fail failed"
[[ $fail == 0 ]]
