"""Unit tests of tools/chaos_check.py: the checker must accept histories
that are linearizable and reject those that are not, and each invariant
must catch the bug it is there for. No cluster is started.

    python3 tests/chaos/test_checker.py
"""

import json
import os
import random
import sys
import tempfile
import time
import unittest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "tools"))

import chaos_check as cc  # noqa: E402

MS = 1_000_000  # history times are nanoseconds


class H:
    """Builds a history. Times are in milliseconds; ret=None for an
    operation whose outcome is unknown."""

    def __init__(self):
        self.events = []
        self.n = 0
        self.revision = 0

    def op(self, p, f, key, inv, ret, typ, args, result=None, status=None, rev=None,
           **extra):
        self.n += 1
        self.events.append({"type": "invoke", "op": self.n, "process": p, "f": f, "key": key,
                            "t": int(inv * MS), "args": args})
        if typ is not None:
            ev = {"type": typ, "op": self.n, "t": int((ret if ret is not None else inv) * MS),
                  "result": result or {}, "status": status, "rev": rev}
            ev.update(extra)
            self.events.append(ev)
        return self.n

    # Shorthands; rev defaults to plausible values so that the invariants
    # stay quiet unless a test is about them.
    def create(self, p, key, inv, ret, desc, tid=None, typ="ok", status=None, rev=None,
               **extra):
        if typ == "ok":
            status = status or 201
        return self.op(p, "create", key, inv, ret, typ, {"name": key, "desc": desc,
                                                         "idem": "i-%s" % desc},
                       {"id": tid} if typ == "ok" else {}, status, rev, **extra)

    def read(self, p, key, inv, ret, found=None, by_id=None, rev=None, typ="ok"):
        args = {"name": key}
        if by_id:
            args["id"] = by_id
        if found is None:
            result = {"found": False}
        else:
            tid, desc, mod = found
            result = {"found": True, "id": tid, "desc": desc, "mod_rev": mod}
        return self.op(p, "read", key, inv, ret, typ, args, result,
                       200 if typ == "ok" else None, rev)

    def update(self, p, key, inv, ret, tid, if_rev, expect, desc, typ="ok", status=None,
               rev=None, **extra):
        if typ == "ok":
            status = 200
        return self.op(p, "update", key, inv, ret, typ,
                       {"name": key, "id": tid, "if_rev": if_rev, "expect": expect,
                        "desc": desc}, {}, status, rev, **extra)

    def delete(self, p, key, inv, ret, tid, if_rev, expect, typ="ok", status=None, rev=None,
               **extra):
        if typ == "ok":
            status = 204
        return self.op(p, "delete", key, inv, ret, typ,
                       {"name": key, "id": tid, "if_rev": if_rev, "expect": expect}, {},
                       status, rev, **extra)

    def final(self, nodes, tenants, revision):
        for k in nodes:
            self.events.append({"type": "final", "node": k, "revision": revision,
                                "tenants": [dict(t) for t in tenants]})

    def history(self):
        return cc.parse_events(json.loads(json.dumps(self.events)))


def lin(h, **kw):
    return cc.check_linearizability(h.history(), **kw)["verdict"]


def checks(h):
    rep = cc.check(h.history())
    return {name: (ok, details) for name, ok, _s, details in rep.checks}, rep


