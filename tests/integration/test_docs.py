#!/usr/bin/env python3
"""The examples of docs/api.md run: every fenced block marked `sh`, in
order, in one POSIX shell with `set -eu`, against a real 3-node cluster (a
follower's address in $A, an SP administrator's token in $T). A failing
command (curl -f on an error status, jq -e on a false answer) fails the
test, naming the block."""

import os
import re
import subprocess
import sys
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Cluster  # noqa: E402

DOC = os.path.join(harness.REPO, "docs", "api.md")
BLOCK = re.compile(r"^```sh\n(.*?)^```$", re.S | re.M)


def blocks():
    with open(DOC, encoding="utf-8") as f:
        return BLOCK.findall(f.read())


class DocsTest(unittest.TestCase):
    def test_api_examples_run(self):
        found = blocks()
        self.assertGreaterEqual(len(found), 3, "no sh examples in docs/api.md")
        # Each block ends by marking its number, so a failure names it.
        script = "set -eu\n"
        for i, block in enumerate(found, 1):
            script += block + "echo 'block %d ok' >&2\n" % i
        with Cluster(3, name="docs") as c:
            node = c.followers()[0]
            env = dict(os.environ, A=c.url(node), T=c.token)
            p = subprocess.run(["sh", "-c", script], env=env, capture_output=True, text=True,
                               timeout=120)
            done = len(re.findall(r"block (\d+) ok", p.stderr))
            if p.returncode != 0 or done != len(found):
                self.fail("block %d of docs/api.md failed (exit %d):\n%s\nstdout:\n%s\n"
                          "stderr:\n%s" % (done + 1, p.returncode,
                                            found[min(done, len(found) - 1)],
                                            p.stdout[-2000:], p.stderr[-2000:]))


if __name__ == "__main__":
    harness.run()
