#!/usr/bin/python3
"""fsbench.py: the measuring, recording, summarising and plotting half of
bench/run (the file-system benchmark against sshfs). Python 3 from Debian's
standard library only; plots through gnuplot (gnuplot-nox). Starts nothing
but the command given to `measure` and gnuplot.

Subcommands:
  measure --out FILE [--proc NAME=PID]... [--stdout FILE] -- CMD...
      Runs CMD, timing it, and writes one JSON object to FILE: `seconds`
      (wall), `rc`, and `cpu_s`: CPU seconds (user+system) spent during the
      run by CMD and its descendants ("workload", from wait4's rusage) and by
      each NAME: the process trees rooted at its PIDs (a NAME may be given
      several times; the trees are summed), read from /proc/PID/stat
      (utime+stime of every live process in the tree plus cutime+cstime,
      the CPU of children that exited and were reaped); `minflt`: their
      minor page faults, counted the same way. Exits with CMD's status.
  record --workload W --fs F --round R --cpus K --measure FILE
         [--fio FIO_JSON | --ops N | --bytes B] [--step main|scaling] [--extra k=v]...
      Prints one JSON line (the benchmark's record) made from a `measure`
      file and fio's JSON output (or a count of operations or bytes).
  summary FILE.jsonl [--baseline FS]
      Prints the summary table: min / median / max per workload and file
      system, CPU per GiB (or per 1,000 ops) by process, ratio to FS.
  markdown FILE.jsonl [--baseline FS]
      The same tables as Markdown (for docs/benchmarks.md).
  plot FILE.jsonl OUTDIR [--prefix P]
      Writes P-throughput.png, P-cpu.png and (if there are scaling records)
      P-scaling.png into OUTDIR (gnuplot, pngcairo).
  cpu PID...
      Prints the CPU seconds of the process tree of each PID (for tests).
  fadvise FILE...
      posix_fadvise(POSIX_FADV_DONTNEED) on each file: drops its pages from
      this machine's page cache (used on files seen through a mount to drop
      the client's cache without touching the server's).
  mkfile PATH MIB
      Writes a file of MIB MiB of pseudo-random bytes (unless it already has
      that size).
  mktree DIR FILES DIRS
      Makes DIRS directories holding FILES small files in all (0-4 KiB).
"""
import argparse
import json
import math
import os
import random
import shutil
import statistics
import signal
import subprocess
import sys
import tempfile
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")
GIB = 1 << 30


