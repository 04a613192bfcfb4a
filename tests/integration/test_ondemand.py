#!/usr/bin/env python3
"""On-demand device operations and the service dry run, end to end: a
3-node cluster and one cairn-devsim serving 20 simulated CPEs, with the
periodic drift check off (so every drift report here is the on-demand
check's).

- check-drift: a device changed behind the controller's back reports the
  diff (in the job's task and in the device's status.drift, with the drift
  alarm); a clean device reports none.
- sync-from: a change made on the device is adopted as its base config; a
  following deployment keeps it.
- Dry run: POST and PUT of a firewall-policy service with ?dry_run=true
  answer 202 with a job whose tasks carry each device's diff; afterwards
  the devices' running configs are unchanged and the simulator accepted no
  write, no service was created and the existing one kept its generation;
  an invalid dry run is refused like the real call.
- RBAC and errors: other tenants' devices are 404, a tenant operator may
  check drift but not dry-run a service create (403, as for the real
  create), an unknown device is 404, a device not onboarded is 409, an
  unmanaged one 409.
- cairnctl: `device check-drift`, `device sync-from` and `--dry-run` on
  service create and replace.
- Failover: a check-drift whose device answers slowly survives the SIGKILL
  of the device's owner: the new owner runs it.
"""

import json
import os
import subprocess
import sys
import uuid

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "devsim"))
import harness  # noqa: E402
from devsim_cluster import FAST_OWNERSHIP, DevsimClusterTest  # noqa: E402
from harness import assert_problem, unique_name, wait_for  # noqa: E402
from test_devsim import PASSWORD, USER  # noqa: E402

N_DEVICES = 20
SETTINGS = dict(FAST_OWNERSHIP, drift_interval_s="0", confirm_timeout_s="30")
ZONES = [{"name": "trust", "interfaces": []}, {"name": "untrust", "interfaces": []}]
USER_PASSWORD = "correct horse battery staple"
BIN_DIR = os.environ.get("CAIRN_BIN_DIR") or os.path.join(harness.REPO, "build", "bin")
CAIRNCTL = os.path.join(BIN_DIR, "cairnctl")


def policy(name, port):
    return {"zones": ZONES,
            "rules": [{"name": name, "from_zone": "trust", "to_zone": "untrust",
                       "protocol": "tcp", "port": port, "action": "permit"}]}


