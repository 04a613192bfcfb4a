#!/usr/bin/env python3
"""Bad input is refused with the right status and an RFC 9457 problem (with
`field` where one input is at fault), on the leader and on a follower alike,
and nothing is written: the revision and the tenant list are unchanged."""

import os
import sys
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Cluster, assert_problem, etag_of  # noqa: E402

MAX_BODY = 2048  # the config minimum is 1024; a valid tenant fits well under
JSON = {"Content-Type": "application/json"}
NOT_FOUND_ID = "deadbeef-0000-4000-8000-00000000abcd"


def post_cases():
    """(label, kwargs for request, status, field) for POST /api/v1/tenants."""
    big_description = "x" * (MAX_BODY + 100)
    return [
        ("malformed JSON", dict(raw=b'{"name": "bad-1",', headers=JSON), 400, None),
        ("not JSON at all", dict(raw=b"name=bad-2", headers=JSON), 400, None),
        ("empty body", dict(raw=b"", headers=JSON), 400, None),
        ("duplicate key", dict(raw=b'{"name": "bad-3", "name": "bad-4"}', headers=JSON),
         400, None),
        ("array instead of object", dict(body=[{"name": "bad-5"}]), 400, None),
        ("unknown field", dict(body={"name": "bad-6", "colour": "red"}), 400, "colour"),
        ("unknown nested field",
         dict(body={"name": "bad-7", "contact": {"name": "Ada", "fax": "1"}}), 400,
         "contact.fax"),
        ("read-only field id", dict(body={"name": "bad-8", "id": NOT_FOUND_ID}), 400, "id"),
        ("read-only field mod_revision", dict(body={"name": "bad-9", "mod_revision": 3}),
         400, "mod_revision"),
        ("missing name", dict(body={"description": "no name"}), 400, "name"),
        ("name of wrong type", dict(body={"name": 5}), 400, "name"),
        ("name null", dict(body={"name": None}), 400, "name"),
        ("description of wrong type", dict(body={"name": "bad-10", "description": 7}), 400,
         "description"),
        ("contact of wrong type", dict(body={"name": "bad-11", "contact": "Ada"}), 400,
         "contact"),
        ("contact.email of wrong type",
         dict(body={"name": "bad-12", "contact": {"email": 5}}), 400, "contact.email"),
        ("empty name", dict(body={"name": ""}), 422, "name"),
        ("name too long", dict(body={"name": "n" * 1000}), 422, "name"),
        ("bad email", dict(body={"name": "bad-13", "contact": {"email": "not an email"}}),
         422, "contact.email"),
        ("oversized body", dict(body={"name": "bad-14", "description": big_description}),
         413, None),
        ("text/plain body", dict(raw=b'{"name": "bad-15"}',
                                 headers={"Content-Type": "text/plain"}), 415, "Content-Type"),
        ("form body", dict(raw=b"name=bad-16",
                           headers={"Content-Type": "application/x-www-form-urlencoded"}),
         415, "Content-Type"),
        ("no content type", dict(raw=b'{"name": "bad-18"}'), 415, "Content-Type"),
        ("name not lower-case", dict(body={"name": "Acme Corp"}), 422, "name"),
        ("description too long", dict(body={"name": "bad-19", "description": "d" * 1025}),
         422, "description"),
        ("bad phone", dict(body={"name": "bad-25", "contact": {"phone": "call me"}}), 422,
         "contact.phone"),
        ("bad Idempotency-Key", dict(body={"name": "bad-17"},
                                      headers={"Idempotency-Key": "k" * 300}), 400,
         "Idempotency-Key"),
    ]


