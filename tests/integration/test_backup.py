#!/usr/bin/env python3
"""Backup and restore: a 3-node cluster takes writes, a follower streams a
backup (GET /api/v1/cluster/backup) that holds every acknowledged write;
damaged, truncated and newer-format files and a non-empty data_dir are
refused by `cairnd --restore` (exit 2, nothing written); the good file
restores a NEW 3-node cluster (other directories and ports) that serves
every object at the same revision, lists its own members (not the old
cluster's addresses), takes writes, and grows by a 4th node that gets the
restored state as a raft snapshot."""

import os
import shutil
import struct
import subprocess
import sys
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Cluster, lc, log, unique_name, wait_for  # noqa: E402

PASSWORD = "correct horse battery staple"


def _crc32c_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


CRC_TABLE = _crc32c_table()


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc = (crc >> 8) ^ CRC_TABLE[(crc ^ b) & 0xFF]
    return crc ^ 0xFFFFFFFF


def objects(c, node, path):
    """{id: (name-or-username, ETag)} of every object of a list route, read
    page by page (linearizable)."""
    out = {}
    cursor = None
    for _ in range(1000):
        q = path + "?limit=100" + ("&cursor=" + cursor if cursor else "")
        r = c.get(node, q)
        if r.status != 200:
            raise AssertionError("GET %s on node %d: %r" % (q, node, r))
        for item in r.json["items"]:
            g = c.get(node, path + "/" + item["id"])
            if g.status != 200:
                raise AssertionError("GET %s/%s: %r" % (path, item["id"], g))
            out[item["id"]] = (item.get("name") or item.get("username"), g.header("etag"))
        cursor = r.json.get("next_cursor")
        if not cursor:
            return out
    raise AssertionError("more than 1000 pages at %s" % path)


class RestoredCluster(Cluster):
    """A new cluster whose every initial member is seeded from one backup
    with `cairnd --restore` before its first start; its administrator is
    the backup's (the users come from the backup)."""

    def __init__(self, n, backup, admin_dir, **kw):
        super().__init__(n, **kw)
        self.backup = backup
        self.admin_dir = admin_dir

    def up(self):
        cluster = lc._create(self.dir, self.n, self.settings)
        for name in (lc.ADMIN_JSON, lc.ADMIN_PW):
            shutil.copyfile(os.path.join(self.admin_dir, name), os.path.join(self.dir, name))
        for node in cluster["nodes"]:
            out = run_cairnd(["-c", node["conf"], "--restore", self.backup])
            if out.returncode != 0:
                raise AssertionError("restore node %d: exit %d: %s"
                                     % (node["id"], out.returncode, out.stderr))
        urls = lc.up(self.dir, timeout=self.up_timeout)
        self.urls = {k + 1: u for k, u in enumerate(urls)}
        for node in self.urls:
            self._record_pid(node)
        self.admin = lc.admin_credentials(self.dir)
        auth = lc.auth_headers(lc.load(self.dir))
        self.token = auth["Authorization"].split(" ", 1)[1]


def run_cairnd(args):
    exe = os.path.join(lc.bin_dir(), "cairnd")
    return subprocess.run([exe] + args, capture_output=True, text=True, timeout=60)


