#!/usr/bin/env python3
"""A 5-node cluster keeps serving with 2 nodes killed (the leader among
them) and, with 3 killed, refuses writes and linearizable reads promptly
with a 503 problem instead of hanging, writing nothing; with one node back
it serves again."""

import os
import sys
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Cluster, assert_problem, log, unique_name, wait_for  # noqa: E402

NODES = (1, 2, 3, 4, 5)
# Liveness deadlines, not benchmarks.
RECOVERY_DEADLINE_S = 20.0   # a new leader takes writes after the leader died
REFUSAL_DEADLINE_S = 15.0    # a request without quorum is answered (503) by then


class QuorumTest(unittest.TestCase):
    def test_quorum(self):
        with Cluster(5, name="quorum") as c:
            kept = {}
            for k in NODES:
                t = c.must_create_tenant(k, "q-%d" % k)
                kept[t["id"]] = t["name"]

            # ---- 2 of 5 down, the leader among them: still serving
            leader = c.leader()
            second = next(k for k in NODES if k != leader)
            c.kill(leader)
            c.kill(second)
            survivors = [k for k in NODES if k not in (leader, second)]
            log("killed nodes %d (leader) and %d; survivors %s" % (leader, second, survivors))
            new_leader = c.leader(timeout=RECOVERY_DEADLINE_S)
            self.assertIn(new_leader, survivors)
            for k in survivors:
                t = c.create_until_ok(k, RECOVERY_DEADLINE_S)
                kept[t["id"]] = t["name"]
            for k in survivors:
                items, _ = c.list_tenants(k)  # linearizable
                self.assertEqual({t["id"]: t["name"] for t in items}, kept, "node %d" % k)
                for tid in kept:
                    r = c.get(k, "/api/v1/tenants/" + tid)
                    self.assertEqual(r.status, 200, repr(r))

            # ---- a 3rd down: no quorum
            third = new_leader  # losing the current leader too is the harder case
            c.kill(third)
            rest = [k for k in survivors if k != third]
            log("killed node %d too; %s remain without a quorum" % (third, rest))
            # Every remaining node applied everything committed before.
            for k in rest:
                wait_for(lambda: len(c.list_tenants(k, stale=True)[0]) == len(kept), 10,
                         "node %d to have applied every write" % k)
            revisions = {k: c.get(k, "/api/v1/tenants?consistency=stale").revision
                         for k in rest}
            # Once no node believes in a leader, nothing can be appended.
            for k in rest:
                wait_for(lambda: c.cluster_info(k)["leader_id"] is None,
                         10 * c.election_timeout_s, "node %d to see no leader" % k)

            refused = []
            for k in rest:
                name = unique_name("refused")
                started = time.monotonic()
                r = c.create_tenant(k, name, timeout=REFUSAL_DEADLINE_S)
                took = time.monotonic() - started
                log("write through node %d without quorum: %d after %.1f s" % (k, r.status, took))
                assert_problem(self, r, 503, msg="write without quorum via node %d" % k)
                self.assertIsNotNone(r.header("retry-after"), "Retry-After: %r" % r.headers)
                refused.append(name)
                started = time.monotonic()
                r = c.get(k, "/api/v1/tenants", timeout=REFUSAL_DEADLINE_S)
                log("linearizable read via node %d without quorum: %d after %.1f s"
                    % (k, r.status, time.monotonic() - started))
                assert_problem(self, r, 503, msg="linearizable read without quorum via node %d"
                               % k)
                r = c.get(k, "/readyz", timeout=REFUSAL_DEADLINE_S)
                self.assertEqual(r.status, 503, "/readyz without quorum on node %d" % k)
                r = c.get(k, "/healthz", timeout=REFUSAL_DEADLINE_S)
                self.assertEqual(r.status, 200, "/healthz without quorum on node %d" % k)
            # Stale reads still answer, and show that nothing was written.
            for k in rest:
                r = c.get(k, "/api/v1/tenants?consistency=stale")
                self.assertEqual(r.status, 200, repr(r))
                self.assertEqual(r.revision, revisions[k])
                self.assertEqual({t["id"] for t in r.json["items"]}, set(kept))

            # ---- one node back: a quorum of 3 again
            c.start(third)
            for k in rest + [third]:
                t = c.create_until_ok(k, RECOVERY_DEADLINE_S + 10)
                kept[t["id"]] = t["name"]
            for k in rest + [third]:
                items, _ = c.list_tenants(k)
                names = {t["name"] for t in items}
                self.assertTrue(set(kept.values()) <= names, "node %d lost tenants" % k)
                for name in refused:
                    self.assertNotIn(name, names, "a refused write was applied later")


if __name__ == "__main__":
    harness.run()
