#!/usr/bin/env python3
"""Device ownership over committed liveness (issue 5, the parts without the
southbound): the leader commits a SIGKILLed node down within a bound, every
node agrees on the epoch and the ring, the node is committed up again once
it is back and caught up; a SIGSTOPped follower is committed down and, once
resumed, reports that its lease had run out (it drove nothing meanwhile); a
new leader gives everyone a grace period instead of marking them down; a
node added or removed changes the ring (a new epoch); a 1-node cluster owns
everything with a stable epoch.

Prints the handoff decision time (SIGKILL -> down committed and the
ownership recomputed on every survivor); docs/benchmarks.md records it.
"""

import datetime
import os
import re
import sys
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Cluster, log, wait_for  # noqa: E402

DOWN_MS = 2000
SETTINGS = {
    "liveness_heartbeat_ms": "100",
    "ownership_lease_ms": "1000",
    "liveness_down_ms": str(DOWN_MS),
}
PATH = "/api/v1/cluster/ownership"
# Liveness deadline for a decision: the threshold, a heartbeat, a commit,
# and room for a loaded 2-core machine. Never a timing assertion beyond it.
DECISION_BOUND_S = DOWN_MS / 1000.0 + 8.0


def ts_ms(ts):
    """Milliseconds since the epoch of a log line's ts=... (UTC)."""
    t = datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ")
    return int(t.replace(tzinfo=datetime.timezone.utc).timestamp() * 1000)


def ownership(c, node, stale=False):
    r = c.get(node, PATH + ("?consistency=stale" if stale else ""), timeout=5.0)
    if r.status != 200 or not isinstance(r.json, dict):
        raise AssertionError("GET %s on node %d: %r" % (PATH, node, r))
    return r.json


def agreed(c, nodes, down, min_epoch=1):
    """The ownership every node in nodes reports, if they all applied the
    same epoch (>= min_epoch) with exactly `down` committed down and each
    has installed that epoch in its own view and holds a lease."""
    views = {k: ownership(c, k) for k in nodes}
    epochs = {v["epoch"] for v in views.values()}
    if len(epochs) != 1:
        raise AssertionError("nodes disagree on the epoch: %r"
                             % {k: v["epoch"] for k, v in views.items()})
    first = views[nodes[0]]
    if first["epoch"] < min_epoch:
        raise AssertionError("epoch %d, want >= %d" % (first["epoch"], min_epoch))
    if sorted(first["down"]) != sorted(down):
        raise AssertionError("down %r, want %r" % (first["down"], sorted(down)))
    for k, v in views.items():
        for key in ("members", "live", "down", "devices", "movements", "reason"):
            if v[key] != first[key]:
                raise AssertionError("node %d: %s %r differs from node %d's %r"
                                     % (k, key, v[key], nodes[0], first[key]))
        if v["node"]["epoch"] != v["epoch"] or not v["node"]["leased"]:
            raise AssertionError("node %d's own view: %r" % (k, v["node"]))
    return first


# 300 as the test; the benchmark in docs/benchmarks.md sets 1000.
DEVICES = int(os.environ.get("CAIRN_OWNERSHIP_DEVICES", "300"))


def import_devices(c, n):
    """Creates a tenant with one site and n devices (a bulk import job);
    returns when the job succeeded."""
    tenant = c.must_create_tenant(1, "own-%d" % n)["id"]
    body = {"tenant_id": tenant, "sites": [{"name": "s0", "role": "spoke"}],
            "devices": [{"site": "s0", "serial": "OWN%06d" % i, "family": "srx"}
                        for i in range(n)]}
    r = c.request(1, "POST", "/api/v1/imports", body=body)
    if r.status != 202:
        raise AssertionError("import: %r" % r)
    location = r.header("location")

    def ended():
        job = c.get(1, location).json
        return job if job["state"] in ("succeeded", "failed", "cancelled") else None
    job = wait_for(ended, 120, "import job %s" % location)
    if job["state"] != "succeeded":
        raise AssertionError("import job: %r" % job)


