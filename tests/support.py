"""Helpers shared by tests (fixtures live in conftest.py)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import wasmtime

#: ``make_worker(python, modules=..., limits=..., extra=..., name=...) -> folder``
WorkerFactory = Callable[..., Path]


def as_wasmtime_py(engine: Any, module: Any) -> tuple[wasmtime.Engine, wasmtime.Module]:
    """wasmtime-py objects for a backend's engine and module (``Engine.engine``, what
    ``ModuleCache.load`` returns): themselves on the public backend; on the native one,
    wasmtime-py objects holding clones of the same C engine and module."""
    if isinstance(engine, wasmtime.Engine):
        return engine, module
    return engine.to_wasmtime_py(), module.to_wasmtime_py()


def wat(text: str) -> bytes:
    """Compile inline WAT to wasm bytes."""
    return bytes(wasmtime.wat2wasm(textwrap.dedent(text)))


REPO = Path(__file__).resolve().parents[1]


@dataclass
class DevServer:
    proc: subprocess.Popen[str]
    url: str
    lines: list[str] = field(default_factory=list)
    pump: threading.Thread | None = None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        if self.pump is not None:
            self.pump.join(timeout=5)
        if self.proc.stderr is not None:
            self.proc.stderr.close()

    def log(self) -> str:
        return "\n".join(self.lines)


def python_steps(action: Callable[[], object]) -> int:
    """How many Python lines and calls ``action`` runs (``sys.settrace`` events): a count
    of work that does not depend on the machine's speed or load. A test compares it for
    two input sizes to tell linear from quadratic work without timing anything."""
    steps = 0

    def trace(frame: object, event: str, arg: object) -> Callable[..., object]:
        nonlocal steps
        steps += 1
        return trace

    previous = sys.gettrace()
    sys.settrace(trace)  # type: ignore[arg-type]
    try:
        action()
    finally:
        sys.settrace(previous)
    return steps


def start_dev(folder: Path, *args: str, env: dict[str, str] | None = None) -> DevServer:
    proc = subprocess.Popen(
        [sys.executable, "-m", "atoll.cli", "dev", str(folder), "--port", "0", *args],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env={**os.environ, **(env or {})},
    )
    assert proc.stderr is not None
    lines: list[str] = []
    deadline = time.monotonic() + 30
    url = None
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        lines.append(line.rstrip())
        match = re.search(r"ready on (http://\S+?)/", line)
        if match:
            url = match.group(1)
            break
    if url is None:
        proc.kill()
        proc.wait()
        proc.stderr.close()
        raise AssertionError("atoll dev did not start:\n" + "\n".join(lines))
    server = DevServer(proc, url, lines)
    stream = proc.stderr

    def pump() -> None:
        for line in stream:
            server.lines.append(line.rstrip())

    server.pump = threading.Thread(target=pump, daemon=True)
    server.pump.start()
    return server


StartDev = Callable[..., DevServer]
