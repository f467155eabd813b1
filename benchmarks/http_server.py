"""Compare HTTP server set-ups for atoll: uvicorn, atoll's multi-loop ``serve``, granian.

Run from the repository root::

    python -m benchmarks.http_server            # full run, ~10 minutes
    python -m benchmarks.http_server --quick    # ~2 minutes, fewer rounds

Every server serves the same raw ASGI app (:data:`app`, no framework):

- ``/hello``: a fixed 5-byte body, no wasm;
- ``/fib?n=27``: recursive fib in wasm; the WAT is compiled once at lifespan
  startup, each request gets a fresh Store + instance, the engine has epoch
  interruption with a 1 ms ticker thread and each call a deadline;
- ``/spin?ms=N``: a wasm ``(loop br 0)`` that the epoch deadline stops after N ms.

Load comes from ``wrk -t1 -c32 --latency`` on loopback, in rounds of at most
5 s, interleaved (round r runs every server once, in a rotated order), so a
noisy neighbour hits every server alike. Server CPU is read from
``/proc/<pid>/stat`` (utime + stime of the server's whole process tree) before
and after each round. The stall test runs ``/hello`` under wrk while one other
connection asks for ``/spin?ms=500`` back to back: the wasm call blocks its
event loop, and we see what that does to everyone else.

The markdown table is printed and written into ``docs/benchmarks/http_server.md``
(between its result markers; the text around them is kept).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import wasmtime

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks" / "http_server.md"

WAT = """
(module
  (func $fib (export "fib") (param $n i32) (result i32)
    (if (result i32) (i32.lt_u (local.get $n) (i32.const 2))
      (then (local.get $n))
      (else (i32.add (call $fib (i32.sub (local.get $n) (i32.const 1)))
                     (call $fib (i32.sub (local.get $n) (i32.const 2)))))))
  (func (export "spin")
    (loop $forever (br $forever))))
"""

CPU_LIMIT_TICKS = 30_000  # epoch ticks of 1 ms: a 30 s CPU limit for /fib


# --------------------------------------------------------------------------- the app


class BenchApp:
    """The raw ASGI app under test. Shared state (engine, module) is thread-safe."""

    def __init__(self) -> None:
        config = wasmtime.Config()
        config.epoch_interruption = True
        self.engine = wasmtime.Engine(config)
        self.linker = wasmtime.Linker(self.engine)
        self.module: wasmtime.Module | None = None
        self._stop_ticker = threading.Event()

    def _tick(self) -> None:
        # Catch up on ticks missed while waiting for the GIL, so a deadline of N ticks
        # stays N ms of wall time even when several event loops keep the GIL busy.
        start, ticks = time.monotonic(), 0
        while not self._stop_ticker.wait(0.001):
            due = int((time.monotonic() - start) * 1000)
            while ticks < due:
                self.engine.increment_epoch()
                ticks += 1

    def _call(self, export: str, deadline: int, *args: int) -> Any:
        assert self.module is not None, "lifespan startup has not run"
        store = wasmtime.Store(self.engine)
        store.set_epoch_deadline(deadline)
        instance = self.linker.instantiate(store, self.module)
        func = instance.exports(store)[export]
        assert isinstance(func, wasmtime.Func)
        return func(store, *args)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    self.module = wasmtime.Module(self.engine, WAT)
                    threading.Thread(target=self._tick, daemon=True).start()
                    await send({"type": "lifespan.startup.complete"})
                else:
                    self._stop_ticker.set()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        path = scope["path"]
        query = parse_qs(scope["query_string"].decode())
        if path == "/fib":
            body = str(self._call("fib", CPU_LIMIT_TICKS, int(query["n"][0]))).encode()
        elif path == "/spin":
            with contextlib.suppress(wasmtime.Trap):  # the deadline ends the spin
                self._call("spin", int(query["ms"][0]))
            body = b"spun"
        else:
            body = b"hello"
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/plain"),
                    (b"content-length", b"%d" % len(body)),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


app = BenchApp()


def _serve_main(loops: int, port: int, switch_interval: float | None) -> None:
    """Entry of a server subprocess: atoll's ``serve`` with ``loops`` loops."""
    from atoll.http.server import serve

    if switch_interval is None:
        serve(app, port=port, loops=loops)  # serve's default switch interval
    else:
        serve(app, port=port, loops=loops, switch_interval=switch_interval)


