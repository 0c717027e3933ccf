#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan + UBSan, CMake with
# -DSFS_FUZZ=ON in their own build tree) and runs them, JOBS at a time
# (default 2, one per core), each for SECONDS seconds (default 60).
# Exits non-zero if any target crashes, leaks, times out or trips a
# sanitizer, after naming the reproducer. Leaves no fuzzer running.
#
#   proto/fuzz/run.sh [SECONDS] [TARGET...]
#   TARGET: record handshake login connect session nfs_args handle config
#           invalidate
#
# Seeds come from proto/fuzz/corpus/<target>/ and are only read; new inputs
# go to a scratch corpus under $FUZZ_WORK (default /tmp/sfs-fuzz), kept
# between runs. Crash reproducers land in $FUZZ_WORK/<target>/; a finding
# that is not fixed yet goes to proto/fuzz/corpus-crashes/<target>/ (not
# run here). Reproduce one: build-fuzz/proto/fuzz/<target>_fuzz FILE
#
# Environment: SFS_FUZZ_JOBS (parallel runs), FUZZ_BUILD (build tree,
# default build-fuzz), CC_FUZZ/CXX_FUZZ (default clang/clang++).
set -euo pipefail

secs=${1:-60}
[ $# -gt 0 ] && shift
targets=${*:-"record handshake login connect session nfs_args handle config invalidate"}
jobs=${SFS_FUZZ_JOBS:-2}

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
work=${FUZZ_WORK:-/tmp/sfs-fuzz}
build=${FUZZ_BUILD:-$root/build-fuzz}
mkdir -p "$work"

launcher=()
if command -v ccache >/dev/null; then
  launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi
echo "=== fuzz: configure + build ($build)"
CC=${CC_FUZZ:-clang} CXX=${CXX_FUZZ:-clang++} cmake -S "$root" -B "$build" \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSFS_SANITIZE=address -DSFS_FUZZ=ON "${launcher[@]}" >/dev/null
build_targets=()
for t in $targets; do
  [ -f "$here/${t}_fuzz.cc" ] || { echo "run.sh: no fuzz target $here/${t}_fuzz.cc" >&2; exit 2; }
  build_targets+=(--target "${t}_fuzz")
done
cmake --build "$build" -j"$(nproc)" "${build_targets[@]}"

# The fuzzers now running (pids), so that an interrupted run stops them.
running=()
stop_all() {
  local p
  for p in "${running[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${running[@]}"; do wait "$p" 2>/dev/null || true; done
  running=()
}
trap 'stop_all' EXIT
trap 'stop_all; exit 130' INT TERM

# Flags of one target. The targets that drive the event runtime free part
# of an input's memory on its thread after the input has returned, so
# libFuzzer's per-input leak check (mallocs vs frees while the input ran)
# would rerun nearly every input under LeakSanitizer, 15 times slower;
# LeakSanitizer still checks them when the run ends (ASAN_OPTIONS), and
# their harnesses wait until every connection is closed, so what is left
# unreachable then is a leak.
flags_for() {
  case $1 in
    connect|session|invalidate) echo "-detect_leaks=0" ;;
  esac
}

start() {  # target: runs it in the background; its pid is appended to running
  local t=$1 dir="$work/$1"
  rm -f "$dir"/rc "$dir"/log
  mkdir -p "$dir/corpus"
  # -timeout: one input running 60 s is a hang (the harnesses give up
  # waiting after 30 s by themselves). `timeout` is a last resort should
  # libFuzzer itself not stop; exec makes the pid we keep its own, and it
  # passes a TERM from stop_all on to the fuzzer.
  # shellcheck disable=SC2046
  (cd "$dir" && exec timeout -k 10 $((secs + 120)) "$build/proto/fuzz/${t}_fuzz" $(flags_for "$t") \
      -max_total_time="$secs" -timeout=60 -rss_limit_mb=2560 -print_final_stats=1 \
      -artifact_prefix="$dir/" corpus "$here/corpus/$t") >"$dir/log" 2>&1 &
  running+=($!)
}

report() {  # target: prints its outcome; returns non-zero on a failure
  local t=$1 dir="$work/$1" rc
  rc=$(cat "$dir/rc" 2>/dev/null || echo 1)
  local stats
  stats=$(grep -E "^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)" "$dir/log" |
          sed 's/^stat:://' | tr '\n' ' ' || true)
  if [ "$rc" != 0 ]; then
    echo "FAIL $t (exit $rc): log $dir/log" >&2
    grep -E "^(==[0-9]+==ERROR|SUMMARY|fuzz:)|Test unit written to|ALARM|leak" "$dir/log" | head -n 20 >&2 || true
    local art
    art=$(grep -oE "Test unit written to [^ ]+" "$dir/log" | tail -n 1 | sed 's/Test unit written to //' || true)
    [ -n "$art" ] && echo "reproduce: $build/proto/fuzz/${t}_fuzz $art" >&2
    tail -n 30 "$dir/log" >&2
    return 1
  fi
  echo "ok $t: $stats"
}

status=0
set -- $targets
while [ $# -gt 0 ]; do
  group=()
  while [ $# -gt 0 ] && [ ${#group[@]} -lt "$jobs" ]; do
    group+=("$1")
    shift
  done
  echo "=== fuzz: ${group[*]} for ${secs}s"
  for t in "${group[@]}"; do start "$t"; done
  for i in "${!group[@]}"; do
    rc=0
    wait "${running[$i]}" || rc=$?
    echo "$rc" >"$work/${group[$i]}/rc"
  done
  running=()
  for t in "${group[@]}"; do report "$t" || status=1; done
done
exit $status
