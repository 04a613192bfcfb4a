#!/usr/bin/env python3
"""cairn-bench runs for a few seconds against a real local cluster, for
writes and for reads, and reports results (a smoke test: benchmarks are
measured by tools/bench-compare, never asserted in tests)."""

import json
import os
import re
import subprocess
import sys
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import harness  # noqa: E402
from harness import Cluster, lc  # noqa: E402


class BenchTest(unittest.TestCase):
    def run_bench(self, c, op, amount=("--duration", "2")):
        bench = os.path.join(lc.bin_dir(), "cairn-bench")
        cmd = [bench, "--url", ",".join(c.url(n) for n in (1, 2, 3)), "--op", op,
               "--concurrency", "4", "--keys", "20", *amount]
        admin = os.path.join(c.dir, "admin.json")
        if os.path.exists(admin):
            cmd += ["--login", admin]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        result = json.loads(out.stdout.strip().splitlines()[-1])
        result["lines"] = out.stdout.splitlines()
        self.assertEqual(result["op"], op)
        self.assertGreater(result["ok"], 0)
        self.assertEqual(result["errors"], 0, out.stdout)
        self.assertGreater(result["p99_ms"], 0)
        return result

    def test_write_and_read(self):
        with Cluster(3, name="bench") as c:
            w = self.run_bench(c, "write")
            r = self.run_bench(c, "read")
            harness.log("bench smoke: write %.0f/s, read %.0f/s" % (w["throughput"],
                                                                     r["throughput"]))
            # --requests: exactly that many, over all connections, then stop
            # (what tools/profile-callgrind counts instructions over).
            for op in ("write", "read"):
                res = self.run_bench(c, op, ("--requests", "37"))
                self.assertEqual(res["ok"], 37, res)
            # --series: a line per second; together they count every request.
            res = self.run_bench(c, "write", ("--duration", "2.5", "--series", "1"))
            series = [re.match(r"second (\d+): ok (\d+), over 1 ms (\d+), max ([\d.]+) ms$", line)
                      for line in res["lines"] if line.startswith("second ")]
            self.assertTrue(all(series), res["lines"])
            self.assertEqual([int(m.group(1)) for m in series], [0, 1, 2], res["lines"])
            self.assertEqual(sum(int(m.group(2)) for m in series), res["ok"])
            for m in series:
                self.assertLessEqual(int(m.group(3)), int(m.group(2)))
            self.assertAlmostEqual(max(float(m.group(4)) for m in series), res["max_ms"], delta=0.01)

    def test_usage_errors(self):
        bench = os.path.join(lc.bin_dir(), "cairn-bench")
        for args in ([], ["--url"], ["--url", "http://127.0.0.1:1", "--concurrency", "0"],
                     ["--url", "http://127.0.0.1:1", "--op", "frob"],
                     ["--url", "http://127.0.0.1:1", "--series", "0"]):
            out = subprocess.run([bench] + args, capture_output=True, text=True, timeout=30)
            self.assertEqual(out.returncode, 2, (args, out.stderr))


if __name__ == "__main__":
    unittest.main(verbosity=2)
