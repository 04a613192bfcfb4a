#!/usr/bin/env python3
"""The Ansible playbooks (ansible/), run for real against three local
"hosts" (opslib.py: local connections, each with its own install prefix,
config and data directories and ports; cairnd runs under
tests/ops/supervise, the role's service manager where systemd is not
available), then checked through the cluster's REST API:

 1. deploy-medium.yml deploys 3 nodes from a `cmake --install` prefix; the
    cluster has 3 voters and one leader, the first admin logs in, a write
    through one node is read on another;
 2. a second run and a --check run report changed=0;
 3. add-node.yml --check says it would add a 4th node and starts nothing;
    add-node.yml adds it (a voter, ready); a re-run and a --check run:
    changed=0;
 4. remove-node.yml --check says it would remove it and changes nothing;
    remove-node.yml removes it (3 voters again, its process stopped); a
    re-run and a --check run: changed=0;
 5. rolling-upgrade.yml upgrades the 3 nodes to a second build of this tree
    (configured with another CAIRN_VERSION) while a writer keeps writing
    through all nodes: every acknowledged write is read back afterwards,
    and the longest gap between two acknowledged writes is reported; a
    re-run and a --check run: changed=0;
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
import os
import re
import secrets
import shutil
import subprocess
import threading
import time

import opslib
from opslib import BUILD_DIR, HTTP_TIMEOUT, PLAYBOOK_TIMEOUT, REPO, call, wait_for

UPGRADE_VERSION_SUFFIX = "+ops-upgrade"
NODES = (1, 2, 3)


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


class OpsTest(opslib.OpsCase):
    HOSTS = 7  # 1-3 the cluster, 4 added and removed, 5-7 restored from the backup

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
        self.ready(NODES)
        doc = self.write_read(2, 3, token, "ops-1")

        # 2. idempotent, and --check changes nothing
        self.converged("deploy-medium.yml", inv3)

        # 3. add a 4th node
        inv4 = self.inventory((1, 2, 3, 4), initial=NODES)
        out = self.playbook("add-node.yml", inv4, "-e", "cairn_node=node4", "--check")
        self.assertIn("would add node 4 through node1", out)
        self.assertFalse(self.supervised(4), "add-node.yml --check started node 4")
        self.playbook("add-node.yml", inv4, "-e", "cairn_node=node4")
        wait_for(lambda: self.voters(4, token) == [1, 2, 3, 4], 60, "node 4 a voter")
        status, got = call(self.api_port(4), "GET", "/api/v1/tenants/" + doc["id"], token=token)
        self.assertEqual((status, got["name"]), (200, "ops-1"))
        self.converged("add-node.yml", inv4, "-e", "cairn_node=node4")
        self.playbook("deploy-medium.yml", inv4, expect_changed=0)

        # 4. remove it again
        out = self.playbook("remove-node.yml", inv4, "-e", "cairn_node=node4", "--check")
        self.assertIn("would remove node 4 through node1", out)
        self.assertEqual(self.voters(1, token), [1, 2, 3, 4], "remove-node.yml --check removed")
        self.assertTrue(self.supervised(4), "remove-node.yml --check stopped node 4")
        self.playbook("remove-node.yml", inv4, "-e", "cairn_node=node4")
        wait_for(lambda: self.voters(1, token) == [1, 2, 3], 60, "3 voters after the removal")
        self.assertFalse(self.supervised(4), "node 4 still runs after remove-node.yml")
        self.converged("remove-node.yml", inv4, "-e", "cairn_node=node4")

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
        self.converged("rolling-upgrade.yml", inv3, "-e", "cairn_source_prefix=" + stage2)

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
    opslib.main()
