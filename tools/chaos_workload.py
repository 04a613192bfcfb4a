"""The workload of tools/chaos: concurrent clients doing creates, reads,
compare-and-set updates and deletes of tenants against random nodes through
the public REST API, each operation's invocation and completion logged to a
history file (the format is in chaos_check.py).

Each tenant name is a register. Names come in generations: a client's n-th
operation uses one of KEYS_PER_GENERATION names of generation
n // OPS_PER_GENERATION, so every name sees a few hundred operations from
all clients at once (contention) and then rests (the checker's search stays
small). Each write writes a new, unique description, so the checker can
tell every write apart.

Outcomes: 2xx is "ok"; 409, 412 and 404 are "fail" (definitely not
applied); a request that could not be sent (connection refused) is "fail"
with sent=false; anything else sent (503, timeout, connection lost, 5xx) is
"info": it may or may not have taken effect. A create whose outcome is
unknown is retried with the same Idempotency-Key on other nodes until it
has an answer or its deadline passes; its attempts are logged with it.

Authentication: if the cluster directory holds admin.json
({"username","password"}) the clients log in (POST /api/v1/auth/login, on
any node that answers) and send `Authorization: Bearer <token>`; without
it they send no such header. A 401 logs in again (the request was not
applied) and retries once.

Standard library only.
"""

import http.client
import json
import os
import random
import threading
import time

KEYS_PER_GENERATION = 4
OPS_PER_GENERATION = 120      # per client
CREATE_ATTEMPTS = 4
CREATE_DEADLINE_S = 20.0
LOGIN_DEADLINE_S = 30.0


class HistoryWriter:
    """Appends events (dicts) as JSON lines; thread-safe; assigns op ids."""

    def __init__(self, path):
        self.path = path
        self._f = open(path, "a", buffering=1)
        self._lock = threading.Lock()
        self._next = 0

    def next_op(self):
        with self._lock:
            self._next += 1
            return self._next

    def write(self, event):
        line = json.dumps(event, separators=(",", ":"), sort_keys=True)
        with self._lock:
            if self._f is not None:
                self._f.write(line + "\n")

    def close(self):
        with self._lock:
            if self._f is not None:
                self._f.close()
                self._f = None


def now_ns():
    return time.monotonic_ns()


# ----------------------------------------------------------------------------
# HTTP


class NotSent(Exception):
    """The request never reached the node (connect failed)."""