# --------------------------------------------------------------------------- servers


@dataclasses.dataclass
class ServerSpec:
    name: str
    argv: list[str]


SWITCH_SWEEP_MS = (1, 0.5, 0.1)  # sys.setswitchinterval values tried with loops=4


def server_specs(quick: bool) -> list[ServerSpec]:
    py = sys.executable
    uvicorn = [py, "-m", "uvicorn", "benchmarks.http_server:app", "--loop", "uvloop"]
    uvicorn += ["--http", "httptools", "--no-access-log", "--log-level", "warning"]
    granian = [py, "-m", "granian", "--interface", "asgi", "--loop", "uvloop", "--no-ws"]
    granian += ["--log-level", "warning", "--no-access-log"]
    serve = [py, "-m", "benchmarks.http_server", "--serve"]
    specs = [
        ServerSpec("uvicorn, 1 loop", [*uvicorn, "--port", "{port}"]),
        ServerSpec("serve loops=1", [*serve, "1", "--port", "{port}"]),
        ServerSpec("serve loops=2", [*serve, "2", "--port", "{port}"]),
        ServerSpec("serve loops=4", [*serve, "4", "--port", "{port}"]),
        ServerSpec("serve loops=8", [*serve, "8", "--port", "{port}"]),
        ServerSpec(
            "granian ASGI, 1 worker", [*granian, "--port", "{port}", "benchmarks.http_server:app"]
        ),
    ]
    if not quick:
        specs += [
            ServerSpec(
                f"serve loops=4, switch {ms} ms",
                [*serve, "4", "--switch-interval", str(ms / 1000), "--port", "{port}"],
            )
            for ms in SWITCH_SWEEP_MS
        ]
        specs += [
            ServerSpec("uvicorn, 2 processes", [*uvicorn, "--workers", "2", "--port", "{port}"]),
            ServerSpec(
                "granian ASGI, 2 workers",
                [*granian, "--workers", "2", "--port", "{port}", "benchmarks.http_server:app"],
            ),
        ]
    return specs


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Server:
    """A server subprocess on a free port; ``cpu()`` gives its tree's CPU seconds."""

    def __init__(self, spec: ServerSpec) -> None:
        self.spec = spec
        self.port = _free_port()
        argv = [a.replace("{port}", str(self.port)) for a in spec.argv]
        self.proc = subprocess.Popen(argv, cwd=ROOT, stdin=subprocess.DEVNULL)
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/fib?n=5", timeout=1).status_code == 200:
                    break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{spec.name} did not start")
            time.sleep(0.1)

    def cpu(self) -> float:
        return sum(_proc_cpu(pid) for pid in _tree(self.proc.pid))

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _tree(root: int) -> list[int]:
    """``root`` and its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rpartition(")")[2].split()[1])
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo += children.get(pid, [])
    return out


def _proc_cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- load


@dataclasses.dataclass
class Result:
    rps: float
    req_per_cpu_s: float
    p50_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    slow: int  # requests that took > 100 ms
    total: int
    errors: int
    spin_ms: float  # the spinner's median round trip (stall tests)


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    assert m, text
    return float(m[1]) * _UNITS[m[2]]


# wrk's done() hook: the latency histogram gives p99.9 and how many requests took > 100 ms.
WRK_SCRIPT = """
done = function(summary, latency, requests)
  local slow = 0
  for i = 0, #latency - 1 do
    local us, count = latency(i)
    if us > 100000 then slow = slow + count end
  end
  io.write(string.format("ATOLL p999_us=%d slow=%d\\n", latency:percentile(99.9), slow))
