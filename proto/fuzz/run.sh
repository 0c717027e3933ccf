#!/bin/sh
# Builds the proto libFuzzer targets with clang++ (ASan + UBSan) and runs
# each for SECONDS seconds (default 60). Exits non-zero if any target
# crashes, leaks or trips a sanitizer.
#
#   proto/fuzz/run.sh [SECONDS] [TARGET...]     TARGET: record handshake login
#
# Seeds come from proto/fuzz/corpus/<target>/ and are only read; new inputs
# go to a scratch corpus under $FUZZ_WORK (default /tmp/sfs-fuzz). Crash
# reproducers are left in $FUZZ_WORK/<target>/ and named in the output.
set -eu

secs=${1:-60}
[ $# -gt 0 ] && shift
targets=${*:-"record handshake login"}

here=$(cd "$(dirname "$0")" && pwd)
proto=$(dirname "$here")
work=${FUZZ_WORK:-/tmp/sfs-fuzz}
cxx=${CXX_FUZZ:-clang++}
flags="-std=c++20 -O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -I$proto/include"
libs="-lsodium -lcrypto"

mkdir -p "$work/obj"
# The library sources, compiled once with the fuzzer's instrumentation.
objs=""
for src in "$proto"/src/*.cc; do
  obj="$work/obj/$(basename "$src" .cc).o"
  if [ ! -f "$obj" ] || [ "$src" -nt "$obj" ] || [ "$0" -nt "$obj" ]; then
    echo "compile $(basename "$src")"
    # shellcheck disable=SC2086
    $cxx $flags -fsanitize=fuzzer-no-link -c "$src" -o "$obj"
  fi
  objs="$objs $obj"
done

status=0
for t in $targets; do
  src="$here/${t}_fuzz.cc"
  [ -f "$src" ] || { echo "run.sh: no fuzz target $src" >&2; exit 2; }
  bin="$work/${t}_fuzz"
  echo "build $t"
  # shellcheck disable=SC2086
  $cxx $flags "$src" $objs $libs -o "$bin"
  mkdir -p "$work/$t/corpus"
  echo "run $t for ${secs}s"
  if ! (cd "$work/$t" && "$bin" -max_total_time="$secs" -print_final_stats=1 \
        -artifact_prefix="$work/$t/" corpus "$here/corpus/$t" \
        > "$work/$t/log" 2>&1); then
    echo "FAIL $t: see $work/$t/log" >&2
    tail -n 40 "$work/$t/log" >&2
    status=1
  else
    grep -E "^stat::number_of_executed_units|^#[0-9]+.*DONE" "$work/$t/log" | tail -n 2
    echo "ok $t"
  fi
done
exit $status
