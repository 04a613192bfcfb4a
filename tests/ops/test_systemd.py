#!/usr/bin/env python3
"""The cairn_node role's systemd path (cairn_service_manager: systemd, what
it does on a real host), where CI has no systemd to run it: deploy-small.yml
runs with --check --diff against one local "host" (opslib.py) with that
path selected and a prefix install, which goes through every task of it
(the cairn group and user, the directories owned by them, the unit and the
drop-in, the service) without changing the machine. Then, from the diff:

 1. the unit the role would install in /etc/systemd/system is the packaged
    unit (build/cairnd.service, whose hardening ops.unit checks), unchanged;
 2. the drop-in it would install as
    /etc/systemd/system/cairnd.service.d/10-cairn-node.conf sets only the
    paths of this installation and the small profile's limits;
 3. `systemd-analyze verify` finds no problem in the unit with that drop-in
    (its ExecStart pointing at this build's prefix), and `systemd-analyze
    security --offline=true` rates the unit with the drop-in as exposed as
    the packaged unit alone: the drop-in weakens none of the hardening.
    systemd-analyze needs no running systemd for either; without it
    (not installed) 3 is skipped and says so.

    test_systemd.py BUILD_DIR    (ctest passes it; ansible-playbook must be on PATH)
"""

import os
import re
import shutil
import subprocess

import opslib
from opslib import BUILD_DIR

UNIT = "/etc/systemd/system/cairnd.service"
DROP_IN = "/etc/systemd/system/cairnd.service.d/10-cairn-node.conf"
# What the drop-in may set (override.conf.j2), and the small profile's limits
# (roles/cairn_node/defaults/main.yml).
DROP_IN_KEYS = {"ExecStartPre", "ExecStart", "ReadWritePaths", "LimitNOFILE", "TasksMax",
                "MemoryMax"}
SMALL_LIMITS = {"LimitNOFILE": "16384", "TasksMax": "1024", "MemoryMax": "2G"}
ANALYZE_TIMEOUT = 60


def task_results(doc, host):
    """{task name (without its role's prefix): result on host} from the
    json callback's document."""
    results = {}
    for play in doc["plays"]:
        for task in play["tasks"]:
            if host in task["hosts"]:
                results[task["task"]["name"].split(" : ", 1)[-1]] = task["hosts"][host]
    return results


def dest(result):
    """Where a copy or template task would write."""
    return result.get("invocation", {}).get("module_args", {}).get("dest")


def diff_after(result):
    """The content the task would write (the "after" of its --diff)."""
    diff = result.get("diff")
    if isinstance(diff, list):
        diff = diff[0] if diff else {}
    return (diff or {}).get("after")


def directives(text):
    """[(key, value)] of a unit file's assignments, in order."""
    return [tuple(line.split("=", 1)) for line in text.splitlines()
            if "=" in line and not line.startswith(("#", ";"))]


def exposure(unit_path):
    """systemd-analyze security --offline=true's overall exposure of a unit
    file (drop-ins next to it included)."""
    out = subprocess.run(["systemd-analyze", "security", "--offline=true", "--no-pager",
                          unit_path], capture_output=True, text=True,
                         timeout=ANALYZE_TIMEOUT).stdout
    m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", out)
    if m is None:
        raise AssertionError("no exposure level in systemd-analyze security's output:\n" + out)
    return float(m.group(1))


class SystemdPathTest(opslib.OpsCase):
    HOSTS = 1

    def test_systemd_path(self):
        inv = self.inventory((1,), cairn_service_manager="systemd", cairn_supervisor="",
                             cairn_settings={})
        doc = self.playbook("deploy-small.yml", inv, "--check", "--diff", json_output=True)
        results = task_results(doc, "node1")
        for name in ("Group cairn", "User cairn", "Unit of a prefix installation",
                     "Drop-in with the profile's limits and this installation's paths"):
            self.assertIn(name, results, "the systemd path did not run %r: ran %r"
                          % (name, sorted(results)))
            self.assertFalse(results[name].get("skipped"), "%r skipped" % name)
        self.assertNotIn("Start cairnd", results, "the supervised path ran")
        self.assertFalse(os.path.exists(self.hosts[1]["cairn_conf_dir"]), "--check wrote files")

        # 1. the packaged unit, unchanged
        unit = results["Unit of a prefix installation"]
        self.assertEqual(dest(unit), UNIT)
        with open(os.path.join(BUILD_DIR, "cairnd.service")) as f:
            self.assertEqual(diff_after(unit), f.read(), "the role's unit is not the packaged one")

        # 2. the drop-in: this installation's paths, the profile's limits
        drop = results["Drop-in with the profile's limits and this installation's paths"]
        self.assertEqual(dest(drop), DROP_IN)
        text = diff_after(drop)
        self.assertTrue(text, "no drop-in in the diff")
        got = directives(text)
        self.assertEqual({k for k, _ in got} - DROP_IN_KEYS, set(), "the drop-in sets more")
        h = self.hosts[1]
        cairnd = os.path.join(h["cairn_prefix"], "bin", "cairnd")
        conf = os.path.join(h["cairn_conf_dir"], "cairnd.conf")
        self.assertEqual(got, [
            ("ExecStartPre", ""), ("ExecStartPre", "%s --check-config -c %s" % (cairnd, conf)),
            ("ExecStart", ""), ("ExecStart", "%s -c %s" % (cairnd, conf)),
            ("ReadWritePaths", h["cairn_data_dir"]),
        ] + list(SMALL_LIMITS.items()))

        # 3. systemd-analyze, on the two files as the role would lay them out
        if shutil.which("systemd-analyze") is None:
            print("test_systemd: systemd-analyze not installed; the rendered files were "
                  "checked, not verified", flush=True)
            self.ok = True
            return
        units = os.path.join(self.dir, "units")
        os.makedirs(os.path.join(units, "cairnd.service.d"))
        with open(os.path.join(units, "cairnd.service"), "w") as f:
            f.write(diff_after(unit))
        # The prefix as the role would have copied it: this build's install.
        with open(os.path.join(units, "cairnd.service.d", os.path.basename(DROP_IN)), "w") as f:
            f.write(text.replace(h["cairn_prefix"], self.stage1))
        env = dict(os.environ, SYSTEMD_LOG_LEVEL="warning")
        proc = subprocess.run(["systemd-analyze", "verify", "--man=no",
                               os.path.join(units, "cairnd.service")],
                              capture_output=True, text=True, env=env, timeout=ANALYZE_TIMEOUT)
        # Only the unit's own problems count (not the host's other units).
        own = [line for line in (proc.stdout + proc.stderr).splitlines()
               if "cairnd.service" in line or units in line]
        self.assertEqual(own, [], "systemd-analyze verify found problems")
        alone = os.path.join(self.dir, "alone")
        os.makedirs(alone)
        shutil.copy(os.path.join(units, "cairnd.service"), alone)
        packaged = exposure(os.path.join(alone, "cairnd.service"))
        deployed = exposure(os.path.join(units, "cairnd.service"))
        print("test_systemd: systemd-analyze verify: ok; exposure %.1f (packaged unit %.1f)"
              % (deployed, packaged), flush=True)
        self.assertLessEqual(deployed, packaged, "the drop-in weakens the unit's hardening")
        self.ok = True


if __name__ == "__main__":
    opslib.main()
