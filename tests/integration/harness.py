"""Shared pieces of Cairn's integration tests: a cluster of real cairnd
processes on loopback (over tools/localcluster), a small HTTP client, and
polling with deadlines.

Every test makes its cluster with

    with harness.Cluster(3, settings={...}) as c:
        ...

which starts the nodes in a fresh temporary directory and always stops them;
when the block fails the directory is kept and the tail of each node's log is
printed. Standard library only.

Every cluster has an SP administrator (tools/localcluster makes one, with a
generated password in DIR/admin.json); a Cluster logs in as it once and
sends its bearer token with every request unless told otherwise
(`auth=False` for the checks of unauthenticated requests, `token=...` to
act as another user).
"""

import atexit
import http.client
import importlib.machinery
import importlib.util
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
import unittest
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
LOCALCLUSTER_PATH = os.path.join(REPO, "tools", "localcluster")

# Timing of test clusters; every test may override them through settings.
DEFAULT_SETTINGS = {
    "election_timeout_ms": "1000",
    "heartbeat_timeout_ms": "50",
}
ELECTION_TIMEOUT_S = 1.0
# Client-side bound of one request: longer than cairnd's request_timeout_ms
# (5 s by default) so that a node's own 503 arrives first; a request that
# runs into this bound is a hang.
REQUEST_TIMEOUT_S = 15.0


