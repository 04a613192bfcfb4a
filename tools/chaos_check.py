"""The checker of tools/chaos: is a history of tenant operations
linearizable, and do the simple invariants hold?

A history is a JSON-lines file written by tools/chaos (see HISTORY FORMAT
below). This module reads it and checks:

* linearizability, per tenant name (P-compositionality: operations on
  different names never interact, so the history is partitioned by name and
  each part checked alone), with the Wing-Gong algorithm as improved by Lowe
  (WGL: depth-first search over the order of linearization, memoizing each
  (set of linearized operations, model state) already explored). The model
  is a register per name holding "absent" or (tenant id, description), with
  create, read, compare-and-set update and compare-and-set delete;
* revision order: X-Cairn-Revision never goes back in real time (an
  operation invoked after another completed sees a revision at least as
  high, strictly higher for a write);
* revision identity: every description (each write writes a new one) is
  seen with one tenant id and one mod_revision; no two writes share a
  revision; an update's revision is higher than the one it replaced; no
  description is seen that no write could have written;
* idempotency: every attempt of one create (same Idempotency-Key) names the
  same tenant, and a create answered 409 never took effect anyway;
* no acknowledged write lost: in the final state read from every node after
  the faults were healed, each acknowledged create or update is still there
  or was replaced by a later write or removed by a delete that could have
  removed it;
* convergence: every node reports the same tenants at the same revision;
* no unexpected answers (400, 422, 500, ...).

Standard library only. `python3 tools/chaos check HISTORY` runs it on a
saved history; tests/chaos/test_checker.py feeds it known histories.

HISTORY FORMAT: one JSON object per line.
  {"type":"invoke","op":N,"process":P,"f":F,"key":NAME,"t":NS,"args":{...}}
  {"type":"ok"|"fail"|"info","op":N,"t":NS,"status":HTTP or null,
   "rev":X-Cairn-Revision or null,"node":K,"result":{...},"error":TEXT,
   "sent":true|false}
  {"type":"final","node":K,"revision":R,"tenants":[{...}, ...]}
  {"type":"nemesis"|"meta"|"note", ...}   (informative)
F is create (args name, desc, idem), read (args name, and id when read by
id), update (args id, if_rev, expect, desc) or delete (args id, if_rev,
expect). "ok" means the operation took effect (or, for a read, answered);
"fail" means it definitely did not (412, 404, 409, or never sent: "sent"
false); "info" means it may or may not have (timeout, 503, connection lost
after sending). Results: create {"id"}, read {"found", "id", "desc",
"mod_rev"}, update/delete {}. t is a monotonic clock in nanoseconds of the
one process that ran every client.
"""

import json
import time

INF = float("inf")

# Verdicts.
LINEARIZABLE = "linearizable"
VIOLATION = "NOT-LINEARIZABLE"
UNKNOWN = "unknown"

# Statuses that are a definite outcome of a write; anything else answered
# by the server (500, 400, 422, ...) is unexpected and its effect unknown.
DEFINITE_FAIL = {"create": (409,), "update": (404, 412), "delete": (404, 412)}


class Op:
    """One operation: its invocation and its completion."""

    __slots__ = ("id", "process", "f", "key", "inv", "ret", "type", "args", "result",
                 "status", "rev", "node", "error", "sent", "attempts", "cid", "replayed")

    def __init__(self, ev):
        self.id = ev["op"]
        self.process = ev.get("process")
        self.f = ev["f"]
        self.key = ev["key"]
        self.inv = ev["t"]
        self.args = ev.get("args") or {}
        self.ret = INF
        self.type = "info"  # until its completion is read
        self.result = {}
        self.status = None
        self.rev = None
        self.node = None
        self.error = "no completion recorded"
        self.sent = True
        self.attempts = []
        self.cid = None       # a create's tenant id, resolved if unknown
        self.replayed = False

    def complete(self, ev):
        self.type = ev["type"]
        self.ret = ev["t"] if self.type != "info" else INF
        self.result = ev.get("result") or {}
        self.status = ev.get("status")
        self.rev = ev.get("rev")
        self.node = ev.get("node")
        self.error = ev.get("error")
        self.sent = ev.get("sent", True)
        self.attempts = ev.get("attempts") or []
        self.replayed = bool(ev.get("replayed"))

    @property
    def is_write(self):
        return self.f in ("create", "update", "delete")

    def describe(self, t0=0):
        """One line for a report."""
        def ms(t):
            return "inf" if t == INF else "%.1f" % ((t - t0) / 1e6)
        a = self.args
        if self.f == "create":
            what = "create(%s, desc=%s)" % (self.key, a.get("desc"))
        elif self.f == "read":
            what = "read(%s%s)" % (self.key, ", id=%s" % a["id"][:8] if a.get("id") else "")
        elif self.f == "update":
            what = "update(%s, id=%s, if=%s/%s -> %s)" % (
                self.key, str(a.get("id"))[:8], a.get("if_rev"), a.get("expect"), a.get("desc"))
        else:
            what = "delete(%s, id=%s, if=%s/%s)" % (
                self.key, str(a.get("id"))[:8], a.get("if_rev"), a.get("expect"))
        if self.type == "ok":
            if self.f == "read":
                r = self.result
                out = ("-> (%s, %s, rev %s)" % (str(r.get("id"))[:8], r.get("desc"),
                                                 r.get("mod_rev"))
                       if r.get("found") else "-> absent")
            elif self.f == "create":
                out = "-> ok id=%s" % str(self.result.get("id"))[:8]
            else:
                out = "-> ok"
        elif self.type == "fail":
            out = "-> fail %s" % (self.status if self.status is not None else self.error)
        else:
            out = "-> unknown (%s)" % (self.error or self.status)
        return "op %d p%s [%s, %s] ms node %s rev %s: %s %s" % (
            self.id, self.process, ms(self.inv), ms(self.ret), self.node, self.rev, what, out)


