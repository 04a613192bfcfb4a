#!/usr/bin/env python3
"""The Ansible playbooks (ansible/), run for real against three local
"hosts" (local connections, each with its own install prefix, config and
data directories and ports; cairnd runs under tests/ops/supervise, the role's
service manager where systemd is not available), then checked through the
cluster's REST API:

 1. deploy-medium.yml deploys 3 nodes from a `cmake --install` prefix; the
    cluster has 3 voters and one leader, the first admin logs in, a write
    through one node is read on another;
 2. a second run and a --check run report changed=0;
 3. add-node.yml adds a 4th node (a voter, ready); a re-run: changed=0;
 4. remove-node.yml removes it (3 voters again, its process stopped);
 5. rolling-upgrade.yml upgrades the 3 nodes to a second build of this tree
    (configured with another CAIRN_VERSION) while a writer keeps writing
    through all nodes: every acknowledged write is read back afterwards,
    and the longest gap between two acknowledged writes is reported; a
    re-run: changed=0;
 6. backup.yml saves a backup on the controller, and
 7. deploy-medium.yml -e cairn_restore_from=BACKUP makes a new cluster
    (three more hosts) from it that serves the same objects at the same
    revisions; a re-run: changed=0.

    test_ops.py BUILD_DIR    (ctest passes it; ansible-playbook must be on PATH)

Every process started is stopped at the end; on failure the run directory
(with the playbooks' output and the nodes' logs) is kept. Standard library
only.
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
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
ANSIBLE_DIR = os.path.join(REPO, "ansible")
SUPERVISE = os.path.join(HERE, "supervise")
BUILD_DIR = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(REPO, "build"))
UPGRADE_VERSION_SUFFIX = "+ops-upgrade"
HTTP_TIMEOUT = 15.0
PLAYBOOK_TIMEOUT = 600
NODES = (1, 2, 3)


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


class Writer(threading.Thread):
    """Creates tenants one after another, through each node in turn (the
    next node when one fails), and records every acknowledged one."""

    def __init__(self, ports, token):
        super().__init__(daemon=True)
        self.ports = list(ports)
        self.token = token
        self.stop = threading.Event()
        self.acked = []  # (monotonic time of the 201, tenant id, name)
        self.failures = 0
        self.started = None

    def run(self):
        self.started = time.monotonic()
        k = 0
        deadline = self.started + PLAYBOOK_TIMEOUT
        while not self.stop.is_set() and time.monotonic() < deadline:
            name = "w-%d-%s" % (len(self.acked), secrets.token_hex(4))
            port = self.ports[k % len(self.ports)]
            k += 1
            try:
                status, doc = call(port, "POST", "/api/v1/tenants", {"name": name}, self.token)
            except (OSError, http.client.HTTPException):
                status, doc = 0, None
            if status == 201:
                self.acked.append((time.monotonic(), doc["id"], name))
            else:
                self.failures += 1
                self.stop.wait(0.05)

    def max_gap(self):
        times = [self.started] + [t for t, _, _ in self.acked]
        return max((b - a for a, b in zip(times, times[1:])), default=0.0)


class OpsTest(unittest.TestCase):
    def setUp(self):
        base = os.path.join(BUILD_DIR, "tests", "ops", "tmp")
        os.makedirs(base, exist_ok=True)
        self.dir = tempfile.mkdtemp(prefix="run-", dir=base)
        self.hosts = {}
        ports = free_ports(14)
        for k in range(1, 8):
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
        self.password = secrets.token_urlsafe(18)
        self.pwfile = os.path.join(self.dir, "admin.pw")
        with open(self.pwfile, "w") as f:
            f.write(self.password + "\n")
        os.chmod(self.pwfile, 0o600)
        self.stage1 = self.install(BUILD_DIR, "stage1")
        self.ok = False

    def tearDown(self):
        for k, h in self.hosts.items():
            pidfile = os.path.join(h["cairn_run_dir"], "cairnd.pid")
            if os.path.exists(pidfile):
                subprocess.run([SUPERVISE, "stop", "--pidfile", pidfile], timeout=60)
        if self.ok:
            shutil.rmtree(self.dir, ignore_errors=True)
        else:
            print("run directory kept: %s" % self.dir, file=sys.stderr)
            for k, h in self.hosts.items():
                log = os.path.join(h["cairn_run_dir"], "cairnd.log")
                if os.path.exists(log):
                    with open(log) as f:
                        tail = f.readlines()[-15:]
                    print("--- node%d log tail\n%s" % (k, "".join(tail)), file=sys.stderr)

    # ---- helpers

    def install(self, build_dir, name):
        prefix = os.path.join(self.dir, name)
        subprocess.run(["cmake", "--install", build_dir, "--prefix", prefix], check=True,
                       stdout=subprocess.DEVNULL, timeout=300)
        return prefix

    def upgrade_build(self):
        """A second build of this tree with another CAIRN_VERSION (only
        cairnd is rebuilt); its prefix is the first with that cairnd."""
        with open(os.path.join(BUILD_DIR, "CMakeCache.txt")) as f:
            cache = f.read()
        build_type = re.search(r"^CMAKE_BUILD_TYPE:\w+=(.*)$", cache, re.M).group(1)
        version = re.search(r"^CAIRN_VERSION:\w+=(.*)$", cache, re.M).group(1)
        new_version = version + UPGRADE_VERSION_SUFFIX
        build2 = os.path.join(BUILD_DIR, "ops-upgrade-build")
        subprocess.run(["cmake", "-S", REPO, "-B", build2, "-DCMAKE_BUILD_TYPE=" + build_type,
                        "-DCAIRN_VERSION=" + new_version], check=True, stdout=subprocess.DEVNULL,
                       timeout=300)
        subprocess.run(["cmake", "--build", build2, "-j2", "--target", "cairnd"], check=True,
                       stdout=subprocess.DEVNULL, timeout=1200)
        stage2 = os.path.join(self.dir, "stage2")
        shutil.copytree(self.stage1, stage2, symlinks=True)
        shutil.copy2(os.path.join(build2, "bin", "cairnd"), os.path.join(stage2, "bin", "cairnd"))
        out = subprocess.run([os.path.join(stage2, "bin", "cairnd"), "--version"], check=True,
                             capture_output=True, text=True).stdout
        self.assertEqual(out.strip(), "cairnd " + new_version)
        return stage2, version, new_version

    def inventory(self, nodes, initial=NODES, **group_vars):
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

    def playbook(self, name, inventory, *extra, expect_changed=None):
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
        cmd = ["ansible-playbook", "-i", inventory, name] + list(extra)
        start = time.monotonic()
        proc = subprocess.run(cmd, cwd=ANSIBLE_DIR, env=env, capture_output=True, text=True,
                              timeout=PLAYBOOK_TIMEOUT)
        took = time.monotonic() - start
        tag = "%s%s" % (name, "".join(" " + a for a in extra))
        log = os.path.join(self.dir, "playbook-%d.log" % len(os.listdir(self.dir)))
        with open(log, "w") as f:
            f.write("$ %s\n%s\n%s" % (" ".join(cmd), proc.stdout, proc.stderr))
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
        return proc.stdout

    def api_port(self, k):
        return self.hosts[k]["cairn_api_port"]

    def login(self, k):
        status, doc = call(self.api_port(k), "POST", "/api/v1/auth/login",
                           {"username": "admin", "password": self.password})
        self.assertEqual(status, 200, "login on node %d: %r" % (k, doc))
        return doc["token"]

    def voters(self, k, token):
        status, doc = call(self.api_port(k), "GET", "/api/v1/cluster", token=token)
        if status != 200 or doc.get("leader_id") is None:
            return None
        return sorted(m["id"] for m in doc["members"] if m["role"] == "voter")

    def leader(self, token):
        status, doc = call(self.api_port(1), "GET", "/api/v1/cluster", token=token)
        return doc.get("leader_id") if status == 200 else None

    def lead_with(self, k, token):
        """Transfers leadership until node k leads (the target of a transfer
        is raft's choice; bounded tries)."""
        for _ in range(20):
            old = wait_for(lambda: self.leader(token), 20, "a leader")
            if old == k:
                return
            status, doc = call(self.api_port(k), "POST", "/api/v1/cluster/leader/transfer",
                               token=token)
            self.assertEqual(status, 204, repr(doc))
            wait_for(lambda: self.leader(token) not in (None, old), 20, "a new leader")
        self.fail("node %d never became the leader" % k)

    def supervised(self, k):
        pidfile = os.path.join(self.hosts[k]["cairn_run_dir"], "cairnd.pid")
        return subprocess.run([SUPERVISE, "status", "--pidfile", pidfile]).returncode == 0

    def started_versions(self, k):
        with open(os.path.join(self.hosts[k]["cairn_run_dir"], "cairnd.log")) as f:
            return re.findall(r'msg="started" version=(\S+)', f.read())

    # ---- the test

    def test_playbooks(self):
        inv3 = self.inventory(NODES)

        # 1. fresh medium deployment
        self.playbook("deploy-medium.yml", inv3)
        token = self.login(1)
        wait_for(lambda: self.voters(2, token) == [1, 2, 3], 30, "3 voters seen by node 2")
        for k in NODES:
            status, _ = call(self.api_port(k), "GET", "/readyz")
            self.assertEqual(status, 200, "node %d /readyz" % k)
        status, doc = call(self.api_port(2), "POST", "/api/v1/tenants", {"name": "ops-1"}, token)
        self.assertEqual(status, 201, repr(doc))
        status, got = call(self.api_port(3), "GET", "/api/v1/tenants/" + doc["id"], token=token)
        self.assertEqual((status, got["name"]), (200, "ops-1"))

        # 2. idempotent, and --check changes nothing
        self.playbook("deploy-medium.yml", inv3, expect_changed=0)
        self.playbook("deploy-medium.yml", inv3, "--check", expect_changed=0)

        # 3. add a 4th node
        inv4 = self.inventory((1, 2, 3, 4))
        self.playbook("add-node.yml", inv4, "-e", "cairn_node=node4")
        wait_for(lambda: self.voters(4, token) == [1, 2, 3, 4], 60, "node 4 a voter")
        status, got = call(self.api_port(4), "GET", "/api/v1/tenants/" + doc["id"], token=token)
        self.assertEqual((status, got["name"]), (200, "ops-1"))
        self.playbook("add-node.yml", inv4, "-e", "cairn_node=node4", expect_changed=0)
        self.playbook("deploy-medium.yml", inv4, expect_changed=0)

        # 4. remove it again
        self.playbook("remove-node.yml", inv4, "-e", "cairn_node=node4")
        wait_for(lambda: self.voters(1, token) == [1, 2, 3], 60, "3 voters after the removal")
        self.assertFalse(self.supervised(4), "node 4 still runs after remove-node.yml")
        self.playbook("remove-node.yml", inv4, "-e", "cairn_node=node4", expect_changed=0)

        # 5. rolling upgrade under writes
        stage2, old_version, new_version = self.upgrade_build()
        # node1, upgraded first, leads: the playbook must move leadership off it.
        self.lead_with(1, token)
        writer = Writer([self.api_port(k) for k in NODES], token)
        writer.start()
        try:
            wait_for(lambda: len(writer.acked) >= 20, 30, "the writer's first writes")
            out = self.playbook("rolling-upgrade.yml", inv3, "-e", "cairn_source_prefix=" + stage2)
            before = len(writer.acked)
            wait_for(lambda: len(writer.acked) >= before + 20, 30, "writes after the upgrade")
        finally:
            writer.stop.set()
            writer.join(HTTP_TIMEOUT + 5)
        transfers = re.findall(r"TASK \[Hand leadership to another voter\][^\n]*\n(?:[^\n]*\n)*?"
                               r"(changed|skipping|ok): \[(node\d)\]", out)
        moved = [h for what, h in transfers if what == "changed"]
        print("rolling upgrade: %d writes acknowledged, %d failed attempts, longest gap between "
              "two acknowledged writes %.3f s; leadership moved away from %s"
              % (len(writer.acked), writer.failures, writer.max_gap(), moved or "no node"),
              flush=True)
        self.assertIn("node1", moved, "leadership not moved off node1: %r" % transfers)
        for k in NODES:
            # Started once by the deployment, once by the upgrade: re-runs,
            # --check and the membership changes restarted nothing.
            self.assertEqual(self.started_versions(k), [old_version, new_version],
                             "node %d's starts" % k)
        lost = []
        for _, tid, name in writer.acked:
            status, got = call(self.api_port(1), "GET", "/api/v1/tenants/" + tid, token=token)
            if status != 200 or got.get("name") != name:
                lost.append((tid, name, status))
        self.assertEqual(lost, [], "acknowledged writes lost")
        self.playbook("rolling-upgrade.yml", inv3, "-e", "cairn_source_prefix=" + stage2,
                      expect_changed=0)

        # 6. backup
        backups = os.path.join(self.dir, "backups")
        self.playbook("backup.yml", inv3, "-e", "cairn_backup_dir=" + backups)
        files = os.listdir(backups)
        self.assertEqual(len(files), 1, repr(files))
        backup = os.path.join(backups, files[0])
        self.assertGreater(os.path.getsize(backup), 0)

        # 7. a new cluster (nodes 5-7) restored from that backup
        restored = (5, 6, 7)
        inv_r = self.inventory(restored, initial=restored, cairn_cluster_id="ops-restored")
        self.playbook("deploy-medium.yml", inv_r, "-e", "cairn_restore_from=" + backup)
        token_r = self.login(5)
        wait_for(lambda: self.voters(6, token_r) == [5, 6, 7], 30, "the restored cluster")
        status, got = call(self.api_port(6), "GET", "/api/v1/tenants/" + doc["id"],
                           token=token_r)
        self.assertEqual((status, got.get("name"), got.get("mod_revision")),
                         (200, "ops-1", doc["mod_revision"]), "ops-1 in the restored cluster")
        _, tid, name = writer.acked[-1]
        status, got = call(self.api_port(7), "GET", "/api/v1/tenants/" + tid, token=token_r)
        self.assertEqual((status, got.get("name")), (200, name), "the last write, restored")
        self.playbook("deploy-medium.yml", inv_r, "-e", "cairn_restore_from=" + backup,
                      expect_changed=0)

        self.ok = True


if __name__ == "__main__":
    if shutil.which("ansible-playbook") is None:
        sys.exit("ansible-playbook not found: run tools/install-deps (Debian package ansible)")
    unittest.main(argv=sys.argv[:1], verbosity=2)