class Linearizable(unittest.TestCase):
    def test_sequential(self):
        h = H()
        h.create(0, "a", 0, 1, "d1", "X", rev=1)
        h.read(1, "a", 2, 3, ("X", "d1", 1), rev=1)
        h.update(0, "a", 4, 5, "X", 1, "d1", "d2", rev=2)
        h.read(1, "a", 6, 7, ("X", "d2", 2), by_id="X", rev=2)
        h.delete(0, "a", 8, 9, "X", 2, "d2", rev=3)
        h.read(1, "a", 10, 11, None, rev=3)
        h.read(1, "a", 12, 13, None, by_id="X", rev=3)
        h.create(2, "a", 14, 15, "d3", "Y", rev=4)
        h.read(1, "a", 16, 17, None, by_id="X", rev=4)  # the old id stays gone
        self.assertEqual(lin(h), cc.LINEARIZABLE)

    def test_concurrent_reorder(self):
        # The read overlaps the update and sees the new value; the second
        # read, also overlapping, sees the old one: order them old, update,
        # new.
        h = H()
        h.create(0, "a", 0, 1, "d1", "X", rev=1)
        h.update(0, "a", 2, 10, "X", 1, "d1", "d2", rev=2)
        h.read(1, "a", 3, 9, ("X", "d2", 2), rev=2)
        h.read(2, "a", 3, 4, ("X", "d1", 1), rev=1)
        self.assertEqual(lin(h), cc.LINEARIZABLE)

    def test_failed_cas_and_conflicts(self):
        h = H()
        h.create(0, "a", 0, 1, "d1", "X", rev=1)
        h.create(1, "a", 2, 3, "d9", typ="fail", status=409, rev=1)
        h.update(0, "a", 4, 5, "X", 1, "d1", "d2", rev=2)
        h.update(1, "a", 6, 7, "X", 1, "d1", "d3", typ="fail", status=412, rev=2)
        h.delete(1, "a", 8, 9, "X", 1, "d1", typ="fail", status=412, rev=2)
        h.update(1, "a", 10, 11, "Z", 1, "dz", "d4", typ="fail", status=404, rev=2)
        self.assertEqual(lin(h), cc.LINEARIZABLE)

    def test_unknown_write_seen_later(self):
        # A create that timed out took effect: a later read sees it.
        h = H()
        h.create(0, "a", 0, None, "d1", typ="info", error="timeout")
        h.read(1, "a", 50, 51, ("X", "d1", 1), rev=1)
        self.assertEqual(lin(h), cc.LINEARIZABLE)

    def test_unknown_write_never_happened(self):
        h = H()
        h.create(0, "a", 0, 1, "d1", "X", rev=1)
        h.update(1, "a", 2, None, "X", 1, "d1", "d2", typ="info", error="timeout")
        h.read(2, "a", 50, 51, ("X", "d1", 1), rev=1)
        self.assertEqual(lin(h), cc.LINEARIZABLE)

    def test_unknown_update_takes_effect_late(self):
        # An update that timed out may take effect long after: a read sees
        # the old value, a later read the new one.
        h = H()
        h.create(0, "a", 0, 1, "d1", "X", rev=1)
        h.update(1, "a", 2, None, "X", 1, "d1", "d2", typ="info", error="timeout")
        h.read(2, "a", 50, 51, ("X", "d1", 1), rev=1)
        h.read(2, "a", 60, 61, ("X", "d2", 2), rev=2)
        self.assertEqual(lin(h), cc.LINEARIZABLE)

    def test_reads_without_answer_and_unsent_are_ignored(self):
        h = H()
        h.create(0, "a", 0, 1, "d1", "X", rev=1)
        h.read(1, "a", 2, None, ("X", "zzz", 9), typ="info")
        h.op(2, "update", "a", 3, 4, "fail", {"name": "a", "id": "X", "if_rev": 1,
                                              "expect": "d1", "desc": "d5"}, {}, None, None,
             sent=False, error="connection refused")
        h.read(1, "a", 5, 6, ("X", "d1", 1), rev=1)
        self.assertEqual(lin(h), cc.LINEARIZABLE)

    def test_keys_are_independent(self):
        h = H()
        h.create(0, "a", 0, 10, "d1", "X", rev=1)
        h.create(1, "b", 0, 10, "e1", "Y", rev=2)
        h.read(2, "a", 11, 12, ("X", "d1", 1), rev=2)
        h.read(2, "b", 11, 12, ("Y", "e1", 2), rev=2)
        self.assertEqual(lin(h), cc.LINEARIZABLE)


