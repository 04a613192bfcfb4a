#!/usr/bin/env python3
"""cairnd's own start-up and shutdown contract, with real processes: a bad
configuration, a busy port, a data directory of another cluster or node, or
one already in use, each stop cairnd with a one-line error on stderr and
exit status 2, before anything is written; SIGTERM stops a node cleanly
(exit 0) and it restarts on the same data, tokens included. A node given
an admin_password_file creates that administrator (and is ready only once
it exists); an unreadable or too short password file is a configuration
error. Its threads run under SCHED_BATCH unless cpu_scheduling says
inherit."""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import lc, request, wait_for  # noqa: E402

CAIRND = os.path.join(lc.bin_dir(), "cairnd")
PASSWORD = "a-password-for-tests"


class CairndTest(unittest.TestCase):
    def setUp(self):
        root = os.environ.get("CAIRN_TEST_TMPDIR") or None
        if root:
            os.makedirs(root, exist_ok=True)
        self.dir = tempfile.mkdtemp(prefix="cairnd-", dir=root)
        self.procs = []
        raft, api = lc.free_ports(2)
        self.raft = "127.0.0.1:%d" % raft
        self.api = "127.0.0.1:%d" % api
        self.pw_file = os.path.join(self.dir, "admin.pw")
        with open(self.pw_file, "w") as f:
            f.write(PASSWORD + "\n")

    def tearDown(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait(timeout=30)
            for f in (p.stdout, p.stderr):
                if f:
                    f.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def conf(self, name="node.conf", cluster="unit", node_id=1, data="data", extra="",
             raft=None, api=None, pw_file=None):
        raft = raft or self.raft
        api = api or self.api
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write("cluster_id = %s\nnode_id = %d\ndata_dir = %s\nraft_address = %s\n"
                    "api_address = %s\nmember = %d %s %s\nadmin_password_file = %s\n%s"
                    % (cluster, node_id, os.path.join(self.dir, data), raft, api, node_id,
                       raft, api, pw_file or self.pw_file, extra))
        return path

    def login(self):
        r = request("http://" + self.api, "POST", "/api/v1/auth/login",
                    body={"username": "admin", "password": PASSWORD})
        self.assertEqual(r.status, 200, r)
        return r.json["token"]

    def start(self, path, preexec_fn=None):
        p = subprocess.Popen([CAIRND, "-c", path], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, preexec_fn=preexec_fn)
        self.procs.append(p)
        return p

    def run_fails(self, path, fragment):
        """cairnd exits 2 with one stderr line naming the problem."""
        p = subprocess.run([CAIRND, "-c", path], capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 2, p.stderr)
        lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
        self.assertEqual(len(lines), 1, p.stderr)
        self.assertIn(fragment, lines[0])
        self.assertTrue(lines[0].startswith("cairnd: "), lines[0])

    def wait_ready(self):
        wait_for(lambda: request("http://" + self.api, "GET", "/readyz", timeout=2).status == 200,
                 30, "single node ready")

    def test_bad_config(self):
        self.run_fails(self.conf(extra="bogus = 1\n"), "node.conf:8: bogus: unknown key")
        # The administrator's password file: readable, 12 bytes at least.
        short = os.path.join(self.dir, "short.pw")
        with open(short, "w") as f:
            f.write("elevenchars\n")
        self.run_fails(self.conf(pw_file=short), "admin_password_file")
        self.run_fails(self.conf(pw_file=os.path.join(self.dir, "none.pw")),
                       "none.pw: No such file")
        self.run_fails(self.conf(extra="election_timeout_ms = 5\n"), "election_timeout_ms")
        self.run_fails(self.conf(extra="cpu_scheduling = fifo\n"),
                       "cpu_scheduling: must be batch or inherit")
        self.assertFalse(os.path.exists(os.path.join(self.dir, "data")))
        p = subprocess.run([CAIRND, "-c", os.path.join(self.dir, "missing.conf")],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 2)
        self.assertIn("missing.conf: No such file", p.stderr)
        p = subprocess.run([CAIRND, "--frobnicate"], capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 2)
        p = subprocess.run([CAIRND, "--check-config", "-c", self.conf()], capture_output=True,
                           text=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_busy_ports_and_data_dirs(self):
        first = self.start(self.conf())
        self.wait_ready()
        # The same API port, another data dir: busy port.
        raft2, = lc.free_ports(1, avoid=(int(self.raft.split(":")[1]),
                                          int(self.api.split(":")[1])))
        self.run_fails(self.conf("api.conf", data="d2", raft="127.0.0.1:%d" % raft2),
                       "address already in use")
        self.assertFalse(os.path.exists(os.path.join(self.dir, "d2", "raft")))
        # The same raft port, another API port.
        api3, = lc.free_ports(1, avoid=(int(self.raft.split(":")[1]),
                                         int(self.api.split(":")[1]), raft2))
        self.run_fails(self.conf("raft.conf", data="d3", api="127.0.0.1:%d" % api3),
                       self.raft)
        # The same data dir while the node runs.
        self.run_fails(self.conf("twin.conf", raft="127.0.0.1:%d" % raft2,
                                 api="127.0.0.1:%d" % api3), "in use by another cairnd")
        # SIGTERM: a clean stop with status 0.
        first.send_signal(signal.SIGTERM)
        self.assertEqual(first.wait(timeout=30), 0)
        # The data dir now belongs to cluster "unit", node 1.
        self.run_fails(self.conf("other.conf", cluster="other"), "belongs to another cluster")
        self.run_fails(self.conf("node2.conf", node_id=2), "belongs to another cluster or node")
        # And it still starts as itself, with what it had.
        again = self.start(self.conf())
        self.wait_ready()
        again.send_signal(signal.SIGINT)
        self.assertEqual(again.wait(timeout=30), 0)

    def test_writes_survive_restart(self):
        node = self.start(self.conf())
        self.wait_ready()
        base = "http://" + self.api
        # Ready means the administrator exists: the first login works.
        token = self.login()
        self.assertEqual(request(base, "GET", "/api/v1/tenants").status, 401)
        r = request(base, "POST", "/api/v1/tenants", body={"name": "kept"}, token=token)
        self.assertEqual(r.status, 201, r)
        tid = r.json["id"]
        node.send_signal(signal.SIGTERM)
        self.assertEqual(node.wait(timeout=30), 0)
        # Another password file on restart changes nothing: the user exists.
        other = os.path.join(self.dir, "other.pw")
        with open(other, "w") as f:
            f.write("some-other-password\n")
        node = self.start(self.conf(pw_file=other))
        self.wait_ready()
        r = request(base, "GET", "/api/v1/tenants/" + tid, token=token)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["name"], "kept")
        self.login()
        node.kill()
        node.wait(timeout=30)
        node = self.start(self.conf())
        self.wait_ready()
        self.assertEqual(request(base, "GET", "/api/v1/tenants/" + tid, token=token).status, 200)

    def policies(self, proc):
        """The scheduling policy of each of proc's threads."""
        found = []
        for tid in os.listdir("/proc/%d/task" % proc.pid):
            try:
                found.append(os.sched_getscheduler(int(tid)))
            except ProcessLookupError:
                pass  # a thread that ended meanwhile
        return found

    def test_cpu_scheduling(self):
        """By default every thread of cairnd (HTTP workers, RocksDB's
        and raft's threads, the main thread) runs under SCHED_BATCH, once
        it has served a login; cpu_scheduling = inherit leaves them as
        cairnd was started. Both start under SCHED_OTHER, whatever this
        test runs under."""
        def other():
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))

        node = self.start(self.conf(), other)
        self.wait_ready()
        self.login()  # a request served, a write committed and applied
        found = self.policies(node)
        self.assertGreater(len(found), 10, found)  # HTTP workers, RocksDB's, raft's
        self.assertEqual(set(found), {os.SCHED_BATCH})
        node.send_signal(signal.SIGTERM)
        self.assertEqual(node.wait(timeout=30), 0)
        node = self.start(self.conf(extra="cpu_scheduling = inherit\n"), other)
        self.wait_ready()
        self.login()
        found = self.policies(node)
        self.assertGreater(len(found), 10, found)
        self.assertEqual(set(found), {os.SCHED_OTHER})
        node.send_signal(signal.SIGTERM)
        self.assertEqual(node.wait(timeout=30), 0)

    def test_no_default_password(self):
        """Without a password file no user exists: nobody can log in."""
        path = os.path.join(self.dir, "nopw.conf")
        with open(path, "w") as f:
            f.write("cluster_id = nopw\nnode_id = 1\ndata_dir = %s\nraft_address = %s\n"
                    "api_address = %s\nmember = 1 %s %s\n"
                    % (os.path.join(self.dir, "nopw"), self.raft, self.api, self.raft, self.api))
        node = self.start(path)
        self.wait_ready()
        for password in ("admin", "password", "", "cairn", PASSWORD):
            r = request("http://" + self.api, "POST", "/api/v1/auth/login",
                        body={"username": "admin", "password": password})
            self.assertIn(r.status, (401, 422), r)
        node.send_signal(signal.SIGTERM)
        self.assertEqual(node.wait(timeout=30), 0)

if __name__ == "__main__":
    unittest.main(verbosity=2)
