"""Helpers for end-to-end tests of ``atoll serve``: a real node in a subprocess, real sockets.

``start_serve(state)`` runs ``atoll serve`` and returns a :class:`Node`
with its URLs (ports picked by the system). :func:`write_worker` writes a
worker whose every answer names its version three ways — the entry's
constant, a var and a wasm export — so a response that mixes two versions
is visible. :func:`run_cli` runs one of the client commands in-process.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import httpx
from click.testing import CliRunner, Result

from atoll.control.client import AdminClient
from tests.support import wat

TOKEN = "test-token-0123456789"


@dataclass
class Node:
    """A running ``atoll serve``."""

    proc: subprocess.Popen[str]
    url: str
    admin: str
    state: Path
    token: str = TOKEN
    lines: list[str] = field(default_factory=list)
    pump: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def client(self) -> AdminClient:
        return AdminClient(self.admin, self.token)

    def get(self, host: str, path: str = "/") -> httpx.Response:
        """GET on a new connection with the given Host header."""
        return httpx.get(f"{self.url}{path}", headers={"host": host}, timeout=30)

    def log(self) -> str:
        return "\n".join(self.lines)

    def stop(self, sig: int | None = None) -> int:
        """Stop the node (SIGTERM, then kill after 30 s); returns its exit code."""
        if self.proc.poll() is None:
            self.proc.terminate() if sig is None else self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        code = self.proc.wait()
        if self.pump is not None:
            self.pump.join(timeout=5)
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        return code


def start_serve(
    state: Path, *args: str, processes: int = 1, token: str | None = TOKEN, loops: int = 2
) -> Node:
    """Start ``atoll serve --state STATE`` on free ports; raises if it does not get ready."""
    command = [
        sys.executable,
        "-c",
        "from atoll.cli.serve import serve; serve()",
        "--state",
        str(state),
        "--port",
        "0",
        "--admin-port",
        "0",
        "--processes",
        str(processes),
        "--loops",
        str(loops),
        *args,
    ]
    env = {k: v for k, v in os.environ.items() if k not in {"ATOLL_ADMIN_TOKEN", "FORCE_COLOR"}}
    if token is not None:
        env["ATOLL_ADMIN_TOKEN"] = token
    env.update({"NO_COLOR": "1", "COLUMNS": "300"})
    proc = subprocess.Popen(
        command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env
    )
    assert proc.stderr is not None
    lines: list[str] = []
    deadline = time.monotonic() + 120
    match = None
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        lines.append(line.rstrip())
        match = re.search(r"ready on (http://\S+?)/ .*admin API on (http://\S+?)/", line)
        if match:
            break
    if match is None:
        proc.kill()
        proc.wait()
        proc.stderr.close()
        raise AssertionError("atoll serve did not start:\n" + "\n".join(lines))
    node = Node(proc, match.group(1), match.group(2), state, token or "", lines)
    stream = proc.stderr

    def pump() -> None:
        for line in stream:
            node.lines.append(line.rstrip())

    node.pump = threading.Thread(target=pump, daemon=True)
    node.pump.start()
    return node


def version_wat(number: int) -> str:
    return f'(module (func (export "v") (result i32) (i32.const {number})))'


WORKER = """
import asyncio
import os
from atoll import Response

LABEL = "{label}"

async def fetch(request, env, ctx):
    if request.path == "/slow":  # says it started (a file), then waits for a file to go on
        open(request.query["started"], "w").close()
        while not os.path.exists(request.query["go"]):
            await asyncio.sleep(0.01)
    if request.path == "/secret":
        return Response(str(getattr(env, "API_KEY", "none")))
    if request.path == "/boom":
        ctx.log("about to fail")
        env.M.instantiate().exports.trap()
    ctx.log(f"served by {{LABEL}}")
    number = env.M.instantiate().exports.v()
    return Response(f"{{LABEL}}:{{env.VERSION}}:{{number}}")
"""

TRAP_WAT = """
(module
  (func (export "v") (result i32) (i32.const {number}))
  (func $inner unreachable)
  (func (export "trap") call $inner))
"""


def write_worker(
    folder: Path,
    name: str,
    number: int,
    *,
    routes: Sequence[str] = (),
    python: str | None = None,
) -> Path:
    """A worker answering ``vN:vN:N`` (entry, var, wasm export) and more paths:

    ``/slow?started=F&go=G`` creates file F, then waits until file G exists;
    ``/secret`` answers ``env.API_KEY``; ``/boom`` logs a line and traps in wasm.
    """
    (folder / "src").mkdir(parents=True, exist_ok=True)
    (folder / "pkg").mkdir(exist_ok=True)
    label = f"v{number}"
    (folder / "src" / "worker.py").write_text(
        textwrap.dedent(python) if python else WORKER.format(label=label)
    )
    (folder / "pkg" / "m.wasm").write_bytes(wat(TRAP_WAT.format(number=number)))
    lines = [f'name = "{name}"', 'main = "src/worker.py"']
    if routes:
        lines.append("routes = [" + ", ".join(f'"{r}"' for r in routes) + "]")
    lines += ["[wasm_modules]", 'M = "pkg/m.wasm"', "[vars]", f'VERSION = "{label}"']
    (folder / "atoll.toml").write_text("\n".join(lines) + "\n")
    return folder


def run_cli(command: click.Command, node: Node, *args: str, input: str | None = None) -> Result:
    """Run a client command in-process against ``node`` (URL and token from the environment)."""
    runner = CliRunner()
    env = {"ATOLL_ADMIN_URL": node.admin, "ATOLL_ADMIN_TOKEN": node.token, "NO_COLOR": "1"}
    return runner.invoke(command, list(args), input=input, env=env, catch_exceptions=False)


def deploy(node: Node, folder: Path) -> dict[str, Any]:
    """Deploy ``folder`` through the admin API (as `atoll deploy` does); the node's answer."""
    from atoll.control.bundle import pack
    from atoll.manifest import load_manifest

    name = load_manifest(folder, check_files=False).name
    with node.client() as client:
        return client.deploy(name, pack(folder))
