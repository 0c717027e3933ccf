#!/usr/bin/python3
"""fsbench_test.py: unit tests of bench/fsbench/fsbench.py, the measuring
half of bench/run, that need no mount and no long run: fio JSON parsing and
the record made from it, the summary (min / median / max, ratio to the
baseline, failed runs left out), the CPU accounting against processes that
burn a known amount of CPU (a child that exits and is reaped included),
and the plots. Starts only short-lived burner processes and gnuplot.
Run: python3 tests/bench/fsbench_test.py (CTest: fsbench_units)."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
TOOL = os.path.join(HERE, "..", "..", "bench", "fsbench", "fsbench.py")
sys.path.insert(0, os.path.dirname(TOOL))
import fsbench  # noqa: E402
import perf_profile as fsprofile  # noqa: E402

# A process that waits for a line on stdin, then burns CPU seconds of its
# own and (if asked) has a child burn more and reaps it, then prints "done"
# and waits for stdin to close.
BURNER = r"""
import os, sys, time
def burn(s):
    end = time.process_time() + s
    x = 0
    while time.process_time() < end:
        x += 1
own, child = float(sys.argv[1]), float(sys.argv[2])
sys.stdin.readline()
burn(own)
if child > 0:
    pid = os.fork()
    if pid == 0:
        burn(child)
        os._exit(0)
    os.waitpid(pid, 0)
