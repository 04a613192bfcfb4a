#!/usr/bin/env python3
"""Zero-touch onboarding by NETCONF call home (RFC 8071) on a 3-node
cluster, every node listening for call home (tools/localcluster
--call-home).

- Device records are created with a serial number and a port only (no
  address, no credentials); cairn-devsim serves the devices, each with its
  record's activation code, calling home to all three nodes (each device
  lists them in another order, so every node's listener binds some).
- Every device is bound (activation code consumed, host key pinned,
  address recorded, status.zero_touch) and onboarded by its owner, also
  when another node took the call; a service deploy then reaches them all.
- A device with a wrong activation code, and one whose serial has no
  record, are refused: nothing is written to any record, the refusals are
  counted in /metrics; devices guessing codes for one serial from one
  address get throttled.
- A second device replaying a consumed code (same serial, another host
  key) is refused and the bound record is left as it was.
"""

import os
import re
import sys
import tempfile
import unittest

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "devsim"))
import harness  # noqa: E402
from harness import Cluster, lc, unique_name, wait_for  # noqa: E402
from test_devsim import DevsimProcess, free_ports  # noqa: E402

N_GOOD = 12
N_FLOOD = 3
SETTINGS = {
    "liveness_heartbeat_ms": "100",
    "ownership_lease_ms": "1000",
    "liveness_down_ms": "2000",
    "drift_interval_s": "0",
    "confirm_timeout_s": "30",
}
WRONG_CODE = "AAAAA-BBBBB-CCCCC-DDDDD"


class CallhomeSim(DevsimProcess):
    """A cairn-devsim serving the devices of a device list file."""

    def __init__(self, directory, name, lines):
        self.control_port = free_ports(1)
        path = os.path.join(directory, name + ".txt")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        self._start(["--devices", path, "--key-dir", os.path.join(directory, name + "-keys")])

    def callhome_sessions(self, dev):
        return int(re.search(r"call-home-sessions=(\d+)", self.command("status " + dev)[0])
                   .group(1))


class CallhomeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sims = []
        cls.c = Cluster(3, settings=SETTINGS, name="callhome", call_home=True)
        cls.c.__enter__()
        cls.failed = False
        cluster = lc.load(cls.c.dir)
        cls.listeners = lc.callhome_addresses(cluster)
        cls.zt_user = cluster["settings"]["callhome_username"]
        cls.zt_password = cluster["settings"]["callhome_password"]
        cls.tmp = tempfile.mkdtemp(prefix="devsim-", dir=cls.c.dir)

    @classmethod
    def tearDownClass(cls):
        statuses = []
        try:
            statuses = [sim.stop() for sim in cls.sims]
        finally:
            cls.c.__exit__(AssertionError if cls.failed else None, None, None)
        # A clean exit (under ASan: no leak report) with call-home sessions open.
        if any(status != 0 for status in statuses):
            raise AssertionError("cairn-devsim exit statuses %s (expected 0)" % statuses)

    def run(self, result=None):
        result = super().run(result)
        if result is not None and (result.failures or result.errors):
            type(self).failed = True
        return result

    def req(self, method, path, node=1, status=None, **kw):
        r = self.c.request(node, method, path, **kw)
        if status is not None:
            self.assertEqual(r.status, status, r)
        return r

    def device(self, dev_id):
        return self.req("GET", "/api/v1/devices/" + dev_id, status=200).json

    def counters(self, name):
        return sum(self.c.metrics(node, name)[0] for node in (1, 2, 3))

    def line(self, name, port, serial, code, rotate=0):
        order = self.listeners[rotate % 3:] + self.listeners[:rotate % 3]
        return "%s %d %s ucpe-s %s %s activation-code=%s call-home=%s" % (
            name, port, serial, self.zt_user, self.zt_password, code, ",".join(order))

    def start_sim(self, name, lines):
        sim = CallhomeSim(self.tmp, name, lines)
        type(self).sims.append(sim)
        return sim

    # The tests run in name order: a_ binds, the others build on it.

    def test_a_bind_and_onboard(self):
        t = self.c.must_create_tenant(1, unique_name("zt"))
        site = self.req("POST", "/api/v1/sites", status=201, body={
            "tenant_id": t["id"], "name": "hq", "role": "hub"}).json
        base = free_ports(N_GOOD + 2)
        records, lines = [], []
        for i in range(N_GOOD + 1):
            serial = "ZT%06d" % i
            r = self.req("POST", "/api/v1/devices", node=1 + i % 3, status=201, body={
                "site_id": site["id"], "serial": serial, "family": "ucpe",
                "management": {"port": base + i}}).json
            self.assertRegex(r["activation_code"], r"^[A-Z2-9]{5}(-[A-Z2-9]{5}){3}$")
            self.assertNotIn("host", r["management"])
            records.append(r)
            code = r["activation_code"] if i < N_GOOD else WRONG_CODE
            lines.append(self.line("dev%d" % i, base + i, serial, code, rotate=i))
        # A device no record knows.
        lines.append(self.line("ghost", base + N_GOOD + 1, "ZTGHOST", WRONG_CODE))
        # Three more devices guessing codes for the bad device's serial,
        # all calling node 1 first: the throttle stops reading their calls.
        flood = free_ports(N_FLOOD)
        for i in range(N_FLOOD):
            lines.append(self.line("flood%d" % i, flood + i, "ZT%06d" % N_GOOD,
                                   "AAAAA-BBBBB-CCCCC-DDDD%d" % i))
        good, bad = records[:N_GOOD], records[N_GOOD]
        type(self).good, type(self).bad = good, bad
        sim = self.start_sim("first", lines)
        type(self).sim = sim

        seen = []

        def onboarded():
            ds = [self.device(r["id"]) for r in good]
            seen[:] = ["%s %s %s" % (d["serial"], d["status"].get("state"),
                                     d["status"].get("last_error", "")) for d in ds
                       if d["status"].get("state") != "onboarded"]
            return ds if not seen else None
        try:
            ds = wait_for(onboarded, 60, "every device that called home onboarded",
                          interval=0.5)
        except harness.Timeout:
            raise AssertionError("not onboarded: %s" % "; ".join(seen)) from None
        keys = set()
        binders_not_owner = 0
        for rec, d in zip(good, ds):
            self.assertNotIn("activation_code", d)
            self.assertTrue(d["host_key"].startswith("SHA256:"), d)
            keys.add(d["host_key"])
            self.assertEqual(d["management"], {"host": "127.0.0.1", "port": rec["management"]
                                               ["port"]})
            self.assertEqual(d["credentials"]["username"], self.zt_user)
            self.assertNotIn("password", d["credentials"])
            self.assertEqual(d["status"]["facts"]["serial"], d["serial"])
            self.assertTrue(d["status"]["reachable"])
            zt = d["status"]["zero_touch"]
            self.assertEqual(zt["peer"], "127.0.0.1")
            self.assertIn(zt["node"], (1, 2, 3))
            binders_not_owner += zt["node"] != d["owner"]
        self.assertEqual(len(keys), N_GOOD, "one pinned host key per device")
        # The owner manages devices another node bound.
        self.assertGreater(binders_not_owner, 0)
        self.assertEqual(self.counters("cairn_callhome_bound_total"), N_GOOD)

    def test_b_wrong_code_refused(self):
        # The refused devices have called home, refusals were counted, the
        # guessing ones got throttled; the bad record is untouched.
        wait_for(lambda: self.sim.callhome_sessions("dev%d" % N_GOOD) >= 1
                 and self.sim.callhome_sessions("ghost") >= 1
                 and self.counters("cairn_callhome_refused_total") >= 2 + N_FLOOD
                 and self.counters("cairn_callhome_throttled_total") >= 1,
                 30, "the bad and unknown devices refused, the guessing ones throttled")
        d = self.device(self.bad["id"])
        self.assertEqual(d["mod_revision"], self.bad["mod_revision"])
        self.assertEqual(d["activation_code"], self.bad["activation_code"])
        self.assertNotIn("host_key", d)
        self.assertEqual(d["status"]["state"], "new")
        self.assertNotIn("zero_touch", d["status"])
        ghosts = self.req("GET", "/api/v1/devices?serial=ZTGHOST", status=200).json
        self.assertEqual(ghosts["items"], [])

    def test_c_deploy_reaches_bound_devices(self):
        tmpl = self.req("POST", "/api/v1/templates", status=201, body={
            "name": unique_name("fw"), "version": "1.0.0", "type": "firewall-policy",
            "public": True, "parameters": {"zones": {"type": "list"},
                                           "rules": {"type": "list", "required": True}}}).json
        self.req("POST", "/api/v1/templates/%s/publish" % tmpl["id"], status=200)
        tenant = self.good[0]["tenant_id"]
        body = {"tenant_id": tenant, "name": "zt-web", "template_id": tmpl["id"],
                "parameters": {"zones": [{"name": "trust", "interfaces": []},
                                         {"name": "untrust", "interfaces": []}],
                               "rules": [{"name": "zt-web", "from_zone": "trust",
                                          "to_zone": "untrust", "protocol": "tcp",
                                          "port": 443, "action": "permit"}]},
                "targets": {"device_ids": [r["id"] for r in self.good]}}
        location = self.req("POST", "/api/v1/services", status=202, body=body).header(
            "location")

        def ended():
            job = self.req("GET", location, status=200).json
            return job if job["state"] in ("succeeded", "failed", "cancelled") else None
        job = wait_for(ended, 60, "the deploy job to end", interval=0.2)
        self.assertEqual(job["state"], "succeeded", job.get("message"))
        for i in range(N_GOOD):
            cfg = "\n".join(self.sim.command("config dev%d running" % i))
            self.assertIn("<name>zt-web</name>", cfg, "dev%d" % i)

    def test_d_replayed_code_refused(self):
        victim = self.device(self.good[0]["id"])
        refused = self.counters("cairn_callhome_refused_total")
        port = free_ports(1)
        # Same serial, the consumed code, another host key (another key dir).
        sim = self.start_sim("replay", [self.line("replay", port, victim["serial"],
                                                  self.good[0]["activation_code"])])
        wait_for(lambda: sim.callhome_sessions("replay") >= 1
                 and self.counters("cairn_callhome_refused_total") > refused,
                 30, "the replayed code refused")
        after = self.device(victim["id"])
        for key in ("host_key", "management", "credentials"):
            self.assertEqual(after[key], victim[key])
        self.assertEqual(after["status"]["zero_touch"], victim["status"]["zero_touch"])
        self.assertNotIn("activation_code", after)


if __name__ == "__main__":
    harness.run()
