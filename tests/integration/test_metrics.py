#!/usr/bin/env python3
"""/metrics on a real 3-node cluster: Prometheus text format that parses
line by line (HELP and TYPE before samples, label sets well formed,
histograms cumulative with +Inf equal to _count), request counters labelled
by the route's pattern (never a raw path with an id) that move with the
requests, raft gauges on every node that agree with GET /api/v1/cluster, a
leader-change counter that moves when the leader is killed, and no
authentication needed."""

import os
import re
import sys
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Cluster, run, unique_name, wait_for  # noqa: E402

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{((?:[^"}]|"(?:[^"\\]|\\.)*")*)\})? '
                    r'(-?[0-9.e+-]+|\+Inf|NaN)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse(text, test):
    """{(name, frozenset(labels)): value}, checking the format."""
    samples = {}
    typed = {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            test.assertIn(kind, ("counter", "gauge", "histogram"), line)
            typed[name] = kind
            continue
        test.assertTrue(line, "empty line in the exposition")
        m = SAMPLE.match(line)
        test.assertIsNotNone(m, "bad sample line %r" % line)
        name, labels = m.group(1), m.group(3) or ""
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        test.assertTrue(name in typed or base in typed, "sample %s before its TYPE" % name)
        pairs = LABEL.findall(labels)
        test.assertEqual(",".join('%s="%s"' % p for p in pairs), labels, line)
        key = (name, frozenset(pairs))
        test.assertNotIn(key, samples, "duplicate sample %r" % line)
        samples[key] = float(m.group(4))
    return samples


def value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())), 0.0)


class MetricsTest(unittest.TestCase):
    def scrape(self, c, node):
        r = c.request(node, "GET", "/metrics", auth=False)
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.header("content-type").startswith("text/plain"), r)
        return parse(r.body.decode(), self)

    def test_metrics(self):
        with Cluster(3, name="metrics") as c:
            before = self.scrape(c, 2)
            key = dict(route="/api/v1/tenants/{id}", method="GET", status="200")
            t = c.must_create_tenant(2, unique_name("m"))
            for _ in range(3):
                self.assertEqual(c.get(2, "/api/v1/tenants/" + t["id"]).status, 200)
            self.assertEqual(c.get(2, "/api/v1/tenants/" + t["id"] + "x").status, 400)
            self.assertEqual(c.get(2, "/api/v1/nothing-here").status, 404)
            after = self.scrape(c, 2)
            self.assertEqual(value(after, "cairn_http_requests_total", **key) -
                             value(before, "cairn_http_requests_total", **key), 3)
            self.assertEqual(value(after, "cairn_http_requests_total",
                                   route="/api/v1/tenants", method="POST", status="201") -
                             value(before, "cairn_http_requests_total",
                                   route="/api/v1/tenants", method="POST", status="201"), 1)
            self.assertGreaterEqual(value(after, "cairn_http_requests_total",
                                          route="/api/v1/tenants/{id}", method="GET",
                                          status="400"), 1)
            self.assertGreaterEqual(value(after, "cairn_http_requests_total", route="other",
                                          method="GET", status="404"), 1)
            # Labels are route patterns, never raw paths.
            for (name, labels), _ in after.items():
                for k, v in labels:
                    if k == "route":
                        self.assertNotIn(t["id"], v)
            # Histograms: cumulative buckets, +Inf == _count.
            hkey = dict(route="/api/v1/tenants/{id}", method="GET")
            buckets = sorted(((float(dict(lbl)["le"]) if dict(lbl)["le"] != "+Inf"
                               else float("inf")), v)
                             for (n, lbl), v in after.items()
                             if n == "cairn_http_request_duration_seconds_bucket" and
                             dict(lbl).get("route") == hkey["route"] and
                             dict(lbl).get("method") == "GET")
            self.assertTrue(buckets)
            counts = [v for _, v in buckets]
            self.assertEqual(counts, sorted(counts))
            self.assertEqual(counts[-1], value(after, "cairn_http_request_duration_seconds_count",
                                               **hkey))
            self.assertGreater(value(after, "cairn_http_request_duration_seconds_sum", **hkey), 0)

            # Raft gauges on every node, consistent with the cluster view.
            leader = c.leader()
            for k in (1, 2, 3):
                s = self.scrape(c, k)
                for g in ("cairn_raft_term", "cairn_raft_commit_index",
                          "cairn_raft_applied_index", "cairn_raft_last_index",
                          "cairn_raft_leader_changes_total", "cairn_store_revision",
                          "cairn_event_streams", "process_resident_memory_bytes",
                          "cairn_ownership_epoch", "cairn_ownership_leased",
                          "cairn_ownership_handoffs_in_total",
                          "cairn_ownership_handoffs_out_total",
                          "cairn_ownership_lease_lapses_total"):
                    self.assertIn((g, frozenset()), s, "node %d lacks %s" % (k, g))
                self.assertGreaterEqual(value(s, "cairn_raft_term"), 1)
                self.assertGreaterEqual(value(s, "cairn_raft_commit_index"),
                                        value(s, "cairn_raft_applied_index") - 0)
                self.assertGreaterEqual(value(s, "cairn_raft_leader_changes_total"), 1)
                self.assertEqual(value(s, "cairn_raft_leader"), 1.0 if k == leader else 0.0)

            # Killing the leader moves the survivors' term and leader changes.
            other = [k for k in (1, 2, 3) if k != leader][0]
            old = self.scrape(c, other)
            c.kill(leader)

            def moved():
                s = self.scrape(c, other)
                return (value(s, "cairn_raft_leader_changes_total") >
                        value(old, "cairn_raft_leader_changes_total") and
                        value(s, "cairn_raft_term") > value(old, "cairn_raft_term"))
            wait_for(moved, 30, "a new leader counted on node %d" % other)
            # Its death is committed: a new ownership epoch on the survivors.
            wait_for(lambda: value(self.scrape(c, other), "cairn_ownership_epoch") >
                     value(old, "cairn_ownership_epoch"), 60,
                     "a new ownership epoch on node %d" % other)
            c.start(leader)


if __name__ == "__main__":
    run()
