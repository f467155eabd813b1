"""``python -m benchmarks.refusals`` measures a node's CPU per refused huge head.

Only that it runs, and that each kind got the answer it stands for: the numbers of
such a short run mean nothing.
"""

from __future__ import annotations

import re
import subprocess
import sys

from benchmarks.hostile import ROOT
from benchmarks.refusals import KINDS


def test_a_short_run_prints_a_cost_per_kind() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.refusals", "--rounds", "1", "--count", "5"],
        cwd=ROOT,
        check=True,
        timeout=300,
        capture_output=True,
        text=True,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("round 1 ")]
    assert [kind for kind in KINDS if any(kind in line for line in lines)] == list(KINDS)
    expected = {"8 MiB header": "431: 10", "100,000 headers": "431: 10", "GET /hello": "200: 10"}
    for line in lines:
        kind = next(k for k in KINDS if k in line)
        assert f"({expected[kind]})" in line, line
        assert re.search(r"node CPU +\d+ us per request", line), line