class History:
    def __init__(self):
        self.ops = []
        self.finals = []
        self.nemesis = []
        self.meta = {}
        self.problems = []  # malformed lines and the like

    @property
    def t0(self):
        return min((op.inv for op in self.ops), default=0)


def parse_events(events):
    """Builds a History from an iterable of event dicts."""
    h = History()
    by_id = {}
    for n, ev in enumerate(events, 1):
        kind = ev.get("type")
        if kind == "invoke":
            op = Op(ev)
            if op.id in by_id:
                h.problems.append("event %d: operation %s invoked twice" % (n, op.id))
                continue
            by_id[op.id] = op
            h.ops.append(op)
        elif kind in ("ok", "fail", "info"):
            op = by_id.get(ev.get("op"))
            if op is None:
                h.problems.append("event %d: completion of unknown operation %s"
                                  % (n, ev.get("op")))
                continue
            op.complete(ev)
        elif kind == "final":
            h.finals.append(ev)
        elif kind == "nemesis":
            h.nemesis.append(ev)
        elif kind == "meta":
            h.meta.update(ev)
    return h


def load(path):
    """Reads a history file. A line that is not JSON (a torn last line) is
    noted as a problem, not fatal."""
    events = []
    problems = []
    with open(path, "rb") as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                events.append(json.loads(line))
            except ValueError as e:
                problems.append("line %d: not JSON (%s)" % (n, e))
    h = parse_events(events)
    h.problems[:0] = problems
    return h


# ----------------------------------------------------------------------------
# The model: one register per tenant name.


def _unexpected(op):
    """A completion whose status is neither success nor a definite failure
    of its kind (400, 422, 500, a 404 that did not come from the store, ...):
    its effect is unknown."""
    if op.type != "fail" or not op.sent:
        return False
    return op.status not in DEFINITE_FAIL.get(op.f, ()) or op.rev is None


def _effective_type(op):
    """ok, fail, info or drop (no effect and nothing observed: a read that
    timed out, a request never sent)."""
    if op.type == "fail" and not op.sent:
        return "drop"
    if op.f == "read" and op.type != "ok":
        return "drop"
    if _unexpected(op):
        return "info"
    return op.type


def step(state, op, kind):
    """The register model. state is None (no tenant of that name) or (id,
    description). Returns the next state, or False if op cannot have
    happened, with that outcome, in that state."""
    f = op.f
    a = op.args
    if f == "read":
        r = op.result
        if r.get("found"):
            return state if state == (r.get("id"), r.get("desc")) else False
        if a.get("id") is None:  # by name
            return state if state is None else False
        return state if state is None or state[0] != a["id"] else False
    if f == "create":
        if kind == "fail":  # 409: the name is taken
            return state if state is not None else False
        return (op.cid, a.get("desc")) if state is None else False
    # update or delete, compare-and-set on the description last observed
    if kind == "fail":
        if op.status == 412:
            ok = state is not None and state[0] == a.get("id") and state[1] != a.get("expect")
        else:  # 404
            ok = state is None or state[0] != a.get("id")
        return state if ok else False
    if state != (a.get("id"), a.get("expect")):
        return False
    return (a.get("id"), a.get("desc")) if f == "update" else None