class BackupTest(unittest.TestCase):
    def refused(self, conf, data_dir, backup, needle):
        """cairnd --restore exits 2, says needle, and leaves data_dir as it
        was (absent or empty)."""
        existed = os.path.isdir(data_dir)
        out = run_cairnd(["-c", conf, "--restore", backup])
        self.assertEqual(out.returncode, 2, "restore of %s: %r" % (backup, out))
        self.assertIn(needle, out.stderr)
        if existed:
            self.assertEqual(os.listdir(data_dir), [], "restore left files behind")
        else:
            self.assertFalse(os.path.exists(data_dir), "restore left %s behind" % data_dir)

    def test_backup_and_restore(self):
        work = harness.tmp_root()
        with Cluster(3, name="backup") as a:
            # Writes through every node: creates, updates (mod revision >
            # create revision), deletes, users.
            tenants = []
            for k in (1, 2, 3):
                for i in range(6):
                    tenants.append(a.must_create_tenant(k, "b-%d-%d" % (k, i)))
            for t in tenants[:4]:
                r = a.request(2, "PUT", "/api/v1/tenants/" + t["id"],
                              body={"name": t["name"] + "-renamed"},
                              headers={"If-Match": a.get(2, "/api/v1/tenants/" + t["id"])
                                       .header("etag")})
                self.assertEqual(r.status, 200, r)
            for t in tenants[-2:]:
                r = a.request(3, "DELETE", "/api/v1/tenants/" + t["id"])
                self.assertIn(r.status, (200, 204), r)
            operator = {"username": unique_name("op"), "password": PASSWORD,
                        "role": "sp_operator"}
            r = a.request(1, "POST", "/api/v1/users", body=operator)
            self.assertEqual(r.status, 201, r)

            leader = a.leader()
            follower = a.followers(leader)[0]
            # Acknowledged on the leader, backed up at once on a follower:
            # the read index makes the backup hold it.
            last = a.must_create_tenant(leader, "last-before-backup")

            # Only the SP admin may take a backup; refusals are audited.
            op_token = a.must_login(1, operator["username"], PASSWORD)
            r = a.request(follower, "GET", "/api/v1/cluster/backup", token=op_token)
            harness.assert_problem(self, r, 403)
            r = a.request(follower, "GET", "/api/v1/cluster/backup", auth=False)
            self.assertEqual(r.status, 401, r)

            log("backup from follower %d" % follower)
            r = a.get(follower, "/api/v1/cluster/backup", timeout=60)
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.header("content-type"), "application/octet-stream")
            body = r.body
            self.assertEqual(int(r.header("content-length")), len(body))
            self.assertEqual(body[:8], b"CAIRNSNP")
            fmt, index, revision = struct.unpack(">IQQ", body[8:28])
            self.assertEqual(fmt, 1)
            self.assertEqual(index, int(r.header("x-cairn-applied-index")))
            self.assertEqual(revision, int(r.header("x-cairn-revision")))
            self.assertEqual(struct.unpack(">I", body[-4:])[0], crc32c(body[:-4]),
                             "the trailer is the CRC-32C of the rest")

            want_tenants = objects(a, follower, "/api/v1/tenants")
            want_users = objects(a, follower, "/api/v1/users")
            self.assertIn(last["id"], want_tenants)
            self.assertEqual(len(want_tenants), len(tenants) - 2 + 1)
            # The audit log has the refused backup.
            r = a.get(1, "/api/v1/audit?limit=50")
            if r.status == 200:
                self.assertTrue(any("backup" in (e.get("message") or "")
                                    for e in r.json["items"]), r.json)
            # Nothing changed an object since the backup (the refusal's
            # audit record does not move the revision).
            lst = a.get(follower, "/api/v1/tenants?limit=1")
            self.assertEqual(lst.json["revision"], revision, "revision moved after the backup")

            backup_dir = os.path.join(a.dir, "backups")
            os.makedirs(backup_dir)
            good = os.path.join(backup_dir, "good.cairn")
            with open(good, "wb") as f:
                f.write(body)
            admin_dir = a.dir

            # Damaged files and a non-empty data dir are refused, exit 2,
            # nothing written.
            scratch = os.path.join(backup_dir, "scratch")
            cl = lc._create(scratch, 1, {"log_level": "info"})
            conf = cl["nodes"][0]["conf"]
            data = os.path.join(cl["nodes"][0]["dir"], "data")
            bad = os.path.join(backup_dir, "bad.cairn")
            with open(bad, "wb") as f:
                f.write(body[:-100])
            self.refused(conf, data, bad, "checksum mismatch")
            flipped = bytearray(body)
            flipped[len(body) // 2] ^= 0x01
            with open(bad, "wb") as f:
                f.write(bytes(flipped))
            self.refused(conf, data, bad, "checksum mismatch")
            newer = bytearray(body)
            newer[8:12] = struct.pack(">I", 2)
            newer[-4:] = struct.pack(">I", crc32c(bytes(newer[:-4])))
            with open(bad, "wb") as f:
                f.write(bytes(newer))
            self.refused(conf, data, bad, "format 2 is not supported")
            with open(bad, "wb") as f:
                f.write(b"hello")
            self.refused(conf, data, bad, "not a Cairn backup")
            os.makedirs(data)
            with open(os.path.join(data, "something"), "w") as f:
                f.write("x")
            out = run_cairnd(["-c", conf, "--restore", good])
            self.assertEqual(out.returncode, 2, out)
            self.assertIn("is not empty", out.stderr)
            self.assertEqual(os.listdir(data), ["something"])

            # Keep the backup beyond the first cluster's directory.
            kept = os.path.join(work or os.path.dirname(a.dir), "backup-%d.cairn" % os.getpid())
            shutil.copyfile(good, kept)
            admin_copy = os.path.join(os.path.dirname(kept), "admin-%d" % os.getpid())
            os.makedirs(admin_copy, exist_ok=True)
            for name in (lc.ADMIN_JSON, lc.ADMIN_PW):
                shutil.copyfile(os.path.join(admin_dir, name), os.path.join(admin_copy, name))

        try:
            self.restored(kept, admin_copy, revision, want_tenants, want_users)
        finally:
            os.unlink(kept)
            shutil.rmtree(admin_copy, ignore_errors=True)

    def restored(self, backup, admin_dir, revision, want_tenants, want_users):
        with RestoredCluster(3, backup, admin_dir, name="restored") as b:
            for k in (1, 2, 3):
                self.assertEqual(objects(b, k, "/api/v1/tenants"), want_tenants,
                                 "tenants on restored node %d" % k)
                self.assertEqual(objects(b, k, "/api/v1/users"), want_users,
                                 "users on restored node %d" % k)
                r = b.get(k, "/api/v1/tenants?limit=1")
                self.assertGreaterEqual(r.json["revision"], revision)
                # The members are the new cluster's own, with its addresses.
                info = b.cluster_info(k)
                self.assertEqual(sorted(m["id"] for m in info["members"]), [1, 2, 3])
                for m in info["members"]:
                    self.assertEqual("http://" + m["api_address"], b.url(m["id"]), info)
            # It takes writes, at revisions after the backup's.
            t = b.must_create_tenant(2, "after-restore")
            self.assertGreater(int(b.get(1, "/api/v1/tenants/" + t["id"]).header("etag")
                                   .strip('"')), revision)
            # Each restored node snapshotted the seeded state once, then went
            # back to the configured snapshot rhythm (not one per entry) at
            # the first entry it applied after that snapshot was persisted:
            # writes, until every node has.
            def rhythm():
                if all("configured snapshot rhythm" in b.read_log(k) for k in (1, 2, 3)):
                    return True
                b.create_tenant(2)
                return False
            wait_for(rhythm, 30, "every node to leave the first-snapshot mode", interval=0.2)
            # A node that joins later gets the restored state too (a raft
            # snapshot, not a replay of the new log alone).
            new = b.add()
            wait_for(lambda: b.get(new, "/readyz", timeout=2.0).status == 200, 60,
                     "node %d ready" % new)
            got = objects(b, new, "/api/v1/tenants")
            want = objects(b, 1, "/api/v1/tenants")
            self.assertTrue(set(want_tenants) | {t["id"]} <= set(want))
            self.assertEqual(got, want, "tenants on the joined node %d" % new)


if __name__ == "__main__":
    harness.run()
