#!/usr/bin/env python3
"""A follower that falls behind while it takes a snapshot of its own must
survive the leader's InstallSnapshot arriving before that snapshot is on
disk.

libraft 0.22.1's legacy layer parks such an InstallSnapshot until the local
snapshot is written and then dereferences NULL instead of starting it
(takeSnapshotCb clears snapshot_pending before reading it): the follower
crashed with SIGSEGV. Cairn holds the message back in its io (raft/io.c)
and hands it to libraft once the local snapshot is written.

To provoke the race, the snapshot rhythm is tiny (a snapshot every 8
entries, 4 kept behind it) and writers run throughout, while a follower is
paused again and again with SIGSTOP: when it resumes, the append entries
queued in its socket make it take a snapshot of its own, and the leader,
which compacted past the follower meanwhile, sends an InstallSnapshot right
behind them. Without the hold-back a node crashed in most runs of this
test. Every node must stay up and hold every write."""

import os
import signal
import sys
import threading
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Cluster, log, wait_for  # noqa: E402

SETTINGS = {"snapshot_threshold": 8, "snapshot_trailing": 4}
ROUNDS = 12
WRITER_THREADS = 4
MAX_WRITES = 4000


class SnapshotRaceTest(unittest.TestCase):
    def test_follower_paused_under_compaction(self):
        with Cluster(3, settings=SETTINGS, name="snaprace") as c:
            stop = threading.Event()
            created = {}
            lock = threading.Lock()
            counter = [0]
            target = [c.leader()]

            def writer():
                while not stop.is_set():
                    with lock:
                        if counter[0] >= MAX_WRITES:
                            return
                        counter[0] += 1
                        i = counter[0]
                    try:
                        r = c.create_tenant(target[0], "race-%05d" % i, timeout=5)
                    except Exception:  # the node is paused or an election runs
                        r = None
                    if r is not None and r.status == 201:
                        with lock:
                            created[r.json["id"]] = r.json["name"]
                        continue
                    try:
                        target[0] = c.leader(timeout=10)
                    except Exception:
                        pass

            threads = [threading.Thread(target=writer, daemon=True)
                       for _ in range(WRITER_THREADS)]
            for t in threads:
                t.start()
            try:
                for rnd in range(ROUNDS):
                    leader = c.leader()
                    follower = c.followers(leader)[rnd % 2]
                    pid = c.pid(follower)
                    start_count = len(created)
                    os.kill(pid, signal.SIGSTOP)
                    try:
                        # Enough writes for the leader to compact past the
                        # paused follower (more than threshold + trailing).
                        wait_for(lambda: len(created) >= start_count + 24, 30,
                                 "writes while node %d is paused" % follower,
                                 interval=0.02)
                    finally:
                        os.kill(pid, signal.SIGCONT)
                    commit = c.self_member(leader)["commit_index"]
                    wait_for(lambda: c.self_member(follower)["applied_index"] >= commit, 30,
                             "node %d to catch up to %d (round %d)" % (follower, commit, rnd),
                             interval=0.02)
                    for k in (1, 2, 3):
                        self.assertTrue(c.running(k), "node %d died in round %d" % (k, rnd))
            finally:
                stop.set()
                for t in threads:
                    t.join(30)
            self.assertFalse(any(t.is_alive() for t in threads), "a writer thread hangs")
            log("%d writes in %d rounds" % (len(created), ROUNDS))

            # Every node holds every acknowledged write.
            leader = c.leader()
            commit = c.self_member(leader)["commit_index"]
            for k in (1, 2, 3):
                wait_for(lambda: c.self_member(k)["applied_index"] >= commit, 30,
                         "node %d to apply up to %d" % (k, commit))
                items, _ = c.list_tenants(k, stale=True, limit=1000)
                by_id = {t["id"]: t["name"] for t in items}
                for tid, name in created.items():
                    self.assertEqual(by_id.get(tid), name, "node %d lacks %s" % (k, tid))


if __name__ == "__main__":
    harness.run()