class KeyResult:
    def __init__(self, key, verdict, ops, steps, detail=None):
        self.key = key
        self.verdict = verdict
        self.ops = ops
        self.steps = steps
        self.detail = detail


def check_key(key, ops, max_steps=2_000_000, deadline=None, t0=0):
    """Wing-Gong-Lowe over the operations of one key. ops: list of (op,
    kind) with kind ok, fail or info. Returns a KeyResult."""
    n = len(ops)
    if n == 0:
        return KeyResult(key, LINEARIZABLE, 0, 0)
    # Entries: 2 per op (call, return), sorted by time; calls before
    # returns at the same instant (the more permissive reading).
    events = []
    for i, (op, kind) in enumerate(ops):
        events.append((op.inv, 0, i))
        events.append((op.ret if kind != "info" else INF, 1, i))
    events.sort(key=lambda e: (e[0], e[1]))
    m = len(events)
    # Doubly linked list over entries 1..m; 0 is the head sentinel and -1
    # the end.
    nxt = [k + 1 for k in range(m)] + [-1]
    prv = [k - 1 for k in range(m + 1)]
    is_call = [False] * (m + 1)
    op_of = [0] * (m + 1)
    match = [0] * (m + 1)
    call_entry = [0] * n
    ret_entry = [0] * n
    for pos, (_t, kind_bit, i) in enumerate(events, 1):
        op_of[pos] = i
        if kind_bit == 0:
            is_call[pos] = True
            call_entry[i] = pos
        else:
            ret_entry[i] = pos
    for i in range(n):
        match[call_entry[i]] = ret_entry[i]
    definite = [kind != "info" for (_op, kind) in ops]
    remaining = sum(definite)

    def lift(e):
        r = match[e]
        nxt[prv[e]] = nxt[e]
        if nxt[e] != -1:
            prv[nxt[e]] = prv[e]
        nxt[prv[r]] = nxt[r]
        if nxt[r] != -1:
            prv[nxt[r]] = prv[r]

    def unlift(e):
        r = match[e]
        nxt[prv[r]] = r
        if nxt[r] != -1:
            prv[nxt[r]] = r
        nxt[prv[e]] = e
        if nxt[e] != -1:
            prv[nxt[e]] = e

    state = None
    linearized = 0
    cache = set()
    stack = []
    steps = 0
    best_depth = -1
    best = None
    entry = nxt[0]
    while True:
        if remaining == 0:
            return KeyResult(key, LINEARIZABLE, n, steps)
        steps += 1
        if steps > max_steps or (deadline is not None and steps % 4096 == 0
                                 and time.monotonic() > deadline):
            return KeyResult(key, UNKNOWN, n, steps,
                             "search budget exhausted after %d steps (%d operations)"
                             % (steps, n))
        if is_call[entry]:
            i = op_of[entry]
            op, kind = ops[i]
            new_state = step(state, op, kind)
            if new_state is not False:
                lin2 = linearized | (1 << i)
                memo = (lin2, new_state)
                if memo not in cache:
                    cache.add(memo)
                    stack.append((entry, state))
                    state = new_state
                    linearized = lin2
                    lift(entry)
                    if definite[i]:
                        remaining -= 1
                    entry = nxt[0]
                    continue
            entry = nxt[entry]
        else:
            # The return of an operation not yet linearized: backtrack.
            if len(stack) > best_depth:
                best_depth = len(stack)
                best = ([ops[op_of[e]][0] for e, _s in stack], state, ops[op_of[entry]][0])
            if not stack:
                return KeyResult(key, VIOLATION, n, steps,
                                 _explain(key, ops, best, t0))
            entry, state = stack.pop()
            i = op_of[entry]
            linearized &= ~(1 << i)
            unlift(entry)
            if definite[i]:
                remaining += 1
            entry = nxt[entry]


def _explain(key, ops, best, t0):
    lines = ["key %s: no linearization of its %d operations exists." % (key, len(ops))]
    if best is not None:
        done, state, blocked = best
        lines.append("Longest linearizable prefix found: %d operations, ending in state %s:"
                     % (len(done), _fmt_state(state)))
        for op in done[-8:]:
            lines.append("    " + op.describe(t0))
        lines.append("after which this operation must take effect (it completed) but "
                     "cannot:")
        lines.append("    " + blocked.describe(t0))
        lines.append("Operations concurrent with it or just before it:")
        around = [op for op, _k in ops
                  if op is not blocked and op.inv <= blocked.ret and op.ret >= blocked.inv - 2e9]
        around.sort(key=lambda o: o.inv)
        for op in around[:40]:
            lines.append("    " + op.describe(t0))
    return "\n".join(lines)


