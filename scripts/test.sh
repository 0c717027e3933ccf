#!/usr/bin/env bash
# Sets up this machine (Debian 12) and runs every test of the project:
#   1. the whole CTest suite, plain (build/)
#   2. the same suite under ThreadSanitizer (build-tsan/)
#   3. the same suite under AddressSanitizer + UBSan (build-asan/)
#   4. the libFuzzer targets, each for $SFS_FUZZ_SECONDS (default 60) seconds,
#      two at a time (proto/fuzz/run.sh)
# Exits non-zero on the first failure. Usage: bash scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

# The suites that start NFS-Ganesha (reserved ports) and FUSE mounts skip
# themselves without root, and a run that skipped them proves little: run
# as root, through sudo if need be.
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then
    echo "scripts/test.sh: the mount and NFS tests need root; re-running under sudo" >&2
    exec sudo --preserve-env=SFS_FUZZ_SECONDS,TSAN_OPTIONS,ASAN_OPTIONS,UBSAN_OPTIONS bash "$0" "$@"
  fi
  echo "scripts/test.sh: run me as root (the mount and NFS tests need it)" >&2
  exit 1
fi

bash scripts/install-deps.sh

jobs=$(nproc)
export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 ${TSAN_OPTIONS:-}"
export ASAN_OPTIONS="detect_leaks=1 abort_on_error=1 ${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="halt_on_error=1 print_stacktrace=1 ${UBSAN_OPTIONS:-}"

total_pass=0
total_fail=0
# What the tests started must be gone when they end: FUSE mounts of the
# tests (under $TMPDIR/sfs-nfs.*) and their daemons.
leftovers() {
  local name=$1 bad=0 m
  for m in $(awk '$3 == "fuse.sfs" && $2 ~ /sfs-nfs\./ {print $2}' /proc/mounts); do
    echo "=== [$name] a test left a mount behind: $m" >&2
    umount -l "$m" || true
    bad=1
  done
  if pgrep -f "sfs-nfs\.[A-Za-z0-9]+/" >/dev/null; then
    echo "=== [$name] a test left processes behind:" >&2
    pgrep -af "sfs-nfs\.[A-Za-z0-9]+/" >&2 || true
    bad=1
  fi
  return $bad
}
run_suite() {  # name build-dir sanitizer [ctest selection...]
  local name=$1 dir=$2 san=$3
  shift 3
  local select=("$@")
  echo "=== [$name] configure + build ($dir)"
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSFS_SANITIZE="$san" >/dev/null
  cmake --build "$dir" -j"$jobs"
  echo "=== [$name] ctest"
  local log="$dir/ctest.log"
  local rc=0
  ctest --test-dir "$dir" --output-on-failure --timeout 600 -j"$jobs" "${select[@]}" 2>&1 | tee "$log" || rc=$?
  leftovers "$name" || rc=1
  local line
  line=$(grep -E '^[0-9]+% tests passed' "$log" | tail -n 1 || true)
  local n_fail n_all
  n_fail=$(sed -E 's/.* ([0-9]+) tests failed out of ([0-9]+).*/\1/' <<<"$line")
  n_all=$(sed -E 's/.* ([0-9]+) tests failed out of ([0-9]+).*/\2/' <<<"$line")
  if [ -z "$line" ] || [ "$rc" -ne 0 ]; then
    echo "=== [$name] FAILED"
    exit 1
  fi
  total_pass=$((total_pass + n_all - n_fail))
  total_fail=$((total_fail + n_fail))
}

# The fault suite (label `faults`, tests/faults/README.md) takes minutes:
# only the plain build runs it.
run_suite plain build ""
run_suite tsan build-tsan thread -LE faults
# The tests that run a process out of file descriptors run apart under
# ASan+UBSan. UBSan's vptr check tests that a vtable is readable by writing
# it into a fresh pipe (sanitizer_common's IsAccessibleMemoryRange); with no
# descriptor left pipe() fails, and every virtual call made meanwhile (a
# thread starting, a shared_ptr released) is reported as "invalid vptr"
# with "<memory cannot be printed>". (Its log_path cannot help: opening the
# log needs a descriptor too.) So here the vptr check, built recoverable
# (CMakeLists.txt; every other check aborts), reports without halting, and
# the run fails if the tests fail, if ASan reports anything (it still
# aborts: a really stale vptr is a use after free, which ASan catches when
# the vptr is loaded), or if the output holds any UBSan report other than
# that artefact. A daemon's own stderr goes to its test's log, so there
# only ASan's abort is seen.
emfile_tests='^(Acceptor[.].*|HostileTest[.]OutOfFileDescriptorsTheServerWaitsInsteadOfSpinning)$'
run_suite asan build-asan address -LE faults -E "$emfile_tests"
run_emfile_asan() {
  local log=build-asan/ctest-emfile.log rc=0
  echo "=== [asan-emfile] ctest, UBSan not halting"
  UBSAN_OPTIONS="halt_on_error=0 print_stacktrace=0" \
    ctest --test-dir build-asan -V --timeout 600 -R "$emfile_tests" >"$log" 2>&1 || rc=$?
  grep -E 'tests passed|Passed|Failed' "$log" || true
  leftovers asan-emfile || rc=1
  local errors unprintable
  errors=$(grep -c 'runtime error:' "$log" || true)
  unprintable=$(grep -c '<memory cannot be printed>' "$log" || true)
  if [ "$errors" -ne "$unprintable" ]; then
    echo "=== [asan-emfile] a UBSan report other than the pipe-less vptr check:" >&2
    grep -A3 'runtime error:' "$log" >&2
    rc=1
  fi
  echo "=== [asan-emfile] $unprintable vptr check(s) made without a free descriptor (the known artefact)"
  local line
  line=$(grep -E '^[0-9]+% tests passed' "$log" | tail -n 1 || true)
  if [ -z "$line" ] || [ "$rc" -ne 0 ]; then
    cat "$log" >&2
    echo "=== [asan-emfile] FAILED"
    exit 1
  fi
  total_pass=$((total_pass + $(sed -E 's/.* out of ([0-9]+).*/\1/' <<<"$line")))
}
run_emfile_asan

if [ -x proto/fuzz/run.sh ]; then
  echo "=== [fuzz] libFuzzer targets, ${SFS_FUZZ_SECONDS:-60} s each, two at a time"
  bash proto/fuzz/run.sh "${SFS_FUZZ_SECONDS:-60}"
fi

echo "total: $total_pass passed, $total_fail failed"