# ---------------------------------------------------------------- CPU ----
def read_stat(pid):
    """(ppid, utime+stime, cutime+cstime in ticks, minflt+cminflt), or None
    if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode("ascii", "replace")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    rest = data[data.rfind(")") + 2:].split()
    # rest[0] is field 3 (state): ppid is field 4, utime..cstime 14..17.
    ppid = int(rest[1])
    own = int(rest[11]) + int(rest[12])
    reaped = int(rest[13]) + int(rest[14])
    faults = int(rest[7]) + int(rest[8])
    return ppid, own, reaped, faults


def all_stats():
    stats = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            s = read_stat(int(name))
            if s is not None:
                stats[int(name)] = s
    return stats


def tree_ticks(roots, stats=None, faults=False):
    """CPU ticks of the trees rooted at `roots`: every live process's own
    time plus what its reaped children used. A child that exits between
    two snapshots moves from its own line into its parent's cutime when it
    is reaped, so the sum only grows, and nothing is counted twice. With
    faults=True: the minor page faults of the same processes instead."""
    if stats is None:
        stats = all_stats()
    children = {}
    for pid, (ppid, *_) in stats.items():
        children.setdefault(ppid, []).append(pid)
    seen = set()
    todo = [r for r in roots if r in stats]
    total = 0
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        _, own, reaped, flt = stats[pid]
        total += flt if faults else own + reaped
        todo.extend(children.get(pid, []))
    return total


def snapshot(procs, faults=False):
    stats = all_stats()
    return {name: tree_ticks(pids, stats, faults) for name, pids in procs.items()}


def cmd_measure(a):
    procs = {}
    for spec in a.proc:
        name, _, pid = spec.partition("=")
        procs.setdefault(name, [])
        if pid:
            procs[name].append(int(pid))
    cmd = a.cmd[1:] if a.cmd and a.cmd[0] == "--" else a.cmd
    out = open(a.stdout, "wb") if a.stdout else subprocess.DEVNULL
    before = snapshot(procs)
    flt_before = snapshot(procs, faults=True)
    t0 = time.monotonic()
    child = subprocess.Popen(cmd, stdout=out)

    # Stopped (bench/run's cleanup sends SIGTERM): stop the workload too and
    # wait for it, so that it never outlives the run reading a mount being
    # torn down; SIGKILL if it has not gone 5 s later.
    def stop(signum, frame):
        signal.signal(signal.SIGALRM, lambda *_: child.kill())
        signal.alarm(5)
        child.terminate()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    _, status, ru = os.wait4(child.pid, 0)
    signal.alarm(0)  # reaped: no SIGKILL for a pid that may be reused
    t1 = time.monotonic()
    after = snapshot(procs)
    flt_after = snapshot(procs, faults=True)
    child.returncode = os.waitstatus_to_exitcode(status)
    cpu = {"workload": round(ru.ru_utime + ru.ru_stime, 3)}
    for name in procs:
        cpu[name] = round((after[name] - before[name]) / CLK_TCK, 3)
    flt = {"workload": ru.ru_minflt}
    for name in procs:
        flt[name] = flt_after[name] - flt_before[name]
    res = {"seconds": round(t1 - t0, 4), "rc": child.returncode, "cpu_s": cpu, "minflt": flt,
           "load1": round(os.getloadavg()[0], 2)}
    with open(a.out, "w") as f:
        json.dump(res, f)
    return child.returncode


def cmd_cpu(a):
    stats = all_stats()
    for pid in a.pids:
        print(f"{tree_ticks([pid], stats) / CLK_TCK:.3f}")
    return 0


# ------------------------------------------------------------- record ----
def fio_totals(path):
    """bytes, I/O operations and run time (s) over all jobs of a fio run
    (--output-format=json). The run time is the longest job's: jobs run
    side by side."""
    with open(path) as f:
        text = f.read()
    # fio may print notes before the JSON object.
    data = json.loads(text[text.index("{"):])
    nbytes = ios = 0
    runtime_ms = 0
    for job in data["jobs"]:
        for d in ("read", "write"):
            nbytes += job[d]["io_bytes"]
            ios += job[d]["total_ios"]
            if job[d]["io_bytes"]:
                runtime_ms = max(runtime_ms, job[d]["runtime"])
        if job.get("error"):
            raise SystemExit(f"fio job {job.get('jobname')} failed: error {job['error']}")
    return nbytes, ios, runtime_ms / 1000.0


def make_record(a):
    with open(a.measure) as f:
        m = json.load(f)
    cpu = m["cpu_s"]
    total_cpu = sum(cpu.values())
    rec = {"workload": a.workload, "fs": a.fs, "round": a.round, "cpus": a.cpus,
           "step": a.step}
    if a.fio:
        nbytes, ios, fio_s = fio_totals(a.fio)
        secs = fio_s if fio_s > 0 else m["seconds"]
        rec.update(seconds=round(secs, 4), wall_seconds=m["seconds"], bytes=nbytes,
                   mb_per_s=round(nbytes / secs / 1e6, 1))
        if a.workload.startswith("rand"):
            rec.update(ops=ios, ops_per_s=round(ios / secs, 1))
    elif a.ops is not None:
        rec.update(seconds=m["seconds"], ops=a.ops, ops_per_s=round(a.ops / m["seconds"], 1))
    else:
        rec.update(seconds=m["seconds"], bytes=a.bytes,
                   mb_per_s=round(a.bytes / m["seconds"] / 1e6, 1))
    rec["cpu_s"] = cpu
    rec["cpu_s_total"] = round(total_cpu, 3)
    if "minflt" in m:
        rec["minflt"] = m["minflt"]
    if rec.get("bytes"):
        gib = rec["bytes"] / GIB
        rec["cpu_s_per_gib"] = round(total_cpu / gib, 3)
        rec["cpu_s_per_gib_by_proc"] = {k: round(v / gib, 3) for k, v in cpu.items()}
    if rec.get("ops") and not rec.get("bytes"):
        kops = rec["ops"] / 1000.0
        rec["cpu_s_per_kop"] = round(total_cpu / kops, 4)
        rec["cpu_s_per_kop_by_proc"] = {k: round(v / kops, 4) for k, v in cpu.items()}
    rec["load1"] = m.get("load1")
    rec["rc"] = m["rc"]
    rec["time"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    for kv in a.extra or []:
        k, _, v = kv.partition("=")
        rec[k] = v
    return rec


def cmd_record(a):
    print(json.dumps(make_record(a), sort_keys=False))
    return 0


# ------------------------------------------------------------ summary ----
def load(path):
    recs = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                recs.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise SystemExit(f"{path}:{n}: not JSON: {e}")
    return recs


def figure(rec):
    """The record's headline figure and its unit."""
    if "mb_per_s" in rec and not rec["workload"].startswith("rand"):
        return rec["mb_per_s"], "MB/s"
    if "ops_per_s" in rec:
        return rec["ops_per_s"], "ops/s"
    return rec.get("mb_per_s", 0.0), "MB/s"


