"""Run a worker's ``[build] command`` (``atoll build``, and ``atoll dev`` before it serves).

The command runs in a shell, in the worker folder (or ``[build] cwd``), with
the environment of atoll plus :data:`ATOLL_PYTHON` (the Python that runs atoll,
so a build script can call ``"$ATOLL_PYTHON" -m ziglang``). Its output is
streamed line by line to ``on_output`` as it comes and the end of it is kept
for the error message when the command fails.
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from atoll.devtools.toolchains import require_toolchains
from atoll.errors import BuildError
from atoll.manifest import Manifest

__all__ = ["ATOLL_PYTHON", "BuildOutput", "expected_outputs", "run_build"]

#: Environment variable naming the Python interpreter that runs atoll.
ATOLL_PYTHON = "ATOLL_PYTHON"

#: Lines of output kept for the error message of a failed build.
KEPT_LINES = 60


@dataclass(frozen=True, slots=True)
class BuildOutput:
    """A file the worker loads, after a build: where it is and whether the build wrote it."""

    #: Path relative to the worker folder, as written in atoll.toml.
    relative: str
    path: Path
    size: int
    #: True when the file changed during the build (its mtime moved).
    rebuilt: bool


def expected_outputs(manifest: Manifest) -> list[str]:
    """The wasm files the worker loads: a ``.wasm`` entry and every ``[wasm_modules]`` path."""
    paths = [manifest.main] if manifest.main.endswith(".wasm") else []
    paths += [p for p in manifest.wasm_modules.values() if p not in paths]
    return paths


def _mtimes(manifest: Manifest) -> dict[str, int | None]:
    result: dict[str, int | None] = {}
    for relative in expected_outputs(manifest):
        try:
            result[relative] = manifest.resolve(relative).stat().st_mtime_ns
        except OSError:
            result[relative] = None
    return result


def run_build(
    manifest: Manifest,
    *,
    timeout: float = 600.0,
    on_output: Callable[[str], None] | None = None,
    check_toolchains: bool = True,
) -> list[BuildOutput] | None:
    """Run the build command in the worker folder (or ``[build] cwd``).

    Returns ``None`` when the manifest has no build command, else the wasm
    files the worker loads (see :func:`expected_outputs`). ``on_output`` gets
    each line of output (stdout and stderr merged, without the newline) while
    the command runs. With ``check_toolchains`` the toolchains the build
    declares are checked first (:func:`atoll.devtools.toolchains.require_toolchains`).

    Raises :class:`BuildError` when a toolchain is missing (naming it and its
    install command), when the command fails or times out (with the end of
    its output), or when it succeeds without producing a file the worker loads.
    """
    command = manifest.build.command
    if not command:
        return None
    cwd = manifest.resolve(manifest.build.cwd or ".")
    if not Path(cwd).is_dir():
        raise BuildError(f"{manifest.path}: [build] cwd '{manifest.build.cwd}' is not a folder")
    if check_toolchains:
        require_toolchains(manifest)
    before = _mtimes(manifest)
    tail = _run(command, cwd, timeout, on_output)
    if tail is not None:
        returncode, output = tail
        hint = None
        if returncode == 127:
            hint = "a tool the build needs is not installed; scripts/install-toolchains.sh installs them"
        raise BuildError(
            f"[build] command `{command}` failed (exit {returncode}) in {cwd}:\n{output}",
            hint=hint,
        )
    outputs = []
    for relative, mtime in before.items():
        path = manifest.resolve(relative)
        try:
            stat = path.stat()
        except OSError:
            raise BuildError(
                f"[build] command `{command}` succeeded but '{relative}' does not exist",
                hint=f"the build must write every wasm file atoll.toml names ({manifest.path})",
            ) from None
        outputs.append(BuildOutput(relative, path, stat.st_size, stat.st_mtime_ns != mtime))
    return outputs


def _run(
    command: str, cwd: Path, timeout: float, on_output: Callable[[str], None] | None
) -> tuple[int, str] | None:
    """Run ``command``; ``None`` on success, else its exit code and the end of its output."""
    env = dict(os.environ)
    env[ATOLL_PYTHON] = sys.executable
    kept: collections.deque[str] = collections.deque(maxlen=KEPT_LINES)
    with subprocess.Popen(
        command,
        shell=True,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: a timeout ends all of it
    ) as proc:
        stdout = proc.stdout
        assert stdout is not None

        def pump() -> None:
            try:
                for raw in stdout:
                    line = raw.decode(errors="replace").rstrip("\r\n")
                    kept.append(line)
                    if on_output is not None:
                        on_output(line)
            except (ValueError, OSError):  # the pipe was closed under us (see below)
                pass

        reader = threading.Thread(target=pump, name="atoll-build-output", daemon=True)
        reader.start()
        deadline = time.monotonic() + timeout
        try:
            returncode = proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            reader.join(timeout=5)
            raise BuildError(
                f"[build] command `{command}` did not finish in {timeout:.0f} s",
                hint="its output so far:\n" + "\n".join(kept) if kept else None,
            ) from None
        except BaseException:
            _kill_group(proc)
            raise
        # A background process the build left running may hold the pipe open: do not wait for it.
        reader.join(timeout=max(1.0, deadline - time.monotonic()))
    if returncode == 0:
        return None
    return returncode, "\n".join(kept)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()
    proc.wait()
