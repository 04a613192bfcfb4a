#!/usr/bin/env python3
"""Device management end to end: a 3-node cluster and one cairn-devsim
serving 200 simulated CPEs.

- Onboarding: 200 devices bulk-imported are onboarded by their owners
  (spread over the three nodes): facts recorded, host key pinned.
- Deployment: a firewall-policy service to every device: the job succeeds,
  and every device's running config (read from the simulator's control
  socket, and for a sample with Debian's python3-ncclient) holds the
  policy; every accepted write carried the ownership epoch.
- Faults: a device that rejects the commit fails its task (the job says
  which device and why) and is left with no lock, no pending commit and a
  clean candidate; a device that drops every session fails its task; the
  job fails, counting them.
- Drift: a change behind the controller's back is reported (status.drift,
  alarm) and, under the "reconcile" policy, undone.
- Handoff: a deployment started right before the SIGKILL of a node
  completes (the survivors own, reconnect and finish its devices); when the
  node comes back, its devices move back to it, and the survivors close
  their sessions to them (cairn_device_sessions).
- A zombie owner: a SIGSTOPped owner's devices are taken over and
  deployed; after SIGCONT, the simulator's epoch records show that no
  write of the stale owner was accepted after the new owners' first.
- Site targets: a service to one site reaches exactly that site's devices;
  a device added to the site later gets it once it is onboarded, with no
  operator action (status.last_push says why); also when its owner is
  SIGKILLed between its onboarding and that push (the new owner pushes).
"""

import os
import sys

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "devsim"))
import harness  # noqa: E402
from devsim_cluster import FAST_OWNERSHIP, DevsimClusterTest  # noqa: E402
from harness import unique_name, wait_for  # noqa: E402
from test_devsim import PASSWORD, USER  # noqa: E402

N_DEVICES = 300
SPARE = 4  # simulated devices not imported by test_a: test_g and test_h add them to a site
SETTINGS = dict(FAST_OWNERSHIP, drift_interval_s="1", confirm_timeout_s="30")
POLICY_PARAMS = {"zones": [{"name": "trust", "interfaces": []},
                           {"name": "untrust", "interfaces": []}]}


def rules(name, port):
    return [{"name": name, "from_zone": "trust", "to_zone": "untrust", "protocol": "tcp",
             "port": port, "action": "permit"}]


