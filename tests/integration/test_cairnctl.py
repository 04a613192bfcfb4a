#!/usr/bin/env python3
"""cairnctl against a real 3-node cluster: login stores a token file and
logout revokes it; tenants and users are created, listed, read, replaced
and deleted through the CLI and checked through the API; -o json output
parses; --if-match, --cascade, --filter and --all do what they say; a bad
body gives the server's problem as one line and exit 2; every documented
exit code but 7 (a 5xx, unit-tested) comes from the situation it names;
credentials from flags, environment and config file; fail-over past a
dead port, a paused node, a node answering 503 and a killed leader; jobs
waited for to success and failure; backups written atomically and
checked; every audit filter selects the records it names; member removal
sends force=true only with --force, and without it an unsafe removal is
refused.

One cluster serves every test; the last two tests kill a node. Each cairnctl
run has its own empty HOME, so nothing of the machine's user leaks in."""

import calendar
import http.server
import json
import os
import select
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import lc, unique_name, wait_for  # noqa: E402

BIN_DIR = os.environ.get("CAIRN_BIN_DIR") or os.path.join(harness.REPO, "build", "bin")
CAIRNCTL = os.path.join(BIN_DIR, "cairnctl")
RUN_TIMEOUT_S = 60.0  # bound of one cairnctl run (its own requests time out in 15 s)
MISSING = "deadbeef-0000-4000-8000-00000000abcd"


def dead_port():
    """A loopback port nothing listens on (bound, then released)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _crc32c_table():
    table = []
    for n in range(256):
        for _ in range(8):
            n = (n >> 1) ^ (0x82F63B78 if n & 1 else 0)
        table.append(n)
    return table


CRC32C_TABLE = _crc32c_table()


def crc32c(data):
    """CRC-32C (Castagnoli), a byte at a time: independent of cairnctl's."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = (crc >> 8) ^ CRC32C_TABLE[(crc ^ byte) & 0xFF]
    return crc ^ 0xFFFFFFFF


