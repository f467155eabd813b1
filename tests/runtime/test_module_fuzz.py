"""The module fuzzer (scripts/fuzz-modules.py), a short seeded run: no case may crash the process.

It runs in a child process so that an abort (SIGABRT inside wasmtime) fails
this test instead of killing pytest. It runs on the backend the suite runs on
(``ATOLL_CAPI`` is inherited: CI runs it on both). Longer runs: the script
itself, with ``--count`` and ``--seed``.
"""

from __future__ import annotations

import subprocess
import sys

from tests.support import REPO


def test_mutated_modules_are_served_or_refused_cleanly() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "fuzz-modules.py"),
            "--seed",
            "1",
            "--count",
            "10000",
            "--time-limit",
            "45",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert proc.returncode == 0, (
        f"the fuzzer exited with {proc.returncode} (negative: killed by a signal, -6 is "
        f"SIGABRT)\nstdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
    )
    summary = proc.stdout.splitlines()[-2]
    assert "; 0 failed" in summary
    assert int(summary.split()[0]) >= 2000, summary  # the time limit did not cut it short
    assert "/served" in proc.stdout
    assert "/refused" in proc.stdout
