"""What the ops tests (test_ops.py, test_profiles.py, test_systemd.py) share:
local Ansible "hosts" (local connections, each with its own install
prefix, config, data and run directories and ports; cairnd under
tests/ops/supervise, the role's service manager where systemd is not
available), one `cmake --install` prefix per test class, ansible-playbook
runs with their PLAY RECAP checked, and the cluster's REST API.

OpsCase is the base class: setUpClass installs this build once into a run
directory under BUILD_DIR/tests/ops/tmp; each test gets its own hosts
(HOSTS of them, free ports) in a directory of its own. Every process a test
started is stopped in tearDown; the run directory (the playbooks' output,
the nodes' logs) is removed at the end unless a test failed. Standard
library only.
"""

import http.client
import importlib.machinery
import importlib.util
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
ANSIBLE_DIR = os.path.join(REPO, "ansible")
SUPERVISE = os.path.join(HERE, "supervise")
BUILD_DIR = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(REPO, "build"))
HTTP_TIMEOUT = 15.0
PLAYBOOK_TIMEOUT = 600


def free_ports(count):
    """count distinct free loopback ports, below the kernel's ephemeral range
    when it leaves room (tools/localcluster's choice: a restarted node's port
    is then not taken by a peer's outgoing connection meanwhile)."""
    loader = importlib.machinery.SourceFileLoader(
        "localcluster", os.path.join(REPO, "tools", "localcluster"))
    spec = importlib.util.spec_from_loader("localcluster", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module.free_ports(count)


def wait_for(cond, timeout, what, interval=0.2):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = cond()
            if last:
                return last
        except (OSError, http.client.HTTPException, ValueError) as e:
            last = e
        time.sleep(interval)
    raise AssertionError("timed out after %.0f s waiting for %s (last: %r)" % (timeout, what, last))


def call(port, method, path, body=None, token=None, timeout=HTTP_TIMEOUT):
    """One request to 127.0.0.1:port; returns (status, parsed JSON or None)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        headers = {}
        data = None
        if body is not None:
            data = json.dumps(body)
            headers["Content-Type"] = "application/json"
        if token:
            headers["Authorization"] = "Bearer " + token
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
        try:
            doc = json.loads(raw) if raw else None
        except ValueError:
            doc = None
        return resp.status, doc
    finally:
        conn.close()


def recap(output):
    """{host: {"ok": n, "changed": n, "failed": n, ...}} from PLAY RECAP."""
    hosts = {}
    for m in re.finditer(r"^(\S+)\s+:\s+((?:\w+=\d+\s*)+)$", output, re.M):
        hosts[m.group(1)] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(2))}
    return hosts


def main():
    if shutil.which("ansible-playbook") is None:
        sys.exit("ansible-playbook not found: run tools/install-deps (Debian package ansible)")
    unittest.main(argv=sys.argv[:1], verbosity=2)


class OpsCase(unittest.TestCase):
    HOSTS = 3  # local hosts each test gets: node1 .. nodeHOSTS

    @classmethod
    def setUpClass(cls):
        base = os.path.join(BUILD_DIR, "tests", "ops", "tmp")
        os.makedirs(base, exist_ok=True)
        cls.run_dir = tempfile.mkdtemp(prefix="run-", dir=base)
        cls.failed = False
        cls.password = secrets.token_urlsafe(18)
        cls.pwfile = os.path.join(cls.run_dir, "admin.pw")
        with open(cls.pwfile, "w") as f:
            f.write(cls.password + "\n")
        os.chmod(cls.pwfile, 0o600)
        cls.stage1 = cls.install(BUILD_DIR, "stage1")

    @classmethod
    def tearDownClass(cls):
        if cls.failed:
            print("run directory kept: %s" % cls.run_dir, file=sys.stderr)
        else:
            shutil.rmtree(cls.run_dir, ignore_errors=True)

    @classmethod
    def install(cls, build_dir, name):
        prefix = os.path.join(cls.run_dir, name)
        subprocess.run(["cmake", "--install", build_dir, "--prefix", prefix], check=True,
                       stdout=subprocess.DEVNULL, timeout=300)
        return prefix

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix=self._testMethodName + "-", dir=self.run_dir)
        self.hosts = {}
        ports = free_ports(2 * self.HOSTS)
        for k in range(1, self.HOSTS + 1):
            root = os.path.join(self.dir, "node%d" % k)
            self.hosts[k] = {
                "ansible_connection": "local",
                "ansible_python_interpreter": "/usr/bin/python3",
                "cairn_node_id": k,
                "cairn_listen_host": "127.0.0.1",
                "cairn_raft_port": ports[2 * (k - 1)],
                "cairn_api_port": ports[2 * (k - 1) + 1],
                "cairn_prefix": os.path.join(root, "prefix"),
                "cairn_conf_dir": os.path.join(root, "etc"),
                "cairn_data_dir": os.path.join(root, "data"),
                "cairn_run_dir": os.path.join(root, "run"),
            }
        self.ok = False

    def tearDown(self):
        for h in self.hosts.values():
            pidfile = os.path.join(h["cairn_run_dir"], "cairnd.pid")
            if os.path.exists(pidfile):
                subprocess.run([SUPERVISE, "stop", "--pidfile", pidfile], timeout=60)
        if self.ok:
            return
        type(self).failed = True
        for k, h in self.hosts.items():
            log = os.path.join(h["cairn_run_dir"], "cairnd.log")
            if os.path.exists(log):
                with open(log) as f:
                    tail = f.readlines()[-15:]
                print("--- node%d log tail\n%s" % (k, "".join(tail)), file=sys.stderr)

    # ---- Ansible

    def inventory(self, nodes, initial=None, **group_vars):
        """An inventory of the hosts nodes (group cairn); those not in
        initial (default: all of nodes) get cairn_initial: false. Group
        variables: a supervised prefix install of stage1, medium profile,
        short raft timeouts; group_vars override them."""
        initial = nodes if initial is None else initial
        hosts = {}
        for k in nodes:
            h = dict(self.hosts[k])
            if k not in initial:
                h["cairn_initial"] = False
            hosts["node%d" % k] = h
        gv = {
            "cairn_cluster_id": "ops-test",
            "cairn_profile": "medium",
            "cairn_install_method": "prefix",
            "cairn_source_prefix": self.stage1,
            "cairn_service_manager": "supervised",
            "cairn_supervisor": SUPERVISE,
            "cairn_admin_password_file": self.pwfile,
            "cairn_cluster_secret": "ops-secret-0123456789",
            "cairn_settings": {"election_timeout_ms": 1000, "heartbeat_timeout_ms": 50},
        }
        gv.update(group_vars)
        path = os.path.join(self.dir, "inventory-%s.yml" % "-".join(str(k) for k in nodes))
        with open(path, "w") as f:
            json.dump({"cairn": {"hosts": hosts, "vars": gv}}, f, indent=1)
        return path

    def playbook(self, name, inventory, *extra, expect_changed=None, json_output=False):
        """Runs ansible-playbook NAME -i INVENTORY EXTRA... from ansible/ and
        fails the test if it fails; expect_changed: every host's changed
        count. Returns the output, or with json_output the document of the
        json callback."""
        env = dict(os.environ)
        env.update({
            "ANSIBLE_CONFIG": os.path.join(ANSIBLE_DIR, "ansible.cfg"),
            "ANSIBLE_HOME": os.path.join(self.dir, "ansible-home"),
            "ANSIBLE_LOCAL_TEMP": os.path.join(self.dir, "ansible-tmp"),
            "ANSIBLE_REMOTE_TEMP": os.path.join(self.dir, "ansible-tmp"),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0",
            "ANSIBLE_PYTHON_INTERPRETER": "/usr/bin/python3",
        })
        if json_output:
            env["ANSIBLE_STDOUT_CALLBACK"] = "json"
        cmd = ["ansible-playbook", "-i", inventory, name] + list(extra)
        start = time.monotonic()
        proc = subprocess.run(cmd, cwd=ANSIBLE_DIR, env=env, capture_output=True, text=True,
                              timeout=PLAYBOOK_TIMEOUT)
        took = time.monotonic() - start
        tag = "%s%s" % (name, "".join(" " + a for a in extra))
        log = os.path.join(self.dir, "playbook-%d.log" % len(os.listdir(self.dir)))
        with open(log, "w") as f:
            f.write("$ %s\n%s\n%s" % (" ".join(cmd), proc.stdout, proc.stderr))
        doc = None
        if json_output:
            try:
                doc = json.loads(proc.stdout)
                rc = doc["stats"]
            except (ValueError, KeyError):
                rc = {}
        else:
            rc = recap(proc.stdout)
        print("ansible-playbook %s: exit %d in %.1f s, %s" % (
            tag, proc.returncode, took,
            ", ".join("%s changed=%d" % (h, r.get("changed", -1)) for h, r in sorted(rc.items()))),
            flush=True)
        if proc.returncode != 0:
            self.fail("ansible-playbook %s failed (exit %d); output in %s:\n%s\n%s" % (
                tag, proc.returncode, log, proc.stdout[-6000:], proc.stderr[-2000:]))
        self.assertTrue(rc, "no PLAY RECAP in the output of %s" % tag)
        if expect_changed is not None:
            for host, r in rc.items():
                self.assertEqual(r.get("changed"), expect_changed,
                                 "%s on %s: changed=%s (output in %s)"
                                 % (tag, host, r.get("changed"), log))
        return doc if json_output else proc.stdout

    def converged(self, name, inventory, *extra):
        """A re-run and a --check run of a playbook that has just been run:
        both report changed=0."""
        self.playbook(name, inventory, *extra, expect_changed=0)
        self.playbook(name, inventory, *extra, "--check", expect_changed=0)

    # ---- the cluster

    def api_port(self, k):
        return self.hosts[k]["cairn_api_port"]

    def login(self, k):
        status, doc = call(self.api_port(k), "POST", "/api/v1/auth/login",
                           {"username": "admin", "password": self.password})
        self.assertEqual(status, 200, "login on node %d: %r" % (k, doc))
        return doc["token"]

    def view(self, k, token):
        """GET /api/v1/cluster on node k, or None if it fails."""
        status, doc = call(self.api_port(k), "GET", "/api/v1/cluster", token=token)
        return doc if status == 200 else None

    def voters(self, k, token):
        doc = self.view(k, token)
        if doc is None or doc.get("leader_id") is None:
            return None
        return sorted(m["id"] for m in doc["members"] if m["role"] == "voter")

    def leader(self, token, k=1):
        doc = self.view(k, token)
        return doc.get("leader_id") if doc is not None else None

    def write_read(self, via, on, token, name):
        """Creates tenant name through node via and reads it on node on;
        returns the created tenant."""
        status, doc = call(self.api_port(via), "POST", "/api/v1/tenants", {"name": name}, token)
        self.assertEqual(status, 201, repr(doc))
        status, got = call(self.api_port(on), "GET", "/api/v1/tenants/" + doc["id"], token=token)
        self.assertEqual((status, got["name"]), (200, name), "%s read on node %d" % (name, on))
        return doc

    def ready(self, nodes):
        for k in nodes:
            status, _ = call(self.api_port(k), "GET", "/readyz")
            self.assertEqual(status, 200, "node %d /readyz" % k)

    def supervised(self, k):
        pidfile = os.path.join(self.hosts[k]["cairn_run_dir"], "cairnd.pid")
        return subprocess.run([SUPERVISE, "status", "--pidfile", pidfile]).returncode == 0
