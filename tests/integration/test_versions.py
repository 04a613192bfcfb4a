#!/usr/bin/env python3
"""Command versions in a mixed-version cluster (docs/upgrades.md). Node 3
is made to act as an older build that applies only command version 1
(cairnd's debug_command_version_max = 1):

1. restarted that way with nothing new to apply, it catches up, publishes
   "1" in its member record, and the cluster version drops to 1: a write
   that needs version 2 (a login: sessions expire, a version 2 field) is
   refused with 409 cluster-version naming node 3, and node 3 keeps running;
   upgraded again (the key removed), it publishes the newest version
   (NEWEST, store/store.h's STORE_COMMAND_VERSION) and the write works;
2. restarted that way while the log holds a version 2 command it has not
   applied, it refuses to apply it: it exits non-zero saying "command
   version 2 is newer than this build (1..1): upgrade this node" instead of
   skipping it; upgraded, it applies it and serves the same data;
3. writes that reach the leader together share raft entries (batches,
   command version 4) while every voter applies version 4: the leader's
   /metrics count more writes than entries, and every node serves every
   write, also writes through a follower (which forwards them to the
   leader combined); with node 3 acting as a build of version 3, the
   leader makes one entry per write and node 3 keeps running;
4. with every node acting as a build before /internal/v1/propose-objects
   (debug_propose_objects = 0: it answers 404), a follower's writes still
   succeed: it forwards them with propose-batch and says so in its log."""

import os
import re
import sys
import threading
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Cluster, lc, log, run_threads, wait_for  # noqa: E402

def conf_path(c, node):
    return os.path.join(c.node_dir(node), "cairnd.conf")


def set_key(c, node, key, value):
    """Sets key in node's cairnd.conf, or removes it (value None)."""
    path = conf_path(c, node)
    with open(path) as f:
        text = re.sub(r"^%s = \S+\n" % key, "", f.read(), flags=re.M)
    with open(path, "w") as f:
        f.write(text + ("%s = %s\n" % (key, value) if value is not None else ""))


def set_old_build(c, node, old, version=1):
    set_key(c, node, "debug_command_version_max", version if old else None)


def concurrent_creates(test, c, node, prefix, writers=24, each=8):
    """writers threads each create `each` tenants on node at once; returns
    their ids."""
    ids, errors = [], []
    lock = threading.Lock()

    def writer(w):
        for i in range(each):
            r = c.request(node, "POST", "/api/v1/tenants",
                          body={"name": "%s-%d-%d" % (prefix, w, i)})
            with lock:
                (ids.append(r.json["id"]) if r.status == 201 else errors.append(r))
    run_threads(writers, writer, timeout=120)
    test.assertEqual(errors, [])
    test.assertEqual(len(ids), writers * each)
    return ids


def versions(c, node):
    info = c.cluster_info(node)
    return info["command_version"], {m["id"]: m["command_version_max"] for m in info["members"]}


# STORE_COMMAND_VERSION of this build (store/store.h).
NEWEST = 4