def http_call(addr, method, path, body=None, headers=None, timeout=5.0):
    """One request to host:port. Returns (status, headers with lower-case
    names, body bytes). Raises NotSent if it could not connect, OSError or
    http.client.HTTPException if it failed after it was sent."""
    host, _, port = addr.rpartition(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        try:
            conn.connect()
        except (OSError, http.client.HTTPException) as e:
            raise NotSent("%s: %s" % (type(e).__name__, e)) from None
        hdrs = dict(headers or {})
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        conn.request(method, path, body=data, headers=hdrs)
        resp = conn.getresponse()
        payload = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, payload
    finally:
        conn.close()


class Auth:
    """The bearer token, if the cluster has an admin account."""

    def __init__(self, cluster_dir, addrs):
        self.path = os.path.join(cluster_dir, "admin.json")
        self.addrs = addrs  # {node id: "host:port"}, read at each login
        self._lock = threading.Lock()
        self._token = None
        self._gen = 0

    @property
    def enabled(self):
        return os.path.exists(self.path)

    def headers(self):
        if not self.enabled:
            return {}, 0
        with self._lock:
            if self._token is None:
                self._login_locked()
            return {"Authorization": "Bearer " + self._token}, self._gen

    def refresh(self, gen):
        """Called after a 401 with the generation of the token used."""
        with self._lock:
            if gen == self._gen:
                self._token = None

    def _login_locked(self):
        with open(self.path) as f:
            cred = json.load(f)
        body = {"username": cred["username"], "password": cred["password"]}
        deadline = time.monotonic() + LOGIN_DEADLINE_S
        last = "no node answered"
        while time.monotonic() < deadline:
            for nid, addr in sorted(self.addrs().items()):
                try:
                    st, _h, payload = http_call(addr, "POST", "/api/v1/auth/login", body,
                                                timeout=3.0)
                except (NotSent, OSError, http.client.HTTPException) as e:
                    last = "node %s: %s" % (nid, e)
                    continue
                if st == 200:
                    self._token = json.loads(payload)["token"]
                    self._gen += 1
                    return
                last = "node %s answered %d: %s" % (nid, st, payload[:200])
                if st in (400, 401, 403):
                    # Wrong credentials: retrying would only count toward
                    # the node's login throttle.
                    raise RuntimeError("login refused: %s" % last)
            time.sleep(0.5)  # 503 (no leader) or 429 (throttled): a moment later
        raise RuntimeError("login failed: %s" % last)


# ----------------------------------------------------------------------------
# Clients


class Outcome:
    __slots__ = ("type", "status", "headers", "json", "error", "sent", "node", "t0", "t1")

    def as_attempt(self):
        d = {"node": self.node, "status": self.status, "type": self.type,
             "t0": self.t0, "t1": self.t1}
        if self.error:
            d["error"] = self.error
        if isinstance(self.json, dict) and self.json.get("id"):
            d["id"] = self.json.get("id")
        if self.headers and self.headers.get("idempotent-replayed"):
            d["replayed"] = True
        return d


def _rev(headers):
    try:
        return int(headers.get("x-cairn-revision"))
    except (TypeError, ValueError):
        return None


class Client(threading.Thread):
    """One client: a thread doing one operation at a time until stop is
    set, paced to `rate` operations a second."""

    def __init__(self, index, seed, addrs, node_ids, history, auth, stop, rate, timeout,
                 hard_deadline):
        super().__init__(name="chaos-client-%d" % index, daemon=True)
        self.index = index
        self.rng = random.Random("%s/client/%d" % (seed, index))
        self.seed = seed
        self.addrs = addrs          # callable: {node id: "host:port"}
        self.node_ids = node_ids    # the ids to choose from
        self.history = history
        self.auth = auth
        self.stop = stop
        self.rate = rate
        self.timeout = timeout
        self.hard_deadline = hard_deadline
        self.known = {}             # name -> (id, desc, mod_rev) or None (absent)
        self.opn = 0
        self.counts = {"ok": 0, "fail": 0, "info": 0}
        self.error = None

    # One HTTP request, classified.
    def _send(self, node, method, path, body=None, headers=None):
        o = Outcome()
        o.node = node
        o.status = None
        o.headers = {}
        o.json = None
        o.error = None
        o.sent = True
        hdrs = dict(headers or {})
        for _attempt in range(2):
            auth_headers, gen = self.auth.headers()
            hdrs.update(auth_headers)
            o.t0 = now_ns()
            try:
                st, h, payload = http_call(self.addrs()[node], method, path, body, hdrs,
                                           timeout=self.timeout)
            except NotSent as e:
                o.t1 = now_ns()
                o.type, o.sent, o.error = "fail", False, str(e)
                return o
            except (OSError, http.client.HTTPException) as e:
                o.t1 = now_ns()
                o.type, o.error = "info", "%s: %s" % (type(e).__name__, e)
                return o
            o.t1 = now_ns()
            if st == 401 and auth_headers:
                self.auth.refresh(gen)
                continue
            break
        o.status, o.headers = st, h
        try:
            o.json = json.loads(payload) if payload else None
        except ValueError:
            o.json = None
        if 200 <= st < 300:
            o.type = "ok"
        elif st in (404, 409, 412) and "x-cairn-revision" in h:
            # The store said so (a 404 without X-Cairn-Revision is a route
            # that did not match: unexpected, flagged by the checker).
            o.type = "fail"
        elif st == 503:
            o.type = "info"
        else:
            o.type = "fail"  # unexpected: the checker flags it
        if o.type != "ok":
            detail = o.json.get("detail") if isinstance(o.json, dict) else None
            o.error = "%d %s" % (st, detail or payload[:200].decode("utf-8", "replace"))
        return o

    def _invoke(self, f, key, args):
        op = self.history.next_op()
        t = now_ns()
        self.history.write({"type": "invoke", "op": op, "process": self.index, "f": f,
                            "key": key, "t": t, "args": args})
        return op

    def _complete(self, op, o, result=None, attempts=None, replayed=False):
        ev = {"type": o.type, "op": op, "t": now_ns(), "status": o.status,
              "rev": _rev(o.headers), "node": o.node, "result": result or {}}
        if o.error:
            ev["error"] = o.error
        if not o.sent:
            ev["sent"] = False
        if attempts:
            ev["attempts"] = attempts
        if replayed:
            ev["replayed"] = True
        self.history.write(ev)
        self.counts[o.type] = self.counts.get(o.type, 0) + 1

    def _pick_node(self):
        return self.node_ids[self.rng.randrange(len(self.node_ids))]

    # Operations

    def op_create(self, key):
        desc = "c%d-%d" % (self.index, self.opn)
        idem = "chaos-%s-%d-%d" % (self.seed, self.index, self.opn)
        op = self._invoke("create", key, {"name": key, "desc": desc, "idem": idem})
        body = {"name": key, "description": desc}
        attempts = []
        deadline = time.monotonic() + CREATE_DEADLINE_S
        node = self._pick_node()
        unknown = False
        final = None
        for k in range(CREATE_ATTEMPTS):
            o = self._send(node, "POST", "/api/v1/tenants", body, {"Idempotency-Key": idem})
            attempts.append(o.as_attempt())
            final = o
            if o.type == "info":
                unknown = True
            if o.type == "ok" or (o.type == "fail" and o.sent):
                break
            if self.stop.is_set() or time.monotonic() >= deadline or k == CREATE_ATTEMPTS - 1:
                break
            # Another node (or the same: the schedule is random) after a
            # short pause: the cluster is probably electing a leader.
            self.stop.wait(0.1 + 0.2 * k)
            node = self._pick_node()
        o = final
        if unknown and o.type == "fail" and not o.sent:
            o.type, o.sent = "info", True  # an earlier attempt may have applied
        result = {}
        if o.type == "ok" and isinstance(o.json, dict):
            result["id"] = o.json.get("id")
            self.known[key] = (o.json.get("id"), desc, _rev(o.headers))
        elif o.type == "fail" and o.status == 409:
            self.known.pop(key, None)
        else:
            self.known.pop(key, None)
        replayed = bool(o.headers and o.headers.get("idempotent-replayed"))
        self._complete(op, o, result, attempts if len(attempts) > 1 or replayed else None,
                       replayed)
        return o

    def op_read(self, key, by_id):
        args = {"name": key}
        known = self.known.get(key)
        node = self._pick_node()
        if by_id and known:
            args["id"] = known[0]
            op = self._invoke("read", key, args)
            o = self._send(node, "GET", "/api/v1/tenants/" + known[0])
            result = {"found": False}
            if o.type == "ok" and isinstance(o.json, dict):
                result = self._tenant_result(o.json)
            elif o.type == "fail" and o.status == 404 and _rev(o.headers) is not None:
                o.type = "ok"  # a read that found nothing
        else:
            op = self._invoke("read", key, args)
            o = self._send(node, "GET", "/api/v1/tenants?name=" + key)
            result = {"found": False}
            if o.type == "ok":
                items = o.json.get("items") if isinstance(o.json, dict) else None
                if not isinstance(items, list):
                    o.type, o.error = "fail", "malformed list answer"
                elif items:
                    result = self._tenant_result(items[0])
        if o.type == "ok":
            if result["found"]:
                self.known[key] = (result["id"], result["desc"], result["mod_rev"])
            elif "id" not in args:
                self.known[key] = None
            else:
                self.known.pop(key, None)
        self._complete(op, o, result)
        return o

    @staticmethod
    def _tenant_result(t):
        return {"found": True, "id": t.get("id"), "desc": t.get("description"),
                "mod_rev": t.get("mod_revision"), "name": t.get("name")}

    def op_update(self, key):
        tid, expect, rev = self.known[key]
        desc = "c%d-%d" % (self.index, self.opn)
        op = self._invoke("update", key, {"name": key, "id": tid, "if_rev": rev,
                                          "expect": expect, "desc": desc})
        o = self._send(self._pick_node(), "PUT", "/api/v1/tenants/" + tid,
                       {"name": key, "description": desc}, {"If-Match": '"%d"' % rev})
        if o.type == "ok":
            self.known[key] = (tid, desc, _rev(o.headers))
        else:
            self.known.pop(key, None)
        self._complete(op, o)
        return o

    def op_delete(self, key):
        tid, expect, rev = self.known[key]
        op = self._invoke("delete", key, {"name": key, "id": tid, "if_rev": rev,
                                          "expect": expect})
        o = self._send(self._pick_node(), "DELETE", "/api/v1/tenants/" + tid,
                       headers={"If-Match": '"%d"' % rev})
        if o.type == "ok":
            self.known[key] = None
        else:
            self.known.pop(key, None)
        self._complete(op, o)
        return o

    def one(self):
        gen = self.opn // OPS_PER_GENERATION
        key = "k%d-%d" % (gen, self.rng.randrange(KEYS_PER_GENERATION))
        r = self.rng.random()
        by_id = self.rng.random() < 0.5
        known = self.known.get(key, "unknown")
        if known == "unknown":
            o = self.op_create(key) if r < 0.25 else self.op_read(key, False)
        elif known is None:  # absent when last seen
            o = self.op_create(key) if r < 0.7 else self.op_read(key, False)
        elif r < 0.30:
            o = self.op_read(key, by_id)
        elif r < 0.75:
            o = self.op_update(key)
        elif r < 0.88:
            o = self.op_delete(key)
        else:
            o = self.op_create(key)
        self.opn += 1
        return o

    def run(self):
        interval = 1.0 / self.rate if self.rate > 0 else 0.0
        next_t = time.monotonic()
        try:
            while not self.stop.is_set() and time.monotonic() < self.hard_deadline:
                self.one()
                next_t += interval
                delay = next_t - time.monotonic()
                if delay > 0:
                    self.stop.wait(min(delay, 1.0))
                else:
                    next_t = time.monotonic()  # behind: no burst to catch up
        except Exception as e:  # a bug in the client: reported by the driver
            self.error = "%s: %s" % (type(e).__name__, e)