def cost(rec):
    if "cpu_s_per_gib" in rec and not rec["workload"].startswith("rand"):
        return rec["cpu_s_per_gib"], rec["cpu_s_per_gib_by_proc"], "CPU-s/GiB"
    if "cpu_s_per_kop_by_proc" in rec:
        return rec["cpu_s_per_kop"], rec["cpu_s_per_kop_by_proc"], "CPU-s/1k ops"
    if "ops" in rec:  # rand-read: per 1,000 reads
        k = rec["ops"] / 1000.0
        return (rec["cpu_s_total"] / k, {p: v / k for p, v in rec["cpu_s"].items()}, "CPU-s/1k ops")
    return rec.get("cpu_s_per_gib", 0.0), rec.get("cpu_s_per_gib_by_proc", {}), "CPU-s/GiB"


def groups(recs, step):
    """{(workload, fs, cpus): [records]} in the order first seen."""
    out = {}
    for r in recs:
        if r.get("step", "main") != step or r.get("rc", 0) != 0:
            continue
        out.setdefault((r["workload"], r["fs"], r.get("cpus")), []).append(r)
    return out


def stats3(values):
    return min(values), statistics.median(values), max(values)


def fmt(v):
    if v >= 100:
        return f"{v:.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


PROC_ORDER = ["workload", "sfsclient", "sfsagent", "sfsd", "ganesha", "sshfs", "sshd"]


def proc_names(recs):
    names = []
    for r in recs:
        for p in r.get("cpu_s", {}):
            if p not in names:
                names.append(p)
    return sorted(names, key=lambda p: (PROC_ORDER.index(p) if p in PROC_ORDER else 99, p))


def summary_rows(recs, baseline):
    g = groups(recs, "main")
    base = {}
    for (w, fs, _), rs in g.items():
        if fs == baseline:
            base[w] = statistics.median(figure(r)[0] for r in rs)
    rows = []
    for (w, fs, cpus), rs in g.items():
        vals = [figure(r)[0] for r in rs]
        unit = figure(rs[0])[1]
        lo, med, hi = stats3(vals)
        c_med = statistics.median(cost(r)[0] for r in rs)
        by = {}
        for p in proc_names(rs):
            by[p] = statistics.median(cost(r)[1].get(p, 0.0) for r in rs)
        ratio = med / base[w] if base.get(w) else None
        rows.append(dict(workload=w, fs=fs, unit=unit, n=len(rs), min=lo, median=med, max=hi,
                         cost=c_med, cost_unit=cost(rs[0])[2], by=by, ratio=ratio))
    return rows


def scaling_rows(recs):
    rows = []
    for (w, fs, cpus), rs in groups(recs, "scaling").items():
        vals = [figure(r)[0] for r in rs]
        lo, med, hi = stats3(vals)
        rows.append(dict(workload=w, fs=fs, cpus=cpus, n=len(rs), min=lo, median=med, max=hi,
                         cost=statistics.median(cost(r)[0] for r in rs)))
    rows.sort(key=lambda r: (r["fs"], int(r["cpus"])))
    return rows