def _fmt_state(state):
    if state is None:
        return "absent"
    return "(id %s, desc %s)" % (str(state[0])[:8], state[1])


def resolve_create_ids(ops):
    """A create's tenant id: from its answer, else from any observation of
    its (unique) description, else a placeholder no read can match."""
    desc_id = {}
    for op in ops:
        if op.f == "read" and op.type == "ok" and op.result.get("found"):
            desc_id.setdefault(op.result.get("desc"), op.result.get("id"))
        elif op.f in ("update", "delete"):
            desc_id.setdefault(op.args.get("expect"), op.args.get("id"))
            if op.f == "update":
                desc_id.setdefault(op.args.get("desc"), op.args.get("id"))
    for op in ops:
        if op.f == "create":
            if op.type == "ok" and op.result.get("id"):
                op.cid = op.result["id"]
            else:
                op.cid = desc_id.get(op.args.get("desc"), "unseen-create-%s" % op.id)


def check_linearizability(h, max_steps=2_000_000, budget_s=300.0):
    """Partitions h by key and runs check_key on each. Returns a dict:
    verdict, keys, ops_checked, results (KeyResult list of the non-
    linearizable or unknown keys)."""
    resolve_create_ids(h.ops)
    per_key = {}
    for op in h.ops:
        kind = _effective_type(op)
        if kind == "drop":
            continue
        per_key.setdefault(op.key, []).append((op, kind))
    deadline = time.monotonic() + budget_s
    bad = []
    unknown = []
    checked = 0
    t0 = h.t0
    for key in sorted(per_key):
        res = check_key(key, per_key[key], max_steps=max_steps, deadline=deadline, t0=t0)
        checked += res.ops
        if res.verdict == VIOLATION:
            bad.append(res)
        elif res.verdict == UNKNOWN:
            unknown.append(res)
    verdict = VIOLATION if bad else UNKNOWN if unknown else LINEARIZABLE
    return {"verdict": verdict, "keys": len(per_key), "ops_checked": checked,
            "violations": bad, "unknown": unknown}


# ----------------------------------------------------------------------------
# Invariants. Each returns (ok, summary, details list).


def _observations(h):
    """(op or None, id, desc, mod_rev, where) of every tenant seen."""
    obs = []
    for op in h.ops:
        if op.f == "read" and op.type == "ok" and op.result.get("found"):
            obs.append((op, op.result.get("id"), op.result.get("desc"),
                        op.result.get("mod_rev"), "op %d" % op.id))
        elif op.f in ("create", "update") and op.type == "ok" and op.rev is not None \
                and not op.replayed:
            oid = op.result.get("id") if op.f == "create" else op.args.get("id")
            obs.append((op, oid, op.args.get("desc"), op.rev, "op %d" % op.id))
    for fin in h.finals:
        for t in fin.get("tenants") or ():
            obs.append((None, t.get("id"), t.get("description"), t.get("mod_revision"),
                        "final state of node %s" % fin.get("node")))
    return obs


def check_revision_order(h):
    """X-Cairn-Revision never goes back in real time."""
    ops = [op for op in h.ops if op.rev is not None and op.ret != INF and (
        op.type == "ok" or (op.type == "fail" and op.sent and not _unexpected(op)))]
    by_ret = sorted(ops, key=lambda o: o.ret)
    details = []
    j = 0
    max_rev, max_op = -1, None
    t0 = h.t0
    for b in sorted(ops, key=lambda o: o.inv):
        while j < len(by_ret) and by_ret[j].ret < b.inv:
            if by_ret[j].rev > max_rev:
                max_rev, max_op = by_ret[j].rev, by_ret[j]
            j += 1
        strict = b.type == "ok" and b.is_write
        if b.rev < max_rev or (strict and b.rev == max_rev):
            details.append("revision went back: %s\n      was invoked after %s had completed"
                           % (b.describe(t0), max_op.describe(t0)))
    return (not details, "%d operations compared" % len(ops), details)