def rfc3339(secs, offset_min=0):
    """A Unix time as RFC 3339 (whole seconds) in the given UTC offset."""
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs + offset_min * 60))
    if offset_min == 0:
        return text + "Z"
    sign = "+" if offset_min > 0 else "-"
    return "%s%s%02d:%02d" % (text, sign, abs(offset_min) // 60, abs(offset_min) % 60)


def unix_time(text):
    """The Unix time of an audit record's time (RFC 3339, whole seconds, Z)."""
    return calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ"))


class RecordingServer:
    """A loopback HTTP server that answers every request 204 and records
    (method, path with query): what cairnctl sends, without a cluster."""

    def __init__(self):
        seen = self.seen = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def answer(self):
                seen.append((self.command, self.path))
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST = do_PUT = do_DELETE = answer

            def log_message(self, *args):
                pass

        self.httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


class Run:
    def __init__(self, proc):
        self.rc = proc.returncode
        self.out = proc.stdout
        self.err = proc.stderr

    def json(self):
        return json.loads(self.out)

    def __repr__(self):
        return "<exit %d, stdout %r, stderr %r>" % (self.rc, self.out[:500], self.err[:500])


class CairnctlTest(harness.ClusterTestCase):
    NAME = "cairnctl"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.home = tempfile.mkdtemp(prefix="cairnctl-home-", dir=harness.tmp_root())
        cls.pw_file = os.path.join(cls.cluster.dir, "admin.pw")
        cls.endpoints = ",".join(cls.cluster.url(k) for k in (1, 2, 3))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.home, ignore_errors=True)
        super().tearDownClass()

    # Helpers

    def ctl(self, *args, stdin=None, env=None, endpoints=None, auth=True, home=None):
        """Runs cairnctl with the administrator's token (auth=False: no
        credentials) against every node (or endpoints)."""
        e = {k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")}
        e["HOME"] = home or self.home
        e.update(env or {})
        argv = [CAIRNCTL]
        if endpoints is not False:
            argv += ["--endpoints", endpoints or self.endpoints]
        if auth:
            argv += ["--token", self.cluster.token]
        argv += list(args)
        proc = subprocess.run(argv, input=stdin, capture_output=True, text=True,
                              timeout=RUN_TIMEOUT_S, env=e)
        return Run(proc)

    def ctl_tty(self, *args):
        """Runs cairnctl (as the administrator) with stderr on a pseudo
        terminal; returns (exit code, what the terminal got)."""
        import pty
        master, slave = pty.openpty()
        e = {k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")}
        e["HOME"] = self.home
        argv = [CAIRNCTL, "--endpoints", self.endpoints, "--token", self.cluster.token] + list(args)
        try:
            proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=slave, env=e)
        finally:
            os.close(slave)
        got = b""
        deadline = time.monotonic() + RUN_TIMEOUT_S
        try:
            while time.monotonic() < deadline:
                ready, _, _ = select.select([master], [], [], 0.5)
                if not ready:
                    continue
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # EIO: the terminal's last writer is gone
                    break
                if not chunk:
                    break
                got += chunk
            rc = proc.wait(max(deadline - time.monotonic(), 1.0))
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            os.close(master)
        return rc, got.decode("utf-8", "replace")

    def ok(self, *args, **kw):
        r = self.ctl(*args, **kw)
        self.assertEqual(r.rc, 0, "cairnctl %s: %r" % (" ".join(args), r))
        return r

    def fails(self, code, *args, **kw):
        """cairnctl exits with code and says why in one line on stderr."""
        r = self.ctl(*args, **kw)
        self.assertEqual(r.rc, code, "cairnctl %s: %r" % (" ".join(args), r))
        lines = r.err.splitlines()
        self.assertEqual(len(lines), 1, "one line on stderr: %r" % r)
        self.assertTrue(lines[0].startswith("cairnctl: "), r)
        return lines[0]

    def body_file(self, obj):
        fd, path = tempfile.mkstemp(suffix=".json", dir=self.home)
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f)
        return path

    def api_get(self, path):
        return self.cluster.get(1, path)

    def audit(self, *filters):
        """The audit records cairnctl lists with these filters (every page);
        cairnctl must exit 0."""
        return self.ok("audit", *filters, "--all", "-o", "json").json()["items"]

    # Tests

    def test_help_and_usage(self):
        r = self.ok("--help", endpoints=False, auth=False)
        for text in ("tenant create -f FILE|-", "member add ID", "job wait ID", "audit",
                     "backup -f FILE", "Exit codes"):
            self.assertIn(text, r.out)
        r = self.ok("tenant", "replace", "--help", endpoints=False, auth=False)
        self.assertIn("--if-match", r.out)
        self.assertIn("no verb 'frob'", self.fails(1, "tenant", "frob"))
        self.assertIn("usage: cairnctl tenant get ID", self.fails(1, "tenant", "get"))
        self.assertIn("takes no option --cascade", self.fails(1, "user", "get", "x", "--cascade"))
        self.assertIn("no endpoints", self.fails(1, "tenant", "list", endpoints=False))

    def test_login_whoami_logout(self):
        token_file = os.path.join(self.home, "tokens", "t1")
        self.ok("login", "--user", "admin", "--password-file", self.pw_file,
                "--token-file", token_file, auth=False)
        self.assertEqual(stat.S_IMODE(os.stat(token_file).st_mode), 0o600)
        with open(token_file) as f:
            token = f.read().strip()
        self.assertEqual(len(token), 43)
        r = self.ok("whoami", "-o", "json", "--token-file", token_file, auth=False)
        self.assertEqual(r.json()["user"]["username"], "admin")
        self.assertEqual(self.cluster.get(2, "/api/v1/auth/whoami", token=token).status, 200)
        self.ok("logout", "--token-file", token_file, auth=False)
        self.assertFalse(os.path.exists(token_file))
        wait_for(lambda: self.cluster.get(3, "/api/v1/auth/whoami", token=token).status == 401,
                 10, "the logged-out token to stop working")
        # The default token file, below HOME.
        self.ok("login", "--user", "admin", "--password-file", self.pw_file, auth=False)
        default = os.path.join(self.home, ".config", "cairn", "token")
        self.assertTrue(os.path.exists(default))
        self.ok("tenant", "list", auth=False)
        self.ok("logout", auth=False)
        self.assertFalse(os.path.exists(default))

    def test_tenant_lifecycle(self):
        name = unique_name("ctl")
        path = self.body_file({"name": name, "contact": {"email": "noc@acme.example"}})
        created = self.ok("tenant", "create", "-f", path, "-o", "json").json()
        tid = created["id"]
        self.assertEqual(created["name"], name)
        # Table output: the header and a row with the main fields.
        r = self.ok("tenant", "list", "--all")
        self.assertTrue(r.out.startswith("ID "), r)
        row = [line for line in r.out.splitlines() if line.startswith(tid)]
        self.assertEqual(len(row), 1, r)
        self.assertEqual(row[0].split()[:2], [tid, name])
        # JSON output parses and matches the API.
        got = self.ok("tenant", "get", tid, "-o", "json").json()
        self.assertEqual(got, self.api_get("/api/v1/tenants/" + tid).json)
        r = self.ok("tenant", "get", tid)
        self.assertIn("contact.email", r.out)
        listed = self.ok("tenant", "list", "--filter", "name=" + name, "-o", "json").json()
        self.assertEqual([t["id"] for t in listed["items"]], [tid])
        # Replace: a stale --if-match is refused (4) and changes nothing.
        rev = got["mod_revision"]
        body = self.body_file({"name": name, "description": "changed by cairnctl"})
        line = self.fails(4, "tenant", "replace", tid, "-f", body, "--if-match", str(rev + 100))
        self.assertIn("412 precondition-failed", line)
        self.assertNotIn("description", self.api_get("/api/v1/tenants/" + tid).json)
        new = self.ok("tenant", "replace", tid, "-f", body, "--if-match", str(rev),
                      "-o", "json").json()
        self.assertEqual(new["description"], "changed by cairnctl")
        self.assertGreater(new["mod_revision"], rev)
        # Delete, then it is gone (3) with the server's one-line reason.
        line = self.fails(4, "tenant", "delete", tid, "--if-match", str(rev))
        r = self.ok("tenant", "delete", tid)
        self.assertIn("deleted", r.out)
        self.assertEqual(self.api_get("/api/v1/tenants/" + tid).status, 404)
        line = self.fails(3, "tenant", "get", tid)
        self.assertTrue(line.startswith("cairnctl: 404 not-found"), line)

    def test_user_lifecycle_and_cascade(self):
        tid = self.cluster.must_create_tenant(1)["id"]
        uname = unique_name("u")
        body = json.dumps({"username": uname, "password": "twelve-chars-long", "role":
                           "tenant_operator", "tenant_id": tid})
        user = self.ok("user", "create", "-f", "-", "-o", "json", stdin=body).json()
        self.assertNotIn("password", user)
        r = self.ok("user", "list", "--filter", "tenant_id=" + tid)
        self.assertIn(uname, r.out)
        self.assertIn("tenant_operator", r.out)
        replaced = self.ok("user", "replace", user["id"], "-f", "-", "-o", "json", stdin=json.dumps(
            {"username": uname, "role": "tenant_operator", "tenant_id": tid,
             "disabled": True})).json()
        self.assertTrue(replaced["disabled"])
        self.assertIn("409 conflict", self.fails(4, "tenant", "delete", tid))
        self.ok("tenant", "delete", tid, "--cascade")
        self.fails(3, "user", "get", user["id"])

    def test_bad_body_is_one_line_and_writes_nothing(self):
        name = unique_name("bad")
        line = self.fails(2, "tenant", "create", "-f", "-",
                          stdin=json.dumps({"name": name, "contact": {"email": "nope"}}))
        self.assertTrue(line.startswith("cairnctl: 422 invalid-field (contact.email): "), line)
        self.assertEqual(self.api_get("/api/v1/tenants?name=" + name).json["items"], [])
        line = self.fails(2, "tenant", "create", "-f", "-", stdin=json.dumps({"nme": name}))
        self.assertTrue(line.startswith("cairnctl: 400 unknown-field (nme)"), line)
        # Not JSON at all: refused before anything is sent (1).
        self.assertIn("stdin:1:", self.fails(1, "tenant", "create", "-f", "-", stdin="{nope"))
        self.assertIn("one JSON object", self.fails(1, "tenant", "create", "-f", "-", stdin="[]"))
        self.assertIn("No such file", self.fails(1, "tenant", "create", "-f", "/nonexistent"))

    def test_auth_exit_codes(self):
        self.assertIn("401 unauthorized", self.fails(6, "tenant", "list", "--token", "x" * 43,
                                                     auth=False))
        line = self.fails(6, "tenant", "list", auth=False)
        self.assertIn("no credentials", line)
        # A role that may not write: 403 is 6 too.
        tid = self.cluster.must_create_tenant(1)["id"]
        uname = unique_name("op")
        self.ok("user", "create", "-f", "-", stdin=json.dumps(
            {"username": uname, "password": "twelve-chars-long", "role": "tenant_operator",
             "tenant_id": tid}))
        env = {"CAIRN_USER": uname, "CAIRN_PASSWORD": "twelve-chars-long"}
        line = self.fails(6, "tenant", "create", "-f", "-", stdin='{"name":"x"}', env=env,
                          auth=False)
        self.assertIn("403 forbidden", line)
        # A wrong password: the login's 401.
        env["CAIRN_PASSWORD"] = "not-the-password"
        self.fails(6, "tenant", "list", env=env, auth=False, endpoints=self.cluster.url(2))

    def test_environment_and_config_file(self):
        with open(self.pw_file) as f:
            password = f.read().strip()
        env = {"CAIRN_ENDPOINTS": self.endpoints, "CAIRN_USER": "admin",
               "CAIRN_PASSWORD": password}
        r = self.ok("tenant", "list", "-o", "json", env=env, endpoints=False, auth=False)
        self.assertIn("items", r.json())
        env = {"CAIRN_TOKEN": self.cluster.token, "CAIRN_ENDPOINTS": self.cluster.url(3)}
        self.ok("whoami", env=env, endpoints=False, auth=False)
        # The default config file below HOME.
        home = tempfile.mkdtemp(dir=self.home)
        os.makedirs(os.path.join(home, ".config", "cairn"))
        with open(os.path.join(home, ".config", "cairn", "cairnctl.conf"), "w") as f:
            f.write("# test\nendpoints = %s\nuser = admin\npassword_file = %s\noutput = json\n"
                    % (self.endpoints, self.pw_file))
        r = self.ok("cluster", "status", home=home, endpoints=False, auth=False)
        self.assertEqual(len(r.json()["members"]), 3)
        # A config file named with --config must exist and be valid.
        bad = os.path.join(home, "bad.conf")
        with open(bad, "w") as f:
            f.write("endpoint = x\n")
        self.assertIn("bad.conf:1: unknown key 'endpoint'",
                      self.fails(1, "--config", bad, "tenant", "list"))
        self.assertIn("No such file", self.fails(1, "--config", bad + ".no", "tenant", "list"))

    def test_pagination(self):
        prefix = unique_name("pg")
        ids = {self.cluster.must_create_tenant(1, "%s-%d" % (prefix, i))["id"] for i in range(3)}
        one = self.ok("tenant", "list", "--limit", "1", "-o", "json").json()
        self.assertEqual(len(one["items"]), 1)
        self.assertIsNotNone(one["next_cursor"])
        r = self.ctl("tenant", "list", "--limit", "1")
        self.assertIn("--all", r.err)
        everything = self.ok("tenant", "list", "--limit", "1", "--all", "-o", "json").json()
        self.assertIsNone(everything["next_cursor"])
        got = [t["id"] for t in everything["items"]]
        self.assertEqual(len(got), len(set(got)), "no tenant twice")
        self.assertTrue(ids <= set(got))
        nxt = self.ok("tenant", "list", "--limit", "1", "--cursor", one["next_cursor"],
                      "-o", "json").json()
        self.assertEqual(nxt["items"][0]["id"], got[1])

    def test_cluster_and_members(self):
        r = self.ok("cluster", "status")
        self.assertIn("leader", r.out.splitlines()[0])
        members = self.ok("member", "list", "-o", "json").json()["members"]
        self.assertEqual(sorted(m["id"] for m in members), [1, 2, 3])
        r = self.ok("member", "list")
        self.assertEqual(len(r.out.strip().splitlines()), 4, r)
        self.fails(3, "member", "remove", "99")
        self.assertIn("whole number", self.fails(1, "member", "add", "x", "h:1", "h:2"))
        line = self.fails(4, "member", "add", "2", "127.0.0.1:1", "127.0.0.1:2")
        self.assertIn("409", line)

    def test_member_remove_force(self):
        # What is sent: force=true with --force only. (Removing a member of
        # the shared cluster for real would break the other tests; the
        # refusal without --force is test_zzz_unsafe_member_removal.)
        with RecordingServer() as server:
            self.ok("member", "remove", "2", endpoints=server.url)
            self.ok("member", "remove", "2", "--force", endpoints=server.url)
        self.assertEqual(server.seen, [("DELETE", "/api/v1/cluster/members/2"),
                                       ("DELETE", "/api/v1/cluster/members/2?force=true")])
        # The cluster takes it: a node that is not a member is 404, not 400.
        self.assertIn("404 not-found", self.fails(3, "member", "remove", "99", "--force"))

    def test_audit_filters(self):
        oid = self.cluster.must_create_tenant(1)["id"]
        tid = self.ok("tenant", "create", "-f", "-", "-o", "json",
                      stdin=json.dumps({"name": unique_name("aud")})).json()["id"]
        site = self.ok("site", "create", "-f", "-", "-o", "json", stdin=json.dumps(
            {"tenant_id": tid, "name": "audited", "role": "hub"})).json()
        uname = unique_name("aud")
        user = self.ok("user", "create", "-f", "-", "-o", "json", stdin=json.dumps(
            {"username": uname, "password": "twelve-chars-long", "role": "tenant_operator",
             "tenant_id": tid})).json()
        env = {"CAIRN_USER": uname, "CAIRN_PASSWORD": "twelve-chars-long"}
        self.fails(6, "tenant", "create", "-f", "-", stdin='{"name":"x"}', env=env, auth=False)

        # --user: only what that user did, here the refused write (filed
        # best effort, so polled for).
        def refused():
            rows = self.audit("--user", uname)
            self.assertTrue(rows)
            self.assertEqual({r["user"] for r in rows}, {uname}, rows)
            return any(r["action"] == "refused" and r["kind"] == "tenant" for r in rows)

        wait_for(refused, 10, "the refused write in audit --user")
        # --tenant: only that tenant's records, and all of the writes into it.
        rows = self.audit("--tenant", tid)
        self.assertEqual({r["tenant"] for r in rows}, {tid}, rows)
        made = {(r["action"], r["kind"], r["id"]) for r in rows}
        for want in (("create", "tenant", tid), ("create", "site", site["id"]),
                     ("create", "user", user["id"])):
            self.assertIn(want, made)
        self.assertIn(("refused", "tenant"), {(r["action"], r["kind"]) for r in rows})
        self.assertNotIn(("create", "tenant", oid), made)
        self.assertEqual([(r["action"], r["id"]) for r in self.audit("--tenant", oid)],
                         [("create", oid)])
        # --kind: with --tenant, only the site.
        rows_site = self.audit("--tenant", tid, "--kind", "site")
        self.assertEqual([(r["action"], r["kind"], r["id"]) for r in rows_site],
                         [("create", "site", site["id"])])
        # --since and --until: the tenant's records lie between the start
        # of its first record's second and the end of its last one's (a
        # record shows whole seconds; the filters compare milliseconds),
        # none before or after.
        seqs = sorted(r["seq"] for r in rows)
        first = min(unix_time(r["time"]) for r in rows)
        end = max(unix_time(r["time"]) for r in rows) + 1
        between = self.audit("--tenant", tid, "--since", rfc3339(first), "--until", rfc3339(end))
        self.assertEqual(sorted(r["seq"] for r in between), seqs)
        self.assertEqual(self.audit("--tenant", tid, "--until", rfc3339(first - 1)), [])
        self.assertEqual(self.audit("--tenant", tid, "--since", rfc3339(end)), [])
        # An offset with a '+' (escaped on the way) names the same instant.
        shifted = self.audit("--tenant", tid, "--since", rfc3339(first, 60),
                             "--until", rfc3339(end, -90))
        self.assertEqual(sorted(r["seq"] for r in shifted), seqs)
        # Without --tenant, --since and --until bound every record's time.
        window = self.audit("--since", rfc3339(first), "--until", rfc3339(end))
        self.assertTrue(set(seqs) <= {r["seq"] for r in window})
        for r in window:
            self.assertTrue(first <= unix_time(r["time"]) <= end, r)
        # A bad filter is the server's 400 naming it (2).
        line = self.fails(2, "audit", "--tenant", "acme")
        self.assertIn("400 invalid-parameter (tenant)", line)
        self.assertIn("(until)", self.fails(2, "audit", "--since", rfc3339(end),
                                            "--until", rfc3339(first - 1)))
        self.ok("tenant", "delete", tid, "--cascade")
        self.ok("tenant", "delete", oid)

    def test_sites_devices_templates_services_jobs(self):
        tid = self.cluster.must_create_tenant(1)["id"]
        site = self.ok("site", "create", "-f", "-", "-o", "json", stdin=json.dumps(
            {"tenant_id": tid, "name": "paris", "role": "hub",
             "address": {"city": "Paris", "country": "FR"}})).json()
        r = self.ok("site", "list", "--filter", "tenant_id=" + tid)
        self.assertEqual(r.out.splitlines()[1].split()[:6], [site["id"], tid, "paris", "hub",
                                                             "Paris", "FR"])
        serial = "CRN" + unique_name("d").split("-")[1].upper()
        device = self.ok("device", "create", "-f", "-", "-o", "json", stdin=json.dumps(
            {"site_id": site["id"], "serial": serial, "family": "srx",
             "management": {"host": "192.0.2.10"},
             "credentials": {"username": "netconf", "password": "s3cret-device"}})).json()
        r = self.ok("device", "get", device["id"])
        self.assertIn("credentials.username", r.out)
        self.assertNotIn("s3cret-device", r.out)
        self.assertIn(serial, self.ok("device", "list", "--filter", "site_id=" + site["id"]).out)
        # The catalog: a draft, published once (a second time is 409: 4).
        template = self.ok("template", "create", "-f", "-", "-o", "json", stdin=json.dumps(
            {"name": unique_name("fw"), "version": "1.0.0", "type": "firewall-policy",
             "public": True, "parameters": {"policy": {"type": "string", "required": True,
                                                       "enum": ["strict", "open"]}}})).json()
        self.assertEqual(template["state"], "draft")
        r = self.ok("template", "publish", template["id"], "-o", "json")
        self.assertEqual(r.json()["state"], "published")
        self.fails(4, "template", "publish", template["id"])

        def service(name, policy="strict"):
            return json.dumps({"tenant_id": tid, "name": name, "template_id": template["id"],
                               "parameters": {"policy": policy},
                               "targets": {"device_ids": [device["id"]]}})

        # A bad parameter: the server's problem, naming it.
        line = self.fails(2, "service", "create", "-f", "-", stdin=service("bad", "loose"))
        self.assertIn("(parameters.policy)", line)
        self.assertTrue(line.startswith("cairnctl: 422 "), line)
        # 202: the service, and the job named on stderr.
        r = self.ok("service", "create", "-f", "-", "-o", "json", stdin=service("fw1"))
        svc = r.json()
        job = svc["job_id"]
        self.assertIn("accepted: job %s" % job, r.err)
        self.assertEqual(self.ok("job", "get", job, "-o", "json").json()["type"], "service-deploy")
        self.assertIn(job, self.ok("job", "list", "--filter", "tenant_id=" + tid, "--all").out)
        # No device answers here, so the job cannot succeed: waiting either
        # gives up (5) or sees it fail (8), with plain progress lines (no tty).
        r = self.ctl("job", "wait", job, "--wait-timeout", "1")
        self.assertIn(r.rc, (5, 8), r)
        self.assertTrue(r.err.startswith("job %s: " % job), r)
        # Cancelled (or already failed: 409, 4), waiting ends with exit 8.
        r = self.ctl("job", "cancel", job)
        self.assertIn(r.rc, (0, 4), r)
        r = self.ctl("job", "wait", job, "-o", "json")
        self.assertEqual(r.rc, 8, r)
        self.assertIn(r.json()["state"], ("cancelled", "failed"))
        self.assertIn("cairnctl: job %s %s" % (job, r.json()["state"]), r.err)
        # On a terminal: a progress bar redrawn in place.
        rc, screen = self.ctl_tty("job", "wait", job)
        self.assertEqual(rc, 8, screen)
        self.assertIn("\rjob %s [" % job, screen)
        self.assertRegex(screen, r"\] \d+/1 (cancelled|failed)")
        # --wait on a write polls the job it started.
        r = self.ctl("service", "create", "-f", "-", "--wait", "--wait-timeout", "1",
                     stdin=service("fw2"))
        self.assertIn(r.rc, (5, 8), r)
        self.assertIn("job ", r.err)
        r = self.ctl("service", "delete", svc["id"])
        self.assertEqual(r.rc, 0, r)
        self.assertIn("accepted: job ", r.err)
        self.ok("tenant", "delete", tid, "--cascade")
        self.fails(3, "site", "get", site["id"])

    def test_import_waits_for_its_job(self):
        tid = self.cluster.must_create_tenant(1, quotas={"devices": 2})["id"]

        def import_body(n_devices):
            site = unique_name("s")
            return json.dumps({
                "tenant_id": tid, "sites": [{"name": site, "role": "spoke"}],
                "devices": [{"site": site, "serial": "CRN%s" % unique_name("x")[2:].upper(),
                             "family": "nfx"} for _ in range(n_devices)]})

        # A job that succeeds: --wait exits 0 and prints the final job.
        r = self.ctl("import", "create", "-f", "-", "--wait", "-o", "json",
                     stdin=import_body(2))
        self.assertEqual(r.rc, 0, r)
        job = r.json()
        self.assertEqual(job["state"], "succeeded")
        self.assertEqual(job["progress"], {"done": 3, "total": 3})
        self.assertIn("job %s: succeeded 3/3" % job["id"], r.err)
        devices = self.ok("device", "list", "--filter", "tenant_id=" + tid, "-o", "json").json()
        self.assertEqual(len(devices["items"]), 2)
        # A job that fails as it applies (the device quota is full): exit 8,
        # with the job's own account of it.
        r = self.ctl("import", "create", "-f", "-", "--wait", stdin=import_body(1))
        self.assertEqual(r.rc, 8, r)
        self.assertRegex(r.err.splitlines()[-1], r"^cairnctl: job [0-9a-f-]+ failed")
        # Refused before anything is written: 422 naming the item (2).
        bad = json.loads(import_body(1))
        bad["devices"][0]["site"] = "no-such-site"
        line = self.fails(2, "import", "create", "-f", "-", stdin=json.dumps(bad))
        self.assertIn("devices[0].site", line)
        self.ok("tenant", "delete", tid, "--cascade")

    def test_backup(self):
        folder = tempfile.mkdtemp(dir=self.home)
        out = os.path.join(folder, "cluster.bak")
        r = self.ctl("backup", "-f", out)
        self.assertEqual([f for f in os.listdir(folder) if f != "cluster.bak"], [],
                         "no temporary file left: %r" % r)
        self.assertEqual(r.rc, 0, r)
        with open(out, "rb") as f:
            data = f.read()
        self.assertGreater(len(data), 4)
        self.assertEqual(crc32c(data[:-4]), int.from_bytes(data[-4:], "big"))
        self.assertIn("backup written to " + out, r.out)
        self.assertIn("-f FILE", self.fails(1, "backup"))
        self.fails(1, "backup", "-f", os.path.join(folder, "missing", "x.bak"))

    def test_unavailable(self):
        dead = ",".join("http://127.0.0.1:%d" % dead_port() for _ in range(2))
        line = self.fails(5, "tenant", "list", endpoints=dead)
        self.assertIn("no endpoint answered", line)

    def test_failover_past_503(self):
        # A second cluster without quorum: its last node answers 503 to
        # every request (it cannot check our token with a leader).
        with harness.Cluster(3, name="cairnctl-503") as other:
            other.kill(2)
            other.kill(3)
            lone = other.url(1)
            wait_for(lambda: other.get(1, "/api/v1/tenants", token=self.cluster.token,
                                       timeout=10).status == 503,
                     30, "the node without quorum to answer 503")
            line = self.fails(5, "tenant", "list", endpoints=lone)
            self.assertIn("503 unavailable", line)
            r = self.ok("cluster", "status", endpoints="%s,%s" % (lone, self.cluster.url(2)))
            self.assertTrue(r.out.startswith("answered by node 2"), r)

    def test_zz_failover(self):
        c = self.cluster
        # A dead port first: the next endpoint answers.
        eps = "http://127.0.0.1:%d,%s" % (dead_port(), c.url(2))
        r = self.ok("cluster", "status", endpoints=eps)
        self.assertTrue(r.out.startswith("answered by node 2"), r)
        name = unique_name("fo")
        self.ok("tenant", "create", "-f", "-", stdin=json.dumps({"name": name}), endpoints=eps)
        # A paused node times out (the answer of node 1 waits up to 1 s for
        # the paused one, hence 3 s); the next one answers.
        lc.pause(c.dir, 3)
        try:
            r = self.ok("--timeout", "3", "cluster", "status",
                        endpoints="%s,%s" % (c.url(3), c.url(1)))
            self.assertTrue(r.out.startswith("answered by node 1"), r)
        finally:
            lc.resume(c.dir, 3)
        # A killed node (whichever leads): writes through the list resume.
        c.kill(c.leader())
        seen = set()

        def create():
            r = self.ctl("--timeout", "5", "tenant", "create", "-f", "-",
                         stdin=json.dumps({"name": unique_name("fo")}))
            seen.add(r.rc)
            if r.rc not in (0, 5):
                raise harness._Fatal(repr(r))
            return r.rc == 0

        try:
            wait_for(create, 60, "a write through cairnctl after the leader died", interval=0.2)
        except harness._Fatal as e:
            self.fail(str(e))
        self.assertTrue(seen <= {0, 5}, seen)
        live = c.live_nodes()[0]
        self.assertEqual(len(c.get(live, "/api/v1/tenants?name=" + name).json["items"]), 1)


    def test_zzz_unsafe_member_removal(self):
        # After test_zz_failover one of the three voters is down (alone,
        # this test kills one): removing either live voter would leave a
        # configuration whose quorum does not answer. Refused without
        # --force (409: 4), and nothing changes.
        c = self.cluster
        if len(c.live_nodes()) == 3:
            c.kill(c.followers()[0])
        live = c.live_nodes()
        self.assertEqual(len(live), 2, live)
        wait_for(lambda: c.write_works(live[0]), 60, "writes with two of three voters")
        for victim in live:
            line = self.fails(4, "member", "remove", str(victim), endpoints=c.url(live[0]))
            self.assertIn("409 unsafe-membership-change", line)
            self.assertIn("force=true", line)
        members = self.ok("member", "list", "-o", "json", endpoints=c.url(live[1])).json()
        self.assertEqual(sorted(m["id"] for m in members["members"]), [1, 2, 3])


if __name__ == "__main__":
    harness.run()
