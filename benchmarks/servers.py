"""Start, watch and stop the servers the benchmarks drive: ``atoll dev`` and workerd.

A :class:`Server` is one OS process listening on one loopback port. Its CPU time
and memory come from ``/proc/PID/stat`` and ``/proc/PID/status`` (the whole
process: every thread). workerd comes from npm, pinned in
``benchmarks/workerd/package.json``; :func:`ensure_workerd` installs it into
``benchmarks/workerd/node_modules`` (``npm ci``) when it is missing.
"""

from __future__ import annotations

import compileall
import contextlib
import functools
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "BENCH_WORKER",
    "HOSTILE_WORKER",
    "ROOT",
    "Server",
    "Unavailable",
    "WorkerdService",
    "atoll_server",
    "bench_workerd",
    "compile_bytecode",
    "ensure_workerd",
    "free_port",
    "get",
    "running",
    "workerd_config",
    "workerd_server",
    "workerd_version",
]

ROOT = Path(__file__).resolve().parent.parent
BENCH_WORKER = ROOT / "examples" / "bench"
HOSTILE_WORKER = BENCH_WORKER / "hostile"
WORKERD_DIR = ROOT / "benchmarks" / "workerd"
WORKERD_BIN = WORKERD_DIR / "node_modules" / "@cloudflare" / "workerd-linux-64" / "bin" / "workerd"
#: workerd's compatibility date for the benchmark workers (any date it supports).
COMPATIBILITY_DATE = "2025-01-01"

CLK_TCK = os.sysconf("SC_CLK_TCK")


class Unavailable(Exception):
    """A server or tool cannot be had on this machine (the message says why)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get(port: int, path: str, timeout: float = 5.0, body: bytes | None = None) -> tuple[int, bytes]:
    """One request on a new connection: (status, body). Raises OSError on failure."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST" if body is not None else "GET", path, body=body)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@dataclass
