#!/usr/bin/env python3
"""Membership changes on a running cluster: a 4th node joins (as a voter,
serving reads of what existed before it and taking writes), then node 2 is
removed; the cluster keeps serving and forgets node 2."""

import os
import sys
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Cluster, log, wait_for  # noqa: E402


class MembershipTest(unittest.TestCase):
    def members(self, c, node):
        return {m["id"]: m for m in c.cluster_info(node)["members"]}

    def voters_are(self, c, node, expected):
        members = self.members(c, node)
        if sorted(members) != sorted(expected):
            raise AssertionError("node %d lists members %s" % (node, sorted(members)))
        roles = {k: m["role"] for k, m in members.items()}
        if any(r != "voter" for r in roles.values()):
            raise AssertionError("node %d: roles %r" % (node, roles))
        return True

    def test_add_and_remove(self):
        with Cluster(3, name="membership") as c:
            existing = {}
            for k in (1, 2, 3):
                for i in range(5):
                    t = c.must_create_tenant(k, "m-%d-%d" % (k, i))
                    existing[t["id"]] = t["name"]

            # ---- a 4th node joins
            new = c.add()
            self.assertEqual(new, 4)
            for k in (1, 2, 3, 4):
                wait_for(lambda: self.voters_are(c, k, [1, 2, 3, 4]), 30,
                         "node %d to list 4 voters" % k, interval=0.2)
            leader = c.leader()
            self.assertIn(leader, (1, 2, 3, 4))
            info = c.cluster_info(4)
            self.assertEqual(info["node_id"], 4)
            self.assertEqual(info["leader_id"], leader)
            me = self.members(c, 4)[4]
            self.assertEqual("http://" + me["api_address"], c.url(4))

            # It serves what existed before it joined...
            for tid, name in existing.items():
                r = c.get(4, "/api/v1/tenants/" + tid)
                self.assertEqual(r.status, 200, repr(r))
                self.assertEqual(r.json["name"], name)
            items, _ = c.list_tenants(4, stale=True)
            self.assertEqual({t["id"]: t["name"] for t in items}, existing)
            # ...and takes writes that every node sees.
            t = c.must_create_tenant(4, "via-node-4")
            existing[t["id"]] = t["name"]
            for k in (1, 2, 3, 4):
                r = c.get(k, "/api/v1/tenants/" + t["id"])
                self.assertEqual(r.status, 200, "node %d: %r" % (k, r))

            # ---- node 2 leaves
            was_leader = c.leader()
            log("removing node 2 (leader is node %d)" % was_leader)
            c.remove(2)
            self.assertFalse(c.running(2), "node 2 still runs after remove")
            remaining = (1, 3, 4)
            for k in remaining:
                wait_for(lambda: self.voters_are(c, k, remaining), 30,
                         "node %d to list voters 1, 3, 4" % k, interval=0.2)
            leader = c.leader()
            self.assertIn(leader, remaining)
            for k in remaining:
                info = c.cluster_info(k)
                self.assertNotIn(2, [m["id"] for m in info["members"]])
                self.assertEqual(info["leader_id"], leader)

            # Writes and reads still work through every remaining node.
            for k in remaining:
                t = c.must_create_tenant(k, "after-remove-%d" % k)
                existing[t["id"]] = t["name"]
            for k in remaining:
                items, _ = c.list_tenants(k)
                self.assertEqual({t["id"]: t["name"] for t in items}, existing,
                                 "tenants on node %d" % k)

            # Two of the three remaining voters are a quorum: losing one
            # non-leader still leaves a working cluster, which proves node 2
            # no longer counts toward it.
            victim = next(k for k in remaining if k != leader)
            c.kill(victim)
            rest = [k for k in remaining if k != victim]
            for k in rest:
                c.create_until_ok(k, 20)
            c.start(victim, wait="ready")


if __name__ == "__main__":
    harness.run()