class ValidationTest(unittest.TestCase):
    def snapshot_state(self, c, node):
        items, revisions = c.list_tenants(node)
        return sorted((t["id"], t["mod_revision"]) for t in items), revisions[-1]

    def check_cases(self, c, node, tid, etag):
        before = self.snapshot_state(c, node)
        put_path = "/api/v1/tenants/" + tid
        cases = [("POST " + label, "POST", "/api/v1/tenants", kw, st, field)
                 for label, kw, st, field in post_cases()]
        cases += [
            ("PUT unknown field", "PUT", put_path,
             dict(body={"name": "valid-1", "colour": "red"}, headers={"If-Match": etag}),
             400, "colour"),
            ("PUT wrong type", "PUT", put_path,
             dict(body={"name": ["valid-1"]}, headers={"If-Match": etag}), 400, "name"),
            ("PUT bad value", "PUT", put_path,
             dict(body={"name": ""}, headers={"If-Match": etag}), 422, "name"),
            ("PUT malformed JSON", "PUT", put_path,
             dict(raw=b"{", headers=dict(JSON, **{"If-Match": etag})), 400, None),
            ("PUT wrong content type", "PUT", put_path,
             dict(raw=b'{"name": "valid-1"}', headers={"Content-Type": "text/plain",
                                                       "If-Match": etag}), 415,
             "Content-Type"),
            ("PUT oversized", "PUT", put_path,
             dict(body={"name": "valid-1", "description": "y" * (MAX_BODY + 1)}), 413, None),
            ("PUT malformed If-Match", "PUT", put_path,
             dict(body={"name": "valid-1"}, headers={"If-Match": "yesterday"}), 400,
             "If-Match"),
            ("PUT stale If-Match", "PUT", put_path,
             dict(body={"name": "valid-1", "description": "lost"},
                  headers={"If-Match": etag_of(int(etag.strip('"')) + 1000)}), 412, None),
            ("GET bad id", "GET", "/api/v1/tenants/not-an-id!", {}, 400, "id"),
            ("GET upper-case id", "GET", "/api/v1/tenants/" + NOT_FOUND_ID.upper(), {}, 400,
             "id"),
            ("PUT bad id", "PUT", "/api/v1/tenants/not-an-id",
             dict(body={"name": "bad-20"}), 400, "id"),
            ("DELETE bad id", "DELETE", "/api/v1/tenants/123", {}, 400, "id"),
            ("GET unknown id", "GET", "/api/v1/tenants/" + NOT_FOUND_ID, {}, 404, None),
            ("PUT unknown id", "PUT", "/api/v1/tenants/" + NOT_FOUND_ID,
             dict(body={"name": "bad-21"}), 404, None),
            ("DELETE unknown id", "DELETE", "/api/v1/tenants/" + NOT_FOUND_ID, {}, 404, None),
            ("unknown route", "GET", "/api/v1/no-such-thing", {}, 404, None),
            ("unknown route under a tenant", "GET", put_path + "/widgets", {}, 404, None),
            ("POST to a tenant", "POST", put_path, dict(body={"name": "bad-22"}), 405, None),
            ("PATCH a tenant", "PATCH", put_path, dict(body={"name": "bad-23"}), 405, None),
            ("DELETE the collection", "DELETE", "/api/v1/tenants", {}, 405, None),
            ("PUT the collection", "PUT", "/api/v1/tenants", dict(body={"name": "bad-24"}),
             405, None),
            ("list limit not a number", "GET", "/api/v1/tenants?limit=lots", {}, 400, "limit"),
            ("list with a bad cursor", "GET", "/api/v1/tenants?cursor=%ff%fe", {}, 400,
             "cursor"),
            # Query parameters are checked like the URL itself: any bad one is a 400.
            ("unknown consistency", "GET", "/api/v1/tenants?consistency=eventual", {}, 400,
             "consistency"),
            ("unknown consistency on a read", "GET", put_path + "?consistency=eventual", {},
             400, "consistency"),
            ("limit zero", "GET", "/api/v1/tenants?limit=0", {}, 400, "limit"),
            ("unknown query parameter", "GET", "/api/v1/tenants?colour=red", {}, 400, "colour"),
            ("member add: unknown field", "POST", "/api/v1/cluster/members",
             dict(body={"id": 9, "raft_address": "127.0.0.1:1", "api_address": "127.0.0.1:2",
                        "zone": "a"}), 400, "zone"),
            ("member add: id of wrong type", "POST", "/api/v1/cluster/members",
             dict(body={"id": "nine", "raft_address": "127.0.0.1:1",
                        "api_address": "127.0.0.1:2"}), 400, "id"),
            ("member add: bad address", "POST", "/api/v1/cluster/members",
             dict(body={"id": 9, "raft_address": "nowhere", "api_address": "127.0.0.1:2"}),
             422, "raft_address"),
            ("member add: missing api_address", "POST", "/api/v1/cluster/members",
             dict(body={"id": 9, "raft_address": "127.0.0.1:1"}), 400, "api_address"),
            ("member add: id out of range", "POST", "/api/v1/cluster/members",
             dict(body={"id": 0, "raft_address": "127.0.0.1:1", "api_address": "127.0.0.1:2"}),
             422, "id"),
            ("member remove: bad id", "DELETE", "/api/v1/cluster/members/x", {}, 400, "id"),
        ]
        for label, method, path, kw, status, field in cases:
            with self.subTest(node=node, case=label):
                r = c.request(node, method, path, **kw)
                assert_problem(self, r, status, field=field, msg="node %d, %s" % (node, label))
        # Nothing was written, whichever node is asked.
        for k in (1, 2, 3):
            self.assertEqual(self.snapshot_state(c, k), before,
                             "tenants or revision changed after the bad requests to node %d"
                             % node)
        r = c.get(node, put_path)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header("etag"), etag)
        self.assertNotIn("description", r.json or {})
        members = c.cluster_info(node)["members"]
        self.assertEqual(sorted(m["id"] for m in members), [1, 2, 3])

    def test_bad_input(self):
        with Cluster(3, settings={"max_body_bytes": MAX_BODY}, name="validation") as c:
            r = c.create_tenant(1, "valid-1")
            self.assertEqual(r.status, 201, repr(r))
            tid = r.json["id"]
            etag = r.header("etag")
            self.assertEqual(etag, etag_of(r.json["mod_revision"]))
            # The largest valid tenant is fine (so 413 is about size).
            r = c.create_tenant(2, "v" * 63, description="z" * 1024,
                                contact={"name": "n" * 128, "email": "e" * 200 + "@example.com",
                                         "phone": "+" + "1" * 31})
            self.assertEqual(r.status, 201, repr(r))
            leader = c.leader()
            follower = next(k for k in (1, 2, 3) if k != leader)
            for node in (leader, follower):
                self.check_cases(c, node, tid, etag)


if __name__ == "__main__":
    harness.run()
