"""Tests of tools/chaos's machinery, without a cluster: schedules come from
the seed alone; network namespaces are made, partitioned (a cut link drops
traffic between two nodes both ways and nothing else; clients still reach
every node), healed and removed without a trace; the slow-disk shim delays
fsync under the data directory only; the hooks on localcluster put nodes in
their namespaces. Namespace tests are skipped unless this runs as root.

    python3 tests/chaos/test_harness.py
"""

import importlib.machinery
import importlib.util
import os
import socket
import subprocess
import sys
import tempfile
import time
import unittest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOLS = os.path.join(REPO, "tools")
sys.path.insert(0, TOOLS)

import chaos_net  # noqa: E402


def _load(name, path):
    loader = importlib.machinery.SourceFileLoader(name, path)
    spec = importlib.util.spec_from_loader(name, loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


chaos = _load("chaos_tool", os.path.join(TOOLS, "chaos"))
NETNS_OK, NETNS_WHY = chaos_net.available()

SERVER = r"""
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(16)
s.settimeout(60)
while True:
    try:
        c, _ = s.accept()
    except OSError:
        break
    c.sendall(b"hi")
    c.close()
"""

CLIENT = r"""
import socket, sys
try:
    c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1.0)
    ok = c.recv(2) == b"hi"
except OSError:
    ok = False
sys.exit(0 if ok else 1)
"""
PORT = 7999


class Schedules(unittest.TestCase):
    def test_same_seed_same_schedule(self):
        a = chaos.make_schedule(7, 120, list(chaos.ALL_FAULTS))
        b = chaos.make_schedule(7, 120, list(chaos.ALL_FAULTS))
        self.assertEqual([(r.fault, r.hold, r.gap, r.draws) for r in a],
                         [(r.fault, r.hold, r.gap, r.draws) for r in b])
        c = chaos.make_schedule(8, 120, list(chaos.ALL_FAULTS))
        self.assertNotEqual([r.fault for r in a], [r.fault for r in c])

    def test_schedule_fills_the_duration_with_the_faults_asked(self):
        rounds = chaos.make_schedule(1, 300, ["kill", "pause"])
        self.assertGreater(len(rounds), 20)
        self.assertEqual({r.fault for r in rounds}, {"kill", "pause"})
        total = chaos.WARMUP_S + sum(r.hold + r.gap for r in rounds[:-1])
        self.assertLess(total, 300)

    def test_schedule_command(self):
        out = subprocess.run([sys.executable, os.path.join(TOOLS, "chaos"), "schedule",
                              "--seed", "5", "--duration", "60"], stdout=subprocess.PIPE,
                             text=True, timeout=60, check=True).stdout
        again = subprocess.run([sys.executable, os.path.join(TOOLS, "chaos"), "schedule",
                                "--seed", "5", "--duration", "60"], stdout=subprocess.PIPE,
                               text=True, timeout=60, check=True).stdout
        self.assertEqual(out, again)
        self.assertTrue(out.startswith("round 1: "), out)

    def test_usage_errors_exit_2(self):
        for args in (["--duration", "x"], ["--seed", "1"], ["--duration", "5", "--faults",
                                                            "meteor"]):
            p = subprocess.run([sys.executable, os.path.join(TOOLS, "chaos")] + args,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               timeout=60)
            self.assertEqual(p.returncode, 2, args)
            self.assertIn("usage", p.stderr)


@unittest.skipUnless(NETNS_OK, "network namespaces: %s" % NETNS_WHY)
class Namespaces(unittest.TestCase):
    def setUp(self):
        self.net = chaos_net.Netns(3).setup()
        self.addCleanup(self.net.teardown)
        self.net.wait_reachable()
        self.servers = []
        for k in (1, 2, 3):
            p = subprocess.Popen(["ip", "netns", "exec", self.net.ns(k), sys.executable, "-c",
                                  SERVER, self.net.ip_of(k), str(PORT)])
            self.servers.append(p)
            self.addCleanup(self._stop, p)
        for k in (1, 2, 3):
            self._wait(lambda k=k: self._from_root(k), "node %d's server" % k)

    def _stop(self, p):
        p.kill()
        p.wait(10)

    def _wait(self, pred, what, timeout=10.0):
        deadline = time.monotonic() + timeout
        while not pred():
            if time.monotonic() >= deadline:
                self.fail("timed out waiting for %s" % what)
            time.sleep(0.05)

    def _from_root(self, k):
        try:
            with socket.create_connection((self.net.ip_of(k), PORT), timeout=1.0) as c:
                return c.recv(2) == b"hi"
        except OSError:
            return False

    def _from(self, a, b):
        return subprocess.run(["ip", "netns", "exec", self.net.ns(a), sys.executable, "-c",
                               CLIENT, self.net.ip_of(b), str(PORT)], timeout=30).returncode == 0

    def test_cut_link_both_ways_only(self):
        self.assertTrue(self._from(1, 2))
        self.net.set_blocked([(1, 2)])
        self.assertFalse(self._from(1, 2))
        self.assertFalse(self._from(2, 1))
        self.assertTrue(self._from(1, 3))
        self.assertTrue(self._from(3, 2))
        for k in (1, 2, 3):
            self.assertTrue(self._from_root(k), "clients reach node %d" % k)
        self.net.heal()
        self.assertTrue(self._from(1, 2))
        self.assertTrue(self._from(2, 1))
        self.assertEqual(self.net.routes(), {1: [], 2: [], 3: []})

    def test_isolate_and_change(self):
        self.net.set_blocked([(1, 2), (1, 3)])
        self.assertFalse(self._from(1, 2))
        self.assertFalse(self._from(3, 1))
        self.assertTrue(self._from(2, 3))
        self.net.set_blocked([(2, 3)])  # another partition replaces it
        self.assertTrue(self._from(1, 2))
        self.assertFalse(self._from(2, 3))
        self.net.heal()
        self.assertTrue(self._from(2, 3))

    def test_teardown_leaves_nothing(self):
        names = [self.net.ns(k) for k in (1, 2, 3)]
        for p in self.servers:
            self._stop(p)
        self.net.teardown()
        listed = subprocess.run(["ip", "netns", "list"], stdout=subprocess.PIPE, text=True,
                                timeout=30).stdout
        links = subprocess.run(["ip", "-o", "link", "show"], stdout=subprocess.PIPE,
                               text=True, timeout=30).stdout
        for name in names:
            self.assertNotIn(name, listed)
        self.assertNotIn(self.net.bridge + ":", links)
        self.assertNotIn(self.net.veth(1) + "@", links)

    def test_port_free_looks_inside_the_namespace(self):
        self.assertFalse(self.net.port_free(1, PORT))  # the test server listens there
        self.assertTrue(self.net.port_free(1, PORT + 1))
        self.assertEqual(self.net.node_of(self.net.ip_of(2)), 2)
        self.assertIsNone(self.net.node_of("127.0.0.1"))

    def test_hooks_put_nodes_in_namespaces(self):
        lc = _load("lc_for_test", os.path.join(TOOLS, "localcluster"))
        chaos_net.install_hooks(lc, self.net, lambda k: {})
        node = lc._new_node({"dir": "/nonexistent"}, 2, 7001, 8001)
        self.assertEqual(node["raft_address"], "%s:7001" % self.net.ip_of(2))
        self.assertEqual(node["api_address"], "%s:8001" % self.net.ip_of(2))
        p = lc.subprocess.Popen([sys.executable, "-c", "print(1)", "-c", "/x/node2/cairnd.conf"],
                                stdout=subprocess.DEVNULL)
        self.assertEqual(p.wait(30), 0)  # not cairnd: started as is
        if hasattr(lc, "_listen_free"):
            self.assertFalse(lc._listen_free("%s:%d" % (self.net.ip_of(3), PORT)))
            self.assertTrue(lc._listen_free("%s:%d" % (self.net.ip_of(3), PORT + 1)))


class SlowDisk(unittest.TestCase):
    def setUp(self):
        bin_dir = os.environ.get("CAIRN_BIN_DIR", os.path.join(REPO, "build", "bin"))
        self.lib = chaos_net.SlowDisk.find_lib(bin_dir)
        if self.lib is None:
            self.skipTest("no %s in %s" % (chaos_net.SLOWDISK_LIB, bin_dir))

    def test_delays_fsync_under_the_data_dir_only(self):
        with tempfile.TemporaryDirectory() as d:
            sd = chaos_net.SlowDisk(self.lib, d)
            os.makedirs(os.path.join(d, "node1", "data"))
            sd.set(1, 300)
            code = ("import os, sys, time\n"
                    "def timed(p):\n"
                    "    fd = os.open(p, os.O_CREAT | os.O_WRONLY)\n"
                    "    os.write(fd, b'x'); t = time.monotonic(); os.fsync(fd)\n"
                    "    os.close(fd); return time.monotonic() - t\n"
                    "print(timed(sys.argv[1]), timed(sys.argv[2]))\n")
            env = dict(os.environ)
            env.update(sd.env(1))
            out = subprocess.run([sys.executable, "-c", code,
                                  os.path.join(d, "node1", "data", "f"), os.path.join(d, "g")],
                                 env=env, stdout=subprocess.PIPE, text=True, timeout=30,
                                 check=True).stdout.split()
            inside, outside = float(out[0]), float(out[1])
            self.assertGreaterEqual(inside, 0.29)
            self.assertLess(outside, 0.2)
            sd.set(1, 0)
            out = subprocess.run([sys.executable, "-c", code,
                                  os.path.join(d, "node1", "data", "f"), os.path.join(d, "g")],
                                 env=env, stdout=subprocess.PIPE, text=True, timeout=30,
                                 check=True).stdout.split()
            self.assertLess(float(out[0]), 0.2)


if __name__ == "__main__":
    prog = unittest.main(verbosity=2, exit=False)
    sys.exit(0 if prog.result.wasSuccessful() and prog.result.testsRun > 0 else 1)
