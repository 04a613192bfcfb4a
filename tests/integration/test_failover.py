#!/usr/bin/env python3
"""SIGKILL the leader of a 3-node cluster under a steady stream of writes:
writes through the survivors succeed again within a few election timeouts,
the only errors clients see meanwhile are 503 problems, the killed node
restarts and catches up, and no acknowledged write is lost or doubled."""

import os
import sys
import threading
import time
import unittest
import uuid

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Cluster, is_conn_error, log, request, wait_for  # noqa: E402

# Liveness deadline (not a benchmark): a new leader must be elected and take
# writes within this many seconds of the kill. That is several election
# timeouts (1 s) plus one request_timeout_ms (5 s) for a write that was
# waiting on the dead leader.
RECOVERY_DEADLINE_S = 20.0
WRITER_MAX_WRITES = 5000
WRITER_MAX_SECONDS = 150.0


class Writer(threading.Thread):
    """Creates tenants through the given nodes in turn, each with its own
    Idempotency-Key, retrying one tenant (same key) until it is
    acknowledged. Bounded in count and time."""

    def __init__(self, urls, token):
        super().__init__(name="writer", daemon=True)
        self.urls = list(urls)
        self.token = token
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        self.acked = {}        # id -> name
        self.ack_log = []      # (attempt start, answered at, id)
        self.refusals = []     # (url, response) of every 503
        self.conn_errors = []  # (url, exception text)
        self.unexpected = []   # (url, name, response)
        self.crash = None
        self.attempts = 0

    def acks_started_after(self, t):
        with self.lock:
            return sum(1 for started, _done, _id in self.ack_log if started > t)

    def ack_count(self):
        with self.lock:
            return len(self.acked)

    def run(self):
        try:
            self._run()
        except BaseException as e:  # reported by the test
            self.crash = "%s: %s" % (type(e).__name__, e)

    def _run(self):
        deadline = time.monotonic() + WRITER_MAX_SECONDS
        turn = 0
        for i in range(WRITER_MAX_WRITES):
            name = "fo-%05d" % i
            key = "failover-%d-%s" % (i, uuid.uuid4().hex)
            done = False
            for _attempt in range(200):
                if self.stop_event.is_set() or time.monotonic() >= deadline:
                    return
                url = self.urls[turn % len(self.urls)]
                turn += 1
                started = time.monotonic()
                self.attempts += 1
                try:
                    r = request(url, "POST", "/api/v1/tenants", body={"name": name},
                                headers={"Idempotency-Key": key}, token=self.token)
                except Exception as e:
                    if not is_conn_error(e):
                        raise
                    with self.lock:
                        self.conn_errors.append((url, "%s: %s" % (type(e).__name__, e)))
                    time.sleep(0.05)
                    continue
                if r.status == 201:
                    with self.lock:
                        self.acked[r.json["id"]] = name
                        self.ack_log.append((started, time.monotonic(), r.json["id"]))
                    done = True
                    break
                if r.status == 503:
                    with self.lock:
                        self.refusals.append((url, r))
                    time.sleep(0.05)
                    continue
                with self.lock:
                    self.unexpected.append((url, name, r))
                break
            if not done and self.stop_event.is_set():
                return


class FailoverTest(unittest.TestCase):
    def test_leader_killed(self):
        with Cluster(3, name="failover") as c:
            for k in (1, 2, 3):
                c.must_create_tenant(k, "before-%d" % k)
            leader = c.leader()
            survivors = [k for k in (1, 2, 3) if k != leader]
            log("leader is node %d; writing through nodes %s" % (leader, survivors))
            writer = Writer([c.url(k) for k in survivors], c.token)
            writer.start()
            try:
                wait_for(lambda: writer.ack_count() >= 20, 30, "20 writes before the kill")
                c.kill(leader)
                killed_at = time.monotonic()

                new_leader = c.leader(timeout=RECOVERY_DEADLINE_S)
                self.assertIn(new_leader, survivors)
                # The election is in the new leader's log.
                wait_for(lambda: 'msg="raft role" state=leader' in c.read_log(new_leader), 10,
                         "node %d to log that it leads" % new_leader)
                wait_for(lambda: writer.acks_started_after(killed_at) >= 5,
                         max(1.0, RECOVERY_DEADLINE_S - (time.monotonic() - killed_at)),
                         "writes through the survivors to succeed again after the kill")
                log("writes succeed again %.1f s after the kill; new leader %d"
                    % (time.monotonic() - killed_at, new_leader))
                for k in survivors:
                    self.assertTrue(c.write_works(k), "a write through node %d" % k)

                # The killed node comes back while writes go on.
                c.start(leader)
                restarted_at = time.monotonic()
                wait_for(lambda: writer.acks_started_after(restarted_at) >= 20, 60,
                         "writes after the restart")
            finally:
                writer.stop_event.set()
                writer.join(harness.REQUEST_TIMEOUT_S + 5)
            self.assertFalse(writer.is_alive(), "the writer did not stop")
            self.assertIsNone(writer.crash, "writer crashed")

            log("writer: %d acknowledged, %d attempts, %d refusals (503), %d connection errors"
                % (len(writer.acked), writer.attempts, len(writer.refusals),
                   len(writer.conn_errors)))
            self.assertEqual(writer.unexpected, [], "answers other than 201 or 503")
            self.assertEqual(writer.conn_errors, [],
                             "survivors failed to answer (connection errors or hangs)")
            for url, r in writer.refusals:
                self.assertEqual(r.content_type, "application/problem+json", repr(r))
                self.assertIsNotNone(r.header("retry-after"), "Retry-After on %r" % r)

            # The restarted node catches up with everything committed.
            current = c.leader()
            commit = c.self_member(current)["commit_index"]
            for k in [leader] + survivors:
                wait_for(lambda: c.self_member(k)["applied_index"] >= commit, 60,
                         "node %d to apply up to index %d" % (k, commit), interval=0.1)

            # Nothing acknowledged is lost, nothing is doubled, on any node.
            expected_names = set(writer.acked.values())
            self.assertEqual(len(expected_names), len(writer.acked),
                             "one name acknowledged under two ids")
            for k in (1, 2, 3):
                for stale in (False, True):
                    items, _ = c.list_tenants(k, stale=stale)
                    by_id = {t["id"]: t["name"] for t in items}
                    names = [t["name"] for t in items]
                    self.assertEqual(len(names), len(set(names)), "node %d: a name twice" % k)
                    missing = [i for i in writer.acked if i not in by_id]
                    self.assertEqual(missing, [],
                                     "node %d (stale=%s) lost acknowledged tenants" % (k, stale))
                    for tid, name in writer.acked.items():
                        self.assertEqual(by_id[tid], name)
            # A sample read one by one from the restarted node.
            for tid in list(writer.acked)[:: max(1, len(writer.acked) // 25)]:
                r = c.get(leader, "/api/v1/tenants/" + tid)
                self.assertEqual(r.status, 200, repr(r))
                self.assertEqual(r.json["name"], writer.acked[tid])
            info = c.cluster_info(leader)
            self.assertEqual(info["leader_id"], current)
            self.assertEqual(sorted(m["id"] for m in info["members"]), [1, 2, 3])


if __name__ == "__main__":
    harness.run()
