#!/usr/bin/env python3
"""Onboarding retries, end to end: a 3-node cluster and one cairn-devsim
serving 3 simulated CPEs, with a short onboarding backoff (1 s doubling up
to 10 s) and a drift check every second.

- A device that refuses connections when it is imported ends
  `unreachable` (alarm, `status.next_attempt_at`), and its owner tries it
  again by itself (the next attempt moves on); the periodic drift check
  leaves it alone (its last error stays the onboarding's). Once the fault
  is cleared it is onboarded with no operator action, within the backoff.
- A device imported with a wrong port stays unreachable, its retries
  spaced further and further apart; a PUT with the right port onboards it
  at once, well before its next scheduled attempt.
- POST /api/v1/devices/{id}/onboard: a device whose retries are spaced
  out is onboarded by the job at once once it answers again (202, the
  job succeeds well before the next scheduled attempt); while it still
  refuses, the job fails saying why; an unmanaged device is 409.
"""

import calendar
import os
import sys
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "devsim"))
import harness  # noqa: E402
from devsim_cluster import FAST_OWNERSHIP, DevsimClusterTest  # noqa: E402
from harness import unique_name, wait_for  # noqa: E402
from test_devsim import PASSWORD, USER, free_ports  # noqa: E402

N_DEVICES = 4
SETTINGS = dict(FAST_OWNERSHIP, drift_interval_s="1", onboard_retry_min_ms="1000",
                onboard_retry_max_ms="10000")
MAX_DELAY_S = 10 * 1.25  # onboard_retry_max_ms with its jitter


def epoch_s(rfc3339):
    """Seconds since the epoch of "YYYY-MM-DDTHH:MM:SSZ"."""
    return calendar.timegm(time.strptime(rfc3339, "%Y-%m-%dT%H:%M:%SZ"))


