#!/usr/bin/env python3
"""Authentication and access control on a real 3-node cluster: a token
minted on one node works on every node at once and a logout revokes it on
every node; a wrong password and an unknown user get the same answer;
repeated failures are throttled (429 + Retry-After); every /api/v1 route
refuses a missing or bad token (401); no answer ever carries a password
hash; the four roles get what the role table says on tenants, users and the
cluster; a tenant administrator probing another tenant's objects gets the
very answer of a missing object, and lists only its own; tenants keep their
quotas and allowed templates; a tenant with users is deleted only with
?cascade=true.

One cluster serves every test. The login throttle counts per node and per
client address (all tests come from 127.0.0.1), so failed logins happen on
node 2 (a few) and node 3 (the throttle test); every other login goes to
node 1."""

import os
import sys
import uuid

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import assert_problem, unique_name, wait_for  # noqa: E402

PASSWORD = "a-long-enough-password"
LOGIN = "/api/v1/auth/login"
# A uuid no object has.
MISSING = "deadbeef-0000-4000-8000-00000000abcd"


class AuthTest(harness.ClusterTestCase):
    NAME = "auth"
    answers = []  # every (method, path, body bytes) any test received

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        original = cls.cluster.request

        def recording(node, method, path, **kw):
            r = original(node, method, path, **kw)
            cls.answers.append((method, path, r.body))
            return r

        cls.cluster.request = recording

    # Helpers

    @property
    def c(self):
        return self.cluster

    def make_tenant(self, **fields):
        return self.c.must_create_tenant(1, unique_name("t"), **fields)

    def make_user(self, role, tenant_id=None, node=1, token=None, name=None):
        body = {"username": name or unique_name("u"), "password": PASSWORD, "role": role}
        if tenant_id:
            body["tenant_id"] = tenant_id
        kw = {"token": token} if token else {}
        r = self.c.request(node, "POST", "/api/v1/users", body=body, **kw)
        self.assertEqual(r.status, 201, r)
        return r.json

    def login_as(self, user):
        return self.c.must_login(1, user["username"], PASSWORD)

    def status(self, node, method, path, token, body=None):
        return self.c.request(node, method, path, body=body, token=token).status

    # Tokens across nodes

    def test_token_on_every_node_and_logout_everywhere(self):
        token = self.c.must_login(1, self.c.admin["username"], self.c.admin["password"])
        # No wait: a node that has not applied the session yet asks the
        # leader once (read barrier) and finds it.
        for k in (2, 3, 1):
            r = self.c.request(k, "GET", "/api/v1/auth/whoami", token=token)
            self.assertEqual(r.status, 200, "node %d: %r" % (k, r))
            self.assertEqual(r.json["user"]["username"], self.c.admin["username"])
        r = self.c.request(2, "POST", "/api/v1/auth/logout", token=token)
        self.assertEqual(r.status, 204, r)
        self.assertEqual(self.status(2, "GET", "/api/v1/tenants", token), 401)
        for k in (1, 3):
            wait_for(lambda: self.status(k, "GET", "/api/v1/tenants", token) == 401, 10,
                     "the logout on node 2 to revoke the token on node %d" % k)
        # Other tokens are unaffected.
        self.assertEqual(self.c.get(1, "/api/v1/tenants").status, 200)

    def test_password_change(self):
        t = self.make_tenant()
        user = self.make_user("tenant_operator", tenant_id=t["id"])
        other = self.login_as(user)
        token = self.login_as(user)
        path = "/api/v1/auth/password"
        new = "another-long-password"
        r = self.c.request(1, "POST", path, token=token,
                           body={"current_password": "wrong-password!", "new_password": new})
        assert_problem(self, r, 422, field="current_password")
        r = self.c.request(1, "POST", path, token=token,
                           body={"current_password": PASSWORD, "new_password": "short"})
        assert_problem(self, r, 422, field="new_password")
        r = self.c.request(1, "POST", path, token=token,
                           body={"current_password": PASSWORD, "new_password": new})
        self.assertEqual(r.status, 204, r)
        # The changing session lives on; the other one ended everywhere.
        self.assertEqual(self.status(3, "GET", "/api/v1/auth/whoami", token), 200)
        for k in (1, 2, 3):
            wait_for(lambda: self.status(k, "GET", "/api/v1/auth/whoami", other) == 401, 10,
                     "the other session to end on node %d" % k)
        self.assertEqual(self.c.login(1, user["username"], PASSWORD).status, 401)
        self.c.must_login(1, user["username"], new)
        self.assertEqual(self.c.request(1, "POST", path, auth=False,
                                        body={"current_password": new,
                                              "new_password": PASSWORD}).status, 401)

    def test_login_answer(self):
        r = self.c.login(1, self.c.admin["username"], self.c.admin["password"])
        self.assertEqual(r.status, 200, r)
        self.assertEqual(sorted(r.json), ["expires_at", "token", "user"])
        self.assertRegex(r.json["expires_at"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        self.assertRegex(r.json["token"], r"^[A-Za-z0-9_-]{43}$")
        self.assertEqual(r.json["user"]["role"], "sp_admin")
        self.assertEqual(r.header("cache-control"), "no-store")

    def test_wrong_password_like_unknown_user(self):
        # Node 2: two failures, under the throttle's five.
        wrong = self.c.login(2, self.c.admin["username"], "not-the-password")
        unknown = self.c.login(2, unique_name("nobody"), "not-the-password")
        for r in (wrong, unknown):
            assert_problem(self, r, 401)
            self.assertTrue(r.header("www-authenticate", "").startswith("Bearer"), r)
        self.assertEqual(wrong.body, unknown.body)

    def test_throttle(self):
        # Node 3 only: afterwards it refuses logins from 127.0.0.1 for a
        # minute, which no other test needs.
        name = self.c.admin["username"]
        for i in range(5):
            r = self.c.login(3, name, "wrong-%d-password" % i)
            assert_problem(self, r, 401, msg="failure %d" % (i + 1))
        r = self.c.login(3, name, self.c.admin["password"])
        assert_problem(self, r, 429, msg="6th attempt")
        retry = int(r.header("retry-after"))
        self.assertTrue(1 <= retry <= 60, r.header("retry-after"))
        # Another user from the same address: refused too (per address).
        assert_problem(self, self.c.login(3, unique_name("other"), "whatever-pw"), 429)
        # Tokens still work there, and other nodes count their own.
        self.assertEqual(self.c.get(3, "/api/v1/tenants").status, 200)
        self.c.must_login(1, name, self.c.admin["password"])

    # Unauthenticated

    def test_every_route_needs_a_token(self):
        tid = self.make_tenant()["id"]
        routes = [
            ("GET", "/api/v1/tenants"), ("POST", "/api/v1/tenants"),
            ("GET", "/api/v1/tenants/" + tid), ("PUT", "/api/v1/tenants/" + tid),
            ("DELETE", "/api/v1/tenants/" + tid),
            ("GET", "/api/v1/users"), ("POST", "/api/v1/users"),
            ("GET", "/api/v1/users/" + MISSING), ("PUT", "/api/v1/users/" + MISSING),
            ("DELETE", "/api/v1/users/" + MISSING),
            ("GET", "/api/v1/cluster"), ("POST", "/api/v1/cluster/members"),
            ("DELETE", "/api/v1/cluster/members/3"), ("GET", "/api/v1/cluster/ownership"),
            ("POST", "/api/v1/auth/logout"), ("GET", "/api/v1/auth/whoami"),
            ("GET", "/api/v1/no-such-route"), ("GET", "/api/v1"),
        ]
        bad = [None, "Basic YWRtaW46YWRtaW4=", "Bearer", "Bearer not-a-token",
               "Bearer " + "A" * 43, "Bearer " + self.c.token + "x"]
        revision = self.c.get(1, "/api/v1/tenants").revision
        for k in (1, 2, 3):
            for method, path in routes:
                for value in bad:
                    headers = {"Authorization": value} if value else {}
                    r = self.c.request(k, method, path, auth=False, headers=headers,
                                       body={"name": "x"} if method in ("POST", "PUT") else None)
                    assert_problem(self, r, 401, msg="node %d %s %s with %r" % (k, method, path,
                                                                               value))
                    self.assertTrue(r.header("www-authenticate", "").startswith("Bearer"), r)
        # Nothing was written, and the probes stay public.
        self.assertEqual(self.c.get(1, "/api/v1/tenants").revision, revision)
        for k in (1, 2, 3):
            self.assertEqual(self.c.request(k, "GET", "/readyz", auth=False).status, 200)
            self.assertEqual(self.c.request(k, "GET", "/healthz", auth=False).status, 200)

    # Roles

    def test_role_matrix(self):
        a = self.make_tenant()["id"]
        b = self.make_tenant()["id"]
        users = {
            "sp_admin": None,
            "sp_operator": self.make_user("sp_operator"),
            "tenant_admin": self.make_user("tenant_admin", a),
            "tenant_operator": self.make_user("tenant_operator", a),
        }
        b_admin = self.make_user("tenant_admin", b)
        a_oper = users["tenant_operator"]
        tokens = {role: (self.login_as(u) if u else self.c.token) for role, u in users.items()}

        def body_user(role, tenant=None):
            body = {"username": unique_name("m"), "password": PASSWORD, "role": role}
            if tenant:
                body["tenant_id"] = tenant
            return body

        a_oper_put = {"username": a_oper["username"], "role": "tenant_operator", "tenant_id": a}
        # (label, method, path or a function making a fresh path, body,
        #  expected for sp_admin, sp_operator, tenant_admin, tenant_operator)
        cases = [
            ("list tenants", "GET", "/api/v1/tenants", None, (200, 200, 200, 200)),
            ("create tenant", "POST", "/api/v1/tenants", lambda: {"name": unique_name("n")},
             (201, 403, 403, 403)),
            ("read own tenant", "GET", "/api/v1/tenants/" + a, None, (200, 200, 200, 200)),
            ("read other tenant", "GET", "/api/v1/tenants/" + b, None, (200, 200, 404, 404)),
            ("replace own tenant", "PUT", "/api/v1/tenants/" + a,
             lambda: {"name": self.c.get(1, "/api/v1/tenants/" + a).json["name"]},
             (200, 403, 403, 403)),
            ("replace other tenant", "PUT", "/api/v1/tenants/" + b,
             lambda: {"name": self.c.get(1, "/api/v1/tenants/" + b).json["name"]},
             (200, 403, 404, 404)),
            ("delete a tenant", "DELETE",
             lambda: "/api/v1/tenants/" + self.make_tenant()["id"], None, (204, 403, 404, 404)),
            ("list users", "GET", "/api/v1/users", None, (200, 200, 200, 200)),
            ("create tenant user", "POST", "/api/v1/users",
             lambda: body_user("tenant_operator", a), (201, 403, 201, 403)),
            ("create SP user", "POST", "/api/v1/users", lambda: body_user("sp_operator"),
             (201, 403, 403, 403)),
            ("create user of other tenant", "POST", "/api/v1/users",
             lambda: body_user("tenant_admin", b), (201, 403, 422, 403)),
            ("read own tenant's user", "GET", "/api/v1/users/" + a_oper["id"], None,
             (200, 200, 200, 200)),
            ("read other tenant's user", "GET", "/api/v1/users/" + b_admin["id"], None,
             (200, 200, 404, 404)),
            ("read SP user", "GET", "/api/v1/users/" + users["sp_operator"]["id"], None,
             (200, 200, 404, 404)),
            ("replace own tenant's user", "PUT", "/api/v1/users/" + a_oper["id"],
             lambda: a_oper_put, (200, 403, 200, 403)),
            ("delete own tenant's user", "DELETE",
             lambda: "/api/v1/users/" + self.make_user("tenant_operator", a)["id"], None,
             (204, 403, 204, 403)),
            ("delete other tenant's user", "DELETE",
             lambda: "/api/v1/users/" + self.make_user("tenant_operator", b)["id"], None,
             (204, 403, 404, 404)),
            ("read cluster", "GET", "/api/v1/cluster", None, (200, 200, 404, 404)),
            ("read ownership", "GET", "/api/v1/cluster/ownership", None, (200, 200, 404, 404)),
            ("add member", "POST", "/api/v1/cluster/members",
             lambda: {"id": 99, "raft_address": "nowhere", "api_address": "127.0.0.1:1"},
             (422, 403, 404, 404)),
            ("remove member", "DELETE", "/api/v1/cluster/members/99", None,
             (404, 403, 404, 404)),
        ]
        roles = ("sp_admin", "sp_operator", "tenant_admin", "tenant_operator")
        for label, method, path, body, expected in cases:
            for role, want in zip(roles, expected):
                with self.subTest(case=label, role=role):
                    p = path() if callable(path) else path
                    b_ = body() if callable(body) else body
                    node = 1 + (len(label) + len(role)) % 3  # spread over the nodes
                    r = self.c.request(node, method, p, body=b_, token=tokens[role])
                    self.assertEqual(r.status, want, "%s as %s on node %d: %r"
                                     % (label, role, node, r))
                    if want >= 400:
                        assert_problem(self, r, want)
                    if want == 403:
                        self.assertEqual(r.json["type"], "urn:cairn:problem:forbidden")

    def test_tenant_isolation(self):
        a = self.make_tenant()
        b = self.make_tenant()
        a_admin = self.make_user("tenant_admin", a["id"])
        b_admin = self.make_user("tenant_admin", b["id"])
        b_oper = self.make_user("tenant_operator", b["id"])
        sp = self.make_user("sp_operator")
        token = self.login_as(a_admin)

        def masked(r, ident):
            return (r.status, r.content_type, r.body.replace(ident.encode(), b"ID"),
                    r.revision is not None)

        probes = [
            ("GET", "/api/v1/tenants/%s", None),
            ("PUT", "/api/v1/tenants/%s", {"name": unique_name("x")}),
            ("DELETE", "/api/v1/tenants/%s", None),
            ("GET", "/api/v1/users/%s", None),
            ("PUT", "/api/v1/users/%s", {"username": unique_name("x"), "role": "tenant_admin",
                                         "tenant_id": b["id"]}),
            ("DELETE", "/api/v1/users/%s", None),
        ]
        for node in (1, 2, 3):
            for method, fmt, body in probes:
                ids = [b["id"]] if "tenants" in fmt else [b_admin["id"], b_oper["id"], sp["id"]]
                for hidden in ids:
                    missing = str(uuid.uuid4())
                    with self.subTest(node=node, method=method, path=fmt % hidden):
                        rh = self.c.request(node, method, fmt % hidden, body=body, token=token)
                        rm = self.c.request(node, method, fmt % missing, body=body, token=token)
                        assert_problem(self, rh, 404)
                        self.assertEqual(masked(rh, hidden), masked(rm, missing))
            # Lists: only A's.
            r = self.c.request(node, "GET", "/api/v1/tenants?limit=1000", token=token)
            self.assertEqual([t["id"] for t in r.json["items"]], [a["id"]])
            r = self.c.request(node, "GET", "/api/v1/tenants?name=" + b["name"], token=token)
            self.assertEqual(r.json["items"], [])
            r = self.c.request(node, "GET", "/api/v1/users?limit=1000", token=token)
            self.assertEqual(sorted(u["id"] for u in r.json["items"]), [a_admin["id"]])
            r = self.c.request(node, "GET", "/api/v1/users?tenant_id=" + b["id"], token=token)
            self.assertEqual(r.json["items"], [])
        # B's objects are all still there.
        for ident in (b_admin["id"], b_oper["id"]):
            self.assertEqual(self.c.get(1, "/api/v1/users/" + ident).status, 200)
        self.assertEqual(self.c.get(1, "/api/v1/tenants/" + b["id"]).status, 200)

    # Tenants

    def test_quotas_and_templates(self):
        templates = [str(uuid.uuid4()), str(uuid.uuid4())]
        t = self.make_tenant(quotas={"sites": 5, "devices": 100, "services": 0},
                             allowed_templates=templates, contact={"email": "noc@x.example"})
        self.assertEqual(t["quotas"], {"sites": 5, "devices": 100, "services": 0})
        for k in (1, 2, 3):
            r = self.c.get(k, "/api/v1/tenants/" + t["id"])
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json["quotas"], {"sites": 5, "devices": 100, "services": 0})
            self.assertEqual(r.json["allowed_templates"], templates)
        r = self.c.request(2, "PUT", "/api/v1/tenants/" + t["id"],
                           body={"name": t["name"], "quotas": {"sites": 7}})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["quotas"], {"sites": 7})
        self.assertNotIn("allowed_templates", r.json)
        for body, field in (({"quotas": {"sites": -1}}, "quotas.sites"),
                            ({"quotas": {"devices": 10 ** 7}}, "quotas.devices"),
                            ({"allowed_templates": ["nope"]}, "allowed_templates[0]"),
                            ({"allowed_templates": templates[:1] * 2}, "allowed_templates[1]")):
            body["name"] = unique_name("q")
            assert_problem(self, self.c.request(3, "POST", "/api/v1/tenants", body=body), 422,
                           field=field)

    def test_cascade_delete(self):
        t = self.make_tenant()
        u = self.make_user("tenant_admin", t["id"])
        token = self.login_as(u)
        path = "/api/v1/tenants/" + t["id"]
        r = self.c.request(2, "DELETE", path)
        assert_problem(self, r, 409)
        self.assertEqual(self.c.get(3, path).status, 200)
        r = self.c.request(2, "DELETE", path + "?cascade=true")
        self.assertEqual(r.status, 204, r)
        for k in (1, 2, 3):
            wait_for(lambda: self.c.get(k, "/api/v1/users/" + u["id"],
                                        ).status == 404, 10, "the user gone on node %d" % k)
            self.assertEqual(self.c.get(k, path).status, 404)
            self.assertEqual(self.status(k, "GET", "/api/v1/auth/whoami", token), 401)

    # Last (alphabetically): every answer any test received.

    def test_zz_no_password_hash_anywhere(self):
        u = self.make_user("sp_operator")
        for k in (1, 2, 3):
            self.c.get(k, "/api/v1/users?limit=1000")
            self.c.get(k, "/api/v1/users/" + u["id"])
        self.assertGreater(len(self.answers), 100)
        for method, path, body in self.answers:
            for secret in (b"password_hash", b"$argon2", PASSWORD.encode()):
                self.assertNotIn(secret, body, "%s %s answered %r" % (method, path, body[:300]))


if __name__ == "__main__":
    harness.run()
