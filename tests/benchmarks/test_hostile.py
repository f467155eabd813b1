"""``python -m benchmarks.hostile`` runs every attack against a real node and writes its table.

Only that it runs and reports: the numbers of such a short run mean nothing (the
page in docs/benchmarks/hostile.md comes from a full run).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from benchmarks.hostile import ROOT, attacks


def test_quick_run_writes_a_row_per_attack(tmp_path: Path) -> None:
    """Every default attack; ``big bodies, one send() each`` (the old method) only when
    ``--only`` names it."""
    out = tmp_path / "hostile.md"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.hostile",
            "--quick",
            "--seconds",
            "0.5",
            "--out",
            str(out),
        ],
        cwd=ROOT,
        check=True,
        timeout=600,
        capture_output=True,
    )
    page = out.read_text()
    rows = [line for line in page.splitlines() if line.startswith("| ") and "---" not in line]
    names = [row.split(" | ")[0].removeprefix("| ") for row in rows[1:]]
    expected = [attack.name for attack in attacks(quick=True) if attack.default]
    assert names == expected
    for row in rows[1:]:
        cells = row.split(" | ")
        assert float(cells[1]) > 0  # a p99 with no attack was measured
        assert float(cells[4]) > 0  # and one under attack
        assert "THE NODE EXITED" not in row