class NotLinearizable(unittest.TestCase):
    def test_stale_read(self):
        # A read that starts after an update completed sees the old value.
        h = H()
        h.create(0, "a", 0, 1, "d1", "X", rev=1)
        h.update(0, "a", 2, 3, "X", 1, "d1", "d2", rev=2)
        h.read(1, "a", 4, 5, ("X", "d1", 1), rev=2)
        self.assertEqual(lin(h), cc.VIOLATION)

    def test_stale_read_after_delete(self):
        h = H()
        h.create(0, "a", 0, 1, "d1", "X", rev=1)
        h.delete(0, "a", 2, 3, "X", 1, "d1", rev=2)
        h.read(1, "a", 4, 5, ("X", "d1", 1), by_id="X", rev=2)
        self.assertEqual(lin(h), cc.VIOLATION)

    def test_read_by_id_misses_existing(self):
        h = H()
        h.create(0, "a", 0, 1, "d1", "X", rev=1)
        h.read(1, "a", 2, 3, None, by_id="X", rev=1)
        self.assertEqual(lin(h), cc.VIOLATION)

    def test_two_cas_from_same_value_both_succeed(self):
        # Lost update: two compare-and-sets from d1 both report success.
        h = H()
        h.create(0, "a", 0, 1, "d1", "X", rev=1)
        h.update(1, "a", 2, 6, "X", 1, "d1", "d2", rev=2)
        h.update(2, "a", 2, 6, "X", 1, "d1", "d3", rev=3)
        self.assertEqual(lin(h), cc.VIOLATION)

    def test_double_create(self):
        h = H()
        h.create(0, "a", 0, 5, "d1", "X", rev=1)
        h.create(1, "a", 0, 5, "d2", "Y", rev=2)
        self.assertEqual(lin(h), cc.VIOLATION)

    def test_conflict_on_absent_name(self):
        h = H()
        h.create(1, "a", 0, 1, "d9", typ="fail", status=409, rev=0)
        self.assertEqual(lin(h), cc.VIOLATION)

    def test_precondition_failed_on_matching_value(self):
        h = H()
        h.create(0, "a", 0, 1, "d1", "X", rev=1)
        h.update(1, "a", 2, 3, "X", 1, "d1", "d2", typ="fail", status=412, rev=1)
        self.assertEqual(lin(h), cc.VIOLATION)

    def test_value_seen_before_its_write_was_invoked(self):
        h = H()
        h.read(1, "a", 0, 1, ("X", "d1", 1), rev=1)
        h.create(0, "a", 5, None, "d1", typ="info", error="timeout")
        self.assertEqual(lin(h), cc.VIOLATION)

    def test_read_flip_flop(self):
        # Two sequential reads during one long update: new, then old again.
        h = H()
        h.create(0, "a", 0, 1, "d1", "X", rev=1)
        h.update(0, "a", 2, 20, "X", 1, "d1", "d2", rev=2)
        h.read(1, "a", 3, 4, ("X", "d2", 2), rev=2)
        h.read(1, "a", 5, 6, ("X", "d1", 1), rev=2)
        self.assertEqual(lin(h), cc.VIOLATION)

    def test_explanation_names_the_culprit(self):
        h = H()
        h.create(0, "a", 0, 1, "d1", "X", rev=1)
        h.update(0, "a", 2, 3, "X", 1, "d1", "d2", rev=2)
        bad = h.read(1, "a", 4, 5, ("X", "d1", 1), rev=2)
        res = cc.check_linearizability(h.history())
        self.assertEqual(len(res["violations"]), 1)
        self.assertEqual(res["violations"][0].key, "a")
        self.assertIn("op %d " % bad, res["violations"][0].detail)


