#!/usr/bin/python3
"""perf_profile.py: where every CPU-second per GiB of a bench/run read goes,
process by process and function by function, from the system-wide perf
recordings that `bench/run --profile` makes of the last round's read
workloads (perf record -a -F FREQ, no call graphs). Python 3 from
Debian's standard library and `perf report`.

  perf_profile.py table RESULTS.jsonl RAWDIR [--freq 499] [--top 6] [--round R]
      For each RAWDIR/WORKLOAD-FS.perf.data: a Markdown table, one row per
      process (threads grouped by name; kernel worker threads by kind), its
      CPU-seconds per GiB of that run (samples / FREQ / GiB read, the GiB
      from the run's record in RESULTS.jsonl) and its TOP functions, each
      with its own CPU-seconds per GiB. Idle time (swapper) is left out,
      and said. The recording spans the measured command plus perf's own
      start and stop, so it counts a little more than the run's /proc
      figures do.
"""
import argparse
import glob
import json
import os
import re
import subprocess
import sys
from collections import defaultdict

GIB = float(1 << 30)
IDLE = "swapper"


def process_of(comm):
    """The row a thread's name counts under."""
    for kind in ("kworker", "ksoftirqd", "migration", "rcu_", "kcompactd", "khugepaged"):
        if comm.startswith(kind):
            return "kernel: " + kind.rstrip("_")
    return comm


def parse_report(text):
    """{(process, function): samples} from `perf report -n -t '|'` output
    sorted by comm,dso,sym. Addresses perf could not name (a library
    without symbols for its internals, such as libcrypto's assembly) count
    under their library's name."""
    counts = defaultdict(int)
    for line in text.splitlines():
        parts = [p.strip() for p in line.split("|")]
        if len(parts) < 5 or not parts[1].isdigit():
            continue
        sym = re.sub(r"^\[.\]\s*", "", parts[4])
        if sym.startswith("0x"):
            sym = os.path.basename(parts[3]) + " (no symbol)"
        counts[(process_of(parts[2]), sym)] += int(parts[1])
    return counts


def samples_by_function(perf_data):
    out = subprocess.run(
        ["perf", "report", "-i", perf_data, "--stdio", "--no-children", "--sort", "comm,dso,sym", "-n", "-q",
         "-g", "none", "-t", "|"],
        capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"perf report on {perf_data} failed: {out.stderr.strip()[:200]}")
    return parse_report(out.stdout)


def run_bytes(results, workload, fs, rnd):
    """Bytes of the main-step record of (workload, fs) in round rnd (the last if None)."""
    best = None
    for rec in results:
        if rec.get("workload") != workload or rec.get("fs") != fs or rec.get("step", "main") != "main":
            continue
        if rnd is not None and rec.get("round") != rnd:
            continue
        if best is None or rec.get("round", 0) > best.get("round", 0):
            best = rec
    return (best or {}).get("bytes"), (best or {}).get("round")


def table(counts, nbytes, freq, top):
    """Markdown rows: per process its CPU-s/GiB and its top functions'."""
    gib = nbytes / GIB
    per_proc = defaultdict(int)
    for (proc, _), n in counts.items():
        per_proc[proc] += n
    idle = per_proc.pop(IDLE, 0)
    total = sum(per_proc.values())
    rows = ["| process | CPU-s/GiB | its functions (CPU-s/GiB each) |", "| --- | --- | --- |"]
    for proc, n in sorted(per_proc.items(), key=lambda kv: -kv[1]):
        cost = n / freq / gib
        if cost < 0.005:
            continue
        funcs = sorted(((f, c) for (p, f), c in counts.items() if p == proc), key=lambda fc: -fc[1])
        shown = ", ".join(f"`{f}` {c / freq / gib:.2f}" for f, c in funcs[:top])
        rest = sum(c for _, c in funcs[top:])
        if rest:
            shown += f", the rest {rest / freq / gib:.2f}"
        rows.append(f"| {proc} | {cost:.2f} | {shown} |")
    rows.append(f"| **all but idle** | **{total / freq / gib:.2f}** | idle (swapper) {idle / freq / gib:.2f} |")
    return rows


def cmd_table(a):
    with open(a.results) as f:
        results = [json.loads(line) for line in f if line.strip()]
    files = sorted(glob.glob(os.path.join(a.rawdir, "*.perf.data")))
    if not files:
        print(f"perf_profile.py: no *.perf.data in {a.rawdir}", file=sys.stderr)
        return 1
    for path in files:
        name = os.path.basename(path)[: -len(".perf.data")]
        workload, _, fs = name.partition("--")
        nbytes, rnd = run_bytes(results, workload, fs, a.round)
        if not nbytes:
            print(f"perf_profile.py: no record with bytes for {workload} on {fs}: {name} skipped", file=sys.stderr)
            continue
        print(f"#### {workload} on {fs} (round {rnd}, {nbytes / GIB:.2f} GiB)")
        print()
        print("\n".join(table(samples_by_function(path), nbytes, a.freq, a.top)))
        print()
    return 0


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="sub", required=True)
    t = sub.add_parser("table")
    t.add_argument("results")
    t.add_argument("rawdir")
    t.add_argument("--freq", type=float, default=499.0)
    t.add_argument("--top", type=int, default=6)
    t.add_argument("--round", type=int)
    a = p.parse_args(argv)
    return cmd_table(a)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
