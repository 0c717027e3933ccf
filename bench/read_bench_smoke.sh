#!/usr/bin/env bash
# read_bench_smoke.sh READ_BENCH: the CTest smoke run of read_bench
# (label bench-smoke). Runs `read_bench --quick` with --all's configurations
# and "probe alone", and checks that every configuration produced a figure
# (a JSON line with mb_per_s > 0 for each of 1 thread, 2 threads, 2 copies,
# probe alone; the last with probe round trips timed), that read_bench itself found nothing left
# running, and that no process still names the directories it used (its
# sfsd children, ganesha and ganesha's watchdog all do while they run).
# Exit 77 (skipped) where ganesha cannot run (not root, not installed).
set -uo pipefail
bench=$1
work=$(mktemp -d "${TMPDIR:-/tmp}/read-bench-smoke.XXXXXX")
trap 'rm -rf "$work"' EXIT

"$bench" --quick --configs t1,t2,c2,p --json "$work/out.json" >"$work/stdout" 2>"$work/stderr"
rc=$?
cat "$work/stdout"
if [[ $rc -ne 0 ]] && grep -q 'cannot start ganesha' "$work/stderr"; then
  grep 'cannot start ganesha' "$work/stderr"
  exit 77
fi
fail=0
if [[ $rc -ne 0 ]]; then
  echo "read_bench exited with $rc"; cat "$work/stderr"; fail=1
fi
for cfg in "1 thread" "2 threads" "2 copies" "probe alone"; do
  if ! grep "\"config\":\"$cfg\"" "$work/out.json" 2>/dev/null | grep -Eq '"mb_per_s":[0-9]*[1-9]'; then
    echo "no figure for '$cfg'"; fail=1
  fi
done
if ! grep '"config":"probe alone"' "$work/out.json" 2>/dev/null | grep '"probe_alone":true' | grep -Eq '"probe_samples":[1-9]'; then
  echo "no probe round trips timed in 'probe alone'"; fail=1
fi
grep -q '^left running: none$' "$work/stdout" || { echo "read_bench reports processes left running"; fail=1; }

dirs=$(sed -n 's/^read_bench: sfsd dir \([^,]*\), ganesha state \(.*\)$/\1 \2/p' "$work/stderr")
[[ -n $dirs ]] || { echo "read_bench did not say which directories it used"; fail=1; }
sleep 1  # ganesha.sh's stop has returned; give init a moment to reap
for d in $dirs; do
  for f in /proc/[0-9]*/cmdline; do
    if tr '\0' ' ' <"$f" 2>/dev/null | grep -qF "$d"; then
      pid=${f#/proc/}; pid=${pid%/cmdline}
      [[ $pid == "$$" ]] && continue
      echo "still running: pid $pid: $(tr '\0' ' ' <"$f")"; fail=1
    fi
  done
done
[[ $fail -eq 0 ]] && echo "read_bench smoke: OK"
exit $fail