print("done", flush=True)
sys.stdin.read()
"""


def tmpdir(test):
    d = tempfile.mkdtemp(prefix="fsbench-test.")
    test.addCleanup(shutil.rmtree, d, True)
    return d


def fio_json(jobs):
    """A fio --output-format=json document with the given (rw, bytes, ios,
    runtime_ms) jobs."""
    out = {"fio version": "fio-3.33", "jobs": []}
    for i, (rw, nbytes, ios, ms) in enumerate(jobs):
        job = {"jobname": f"job{i}", "error": 0}
        for d in ("read", "write"):
            job[d] = {"io_bytes": 0, "total_ios": 0, "runtime": 0}
        job[rw] = {"io_bytes": nbytes, "total_ios": ios, "runtime": ms}
        out["jobs"].append(job)
    return out


class RecordTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tmpdir(self)

    def write(self, name, obj, prefix=""):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(prefix + (json.dumps(obj) if not isinstance(obj, str) else obj))
        return path

    def record(self, *args):
        r = subprocess.run([sys.executable, TOOL, "record", *args], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        return json.loads(r.stdout)

    def test_fio_totals_sums_jobs_and_takes_the_longest_runtime(self):
        # fio sometimes prints a note before the JSON object.
        p = self.write("fio.json", fio_json([("read", 256 << 20, 256, 500), ("read", 256 << 20, 256, 800)]),
                       prefix="note: both iodepth >= 1 and synchronous I/O engine are selected\n")
        self.assertEqual(fsbench.fio_totals(p), (512 << 20, 512, 0.8))

    def test_record_from_fio_has_throughput_and_cpu_per_gib(self):
        fio = self.write("fio.json", fio_json([("read", 1 << 30, 1024, 2000)]))
        m = self.write("m.json", {"seconds": 2.3, "rc": 0, "load1": 1.0,
                                  "cpu_s": {"workload": 0.5, "sfsd": 1.0, "sfsclient": 0.5}})
        rec = self.record("--workload", "seq-read-1", "--fs", "sfs", "--round", "2", "--cpus", "2",
                          "--measure", m, "--fio", fio)
        self.assertEqual(rec["workload"], "seq-read-1")
        self.assertEqual(rec["fs"], "sfs")
        self.assertEqual(rec["round"], 2)
        self.assertEqual(rec["cpus"], 2)
        self.assertEqual(rec["seconds"], 2.0)           # fio's run time, not the wall clock
        self.assertEqual(rec["wall_seconds"], 2.3)
        self.assertAlmostEqual(rec["mb_per_s"], (1 << 30) / 2.0 / 1e6, places=0)
        self.assertEqual(rec["cpu_s_per_gib"], 2.0)
        self.assertEqual(rec["cpu_s_per_gib_by_proc"], {"workload": 0.5, "sfsd": 1.0, "sfsclient": 0.5})
        self.assertEqual(rec["cpu_s"]["sfsd"], 1.0)

    def test_record_of_random_reads_has_ops(self):
        fio = self.write("fio.json", fio_json([("read", 4096 * 1000, 1000, 1000)] * 4))
        m = self.write("m.json", {"seconds": 1.2, "rc": 0, "cpu_s": {"workload": 0.4}})
        rec = self.record("--workload", "rand-read-4k", "--fs", "x", "--round", "1", "--cpus", "1",
                          "--measure", m, "--fio", fio)
        self.assertEqual(rec["ops"], 4000)
        self.assertEqual(rec["ops_per_s"], 4000.0)
        self.assertEqual(fsbench.figure(rec), (4000.0, "ops/s"))
        self.assertAlmostEqual(fsbench.cost(rec)[0], 0.1)   # CPU-s per 1,000 reads

    def test_record_of_a_command_counts_ops(self):
        m = self.write("m.json", {"seconds": 2.0, "rc": 0, "cpu_s": {"workload": 1.0, "sshd": 3.0}})
        rec = self.record("--workload", "meta-untar", "--fs", "sshfs-tuned", "--round", "1", "--cpus", "2",
                          "--measure", m, "--ops", "10100")
        self.assertEqual(rec["ops_per_s"], 5050.0)
        self.assertAlmostEqual(rec["cpu_s_per_kop"], 4.0 / 10.1, places=3)

    def test_failed_fio_job_is_an_error(self):
        doc = fio_json([("read", 0, 0, 0)])
        doc["jobs"][0]["error"] = 5
        fio = self.write("fio.json", doc)
        m = self.write("m.json", {"seconds": 1, "rc": 1, "cpu_s": {"workload": 0.0}})
        r = subprocess.run([sys.executable, TOOL, "record", "--workload", "seq-read-1", "--fs", "a", "--round",
                            "1", "--cpus", "1", "--measure", m, "--fio", fio], capture_output=True, text=True)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("error 5", r.stderr)


def rec(w, fs, r, v, cpu=None, step="main", cpus=2, rc=0):
    cpu = cpu or {"workload": 0.1}
    d = {"workload": w, "fs": fs, "round": r, "cpus": cpus, "step": step, "rc": rc, "mb_per_s": v,
         "bytes": 1 << 30, "seconds": 1.0, "cpu_s": cpu, "cpu_s_total": sum(cpu.values()),
         "cpu_s_per_gib": sum(cpu.values()), "cpu_s_per_gib_by_proc": cpu}
    return d


class SummaryTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tmpdir(self)
        self.path = os.path.join(self.tmp, "results.jsonl")
        recs = []
        for r, (a, b, c) in enumerate([(300, 700, 9), (500, 800, 1), (400, 750, 5)], 1):
            recs.append(rec("seq-read-4", "sfs", r, a, {"workload": 0.2, "sfsd": 1.0, "ganesha": 0.5}))
            recs.append(rec("seq-read-4", "sshfs-tuned", r, b, {"workload": 0.2, "sshfs": 1.5, "sshd": 1.0}))
        recs.append(rec("seq-read-4", "sfs", 4, 99999, rc=1))          # failed: left out
        recs.append(rec("seq-read-4", "sfs", 1, 350, step="scaling", cpus=1))
        recs.append(rec("seq-read-4", "sfs-ncopy", 1, 380, step="scaling", cpus=1))
        recs.append(rec("seq-read-4", "sfs", 1, 450, step="scaling", cpus=2))
        with open(self.path, "w") as f:
            for x in recs:
                f.write(json.dumps(x) + "\n")
            f.write("\n")

    def test_min_median_max_and_ratio_to_the_baseline(self):
        rows = {(r["workload"], r["fs"]): r for r in fsbench.summary_rows(fsbench.load(self.path), "sshfs-tuned")}
        sfs = rows[("seq-read-4", "sfs")]
        self.assertEqual((sfs["min"], sfs["median"], sfs["max"], sfs["n"]), (300, 400, 500, 3))
        self.assertAlmostEqual(sfs["ratio"], 400 / 750)
        self.assertEqual(sfs["by"], {"workload": 0.2, "sfsd": 1.0, "ganesha": 0.5})
        self.assertEqual(list(sfs["by"]), ["workload", "sfsd", "ganesha"])   # fixed order
        self.assertAlmostEqual(rows[("seq-read-4", "sshfs-tuned")]["ratio"], 1.0)

    def test_scaling_rows_are_apart(self):
        s = fsbench.scaling_rows(fsbench.load(self.path))
        self.assertEqual([(r["fs"], r["cpus"], r["median"]) for r in s],
                         [("sfs", 1, 350), ("sfs", 2, 450), ("sfs-ncopy", 1, 380)])

    def test_summary_table_text(self):
        r = subprocess.run([sys.executable, TOOL, "summary", self.path], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        sfs = [x for x in lines if x.startswith("seq-read-4") and " sfs " in x][0]
        self.assertEqual(sfs.split()[3:7], ["3", "300", "400", "500"])
        self.assertIn("0.53x", sfs)
        self.assertIn("1 run(s) failed", r.stdout)
        md = subprocess.run([sys.executable, TOOL, "markdown", self.path], capture_output=True, text=True)
        self.assertIn("| seq-read-4 | sfs | MB/s | 300 | **400** | 500 | 0.53x |", md.stdout)

    def test_a_broken_line_names_its_number(self):
        with open(self.path, "a") as f:
            f.write("{not json\n")
        r = subprocess.run([sys.executable, TOOL, "summary", self.path], capture_output=True, text=True)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("results.jsonl:12: not JSON", r.stderr)

    def test_plots_are_pngs(self):
        out = os.path.join(self.tmp, "plots")
        r = subprocess.run([sys.executable, TOOL, "plot", self.path, out], capture_output=True, text=True)
        if r.returncode != 0 and "No such file" in r.stderr:
            self.skipTest("gnuplot is not installed")
        self.assertEqual(r.returncode, 0, r.stderr)
        for name in ("fsbench-throughput.png", "fsbench-cpu.png", "fsbench-scaling.png"):
            with open(os.path.join(out, name), "rb") as f:
                self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n", name)


class CpuAccountingTest(unittest.TestCase):
    def start_burner(self, own, child):
        p = subprocess.Popen([sys.executable, "-c", BURNER, str(own), str(child)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
        self.addCleanup(lambda: (p.kill(), p.wait()))
        return p

    def test_process_tree_cpu_counts_a_known_burn_and_a_reaped_child(self):
        p = self.start_burner(0.6, 0.3)
        time.sleep(0.2)   # interpreter start-up is not part of the burn
        before = fsbench.snapshot({"b": [p.pid]})["b"]
        p.stdin.write("go\n")
        p.stdin.flush()
        self.assertEqual(p.stdout.readline().strip(), "done")
        after = fsbench.snapshot({"b": [p.pid]})["b"]
        burned = (after - before) / fsbench.CLK_TCK
        self.assertAlmostEqual(burned, 0.9, delta=0.06)

    def test_a_live_child_is_counted_in_the_tree(self):
        # The shell's child burns while the shell waits: the tree of the
        # shell's pid sees the child's CPU while it still runs. It burns
        # 0.55 s to be seen at 0.5: /proc/PID/stat rounds user and system
        # time down to clock ticks separately (0.49 was seen for 0.5).
        code = "import time\ne=time.process_time()+0.55\nwhile time.process_time()<e: pass\ntime.sleep(30)"
        p = subprocess.Popen(["bash", "-c", f"{sys.executable} -c '{code}'; true"])
        self.addCleanup(lambda: (subprocess.run(["pkill", "-P", str(p.pid)]), p.kill(), p.wait()))
        deadline = time.time() + 20
        got = 0
        while time.time() < deadline:
            got = fsbench.tree_ticks([p.pid]) / fsbench.CLK_TCK
            if got >= 0.5:
                break
            time.sleep(0.05)
        self.assertGreaterEqual(got, 0.5)
        time.sleep(0.2)
        self.assertLess(fsbench.tree_ticks([p.pid]) / fsbench.CLK_TCK, 0.75)

    def test_measure_reports_the_workload_and_the_daemons(self):
        tmp = tmpdir(self)
        go, done, out = (os.path.join(tmp, n) for n in ("go", "done", "m.json"))
        # The "daemon" burns 0.4 s once the workload has started (file go),
        # then says so (file done); the workload burns 0.3 s of its own and
        # waits for done, so both burns fall inside the measured window.
        daemon_code = (f"import os, time\nwhile not os.path.exists({go!r}): time.sleep(0.01)\n"
                       f"e=time.process_time()+0.4\nwhile time.process_time()<e: pass\n"
                       f"open({done!r}, 'w').close()\ntime.sleep(60)")
        daemon = subprocess.Popen([sys.executable, "-c", daemon_code])
        self.addCleanup(lambda: (daemon.kill(), daemon.wait()))
        time.sleep(0.3)
        workload = "import time\ne=time.process_time()+0.3\nwhile time.process_time()<e: pass"
        script = (f"touch {go}; {sys.executable} -c '{workload}'; "
                  f"while [ ! -e {done} ]; do sleep 0.05; done")
        r = subprocess.run([sys.executable, TOOL, "measure", "--out", out, "--proc", f"d={daemon.pid}", "--",
                            "bash", "-c", script])
        self.assertEqual(r.returncode, 0)
        with open(out) as f:
            m = json.load(f)
        # The workload: its 0.3 s plus an interpreter's start and the loop.
        self.assertGreaterEqual(m["cpu_s"]["workload"], 0.29)
        self.assertLess(m["cpu_s"]["workload"], 0.5)
        self.assertAlmostEqual(m["cpu_s"]["d"], 0.4, delta=0.05)
        self.assertEqual(m["rc"], 0)

    def test_measure_counts_page_faults(self):
        # 64 MiB touched for the first time: at least 16,384 minor faults
        # (4 KiB pages) in the workload; a daemon that does nothing has ~0.
        out = os.path.join(tmpdir(self), "m.json")
        idle = subprocess.Popen(["sleep", "30"])
        self.addCleanup(lambda: (idle.kill(), idle.wait()))
        r = subprocess.run([sys.executable, TOOL, "measure", "--out", out, "--proc", f"idle={idle.pid}", "--",
                            sys.executable, "-c", "b = bytearray(64 << 20)"])
        self.assertEqual(r.returncode, 0)
        with open(out) as f:
            m = json.load(f)
        self.assertGreaterEqual(m["minflt"]["workload"], 16384)
        self.assertLess(m["minflt"]["idle"], 10)

    def test_measure_passes_the_exit_status_on(self):
        out = os.path.join(tmpdir(self), "m.json")
        r = subprocess.run([sys.executable, TOOL, "measure", "--out", out, "--", "bash", "-c", "exit 3"])
        self.assertEqual(r.returncode, 3)
        with open(out) as f:
            self.assertEqual(json.load(f)["rc"], 3)


class HelpersTest(unittest.TestCase):
    def test_mkfile_and_mktree(self):
        tmp = tmpdir(self)
        f = os.path.join(tmp, "f")
        self.assertEqual(fsbench.main(["mkfile", f, "3"]), 0)
        self.assertEqual(os.path.getsize(f), 3 << 20)
        with open(f, "rb") as fh:
            a, b = fh.read(1 << 20), fh.read(1 << 20)
        self.assertNotEqual(a, b)
        self.assertEqual(fsbench.main(["mktree", os.path.join(tmp, "t"), "250", "10"]), 0)
        n = sum(len(fs) for _, _, fs in os.walk(os.path.join(tmp, "t")))
        self.assertEqual(n, 250)
        self.assertEqual(len(os.listdir(os.path.join(tmp, "t"))), 10)
        self.assertEqual(fsbench.main(["fadvise", f]), 0)


class ProfileTest(unittest.TestCase):
    # `perf report -n -t '|' --sort comm,dso,sym` as perf 6.1 prints it.
    REPORT = """ 16.58% | 419        |swapper    |[kernel.kallsyms]  |[k] pv_native_safe_halt
 12.82% | 324        |sfsclient  |[kernel.kallsyms]  |[k] __pi_memcpy
 7.44%  | 188        |sfsd       |libc.so.6          |[.] __memmove_avx512_unaligned_erms
 4.19%  | 106        |fio        |[kernel.kallsyms]  |[k] _copy_to_iter
 3.09%  | 78         |sfsd       |[kernel.kallsyms]  |[k] _copy_from_iter
 1.00%  | 25         |kworker/u8:2-ev|[kernel.kallsyms]  |[k] memset_orig
 0.50%  | 12         |kworker/1:1|[kernel.kallsyms]  |[k] memset_orig
 0.40%  | 10         |sfsclient  |/usr/lib/x86_64-linux-gnu/libcrypto.so.3|[.] 0x0000000000241f23
 0.20%  | 5          |sfsclient  |/usr/lib/x86_64-linux-gnu/libcrypto.so.3|[.] 0x0000000000241f99