def simulate(seed, n_ops=600, processes=5, keys=2, unknown_rate=0.05, mutate=None):
    """A linearizable history by construction: each operation takes effect
    at a random instant of its interval, on a register per key, and its
    outcome is computed there. Returns the H."""
    rng = random.Random(seed)
    h = H()
    free_at = [0.0] * processes
    pending = []  # (effect time, process, op spec)
    t = 0.0
    for i in range(n_ops):
        p = rng.randrange(processes)
        inv = max(free_at[p], t) + rng.uniform(0, 2)
        t = inv
        dur = rng.uniform(0.5, 8)
        effect = inv + rng.uniform(0, dur)
        key = "k%d" % rng.randrange(keys)
        pending.append((effect, inv, inv + dur, p, key, i))
        free_at[p] = inv + dur
    pending.sort()
    state = {}          # key -> (id, desc, rev)
    rev = 0
    results = []
    seen = {}           # key -> last (id, desc, rev) observed by anyone
    for effect, inv, ret, p, key, i in pending:
        cur = state.get(key)
        known = seen.get(key)
        choice = rng.random()
        unknown = rng.random() < unknown_rate
        if cur is None and choice < 0.5 or known is None:
            desc = "c%d" % i
            if cur is None:
                rev += 1
                tid = "T%d" % i
                state[key] = (tid, desc, rev)
                seen[key] = state[key]
                results.append((inv, ret, p, "create", key, desc, tid, "ok", rev, None))
            else:
                results.append((inv, ret, p, "create", key, desc, None, "fail", rev, 409))
        elif choice < 0.5:
            results.append((inv, ret, p, "read", key, cur, None, "ok", rev, None))
            seen[key] = cur
        elif choice < 0.85:
            tid, expect, if_rev = known
            desc = "c%d" % i
            if cur is not None and cur[0] == tid and cur[1] == expect:
                rev += 1
                state[key] = (tid, desc, rev)
                seen[key] = state[key]
                results.append((inv, ret, p, "update", key, (tid, if_rev, expect, desc), None,
                                "ok", rev, None))
            else:
                status = 412 if cur is not None and cur[0] == tid else 404
                results.append((inv, ret, p, "update", key, (tid, if_rev, expect, desc), None,
                                "fail", rev, status))
        else:
            tid, expect, if_rev = known
            if cur is not None and cur[0] == tid and cur[1] == expect:
                rev += 1
                state[key] = None
                seen[key] = None
                results.append((inv, ret, p, "delete", key, (tid, if_rev, expect), None, "ok",
                                rev, None))
            else:
                status = 412 if cur is not None and cur[0] == tid else 404
                results.append((inv, ret, p, "delete", key, (tid, if_rev, expect), None, "fail",
                                rev, status))
        if unknown and results[-1][7] == "ok" and results[-1][3] != "read":
            r = results[-1]
            results[-1] = r[:7] + ("info",) + r[8:]
    if mutate:
        mutate(results)
    results.sort(key=lambda r: r[0])
    for inv, ret, p, f, key, a, b, typ, r, status in results:
        if typ == "info":
            ret = None
        if f == "create":
            h.create(p, key, inv, ret, a, b, typ=typ, status=status, rev=r)
        elif f == "read":
            h.read(p, key, inv, ret, None if a is None else (a[0], a[1], a[2]), rev=r)
        elif f == "update":
            tid, if_rev, expect, desc = a
            h.update(p, key, inv, ret, tid, if_rev, expect, desc, typ=typ, status=status, rev=r)
        else:
            tid, if_rev, expect = a
            h.delete(p, key, inv, ret, tid, if_rev, expect, typ=typ, status=status, rev=r)
    return h


class Simulated(unittest.TestCase):
    def test_random_linearizable_histories(self):
        for seed in range(20):
            h = simulate(seed)
            res = cc.check_linearizability(h.history())
            self.assertEqual(res["verdict"], cc.LINEARIZABLE,
                             "seed %d: %s" % (seed, [r.detail for r in res["violations"]]))

    def test_big_history_is_checked_quickly(self):
        h = simulate(99, n_ops=6000, processes=6, keys=12)
        started = time.monotonic()
        res = cc.check_linearizability(h.history())
        self.assertEqual(res["verdict"], cc.LINEARIZABLE)
        self.assertLess(time.monotonic() - started, 30.0)

    def test_a_stale_read_in_a_long_history(self):
        # Append to a random history: a write that completes, then a read
        # that starts after it and returns the value before it.
        for seed in range(5):
            h = simulate(seed, n_ops=300, keys=1)
            last = h.events[-1]["t"] / MS + 100
            h.create(9, "fresh", last, last + 1, "z1", "Z", rev=10**6)
            h.update(9, "fresh", last + 2, last + 3, "Z", 10**6, "z1", "z2", rev=10**6 + 1)
            h.read(8, "fresh", last + 4, last + 5, ("Z", "z1", 10**6), rev=10**6 + 1)
            self.assertEqual(lin(h), cc.VIOLATION, "seed %d" % seed)

    def test_budget_gives_unknown_not_a_hang(self):
        h = simulate(3, n_ops=400, keys=1)
        res = cc.check_linearizability(h.history(), max_steps=50)
        self.assertEqual(res["verdict"], cc.UNKNOWN)