class Server:
    """One server process on ``port``. Output goes to a log file, read on failure."""

    name: str
    argv: Sequence[str]
    port: int
    cwd: Path = ROOT
    env: dict[str, str] | None = None
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    launched: float = 0.0

    def start(self) -> Server:
        fd, log = tempfile.mkstemp(prefix=f"bench-{self.name}-", suffix=".log")
        self.log_path = Path(log)
        self.launched = time.perf_counter()
        self.proc = subprocess.Popen(
            list(self.argv),
            cwd=self.cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=fd,
            stderr=fd,
            start_new_session=True,
        )
        os.close(fd)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None, "not started"
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def wait_ready(self, path: str = "/hello", timeout: float = 60.0) -> float:
        """Poll ``path`` until it answers 200; returns seconds since launch (the cold start)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise Unavailable(f"{self.name} exited during start-up:\n{self.log_tail()}")
            with contextlib.suppress(OSError, http.client.HTTPException):
                status, _ = get(self.port, path, timeout=timeout)
                if status == 200:
                    return time.perf_counter() - self.launched
            time.sleep(0.002)
        raise Unavailable(
            f"{self.name} did not answer {path} within {timeout:.0f} s:\n{self.log_tail()}"
        )

    def _stat(self) -> list[str]:
        with open(f"/proc/{self.pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()

    def cpu_seconds(self) -> float:
        """User + system CPU time of the process so far (all threads)."""
        fields = self._stat()  # fields after "(comm)": state is [0]; utime [11], stime [12]
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def _status_kib(self, key: str) -> int:
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
        return 0

    def rss_mib(self) -> float:
        return self._status_kib("VmRSS") / 1024

    def peak_rss_mib(self) -> float:
        return self._status_kib("VmHWM") / 1024

    def stop(self, grace: float = 5.0) -> bool:
        """SIGTERM, then SIGKILL after ``grace`` seconds. True if it exited on SIGTERM."""
        if self.proc is None:
            return True
        exited = True
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                exited = False
                self.proc.kill()
                self.proc.wait(10)
        if self.log_path is not None:
            self.log_path.unlink(missing_ok=True)
        return exited


@contextlib.contextmanager
def running(servers: Sequence[Server], path: str = "/hello") -> Iterator[list[Server]]:
    """Start ``servers``, wait until each answers ``path``, and stop them all on exit."""
    try:
        for server in servers:
            server.start()
        for server in servers:
            server.wait_ready(path)
        yield list(servers)
    finally:
        for server in servers:
            server.stop()


# --------------------------------------------------------------------------- atoll


@functools.cache
def compile_bytecode() -> None:
    """Write the ``.pyc`` files of ``src/atoll`` (once per benchmark process).

    An installed atoll has them (pip compiles a package at install); a source checkout
    installed in editable mode gets them only from Python itself, which writes none under
    ``PYTHONDONTWRITEBYTECODE``: then every start would compile atoll's modules from
    source, and a cold start would measure the compiler. The templates are user code that
    ``atoll init`` copies: left alone.
    """
    compileall.compile_dir(ROOT / "src" / "atoll", quiet=1, rx=re.compile(r"[/\\]templates[/\\]"))


def atoll_server(
    worker: Path = BENCH_WORKER, port: int | None = None, loops: int | None = None
) -> Server:
    """``atoll dev WORKER`` on a loopback port (request log off: warnings only)."""
    compile_bytecode()
    port = port or free_port()
    argv = [sys.executable, "-m", "atoll.cli", "dev", str(worker), "--port", str(port)]
    argv += ["--log-level", "warning", "--no-build"]
    if loops is not None:
        argv += ["--loops", str(loops)]
    env = dict(os.environ, ATOLL_KV="memory")  # no KV store on disk for these workers
    return Server(f"atoll:{port}", argv, port, env=env)


# --------------------------------------------------------------------------- workerd


def workerd_version() -> str:
    package = json.loads((WORKERD_DIR / "package.json").read_text())
    return str(package["dependencies"]["workerd"])


def ensure_workerd(timeout: float = 300.0) -> Path:
    """The pinned workerd binary, installed with ``npm ci`` if it is not there yet."""
    stamp = WORKERD_DIR / "node_modules" / ".package-lock.json"
    lock = WORKERD_DIR / "package-lock.json"
    fresh = stamp.exists() and stamp.stat().st_mtime >= lock.stat().st_mtime
    if not (WORKERD_BIN.exists() and fresh):
        npm = shutil.which("npm")
        if npm is None:
            raise Unavailable("workerd: npm not found (Debian: apt-get install npm)")
        # The binary comes in the platform package (an optional dependency): no install script runs.
        result = subprocess.run(
            [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund"],
            cwd=WORKERD_DIR,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if result.returncode != 0 or not WORKERD_BIN.exists():
            raise Unavailable(
                f"workerd: npm ci failed in benchmarks/workerd:\n{result.stderr[-2000:]}"
            )
    return WORKERD_BIN


@dataclass(frozen=True)
class WorkerdService:
    """One worker of a workerd config: a module script, its wasm module, its socket."""

    name: str
    script: Path
    wasm_name: str | None
    wasm: Path | None
    port: int


def workerd_config(folder: Path, services: Sequence[WorkerdService]) -> Path:
    """Write a workerd config (and copies of the files it embeds) into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    service_lines, socket_lines = [], []
    for service in services:
        script = f"{service.name}.mjs"
        shutil.copyfile(service.script, folder / script)
        modules = [f'(name = "worker", esModule = embed "{script}")']
        if service.wasm is not None and service.wasm_name is not None:
            shutil.copyfile(service.wasm, folder / service.wasm_name)
            modules.append(f'(name = "{service.wasm_name}", wasm = embed "{service.wasm_name}")')
        service_lines.append(
            f'    (name = "{service.name}", worker = (modules = [{", ".join(modules)}], '
            f'compatibilityDate = "{COMPATIBILITY_DATE}")),'
        )
        socket_lines.append(
            f'    (name = "{service.name}", address = "127.0.0.1:{service.port}", '
            f'http = (), service = "{service.name}"),'
        )
    config = folder / "config.capnp"
    config.write_text(
        'using Workerd = import "/workerd/workerd.capnp";\n'
        "const config :Workerd.Config = (\n"
        "  services = [\n" + "\n".join(service_lines) + "\n  ],\n"
        "  sockets = [\n" + "\n".join(socket_lines) + "\n  ],\n"
        ");\n"
    )
    return config


def workerd_server(config: Path, port: int, name: str = "workerd") -> Server:
    """workerd serving ``config`` (whose first socket is ``port``)."""
    return Server(
        f"{name}:{port}", [str(WORKERD_BIN), "serve", str(config)], port, cwd=config.parent
    )


def bench_workerd(folder: Path, port: int | None = None) -> Server:
    """workerd serving the bench worker (``bench.mjs`` + ``bench.wasm``) on a port of its own."""
    port = port or free_port()
    service = WorkerdService(
        "bench", WORKERD_DIR / "bench.mjs", "bench.wasm", BENCH_WORKER / "pkg" / "bench.wasm", port
    )
    return workerd_server(workerd_config(folder / f"w{port}", [service]), port)