def cmd_summary(a, markdown=False):
    recs = load(a.file)
    rows = summary_rows(recs, a.baseline)
    bad = [r for r in recs if r.get("rc", 0) != 0]
    loads = [r["load1"] for r in recs if r.get("load1") is not None]
    if markdown and loads:
        print(f"1-minute load average when each run ended: {min(loads):.1f} to {max(loads):.1f} "
              f"(median {statistics.median(loads):.1f}) on {os.cpu_count()} CPUs.\n")
    if markdown:
        print(f"| workload | fs | unit | min | median | max | vs {a.baseline} | CPU per unit | CPU by process (median) |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    else:
        print(f"{'workload':<15} {'fs':<13} {'unit':<6} {'n':>2} {'min':>8} {'median':>8} {'max':>8} "
              f"{'vs ' + a.baseline:>16} {'CPU':>8}  CPU by process (median)")
    for r in rows:
        ratio = f"{r['ratio']:.2f}x" if r["ratio"] is not None else "-"
        by = " ".join(f"{p}={fmt(v)}" for p, v in r["by"].items() if v > 0)
        c = f"{fmt(r['cost'])} {r['cost_unit']}"
        if markdown:
            print(f"| {r['workload']} | {r['fs']} | {r['unit']} | {fmt(r['min'])} | **{fmt(r['median'])}** | "
                  f"{fmt(r['max'])} | {ratio} | {c} | {by} |")
        else:
            print(f"{r['workload']:<15} {r['fs']:<13} {r['unit']:<6} {r['n']:>2} {fmt(r['min']):>8} "
                  f"{fmt(r['median']):>8} {fmt(r['max']):>8} {ratio:>16} {fmt(r['cost']):>8}  {by}")
    srows = scaling_rows(recs)
    if srows:
        print()
        if markdown:
            print("| CPUs | server | workload | min | median | max | CPU-s/GiB |")
            print("| --- | --- | --- | --- | --- | --- | --- |")
        else:
            print(f"{'cpus':>4} {'server':<13} {'workload':<12} {'min':>8} {'median':>8} {'max':>8} {'CPU-s/GiB':>10}")
        for r in srows:
            if markdown:
                print(f"| {r['cpus']} | {r['fs']} | {r['workload']} | {fmt(r['min'])} | **{fmt(r['median'])}** | "
                      f"{fmt(r['max'])} | {fmt(r['cost'])} |")
            else:
                print(f"{r['cpus']:>4} {r['fs']:<13} {r['workload']:<12} {fmt(r['min']):>8} {fmt(r['median']):>8} "
                      f"{fmt(r['max']):>8} {fmt(r['cost']):>10}")
    if bad:
        print(f"\n{len(bad)} run(s) failed and are left out: " +
              ", ".join(f"{r['workload']}/{r['fs']}/round {r['round']} (rc {r['rc']})" for r in bad))
    return 0


# --------------------------------------------------------------- plots ----
def gp_quote(s):
    return '"' + str(s).replace("\\", "\\\\").replace('"', '\\"') + '"'


def cmd_plot(a):
    tmp = tempfile.mkdtemp(prefix="fsbench-plot.")
    try:
        return plot(a, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def plot(a, tmp):
    recs = load(a.file)
    os.makedirs(a.outdir, exist_ok=True)
    rows = summary_rows(recs, "sshfs-tuned")
    workloads = []
    for r in rows:
        if r["workload"] not in workloads:
            workloads.append(r["workload"])
    fss = []
    for r in rows:
        if r["fs"] not in fss:
            fss.append(r["fs"])
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]
    made = []

    # 1. Throughput per workload and file system: one panel per workload.
    if rows:
        n = len(workloads)
        cols = min(3, n)
        lines = max(1, math.ceil(n / cols))
        gp = [f"set terminal pngcairo size {420 * cols},{320 * lines} font ',9'",
              f"set output {gp_quote(os.path.join(a.outdir, a.prefix + '-throughput.png'))}",
              f"set multiplot layout {lines},{cols} title "
              + gp_quote("median (bar) and min-max (line) over rounds") + " font ',11'",
              "set style fill solid 0.8 border -1", "set boxwidth 0.6", "set grid ytics",
              "set yrange [0:*]", "set xtics rotate by -30 font ',8'", "unset key"]
        for w in workloads:
            wr = [r for r in rows if r["workload"] == w]
            dat = os.path.join(tmp, f"tp-{w}.dat")
            with open(dat, "w") as f:
                for i, r in enumerate(wr):
                    color = int(palette[fss.index(r["fs"]) % len(palette)][1:], 16)
                    f.write(f"{i} {gp_quote(r['fs'])} {r['median']} {r['min']} {r['max']} {color}\n")
            gp += [f"set title {gp_quote(w)}", f"set ylabel {gp_quote(wr[0]['unit'])}",
                   f"set xrange [-0.6:{len(wr) - 0.4}]",
                   f"plot {gp_quote(dat)} using 1:3:6:xtic(2) with boxes lc rgb variable, "
                   f"'' using 1:3:4:5 with yerrorbars lc rgb 'black' pt 0"]
        gp.append("unset multiplot")
        run_gnuplot(gp, tmp, "throughput")
        made.append(a.prefix + "-throughput.png")

    # 2. CPU per GiB (or per 1,000 ops) per file system, split by process.
    if rows:
        procs = []
        for r in rows:
            for p in r["by"]:
                if p not in procs:
                    procs.append(p)
        procs.sort(key=lambda p: (PROC_ORDER.index(p) if p in PROC_ORDER else 99, p))
        n = len(workloads)
        cols = min(3, n)
        lines = max(1, math.ceil(n / cols))
        gp = [f"set terminal pngcairo size {420 * cols},{320 * lines + 40} font ',9'",
              f"set output {gp_quote(os.path.join(a.outdir, a.prefix + '-cpu.png'))}",
              f"set multiplot layout {lines},{cols} title "
              + gp_quote("CPU seconds by process (median over rounds), both ends") + " font ',11'",
              "set style data histograms", "set style histogram rowstacked",
              "set style fill solid 0.85 border -1", "set boxwidth 0.6", "set grid ytics",
              "set yrange [0:*]", "set xtics rotate by -30 font ',8'",
              "set key top left font ',7' maxrows 4 samplen 1"]
        for idx, w in enumerate(workloads):
            wr = [r for r in rows if r["workload"] == w]
            dat = os.path.join(tmp, f"cpu-{w}.dat")
            with open(dat, "w") as f:
                f.write("fs " + " ".join(procs) + "\n")
                for r in wr:
                    f.write(gp_quote(r["fs"]) + " " + " ".join(f"{r['by'].get(p, 0.0):.4f}" for p in procs) + "\n")
            gp += [f"set title {gp_quote(w)}", f"set ylabel {gp_quote(wr[0]['cost_unit'])}",
                   ("set key" if idx == 0 else "unset key"),
                   f"plot for [i=2:{len(procs) + 1}] {gp_quote(dat)} using i:xtic(1) title columnheader(i) "
                   f"lc rgb word({gp_quote(' '.join(palette))}, i-1)"]
        gp.append("unset multiplot")
        run_gnuplot(gp, tmp, "cpu")
        made.append(a.prefix + "-cpu.png")

    # 3. Throughput against CPUs, the N-copy bound beside it.
    srows = scaling_rows(recs)
    if srows:
        dat = {}
        for r in srows:
            dat.setdefault(r["fs"], []).append(r)
        gp = ["set terminal pngcairo size 640,420 font ',10'",
              f"set output {gp_quote(os.path.join(a.outdir, a.prefix + '-scaling.png'))}",
              "set title " + gp_quote("seq-read-4 against the CPUs sfsd may use (median, min-max)"),
              "set xlabel 'CPUs (k)'", "set ylabel 'MB/s'", "set grid", "set yrange [0:*]",
              "set key top left", "set xtics 1"]
        ks = sorted({int(r["cpus"]) for r in srows})
        gp.append(f"set xrange [{ks[0] - 0.5}:{ks[-1] + 0.5}]")
        plots = []
        for i, (fs, rs) in enumerate(dat.items()):
            path = os.path.join(tmp, f"sc-{fs}.dat")
            with open(path, "w") as f:
                for r in rs:
                    f.write(f"{r['cpus']} {r['median']} {r['min']} {r['max']}\n")
            label = {"sfs": "sfsd, k workers pinned to k CPUs",
                     "sfs-ncopy": "N-copy bound: k sfsd --threads 1, one per CPU"}.get(fs, fs)
            plots.append(f"{gp_quote(path)} using 1:2:3:4 with yerrorlines lw 2 pt 7 "
                         f"lc rgb {gp_quote(palette[i % len(palette)])} title {gp_quote(label)}")
        for r in rows:
            if r["workload"] == "seq-read-4" and r["fs"].startswith("sshfs"):
                plots.append(f"{r['median']} with lines dt 2 lc rgb 'gray' title "
                             + gp_quote(f"{r['fs']} (all CPUs), median"))
        gp.append("plot " + ", ".join(plots))
        run_gnuplot(gp, tmp, "scaling")
        made.append(a.prefix + "-scaling.png")
    for m in made:
        print(os.path.join(a.outdir, m))
    return 0


def run_gnuplot(lines, tmp, name):
    script = os.path.join(tmp, name + ".gp")
    with open(script, "w") as f:
        f.write("\n".join(lines) + "\n")
    r = subprocess.run(["gnuplot", script], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"gnuplot failed on {script}:\n{r.stderr}")


# ------------------------------------------------------------- helpers ----
def cmd_fadvise(a):
    for p in a.files:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
    return 0


def cmd_mkfile(a):
    size = a.mib << 20
    if os.path.exists(a.path) and os.path.getsize(a.path) == size:
        return 0
    rnd = random.Random(a.path)
    block = rnd.randbytes(1 << 20)
    tmp = a.path + ".part"
    with open(tmp, "wb") as f:
        for i in range(a.mib):
            # Vary each MiB a little so no two blocks are equal.
            f.write(i.to_bytes(8, "little") + block[8:])
    os.replace(tmp, a.path)
    return 0


def cmd_mktree(a):
    rnd = random.Random(42)
    payload = rnd.randbytes(4096)
    per = math.ceil(a.files / a.dirs)
    made = 0
    for d in range(a.dirs):
        dpath = os.path.join(a.dir, f"d{d:03d}")
        os.makedirs(dpath, exist_ok=True)
        for i in range(per):
            if made == a.files:
                break
            with open(os.path.join(dpath, f"f{i:04d}"), "wb") as f:
                f.write(payload[: rnd.randrange(0, 4097)])
            made += 1
    return 0


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="sub", required=True)
    m = sub.add_parser("measure")
    m.add_argument("--out", required=True)
    m.add_argument("--proc", action="append", default=[])
    m.add_argument("--stdout")
    m.add_argument("cmd", nargs=argparse.REMAINDER)
    r = sub.add_parser("record")
    for k in ("workload", "fs", "measure"):
        r.add_argument("--" + k, required=True)
    r.add_argument("--round", type=int, required=True)
    r.add_argument("--cpus", type=int, required=True)
    r.add_argument("--step", default="main")
    r.add_argument("--fio")
    r.add_argument("--ops", type=int)
    r.add_argument("--bytes", type=int)
    r.add_argument("--extra", action="append")
    for name in ("summary", "markdown"):
        s = sub.add_parser(name)
        s.add_argument("file")
        s.add_argument("--baseline", default="sshfs-tuned")
    pl = sub.add_parser("plot")
    pl.add_argument("file")
    pl.add_argument("outdir")
    pl.add_argument("--prefix", default="fsbench")
    c = sub.add_parser("cpu")
    c.add_argument("pids", type=int, nargs="+")
    fa = sub.add_parser("fadvise")
    fa.add_argument("files", nargs="+")
    mf = sub.add_parser("mkfile")
    mf.add_argument("path")
    mf.add_argument("mib", type=int)
    mt = sub.add_parser("mktree")
    mt.add_argument("dir")
    mt.add_argument("files", type=int)
    mt.add_argument("dirs", type=int)
    a = p.parse_args(argv)
    if a.sub == "measure":
        return cmd_measure(a)
    if a.sub == "record":
        return cmd_record(a)
    if a.sub == "summary":
        return cmd_summary(a)
    if a.sub == "markdown":
        return cmd_summary(a, markdown=True)
    return {"plot": cmd_plot, "cpu": cmd_cpu, "fadvise": cmd_fadvise, "mkfile": cmd_mkfile,
            "mktree": cmd_mktree}[a.sub](a)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