end
"""


def wrk(
    server: Server,
    path: str,
    seconds: int,
    headers: tuple[str, ...] = (),
    spin_ms: int = 0,
) -> Result:
    """One wrk round; with ``spin_ms``, a spinner starts 0.5 s in (after wrk has connected)."""
    script = Path(tempfile.gettempdir()) / f"atoll-bench-{os.getpid()}.lua"
    script.write_text(WRK_SCRIPT)
    argv = [
        "wrk",
        "-t1",
        "-c32",
        f"-d{seconds}s",
        "--latency",
        "--timeout",
        "10s",
        "-s",
        str(script),
    ]
    for h in headers:
        argv += ["-H", h]
    cpu0 = server.cpu()
    proc = subprocess.Popen([*argv, server.url + path], stdout=subprocess.PIPE, text=True)
    with contextlib.ExitStack() as stack:
        spins = stack.enter_context(spinner(server, spin_ms)) if spin_ms else []
        text, _ = proc.communicate()
    cpu = server.cpu() - cpu0
    script.unlink()
    if proc.returncode:
        raise RuntimeError(f"wrk failed: {text}")
    total = int(_find(r"(\d+) requests in", text))
    err = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    return Result(
        rps=float(_find(r"Requests/sec:\s+([\d.]+)", text)),
        req_per_cpu_s=total / cpu if cpu > 0 else 0.0,
        p50_ms=_ms(_find(r"\s50%\s+(\S+)", text)),
        p99_ms=_ms(_find(r"\s99%\s+(\S+)", text)),
        p999_ms=int(_find(r"p999_us=(\d+)", text)) / 1000,
        max_ms=_ms(_find(r"Latency\s+\S+\s+\S+\s+(\S+)", text)),
        slow=int(_find(r"slow=(\d+)", text)),
        total=total,
        errors=(sum(int(g) for g in err.groups()) if err else 0)
        + (int(non2xx[1]) if non2xx else 0),
        spin_ms=statistics.median(spins) if spins else 0.0,
    )


def _find(pattern: str, text: str) -> str:
    m = re.search(pattern, text)
    if m is None:
        raise RuntimeError(f"no {pattern!r} in wrk output:\n{text}")
    return m[1]


@contextlib.contextmanager
def spinner(server: Server, ms: int) -> Iterator[list[float]]:
    """From 0.5 s on, one keep-alive connection asks ``/spin?ms=ms`` back to back.

    Yields the list its round-trip times (ms) are appended to.
    """
    stop = threading.Event()
    times: list[float] = []

    def run() -> None:
        if stop.wait(0.5):
            return
        with httpx.Client(base_url=server.url, timeout=30) as client:
            while not stop.is_set():
                t0 = time.perf_counter()
                client.get(f"/spin?ms={ms}")
                times.append((time.perf_counter() - t0) * 1000)

    thread = threading.Thread(target=run)
    thread.start()
    try:
        yield times
    finally:
        stop.set()
        thread.join()


# --------------------------------------------------------------------------- the run


TESTS: dict[str, tuple[str, tuple[str, ...], bool]] = {
    # name: (path, wrk headers, with the spinner)
    "/hello": ("/hello", (), False),
    "/fib?n=27": ("/fib?n=27", (), False),
    "stall, keep-alive": ("/hello", (), True),
    "stall, new connections": ("/hello", ("Connection: close",), True),
}


def run(
    quick: bool,
    only_servers: str | None,
    only_tests: str | None,
    rounds: int | None = None,
    seconds: int | None = None,
) -> str:
    seconds = seconds or (2 if quick else 5)
    rounds = rounds or (1 if quick else 3)
    specs = [s for s in server_specs(quick) if _picked(s.name, only_servers)]
    tests = {name: t for name, t in TESTS.items() if _picked(name, only_tests)}
    results: dict[tuple[str, str], list[Result]] = {}
    servers = [Server(spec) for spec in specs]
    try:
        for test, (path, headers, spin) in tests.items():
            for r in range(rounds):
                order = servers[r % len(servers) :] + servers[: r % len(servers)]
                for server in order:
                    res = wrk(server, path, seconds, headers, 500 if spin else 0)
                    results.setdefault((server.spec.name, test), []).append(res)
                    print(f"{test:24} {server.spec.name:24} {res}", file=sys.stderr)
    finally:
        for server in servers:
            server.stop()
    return report(specs, tests, results, quick, seconds, rounds)


def _picked(name: str, wanted: str | None) -> bool:
    return wanted is None or any(w.strip() in name for w in wanted.split(","))


def _median(rs: list[Result], field: str) -> float:
    return float(statistics.median(getattr(r, field) for r in rs))


def report(
    specs: list[ServerSpec],
    tests: dict[str, tuple[str, tuple[str, ...], bool]],
    results: dict[tuple[str, str], list[Result]],
    quick: bool,
    seconds: int,
    rounds: int,
) -> str:
    lines = [
        "| test | server | req/s | req per CPU-s | p50 ms | p99 ms | p99.9 ms | max ms "
        "| > 100 ms | errors | spin ms |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for test in tests:
        for spec in specs:
            rs = results[(spec.name, test)]
            # The spinner's own CPU would count against the server: no req per CPU-s there.
            per_cpu = "—" if tests[test][2] else f"{_median(rs, 'req_per_cpu_s'):,.0f}"
            slow = sum(r.slow for r in rs) / max(1, sum(r.total for r in rs))
            lines.append(
                f"| {test} | {spec.name} | {_median(rs, 'rps'):,.0f} | {per_cpu} "
                f"| {_median(rs, 'p50_ms'):.2f} | {_median(rs, 'p99_ms'):.1f} "
                f"| {_median(rs, 'p999_ms'):.1f} | {max(r.max_ms for r in rs):.0f} "
                f"| {slow:.2%} | {sum(r.errors for r in rs)} "
                f"| {_median(rs, 'spin_ms'):.0f} |"
            )
    versions = ", ".join(
        f"{p} {metadata.version(p)}"
        for p in ("uvicorn", "uvloop", "httptools", "granian", "wasmtime")
    )
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split("\n")[
        0
    ]
    machine = (
        f"{os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), "
        f"Python {platform.python_version()}, {versions}; {wrk_version.strip()}"
    )
    command = "python -m benchmarks.http_server" + (" --quick" if quick else "")
    head = [
        f"Command: `{command}` ({rounds} interleaved round(s) of `wrk -t1 -c32 -d{seconds}s "
        "--latency` per cell; medians, max over rounds).",
        f"Machine: {machine}.",
        "",
    ]
    return "\n".join(head + lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 round of 2 s, fewer servers")
    parser.add_argument("--servers", help="only servers whose name holds one of these (a,b)")
    parser.add_argument("--tests", help="only tests whose name holds one of these (a,b)")
    parser.add_argument(
        "--rounds", type=int, help="interleaved rounds per cell (default 3; 1 quick)"
    )
    parser.add_argument("--seconds", type=int, help="seconds per round (default 5; 2 quick)")
    parser.add_argument("--serve", type=int, metavar="LOOPS", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--switch-interval", type=float, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        _serve_main(args.serve, args.port, args.switch_interval)
        return
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (apt-get install wrk)")
    table = run(args.quick, args.servers, args.tests, args.rounds, args.seconds)
    print(table)
    partial = args.servers or args.tests or args.rounds or args.seconds
    if not partial:  # a partial run leaves the doc alone
        write_doc(table)


START, END = "<!-- results:start -->", "<!-- results:end -->"


def write_doc(table: str) -> None:
    """Put ``table`` between the result markers of the doc; the prose around it stays."""
    text = DOC.read_text() if DOC.exists() else f"# HTTP server benchmark\n\n{START}\n{END}\n"
    head, _, rest = text.partition(START)
    _, _, tail = rest.partition(END)
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(f"{head}{START}\n{table}{END}{tail}")


if __name__ == "__main__":
    main()
