"""Southbound integration test: sb_manager against 200 simulated devices.

ManagerTest starts one cairn-devsim (200 devices) and one sb_driver (the
manager behind a line protocol, tests/southbound/sb_driver.c), onboards
every device, pushes a firewall policy to all of them, checks every
device's running config with an independent NETCONF client (Debian's
python3-ncclient) and the simulator's epoch records, then injects each
devsim fault (refused connection, session dropped mid-RPC, slow reply and
a reply timeout, rejected commit, drift) and checks the job's outcome and
that no device is left with a half-applied candidate. It also loses a
device's ownership in the middle of a push (the fence, asked before each
writing step) and kills a controller during its confirmed commit (the
device rolls back when the session closes).

`test_southbound.py measure N` instead onboards N devices and prints the
time, the driver's thread count and RSS (the numbers in docs/southbound.md).

Run with /usr/bin/python3; CAIRN_BIN_DIR names the directory holding
cairn-devsim and sb_driver.
"""
import concurrent.futures
import json
import os
import queue
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "devsim"))
from test_devsim import BIN_DIR, PASSWORD, USER, Devsim, until  # noqa: E402

DRIVER = os.path.join(BIN_DIR, "sb_driver")
COUNT = int(os.environ.get("SB_TEST_DEVICES", "200"))
EPOCH = 42
SEC_NS = "urn:cairn:cpe:security"

FW_PARAMS = {
    "zones": [{"name": "trust", "interfaces": ["lan0"]},
              {"name": "untrust", "interfaces": ["wan0"]}],
    "rules": [{"name": "web", "from_zone": "trust", "to_zone": "untrust",
               "protocol": "tcp", "port": 443, "action": "permit", "log": True},
              {"name": "deny-in", "from_zone": "untrust", "to_zone": "trust",
               "action": "deny"}],
}


def services(params, sid="fw-1"):
    return json.dumps({"services": [{"id": sid, "type": "firewall-policy",
                                     "parameters": params}]})


FW = services(FW_PARAMS)
FW2_PARAMS = dict(FW_PARAMS, rules=FW_PARAMS["rules"] + [
    {"name": "dns", "from_zone": "trust", "to_zone": "untrust", "protocol": "udp",
     "port": 53, "action": "permit"}])
FW2 = services(FW2_PARAMS)