"""

    def test_report_lines_become_samples_per_process_and_function(self):
        c = fsprofile.parse_report(self.REPORT)
        self.assertEqual(c[("sfsclient", "__pi_memcpy")], 324)
        self.assertEqual(c[("sfsd", "__memmove_avx512_unaligned_erms")], 188)
        # kernel workers grouped by kind, whatever their number
        self.assertEqual(c[("kernel: kworker", "memset_orig")], 37)
        self.assertEqual(c[("swapper", "pv_native_safe_halt")], 419)
        # addresses without a symbol: under their library
        self.assertEqual(c[("sfsclient", "libcrypto.so.3 (no symbol)")], 15)

    def test_table_gives_cpu_seconds_per_gib_and_leaves_idle_out(self):
        c = fsprofile.parse_report(self.REPORT)
        # 499 samples a second: 499 samples are one CPU-second; half a GiB read
        rows = fsprofile.table(c, 1 << 29, 499.0, 1)
        sfsd = [r for r in rows if r.startswith("| sfsd |")][0]
        self.assertIn("| {:.2f} |".format((188 + 78) / 499 / 0.5), sfsd)
        self.assertIn("`__memmove_avx512_unaligned_erms` {:.2f}".format(188 / 499 / 0.5), sfsd)
        self.assertIn("the rest {:.2f}".format(78 / 499 / 0.5), sfsd)
        self.assertFalse([r for r in rows if r.startswith("| swapper")])
        self.assertIn("idle (swapper) {:.2f}".format(419 / 499 / 0.5), rows[-1])
        busy = 324 + 188 + 106 + 78 + 37 + 15
        self.assertIn("**{:.2f}**".format(busy / 499 / 0.5), rows[-1])


if __name__ == "__main__":
    unittest.main(verbosity=2)
