#!/usr/bin/env python3
"""Membership changes on a running cluster: a 4th node joins (as a voter,
serving reads of what existed before it and taking writes), then node 2 is
removed; the cluster keeps serving and forgets node 2. Removals that would
leave fewer answering voters than a quorum are refused (409
unsafe-membership-change) unless ?force=true; the last voter never goes."""

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

    def test_unsafe_removal_refused(self):
        with Cluster(3, name="membership-safety") as c:
            c.kill(3)
            # Without node 1 or 2 the new configuration would be {other, 3}:
            # quorum 2, and only one of them answers.
            for victim in (1, 2):
                r = c.request(1, "DELETE", "/api/v1/cluster/members/%d" % victim)
                harness.assert_problem(self, r, 409)
                self.assertTrue(r.json["type"].endswith("unsafe-membership-change"), r.json)
                self.assertIn("force=true", r.json["detail"])
                self.assertIn("1 answer", r.json["detail"])
            r = c.request(1, "DELETE", "/api/v1/cluster/members/2?force=maybe")
            harness.assert_problem(self, r, 400)
            self.assertEqual(sorted(self.members(c, 1)), [1, 2, 3])
            c.create_until_ok(1, 20)
            # Removing the dead node itself leaves {1, 2}, both answering: safe.
            r = c.request(2, "DELETE", "/api/v1/cluster/members/3")
            self.assertEqual(r.status, 204, r)
            for k in (1, 2):
                wait_for(lambda: self.voters_are(c, k, [1, 2]), 30,
                         "node %d to list voters 1, 2" % k, interval=0.2)
            # Without node 1, node 2 alone is a quorum of itself: allowed.
            r = c.request(1, "DELETE", "/api/v1/cluster/members/1?force=false")
            self.assertEqual(r.status, 204, r)
            wait_for(lambda: self.voters_are(c, 2, [2]), 30, "node 2 to be the only voter",
                     interval=0.2)
            # The last voter never goes, not even with force.
            r = c.request(2, "DELETE", "/api/v1/cluster/members/2?force=true")
            harness.assert_problem(self, r, 409)
            self.assertIn("last voter", r.json["detail"])
            c.create_until_ok(2, 20)

    def test_forced_removal(self):
        with Cluster(3, name="membership-force") as c:
            c.kill(3)
            leader = c.leader()
            victim = 3 - leader  # the other live node (1 or 2)
            r = c.request(leader, "DELETE", "/api/v1/cluster/members/%d" % victim)
            harness.assert_problem(self, r, 409)
            r = c.request(leader, "DELETE", "/api/v1/cluster/members/%d?force=true" % victim)
            # Forced: the check is skipped. The new configuration
            # {leader, 3} cannot commit until node 3 is back, so the answer
            # is 204 or 503 at the request's deadline, never the 409.
            self.assertIn(r.status, (204, 503), r)
            # As an operator would: stop the removed node (else it may win an
            # election against the uncommitted change once node 3 is back).
            c.stop(victim)
            c.start(3, wait="healthy")
            want = sorted([leader, 3])
            for k in want:
                wait_for(lambda: sorted(self.members(c, k)) == want, 60,
                         "node %d to list members %s" % (k, want), interval=0.2)
            for k in want:
                c.create_until_ok(k, 60)


if __name__ == "__main__":
    harness.run()