def _load_localcluster():
    loader = importlib.machinery.SourceFileLoader("localcluster", LOCALCLUSTER_PATH)
    spec = importlib.util.spec_from_loader("localcluster", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    sys.modules["localcluster"] = module
    return module


lc = _load_localcluster()


def _on_sigterm(signum, frame):
    # ctest's timeout and a user's kill: unwind so every `finally` stops
    # the nodes.
    raise SystemExit(128 + signum)


signal.signal(signal.SIGTERM, _on_sigterm)


@atexit.register
def _kill_leftovers():
    # Last resort if a test forgot a cluster: no cairnd outlives the test.
    for pid, child in list(lc._children.items()):
        if child.poll() is None:
            child.kill()
            try:
                child.wait(10)
            except Exception:
                pass


def log(msg):
    sys.stderr.write("[%s] %s\n" % (time.strftime("%H:%M:%S"), msg))
    sys.stderr.flush()


# ----------------------------------------------------------------------------
# Polling


class Timeout(AssertionError):
    pass


class _Fatal(Exception):
    """Raised by a wait_for predicate to stop waiting at once."""


def wait_for(predicate, timeout, what, interval=0.05):
    """Calls predicate until it returns a true value, which is returned.
    Exceptions count as "not yet" (the last one is reported). Raises
    Timeout naming `what` after timeout seconds."""
    deadline = time.monotonic() + timeout
    last = None
    attempts = 0
    while True:
        attempts += 1
        try:
            value = predicate()
            if value:
                return value
            last = "returned %r" % (value,)
        except (AssertionError, OSError, http.client.HTTPException, ValueError, KeyError,
                TypeError) as e:
            last = "%s: %s" % (type(e).__name__, e)
        if time.monotonic() >= deadline:
            raise Timeout("timed out after %.1f s (%d attempts) waiting for %s; last attempt: %s"
                          % (timeout, attempts, what, last))
        time.sleep(interval)


# ----------------------------------------------------------------------------
# HTTP


class Response:
    def __init__(self, status, headers, body, elapsed):
        self.status = status
        self.headers = headers  # lower-case names
        self.body = body
        self.elapsed = elapsed
        self.json = None
        if body:
            try:
                self.json = json.loads(body)
            except ValueError:
                pass

    def header(self, name, default=None):
        return self.headers.get(name.lower(), default)

    @property
    def content_type(self):
        return (self.header("content-type") or "").split(";")[0].strip().lower()

    @property
    def revision(self):
        value = self.header("x-cairn-revision")
        return int(value) if value is not None else None

    def __repr__(self):
        return "<%d %s %s>" % (self.status, self.content_type,
                               self.body[:300].decode("utf-8", "replace"))


def request(base, method, path, body=None, raw=None, headers=None, timeout=REQUEST_TIMEOUT_S,
            token=None):
    """One request to base ("http://host:port" or "host:port"). body is
    sent as JSON; raw (bytes) is sent as is; token, if given, as
    "Authorization: Bearer TOKEN" (unless headers has an Authorization).
    Raises OSError or http.client.HTTPException if the node does not answer
    in time."""
    addr = base.split("://", 1)[-1].rstrip("/")
    host, _, port = addr.rpartition(":")
    hdrs = dict(headers or {})
    if token and not any(k.lower() == "authorization" for k in hdrs):
        hdrs["Authorization"] = "Bearer " + token
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        hdrs.setdefault("Content-Type", "application/json")
    elif raw is not None:
        data = raw
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    started = time.monotonic()
    try:
        conn.request(method, path, body=data, headers=hdrs)
        resp = conn.getresponse()
        payload = resp.read()
        headers_out = {}
        for k, v in resp.getheaders():
            headers_out[k.lower()] = v
        return Response(resp.status, headers_out, payload, time.monotonic() - started)
    finally:
        conn.close()


def is_conn_error(exc):
    return isinstance(exc, (OSError, http.client.HTTPException))


def unique_name(prefix="t"):
    return "%s-%s" % (prefix, uuid.uuid4().hex[:12])


def etag_of(revision):
    return '"%d"' % revision


# ----------------------------------------------------------------------------
# The cluster


def tmp_root():
    root = os.environ.get("CAIRN_TEST_TMPDIR")
    if root:
        os.makedirs(root, exist_ok=True)
        return root
    return None  # the system's temporary directory


class Cluster:
    """A localcluster in its own temporary directory. Use as a context
    manager: the nodes are stopped on exit, the directory removed on
    success and kept (with the log tails printed) on failure."""

    def __init__(self, n, settings=None, name=None, up_timeout=90.0, call_home=False):
        self.n = n
        self.call_home = call_home
        self.settings = dict(DEFAULT_SETTINGS)
        self.settings.update({k: str(v) for k, v in (settings or {}).items()})
        self.up_timeout = up_timeout
        prefix = "cairn-%s-" % (name or "it")
        self.dir = tempfile.mkdtemp(prefix=prefix, dir=tmp_root())
        self.urls = {}
        self.pids = {}              # node -> pid of the process this test started
        self.expected_down = set()  # nodes the test killed, stopped or removed
        self.admin = None           # {"username", "password"} from DIR/admin.json
        self.token = None           # the administrator's bearer token
        self.election_timeout_s = int(self.settings["election_timeout_ms"]) / 1000.0

    # Context management

    def __enter__(self):
        log("cluster of %d nodes in %s" % (self.n, self.dir))
        try:
            self.up()
        except BaseException:
            self._finish(failed=True)
            raise
        return self

    def __exit__(self, exc_type, exc, tb):
        self._finish(failed=exc_type is not None)
        return False

    def _finish(self, failed):
        """Stops every node. Besides the test's own outcome, a node that died
        without the test killing it, or that does not exit 0 on SIGTERM (a
        clean shutdown, as cairnd documents), fails the test."""
        problems = []
        for node, pid in sorted(self.pids.items()):
            if node not in self.expected_down and not lc.pid_alive(pid):
                problems.append("node %d (pid %d) died unexpectedly, exit status %s"
                                % (node, pid, lc.exit_status(pid)))
        try:
            statuses = lc.down(self.dir, grace=10.0)
        except Exception as e:
            statuses = {}
            problems.append("down failed: %s" % e)
        for node, status in sorted(statuses.items()):
            if status not in (0, None):
                problems.append("node %d exited with status %s after SIGTERM (expected 0)"
                                % (node, status))
        if problems:
            log("; ".join(problems))
        if failed or problems:
            self.print_logs()
            log("kept %s for inspection" % self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)
        if problems and not failed:
            raise AssertionError("; ".join(problems))

    def print_logs(self, lines=60):
        try:
            cluster = lc.load(self.dir)
        except lc.ClusterError as e:
            log(str(e))
            return
        for node in cluster["nodes"]:
            path = os.path.join(node["dir"], "cairnd.log")
            sys.stderr.write("----- node %d: last %d lines of %s -----\n%s\n" % (
                node["id"], lines, path, lc.log_tail(path, lines)))
        sys.stderr.flush()

    # Processes

    def _record_pid(self, node):
        pid = self.pid(node)
        if pid is not None:
            self.pids[node] = pid

    def up(self):
        urls = lc.up(self.dir, self.n, self.settings, timeout=self.up_timeout,
                     call_home=self.call_home)
        self.urls = {k + 1: u for k, u in enumerate(urls)}
        for node in self.urls:
            self._record_pid(node)
        self.admin = lc.admin_credentials(self.dir)
        # `up` logged in on every node and kept the last token.
        cluster = lc.load(self.dir)
        auth = lc.auth_headers(cluster)
        if not auth:
            raise AssertionError("no administrator token after up in %s" % self.dir)
        self.token = auth["Authorization"].split(" ", 1)[1]

    def kill(self, node):
        log("SIGKILL node %d" % node)
        self.expected_down.add(node)
        lc.kill(self.dir, node)

    def stop(self, node):
        """SIGTERM; the node must exit 0 within 10 s."""
        log("SIGTERM node %d" % node)
        self.expected_down.add(node)
        pid = lc.stop(self.dir, node)
        if pid is not None:
            status = lc.exit_status(pid)
            if status not in (0, None):
                raise AssertionError("node %d exited with status %s after SIGTERM"
                                     % (node, status))

    def start(self, node, wait="healthy", timeout=60.0):
        log("start node %d" % node)
        self.urls[node] = lc.start(self.dir, node, wait=wait, timeout=timeout)
        self.expected_down.discard(node)
        self._record_pid(node)

    def add(self, timeout=90.0):
        node, url = lc.add(self.dir, timeout=timeout)
        self.urls[node] = url
        self._record_pid(node)
        log("added node %d at %s" % (node, url))
        return node

    def remove(self, node, timeout=60.0):
        log("remove node %d" % node)
        self.expected_down.add(node)
        lc.remove(self.dir, node, timeout=timeout)

    def pid(self, node):
        cluster = lc.load(self.dir)
        return lc.node_pid(lc.get_node(cluster, node))

    def running(self, node):
        return self.pid(node) is not None

    def live_nodes(self):
        cluster = lc.load(self.dir)
        return [n["id"] for n in cluster["nodes"]
                if not n.get("removed") and lc.node_pid(n) is not None]

    def node_dir(self, node):
        return os.path.join(self.dir, "node%d" % node)

    def read_log(self, node):
        """The whole of node's cairnd.log (every start appends to it)."""
        with open(os.path.join(self.node_dir(node), "cairnd.log"), errors="replace") as f:
            return f.read()

    def data_dir(self, node):
        return os.path.join(self.node_dir(node), "data")

    def url(self, node):
        return self.urls[node]

    # HTTP

    def request(self, node, method, path, auth=True, **kw):
        """A request to node as the administrator (auth=False: without any
        token; token=T: as whoever T belongs to)."""
        if auth:
            kw.setdefault("token", self.token)
        else:
            kw.pop("token", None)
        return request(self.urls[node], method, path, **kw)

    def auth_headers(self, token=None):
        """The Authorization header of the administrator (or of token)."""
        return {"Authorization": "Bearer " + (token or self.token)}

    def login(self, node, username, password, timeout=REQUEST_TIMEOUT_S):
        """POST /api/v1/auth/login on node; returns the Response."""
        return self.request(node, "POST", "/api/v1/auth/login", auth=False,
                            body={"username": username, "password": password}, timeout=timeout)

    def must_login(self, node, username, password):
        """Logs in on node; returns the token."""
        r = self.login(node, username, password)
        if r.status != 200 or not isinstance(r.json, dict) or "token" not in r.json:
            raise AssertionError("login of %s on node %d: %r" % (username, node, r))
        return r.json["token"]

    def get(self, node, path, **kw):
        return self.request(node, "GET", path, **kw)

    def cluster_info(self, node, timeout=5.0):
        r = self.get(node, "/api/v1/cluster", timeout=timeout)
        if r.status != 200 or not isinstance(r.json, dict):
            raise AssertionError("GET /api/v1/cluster on node %d: %r" % (node, r))
        return r.json

    def metrics(self, node, *names):
        """The values of unlabelled samples of node's /metrics, as ints, in
        the order of names (one scrape)."""
        r = self.request(node, "GET", "/metrics", auth=False)
        if r.status != 200:
            raise AssertionError("/metrics on node %d: %r" % (node, r))
        text = r.body.decode()
        values = []
        for name in names:
            m = re.search(r"^%s (\S+)$" % re.escape(name), text, re.M)
            if m is None:
                raise AssertionError("no %s in /metrics of node %d" % (name, node))
            values.append(int(float(m.group(1))))
        return values

    def proposed(self, node):
        """(entries, commands) node proposed as leader, from its /metrics."""
        return tuple(self.metrics(node, "cairn_raft_proposed_entries_total",
                                  "cairn_raft_proposed_commands_total"))

    def self_member(self, node):
        info = self.cluster_info(node)
        for m in info["members"]:
            if m["id"] == node:
                return m
        raise AssertionError("node %d does not list itself: %r" % (node, info))

    def _agreed_leader(self):
        live = self.live_nodes()
        seen = {}
        for k in live:
            try:
                seen[k] = self.cluster_info(k, timeout=2.0).get("leader_id")
            except (OSError, http.client.HTTPException, AssertionError):
                seen[k] = None
        leaders = set(seen.values())
        if len(leaders) != 1:
            raise AssertionError("nodes disagree on the leader: %r" % seen)
        leader = leaders.pop()
        if leader is None or leader not in live:
            raise AssertionError("no live leader: %r" % seen)
        return leader

    def leader(self, timeout=30.0):
        """The id of the leader every live node agrees on (waits for one)."""
        return wait_for(self._agreed_leader, timeout, "a leader all live nodes agree on")

    def followers(self, leader=None):
        leader = leader if leader is not None else self.leader()
        return [k for k in self.live_nodes() if k != leader]

    def wait_ready(self, nodes=None, timeout=60.0):
        nodes = nodes if nodes is not None else self.live_nodes()
        for k in nodes:
            wait_for(lambda: self.get(k, "/readyz", timeout=2.0).status == 200, timeout,
                     "node %d to answer /readyz 200" % k)

    # Tenants

    def create_tenant(self, node, name=None, idempotency_key=None, timeout=REQUEST_TIMEOUT_S,
                      **fields):
        body = {"name": name or unique_name()}
        body.update(fields)
        headers = {}
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        return self.request(node, "POST", "/api/v1/tenants", body=body, headers=headers,
                            timeout=timeout)

    def must_create_tenant(self, node, name=None, **fields):
        r = self.create_tenant(node, name, **fields)
        if r.status != 201:
            raise AssertionError("POST /api/v1/tenants on node %d: %r" % (node, r))
        return r.json

    def list_tenants(self, node, stale=False, limit=100, max_pages=1000):
        """Every tenant, following next_cursor. Returns (items, revisions)."""
        items = []
        revisions = []
        cursor = None
        for _ in range(max_pages):
            q = "limit=%d" % limit
            if stale:
                q += "&consistency=stale"
            if cursor:
                q += "&cursor=" + cursor
            r = self.get(node, "/api/v1/tenants?" + q)
            if r.status != 200:
                raise AssertionError("list tenants on node %d: %r" % (node, r))
            items.extend(r.json["items"])
            revisions.append(r.json["revision"])
            cursor = r.json.get("next_cursor")
            if not cursor:
                return items, revisions
        raise AssertionError("more than %d pages" % max_pages)

    def create_until_ok(self, node, timeout, name=None, **fields):
        """Creates a tenant through node, retrying (same Idempotency-Key)
        while the node answers 503 or not at all, until timeout. Any other
        answer fails at once. Returns the created tenant."""
        name = name or unique_name()
        key = unique_name("key")
        last = []

        def attempt():
            try:
                r = self.create_tenant(node, name, idempotency_key=key, **fields)
            except (OSError, http.client.HTTPException) as e:
                last.append(e)
                return None
            if r.status == 201:
                return r.json
            if r.status == 503 and r.content_type == "application/problem+json":
                return None
            raise _Fatal("POST /api/v1/tenants through node %d: %r" % (node, r))

        try:
            return wait_for(attempt, timeout, "a write through node %d" % node)
        except _Fatal as e:
            raise AssertionError(str(e)) from None

    def write_works(self, node, timeout=REQUEST_TIMEOUT_S):
        """True if a new tenant can be created through node now."""
        try:
            r = self.create_tenant(node, unique_name("probe"), timeout=timeout)
        except (OSError, http.client.HTTPException):
            return False
        return r.status == 201


def run_threads(n, body, timeout=300.0):
    """Runs body(i) for i in range(n), each in a thread of its own, all
    released at once; waits at most timeout for all of them and re-raises
    the first failure."""
    failures = []
    start = threading.Barrier(n)

    def one(i):
        try:
            start.wait(timeout=30)
            body(i)
        except BaseException as e:  # noqa: B902 (re-raised below)
            failures.append(e)

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    if any(t.is_alive() for t in threads):
        raise AssertionError("threads still running after %.0f s" % timeout)
    if failures:
        raise failures[0]


def assert_problem(testcase, r, status, field=None, msg=""):
    """r is an RFC 9457 problem answer with the given status (and field)."""
    prefix = "%s: " % msg if msg else ""
    testcase.assertEqual(r.status, status, "%sstatus of %r" % (prefix, r))
    testcase.assertEqual(r.content_type, "application/problem+json",
                         "%scontent type of %r" % (prefix, r))
    testcase.assertIsInstance(r.json, dict, "%sproblem body of %r" % (prefix, r))
    for key in ("type", "title", "status", "detail"):
        testcase.assertIn(key, r.json, "%sproblem member %s in %r" % (prefix, key, r))
    testcase.assertEqual(r.json["status"], status, "%sproblem status in %r" % (prefix, r))
    if field is not None:
        testcase.assertEqual(r.json.get("field"), field, "%sproblem field in %r" % (prefix, r))


class ClusterTestCase(unittest.TestCase):
    """A test class whose tests share one cluster of NODES nodes (named
    NAME), started before the first test and stopped after the last; if
    any test failed, the cluster directory is kept and the logs printed."""

    NODES = 3
    NAME = "it"
    SETTINGS = None  # node settings, as for Cluster
    cluster = None

    @classmethod
    def setUpClass(cls):
        cls.cluster = Cluster(cls.NODES, settings=cls.SETTINGS, name=cls.NAME)
        cls.cluster.__enter__()

    @classmethod
    def tearDownClass(cls):
        failed = getattr(cls, "failed", False)
        cls.cluster.__exit__(AssertionError if failed else None, None, None)

    def run(self, result=None):
        result = super().run(result)
        if result is not None and (result.failures or result.errors):
            type(self).failed = True
        return result


def run(module_name="__main__"):
    """unittest.main for a test file: verbose, exits non-zero on failure."""
    started = time.monotonic()
    prog = unittest.main(module=module_name, verbosity=2, exit=False)
    log("finished in %.1f s" % (time.monotonic() - started))
    ok = prog.result.wasSuccessful() and prog.result.testsRun > 0
    sys.exit(0 if ok else 1)


__all__ = [
    "Cluster", "ClusterTestCase", "Response", "Timeout", "assert_problem", "etag_of", "is_conn_error", "lc", "log",
    "request", "run", "unique_name", "wait_for", "REQUEST_TIMEOUT_S", "ELECTION_TIMEOUT_S",
]