def check_revision_identity(h):
    details = []
    by_desc = {}
    by_rev = {}
    for op, oid, desc, rev, where in _observations(h):
        if desc is None:
            continue
        seen = by_desc.setdefault(desc, (oid, rev, where))
        if (seen[0], seen[1]) != (oid, rev):
            details.append("description %s seen as (id %s, rev %s) in %s and as (id %s, rev %s) "
                           "in %s" % (desc, seen[0], seen[1], seen[2], oid, rev, where))
        if rev is not None:
            other = by_rev.setdefault(rev, (desc, where))
            if other[0] != desc:
                details.append("revision %s carries two writes: %s (%s) and %s (%s)"
                               % (rev, other[0], other[1], desc, where))
    writers = {}
    for op in h.ops:
        if op.f in ("create", "update"):
            writers[op.args.get("desc")] = op
        if op.f == "update" and op.type == "ok" and op.rev is not None:
            if op.args.get("if_rev") is not None and op.rev <= op.args["if_rev"]:
                details.append("op %d: update to revision %s is not above If-Match %s"
                               % (op.id, op.rev, op.args["if_rev"]))
    for desc, (oid, rev, where) in by_desc.items():
        w = writers.get(desc)
        if w is None:
            details.append("description %s (%s) was never written by any client" % (desc, where))
        elif w.type == "fail" and w.sent and not _unexpected(w) and w.f == "update":
            details.append("description %s (%s) was written by op %d, which failed with %s"
                           % (desc, where, w.id, w.status))
        elif w.type == "fail" and not w.sent:
            details.append("description %s (%s) was written by op %d, which was never sent"
                           % (desc, where, w.id))
    return (not details, "%d descriptions, %d revisions" % (len(by_desc), len(by_rev)), details)


def check_idempotency(h):
    """One create (one Idempotency-Key) makes at most one tenant, and a
    create answered 409 made none."""
    details = []
    seen_descs = {desc for _op, _id, desc, _rev, _w in _observations(h)}
    creates = 0
    retried = 0
    for op in h.ops:
        if op.f != "create":
            continue
        creates += 1
        ids = {a.get("id") for a in op.attempts if a.get("id")}
        if len(op.attempts) > 1:
            retried += 1
        if len(ids) > 1:
            details.append("op %d: attempts with one Idempotency-Key created %s"
                           % (op.id, ", ".join(sorted(ids))))
        if op.type == "fail" and op.status == 409 and op.args.get("desc") in seen_descs:
            details.append("op %d: answered 409 but its tenant (description %s) exists: an "
                           "earlier attempt took effect and the retry was not recognised"
                           % (op.id, op.args.get("desc")))
    return (not details, "%d creates, %d retried" % (creates, retried), details)


def final_state(h):
    """The agreed final state {name: (id, desc, rev)} or None if there is no
    final record."""
    answered = [fin for fin in h.finals if not fin.get("error")]
    if not answered:
        return None
    fin = answered[0]
    return {t.get("name"): (t.get("id"), t.get("description"), t.get("mod_revision"))
            for t in fin.get("tenants") or ()}


def check_convergence(h):
    if not h.finals:
        return (False, "no final state recorded", ["no node's final state was recorded"])
    details = ["node %s: no final state (%s)" % (fin.get("node"), fin.get("error"))
               for fin in h.finals if fin.get("error")]
    answered = [fin for fin in h.finals if not fin.get("error")]
    if not answered:
        return (False, "no node answered", details)
    ref = answered[0]

    def canon(fin):
        return sorted((t.get("id"), t.get("name"), t.get("description"), t.get("mod_revision"))
                      for t in fin.get("tenants") or ())
    ref_items = canon(ref)
    for fin in answered[1:]:
        if fin.get("revision") != ref.get("revision"):
            details.append("node %s is at revision %s, node %s at %s" % (
                fin.get("node"), fin.get("revision"), ref.get("node"), ref.get("revision")))
        items = canon(fin)
        if items != ref_items:
            a, b = set(ref_items), set(items)
            details.append("node %s and node %s differ: only on %s: %s; only on %s: %s" % (
                ref.get("node"), fin.get("node"), ref.get("node"), sorted(a - b)[:5],
                fin.get("node"), sorted(b - a)[:5]))
    return (not details, "%d of %d nodes at revision %s, %d tenants" % (
        len(answered), len(h.finals), ref.get("revision"), len(ref_items)), details)