class DevicesTest(DevsimClusterTest):
    N_DEVICES = N_DEVICES + SPARE  # the simulator's count
    SETTINGS = SETTINGS
    NAME = "devices"
    JOB_TIMEOUT_S = 120

    # Helpers

    def devices(self, node=None):
        out, cursor = [], None
        for _ in range(100):
            q = "/api/v1/devices?limit=1000&tenant_id=" + self.tenant
            page = self.req("GET", q + ("&cursor=" + cursor if cursor else ""), node, 200).json
            out += page["items"]
            cursor = page["next_cursor"]
            if not cursor:
                return out
        raise AssertionError("too many pages")

    def running(self, dev):
        return "\n".join(self.sim.command("config %s running" % dev))

    def by_serial(self):
        return {d["serial"]: d for d in self.devices()}

    def service(self, name, devices, port, sites=None):
        targets = {"device_ids": devices}
        if sites:
            targets["site_ids"] = sites
        body = {"tenant_id": self.tenant, "name": name, "template_id": self.template,
                "parameters": dict(POLICY_PARAMS, rules=rules(name, port)),
                "targets": targets}
        r = self.req("POST", "/api/v1/services", body=body, status=202)
        return r.json, r.header("location")

    def replace_service(self, svc, devices, port, node=None):
        body = {"name": svc["name"], "template_id": self.template,
                "parameters": dict(POLICY_PARAMS, rules=rules(svc["name"], port)),
                "targets": {"device_ids": devices}}
        r = self.req("PUT", "/api/v1/services/" + svc["id"], node, body=body, status=202)
        return r.header("location")

    # The tests run in name order: a_ onboards, the others build on it.

    def test_a_onboard_all(self):
        t = self.c.must_create_tenant(1, unique_name("dev"))
        type(self).tenant = t["id"]
        body = {"tenant_id": t["id"], "sites": [{"name": "hq", "role": "hub"}],
                "devices": [{"site": "hq", "serial": "CRN%08d" % i, "family": "ucpe",
                             "management": {"host": "127.0.0.1",
                                            "port": self.sim.base_port + i},
                             "credentials": {"username": USER, "password": PASSWORD}}
                            for i in range(N_DEVICES)]}
        r = self.req("POST", "/api/v1/imports", 2, 202, body=body)
        self.assertEqual(self.wait_job(r.header("location"))["state"], "succeeded")

        def onboarded():
            ds = self.devices()
            return ds if all(d["status"].get("state") == "onboarded" for d in ds) else None
        ds = wait_for(onboarded, 120, "every device onboarded", interval=0.5)
        self.assertEqual(len(ds), N_DEVICES)
        owners = {d["owner"] for d in ds}
        self.assertEqual(owners, {1, 2, 3})
        for d in ds:
            self.assertTrue(d["status"]["reachable"])
            self.assertEqual(d["status"]["facts"]["serial"], d["serial"])
            self.assertTrue(d["status"]["last_seen"])
            self.assertNotIn("password", d["credentials"])
        # Templates: a firewall policy, published.
        tmpl = self.req("POST", "/api/v1/templates", status=201, body={
            "name": unique_name("fw"), "version": "1.0.0", "type": "firewall-policy",
            "public": True, "parameters": {"zones": {"type": "list"},
                                           "rules": {"type": "list", "required": True}}}).json
        self.req("POST", "/api/v1/templates/%s/publish" % tmpl["id"], status=200)
        type(self).template = tmpl["id"]

    def test_b_deploy_to_all(self):
        ds = self.devices()
        svc, location = self.service("web", [d["id"] for d in ds], 443)
        job = self.wait_job(location)
        self.assertEqual(job["state"], "succeeded", job.get("message"))
        self.assertEqual(job["progress"], {"done": N_DEVICES, "total": N_DEVICES})
        epoch = self.req("GET", "/api/v1/cluster/ownership", status=200).json["epoch"]
        for i in range(N_DEVICES):
            cfg = self.running("dev%d" % i)
            self.assertIn("<name>web</name>", cfg, "dev%d" % i)
            self.assertIn("<destination-port>443</destination-port>", cfg)
            edits = [row for row in self.sim.log("dev%d" % i) if row[2] == "edit-config"]
            self.assertTrue(edits, "dev%d got no edit" % i)
            self.assertTrue(all(row[4] is not None and 0 < row[4] <= epoch for row in edits),
                            edits)
        # An independent NETCONF client sees the same.
        for i in (0, N_DEVICES // 2, N_DEVICES - 1):
            with self.sim.connect(i) as m:
                xml = m.get_config("running").data_xml
                self.assertIn("<name>web</name>", xml)
        svc = self.req("GET", "/api/v1/services/" + svc["id"], status=200).json
        self.assertEqual(set(svc["realization"].values()), {"succeeded"})
        type(self).svc = svc

    def test_c_faults(self):
        ds = self.by_serial()
        reject, refuse = ds["CRN%08d" % 5], ds["CRN%08d" % 6]
        ok = ds["CRN%08d" % 7]
        self.sim.command("fault dev5 reject-commit")
        self.sim.command("fault dev6 drop")
        try:
            svc, location = self.service("faulty", [reject["id"], refuse["id"], ok["id"]], 8443)
            job = self.wait_job(location, timeout=180)
        finally:
            self.sim.command("clear dev5")
            self.sim.command("clear dev6")
        self.assertEqual(job["state"], "failed")
        self.assertIn("2 of 3", job["message"])
        tasks = {t["device_id"]: t for t in job["tasks"]}
        self.assertEqual(tasks[ok["id"]]["state"], "succeeded")
        self.assertEqual(tasks[reject["id"]]["state"], "failed")
        self.assertIn("commit", tasks[reject["id"]]["message"])
        self.assertEqual(tasks[refuse["id"]]["state"], "failed")
        # Nothing half-applied: no lock, no pending commit, candidate clean,
        # and the rejected policy is not running.
        status = dict(kv.split("=", 1) for kv in " ".join(self.sim.command("status dev5")).split())
        for key in ("lock-running", "lock-candidate", "candidate-dirty", "confirm-pending"):
            self.assertEqual(status[key], "0", status)
        self.assertNotIn("<name>faulty</name>", self.running("dev5"))
        self.assertIn("<name>faulty</name>", self.running("dev7"))
        d = self.req("GET", "/api/v1/devices/" + reject["id"], status=200).json
        self.assertIn("commit-failed", d["status"]["alarms"])

    def test_d_drift(self):
        ds = self.by_serial()
        watched, fixed = ds["CRN%08d" % 10], ds["CRN%08d" % 11]
        body = {k: fixed[k] for k in ("site_id", "serial", "family", "management")}
        body["credentials"] = {"username": USER}
        body["drift_policy"] = "reconcile"
        self.req("PUT", "/api/v1/devices/" + fixed["id"], status=200, body=body)
        self.sim.command("drift dev10")
        self.sim.command("drift dev11")

        def drifted():
            d = self.req("GET", "/api/v1/devices/" + watched["id"], status=200).json
            drift = d["status"].get("drift") or {}
            return d if drift.get("detected") else None
        d = wait_for(drifted, 60, "dev10's drift to be reported", interval=0.3)
        self.assertIn("drift", d["status"]["alarms"])
        self.assertIn("location", d["status"]["drift"]["diff"])
        # The reconcile policy puts the intended config back.
        wait_for(lambda: "drift-" not in self.running("dev11"), 60,
                 "dev11's drift to be undone", interval=0.3)
        self.assertIn("drift-", self.running("dev10"))

    def test_e_handoff(self):
        ds = self.devices()
        before = {d["id"]: d["owner"] for d in ds}
        leader = self.c.leader()
        victim = [k for k in (1, 2, 3) if k != leader][0]
        moved = [i for i, o in before.items() if o == victim]
        self.assertTrue(moved)
        survivor = [k for k in (1, 2, 3) if k not in (victim,)][0]
        location = self.replace_service(self.svc, [d["id"] for d in ds], 9443, node=survivor)
        self.c.kill(victim)
        try:
            job = self.wait_job(location, timeout=240)
            self.assertEqual(job["state"], "succeeded", job.get("message"))
            after = {d["id"]: d["owner"] for d in self.devices(survivor)}
            self.assertTrue(all(after[i] != victim for i in moved))
            for i in range(N_DEVICES):
                self.assertIn("<destination-port>9443</destination-port>",
                              self.running("dev%d" % i), "dev%d" % i)
        finally:
            self.c.start(victim)
            self.c.wait_ready()
        # Back: its devices move back to it.
        wait_for(lambda: all(d["owner"] == before[d["id"]] for d in self.devices(survivor)), 60,
                 "the devices to move back", interval=0.5)

        # The survivors close the sessions to the devices they gave back:
        # each node keeps sessions only to the devices it owns.
        def sessions_owned():
            own = self.req("GET", "/api/v1/cluster/ownership", status=200).json
            counts = {}
            for m in own["members"]:
                sessions = self.c.metrics(m["id"], "cairn_device_sessions")[0]
                counts[m["id"]] = (sessions, m["devices"])
            return counts if all(s <= d for s, d in counts.values()) else None
        wait_for(sessions_owned, 30, "sessions only to owned devices", interval=0.5)


    def test_f_zombie_owner(self):
        """SIGSTOP an owner while a deployment is about to start; the others
        take its devices over and deploy; after SIGCONT, no write of the
        stale owner is accepted after the new owners' first writes (the
        simulator's epoch records). The owner paused here has no push in
        flight; one that loses its device in the middle of a push is
        southbound.ManagerTest.test_6c_ownership_lost_mid_push."""
        leader = self.c.leader()
        zombie = [k for k in (1, 2, 3) if k != leader][0]
        ds = self.devices(leader)
        mine = {d["id"] for d in ds if d["owner"] == zombie}
        names = {d["id"]: "dev%d" % (int(d["serial"][3:])) for d in ds}
        self.assertTrue(mine)
        epoch0 = self.req("GET", "/api/v1/cluster/ownership", leader, 200).json["epoch"]
        harness.lc.pause(self.c.dir, zombie)
        try:
            def moved():
                own = self.req("GET", "/api/v1/cluster/ownership", leader, 200).json
                return own if own["epoch"] > epoch0 and zombie in own["down"] else None
            epoch1 = wait_for(moved, 30, "node %d committed down" % zombie)["epoch"]
            location = self.replace_service(self.svc, [d["id"] for d in ds], 10443, node=leader)
            job = self.wait_job(location, timeout=240, node=leader)
            self.assertEqual(job["state"], "succeeded", job.get("message"))
        finally:
            harness.lc.resume(self.c.dir, zombie)
        # Back and caught up: it owns its devices again, and may write.
        wait_for(lambda: all(d["owner"] == zombie for d in self.devices(leader)
                             if d["id"] in mine), 60, "the devices back on node %d" % zombie,
                 interval=0.5)
        for dev_id in mine:
            rows = [r for r in self.sim.log(names[dev_id]) if r[4] is not None]
            first_new = next(i for i, r in enumerate(rows) if r[4] >= epoch1)
            stale = [r for r in rows[first_new:] if r[4] < epoch1]
            self.assertEqual(stale, [], "%s accepted a stale write after epoch %d: %r"
                             % (names[dev_id], epoch1, rows))
            self.assertIn("<destination-port>10443</destination-port>",
                          self.running(names[dev_id]))

    def add_device(self, site, i):
        """Creates the device served by the simulator's dev<i>."""
        return self.req("POST", "/api/v1/devices", status=201, body={
            "site_id": site, "serial": "CRN%08d" % i, "family": "ucpe",
            "management": {"host": "127.0.0.1", "port": self.sim.base_port + i},
            "credentials": {"username": USER, "password": PASSWORD}}).json

    def settled(self):
        """Waits until every node is up and in the ownership (a test before
        may have ended with one paused or restarting)."""
        self.c.wait_ready()
        wait_for(lambda: not self.req("GET", "/api/v1/cluster/ownership", status=200)
                 .json["down"], 60, "no node down in the ownership", interval=0.3)

    def test_g_site_targets(self):
        self.settled()
        site = self.req("POST", "/api/v1/sites", status=201, body={
            "tenant_id": self.tenant, "name": unique_name("branch"), "role": "spoke"}).json
        first = [self.add_device(site["id"], N_DEVICES + k) for k in range(SPARE - 2)]
        ids = {d["id"] for d in first}
        type(self).branch = site["id"]

        def onboarded(dev_ids):
            def check():
                ds = [self.req("GET", "/api/v1/devices/" + i, status=200).json for i in dev_ids]
                return ds if all(d["status"].get("state") == "onboarded" for d in ds) else None
            return check
        wait_for(onboarded(ids), 60, "the branch devices onboarded", interval=0.3)
        svc, location = self.service("branch", [], 7443, sites=[site["id"]])
        self.assertEqual(svc["targets"]["site_ids"], [site["id"]])
        job = self.wait_job(location)
        self.assertEqual(job["state"], "succeeded", job.get("message"))
        self.assertEqual({t["device_id"] for t in job["tasks"]}, ids)
        for k in range(SPARE - 2):
            self.assertIn("<name>branch</name>", self.running("dev%d" % (N_DEVICES + k)))
        # Exactly that site: a sample of the others has not got it.
        for i in (0, 1, N_DEVICES // 2, N_DEVICES - 1):
            self.assertNotIn("<name>branch</name>", self.running("dev%d" % i))
        # A device added to the site later gets the site's services once
        # it is onboarded, with no operator action.
        late = N_DEVICES + SPARE - 2  # the last spare is test_h's
        dev = self.add_device(site["id"], late)
        wait_for(lambda: "<name>branch</name>" in self.running("dev%d" % late), 60,
                 "the late branch device to get the site's service", interval=0.3)

        def recorded():
            d = self.req("GET", "/api/v1/devices/" + dev["id"], status=200).json
            return d if d["status"].get("last_push") else None
        d = wait_for(recorded, 30, "the late device's push recorded", interval=0.3)
        self.assertEqual(d["status"]["last_push"]["trigger"], "first onboarding")
        self.assertEqual(d["status"]["last_push"]["state"], "succeeded")
        # A replace that targets one of the branch devices only: its job
        # also goes to the site's other devices, which lose the service's
        # config; the service is realized on the one it targets.
        keep = sorted(ids)[0]
        job = self.wait_job(self.replace_service(svc, [keep], 7443))
        self.assertEqual(job["state"], "succeeded", job.get("message"))
        self.assertEqual({t["device_id"] for t in job["tasks"]}, ids | {dev["id"]})
        names = {x["id"]: x["serial"] for x in first + [dev]}
        for dev_id, serial in names.items():
            running = self.running("dev%d" % int(serial[3:]))
            if dev_id == keep:
                self.assertIn("<name>branch</name>", running)
            else:
                self.assertNotIn("<name>branch</name>", running, serial)
        def realized():
            real = self.req("GET", "/api/v1/services/" + svc["id"], status=200).json["realization"]
            return real if list(real) == [keep] else None
        self.assertEqual(wait_for(realized, 30, "the realization on the one device"),
                         {keep: "succeeded"})

    def test_h_first_push_survives_owner_loss(self):
        """The owner of a device just onboarded dies before its push after
        onboarding is recorded: the new owner, finding in the record that
        nothing was pushed to it yet, pushes after its own onboarding."""
        self.settled()
        svc, location = self.service("branch2", [], 8443, sites=[self.branch])
        self.assertEqual(self.wait_job(location)["state"], "succeeded")
        late = N_DEVICES + SPARE - 1
        name = "dev%d" % late
        # Each get-config takes 2 s: the onboarding's, then the push's
        # (its first step, before any lock or write), during which the
        # owner is killed.
        self.sim.command("fault %s slow 2000 get-config" % name)
        dev = self.add_device(self.branch, late)

        def onboarded():
            d = self.req("GET", "/api/v1/devices/" + dev["id"], status=200).json
            return d if d["status"].get("state") == "onboarded" else None
        d = wait_for(onboarded, 60, "the late device onboarded", interval=0.1)
        owner = d["owner"]
        self.c.kill(owner)
        try:
            self.sim.command("clear " + name)
            d = wait_for(lambda: self.req("GET", "/api/v1/devices/" + dev["id"], status=200).json,
                         30, "the device read after the kill", interval=0.2)
            self.assertNotIn("last_push", d["status"], "the push ended before the kill")
            self.assertNotIn("<name>branch2</name>", self.running(name))

            def pushed():
                d = self.req("GET", "/api/v1/devices/" + dev["id"], status=200).json
                return d if d["status"].get("last_push") else None
            d = wait_for(pushed, 60, "the new owner's push recorded", interval=0.3)
            self.assertNotEqual(d["owner"], owner)
            self.assertEqual(d["status"]["last_push"]["trigger"], "first onboarding")
            self.assertEqual(d["status"]["last_push"]["state"], "succeeded",
                             d["status"]["last_push"].get("message"))
            self.assertIn("<name>branch2</name>", self.running(name))
        finally:
            self.c.start(owner)
            self.c.wait_ready()


if __name__ == "__main__":
    harness.run()