class VersionsTest(unittest.TestCase):
    def test_mixed_versions(self):
        with Cluster(3, name="versions") as c:
            for k in (1, 2, 3):
                wait_for(lambda: versions(c, k) == (NEWEST, {1: NEWEST, 2: NEWEST, 3: NEWEST}),
                         30, "node %d to see every node publish version %d" % (k, NEWEST),
                         interval=0.2)

            # ---- 1. node 3 turns into an "old build" with nothing to apply
            c.stop(3)
            set_old_build(c, 3, True)
            c.start(3, wait="ready")
            for k in (1, 2, 3):
                wait_for(lambda: versions(c, k) == (1, {1: NEWEST, 2: NEWEST, 3: 1}), 30,
                         "node %d to see cluster version 1" % k, interval=0.2)
            for k in (1, 2, 3):
                r = c.login(k, c.admin["username"], c.admin["password"])
                harness.assert_problem(self, r, 409)
                self.assertTrue(r.json["type"].endswith("cluster-version"), r.json)
                self.assertIn("needs command version 2", r.json["detail"])
                self.assertIn("node 3 applies only 1..1", r.json["detail"])
            self.assertTrue(c.running(3), "node 3 stopped")
            self.assertEqual(c.get(3, "/readyz").status, 200)

            # Upgraded: it publishes the newest again and version 2 writes work.
            c.stop(3)
            set_old_build(c, 3, False)
            c.start(3, wait="ready")
            for k in (1, 2, 3):
                wait_for(lambda: versions(c, k)[0] == NEWEST, 30,
                         "node %d to see cluster version %d" % (k, NEWEST), interval=0.2)
            c.must_login(3, c.admin["username"], c.admin["password"])
            t = c.must_create_tenant(1, "after-upgrade")
            wait_for(lambda: c.get(3, "/api/v1/tenants/" + t["id"]).status == 200, 20,
                     "node 3 to serve the tenant")

            # ---- 2. a version 2 entry waits in the log for an "old" node 3
            c.stop(3)
            t2 = c.must_create_tenant(1, "while-node-3-was-down")
            c.must_login(2, c.admin["username"], c.admin["password"])  # a session: version 2
            set_old_build(c, 3, True)
            log_path = os.path.join(c.node_dir(3), "cairnd.log")
            c.start(3, wait="none")
            c.expected_down.add(3)
            wait_for(lambda: not c.running(3), 30, "node 3 to refuse and exit", interval=0.2)

            def exited():
                # "Not running" may come a moment before the status can be
                # collected (the process is still exiting).
                st = lc.exit_status(c.pids[3])
                return (st,) if st is not None else None
            status = wait_for(exited, 10, "node 3's exit status", interval=0.05)[0]
            self.assertNotIn(status, (0, None), "node 3 exit status %r" % status)
            with open(log_path, errors="replace") as f:
                text = f.read()
            self.assertIn("is newer than this build (1..1): upgrade this node", text)
            log("node 3 exited with status %s" % status)
            # The others never stopped serving.
            c.must_create_tenant(2, "during-refusal")

            set_old_build(c, 3, False)
            c.start(3, wait="ready")
            for tid in (t["id"], t2["id"]):
                wait_for(lambda: c.get(3, "/api/v1/tenants/" + tid).status == 200, 20,
                         "node 3 to serve tenant %s" % tid)
            ids = lambda k: sorted(x["id"] for x in c.list_tenants(k)[0])  # noqa: E731
            self.assertEqual(ids(3), ids(1))

            # ---- 3. batched entries, and none while a voter is at version 3
            for k in (1, 2, 3):
                wait_for(lambda: versions(c, k)[0] == NEWEST, 30,
                         "node %d to see cluster version %d" % (k, NEWEST), interval=0.2)
            leader = c.leader()
            e0, n0 = c.proposed(leader)
            made = concurrent_creates(self, c, leader, "batched")
            e1, n1 = c.proposed(leader)
            log("version %d: %d writes in %d entries" % (NEWEST, n1 - n0, e1 - e0))
            self.assertGreaterEqual(n1 - n0, len(made))
            self.assertLess(e1 - e0, n1 - n0, "no write shared an entry")
            # Through a follower: its writes share forwarded calls, and
            # the leader's entries.
            follower = [k for k in (1, 2, 3) if k != leader][0]
            e0, n0 = c.proposed(leader)
            made += concurrent_creates(self, c, follower, "forwarded")
            e1, n1 = c.proposed(leader)
            log("version %d via node %d: %d writes in %d entries" %
                (NEWEST, follower, n1 - n0, e1 - e0))
            self.assertLess(e1 - e0, n1 - n0, "no forwarded write shared an entry")
            for k in (1, 2, 3):
                wait_for(lambda: set(made) <= set(ids(k)), 30,
                         "node %d to serve every batched write" % k)

            c.stop(3)
            set_old_build(c, 3, True, version=NEWEST - 1)
            c.start(3, wait="ready")
            for k in (1, 2):
                wait_for(lambda: versions(c, k)[0] == NEWEST - 1, 30,
                         "node %d to see cluster version %d" % (k, NEWEST - 1), interval=0.2)
            leader = c.leader()
            e0, n0 = c.proposed(leader)
            made = concurrent_creates(self, c, leader, "single")
            made += concurrent_creates(self, c, [k for k in (1, 2, 3) if k != leader][0],
                                       "single-forwarded")
            e1, n1 = c.proposed(leader)
            log("version %d: %d writes in %d entries" % (NEWEST - 1, n1 - n0, e1 - e0))
            self.assertGreaterEqual(n1 - n0, len(made))
            self.assertEqual(e1 - e0, n1 - n0, "a batch while node 3 applies version 3")
            wait_for(lambda: set(made) <= set(ids(3)), 30, "node 3 to serve every write")
            self.assertTrue(c.running(3), "node 3 stopped")

            # ---- 4. leaders that serve no propose-objects (older builds)
            logs = {k: os.path.join(c.node_dir(k), "cairnd.log") for k in (1, 2, 3)}
            fallback = "leader serves no propose-objects"
            for k in (1, 2, 3):
                with open(logs[k], errors="replace") as f:
                    self.assertNotIn(fallback, f.read(), "node %d before" % k)
                c.stop(k)
                set_old_build(c, k, False)
                set_key(c, k, "debug_propose_objects", 0)
                c.start(k, wait="ready")
            for k in (1, 2, 3):
                wait_for(lambda: versions(c, k)[0] == NEWEST, 30,
                         "node %d to see cluster version %d" % (k, NEWEST), interval=0.2)

            def fell_back(k):
                with open(logs[k], errors="replace") as f:
                    return fallback in f.read()
            # Again if the follower took the lead meanwhile (it forwarded
            # nothing then); bounded.
            for attempt in range(3):
                leader = c.leader()
                follower = [k for k in (1, 2, 3) if k != leader][0]
                made = concurrent_creates(self, c, follower, "to-an-older-leader-%d" % attempt)
                for k in (1, 2, 3):
                    wait_for(lambda: set(made) <= set(ids(k)), 30,
                             "node %d to serve every write through node %d" % (k, follower))
                if fell_back(follower):
                    break
            self.assertTrue(fell_back(follower), "node %d logged no fallback" % follower)


if __name__ == "__main__":
    harness.run()