class Invariants(unittest.TestCase):
    def _good(self):
        h = H()
        h.create(0, "a", 0, 1, "d1", "X", rev=1)
        h.update(0, "a", 2, 3, "X", 1, "d1", "d2", rev=2)
        h.read(1, "a", 4, 5, ("X", "d2", 2), rev=2)
        return h

    def test_good_history_passes_everything(self):
        h = self._good()
        h.final([1, 2, 3], [{"id": "X", "name": "a", "description": "d2",
                             "create_revision": 1, "mod_revision": 2}], 2)
        res, rep = checks(h)
        self.assertTrue(rep.ok, "\n".join(rep.lines()))
        self.assertEqual(rep.lost, 0)

    def test_revision_going_back(self):
        # Linearizable values, but the read's X-Cairn-Revision is older than
        # a write that completed before it started.
        h = H()
        h.create(0, "a", 0, 1, "d1", "X", rev=5)
        h.read(1, "b", 2, 3, None, rev=4)
        res, _rep = checks(h)
        self.assertFalse(res["revision order"][0])

    def test_write_revision_not_increasing(self):
        h = H()
        h.create(0, "a", 0, 1, "d1", "X", rev=5)
        h.create(1, "b", 2, 3, "e1", "Y", rev=5)
        res, _rep = checks(h)
        self.assertFalse(res["revision order"][0])
        self.assertFalse(res["revision identity"][0])  # two writes, one revision

    def test_description_with_two_revisions(self):
        h = H()
        h.create(0, "a", 0, 1, "d1", "X", rev=1)
        h.read(1, "a", 2, 3, ("X", "d1", 7), rev=7)
        res, _rep = checks(h)
        self.assertFalse(res["revision identity"][0])

    def test_phantom_description(self):
        h = H()
        h.create(0, "a", 0, 1, "d1", "X", rev=1)
        h.read(1, "a", 2, 3, ("X", "nobody-wrote-this", 2), rev=2)
        res, _rep = checks(h)
        self.assertFalse(res["revision identity"][0])

    def test_failed_update_seen(self):
        h = H()
        h.create(0, "a", 0, 1, "d1", "X", rev=1)
        h.update(1, "a", 2, 3, "X", 1, "d1", "d2", typ="fail", status=412, rev=1)
        h.read(1, "a", 4, 5, ("X", "d2", 2), rev=2)
        res, _rep = checks(h)
        self.assertFalse(res["revision identity"][0])

    def test_lost_acknowledged_update(self):
        h = self._good()
        h.final([1, 2, 3], [{"id": "X", "name": "a", "description": "d1",
                             "create_revision": 1, "mod_revision": 1}], 2)
        res, rep = checks(h)
        self.assertEqual(rep.lost, 1)
        self.assertFalse(res["no acknowledged write lost"][0])

    def test_lost_acknowledged_create(self):
        h = self._good()
        h.final([1, 2, 3], [], 2)
        _res, rep = checks(h)
        self.assertEqual(rep.lost, 2)  # the create and the update

    def test_deleted_is_not_lost(self):
        h = self._good()
        h.delete(0, "a", 6, None, "X", 2, "d2", typ="info", error="timeout")
        h.final([1, 2], [], 3)
        _res, rep = checks(h)
        self.assertEqual(rep.lost, 0)

    def test_delete_from_older_revision_does_not_excuse(self):
        h = self._good()
        h.delete(0, "a", 6, None, "X", 1, "d1", typ="info", error="timeout")
        h.final([1, 2], [], 3)
        _res, rep = checks(h)
        self.assertEqual(rep.lost, 2)

    def test_nodes_disagree(self):
        h = self._good()
        t = {"id": "X", "name": "a", "description": "d2", "create_revision": 1,
             "mod_revision": 2}
        h.final([1, 2], [t], 2)
        h.final([3], [], 2)
        res, _rep = checks(h)
        self.assertFalse(res["convergence"][0])
        h2 = self._good()
        h2.final([1, 2], [t], 2)
        h2.final([3], [t], 1)
        res, _rep = checks(h2)
        self.assertFalse(res["convergence"][0])

    def test_node_without_final_state(self):
        h = self._good()
        t = {"id": "X", "name": "a", "description": "d2", "create_revision": 1,
             "mod_revision": 2}
        h.events.append({"type": "final", "node": 1, "revision": None, "tenants": [],
                         "error": "no answer"})
        h.final([2, 3], [t], 2)
        res, rep = checks(h)
        self.assertFalse(res["convergence"][0])
        self.assertEqual(rep.lost, 0)  # judged on the nodes that answered

    def test_no_final_state_is_a_failure(self):
        res, rep = checks(self._good())
        self.assertFalse(rep.ok)
        self.assertIsNone(rep.lost)

    def test_retry_answered_409_but_first_attempt_applied(self):
        h = H()
        h.create(0, "a", 0, 9, "d1", typ="fail", status=409, rev=3,
                 attempts=[{"node": 1, "type": "info", "error": "timeout"},
                           {"node": 2, "type": "fail", "status": 409}])
        h.read(1, "a", 10, 11, ("X", "d1", 1), rev=3)
        res, _rep = checks(h)
        self.assertFalse(res["idempotent retries"][0])

    def test_retry_created_a_second_tenant(self):
        h = H()
        h.create(0, "a", 0, 9, "d1", "Y", rev=2,
                 attempts=[{"node": 1, "type": "ok", "id": "X"},
                           {"node": 2, "type": "ok", "id": "Y"}])
        res, _rep = checks(h)
        self.assertFalse(res["idempotent retries"][0])

    def test_unexpected_answers(self):
        h = self._good()
        h.op(2, "update", "a", 6, 7, "fail", {"name": "a", "id": "X", "if_rev": 2,
                                              "expect": "d2", "desc": "d3"}, {}, 500, None,
             error="500 internal")
        h.op(2, "read", "a", 8, 9, "fail", {"name": "a"}, {}, 404, None,
             error="404 no resource at /api/v1/tenants")
        res, _rep = checks(h)
        self.assertFalse(res["unexpected answers"][0])
        self.assertEqual(len(res["unexpected answers"][1]), 2)
        # A 500's effect is unknown: the write may have happened.
        h.read(1, "a", 10, 11, ("X", "d3", 3), rev=3)
        self.assertEqual(lin(h), cc.LINEARIZABLE)

    def test_history_file_round_trip_and_torn_line(self):
        h = self._good()
        with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
            for ev in h.events:
                f.write(json.dumps(ev) + "\n")
            f.write('{"type": "invoke", "op": 99, "pro')  # torn by a crash
            path = f.name
        try:
            loaded = cc.load(path)
        finally:
            os.unlink(path)
        self.assertEqual(len(loaded.ops), 3)
        self.assertEqual(len(loaded.problems), 1)
        self.assertEqual(cc.check_linearizability(loaded)["verdict"], cc.LINEARIZABLE)


if __name__ == "__main__":
    started = time.monotonic()
    prog = unittest.main(verbosity=2, exit=False)
    sys.stderr.write("finished in %.1f s\n" % (time.monotonic() - started))
    sys.exit(0 if prog.result.wasSuccessful() and prog.result.testsRun > 0 else 1)
