#!/usr/bin/env python3
"""Measures a backup: a 3-node cluster gets N tenants (8 writer threads),
then a follower streams GET /api/v1/cluster/backup; prints the size and the
time, and the time of `cairnd --restore` of that file. A dev script, not a
test:

    CAIRN_BIN_DIR=build/bin python3 tests/bench/backup_probe.py 5000
"""

import os
import sys
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from harness import Cluster, lc  # noqa: E402
import subprocess  # noqa: E402


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    with Cluster(3, name="backup-probe") as c:
        leader = c.leader()
        per = (n + 7) // 8

        def writer(w):
            for i in range(per):
                c.must_create_tenant(1 + (w % 3), "probe-%d-%d" % (w, i))

        t0 = time.monotonic()
        threads = [threading.Thread(target=writer, args=(w,)) for w in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        print("wrote %d tenants in %.1f s" % (per * 8, time.monotonic() - t0))
        follower = c.followers(leader)[0]
        for who, node in (("leader", leader), ("follower", follower)):
            t0 = time.monotonic()
            r = c.get(node, "/api/v1/cluster/backup", timeout=120)
            dt = time.monotonic() - t0
            assert r.status == 200, r
            print("backup from %s: %d bytes in %.3f s (revision %s, index %s)" % (
                who, len(r.body), dt, r.header("x-cairn-revision"),
                r.header("x-cairn-applied-index")))
        path = os.path.join(c.dir, "probe.backup")
        with open(path, "wb") as f:
            f.write(r.body)
        conf = lc._create(os.path.join(c.dir, "restore"), 1, {})["nodes"][0]["conf"]
        t0 = time.monotonic()
        out = subprocess.run([os.path.join(lc.bin_dir(), "cairnd"), "-c", conf, "--restore", path],
                             capture_output=True, text=True)
        print("restore: exit %d in %.3f s: %s" % (out.returncode, time.monotonic() - t0,
                                                  out.stdout.strip() or out.stderr.strip()))


if __name__ == "__main__":
    main()
