#!/usr/bin/env python3
"""Sites, devices, service templates, services and jobs on a real 3-node
cluster, each written through one node and read through the others:

- sites and devices: create, read, list with filters and pages, replace
  with If-Match, delete; names unique per tenant; a device's password is
  never answered and survives a replace that omits it; a device needs a
  live site; quotas hold, also against 12 concurrent creates through the
  three nodes; a tenant with sites needs ?cascade=true;
- templates: drafts change, published ones neither change nor go; tenant
  users see only the published templates offered to them;
- services: parameters checked against the template (defaults filled in),
  targets must be the tenant's devices and sites (a site's job has a task
  for each of its devices), every write answers 202 with the
  Location of a queued job; an Idempotency-Key retry finds the same service
  and the same job, also after the leader was killed; jobs are cancelled;
- isolation: a tenant administrator probing every route with another
  tenant's ids (an import into it included) gets the answer of a missing
  object, lists only its own, and changes nothing in the catalog.
"""

import concurrent.futures
import os
import sys
import threading
import uuid

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import assert_problem, unique_name, wait_for  # noqa: E402

PASSWORD = "a-long-enough-password"
MISSING = "deadbeef-0000-4000-8000-00000000abcd"


class ResourcesTest(harness.ClusterTestCase):
    NAME = "resources"

    @property
    def c(self):
        return self.cluster

    # Helpers

    def post(self, node, path, body, status=201, **kw):
        r = self.c.request(node, "POST", path, body=body, **kw)
        self.assertEqual(r.status, status, r)
        return r

    def tenant(self, **fields):
        return self.c.must_create_tenant(1, unique_name("t"), **fields)["id"]

    def site(self, tenant, node=1, name=None, **kw):
        body = {"tenant_id": tenant, "name": name or unique_name("s"), "role": "spoke"}
        return self.post(node, "/api/v1/sites", body, **kw).json

    def device(self, site, node=1, serial=None, **kw):
        body = {"site_id": site, "serial": serial or uuid.uuid4().hex[:12].upper(),
                "family": "srx", "management": {"host": "192.0.2.1"},
                "credentials": {"username": "root", "password": "device-secret"}}
        return self.post(node, "/api/v1/devices", body, **kw).json

    def template(self, publish=True, public=True, **fields):
        body = {"name": unique_name("fw"), "version": "1.0.0", "type": "firewall-policy",
                "public": public,
                "parameters": {"policy": {"type": "string", "required": True,
                                          "enum": ["strict", "open"]},
                               "port": {"type": "port", "default": 443}}}
        body.update(fields)
        t = self.post(1, "/api/v1/templates", body).json
        if publish:
            r = self.c.request(2, "POST", "/api/v1/templates/%s/publish" % t["id"])
            self.assertEqual(r.status, 200, r)
            t = r.json
        return t

    def user_token(self, role, tenant):
        name = unique_name("u")
        body = {"username": name, "password": PASSWORD, "role": role, "tenant_id": tenant}
        self.post(1, "/api/v1/users", body)
        return self.c.must_login(1, name, PASSWORD)

    def get(self, node, path, status=200, **kw):
        r = self.c.get(node, path, **kw)
        self.assertEqual(r.status, status, r)
        return r

    # Sites and devices

    def test_site_lifecycle_through_every_node(self):
        t = self.tenant()
        s = self.site(t, node=2, name="paris", **{})
        self.assertEqual(s["tenant_id"], t)
        for node in (1, 2, 3):
            self.assertEqual(self.get(node, "/api/v1/sites/" + s["id"]).json["name"], "paris")
        # Unique per tenant, not across tenants.
        r = self.c.request(3, "POST", "/api/v1/sites",
                           body={"tenant_id": t, "name": "paris", "role": "hub"})
        assert_problem(self, r, 409)
        other = self.tenant()
        self.site(other, name="paris")
        # Replace with a stale If-Match: 412; with the current: 200.
        body = {"name": "paris", "role": "hub", "wan_links": [
            {"name": "wan0", "type": "internet", "subnet": "198.51.100.0/24"}]}
        r = self.c.request(1, "PUT", "/api/v1/sites/" + s["id"], body=body,
                           headers={"If-Match": '"1"'})
        assert_problem(self, r, 412)
        r = self.c.request(1, "PUT", "/api/v1/sites/" + s["id"], body=body,
                           headers={"If-Match": '"%d"' % s["mod_revision"]})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["role"], "hub")
        self.assertEqual(r.json["wan_links"][0]["subnet"], "198.51.100.0/24")
        # The tenant is fixed.
        body["tenant_id"] = other
        r = self.c.request(2, "PUT", "/api/v1/sites/" + s["id"], body=body)
        assert_problem(self, r, 422, field="tenant_id")
        # Duplicate WAN link names.
        r = self.c.request(2, "POST", "/api/v1/sites", body={
            "tenant_id": t, "name": "lyon", "role": "hub",
            "wan_links": [{"name": "a", "type": "lte"}, {"name": "a", "type": "mpls"}]})
        assert_problem(self, r, 422, field="wan_links[1].name")
        # Filters and pages.
        for i in range(5):
            self.site(t, name="branch-%d" % i)
        ids, cursor = [], None
        for _ in range(10):
            q = "/api/v1/sites?tenant_id=%s&role=spoke&limit=2" % t
            if cursor:
                q += "&cursor=" + cursor
            page = self.get(3, q).json
            self.assertLessEqual(len(page["items"]), 2)
            ids += [i["id"] for i in page["items"]]
            self.assertTrue(all(i["role"] == "spoke" for i in page["items"]))
            cursor = page["next_cursor"]
            if not cursor:
                break
        self.assertEqual(len(ids), 5)
        self.assertEqual(ids, sorted(ids))
        r = self.c.request(1, "DELETE", "/api/v1/sites/" + s["id"])
        self.assertEqual(r.status, 204, r)
        self.get(2, "/api/v1/sites/" + s["id"], status=404)

    def test_device_secret_parent_and_quota(self):
        t = self.tenant(quotas={"devices": 2})
        s = self.site(t)
        d = self.device(s["id"], node=3, serial="CRN0001")
        self.assertEqual(d["tenant_id"], t)
        self.assertEqual(d["management"]["port"], 830)
        self.assertRegex(d["activation_code"], r"^[A-Z2-9]{5}(-[A-Z2-9]{5}){3}$")
        self.assertEqual(d["status"]["state"], "new")
        self.assertNotIn("password", d["credentials"])
        got = self.get(2, "/api/v1/devices/" + d["id"])
        self.assertNotIn(b"device-secret", got.body)
        # Its owner: one live node, the same on every node of one epoch.
        def owners():
            seen = {self.get(k, "/api/v1/devices/" + d["id"]).json["owner"] for k in (1, 2, 3)}
            return seen if len(seen) == 1 and None not in seen else None
        self.assertIn(wait_for(owners, 30, "one owner on every node").pop(), (1, 2, 3))
        self.assertEqual(got.header("etag"), '"%d"' % d["mod_revision"])
        # A replace keeps the activation code and the write-only password.
        r = self.c.request(1, "PUT", "/api/v1/devices/" + d["id"], body={
            "site_id": s["id"], "serial": "CRN0001", "family": "nfx",
            "credentials": {"username": "admin"}})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["activation_code"], d["activation_code"])
        self.assertEqual(r.json["family"], "nfx")
        self.assertNotIn(b"device-secret", r.body)
        # Serial unique in the tenant; a missing site; the quota.
        r = self.c.request(2, "POST", "/api/v1/devices", body={
            "site_id": s["id"], "serial": "CRN0001", "family": "srx"})
        assert_problem(self, r, 409)
        r = self.c.request(2, "POST", "/api/v1/devices", body={
            "site_id": MISSING, "serial": "CRN0009", "family": "srx"})
        assert_problem(self, r, 422, field="site_id")
        self.device(s["id"], serial="CRN0002")
        r = self.c.request(3, "POST", "/api/v1/devices", body={
            "site_id": s["id"], "serial": "CRN0003", "family": "srx"})
        assert_problem(self, r, 409)
        listed = self.get(1, "/api/v1/devices?site_id=%s" % s["id"]).json["items"]
        self.assertEqual(sorted(x["serial"] for x in listed), ["CRN0001", "CRN0002"])
        self.assertEqual(len(self.get(1, "/api/v1/devices?serial=CRN0002&tenant_id=" + t)
                             .json["items"]), 1)
        # A site with devices goes only with cascade; so does its tenant.
        r = self.c.request(1, "DELETE", "/api/v1/sites/" + s["id"])
        assert_problem(self, r, 409)
        r = self.c.request(1, "DELETE", "/api/v1/tenants/" + t)
        assert_problem(self, r, 409)
        r = self.c.request(2, "DELETE", "/api/v1/tenants/%s?cascade=true" % t)
        self.assertEqual(r.status, 204, r)
        for node in (1, 2, 3):
            self.get(node, "/api/v1/devices/" + d["id"], status=404)
            self.get(node, "/api/v1/sites/" + s["id"], status=404)

    # Templates

    def test_template_publish_and_immutability(self):
        t = self.template(publish=False)
        self.assertEqual(t["state"], "draft")
        body = {"name": t["name"], "version": "1.0.0", "type": "nat", "parameters": {}}
        r = self.c.request(3, "PUT", "/api/v1/templates/" + t["id"], body=body)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["type"], "nat")
        r = self.c.request(1, "POST", "/api/v1/templates/%s/publish" % t["id"])
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["state"], "published")
        self.assertIn("published_at", r.json)
        r = self.c.request(2, "PUT", "/api/v1/templates/" + t["id"], body=body)
        assert_problem(self, r, 409)
        r = self.c.request(2, "DELETE", "/api/v1/templates/" + t["id"])
        assert_problem(self, r, 409)
        r = self.c.request(2, "POST", "/api/v1/templates/%s/publish" % t["id"])
        assert_problem(self, r, 409)
        # name@version is unique; a new version is a new template.
        r = self.c.request(1, "POST", "/api/v1/templates", body=body)
        assert_problem(self, r, 409)
        body["version"] = "1.1.0"
        self.post(1, "/api/v1/templates", body)
        # A draft goes.
        d = self.template(publish=False)
        self.assertEqual(self.c.request(3, "DELETE", "/api/v1/templates/" + d["id"]).status, 204)
        # A bad parameter schema names the field.
        r = self.c.request(1, "POST", "/api/v1/templates", body={
            "name": unique_name("x"), "version": "1.0.0", "type": "vnf",
            "parameters": {"cpu": {"type": "float"}}})
        assert_problem(self, r, 422, field="parameters.cpu.type")
        r = self.c.request(1, "POST", "/api/v1/templates", body={
            "name": unique_name("x"), "version": "1.0.0", "type": "vnf",
            "parameters": {"cpu": {"type": "integer", "default": "two"}}})
        assert_problem(self, r, 422, field="parameters.cpu")

    def test_template_offer_to_tenants(self):
        t = self.tenant()
        token = self.user_token("tenant_admin", t)
        public = self.template()
        private = self.template(public=False)
        draft = self.template(publish=False)
        seen = {i["id"] for i in self.get(2, "/api/v1/templates?limit=1000", token=token)
                .json["items"]}
        self.assertIn(public["id"], seen)
        self.assertNotIn(private["id"], seen)
        self.assertNotIn(draft["id"], seen)
        self.get(3, "/api/v1/templates/" + private["id"], status=404, token=token)
        self.get(3, "/api/v1/templates/" + draft["id"], status=404, token=token)
        r = self.c.request(1, "POST", "/api/v1/templates", token=token, body={
            "name": unique_name("x"), "version": "1.0.0", "type": "nat"})
        assert_problem(self, r, 403)
        # Offered by the tenant's allowed_templates.
        tenant = self.get(1, "/api/v1/tenants/" + t).json
        r = self.c.request(1, "PUT", "/api/v1/tenants/" + t, body={
            "name": tenant["name"], "allowed_templates": [private["id"]]})
        self.assertEqual(r.status, 200, r)
        self.get(2, "/api/v1/templates/" + private["id"], token=token)

    # Services and jobs

    def service_body(self, tenant, template, devices, **fields):
        body = {"tenant_id": tenant, "name": unique_name("svc"), "template_id": template,
                "parameters": {"policy": "strict"}, "targets": {"device_ids": devices}}
        body.update(fields)
        return body

    def test_service_jobs(self):
        t = self.tenant()
        s = self.site(t)
        devices = [self.device(s["id"])["id"] for _ in range(3)]
        tmpl = self.template()
        r = self.post(2, "/api/v1/services", self.service_body(t, tmpl["id"], devices), 202)
        svc = r.json
        self.assertEqual(svc["parameters"], {"policy": "strict", "port": 443})
        self.assertEqual(svc["generation"], 1)
        self.assertEqual(svc["type"], "firewall-policy")
        location = r.header("location")
        self.assertEqual(location, "/api/v1/jobs/" + svc["job_id"])
        for node in (1, 2, 3):
            job = self.get(node, location).json
            self.assertIn(job["state"], ("queued", "running"))
            self.assertEqual(job["type"], "service-deploy")
            self.assertEqual(job["target"], {"kind": "service", "id": svc["id"]})
            self.assertEqual(job["progress"], {"done": 0, "total": 3})
            self.assertEqual(sorted(x["device_id"] for x in job["tasks"]), sorted(devices))
            self.assertEqual(job["tenant_id"], t)
        # Cancel: once. The devices (192.0.2.x) never answer, so the job is
        # queued or waiting for them; it ends cancelled either way.
        r = self.c.request(3, "POST", location + "/cancel")
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.json["state"] == "cancelled" or r.json["cancel_requested"], r.json)
        job = self.wait_job(1, location, timeout=30)
        self.assertEqual(job["state"], "cancelled")
        self.assertTrue(all(x["state"] == "cancelled" for x in job["tasks"]))
        assert_problem(self, self.c.request(1, "POST", location + "/cancel"), 409)
        # A replace is a new generation and a new job.
        body = self.service_body(t, tmpl["id"], devices[:1], name=svc["name"],
                                 parameters={"policy": "open", "port": 8443})
        r = self.c.request(1, "PUT", "/api/v1/services/" + svc["id"], body=body)
        self.assertEqual(r.status, 202, r)
        self.assertEqual(r.json["generation"], 2)
        self.assertNotEqual(r.json["job_id"], svc["job_id"])
        self.assertEqual(r.json["previous_targets"], {"device_ids": devices})
        self.assertEqual(r.json["targets"], {"device_ids": devices[:1]})
        # Its job also goes to the two devices it no longer targets, which
        # lose its config.
        job = self.get(2, r.header("location")).json
        self.assertEqual(job["progress"]["total"], 3)
        self.assertEqual(sorted(x["device_id"] for x in job["tasks"]), sorted(devices))
        # Delete: a job, and the service says so.
        r = self.c.request(3, "DELETE", "/api/v1/services/" + svc["id"])
        self.assertEqual(r.status, 202, r)
        self.assertEqual(r.json["desired_state"], "deleted")
        self.assertEqual(self.get(1, r.header("location")).json["type"], "service-delete")
        assert_problem(self, self.c.request(3, "DELETE", "/api/v1/services/" + svc["id"]), 409)
        jobs = self.get(1, "/api/v1/jobs?tenant_id=%s&type=service-deploy" % t).json["items"]
        self.assertEqual(len(jobs), 2)

    def test_service_validation(self):
        t = self.tenant()
        other = self.tenant()
        s = self.site(t)
        d = self.device(s["id"])["id"]
        foreign_site = self.site(other)["id"]
        foreign = self.device(foreign_site)["id"]
        tmpl = self.template()
        cases = [
            ({"parameters": {}}, 400, "parameters.policy"),
            ({"parameters": {"policy": "loose"}}, 422, "parameters.policy"),
            ({"parameters": {"policy": "open", "port": 0}}, 422, "parameters.port"),
            ({"parameters": {"policy": "open", "x": 1}}, 400, "parameters.x"),
            ({"targets": {"device_ids": [d, foreign]}}, 422, "targets.device_ids[1]"),
            ({"targets": {"device_ids": [d], "site_ids": [MISSING]}}, 422,
             "targets.site_ids[0]"),
            ({"targets": {"site_ids": [s["id"], foreign_site]}}, 422, "targets.site_ids[1]"),
            ({"targets": {"site_ids": [d]}}, 422, "targets.site_ids[0]"),
            ({"targets": {"site_ids": [s["id"], s["id"]]}}, 422, "targets.site_ids[1]"),
            ({"targets": {"site_ids": ["hq"]}}, 422, "targets.site_ids[0]"),
            ({"template_id": MISSING}, 422, "template_id"),
            ({"template_id": self.template(publish=False)["id"]}, 422, "template_id"),
        ]
        for fields, status, field in cases:
            r = self.c.request(3, "POST", "/api/v1/services",
                               body=self.service_body(t, tmpl["id"], [d], **fields))
            assert_problem(self, r, status, field=field, msg=str(fields))
        # Nothing half-written: no service, no job.
        self.assertEqual(self.get(1, "/api/v1/services?tenant_id=" + t).json["items"], [])
        self.assertEqual(self.get(1, "/api/v1/jobs?tenant_id=" + t).json["items"], [])
        # A site stands for its devices: the job has a task for each, once.
        d2 = self.device(s["id"])["id"]
        body = self.service_body(t, tmpl["id"], [d], targets={"site_ids": [s["id"]],
                                                              "device_ids": [d]})
        r = self.post(2, "/api/v1/services", body, 202)
        self.assertEqual(r.json["targets"], {"site_ids": [s["id"]], "device_ids": [d]})
        job = self.get(3, r.header("location")).json
        self.assertEqual(sorted(x["device_id"] for x in job["tasks"]), sorted([d, d2]))

    def test_service_exactly_once_across_leader_kill(self):
        t = self.tenant()
        d = self.device(self.site(t)["id"])["id"]
        tmpl = self.template()
        body = self.service_body(t, tmpl["id"], [d])
        key = str(uuid.uuid4())
        leader = self.c.leader()
        follower = self.c.followers(leader)[0]
        first = self.post(follower, "/api/v1/services", body, 202,
                          headers={"Idempotency-Key": key})
        self.c.kill(leader)
        try:
            survivor = [k for k in self.c.live_nodes() if k != follower][0]

            def retry():
                r = self.c.request(survivor, "POST", "/api/v1/services", body=body,
                                   headers={"Idempotency-Key": key})
                return r if r.status == 202 else None
            again = wait_for(retry, 30, "the retried create to be answered")
            self.assertEqual(again.json["id"], first.json["id"])
            self.assertEqual(again.header("location"), first.header("location"))
            self.assertEqual(again.header("idempotent-replayed"), "true")
            jobs = self.get(survivor, "/api/v1/jobs?tenant_id=" + t).json["items"]
            self.assertEqual(len(jobs), 1)
            services = self.get(survivor, "/api/v1/services?tenant_id=" + t).json["items"]
            self.assertEqual(len(services), 1)
        finally:
            self.c.start(leader)
            self.c.wait_ready()

    # Bulk import

    def import_body(self, tenant, n_sites, n_devices):
        return {"tenant_id": tenant,
                "sites": [{"name": "site-%d" % i, "role": "spoke"} for i in range(n_sites)],
                "devices": [{"site": "site-%d" % (i % n_sites), "serial": "SN%06d" % i,
                             "family": "srx"} for i in range(n_devices)]}

    def wait_job(self, node, location, timeout=120):
        def ended():
            job = self.get(node, location).json
            return job if job["state"] in ("succeeded", "failed", "cancelled") else None
        return wait_for(ended, timeout, "job %s to end" % location)

    def count_devices(self, tenant, node=1):
        n, cursor = 0, None
        for _ in range(100):
            q = "/api/v1/devices?limit=1000&tenant_id=" + tenant
            page = self.get(node, q + ("&cursor=" + cursor if cursor else "")).json
            n += len(page["items"])
            cursor = page["next_cursor"]
            if not cursor:
                return n
        raise AssertionError("too many pages")

    def test_import(self):
        t = self.tenant(quotas={"devices": 4})
        r = self.post(3, "/api/v1/imports", self.import_body(t, 2, 6), 202)
        self.assertEqual(r.json["type"], "import")
        job = self.wait_job(2, r.header("location"))
        self.assertEqual(job["state"], "failed", job)
        self.assertEqual(job["progress"], {"done": 8, "total": 8})
        states = [x["state"] for x in job["tasks"]]
        self.assertEqual(states, ["succeeded"] * 6 + ["failed"] * 2)
        self.assertIn("quota", job["tasks"][7]["message"])
        self.assertEqual(job["tasks"][2]["item"], "devices[0]")
        d = self.get(1, "/api/v1/devices/" + job["tasks"][2]["object_id"]).json
        self.assertEqual(d["serial"], "SN000000")
        self.assertEqual(self.count_devices(t), 4)
        # Bad input of any kind: refused whole, nothing written.
        other = self.tenant()
        for body, status, field in [
                ({"tenant_id": other, "devices": [{"site": "nowhere", "serial": "A",
                                                   "family": "srx"}]}, 422, "devices[0].site"),
                ({"tenant_id": other, "sites": [{"name": "a", "role": "hub"},
                                                {"name": "a", "role": "hub"}]}, 422,
                 "sites[1].name"),
                ({"tenant_id": other, "sites": [{"name": "a", "role": "core"}]}, 422,
                 "sites[0].role"),
                ({"tenant_id": other, "sites": "a"}, 400, "sites"),
                ({"tenant_id": other}, 422, "sites"),
                ({"tenant_id": MISSING, "sites": [{"name": "a", "role": "hub"}]}, 422,
                 "tenant_id")]:
            r = self.c.request(1, "POST", "/api/v1/imports", body=body)
            assert_problem(self, r, status, field=field, msg=str(body))
        self.assertEqual(self.get(1, "/api/v1/jobs?tenant_id=" + other).json["items"], [])
        self.assertEqual(self.get(1, "/api/v1/sites?tenant_id=" + other).json["items"], [])

    def test_import_cancel(self):
        t = self.tenant()
        r = self.post(1, "/api/v1/imports", self.import_body(t, 10, 3000), 202)
        location = r.header("location")
        c = self.c.request(2, "POST", location + "/cancel")
        job = self.wait_job(3, location)
        if c.status == 409:
            self.assertEqual(job["state"], "succeeded")  # it ended before the cancel
        else:
            self.assertEqual(c.status, 200, c)
            self.assertEqual(job["state"], "cancelled", job)
        done = sum(1 for x in job["tasks"] if x["state"] == "succeeded" and
                   x["item"].startswith("devices"))
        self.assertEqual(self.count_devices(t), done)

    def test_import_resumes_after_leader_kill(self):
        t = self.tenant()
        leader = self.c.leader()
        follower = self.c.followers(leader)[0]
        r = self.post(follower, "/api/v1/imports", self.import_body(t, 5, 1500), 202)
        location = r.header("location")
        wait_for(lambda: self.get(follower, location).json["progress"]["done"] > 0, 60,
                 "the import to make progress")
        self.c.kill(leader)
        try:
            job = self.wait_job(follower, location)
            self.assertEqual(job["state"], "succeeded", job["message"])
            self.assertEqual(self.count_devices(t, follower), 1500)
        finally:
            self.c.start(leader)
            self.c.wait_ready()

    # Isolation

    def test_quota_holds_under_concurrent_creates(self):
        """The quota is checked in the state machine: 12 creates sent at
        once through all three nodes to a tenant with room for 5 sites get
        exactly 5 201s; the others are refused with 409 naming the quota,
        and exactly 5 sites exist."""
        t = self.tenant(quotas={"sites": 5})
        barrier = threading.Barrier(12)

        def create(i):
            barrier.wait(timeout=30)
            return self.c.request(1 + i % 3, "POST", "/api/v1/sites",
                                  body={"tenant_id": t, "name": "q%d" % i, "role": "spoke"})

        with concurrent.futures.ThreadPoolExecutor(12) as pool:
            answers = list(pool.map(create, range(12)))
        created = [r for r in answers if r.status == 201]
        refused = [r for r in answers if r.status != 201]
        self.assertEqual(len(created), 5, answers)
        for r in refused:
            assert_problem(self, r, 409)
            self.assertIn("quota", r.json["detail"], r.json)
        listed = self.get(2, "/api/v1/sites?limit=100&tenant_id=" + t).json["items"]
        self.assertEqual(sorted(x["id"] for x in listed), sorted(r.json["id"] for r in created))

    def test_tenant_isolation_on_every_route(self):
        a = self.tenant()
        b = self.tenant()
        sa = self.site(a)
        da = self.device(sa["id"])
        tmpl = self.template()
        va = self.post(1, "/api/v1/services", self.service_body(a, tmpl["id"], [da["id"]]),
                       202).json
        token = self.user_token("tenant_admin", b)
        objects = {"sites": sa["id"], "devices": da["id"], "services": va["id"],
                   "jobs": va["job_id"]}
        for coll, oid in objects.items():
            path = "/api/v1/%s/%s" % (coll, oid)
            for node in (1, 2, 3):
                for method in ("GET", "PUT", "DELETE"):
                    r = self.c.request(node, method, path, token=token, body={} if method ==
                                       "PUT" else None)
                    if r.status == 405:
                        continue
                    missing = self.c.request(node, method, "/api/v1/%s/%s" % (coll, MISSING),
                                             token=token,
                                             body={} if method == "PUT" else None)
                    self.assertIn(r.status, (400, 404), (method, path, r))
                    self.assertEqual(r.status, missing.status, (method, path, r, missing))
                    if r.status == 404:
                        self.assertEqual(r.json["detail"].replace(oid, "X"),
                                         missing.json["detail"].replace(MISSING, "X"))
            listed = self.get(2, "/api/v1/%s?limit=1000" % coll, token=token).json["items"]
            self.assertNotIn(oid, [i["id"] for i in listed])
            listed = self.get(3, "/api/v1/%s?tenant_id=%s" % (coll, a), token=token)
            self.assertEqual(listed.json["items"], [])
        r = self.c.request(1, "POST", "/api/v1/jobs/%s/cancel" % va["job_id"], token=token)
        assert_problem(self, r, 404)
        # Creating under another tenant's site, or in another tenant: as missing.
        r = self.c.request(2, "POST", "/api/v1/devices", token=token,
                           body={"site_id": sa["id"], "serial": "X1", "family": "srx"})
        assert_problem(self, r, 422, field="site_id")
        self.assertIn("no site with id", r.json["detail"])
        r = self.c.request(2, "POST", "/api/v1/sites", token=token,
                           body={"tenant_id": a, "name": "x", "role": "hub"})
        assert_problem(self, r, 422, field="tenant_id")
        # An import into another tenant: answered as for a tenant that
        # does not exist.
        imp = {"sites": [{"name": "x", "role": "hub"}], "devices": []}
        r = self.c.request(1, "POST", "/api/v1/imports", token=token, body=dict(imp, tenant_id=a))
        missing = self.c.request(1, "POST", "/api/v1/imports", token=token,
                                 body=dict(imp, tenant_id=MISSING))
        self.assertIn(r.status, (404, 422), r)
        self.assertEqual(r.status, missing.status, (r, missing))
        self.assertEqual(r.json["detail"].replace(a, "X"),
                         missing.json["detail"].replace(MISSING, "X"))
        # The catalog is the provider's: a tenant administrator changes none of it.
        valid = {k: tmpl[k] for k in ("name", "version", "type", "public", "parameters")}
        for method, path, body in (("PUT", "/api/v1/templates/" + tmpl["id"], valid),
                                   ("DELETE", "/api/v1/templates/" + tmpl["id"], None),
                                   ("POST", "/api/v1/templates/%s/publish" % tmpl["id"], None),
                                   ("POST", "/api/v1/templates", dict(valid, name="mine"))):
            r = self.c.request(2, method, path, token=token, body=body)
            self.assertIn(r.status, (403, 404), (method, path, r))
        self.assertEqual(self.get(1, "/api/v1/templates/" + tmpl["id"]).json["mod_revision"],
                         tmpl["mod_revision"])
        # Its own objects work without naming its tenant.
        own = self.post(3, "/api/v1/sites", {"name": "own", "role": "hub"}, token=token).json
        self.assertEqual(own["tenant_id"], b)
        # A tenant operator reads and cancels but does not create.
        op = self.user_token("tenant_operator", a)
        self.get(1, "/api/v1/sites/" + sa["id"], token=op)
        r = self.c.request(1, "POST", "/api/v1/sites", token=op, body={"name": "y", "role": "hub"})
        assert_problem(self, r, 403)
        r = self.c.request(1, "POST", "/api/v1/jobs/%s/cancel" % va["job_id"], token=op)
        self.assertEqual(r.status, 200, r)


if __name__ == "__main__":
    harness.run()
