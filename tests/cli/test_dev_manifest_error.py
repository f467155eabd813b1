"""``atoll dev`` on a folder whose manifest is wrong: a clear message, exit 1, no traceback.

Runs the command in a real process, as a user would, so what is checked is
exactly what reaches the terminal.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

GOOD = 'name = "seed"\nmain = "src/worker.py"\n'


def run_dev(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in {"FORCE_COLOR", "TERM"}}
    return subprocess.run(
        [sys.executable, "-c", "from atoll.cli import main; main()", "dev", str(folder), *args],
        capture_output=True,
        text=True,
        timeout=60,  # a manifest that wrongly loads would serve forever
        env={**env, "NO_COLOR": "1", "COLUMNS": "200"},
        check=False,
    )


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "worker.py").write_text("async def fetch(request, env, ctx): ...\n")
    return tmp_path


CASES = {
    # name: (manifest, pieces stderr must show)
    "unknown_key": (
        GOOD + "\n[limits]\ncpu = 50\n",
        ["atoll.toml:5:", "key 'limits.cpu'", "unknown key", "did you mean 'cpu_ms'?"],
    ),
    "wrangler_key": (
        GOOD + '\n[[r2_buckets]]\nbinding = "FILES"\nbucket_name = "files"\n',
        ["atoll.toml:4:", "key 'r2_buckets'", "not supported by atoll", "remove the binding"],
    ),
    "bad_route": (
        GOOD + 'routes = ["example.com"]\n',
        ["atoll.toml:3:", "key 'routes[0]'", "a route needs a path", "example.com/*"],
    ),
    "several_problems": (
        GOOD + 'account_id = "abc"\n\n[limits]\ncpu = 50\n\n[[queues.producers]]\nbinding = "Q"\n',
        [
            "atoll.toml: 2 problems",
            "atoll.toml:6: key 'limits.cpu': unknown key",
            "atoll.toml:8: key 'queues': not supported by atoll",
            "fix them all, then run again",
        ],
    ),
    "out_of_range": (
        GOOD + "\n[limits]\ncpu_ms = 0\n",
        ["atoll.toml:5:", "key 'limits.cpu_ms'", "below the minimum 1"],
    ),
    "invalid_toml": (
        GOOD + "\n[limits]\ncpu_ms = 50 ms\n",
        ["atoll.toml:5:", "invalid TOML"],
    ),
    "missing_main_file": (
        'name = "seed"\nmain = "src/missing.py"\n',
        ["atoll.toml:2:", "key 'main'", "'src/missing.py' not found"],
    ),
}


@pytest.mark.parametrize("build", [True, False], ids=["build", "no-build"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_manifest_is_a_message_not_a_traceback(case: str, build: bool, folder: Path) -> None:
    manifest, pieces = CASES[case]
    (folder / "atoll.toml").write_text(manifest)
    result = run_dev(folder, *([] if build else ["--no-build"]))
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "error:" in result.stderr
    assert str(folder / "atoll.toml") in result.stderr
    for piece in pieces:
        assert piece in result.stderr, f"{piece!r} not in stderr:\n{result.stderr}"


def test_folder_without_manifest(tmp_path: Path) -> None:
    result = run_dev(tmp_path)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert f"{tmp_path / 'atoll.toml'}: no config file found" in result.stderr
    assert "wrangler.toml" in result.stderr


def test_bracketed_table_names_survive(folder: Path) -> None:
    (folder / "atoll.toml").write_text(GOOD + "\n[limits]\ncpu = 50\n")
    result = run_dev(folder)
    assert "valid keys in [limits]:" in result.stderr