class OnDemandTest(DevsimClusterTest):
    N_DEVICES = N_DEVICES
    SETTINGS = SETTINGS
    NAME = "ondemand"
    JOB_TIMEOUT_S = 90

    # Helpers

    def running(self, i):
        return "\n".join(self.sim.command("config dev%d running" % i))

    def device(self, i):
        return self.req("GET", "/api/v1/devices/" + self.ids[i], status=200).json

    def operate(self, i, op, node=None, token=None):
        kw = {"token": token} if token else {}
        r = self.req("POST", "/api/v1/devices/%s/%s" % (self.ids[i], op), node, **kw)
        self.assertEqual(r.status, 202, r)
        self.assertEqual(r.json["type"], "device-" + op)
        self.assertEqual(r.json["target"], {"kind": "device", "id": self.ids[i]})
        return r.header("location")

    def service_body(self, name, port, devices):
        return {"tenant_id": self.tenant, "name": name, "template_id": self.template,
                "parameters": policy(name, port), "targets": {"device_ids": devices}}

    def make_user(self, role, tenant):
        name = unique_name("u")
        self.req("POST", "/api/v1/users", status=201,
                 body={"username": name, "password": USER_PASSWORD, "role": role,
                       "tenant_id": tenant} if tenant else
                 {"username": name, "password": USER_PASSWORD, "role": role})
        return self.c.must_login(1, name, USER_PASSWORD)

    # The tests run in name order: a_ onboards, the others build on it.

    def test_a_onboard_and_deploy(self):
        t = self.c.must_create_tenant(1, unique_name("od"))
        type(self).tenant = t["id"]
        body = {"tenant_id": t["id"], "sites": [{"name": "hq", "role": "hub"}],
                "devices": [{"site": "hq", "serial": "OND%08d" % i, "family": "ucpe",
                             "management": {"host": "127.0.0.1",
                                            "port": self.sim.base_port + i},
                             "credentials": {"username": USER, "password": PASSWORD}}
                            for i in range(N_DEVICES)]}
        r = self.req("POST", "/api/v1/imports", 2, 202, body=body)
        self.assertEqual(self.wait_job(r.header("location"))["state"], "succeeded")
        q = "/api/v1/devices?limit=1000&tenant_id=" + t["id"]

        def onboarded():
            ds = self.req("GET", q, status=200).json["items"]
            done = all(d["status"].get("state") == "onboarded" for d in ds)
            return ds if done and len(ds) == N_DEVICES else None
        ds = wait_for(onboarded, 90, "every device onboarded", interval=0.5)
        by_serial = {d["serial"]: d["id"] for d in ds}
        type(self).ids = [by_serial["OND%08d" % i] for i in range(N_DEVICES)]
        tmpl = self.req("POST", "/api/v1/templates", status=201, body={
            "name": unique_name("fw"), "version": "1.0.0", "type": "firewall-policy",
            "public": True, "parameters": {"zones": {"type": "list"},
                                           "rules": {"type": "list", "required": True}}}).json
        self.req("POST", "/api/v1/templates/%s/publish" % tmpl["id"], status=200)
        type(self).template = tmpl["id"]
        r = self.req("POST", "/api/v1/services", status=202,
                     body=self.service_body("base", 443, self.ids))
        job = self.wait_job(r.header("location"))
        self.assertEqual(job["state"], "succeeded", job.get("message"))
        type(self).base = r.json

    def test_b_check_drift(self):
        self.sim.command("drift dev3")
        drifted = self.wait_job(self.operate(3, "check-drift"))
        self.assertEqual(drifted["state"], "succeeded", drifted)
        task = drifted["tasks"][0]
        self.assertEqual(task["device_id"], self.ids[3])
        self.assertTrue(task["changed"], task)
        self.assertIn("location", task["diff"])
        self.assertEqual(task["message"], "drift detected")
        d = self.device(3)
        self.assertTrue(d["status"]["drift"]["detected"])
        self.assertIn("location", d["status"]["drift"]["diff"])
        self.assertIn("drift", d["status"]["alarms"])
        # A clean device: no drift, no alarm; asked on another node.
        clean = self.wait_job(self.operate(4, "check-drift", node=2), node=3)
        self.assertEqual(clean["state"], "succeeded", clean)
        self.assertFalse(clean["tasks"][0]["changed"])
        self.assertEqual(clean["tasks"][0]["diff"], "")
        self.assertNotIn("drift", self.device(4)["status"].get("alarms", []))

    def test_c_sync_from(self):
        self.sim.command("drift dev5")
        self.assertIn("drift-", self.running(5))
        job = self.wait_job(self.operate(5, "sync-from"))
        self.assertEqual(job["state"], "succeeded", job)
        self.assertIn("drift-", job["tasks"][0]["adopted"])
        d = self.device(5)
        self.assertNotIn("drift", d["status"].get("alarms", []))
        # The next deployment keeps what was adopted, and adds its own.
        r = self.req("PUT", "/api/v1/services/" + self.base["id"], status=202,
                     body={k: v for k, v in self.service_body("base", 8443, self.ids).items()
                           if k != "tenant_id"})
        job = self.wait_job(r.header("location"))
        self.assertEqual(job["state"], "succeeded", job.get("message"))
        cfg = self.running(5)
        self.assertIn("drift-", cfg)
        self.assertIn("<destination-port>8443</destination-port>", cfg)
        # Not drifted: running is what was intended.
        again = self.wait_job(self.operate(5, "check-drift"))
        self.assertFalse(again["tasks"][0]["changed"], again)
        # A device that was not synced lost its drift to the same deployment.
        self.assertNotIn("drift-", self.running(6))

    def test_d_dry_run(self):
        targets = list(range(8, 16))
        before = {i: self.running(i) for i in targets}
        writes = {i: len(self.sim.log("dev%d" % i)) for i in targets}
        name = unique_name("dry")
        r = self.req("POST", "/api/v1/services?dry_run=true", status=202,
                     body=self.service_body(name, 9000, [self.ids[i] for i in targets]))
        self.assertEqual(r.json["type"], "service-dry-run")
        self.assertTrue(r.json["dry_run"])
        self.assertTrue(r.header("location").startswith("/api/v1/jobs/"))
        job = self.wait_job(r.header("location"))
        self.assertEqual(job["state"], "succeeded", job)
        self.assertEqual(len(job["tasks"]), len(targets))
        for t in job["tasks"]:
            self.assertTrue(t["changed"], t)
            self.assertIn(name, t["diff"])
            self.assertIn("9000", t["diff"])
        # Nothing happened: no service, devices untouched.
        found = self.req("GET", "/api/v1/services?name=" + name, status=200).json["items"]
        self.assertEqual(found, [])
        for i in targets:
            self.assertEqual(self.running(i), before[i], "dev%d" % i)
            self.assertEqual(len(self.sim.log("dev%d" % i)), writes[i], "dev%d" % i)
            status = dict(kv.split("=", 1)
                          for kv in " ".join(self.sim.command("status dev%d" % i)).split())
            self.assertEqual(status["lock-candidate"], "0", status)
        # A replace: the diff of the change; the service keeps its generation.
        svc = self.req("GET", "/api/v1/services/" + self.base["id"], status=200).json
        body = {k: v for k, v in self.service_body("base", 9443, self.ids[:2]).items()
                if k != "tenant_id"}
        r = self.req("PUT", "/api/v1/services/%s?dry_run=true" % svc["id"], status=202, body=body)
        job = self.wait_job(r.header("location"))
        self.assertEqual(job["state"], "succeeded", job)
        tasks = {t["device_id"]: t for t in job["tasks"]}
        # Devices it would keep see the port change; one it would drop,
        # the policy's removal.
        self.assertEqual(len(tasks), N_DEVICES)
        self.assertIn("9443", tasks[self.ids[0]]["diff"])
        self.assertTrue(tasks[self.ids[19]]["changed"])
        self.assertTrue(tasks[self.ids[19]]["diff"].startswith("- "), tasks[self.ids[19]])
        self.assertIn("security", tasks[self.ids[19]]["diff"])
        after = self.req("GET", "/api/v1/services/" + svc["id"], status=200).json
        self.assertEqual(after["generation"], svc["generation"])
        self.assertEqual(after["mod_revision"], svc["mod_revision"])
        self.assertIn("<destination-port>8443</destination-port>", self.running(0))
        # Refused like the real call.
        bad = self.service_body(unique_name("dry"), 9000, [str(uuid.uuid4())])
        r = self.req("POST", "/api/v1/services?dry_run=true", body=bad)
        assert_problem(self, r, 422, "targets.device_ids[0]")
        r = self.req("POST", "/api/v1/services?dry_run=maybe", body=bad)
        assert_problem(self, r, 400, "dry_run")
        r = self.req("POST", "/api/v1/services?dry_run=true",
                     body=self.service_body("base", 1, self.ids[:1]))
        self.assertEqual(r.status, 409, r)

    def test_e_rbac_and_errors(self):
        other = self.c.must_create_tenant(1, unique_name("other"))
        stranger = self.make_user("tenant_admin", other["id"])
        operator = self.make_user("tenant_operator", self.tenant)
        sp_operator = self.make_user("sp_operator", None)
        path = "/api/v1/devices/%s/check-drift" % self.ids[7]
        r = self.req("POST", path, token=stranger)
        assert_problem(self, r, 404)
        r = self.req("POST", "/api/v1/devices/%s/sync-from" % self.ids[7], token=stranger)
        assert_problem(self, r, 404)
        for token in (operator, sp_operator):
            job = self.wait_job(self.operate(7, "check-drift", token=token))
            self.assertEqual(job["state"], "succeeded", job)
        # A dry run needs the right of the real write.
        body = self.service_body(unique_name("dry"), 9000, self.ids[:1])
        for token in (operator, sp_operator):
            r = self.req("POST", "/api/v1/services?dry_run=true", body=body, token=token)
            assert_problem(self, r, 403)
        r = self.req("POST", "/api/v1/services?dry_run=true", body=body, token=stranger)
        self.assertIn(r.status, (404, 422), r)
        r = self.req("POST", "/api/v1/devices/%s/check-drift" % uuid.uuid4())
        assert_problem(self, r, 404)
        # A retry with the same Idempotency-Key answers the same job.
        key = {"Idempotency-Key": str(uuid.uuid4())}
        first = self.req("POST", path, 1, 202, headers=key)
        again = self.req("POST", path, 3, 202, headers=key)
        self.assertEqual(first.json["id"], again.json["id"])
        self.assertEqual(again.header("idempotent-replayed"), "true")
        self.assertEqual(self.wait_job(first.header("location"))["state"], "succeeded")
        # A device nobody answers for is not onboarded; an unmanaged one is
        # not to be touched.
        site = self.device(0)["site_id"]
        dev = {"site_id": site, "serial": unique_name("X"), "family": "ucpe",
               "management": {"host": "127.0.0.1", "port": 9},
               "credentials": {"username": USER, "password": PASSWORD}}
        lost = self.req("POST", "/api/v1/devices", status=201, body=dev).json
        r = self.req("POST", "/api/v1/devices/%s/check-drift" % lost["id"])
        assert_problem(self, r, 409)
        self.assertIn("not onboarded", r.json["detail"])
        dev = dict(dev, serial=unique_name("X"), desired_state="unmanaged")
        idle = self.req("POST", "/api/v1/devices", status=201, body=dev).json
        r = self.req("POST", "/api/v1/devices/%s/sync-from" % idle["id"])
        assert_problem(self, r, 409, "desired_state")
        # Every accepted operation is in the audit log, by its caller.
        audit = self.req("GET", "/api/v1/audit?kind=job&limit=200", status=200).json["items"]
        self.assertTrue(any(a.get("user") == self.c.admin["username"] for a in audit), audit[:3])

    def cairnctl(self, *args, stdin=None):
        """Runs cairnctl as the administrator against every node."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")}
        endpoints = ",".join(self.c.url(n) for n in self.c.live_nodes())
        argv = [CAIRNCTL, "--endpoints", endpoints, "--token", self.c.token] + list(args)
        return subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=120,
                              env=env)

    def test_ea_cairnctl(self):
        self.sim.command("drift dev12")
        p = self.cairnctl("device", "check-drift", self.ids[12], "--wait", "-o", "json")
        self.assertEqual(p.returncode, 0, p.stderr)
        job = json.loads(p.stdout)
        self.assertEqual(job["type"], "device-check-drift")
        self.assertIn("location", job["tasks"][0]["diff"])
        p = self.cairnctl("device", "sync-from", self.ids[12], "--wait", "-o", "json")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("drift-", json.loads(p.stdout)["tasks"][0]["adopted"])
        # Onboarding an onboarded device reconnects and re-reads it (the
        # pinned host key still matches).
        before = self.device(12)
        p = self.cairnctl("device", "onboard", self.ids[12], "--wait", "-o", "json")
        self.assertEqual(p.returncode, 0, p.stderr)
        job = json.loads(p.stdout)
        self.assertEqual((job["type"], job["state"]), ("device-onboard", "succeeded"), job)
        self.assertEqual(job["tasks"][0]["message"], "onboarded", job)
        after = self.device(12)
        self.assertEqual(after["status"]["state"], "onboarded")
        self.assertEqual(after["host_key"], before["host_key"])
        # Without --wait: the job is named on stderr.
        p = self.cairnctl("device", "check-drift", self.ids[12])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("accepted: job", p.stderr)
        name = unique_name("ctl")
        body = json.dumps(self.service_body(name, 7000, self.ids[12:14]))
        before = self.running(13)
        p = self.cairnctl("service", "create", "-f", "-", "--dry-run", "--wait", "-o", "json",
                          stdin=body)
        self.assertEqual(p.returncode, 0, p.stderr)
        job = json.loads(p.stdout)
        self.assertEqual(job["type"], "service-dry-run")
        self.assertTrue(all("7000" in t["diff"] for t in job["tasks"]), job["tasks"])
        self.assertEqual(self.running(13), before)
        self.assertEqual(
            self.req("GET", "/api/v1/services?name=" + name, status=200).json["items"], [])
        p = self.cairnctl("service", "replace", self.base["id"], "-f", "-", "--dry-run", "--wait",
                          "-o", "json", stdin=json.dumps(
                              {k: v for k, v in self.service_body("base", 7443, self.ids).items()
                               if k != "tenant_id"}))
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("7443", json.loads(p.stdout)["tasks"][0]["diff"])
        # --dry-run is for services; an unknown device is the API's 404.
        p = self.cairnctl("tenant", "create", "-f", "-", "--dry-run", stdin="{}")
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("services only", p.stderr)
        p = self.cairnctl("device", "sync-from", str(uuid.uuid4()))
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("404", p.stderr)

    def test_f_owner_dies_mid_job(self):
        leader = self.c.leader()
        victims = [i for i in range(N_DEVICES)
                   if self.device(i)["owner"] not in (leader,)]
        i = victims[0]
        owner = self.device(i)["owner"]
        self.sim.command("drift dev%d" % i)
        self.sim.command("fault dev%d slow 3000" % i)
        epoch0 = self.req("GET", "/api/v1/cluster/ownership", leader, 200).json["epoch"]
        try:
            location = self.operate(i, "check-drift", node=leader)
            self.c.kill(owner)
            job = self.wait_job(location, timeout=120, node=leader)
        finally:
            self.sim.command("clear dev%d" % i)
        try:
            self.assertEqual(job["state"], "succeeded", job)
            self.assertTrue(job["tasks"][0]["changed"])
            self.assertIn("location", job["tasks"][0]["diff"])
            d = self.req("GET", "/api/v1/devices/" + self.ids[i], leader, 200).json
            self.assertNotEqual(d["owner"], owner)
            # Recorded by the new owner, under the epoch that moved the device.
            outcome = d["status"]["jobs"][job["id"]]
            self.assertEqual(outcome["state"], "succeeded")
            self.assertGreater(outcome["epoch"], epoch0, outcome)
        finally:
            self.c.start(owner)
            self.c.wait_ready()


if __name__ == "__main__":
    harness.run()
