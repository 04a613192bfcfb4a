#!/usr/bin/env python3
"""Three real nodes replicate tenants: whatever is written through one node
is read back from every node; pagination, ETag/If-Match, DELETE and
Idempotency-Key behave the same whichever node answers."""

import os
import sys
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Cluster, assert_problem, etag_of, unique_name, wait_for  # noqa: E402

NODES = (1, 2, 3)


class ReplicationTest(unittest.TestCase):
    def check_tenant(self, r, expected, node):
        self.assertEqual(r.status, 200, "GET tenant on node %d: %r" % (node, r))
        body = r.json
        for key, value in expected.items():
            self.assertEqual(body.get(key), value, "%s on node %d: %r" % (key, node, body))
        self.assertEqual(r.header("etag"), etag_of(body["mod_revision"]),
                         "ETag on node %d" % node)
        self.assertIsNotNone(r.revision, "X-Cairn-Revision on node %d" % node)
        self.assertGreaterEqual(r.revision, body["mod_revision"])

    def test_replication(self):
        with Cluster(3, name="replication") as c:
            # ---- the cluster endpoint: 3 voters, one leader, one term
            def one_view():
                views = {k: c.cluster_info(k) for k in NODES}
                for k, v in views.items():
                    self.assertEqual(v["node_id"], k)
                    self.assertEqual(sorted(m["id"] for m in v["members"]), [1, 2, 3])
                    for m in v["members"]:
                        self.assertEqual(m["role"], "voter", repr(v))
                        self.assertTrue(m["raft_address"].startswith("127.0.0.1:"))
                        self.assertEqual("http://" + m["api_address"], c.url(m["id"]))
                leader_ids = {v["leader_id"] for v in views.values()}
                terms = {v["term"] for v in views.values()}
                self.assertEqual(len(leader_ids), 1, "leaders: %r" % views)
                self.assertEqual(len(terms), 1, "terms: %r" % views)
                leader = leader_ids.pop()
                self.assertIn(leader, NODES)
                for k, v in views.items():
                    leaders = [m["id"] for m in v["members"] if m.get("leader")]
                    self.assertEqual(leaders, [leader], "leader flags on node %d: %r" % (k, v))
                    states = {m["id"]: m["state"] for m in v["members"]}
                    self.assertEqual(states[leader], "leader", repr(v))
                    for other in NODES:
                        if other != leader:
                            self.assertEqual(states[other], "follower", repr(v))
                    self.assertTrue(all(m["reachable"] for m in v["members"]), repr(v))
                return True

            wait_for(one_view, 20, "3 voters, one leader and one term seen by every node",
                     interval=0.2)

            # ---- create through each node, read back from every node
            created = {}
            for k in NODES:
                fields = {
                    "name": "acme-%d" % k,
                    "description": "created through node %d" % k,
                    "contact": {"name": "Ada %d" % k, "email": "ada%d@example.com" % k,
                                "phone": "+4412345678%d" % k},
                }
                r = c.request(k, "POST", "/api/v1/tenants", body=fields)
                self.assertEqual(r.status, 201, "POST on node %d: %r" % (k, r))
                body = r.json
                self.assertIsInstance(body.get("id"), str)
                for key, value in fields.items():
                    self.assertEqual(body.get(key), value)
                self.assertEqual(body["create_revision"], body["mod_revision"])
                self.assertEqual(r.header("etag"), etag_of(body["mod_revision"]))
                location = r.header("location") or ""
                self.assertTrue(location.endswith("/api/v1/tenants/" + body["id"]),
                                "Location %r" % location)
                self.assertIsNotNone(r.revision, "X-Cairn-Revision on POST")
                self.assertGreaterEqual(r.revision, body["mod_revision"])
                expected = dict(fields)
                expected.update(id=body["id"], create_revision=body["create_revision"],
                                mod_revision=body["mod_revision"])
                created[body["id"]] = expected

            # Linearizable (the default): visible everywhere at once.
            for tid, expected in created.items():
                for k in NODES:
                    r = c.get(k, "/api/v1/tenants/" + tid)
                    self.check_tenant(r, expected, k)

            # Stale: each node's own copy, once it has applied.
            for tid, expected in created.items():
                for k in NODES:
                    path = "/api/v1/tenants/%s?consistency=stale" % tid
                    wait_for(lambda: c.get(k, path).status == 200, 10,
                             "node %d to apply tenant %s" % (k, tid))
                    self.check_tenant(c.get(k, path), expected, k)

            # ---- pagination, each page from another node
            for i in range(8):
                c.must_create_tenant(NODES[i % 3], unique_name("page"))
            all_items, _revs = c.list_tenants(1)
            self.assertEqual(len(all_items), 11)
            pages = []
            cursor = None
            for page_no in range(20):
                node = NODES[page_no % 3]
                q = "/api/v1/tenants?limit=3" + ("&cursor=" + cursor if cursor else "")
                r = c.get(node, q)
                self.assertEqual(r.status, 200, repr(r))
                self.assertIsNotNone(r.revision, "X-Cairn-Revision on list")
                self.assertIsInstance(r.json["revision"], int)
                self.assertLessEqual(len(r.json["items"]), 3)
                pages.append(r.json["items"])
                cursor = r.json.get("next_cursor")
                if not cursor:
                    break
            paged = [t for page in pages for t in page]
            ids = [t["id"] for t in paged]
            self.assertEqual(len(ids), len(set(ids)), "a tenant listed twice: %r" % ids)
            self.assertEqual(ids, [t["id"] for t in all_items])
            self.assertEqual(len(pages), 4, "11 tenants in pages of 3")
            self.assertTrue(set(created) <= set(ids))
            for t in paged:
                if t["id"] in created:
                    self.assertEqual(t["name"], created[t["id"]]["name"])

            # ---- PUT with If-Match: good, then stale
            tid = next(iter(created))
            old = created[tid]
            new_fields = {"name": old["name"], "description": "updated via node 2",
                          "contact": old["contact"]}
            r = c.request(2, "PUT", "/api/v1/tenants/" + tid, body=new_fields,
                          headers={"If-Match": etag_of(old["mod_revision"])})
            self.assertEqual(r.status, 200, repr(r))
            self.assertEqual(r.json["description"], "updated via node 2")
            self.assertGreater(r.json["mod_revision"], old["mod_revision"])
            self.assertEqual(r.json["create_revision"], old["create_revision"])
            self.assertEqual(r.header("etag"), etag_of(r.json["mod_revision"]))
            self.assertIsNotNone(r.revision, "X-Cairn-Revision on PUT")
            updated_rev = r.json["mod_revision"]

            r = c.request(3, "PUT", "/api/v1/tenants/" + tid,
                          body=dict(new_fields, description="lost update"),
                          headers={"If-Match": etag_of(old["mod_revision"])})
            assert_problem(self, r, 412, msg="PUT with a stale If-Match")
            for k in NODES:
                r = c.get(k, "/api/v1/tenants/" + tid)
                self.assertEqual(r.status, 200)
                self.assertEqual(r.json["description"], "updated via node 2", "node %d" % k)
                self.assertEqual(r.header("etag"), etag_of(updated_rev))

            # ---- DELETE through another node; gone everywhere
            r = c.request(3, "DELETE", "/api/v1/tenants/" + tid)
            self.assertEqual(r.status, 204, repr(r))
            self.assertIsNotNone(r.revision, "X-Cairn-Revision on DELETE")
            for k in NODES:
                r = c.get(k, "/api/v1/tenants/" + tid)
                assert_problem(self, r, 404, msg="GET deleted tenant on node %d" % k)
            r = c.request(1, "DELETE", "/api/v1/tenants/" + tid)
            assert_problem(self, r, 404, msg="DELETE twice")

            # ---- names are unique
            other = next(t for t in created.values() if t["id"] != tid)
            r = c.create_tenant(2, other["name"])
            assert_problem(self, r, 409, msg="duplicate name")

            # ---- Idempotency-Key: a retry on another node is the same create
            key = unique_name("idem")
            name = unique_name("idem-tenant")
            r1 = c.create_tenant(1, name, idempotency_key=key, description="once")
            self.assertEqual(r1.status, 201, repr(r1))
            r2 = c.create_tenant(2, name, idempotency_key=key, description="once")
            self.assertEqual(r2.status, 201, "replayed POST: %r" % r2)
            self.assertEqual(r2.json["id"], r1.json["id"])
            self.assertEqual((r2.header("idempotent-replayed") or "").lower(), "true",
                             "Idempotent-Replayed on the retry: %r" % r2.headers)
            self.assertNotEqual((r1.header("idempotent-replayed") or "false").lower(), "true")
            r3 = c.create_tenant(3, name, idempotency_key=key, description="once")
            self.assertEqual(r3.status, 201, repr(r3))
            self.assertEqual(r3.json["id"], r1.json["id"])
            # The same key with another body is refused and creates nothing.
            other_name = unique_name("other")
            r4 = c.create_tenant(3, other_name, idempotency_key=key)
            self.assertIn(r4.status, (409, 422), "key reused with another body: %r" % r4)
            assert_problem(self, r4, r4.status)
            for k in NODES:
                items, _ = c.list_tenants(k)
                same = [t for t in items if t["name"] == name]
                self.assertEqual(len(same), 1, "node %d holds %r" % (k, same))
                self.assertEqual(same[0]["id"], r1.json["id"])
                self.assertFalse([t for t in items if t["name"] == other_name])

            # The cluster view is unchanged by all this.
            wait_for(one_view, 10, "the same cluster view after the writes", interval=0.2)


if __name__ == "__main__":
    harness.run()