def handoffs_in(c, nodes):
    return sum(ownership(c, k)["node"]["handoffs_in"] for k in nodes)


class OwnershipTest(unittest.TestCase):
    def check_counts(self, view):
        self.assertEqual(sum(m["devices"] for m in view["members"]), view["devices"])
        for m in view["members"]:
            if not m["live"]:
                self.assertEqual(m["devices"], 0, m)

    def test_three_nodes(self):
        with Cluster(3, settings=SETTINGS, name="ownership") as c:
            all3 = [1, 2, 3]
            v0 = wait_for(lambda: agreed(c, all3, []), 30, "a first ownership record")
            self.assertEqual(v0["live"], all3)
            self.check_counts(v0)
            r = c.request(1, "GET", PATH, auth=False)
            self.assertEqual(r.status, 401)
            import_devices(c, DEVICES)
            v0 = wait_for(lambda: agreed(c, all3, []), 30, "the devices counted")
            self.assertEqual(v0["devices"], DEVICES)
            self.check_counts(v0)
            owned0 = {m["id"]: m["devices"] for m in v0["members"]}
            log("devices per node: %r" % owned0)
            for k in all3:
                self.assertGreater(owned0[k], 0)

            # ---- SIGKILL a follower: committed down within the bound
            leader = c.leader()
            victim = [k for k in all3 if k != leader][-1]
            rest = [k for k in all3 if k != victim]
            gained0 = handoffs_in(c, rest)
            t0 = time.monotonic()
            c.kill(victim)
            v1 = wait_for(lambda: agreed(c, rest, [victim], v0["epoch"] + 1), DECISION_BOUND_S,
                          "node %d committed down on every survivor" % victim, interval=0.02)
            decided = time.monotonic() - t0
            log("handoff decision: SIGKILL node %d -> down committed and ownership recomputed "
                "on nodes %s: %.0f ms (liveness_down_ms %d); reason: %s"
                % (victim, rest, decided * 1000, DOWN_MS, v1["reason"]))
            self.assertGreaterEqual(decided, (DOWN_MS - 3 * int(SETTINGS["liveness_heartbeat_ms"])) / 1000.0,
                                    "down before the threshold: %r" % v1)
            self.assertEqual(v1["live"], rest)
            self.check_counts(v1)
            # Exactly the dead node's devices moved, to the survivors; the
            # survivors kept their own.
            self.assertEqual(v1["movements"]["count"], owned0[victim])
            for m in v1["members"]:
                if m["id"] != victim:
                    self.assertGreaterEqual(m["devices"], owned0[m["id"]])
            self.assertEqual(handoffs_in(c, rest) - gained0, owned0[victim])

            # ---- restart: committed up again once caught up, epoch rises
            c.start(victim)
            v2 = wait_for(lambda: agreed(c, all3, [], v1["epoch"] + 1), 30,
                          "node %d committed up again" % victim)
            self.assertIn("caught up", v2["reason"])
            self.check_counts(v2)
            # The same devices move back: the ring is the one of before.
            self.assertEqual(v2["movements"]["count"], owned0[victim])
            self.assertEqual({m["id"]: m["devices"] for m in v2["members"]}, owned0)

            # ---- SIGSTOP a follower: down committed; after SIGCONT it
            # reports that its lease had expired (it owned nothing)
            leader = c.leader()
            zombie = [k for k in all3 if k != leader][0]
            rest = [k for k in all3 if k != zombie]
            before = ownership(c, zombie)["node"]
            harness.lc.pause(c.dir, zombie)
            try:
                v3 = wait_for(lambda: agreed(c, rest, [zombie], v2["epoch"] + 1),
                              DECISION_BOUND_S, "paused node %d committed down" % zombie)
            finally:
                harness.lc.resume(c.dir, zombie)
            after = wait_for(lambda: ownership(c, zombie, stale=True)["node"], 10,
                             "the resumed node answering")
            log("resumed node %d's own view: %r" % (zombie, after))
            self.assertGreaterEqual(after["lease_lapses"], before["lease_lapses"] + 1)
            # Its lease ran out before the leader committed it down (both
            # from the nodes' logs, on this machine's one wall clock).
            # The lapse is counted at once and logged at the next liveness
            # tick: wait for the line.
            expired = wait_for(lambda: [int(m.group(1)) for m in re.finditer(
                r'ownership lease expired.* expired_at_ms=(\d+)', c.read_log(zombie))], 10,
                "node %d to log its lease expiry" % zombie)
            committed = [ts_ms(m.group(1)) for k in rest for m in re.finditer(
                r'^ts=(\S+) .*ownership decision committed" epoch=%d down=%d '
                % (v3["epoch"], zombie), c.read_log(k), re.M)]
            self.assertEqual(len(committed), 1, "the down decision of epoch %d" % v3["epoch"])
            log("node %d's lease ran out %d ms before it was committed down"
                % (zombie, committed[0] - expired[-1]))
            self.assertLess(expired[-1], committed[0])
            v4 = wait_for(lambda: agreed(c, all3, [], v3["epoch"] + 1), 30,
                          "node %d committed up after SIGCONT" % zombie)
            self.check_counts(v4)

            # ---- SIGKILL the leader: the new one gives the others a grace
            # period and commits only the old leader down
            old = c.leader()
            rest = [k for k in all3 if k != old]
            t0 = time.monotonic()
            c.kill(old)
            seen = []

            def only_old_down():
                for k in rest:
                    v = ownership(c, k, stale=True)
                    seen.append(tuple(v["down"]))
                    for d in v["down"]:
                        if d != old:
                            raise _Wrong("node %d committed down beside the dead leader: %r"
                                         % (d, v))
                return agreed(c, rest, [old], v4["epoch"] + 1)

            try:
                v5 = wait_for(only_old_down, DECISION_BOUND_S + 10, "old leader committed down")
            except _Wrong as e:
                self.fail(str(e))
            log("handoff decision: SIGKILL leader %d -> down committed by the new leader on "
                "nodes %s: %.0f ms (election + liveness_down_ms of grace); reason: %s"
                % (old, rest, (time.monotonic() - t0) * 1000, v5["reason"]))
            self.assertEqual(v5["live"], rest)

    def test_membership_changes(self):
        with Cluster(3, settings=SETTINGS, name="ownership-members") as c:
            v0 = wait_for(lambda: agreed(c, [1, 2, 3], []), 30, "a first ownership record")
            new = c.add()
            v1 = wait_for(lambda: agreed(c, [1, 2, 3, new], [], v0["epoch"] + 1), 30,
                          "node %d in the ring" % new)
            self.assertEqual(v1["live"], [1, 2, 3, new])
            self.assertEqual(v1["reason"], "members changed")
            c.remove(new)
            v2 = wait_for(lambda: agreed(c, [1, 2, 3], [], v1["epoch"] + 1), 30,
                          "node %d out of the ring" % new)
            self.assertEqual([m["id"] for m in v2["members"]], [1, 2, 3])

    def test_single_node(self):
        with Cluster(1, settings=SETTINGS, name="ownership1") as c:
            v = wait_for(lambda: agreed(c, [1], []), 30, "the first ownership record")
            self.assertEqual(v["live"], [1])
            c.must_create_tenant(1, "own-1")
            # Watch for twice the down threshold: the epoch never moves.
            end = time.monotonic() + 2 * DOWN_MS / 1000.0
            polls = 0
            while time.monotonic() < end and polls < 10000:
                polls += 1
                w = ownership(c, 1)
                self.assertEqual(w["epoch"], v["epoch"], w)
                self.assertTrue(w["node"]["leased"], w)
                time.sleep(0.1)
            self.assertEqual(ownership(c, 1)["node"]["epoch_changes"], 1)


class _Wrong(Exception):
    """A state that must never be seen (not retried by wait_for)."""


if __name__ == "__main__":
    harness.run()
