"""A test class that runs against one 3-node cluster and one cairn-devsim
for all its tests (test_devices.py, test_ondemand.py, test_onboarding.py): the class sets
N_DEVICES, SETTINGS and NAME (harness.ClusterTestCase keeps the cluster's
directory when a test failed); the simulator and the nodes are stopped in
every case."""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "devsim"))
from harness import ClusterTestCase, wait_for  # noqa: E402
from test_devsim import Devsim  # noqa: E402

# What every devsim cluster test runs with: ownership decided within
# seconds (a 1 s lease, a node down after 2 s of silence), a device that
# does not answer given up after 5 s. A test adds its own on top:
# SETTINGS = dict(FAST_OWNERSHIP, drift_interval_s="1").
FAST_OWNERSHIP = {
    "liveness_heartbeat_ms": "100",
    "ownership_lease_ms": "1000",
    "liveness_down_ms": "2000",
    "device_timeout_ms": "5000",
}


class DevsimClusterTest(ClusterTestCase):
    """A ClusterTestCase with a cairn-devsim of N_DEVICES devices, started
    before the cluster and stopped after it; self.c is the cluster."""

    N_DEVICES = 0
    JOB_TIMEOUT_S = 120

    @classmethod
    def setUpClass(cls):
        cls.sim = Devsim(cls.N_DEVICES)
        try:
            super().setUpClass()
        except BaseException:
            cls.sim.stop()
            raise
        cls.c = cls.cluster

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.sim.stop()

    def req(self, method, path, node=None, status=None, **kw):
        """A request to node (the first live one by default), checking the
        status if given."""
        node = node or self.c.live_nodes()[0]
        r = self.c.request(node, method, path, **kw)
        if status is not None:
            self.assertEqual(r.status, status, r)
        return r

    def wait_job(self, location, timeout=None, node=None):
        """Polls the job until it ends; returns it."""
        def ended():
            job = self.req("GET", location, node, status=200).json
            return job if job["state"] in ("succeeded", "failed", "cancelled") else None
        return wait_for(ended, timeout or self.JOB_TIMEOUT_S, "job %s to end" % location,
                        interval=0.2)
