"""A test class that runs against one 3-node cluster and one cairn-devsim
for all its tests (test_devices.py, test_ondemand.py): the class sets
N_DEVICES, SETTINGS and NAME. The cluster's directory is kept when a test
failed; the simulator and the nodes are stopped in every case."""

import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "devsim"))
from harness import Cluster, wait_for  # noqa: E402
from test_devsim import Devsim  # noqa: E402


class DevsimClusterTest(unittest.TestCase):
    N_DEVICES = 0
    SETTINGS = {}
    NAME = "devsim"
    JOB_TIMEOUT_S = 120

    @classmethod
    def setUpClass(cls):
        cls.sim = Devsim(cls.N_DEVICES)
        try:
            cls.c = Cluster(3, settings=cls.SETTINGS, name=cls.NAME)
            cls.c.__enter__()
        except BaseException:
            cls.sim.stop()
            raise
        cls.failed = False

    @classmethod
    def tearDownClass(cls):
        try:
            cls.c.__exit__(AssertionError if cls.failed else None, None, None)
        finally:
            cls.sim.stop()

    def run(self, result=None):
        result = super().run(result)
        if result is not None and (result.failures or result.errors):
            type(self).failed = True
        return result

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