class OnboardingTest(DevsimClusterTest):
    N_DEVICES = N_DEVICES
    SETTINGS = SETTINGS
    NAME = "onboarding"
    JOB_TIMEOUT_S = 60

    def device(self, serial):
        return self.req("GET", "/api/v1/devices/" + self.ids[serial], status=200).json

    def wait_state(self, serial, state, timeout):
        def reached():
            d = self.device(serial)
            return d if d["status"].get("state") == state else None
        return wait_for(reached, timeout, "%s to be %s" % (serial, state), interval=0.2)

    def assert_unreachable(self, d):
        st = d["status"]
        self.assertEqual(st["state"], "unreachable", st)
        self.assertFalse(st["reachable"], st)
        self.assertIn("unreachable", st["alarms"])
        self.assertTrue(st["last_error"].startswith("onboard: "), st)
        self.assertIn("next_attempt_at", st)

    def assert_onboarded(self, d):
        st = d["status"]
        self.assertEqual(st["state"], "onboarded", st)
        self.assertTrue(st["reachable"], st)
        self.assertNotIn("unreachable", st["alarms"])
        self.assertNotIn("next_attempt_at", st)
        self.assertNotIn("last_error", st)
        self.assertTrue(st["facts"]["serial"])
        self.assertTrue(d["host_key"].startswith("SHA256:"))

    # The tests run in name order: a_ imports, the others build on it.

    def test_a_import(self):
        """dev0 and dev3 refuse connections, dev1 is fine, dev2 is given a
        port nothing listens on."""
        self.sim.command("fault dev0 refuse")
        self.sim.command("fault dev3 refuse")
        type(self).wrong_port = free_ports(1)
        t = self.c.must_create_tenant(1, unique_name("ob"))
        ports = [self.sim.base_port, self.sim.base_port + 1, self.wrong_port,
                 self.sim.base_port + 3]
        body = {"tenant_id": t["id"], "sites": [{"name": "hq", "role": "hub"}],
                "devices": [{"site": "hq", "serial": "OBD%08d" % i, "family": "ucpe",
                             "management": {"host": "127.0.0.1", "port": ports[i]},
                             "credentials": {"username": USER, "password": PASSWORD}}
                            for i in range(N_DEVICES)]}
        r = self.req("POST", "/api/v1/imports", 2, 202, body=body)
        self.assertEqual(self.wait_job(r.header("location"))["state"], "succeeded")
        q = "/api/v1/devices?limit=100&tenant_id=" + t["id"]
        ds = self.req("GET", q, status=200).json["items"]
        type(self).ids = {d["serial"]: d["id"] for d in ds}
        self.assertEqual(len(self.ids), N_DEVICES)
        self.assert_onboarded(self.wait_state("OBD00000001", "onboarded", 60))
        self.assert_unreachable(self.wait_state("OBD00000000", "unreachable", 60))
        self.assert_unreachable(self.wait_state("OBD00000002", "unreachable", 60))
        self.assert_unreachable(self.wait_state("OBD00000003", "unreachable", 60))

    def test_b_refused_then_cleared(self):
        first = self.device("OBD00000000")["status"]["next_attempt_at"]

        def retried():
            d = self.device("OBD00000000")
            return d if d["status"].get("next_attempt_at") not in (None, first) else None
        # Retried by its owner alone: the next attempt moved on; and the
        # drift checks (every second) did not report it as theirs.
        d = wait_for(retried, 4 * MAX_DELAY_S, "dev0 to be tried again", interval=0.2)
        self.assert_unreachable(d)
        self.sim.command("clear dev0")
        started = time.monotonic()
        d = self.wait_state("OBD00000000", "onboarded", MAX_DELAY_S + 10)
        self.assert_onboarded(d)
        harness.log("dev0 onboarded %.1f s after its fault was cleared"
                    % (time.monotonic() - started))

    def wait_spaced(self, serial):
        """Waits until the device's retries are spaced out (the next
        attempt at least 5 s away), so that an onboarding right after what
        the test does next can only be that's doing."""
        def spaced():
            d = self.device(serial)
            when = d["status"].get("next_attempt_at")
            return d if when and epoch_s(when) >= time.time() + 5 else None
        return wait_for(spaced, 6 * MAX_DELAY_S, "%s's retries to be 5 s apart" % serial,
                        interval=0.2)

    def test_c_wrong_port_then_put(self):
        d = self.wait_spaced("OBD00000002")
        self.assert_unreachable(d)
        next_attempt = epoch_s(d["status"]["next_attempt_at"])
        body = {k: d[k] for k in ("site_id", "serial", "family")}
        body["management"] = {"host": "127.0.0.1", "port": self.sim.base_port + 2}
        body["credentials"] = {"username": USER}  # the password stays
        started = time.monotonic()
        self.req("PUT", "/api/v1/devices/" + d["id"], status=200, body=body)
        d = self.wait_state("OBD00000002", "onboarded", max(next_attempt - time.time() - 1, 1))
        self.assert_onboarded(d)
        self.assertLess(time.time(), next_attempt)
        harness.log("dev2 onboarded %.1f s after the PUT (its next attempt was %.1f s away)"
                    % (time.monotonic() - started, next_attempt - time.time()))

    def test_d_onboard_operation(self):
        dev = self.ids["OBD00000003"]
        path = "/api/v1/devices/%s/onboard" % dev
        # Still refusing: the job fails, naming the device's answer.
        job = self.wait_job(self.req("POST", path, 3, 202).header("location"))
        self.assertEqual(job["type"], "device-onboard")
        self.assertEqual(job["state"], "failed", job)
        self.assertIn("refused", job["tasks"][0]["message"], job)
        d = self.wait_spaced("OBD00000003")
        self.assert_unreachable(d)
        next_attempt = epoch_s(d["status"]["next_attempt_at"])
        self.sim.command("clear dev3")
        started = time.monotonic()
        r = self.req("POST", path, 2, 202)
        self.assertEqual(r.json["target"], {"kind": "device", "id": dev})
        job = self.wait_job(r.header("location"))
        self.assertEqual(job["state"], "succeeded", job)
        self.assertEqual(job["progress"], {"done": 1, "total": 1}, job)
        self.assert_onboarded(self.device("OBD00000003"))
        self.assertLess(time.time(), next_attempt)
        harness.log("dev3 onboarded by its job %.1f s after the POST (its next attempt was "
                    "%.1f s away)" % (time.monotonic() - started, next_attempt - time.time()))
        # Unmanaged: not to be touched.
        d = self.device("OBD00000001")
        body = {k: d[k] for k in ("site_id", "serial", "family", "management")}
        body["desired_state"] = "unmanaged"
        self.req("PUT", "/api/v1/devices/" + d["id"], status=200, body=body)
        r = self.req("POST", "/api/v1/devices/%s/onboard" % d["id"], 1, 409)
        self.assertEqual(r.json["type"], "urn:cairn:problem:device-unmanaged", r.json)


if __name__ == "__main__":
    harness.run()
