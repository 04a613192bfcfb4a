#!/usr/bin/env python3
"""The audit log (GET /api/v1/audit) on a real 3-node cluster: writes
through every node and refused writes are recorded with user, tenant,
action, kind, object, status and revision, newest first; the filters
(user, tenant, kind, since, until) select exactly the matching records;
cursor paging walks every record once; only the SP roles may read it; bad
filters get 400."""

import os
import sys
import time
import unittest
import urllib.parse

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Cluster, assert_problem, run, unique_name  # noqa: E402

PASSWORD = "a-long-enough-password"
AUDIT = "/api/v1/audit"


def rfc3339(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


class AuditTest(unittest.TestCase):
    cluster = None

    @classmethod
    def setUpClass(cls):
        cls.cluster = Cluster(3, name="audit")
        cls.cluster.__enter__()

    @classmethod
    def tearDownClass(cls):
        failed = getattr(cls, "failed", False)
        cls.cluster.__exit__(AssertionError if failed else None, None, None)

    def run(self, result=None):
        result = super().run(result)
        if result is not None and (result.failures or result.errors):
            type(self).failed = True
        return result

    @property
    def c(self):
        return self.cluster

    def user(self, role, tenant_id=None):
        body = {"username": unique_name("u"), "password": PASSWORD, "role": role}
        if tenant_id:
            body["tenant_id"] = tenant_id
        r = self.c.request(1, "POST", "/api/v1/users", body=body)
        self.assertEqual(r.status, 201, r)
        return r.json, self.c.must_login(1, body["username"], PASSWORD)

    def audit(self, node=1, token=None, **params):
        query = urllib.parse.urlencode(params)
        kw = {"token": token} if token else {}
        r = self.c.request(node, "GET", AUDIT + ("?" + query if query else ""), **kw)
        self.assertEqual(r.status, 200, r)
        return r.json

    def all_pages(self, limit, **params):
        items, cursor = [], None
        for _ in range(1000):
            if cursor is not None:
                params["cursor"] = cursor
            page = self.audit(limit=limit, **params)
            self.assertLessEqual(len(page["items"]), limit)
            items.extend(page["items"])
            cursor = page["next_cursor"]
            if cursor is None:
                return items
        self.fail("paging did not end")

    def test_records_filters_and_paging(self):
        since = rfc3339(time.time() - 1)
        tenant = self.c.must_create_tenant(2, unique_name("au"))
        op_user, op_token = self.user("sp_operator")
        # A write through each node, and one refused (an SP operator may not
        # create tenants), and one the state machine refuses (a duplicate name).
        r = self.c.request(3, "PUT", "/api/v1/tenants/" + tenant["id"],
                           body={"name": tenant["name"], "description": "x"})
        self.assertEqual(r.status, 200, r)
        updated_rev = r.revision
        r = self.c.request(2, "POST", "/api/v1/tenants", body={"name": unique_name("no")},
                           token=op_token)
        self.assertEqual(r.status, 403, r)
        r = self.c.request(1, "POST", "/api/v1/tenants", body={"name": tenant["name"]})
        self.assertEqual(r.status, 409, r)
        until = rfc3339(time.time() + 2)

        # Newest first, with every field.
        page = self.audit(node=3, kind="tenant", tenant=tenant["id"])
        items = page["items"]
        self.assertGreaterEqual(page["revision"], updated_rev)
        seqs = [i["seq"] for i in items]
        self.assertEqual(seqs, sorted(seqs, reverse=True))
        actions = [(i["action"], i["status"]) for i in items]
        self.assertIn(("update", 200), actions)
        self.assertIn(("create", 201), actions)
        upd = [i for i in items if i["action"] == "update"][0]
        self.assertEqual(upd["user"], self.c.admin["username"])
        self.assertEqual(upd["tenant"], tenant["id"])
        self.assertEqual(upd["kind"], "tenant")
        self.assertEqual(upd["id"], tenant["id"])
        self.assertEqual(upd["revision"], updated_rev)
        self.assertEqual(upd["result"], "ok")
        self.assertRegex(upd["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")

        # The refusal, found by user.
        refused = self.audit(user=op_user["username"], kind="tenant")["items"]
        self.assertEqual(len(refused), 1, refused)
        self.assertEqual(refused[0]["action"], "refused")
        self.assertEqual(refused[0]["status"], 403)
        self.assertEqual(refused[0]["result"], "forbidden")
        self.assertIn("forbidden", refused[0]["message"])

        # The duplicate, refused in apply.
        dup = [i for i in self.audit(kind="tenant", since=since, until=until)["items"]
               if i["status"] == 409]
        self.assertEqual(len(dup), 1, dup)
        self.assertEqual(dup[0]["result"], "conflict")

        # Every filter holds for every record it returns.
        for params, check in (
                ({"user": op_user["username"]}, lambda i: i["user"] == op_user["username"]),
                ({"tenant": tenant["id"]}, lambda i: i["tenant"] == tenant["id"]),
                ({"kind": "user"}, lambda i: i["kind"] == "user"),
                ({"since": since, "until": until}, lambda i: since <= i["time"] <= until)):
            got = self.audit(**params)["items"]
            self.assertTrue(got, params)
            for i in got:
                self.assertTrue(check(i), (params, i))
        self.assertEqual(self.audit(until="2000-01-01T00:00:00Z")["items"], [])

        # Paging: pages of 2 give every record once, in order, the same as one
        # big page.
        whole = self.audit(limit=1000, since=since)["items"]
        paged = self.all_pages(2, since=since)
        self.assertEqual([i["seq"] for i in paged], [i["seq"] for i in whole])
        self.assertEqual(len({i["seq"] for i in paged}), len(paged))

    def test_sp_only(self):
        tenant = self.c.must_create_tenant(1, unique_name("sp"))
        _, op_token = self.user("sp_operator")
        self.audit(node=2, token=op_token, limit=1)
        for role in ("tenant_admin", "tenant_operator"):
            _, token = self.user(role, tenant["id"])
            for node in (1, 2, 3):
                r = self.c.request(node, "GET", AUDIT, token=token)
                assert_problem(self, r, 403, msg=role)
                r = self.c.request(node, "GET", AUDIT + "?tenant=" + tenant["id"], token=token)
                assert_problem(self, r, 403, msg=role)
        assert_problem(self, self.c.request(1, "GET", AUDIT, auth=False), 401)

    def test_validation_refusals(self):
        """A write the API refuses before proposing anything (bad JSON, an
        unknown or invalid field, a wrong Content-Type) is audited once, with
        the caller, the problem type and the field; a tenant user's under its
        own tenant. Nothing else is written."""
        tenant = self.c.must_create_tenant(1, unique_name("va"))
        admin_user, admin_token = self.user("tenant_admin", tenant["id"])
        before = self.c.request(1, "GET", "/api/v1/tenants?limit=1").revision
        cases = (
            (2, None, "POST", "/api/v1/tenants", b'{"name": ', 400, "malformed-json"),
            (3, None, "POST", "/api/v1/tenants", {"name": "x", "colour": "red"}, 400,
             "unknown-field"),
            (1, admin_token, "POST", "/api/v1/sites", {"name": 7, "tenant_id": tenant["id"]},
             400, "invalid-field"),
        )
        for node, token, method, path, body, status, ptype in cases:
            kw = {"token": token} if token else {}
            if isinstance(body, bytes):
                kw["raw"] = body
                kw["headers"] = {"Content-Type": "application/json"}
            else:
                kw["body"] = body
            r = self.c.request(node, method, path, **kw)
            assert_problem(self, r, status, msg=ptype)
            self.assertEqual(r.json["type"], "urn:cairn:problem:" + ptype, r.json)
        self.assertEqual(self.c.request(1, "GET", "/api/v1/tenants?limit=1").revision, before)

        mine = self.audit(user=self.c.admin["username"], limit=50)["items"]
        for ptype in ("malformed-json", "unknown-field"):
            found = [i for i in mine
                     if (i["message"] or "").startswith(ptype + ": POST /api/v1/tenants")]
            self.assertEqual(len(found), 1, (ptype, mine[:5]))
            self.assertEqual(found[0]["action"], "refused")
            self.assertEqual(found[0]["kind"], "tenant")
        unknown = [i for i in mine if (i["message"] or "").startswith("unknown-field")]
        self.assertIn("colour", unknown[0]["message"])
        theirs = [i for i in self.audit(user=admin_user["username"], tenant=tenant["id"])["items"]
                  if i["action"] == "refused"]
        self.assertEqual(len(theirs), 1, theirs)
        self.assertTrue(theirs[0]["message"].startswith("invalid-field: POST /api/v1/sites: name"),
                        theirs)
        self.assertEqual(theirs[0]["kind"], "site")

    def test_bad_filters(self):
        for query, field in (("limit=0", "limit"), ("limit=1001", "limit"), ("cursor=x", "cursor"),
                             ("kind=widget", "kind"), ("tenant=nope", "tenant"),
                             ("since=yesterday", "since"), ("until=2026-13-01T00:00:00Z", "until"),
                             ("since=2026-01-02T00:00:00Z&until=2026-01-01T00:00:00Z", "until"),
                             ("colour=red", "colour")):
            r = self.c.request(1, "GET", AUDIT + "?" + query)
            assert_problem(self, r, 400, field=field, msg=query)
        # Offsets and fractions are RFC 3339 too.
        self.audit(since="2026-01-02T03:04:05.250+02:00")


if __name__ == "__main__":
    run()
