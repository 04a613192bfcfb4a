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
from devsim_cluster import DevsimClusterTest  # noqa: E402
from harness import unique_name, wait_for  # noqa: E402
from test_devsim import PASSWORD, USER, free_ports  # noqa: E402

N_DEVICES = 3
SETTINGS = {
    "liveness_heartbeat_ms": "100",
    "ownership_lease_ms": "1000",
    "liveness_down_ms": "2000",
    "drift_interval_s": "1",
    "device_timeout_ms": "5000",
    "onboard_retry_min_ms": "1000",
    "onboard_retry_max_ms": "10000",
}
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
        """dev0 refuses connections, dev1 is fine, dev2 is given a port
        nothing listens on."""
        self.sim.command("fault dev0 refuse")
        type(self).wrong_port = free_ports(1)
        t = self.c.must_create_tenant(1, unique_name("ob"))
        ports = [self.sim.base_port, self.sim.base_port + 1, self.wrong_port]
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

    def test_c_wrong_port_then_put(self):
        # Wait until the retries are spaced out (the next attempt at least
        # 5 s away), so that an onboarding right after the PUT can only be
        # the PUT's doing.
        def spaced():
            d = self.device("OBD00000002")
            when = d["status"].get("next_attempt_at")
            return d if when and epoch_s(when) >= time.time() + 5 else None
        d = wait_for(spaced, 6 * MAX_DELAY_S, "dev2's retries to be 5 s apart", interval=0.2)
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


if __name__ == "__main__":
    harness.run()