class Driver:
    """A running sb_driver; results arrive on a reader thread."""

    def __init__(self, *args):
        self.proc = subprocess.Popen([DRIVER] + list(args), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=sys.stderr, text=True)
        self.replies = queue.Queue()
        self.results = {}
        self.cond = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        if "ready" not in self.replies.get(timeout=30):
            raise RuntimeError("sb_driver did not start")

    def _read(self):
        for line in self.proc.stdout:
            msg = json.loads(line)
            if "result" in msg:
                with self.cond:
                    self.results[msg["result"]["seq"]] = msg["result"]
                    self.cond.notify_all()
            else:
                self.replies.put(msg)

    def cmd(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        reply = self.replies.get(timeout=30)
        if "error" in reply:
            raise RuntimeError("sb_driver %r: %s" % (line, reply["error"]))
        return reply

    def wait(self, first, count, timeout):
        """Waits for results first..first+count-1; returns them in order."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while not all(s in self.results for s in range(first, first + count)):
                left = deadline - time.monotonic()
                if left <= 0:
                    missing = [s for s in range(first, first + count) if s not in self.results]
                    raise AssertionError("results missing after %ss: %s" % (timeout, missing[:10]))
                self.cond.wait(left)
            return [self.results[s] for s in range(first, first + count)]

    def run(self, device, op, body="", timeout=60):
        """Submits one job and waits for its result."""
        first = self.cmd("submit %s %s %s" % (device, op, body))["first_seq"]
        return self.wait(first, 1, timeout)[0]

    def run_all(self, op, body="", timeout=180):
        reply = self.cmd("submit-all %s %s" % (op, body))
        return self.wait(reply["first_seq"], reply["submitted"], timeout)

    def stop(self):
        try:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.flush()
            self.proc.wait(30)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()


def dev_status(sim, dev):
    """The simulator's status line of a device as a dict."""
    line = sim.command("status " + dev)[0]
    return dict(kv.split("=", 1) for kv in line.split())


def clean(sim, dev):
    """True when no lock, candidate change or confirmed commit is pending."""
    st = dev_status(sim, dev)
    return (st["lock-candidate"] == "0" and st["lock-running"] == "0"
            and st["candidate-dirty"] == "0" and st["confirm-pending"] == "0")


class ManagerTest(unittest.TestCase):
    """One simulator and one manager shared by the ordered steps below."""

    @classmethod
    def setUpClass(cls):
        cls.sim = Devsim(COUNT)
        try:
            cls.drv = Driver("--threads", "8", "--epoch", str(EPOCH), "--node", "n1",
                             "--timeout-ms", "2000", "--confirm-timeout", "30",
                             "--backoff-min", "200", "--backoff-max", "1000",
                             "--deadline-ms", "3000")
        except Exception:
            cls.sim.stop()
            raise
        cls.drv.cmd("range dev %d 127.0.0.1 %d %s %s" % (COUNT, cls.sim.base_port, USER, PASSWORD))
        cls.base_fds = cls.drv.cmd("stats")["stats"]["fds"]

    @classmethod
    def tearDownClass(cls):
        cls.drv.stop()
        cls.sim.stop()

    def ok(self, res):
        self.assertEqual(res["rv"], 0, "%s %s: %s" % (res["device"], res["op"], res["error"]))
        return res

    def test_1_onboard_all(self):
        t0 = time.monotonic()
        results = self.drv.run_all("onboard")
        elapsed = time.monotonic() - t0
        serials = {line.split()[0]: line.split()[2] for line in self.sim.command("devices")}
        for res in results:
            self.ok(res)
            self.assertEqual(res["facts"]["serial"], serials[res["device"]])
            self.assertEqual(res["facts"]["model"], "ucpe-s")
            self.assertTrue(res["fingerprint"].startswith("SHA256:"))
            self.assertEqual(res["config"]["cairn-cpe-system:system"]["hostname"], res["device"])
        self.assertEqual(len({r["fingerprint"] for r in results}), COUNT)
        stats = self.drv.cmd("stats")["stats"]
        self.assertEqual(stats["sessions"], COUNT)
        self.assertEqual(stats["workers"], 8)
        self.assertLessEqual(stats["threads"], 8 + 2)  # workers, main, nothing per device
        st = self.drv.cmd("status dev0")["status"]
        self.assertEqual(st["reach"], "reachable")
        self.assertGreater(st["last_seen_ms"], 0)
        print("onboarded %d devices in %.2f s, %d threads, RSS %d kB"
              % (COUNT, elapsed, stats["threads"], stats["rss_kb"]), file=sys.stderr)

    def test_1b_host_key_pinning(self):
        fp = self.drv.cmd("status dev1")["status"]["fingerprint"]
        port = self.sim.base_port + 1
        self.drv.cmd("device pinned-ok 127.0.0.1 %d %s %s %s" % (port, USER, PASSWORD, fp))
        self.ok(self.drv.run("pinned-ok", "onboard"))
        wrong = "SHA256:" + "A" * 43
        self.drv.cmd("device pinned-bad 127.0.0.1 %d %s %s %s" % (port, USER, PASSWORD, wrong))
        res = self.drv.run("pinned-bad", "onboard")
        self.assertNotEqual(res["rv"], 0)
        self.assertEqual(res["step"], "connect")
        self.assertIn("host key mismatch", res["error"])
        self.assertIn(fp, res["error"])
        self.assertEqual(res["attempts"], 1)  # no retry can fix a wrong key
        self.drv.cmd("device badpass 127.0.0.1 %d %s wrong" % (port, USER))
        res = self.drv.run("badpass", "onboard")
        self.assertIn("authentication", res["error"])

    def test_2_push_firewall_to_all(self):
        for dev in ("dev0", "dev1"):
            self.sim.command("log-clear " + dev)
        results = self.drv.run_all("push", FW)
        for res in results:
            self.ok(res)
            self.assertTrue(res["changed"])
            self.assertIn("policy[name='web']/action = permit", res["diff"])

        # Every device's running config, read by an independent client.
        def check(index):
            with self.sim.connect(index) as m:
                data = m.get_config("running", filter=(
                    "subtree", '<security xmlns="%s"/>' % SEC_NS)).data_xml
            return index, data

        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            for index, data in pool.map(check, range(COUNT)):
                self.assertIn("<name>web</name>", data, "dev%d" % index)
                self.assertIn("<destination-port>443</destination-port>", data)
                self.assertIn("<name>deny-in</name>", data)
                self.assertIn("<interface>lan0</interface>", data)

        # Every edit carried the epoch, and the commit that applied it is
        # recorded with it; the confirming commit applies no edit (the
        # simulator records it without an epoch).
        for i in range(COUNT):
            dev = "dev%d" % i
            writes = [(op, ds, epoch) for _, _, op, ds, epoch in self.sim.log(dev)]
            self.assertEqual(writes[-4:], [
                ("discard-changes", "candidate", None), ("edit-config", "candidate", EPOCH),
                ("confirmed-commit", "running", EPOCH), ("commit", "running", None)], dev)
            self.assertTrue(clean(self.sim, dev), dev)

        # In sync now: a dry run finds nothing, a second push sends nothing.
        for res in self.drv.run_all("dry-run", FW):
            self.ok(res)
            self.assertFalse(res["changed"], res["diff"])
        writes = len(self.sim.log("dev0"))
        self.assertFalse(self.ok(self.drv.run("dev0", "push", FW))["changed"])
        self.assertEqual(len(self.sim.log("dev0")), writes)

    def test_3_fault_refuse(self):
        port = self.sim.base_port + 3
        self.sim.command("fault dev3 refuse")
        self.drv.cmd("device dev3-new 127.0.0.1 %d %s %s" % (port, USER, PASSWORD))
        # An onboarding makes one attempt (its submitter retries it).
        res = self.drv.run("dev3-new", "onboard")
        self.assertNotEqual(res["rv"], 0)
        self.assertEqual(res["step"], "connect")
        self.assertIn("refused", res["error"])
        self.assertEqual(res["attempts"], 1)
        # Other jobs back off, 200 ms doubling to 1 s within a 3 s deadline.
        res = self.drv.run("dev3-new", "check-drift")
        self.assertNotEqual(res["rv"], 0)
        self.assertEqual(res["step"], "connect")
        self.assertIn("refused", res["error"])
        self.assertGreaterEqual(res["attempts"], 3)
        self.assertLessEqual(res["attempts"], 8)
        st = self.drv.cmd("status dev3-new")["status"]
        self.assertEqual(st["reach"], "unreachable")
        self.assertGreaterEqual(st["failures"], 4)
        self.assertGreater(st["next_attempt_ms"], 0)
        self.sim.command("clear dev3")
        self.ok(self.drv.run("dev3-new", "onboard"))
        self.assertEqual(self.drv.cmd("status dev3-new")["status"]["reach"], "reachable")

    def test_4_fault_drop_mid_rpc(self):
        # One session lost mid-job: the job runs again on a new session.
        self.sim.command("fault dev4 drop 1")
        before = self.drv.cmd("status dev4")["status"]
        res = self.drv.run("dev4", "dry-run", FW2)
        self.ok(res)
        self.assertEqual(res["attempts"], 1)  # one connect: the rerun's
        self.assertEqual(before["reach"], "reachable")
        self.assertIn("session lost", self.drv.cmd("status dev4")["status"]["last_error"])
        # Every session lost: one rerun, whose reconnects fail until the
        # job's deadline; the job fails.
        self.sim.command("fault dev4 drop")
        res = self.drv.run("dev4", "push", FW2)
        self.sim.command("clear dev4")
        self.assertNotEqual(res["rv"], 0)
        self.assertGreaterEqual(res["attempts"], 1)
        self.assertEqual(self.drv.cmd("status dev4")["status"]["reach"], "unreachable")
        until(lambda: clean(self.sim, "dev4"), 10, "dev4 clean after the drop")
        self.assertNotIn("<name>dns</name>", "\n".join(self.sim.command("config dev4")))
        # The next job reconnects and succeeds.
        self.ok(self.drv.run("dev4", "push", FW2))
        self.assertIn("<name>dns</name>", "\n".join(self.sim.command("config dev4")))
        self.assertTrue(clean(self.sim, "dev4"))
        # Released (another node owns it now): its session is closed; the
        # next job opens a new one.
        sessions = self.drv.cmd("stats")["stats"]["sessions"]
        self.assertEqual(self.drv.cmd("release dev4"), {"ok": True})
        until(lambda: self.drv.cmd("stats")["stats"]["sessions"] == sessions - 1, 10,
              "dev4's session closed")
        res = self.drv.run("dev4", "check-drift")
        self.ok(res)
        self.assertEqual(res["attempts"], 1)
        with self.assertRaisesRegex(RuntimeError, "not found"):
            self.drv.cmd("release nosuch")

    def test_5_fault_slow_and_timeout(self):
        self.sim.command("fault dev5 slow 200")
        t0 = time.monotonic()
        slow = self.drv.cmd("submit dev5 push " + FW2)["first_seq"]
        # Nothing blocks the caller, and other devices go on meanwhile.
        st = self.drv.cmd("status dev5")["status"]
        self.assertTrue(st["busy"] or st["queued"] == 1)
        self.assertLess(time.monotonic() - t0, 0.5)
        quick = self.drv.cmd("submit dev10 dry-run " + FW)["first_seq"]
        self.ok(self.drv.wait(quick, 1, 30)[0])
        self.assertNotIn(slow, self.drv.results)
        self.ok(self.drv.wait(slow, 1, 30)[0])
        self.assertGreaterEqual(time.monotonic() - t0, 7 * 0.2)  # seven RPCs
        # Slower than the manager's 2 s RPC timeout: the job fails, the
        # session is dropped, the device is left clean.
        self.sim.command("fault dev5 slow 3000")
        res = self.drv.run("dev5", "push", FW)
        self.assertNotEqual(res["rv"], 0)
        self.assertIn("no reply within 2000 ms", res["error"])
        self.sim.command("clear dev5")
        until(lambda: clean(self.sim, "dev5"), 15, "dev5 clean after the timeout")
        self.ok(self.drv.run("dev5", "push", FW))

    def test_6_fault_reject_commit(self):
        self.sim.command("log-clear dev6")
        self.sim.command("fault dev6 reject-commit")
        res = self.drv.run("dev6", "push", FW2)
        self.assertNotEqual(res["rv"], 0)
        self.assertEqual(res["step"], "confirmed commit")
        self.assertTrue(res["rolled_back"])
        self.assertIn("commit rejected (injected fault)", res["error"])
        self.assertTrue(clean(self.sim, "dev6"))
        self.assertNotIn("<name>dns</name>", "\n".join(self.sim.command("config dev6")))
        ops = [op for _, _, op, _, _ in self.sim.log("dev6")]
        self.assertEqual(ops, ["discard-changes", "edit-config", "discard-changes"])
        self.assertEqual(self.drv.cmd("status dev6")["status"]["reach"], "reachable")
        self.sim.command("clear dev6")
        self.ok(self.drv.run("dev6", "push", FW2))

    def test_6b_invalid_config_never_reaches_device(self):
        bad = services(dict(FW_PARAMS, zones=[{"name": "trust", "interfaces": ["eth9"]},
                                              {"name": "untrust"}]))
        writes = len(self.sim.log("dev7"))
        res = self.drv.run("dev7", "push", bad)
        self.assertNotEqual(res["rv"], 0)
        self.assertEqual(res["step"], "validate")
        self.assertIn("eth9", res["error"])
        self.assertEqual(len(self.sim.log("dev7")), writes)
        clash = json.dumps({"services": [
            {"id": "a", "type": "firewall-policy", "parameters": FW_PARAMS},
            {"id": "b", "type": "firewall-policy", "parameters": FW2_PARAMS | {
                "rules": [dict(FW_PARAMS["rules"][0], action="deny")]}}]})
        res = self.drv.run("dev7", "push", clash)
        self.assertEqual(res["step"], "render")
        self.assertIn("services a and b", res["error"])
        self.assertEqual(len(self.sim.log("dev7")), writes)

    def test_6c_ownership_lost_mid_push(self):
        """The fence is asked again before each step that writes: a push
        whose device moved to another owner while it read the device (or
        while its confirmed commit was on the way) writes nothing more, and
        leaves the device as it was."""
        def lose_ownership_during(rpc):
            self.sim.command("log-clear dev11")
            self.sim.command("fault dev11 slow 1200 " + rpc)
            seq = self.drv.cmd("submit dev11 push " + FW2)["first_seq"]
            try:
                until(lambda: dev_status(self.sim, "dev11")["busy"] == rpc, 10,
                      "dev11 answering %s slowly" % rpc)
                self.drv.cmd("fence dev11 off")
                res = self.drv.wait(seq, 1, 30)[0]
            finally:
                self.drv.cmd("fence dev11 on")
                self.sim.command("clear dev11")
            self.assertNotEqual(res["rv"], 0, res)
            self.assertIn("no longer owns the device in epoch %d" % EPOCH, res["error"])
            self.assertTrue(clean(self.sim, "dev11"), dev_status(self.sim, "dev11"))
            self.assertNotIn("<name>dns</name>", "\n".join(self.sim.command("config dev11")))
            return res, [op for _, _, op, _, _ in self.sim.log("dev11")]

        self.ok(self.drv.run("dev11", "onboard"))  # its base config (when run alone)
        # Lost while reading running: not even a lock is taken.
        res, ops = lose_ownership_during("get-config")
        self.assertEqual(res["step"], "lock candidate")
        self.assertEqual(ops, [])
        # Lost while the confirmed commit ran: no confirming commit; the
        # commit is cancelled (rolled back) under our lock.
        res, ops = lose_ownership_during("commit")
        self.assertEqual(res["step"], "confirming commit")
        self.assertTrue(res["rolled_back"])
        self.assertEqual(ops[:3], ["discard-changes", "edit-config", "confirmed-commit"])
        self.assertNotIn("commit", ops[3:])
        # Owned again: the same push goes through.
        self.assertTrue(self.ok(self.drv.run("dev11", "push", FW2))["changed"])

    def test_6d_owner_dies_mid_commit(self):
        """The controller process dies (SIGKILL) while its confirmed commit
        is on the device: the device rolls the commit back when the session
        closes, releases the lock and drops the candidate, so the job that
        was mid-commit ends in a known state on the device, which a new
        owner then configures."""
        before = "\n".join(self.sim.command("config dev12"))
        other = Driver("--threads", "1", "--epoch", str(EPOCH), "--timeout-ms", "5000")
        try:
            other.cmd("device dev12 127.0.0.1 %d %s %s" % (self.sim.base_port + 12, USER,
                                                            PASSWORD))
            self.ok(other.run("dev12", "onboard"))
            self.sim.command("fault dev12 slow 1500 commit")
            other.cmd("submit dev12 push " + FW2)
            until(lambda: dev_status(self.sim, "dev12")["busy"] == "commit", 10,
                  "dev12's confirmed commit in flight")
        finally:
            other.proc.kill()
            other.proc.wait()
            self.sim.command("clear dev12")
        until(lambda: clean(self.sim, "dev12"), 15, "dev12 clean after its owner died")
        ops = [op for _, _, op, _, _ in self.sim.log("dev12")]
        self.assertEqual(ops[-2:], ["confirmed-commit", "rollback"], ops)
        self.assertEqual("\n".join(self.sim.command("config dev12")), before)
        self.ok(self.drv.run("dev12", "onboard"))  # the new owner re-reads the device
        self.assertTrue(self.ok(self.drv.run("dev12", "push", FW2))["changed"])

    def test_7_drift_detected_and_reconciled(self):
        self.ok(self.drv.run("dev8", "check-drift"))
        self.sim.command("drift dev8")
        res = self.ok(self.drv.run("dev8", "check-drift"))
        self.assertTrue(res["changed"])
        self.assertIn("/cairn-cpe-system:system/location", res["diff"])
        res = self.ok(self.drv.run("dev8", "push", FW))  # reconcile
        self.assertTrue(res["changed"])
        self.assertFalse(self.ok(self.drv.run("dev8", "check-drift"))["changed"])
        self.assertNotIn("<location>", "\n".join(self.sim.command("config dev8")))

    def test_8_sync_from_adopts(self):
        self.sim.command("drift dev9")
        res = self.ok(self.drv.run("dev9", "sync-from"))
        self.assertTrue(res["config"]["cairn-cpe-system:system"]["location"].startswith("drift-"))
        self.assertFalse(self.ok(self.drv.run("dev9", "check-drift"))["changed"])
        # The adopted config is the new base: a push keeps it.
        self.assertFalse(self.ok(self.drv.run("dev9", "push", FW))["changed"])

    def test_9_no_half_applied_candidate(self):
        for i in range(COUNT):
            self.assertTrue(clean(self.sim, "dev%d" % i), "dev%d" % i)
        stats = self.drv.cmd("stats")["stats"]
        self.assertLessEqual(stats["threads"], 8 + 2)
        # One descriptor per open session, none left by failed connects.
        self.assertLessEqual(stats["fds"], self.base_fds + stats["sessions"], stats)


def measure(count):
    """Onboards `count` devices; prints time, threads and RSS."""
    sim = Devsim(count)
    drv = None
    try:
        drv = Driver("--threads", os.environ.get("SB_THREADS", "8"), "--timeout-ms", "30000",
                     "--deadline-ms", "120000")
        drv.cmd("range dev %d 127.0.0.1 %d %s %s" % (count, sim.base_port, USER, PASSWORD))
        t0 = time.monotonic()
        results = drv.run_all("onboard", timeout=600)
        elapsed = time.monotonic() - t0
        failed = [r for r in results if r["rv"]]
        stats = drv.cmd("stats")["stats"]
        t1 = time.monotonic()
        drift = drv.run_all("check-drift", timeout=600)
        sweep = time.monotonic() - t1
        print("devices=%d onboarded=%d failed=%d onboard_s=%.2f rate=%.0f/s threads=%d "
              "workers=%d sessions=%d rss_kb=%d drift_sweep_s=%.2f"
              % (count, count - len(failed), len(failed), elapsed, count / elapsed,
                 stats["threads"], stats["workers"], stats["sessions"], stats["rss_kb"], sweep))
        for r in failed[:5]:
            print("failed:", r["device"], r["error"])
        return 1 if failed or any(r["rv"] for r in drift) else 0
    finally:
        if drv:
            drv.stop()
        sim.stop()


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "measure":
        sys.exit(measure(int(sys.argv[2])))
    unittest.main(argv=sys.argv[:1] + sys.argv[1:], verbosity=2)
