#!/usr/bin/env python3
"""tools/localcluster from the command line: up prints exactly the URLs and
leaves an administrator's credentials in DIR/admin.json that log in on
every node, status, kill/start, pause/resume, add/remove, down stops every
process, and usage errors exit 2 with one line on stderr."""

import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import LOCALCLUSTER_PATH, lc, log, request, wait_for  # noqa: E402

URL_RE = re.compile(r"^http://127\.0\.0\.1:(\d+)$")
STATUS_RE = re.compile(
    r"^node (\d+) pid (\d+|-) (running|stopped) (http://127\.0\.0\.1:\d+) (ready|not-ready) (\S+)$")
CLI_TIMEOUT_S = 150


def cli(*args, env=None, direct=False):
    """Runs localcluster; returns (exit status, stdout, stderr)."""
    cmd = [LOCALCLUSTER_PATH] if direct else [sys.executable, LOCALCLUSTER_PATH]
    p = subprocess.run(cmd + list(args), stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=CLI_TIMEOUT_S, env=env)
    if p.returncode != 0:
        log("localcluster %s -> %d; stderr: %s" % (" ".join(args), p.returncode,
                                                   p.stderr.strip()[-2000:]))
    return p.returncode, p.stdout, p.stderr


def status_lines(d):
    rc, out, err = cli("status", "-d", d)
    if rc != 0:
        raise AssertionError("status exited %d: %s" % (rc, err))
    rows = {}
    for line in out.splitlines():
        m = STATUS_RE.match(line)
        if not m:
            raise AssertionError("bad status line %r" % line)
        rows[int(m.group(1))] = {"pid": None if m.group(2) == "-" else int(m.group(2)),
                                 "state": m.group(3), "url": m.group(4),
                                 "ready": m.group(5) == "ready", "role": m.group(6)}
    return rows


class LocalclusterCliTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="cairn-localcluster-", dir=harness.tmp_root())
        self.cluster_dir = os.path.join(self.dir, "c")
        self.ok = False

    def tearDown(self):
        try:
            lc.down(self.cluster_dir)
        except lc.ClusterError:
            pass
        if self.ok:
            shutil.rmtree(self.dir, ignore_errors=True)
        else:
            for name in sorted(os.listdir(self.cluster_dir) if os.path.isdir(
                    self.cluster_dir) else []):
                path = os.path.join(self.cluster_dir, name, "cairnd.log")
                if os.path.exists(path):
                    sys.stderr.write("----- %s -----\n%s\n" % (path, lc.log_tail(path, 60)))
            log("kept %s" % self.dir)

    def assert_usage_error(self, *args, direct=False):
        rc, out, err = cli(*args, direct=direct)
        self.assertEqual(rc, 2, "localcluster %s: exit %d, stderr %r" % (args, rc, err))
        self.assertEqual(out, "", "stdout of a usage error")
        lines = [ln for ln in err.splitlines() if ln.strip()]
        self.assertEqual(len(lines), 1, "stderr of a usage error is one line: %r" % err)

    def test_usage_errors(self):
        d = self.cluster_dir
        self.assert_usage_error(direct=True)
        self.assert_usage_error("frobnicate", "-d", d)
        self.assert_usage_error("up", "-n", "3")
        self.assert_usage_error("up", "-d", d)
        self.assert_usage_error("up", "-n", "0", "-d", d)
        self.assert_usage_error("up", "-n", "three", "-d", d)
        self.assert_usage_error("up", "-n", "1", "-d", d, "--set", "no-equals-sign")
        self.assert_usage_error("up", "-n", "1", "-d", d, "--set", "node_id=7")
        self.assert_usage_error("up", "-n", "1", "-d", d, "--set", "admin_password_file=/x")
        self.assert_usage_error("up", "-n", "1", "-d", d, "--timeout", "soon")
        self.assert_usage_error("kill", "-d", d)
        self.assert_usage_error("kill", "-d", d, "abc")
        self.assert_usage_error("kill", "-d", d, "0")
        self.assert_usage_error("start", "-d", d, "1", "--wait", "forever")
        self.assert_usage_error("status")
        self.assertFalse(os.path.exists(d), "a usage error created the directory")
        # Not a usage error: no cluster there, nothing to stop.
        rc, out, _err = cli("down", "-d", d)
        self.assertEqual((rc, out), (0, ""))
        # A missing binary is a runtime failure, with nothing left behind.
        env = dict(os.environ, CAIRN_BIN_DIR=os.path.join(self.dir, "no-such-bin"))
        rc, out, err = cli("up", "-n", "1", "-d", d, env=env)
        self.assertEqual(rc, 1, err)
        self.assertEqual(out, "")
        self.assertIn("cairnd", err)
        self.assertFalse(os.path.exists(os.path.join(d, "cluster.json")))
        self.ok = True

    def test_lifecycle(self):
        d = self.cluster_dir
        rc, out, err = cli("up", "-n", "3", "-d", d, "--set", "election_timeout_ms=1000",
                           "--timeout", "90")
        self.assertEqual(rc, 0, err)
        urls = out.splitlines()
        self.assertEqual(len(urls), 3, "stdout of up: %r" % out)
        self.assertTrue(out.endswith("\n"))
        for u in urls:
            self.assertRegex(u, URL_RE)
        self.assertEqual(len(set(urls)), 3)
        for u in urls:
            self.assertEqual(request(u, "GET", "/readyz").status, 200)
        for k in (1, 2, 3):
            with open(os.path.join(d, "node%d" % k, "cairnd.conf")) as f:
                conf = f.read()
            self.assertIn("node_id = %d\n" % k, conf)
            self.assertEqual(conf.count("\nmember = "), 3)
            self.assertIn("election_timeout_ms = 1000\n", conf)
            self.assertIn("admin_password_file = %s\n" % os.path.join(d, "admin.pw"), conf)

        # The administrator: a generated password, private files, and a
        # login that works on every node as soon as up returns.
        with open(os.path.join(d, "admin.json")) as f:
            admin = json.load(f)
        self.assertEqual(sorted(admin), ["password", "username"])
        self.assertEqual(admin["username"], "admin")
        self.assertGreaterEqual(len(admin["password"]), 20)
        with open(os.path.join(d, "admin.pw")) as f:
            self.assertEqual(f.read(), admin["password"] + "\n")
        for name in ("admin.pw", "admin.json", "admin.token"):
            self.assertEqual(stat.S_IMODE(os.stat(os.path.join(d, name)).st_mode), 0o600, name)
        rc, out, err = cli("token", "-d", d)
        self.assertEqual(rc, 0, err)
        self.assertRegex(out, r"^[A-Za-z0-9_-]{43}\n$")
        self.assertEqual(request(urls[1], "GET", "/api/v1/auth/whoami",
                                 token=out.strip()).status, 200)
        for u in urls:
            r = request(u, "POST", "/api/v1/auth/login", body=admin)
            self.assertEqual(r.status, 200, r)
            self.assertEqual(request(u, "GET", "/api/v1/cluster").status, 401)
            self.assertEqual(request(u, "GET", "/api/v1/cluster", token=r.json["token"]).status,
                             200)

        rows = status_lines(d)
        self.assertEqual(sorted(rows), [1, 2, 3])
        for k, row in rows.items():
            self.assertEqual(row["state"], "running")
            self.assertEqual(row["url"], urls[k - 1])
            self.assertIsNotNone(row["pid"])
        wait_for(lambda: sorted(r["role"] for r in status_lines(d).values())
                 == ["follower", "follower", "leader"], 20, "one leader and two followers",
                 interval=0.2)
        pids = {k: row["pid"] for k, row in rows.items()}

        # A second up on a running cluster is refused and changes nothing.
        rc, out, err = cli("up", "-n", "3", "-d", d)
        self.assertEqual(rc, 1, err)
        self.assertEqual(out, "")
        self.assertEqual({k: r["pid"] for k, r in status_lines(d).items()}, pids)

        # A node that is not in the cluster is a usage error.
        self.assert_usage_error("kill", "-d", d, "9")

        # kill / start
        rc, _out, err = cli("kill", "-d", d, "2")
        self.assertEqual(rc, 0, err)
        self.assertFalse(lc.pid_alive(pids[2]), "node 2 survives kill")
        row = status_lines(d)[2]
        self.assertEqual((row["state"], row["pid"], row["ready"]), ("stopped", None, False))
        rc, out, err = cli("start", "-d", d, "2", "--wait", "ready")
        self.assertEqual(rc, 0, err)
        self.assertEqual(out, "")
        row = status_lines(d)[2]
        self.assertEqual(row["state"], "running")
        self.assertTrue(row["ready"])
        self.assertNotEqual(row["pid"], pids[2])
        pids[2] = row["pid"]

        # pause / resume: a paused node keeps its process but answers nothing.
        rc, _out, err = cli("pause", "-d", d, "3")
        self.assertEqual(rc, 0, err)
        self.assertTrue(lc.pid_alive(pids[3]))
        with self.assertRaises(OSError):
            request(urls[2], "GET", "/healthz", timeout=1.0)
        rc, _out, err = cli("resume", "-d", d, "3")
        self.assertEqual(rc, 0, err)
        wait_for(lambda: request(urls[2], "GET", "/healthz", timeout=2.0).status == 200, 20,
                 "node 3 to answer after resume")

        # stop (SIGTERM): a clean shutdown, then start again.
        rc, _out, err = cli("stop", "-d", d, "1")
        self.assertEqual(rc, 0, err)
        self.assertFalse(lc.pid_alive(pids[1]))
        rc, _out, err = cli("start", "-d", d, "1")
        self.assertEqual(rc, 0, err)
        pids[1] = status_lines(d)[1]["pid"]

        # add / remove
        rc, out, err = cli("add", "-d", d, "--timeout", "90")
        self.assertEqual(rc, 0, err)
        self.assertRegex(out, r"^http://127\.0\.0\.1:\d+\n$")
        new_url = out.strip()
        self.assertNotIn(new_url, urls)
        rows = status_lines(d)
        self.assertEqual(sorted(rows), [1, 2, 3, 4])
        self.assertEqual(rows[4]["url"], new_url)
        self.assertEqual(rows[4]["state"], "running")
        pids[4] = rows[4]["pid"]
        rc, _out, err = cli("remove", "-d", d, "4")
        self.assertEqual(rc, 0, err)
        self.assertFalse(lc.pid_alive(pids[4]))
        rows = status_lines(d)
        self.assertEqual((rows[4]["state"], rows[4]["role"]), ("stopped", "removed"))
        rc, _out, err = cli("start", "-d", d, "4")
        self.assertEqual(rc, 1, "starting a removed node")

        # down stops everything.
        rc, out, err = cli("down", "-d", d)
        self.assertEqual(rc, 0, err)
        self.assertEqual(out, "")
        for k, pid in pids.items():
            self.assertFalse(lc.pid_alive(pid), "node %d (pid %d) survives down" % (k, pid))
            self.assertFalse(os.path.exists(os.path.join(d, "node%d" % k, "pid")))
        for row in status_lines(d).values():
            self.assertEqual(row["state"], "stopped")
        rc, out, err = cli("down", "-d", d)
        self.assertEqual((rc, out), (0, ""), err)

        # up on the stopped cluster starts it again, data kept.
        rc, out, err = cli("up", "-d", d, "--timeout", "90")
        self.assertEqual(rc, 0, err)
        self.assertEqual(out.splitlines(), urls)
        rc, out, err = cli("down", "-d", d)
        self.assertEqual(rc, 0, err)
        self.ok = True


if __name__ == "__main__":
    harness.run()