def lost_writes(h):
    """Acknowledged creates and updates that the final state does not
    reflect. Returns (count or None if there is no final state, details)."""
    final = final_state(h)
    if final is None:
        return None, ["no final state: not checked"]
    final_by_id = {v[0]: (name, v[1], v[2]) for name, v in final.items()}
    deletes = {}
    for op in h.ops:
        if op.f == "delete" and _effective_type(op) in ("ok", "info"):
            deletes.setdefault(op.args.get("id"), []).append(op)
    acked = []
    last_acked = {}  # id -> highest acknowledged revision
    for op in h.ops:
        if op.type != "ok" or op.f not in ("create", "update") or op.rev is None:
            continue
        oid = op.result.get("id") if op.f == "create" else op.args.get("id")
        acked.append((op, oid))
        last_acked[oid] = max(last_acked.get(oid, 0), op.rev)
    details = []
    count = 0
    for op, oid in acked:
        rev = op.rev
        cur = final_by_id.get(oid)
        if cur is not None:
            if cur[2] is not None and cur[2] >= rev:
                continue
            why = "final state has it at revision %s with %s" % (cur[2], cur[1])
        else:
            # Gone: fine if a delete could have removed the tenant after its
            # last acknowledged write (a compare-and-set delete from an
            # older revision would have failed).
            if any(d.args.get("if_rev") is None or d.args.get("if_rev") >= last_acked[oid]
                   for d in deletes.get(oid, ())):
                continue
            why = "tenant %s is gone and no delete could have removed it" % oid
        count += 1
        details.append("acknowledged write lost: op %d %s (revision %s): %s" % (
            op.id, op.f, rev, why))
    return count, details


def check_unexpected(h):
    details = []
    for op in h.ops:
        if _unexpected(op):
            details.append("op %d %s: unexpected answer %s: %s" % (
                op.id, op.f, op.status, (op.error or "")[:200]))
    return (not details, "%d unexpected answers" % len(details), details)


class Report:
    def __init__(self):
        self.lin = None
        self.checks = []  # (name, ok, summary, details)
        self.lost = None
        self.counts = {}

    @property
    def ok(self):
        return (self.lin is not None and self.lin["verdict"] == LINEARIZABLE
                and all(ok for _n, ok, _s, _d in self.checks) and self.lost == 0)

    def lines(self, max_details=20):
        out = []
        c = self.counts
        out.append("operations: %d (ok %d, failed %d, unknown %d, not sent %d); "
                   "by kind: %s" % (c.get("ops", 0), c.get("ok", 0), c.get("fail", 0),
                                    c.get("info", 0), c.get("unsent", 0),
                                    ", ".join("%s %d" % kv for kv in sorted(
                                        c.get("by_f", {}).items()))))
        lin = self.lin
        out.append("linearizability: %s (%d keys, %d operations checked%s%s)" % (
            lin["verdict"], lin["keys"], lin["ops_checked"],
            "; %d keys not linearizable" % len(lin["violations"]) if lin["violations"] else "",
            "; %d keys unknown" % len(lin["unknown"]) if lin["unknown"] else ""))
        for res in lin["violations"][:3]:
            out.extend("  " + line for line in res.detail.splitlines())
        for res in lin["unknown"][:3]:
            out.append("  key %s: %s" % (res.key, res.detail))
        for name, ok, summary, details in self.checks:
            out.append("%s: %s (%s)" % (name, "ok" if ok else "FAILED", summary))
            for d in details[:max_details]:
                out.append("  " + d)
            if len(details) > max_details:
                out.append("  ... and %d more" % (len(details) - max_details))
        return out


def check(h, max_steps=2_000_000, budget_s=300.0):
    """Every check on history h. Returns a Report."""
    rep = Report()
    c = rep.counts
    c["ops"] = len(h.ops)
    by_f = {}
    for op in h.ops:
        by_f[op.f] = by_f.get(op.f, 0) + 1
        if op.type == "fail" and not op.sent:
            c["unsent"] = c.get("unsent", 0) + 1
        else:
            c[op.type] = c.get(op.type, 0) + 1
    c["by_f"] = by_f
    rep.lin = check_linearizability(h, max_steps=max_steps, budget_s=budget_s)
    lost, lost_details = lost_writes(h)
    rep.lost = lost
    rep.checks.append(("history file", not h.problems, "%d problems" % len(h.problems),
                       list(h.problems)))
    rep.checks.append(("revision order",) + check_revision_order(h))
    rep.checks.append(("revision identity",) + check_revision_identity(h))
    rep.checks.append(("idempotent retries",) + check_idempotency(h))
    rep.checks.append(("no acknowledged write lost", lost == 0,
                       "%s lost" % ("not checked:" if lost is None else lost), lost_details))
    rep.checks.append(("convergence",) + check_convergence(h))
    rep.checks.append(("unexpected answers",) + check_unexpected(h))
    return rep
