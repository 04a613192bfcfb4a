#!/usr/bin/env python3
"""deploy-small.yml and deploy-large.yml, run for real against one and five
local "hosts" (opslib.py: local connections, each with its own install
prefix, config and data directories and ports; cairnd under
tests/ops/supervise), each with its profile's own settings, then checked
through the cluster's REST API:

 - small: 1 voter, which leads; the first admin logs in; a write is read
   back;
 - large: 5 voters seen by every node, all agreeing on one leader; a write
   through one node is read on another;
 - each node's config carries its profile (http_threads, raft timeouts);
 - a second run and a --check run report changed=0.

test_ops.py covers the medium profile and the other playbooks.

    test_profiles.py BUILD_DIR    (ctest passes it; ansible-playbook must be on PATH)
"""

import os

import opslib
from opslib import wait_for

# What each profile puts in cairnd.conf (roles/cairn_node/defaults/main.yml).
PROFILE_CONF = {
    "small": ("http_threads = 16", "election_timeout_ms = 1000"),
    "large": ("http_threads = 64", "election_timeout_ms = 1500", "heartbeat_timeout_ms = 75"),
}


class ProfilesTest(opslib.OpsCase):
    HOSTS = 5

    def deploy(self, profile, nodes):
        """Deploys nodes with deploy-PROFILE.yml and the profile's own
        settings, checks their config, re-runs and --check; returns a
        token."""
        inv = self.inventory(nodes, cairn_profile=profile, cairn_cluster_id="ops-" + profile,
                             cairn_settings={})
        name = "deploy-%s.yml" % profile
        self.playbook(name, inv)
        for k in nodes:
            with open(os.path.join(self.hosts[k]["cairn_conf_dir"], "cairnd.conf")) as f:
                conf = f.read().splitlines()
            for line in PROFILE_CONF[profile]:
                self.assertIn(line, conf, "node %d's config, profile %s" % (k, profile))
        token = self.login(nodes[0])
        self.converged(name, inv)
        self.ready(nodes)
        return token

    def test_small(self):
        token = self.deploy("small", (1,))
        self.assertEqual(wait_for(lambda: self.voters(1, token), 30, "a leader"), [1])
        self.assertEqual(self.leader(token), 1)
        self.write_read(1, 1, token, "ops-small")
        self.ok = True

    def test_large(self):
        nodes = (1, 2, 3, 4, 5)
        token = self.deploy("large", nodes)
        for k in nodes:
            wait_for(lambda: self.voters(k, token) == list(nodes), 30,
                     "5 voters seen by node %d" % k)
        leaders = {k: self.leader(token, k) for k in nodes}
        self.assertEqual(len(set(leaders.values())), 1, "one leader: %r" % leaders)
        self.assertIn(leaders[1], nodes)
        self.write_read(2, 5, token, "ops-large")
        self.ok = True


if __name__ == "__main__":
    opslib.main()
