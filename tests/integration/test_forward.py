#!/usr/bin/env python3
"""Writes through a follower, many at once: the follower combines them into
shared calls to the leader (node/backend.c, forward_combined), and each
write still gets its own answer, exactly once. Then the same while the
leader is frozen (SIGSTOP) and another is elected: every write is retried
with its Idempotency-Key until it succeeds, and each one exists exactly
once in the end, with the id of its first success."""

import os
import signal
import sys
import threading
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Cluster, run_threads, unique_name, wait_for  # noqa: E402

WRITERS = 32
WRITES_EACH = 8


class ForwardTest(unittest.TestCase):
    def names_once(self, c, node, names):
        """Every name in names exists exactly once (a linearizable list)."""
        items, _ = c.list_tenants(node)
        counts = {}
        for t in items:
            counts[t["name"]] = counts.get(t["name"], 0) + 1
        missing = [nm for nm in names if counts.get(nm, 0) == 0]
        twice = [nm for nm in names if counts.get(nm, 0) > 1]
        self.assertEqual(missing, [], "acknowledged writes missing")
        self.assertEqual(twice, [], "writes applied twice")
        return {t["name"]: t["id"] for t in items}

    def test_combined(self):
        with Cluster(3, name="forward") as c:
            leader = c.leader()
            follower = c.followers(leader)[0]
            entries0, commands0 = c.proposed(leader)
            prefix = unique_name("fw")
            answers = {}
            lock = threading.Lock()

            def writer(i):
                for j in range(WRITES_EACH):
                    name = "%s-%d-%d" % (prefix, i, j)
                    desc = "writer %d, write %d" % (i, j)
                    r = c.create_tenant(follower, name, description=desc)
                    self.assertEqual(r.status, 201, "POST %s through node %d: %r"
                                     % (name, follower, r))
                    # Its own object, not a neighbour's from the same call.
                    self.assertEqual(r.json["name"], name, repr(r))
                    self.assertEqual(r.json["description"], desc, repr(r))
                    self.assertEqual(r.header("etag"), harness.etag_of(r.json["mod_revision"]))
                    with lock:
                        answers[name] = r.json

            run_threads(WRITERS, writer)
            total = WRITERS * WRITES_EACH
            self.assertEqual(len(answers), total)
            self.assertEqual(len({a["id"] for a in answers.values()}), total, "ids not unique")
            self.assertEqual(len({a["mod_revision"] for a in answers.values()}), total,
                             "two writes answered with one revision")
            ids = self.names_once(c, leader, list(answers))
            for name, a in answers.items():
                self.assertEqual(ids[name], a["id"], name)
            # Each answered write reads back the same from the follower.
            for name in list(answers)[:WRITERS]:
                r = c.get(follower, "/api/v1/tenants/" + answers[name]["id"])
                self.assertEqual(r.status, 200, repr(r))
                self.assertEqual(r.json, answers[name])
            # They were combined: fewer raft entries than commands (the
            # leader proposes each forwarded call's writes as one entry).
            entries1, commands1 = c.proposed(leader)
            self.assertGreaterEqual(commands1 - commands0, total)
            self.assertLess(entries1 - entries0, commands1 - commands0,
                            "every forwarded write went into an entry of its own")

    def test_leader_frozen(self):
        # Short deadlines so that calls stuck on the frozen leader give up
        # and the writes are retried on the next leader within the test.
        settings = {"request_timeout_ms": "2000"}
        with Cluster(3, settings=settings, name="forward_frozen") as c:
            leader = c.leader()
            follower = c.followers(leader)[0]
            prefix = unique_name("fz")
            first_ids = {}
            lock = threading.Lock()
            some_done = threading.Event()
            frozen = threading.Event()
            after = []

            def writer(i):
                for j in range(WRITES_EACH):
                    name = "%s-%d-%d" % (prefix, i, j)
                    t = c.create_until_ok(follower, 90, name=name)
                    self.assertEqual(t["name"], name)
                    with lock:
                        first_ids[name] = t["id"]
                        if frozen.is_set():
                            after.append(name)
                        if len(first_ids) >= WRITERS:
                            some_done.set()
                    if j == 1 and i % 2 == 0:
                        # Half the writers wait for the freeze, so that
                        # writes are queued and out while it happens.
                        frozen.wait(timeout=60)

            def freezer():
                some_done.wait(timeout=60)
                os.kill(c.pid(leader), signal.SIGSTOP)
                frozen.set()

            f = threading.Thread(target=freezer, daemon=True)
            f.start()
            try:
                run_threads(WRITERS, writer)
                f.join(timeout=60)
                self.assertTrue(frozen.is_set(), "the leader was never frozen")
                harness.log("%d of %d writes succeeded after the freeze" % (len(after), len(first_ids)))
                others = [k for k in (1, 2, 3) if k != leader]

                def new_leader():
                    views = [c.cluster_info(k) for k in others]
                    ids = {v["leader_id"] for v in views}
                    return ids.pop() if len(ids) == 1 and ids != {leader} else None

                now = wait_for(new_leader, 30, "a leader other than the frozen node %d" % leader)
                self.assertIn(now, others)
                ids = self.names_once(c, now, list(first_ids))
                for name, tid in first_ids.items():
                    self.assertEqual(ids[name], tid, name)
            finally:
                if c.running(leader):
                    os.kill(c.pid(leader), signal.SIGCONT)
            # The old leader comes back as a follower and agrees.
            wait_for(lambda: c.cluster_info(leader)["leader_id"] != leader, 30,
                     "node %d to follow again" % leader)
            ids = self.names_once(c, leader, list(first_ids))
            for name, tid in first_ids.items():
                self.assertEqual(ids[name], tid, name)


if __name__ == "__main__":
    harness.run()
