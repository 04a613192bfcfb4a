"""Tests of cairn-devsim through an independent NETCONF client (ncclient).

Each test class starts one cairn-devsim on free loopback ports, drives it
with Debian's python3-ncclient and its control socket, and stops it.
Run with /usr/bin/python3 (Debian's Python sees python3-ncclient);
CAIRN_BIN_DIR names the directory holding cairn-devsim.
"""
import os
import random
import socket
import subprocess
import sys
import time
import unittest

from ncclient import manager
from ncclient.operations import RPCError

BIN_DIR = os.environ.get("CAIRN_BIN_DIR", os.path.join(os.getcwd(), "bin"))
DEVSIM = os.path.join(BIN_DIR, "cairn-devsim")
USER, PASSWORD = "admin", "s3cret"

IF_NS = "urn:cairn:cpe:interfaces"
FENCE = ('<controller xmlns="urn:cairn:fencing"><epoch>{epoch}</epoch>'
         '<node>n1</node></controller>')


def free_ports(count):
    """Returns the first of `count` consecutive ports that can be bound now."""
    for _ in range(200):
        base = random.randint(20000, 60000 - count)
        socks = []
        try:
            for p in range(base, base + count):
                s = socket.socket()
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind(("127.0.0.1", p))
                socks.append(s)
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free port range")


