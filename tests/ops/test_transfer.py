#!/usr/bin/env python3
"""POST /api/v1/cluster/leader/transfer, which rolling-upgrade.yml uses to
move leadership off a node before restarting it: sent to a follower or to
the leader, another node leads afterwards and writes go on; an SP operator
gets 403; a single-voter cluster answers 409 and keeps its leader.
Real cairnd processes (tests/integration/harness.py)."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "integration"))

import unittest  # noqa: E402

import harness  # noqa: E402
from harness import assert_problem, unique_name, wait_for  # noqa: E402

PATH = "/api/v1/cluster/leader/transfer"
PASSWORD = "a-long-enough-password"


def next_leader(c, old):
    """The leader all live nodes agree on if it is not old, else None."""
    leader = c.leader(timeout=5.0)
    return leader if leader != old else None


class TransferTest(unittest.TestCase):
    def test_three_nodes(self):
        with harness.Cluster(3, name="transfer") as c:
            c.wait_ready()
            for via in ("follower", "leader"):
                old = c.leader()
                node = old if via == "leader" else c.followers(old)[0]
                r = c.request(node, "POST", PATH)
                self.assertEqual(r.status, 204, "transfer through the %s: %r" % (via, r))
                new = wait_for(lambda: next_leader(c, old), 20, "another leader than %d" % old)
                self.assertNotEqual(new, old)
                r = c.create_tenant(node)
                self.assertEqual(r.status, 201, "a write after the transfer: %r" % r)

            r = c.request(1, "POST", "/api/v1/users",
                          body={"username": unique_name("op"), "password": PASSWORD,
                                "role": "sp_operator"})
            self.assertEqual(r.status, 201, r)
            token = c.must_login(1, r.json["username"], PASSWORD)
            leader = c.leader()
            r = c.request(leader, "POST", PATH, token=token)
            assert_problem(self, r, 403)
            self.assertEqual(c.leader(), leader)

    def test_single_voter(self):
        with harness.Cluster(1, name="transfer1") as c:
            c.wait_ready()
            r = c.request(1, "POST", PATH)
            assert_problem(self, r, 409)
            self.assertIn("only voter", r.json["detail"])
            self.assertEqual(c.leader(), 1)


if __name__ == "__main__":
    harness.run()
