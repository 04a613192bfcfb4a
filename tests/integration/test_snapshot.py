#!/usr/bin/env python3
"""A follower that was down while the leader compacted its log catches up
by installing a snapshot: with snapshot_threshold=64 and
snapshot_trailing=16, 300+ writes made while it is dead leave the entries it
misses only in a snapshot."""

import os
import sys
import threading
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Cluster, log, wait_for  # noqa: E402

SETTINGS = {"snapshot_threshold": 64, "snapshot_trailing": 16}
WRITES_WHILE_DOWN = 320
WRITER_THREADS = 4


def snapshot_files(data_dir):
    """Files named snapshot-* anywhere under data_dir (libraft's uv io keeps
    snapshot-TERM-INDEX-TIMESTAMP and its .meta in DATA/raft)."""
    found = set()
    for root, _dirs, files in os.walk(data_dir):
        for f in files:
            if f.startswith("snapshot-"):
                found.add(os.path.relpath(os.path.join(root, f), data_dir))
    return found


def snapshot_indexes(files):
    """Raft indexes of snapshot-TERM-INDEX-TIMESTAMP files (not .meta)."""
    out = set()
    for f in files:
        parts = os.path.basename(f).split("-")
        if len(parts) == 4 and not f.endswith(".meta") and all(p.isdigit() for p in parts[1:]):
            out.add(int(parts[2]))
    return out


class SnapshotTest(unittest.TestCase):
    def create_many(self, c, nodes, count):
        """Creates count tenants through nodes (several threads); returns
        {id: name}. Every write must succeed: a quorum is up throughout."""
        created = {}
        failures = []
        lock = threading.Lock()

        def work(worker):
            for i in range(worker, count, WRITER_THREADS):
                node = nodes[i % len(nodes)]
                name = "snap-%04d" % i
                try:
                    r = c.create_tenant(node, name)
                except Exception as e:  # reported below
                    with lock:
                        failures.append((name, repr(e)))
                    continue
                with lock:
                    if r.status == 201:
                        created[r.json["id"]] = name
                    else:
                        failures.append((name, repr(r)))

        threads = [threading.Thread(target=work, args=(w,), daemon=True)
                   for w in range(WRITER_THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
            self.assertFalse(t.is_alive(), "a writer thread hangs")
        self.assertEqual(failures, [], "writes with a quorum up failed")
        return created

    def test_catch_up_by_snapshot(self):
        with Cluster(3, settings=SETTINGS, name="snapshot") as c:
            first = {}
            for k in (1, 2, 3):
                t = c.must_create_tenant(k, "early-%d" % k)
                first[t["id"]] = t["name"]
            leader = c.leader()
            lagging, other = [k for k in (1, 2, 3) if k != leader]
            commit = c.self_member(leader)["commit_index"]
            wait_for(lambda: c.self_member(lagging)["applied_index"] >= commit, 20,
                     "node %d to apply the first writes" % lagging)
            c.kill(lagging)
            before = snapshot_files(c.data_dir(lagging))
            log("node %d snapshot files before: %s" % (lagging, sorted(before) or "none"))
            lagging_last = c.self_member(leader)["commit_index"]

            created = self.create_many(c, [leader, other], WRITES_WHILE_DOWN)
            self.assertEqual(len(created), WRITES_WHILE_DOWN)
            created.update(first)

            # The leader took a snapshot late enough that the entries the
            # dead follower misses are no longer in its log (it keeps only
            # snapshot_trailing entries before its last snapshot).
            need = lagging_last + SETTINGS["snapshot_trailing"] + 1
            leader_snaps = wait_for(
                lambda: [i for i in snapshot_indexes(snapshot_files(c.data_dir(leader)))
                         if i > need],
                30, "a snapshot past index %d in node %d's data directory" % (need, leader))
            log("leader %d snapshots at %s" % (leader, sorted(leader_snaps)))
            commit = c.self_member(leader)["commit_index"]

            c.start(lagging)
            wait_for(lambda: c.self_member(lagging)["applied_index"] >= commit, 90,
                     "restarted node %d to apply up to index %d" % (lagging, commit),
                     interval=0.1)
            # It got there through a snapshot install.
            installed = wait_for(lambda: snapshot_files(c.data_dir(lagging)) - before, 30,
                                 "a snapshot received by node %d" % lagging)
            log("node %d received %s" % (lagging, sorted(installed)))
            self.assertTrue([i for i in snapshot_indexes(installed) if i > lagging_last],
                            "no snapshot past index %d among %s" % (lagging_last, installed))

            # Its own copy holds every tenant.
            items, _ = c.list_tenants(lagging, stale=True)
            by_id = {t["id"]: t["name"] for t in items}
            self.assertEqual(by_id, created)
            for tid, name in created.items():
                r = c.get(lagging, "/api/v1/tenants/%s?consistency=stale" % tid)
                self.assertEqual(r.status, 200, "%s on node %d: %r" % (tid, lagging, r))
                self.assertEqual(r.json["name"], name)

            # And it is a full member again: linearizable reads and writes
            # through it work, and it applies what comes after the snapshot.
            c.wait_ready([lagging], timeout=30)
            t = c.must_create_tenant(lagging, "after-restart")
            for k in (1, 2, 3):
                r = c.get(k, "/api/v1/tenants/" + t["id"])
                self.assertEqual(r.status, 200, repr(r))
            items, _ = c.list_tenants(lagging)
            self.assertEqual(len(items), len(created) + 1)
            info = c.cluster_info(lagging)
            self.assertEqual(sorted(m["id"] for m in info["members"]), [1, 2, 3])
            self.assertEqual(info["leader_id"], c.leader())


if __name__ == "__main__":
    harness.run()