class DevsimProcess:
    """A running cairn-devsim started with args (its control port is added)
    and its control socket."""

    def _start(self, args):
        self.proc = subprocess.Popen(
            [DEVSIM] + args + ["--control-port", str(self.control_port)],
            stdout=subprocess.PIPE, stderr=sys.stderr, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("ready"):
            self.stop()
            raise RuntimeError("cairn-devsim did not start: %r" % line)
        self.ctl = socket.create_connection(("127.0.0.1", self.control_port), timeout=10)
        self.ctl_file = self.ctl.makefile("rw")

    def command(self, line):
        """Sends a control command; returns its data lines or raises."""
        self.ctl_file.write(line + "\n")
        self.ctl_file.flush()
        head = self.ctl_file.readline().strip()
        if not head.startswith("OK"):
            raise RuntimeError("control %r: %s" % (line, head))
        return [self.ctl_file.readline().rstrip("\n") for _ in range(int(head.split()[1]))]

    def stop(self):
        """Stops it (SIGTERM, then SIGKILL after 10 s); returns its exit status."""
        if getattr(self, "ctl", None):
            self.ctl.close()
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return self.proc.returncode


class Devsim(DevsimProcess):
    """count devices on consecutive ports, with USER/PASSWORD."""

    def __init__(self, count):
        base = free_ports(count + 1)
        self.control_port = base
        self.base_port = base + 1
        self.count = count
        self._start(["--count", str(count), "--base-port", str(self.base_port),
                     "--user", USER, "--password", PASSWORD])

    def log(self, dev):
        rows = []
        for line in self.command("log " + dev):
            t, session, op, ds, epoch = line.split()
            rows.append((int(t), int(session), op, ds, None if epoch == "-" else int(epoch)))
        return rows

    def connect(self, index=0, password=PASSWORD):
        return manager.connect(host="127.0.0.1", port=self.base_port + index,
                               username=USER, password=password, hostkey_verify=False,
                               allow_agent=False, look_for_keys=False, timeout=10)


def iface_edit(name, description, epoch=None, op=None):
    attr = ' xmlns:nc="urn:ietf:params:xml:ns:netconf:base:1.0" nc:operation="%s"' % op if op else ""
    fence = FENCE.format(epoch=epoch) if epoch is not None else ""
    return ('<config xmlns="urn:ietf:params:xml:ns:netconf:base:1.0">%s'
            '<interfaces xmlns="%s"><interface%s><name>%s</name>'
            '<description>%s</description></interface></interfaces></config>'
            % (fence, IF_NS, attr, name, description))


def iface_filter(name):
    return ("subtree", '<interfaces xmlns="%s"><interface><name>%s</name></interface>'
            '</interfaces>' % (IF_NS, name))


def until(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("timed out waiting for " + what)


class DevsimTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sim = Devsim(4)

    @classmethod
    def tearDownClass(cls):
        cls.sim.stop()

    def test_get_config_and_state(self):
        with self.sim.connect(1) as m:
            self.assertIn("urn:ietf:params:netconf:capability:candidate:1.0",
                          m.server_capabilities)
            cfg = m.get_config("running").data_xml
            self.assertIn("<hostname>dev1</hostname>", cfg)
            self.assertIn("wan0", cfg)
            state = m.get(("subtree", '<system-state xmlns="urn:cairn:cpe:system"/>')).data_xml
            self.assertIn("<serial-number>CRN00000001</serial-number>", state)
            self.assertIn("<uptime>", state)
            self.assertNotIn("<interfaces ", state)
            counters = m.get(("subtree", '<interfaces-state xmlns="%s"><interface><name>wan0'
                              '</name><counters/></interface></interfaces-state>' % IF_NS))
            self.assertIn("<in-octets>", counters.data_xml)
            self.assertNotIn("lan0", counters.data_xml)
            xp = m.get_config("running", ("xpath", ({"s": "urn:cairn:cpe:system"},
                                                    "/s:system/s:hostname")))
            self.assertIn("dev1", xp.data_xml)
        for _ in range(2):  # the built-in get-schema crashed on a second session
            with self.sim.connect(1) as m:
                self.assertIn("module cairn-cpe-vnf", m.get_schema("cairn-cpe-vnf").data)

    def test_candidate_commit_with_epoch(self):
        dev = "dev0"
        with self.sim.connect(0) as m:
            with m.locked("candidate"):
                m.edit_config(target="candidate", config=iface_edit("lan0", "office", epoch=7))
                self.assertNotIn("office", m.get_config("running", iface_filter("lan0")).data_xml)
                self.assertIn("office", m.get_config("candidate", iface_filter("lan0")).data_xml)
                m.validate(source="candidate")
                m.commit()
            running = m.get_config("running", iface_filter("lan0")).data_xml
            self.assertIn("office", running)
            self.assertNotIn("fencing", running)
            sid = int(m.session_id)
        log = self.sim.log(dev)
        self.assertIn((sid, "edit-config", "candidate", 7), [r[1:] for r in log])
        self.assertIn((sid, "commit", "running", 7), [r[1:] for r in log])

    def test_lock_denied_and_discard(self):
        with self.sim.connect(2) as a, self.sim.connect(2) as b:
            a.lock("candidate")
            with self.assertRaises(RPCError) as cm:
                b.lock("candidate")
            self.assertEqual(cm.exception.tag, "lock-denied")
            with self.assertRaises(RPCError):
                b.edit_config(target="candidate", config=iface_edit("lan0", "x"))
            a.edit_config(target="candidate", config=iface_edit("lan0", "discard-me"))
            a.discard_changes()
            self.assertNotIn("discard-me", a.get_config("candidate").data_xml)
            a.unlock("candidate")
            b.lock("candidate")
            b.unlock("candidate")

    def test_edit_operations(self):
        with self.sim.connect(2) as m:
            m.edit_config(target="candidate", config=iface_edit("ge1", "new", op="create"))
            with self.assertRaises(RPCError) as cm:
                m.edit_config(target="candidate", config=iface_edit("ge1", "new", op="create"))
            self.assertEqual(cm.exception.tag, "data-exists")
            m.edit_config(target="candidate", config=iface_edit("ge1", "gone", op="delete"))
            self.assertNotIn("ge1", m.get_config("candidate").data_xml)
            with self.assertRaises(RPCError) as cm:
                m.edit_config(target="candidate", config=iface_edit("ge1", "x", op="delete"))
            self.assertEqual(cm.exception.tag, "data-missing")
            m.discard_changes()

    def test_confirmed_commit_rolls_back(self):
        with self.sim.connect(3) as m:
            m.edit_config(target="candidate", config=iface_edit("lan0", "tentative", epoch=9))
            m.commit(confirmed=True, timeout="1")
            self.assertIn("tentative", m.get_config("running").data_xml)
            until(lambda: "tentative" not in m.get_config("running").data_xml, 10,
                  "automatic rollback")
            self.assertNotIn("tentative", m.get_config("candidate").data_xml)
        ops = [r[2] for r in self.sim.log("dev3")]
        self.assertIn("confirmed-commit", ops)
        self.assertIn("rollback", ops)

    def test_confirmed_commit_confirmed(self):
        with self.sim.connect(3) as m:
            m.edit_config(target="candidate", config=iface_edit("lan0", "kept"))
            m.commit(confirmed=True, timeout="1")
            m.commit()
            # The confirming commit cancels the rollback timer: nothing is
            # pending, so nothing can roll back when the 1 s would have run out.
            status = dict(kv.split("=", 1) for kv in " ".join(
                self.sim.command("status dev3")).split())
            self.assertEqual(status["confirm-pending"], "0", status)
            self.assertIn("kept", m.get_config("running").data_xml)

    def test_fault_reject_commit(self):
        self.sim.command("fault dev1 reject-commit")
        try:
            with self.sim.connect(1) as m:
                m.edit_config(target="candidate", config=iface_edit("lan0", "rejected"))
                with self.assertRaises(RPCError) as cm:
                    m.commit()
                self.assertEqual(cm.exception.tag, "operation-failed")
                m.discard_changes()
        finally:
            self.sim.command("clear dev1")

    def test_fault_slow(self):
        self.sim.command("fault dev1 slow 600")
        try:
            with self.sim.connect(1) as m:
                t0 = time.monotonic()
                m.get_config("running")
                self.assertGreaterEqual(time.monotonic() - t0, 0.55)
        finally:
            self.sim.command("clear dev1")

    def test_fault_drop(self):
        m = self.sim.connect(1)
        self.sim.command("fault dev1 drop 1")
        with self.assertRaises(Exception):
            m.get_config("running")
        until(lambda: not m.connected, 10, "the dropped session to close")
        with self.sim.connect(1) as m:
            m.get_config("running")  # the fault was for one RPC only

    def test_fault_refuse(self):
        self.sim.command("fault dev2 refuse")
        try:
            with self.assertRaises(Exception):
                self.sim.connect(2)
            with socket.socket() as s:
                self.assertNotEqual(s.connect_ex(("127.0.0.1", self.sim.base_port + 2)), 0)
        finally:
            self.sim.command("clear dev2")
        with self.sim.connect(2) as m:
            m.get_config("running")

    def test_drift(self):
        self.sim.command("drift dev0")
        with self.sim.connect(0) as m:
            self.assertIn("drift-", m.get_config("running").data_xml)
        self.sim.command("drift dev0 /cairn-cpe-system:system/contact noc@example.net")
        self.assertTrue(any("noc@example.net" in l for l in self.sim.command("config dev0")))
        self.assertIn("drift", [r[2] for r in self.sim.log("dev0")])

    def test_bad_password(self):
        with self.assertRaises(Exception):
            self.sim.connect(0, password="wrong")


class StartupTest(unittest.TestCase):
    def test_many_devices_start_fast(self):
        count = int(os.environ.get("DEVSIM_STARTUP_COUNT", "300"))
        t0 = time.monotonic()
        sim = Devsim(count)
        try:
            for i in (0, count // 2, count - 1):
                with socket.create_connection(("127.0.0.1", sim.base_port + i), timeout=5):
                    pass
            elapsed = time.monotonic() - t0
            print("devsim: %d devices accepting after %.2f s" % (count, elapsed))
            self.assertLess(elapsed, 10)
            with sim.connect(count - 1) as m:
                self.assertIn("dev%d" % (count - 1), m.get_config("running").data_xml)
        finally:
            sim.stop()

    def test_call_home_options_checked(self):
        # Bad call-home lists are usage errors; more call-home devices than
        # libnetconf2's select() can dial are refused before anything starts.
        for args in (["--call-home", "nowhere"], ["--call-home", "h:0"],
                     ["--call-home", ",".join("h:%d" % p for p in range(1, 10))]):
            r = subprocess.run([DEVSIM, "--count", "1", "--base-port", "1", "--user", USER,
                                "--password", PASSWORD] + args,
                               capture_output=True, text=True, timeout=20)
            self.assertEqual(r.returncode, 2, (args, r.stderr))
            self.assertIn("--call-home must be HOST:PORT", r.stderr)
        r = subprocess.run([DEVSIM, "--count", "400", "--base-port", "40000", "--user", USER,
                            "--password", PASSWORD, "--call-home", "127.0.0.1:1"],
                           capture_output=True, text=True, timeout=20)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("run at most 325 call-home devices per process", r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
