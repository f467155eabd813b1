"""Run a worker's ``[build] command`` (``atoll build``, and ``atoll dev`` before it serves)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from atoll.errors import BuildError
from atoll.manifest import Manifest

__all__ = ["run_build"]


def run_build(manifest: Manifest, *, timeout: float = 600.0) -> bool:
    """Run the build command in the worker folder (or ``[build] cwd``).

    Returns ``False`` when the manifest has no build command. Raises
    :class:`BuildError` with the command's output when it fails or times out.
    Output is captured, not streamed, so a failure shows it whole.
    """
    command = manifest.build.command
    if not command:
        return False
    cwd = manifest.resolve(manifest.build.cwd or ".")
    if not Path(cwd).is_dir():
        raise BuildError(f"{manifest.path}: [build] cwd '{manifest.build.cwd}' is not a folder")
    try:
        proc = subprocess.run(
            command,
            shell=True,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise BuildError(f"[build] command `{command}` did not finish in {timeout:.0f} s") from None
    if proc.returncode != 0:
        output = (proc.stdout + proc.stderr).strip()
        hint = None
        if proc.returncode == 127:
            hint = "a tool the build needs is not installed; scripts/install-toolchains.sh installs them"
        raise BuildError(
            f"[build] command `{command}` failed (exit {proc.returncode}) in {cwd}:\n{output[-4000:]}",
            hint=hint,
        )
    return True
