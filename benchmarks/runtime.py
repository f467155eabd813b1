"""Runtime costs of issue 2, measured: instantiate, call, worker load, cold start, HTTP.

    python -m benchmarks.runtime            # full run (~2 min)
    python -m benchmarks.runtime --quick    # a smaller run (~30 s)

Prints a markdown table; docs/benchmarks.md records a run. Medians; the
machine is noisy, so the public-API baselines run interleaved in the same
process (compare ratios, not absolute numbers across runs).
"""

from __future__ import annotations

import argparse
import asyncio
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
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import wasmtime

from atoll.api import Request
from atoll.runtime.backend.auto import BACKEND
from atoll.runtime.cache import ModuleCache
from atoll.runtime.hostfuncs import CURRENT
from atoll.runtime.invocation import Invocation
from atoll.worker import Runtime, Worker, load_worker
from benchmarks.coldstart import first_200
from benchmarks.servers import atoll_server

REPO = Path(__file__).resolve().parents[1]
SEED = REPO / "examples" / "seed"
#: An epoch deadline (ticks) no benchmark call reaches, loaded or not: ~11 days at 1 ms a tick.
_NO_DEADLINE = 10**9


def median_us(fn: Callable[[], object], n: int, rounds: int = 5) -> float:
    """Median over ``rounds`` of the mean **thread-CPU** µs per call of ``n`` calls.

    Thread CPU time, not wall time: on a shared, noisy machine it is the
    steadier measure of what a call costs this process.
    """
    per_round = []
    for _ in range(rounds):
        start = time.thread_time_ns()
        for _ in range(n):
            fn()
        per_round.append((time.thread_time_ns() - start) / n / 1000)
    return statistics.median(per_round)


def bench_calls(n: int) -> dict[str, float]:
    """Fresh instantiate + call + teardown, and a warm call, through atoll and the public API."""
    runtime = Runtime(cache_dir=False)
    worker = load_worker(SEED, runtime=runtime)
    binding = worker.env.RUST_MODULE
    limits = worker.manifest.limits

    invocation = Invocation(runtime.engine, limits, "bench", "seed")
    token = CURRENT.set(invocation)

    def atoll_fresh() -> None:
        inv = Invocation(runtime.engine, limits, "bench", "seed")
        CURRENT.set(inv)
        binding.instantiate().exports.heavy_compute(100)
        inv.close()

    warm = binding.instance.exports.heavy_compute
    generous = dataclasses.replace(limits, cpu_ms=30_000)

    def atoll_warm_round(count: int) -> float:
        token = CURRENT.set(Invocation(runtime.engine, generous, "bench", "seed"))
        try:
            return median_us(lambda: warm(100), count, rounds=1)
        finally:
            CURRENT.reset(token)

    # Public wasmtime-py path with the same module, for the ratio.
    engine = runtime.engine.engine
    module = worker.modules["RUST_MODULE"].module
    linker = runtime.linker.linker
    if not isinstance(engine, wasmtime.Engine):  # the native backend's: wasmtime-py's views
        engine, module = engine.to_wasmtime_py(), module.to_wasmtime_py()
        linker = linker.to_wasmtime_py()
    pre = linker.instantiate_pre(module)

    def public_fresh() -> None:
        store = wasmtime.Store(engine)
        # Ticks of the engine's epoch clock, not a CPU limit: under load a thread may wait
        # past 100 ticks for the GIL mid-call and trap. The row measures the calls, not a limit.
        store.set_epoch_deadline(_NO_DEADLINE)
        instance = pre.instantiate(store)
        func = instance.exports(store)["heavy_compute"]
        assert isinstance(func, wasmtime.Func)
        func(store, 100)
        store.close()

    store = wasmtime.Store(engine)
    store.set_epoch_deadline(_NO_DEADLINE)
    pub_func = pre.instantiate(store).exports(store)["heavy_compute"]
    assert isinstance(pub_func, wasmtime.Func)

    def public_warm() -> None:
        pub_func(store, 100)

    results: dict[str, list[float]] = {
        k: [] for k in ("atoll_fresh", "public_fresh", "atoll_warm", "public_warm")
    }
    for _ in range(3):  # interleave
        results["atoll_fresh"].append(median_us(atoll_fresh, n))
        results["public_fresh"].append(median_us(public_fresh, n))
        results["atoll_warm"].append(statistics.median(atoll_warm_round(n * 4) for _ in range(5)))
        results["public_warm"].append(median_us(public_warm, n * 4))
    CURRENT.reset(token)
    invocation.close()
    return {k: statistics.median(v) for k, v in results.items()}


def bench_cgi(n: int) -> dict[str, float]:
    """A hello-world WASI program served as CGI vs a hello Python worker, through Worker.handle.

    The difference is what the whole-wasm path costs on top of the HTTP path:
    CGI environment, fresh instance, ``_start`` (wasi-libc start-up, environ,
    stdout), output parsing.
    """
    root = Path(tempfile.mkdtemp(prefix="atoll-bench-cgi-"))
    (root / "cgi").mkdir()
    # benchmarks/guests/hello_cgi.c: printf of a header and a line (wasi-libc's start-up,
    # one fd_write), the hello world of CGI.
    shutil.copy(REPO / "benchmarks" / "guests" / "hello_cgi.wasm", root / "cgi" / "app.wasm")
    (root / "cgi" / "atoll.toml").write_text('name = "cgi"\nmain = "app.wasm"\n')
    (root / "py").mkdir()
    (root / "py" / "worker.py").write_text(HELLO)
    (root / "py" / "atoll.toml").write_text('name = "hello"\nmain = "worker.py"\n')
    runtime = Runtime(cache_dir=False)
    cgi = load_worker(root / "cgi", runtime=runtime)
    py = load_worker(root / "py", runtime=runtime)
    loop = asyncio.new_event_loop()

    def one(worker: Worker) -> Callable[[], object]:
        def run() -> object:
            return loop.run_until_complete(worker.handle(Request("http://bench/"), "bench"))

        return run

    assert (
        loop.run_until_complete(cgi.handle(Request("http://bench/"), "b")).response.body
        == b"hello from wasi\n"
    )
    samples: dict[str, list[float]] = {"cgi": [], "python": []}
    for _ in range(3):
        samples["cgi"].append(median_us(one(cgi), n))
        samples["python"].append(median_us(one(py), n))
    loop.close()
    shutil.rmtree(root, ignore_errors=True)
    return {k: statistics.median(v) for k, v in samples.items()}


def bench_worker_load(n: int) -> dict[str, float]:
    """Load examples/seed into a running process and serve its first request.

    The process already runs (engine, linker and event loop exist, as in
    ``atoll serve`` or ``atoll dev`` on reload); the module comes from the
    disk cache: each round starts with an empty in-memory cache.
    """
    cache_dir = Path(tempfile.mkdtemp(prefix="atoll-bench-cache-"))
    runtime = Runtime(cache_dir=cache_dir)
    load_worker(SEED, runtime=runtime)  # compiles once, writes the disk cache
    loop = asyncio.new_event_loop()
    samples = []
    for _ in range(n):
        runtime.cache = ModuleCache(runtime.engine, cache_dir)  # memory cold, disk warm
        start = time.perf_counter()
        worker = load_worker(SEED, runtime=runtime)
        result = loop.run_until_complete(worker.handle(Request("http://bench/?n=1000"), "bench"))
        samples.append((time.perf_counter() - start) * 1000)
        assert result.response.body == b"Result: 332833500"
        assert runtime.cache.stats.disk_hits == 1
    loop.close()
    shutil.rmtree(cache_dir, ignore_errors=True)
    return {"load_ms": statistics.median(samples), "load_ms_min": min(samples)}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_dev(folder: Path, port: int, loops: int = 4) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "atoll.cli",
            "dev",
            str(folder),
            "--port",
            str(port),
            "--loops",
            str(loops),
            "--log-level",
            "warning",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def bench_cold_start(n: int) -> dict[str, float]:
    """Process launch → first 200 from examples/seed, disk cache warm (the first launch warms it)."""
    first_200(atoll_server(SEED), "/?n=1000")
    samples = [first_200(atoll_server(SEED), "/?n=1000")[0] for _ in range(n)]
    return {"cold_start_ms": statistics.median(samples)}


HELLO = """
from atoll import Response

async def fetch(request, env, ctx):
    return Response("hello")
"""


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(url: str, seconds: int, pid: int) -> tuple[float, float, float, float]:
    """(req/s, req per server CPU-second, p50 ms, p99 ms) from one wrk run."""
    before = cpu_seconds(pid)
    out = subprocess.run(
        ["wrk", "-t1", "-c32", f"-d{seconds}s", "--latency", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    used = cpu_seconds(pid) - before
    rps = float(_find(r"Requests/sec:\s+([\d.]+)", out))
    total = int(_find(r"(\d+) requests in", out))

    def pct(p: str) -> float:
        match = re.search(rf"{p}%\s+([\d.]+)(us|ms|s)", out)
        assert match is not None
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    return rps, total / used if used else 0.0, pct("50"), pct("99")


def _find(pattern: str, text: str) -> str:
    match = re.search(pattern, text)
    if match is None:
        raise RuntimeError(f"wrk output has no {pattern!r}:\n{text}")
    return match.group(1)


def bench_http(seconds: int) -> list[tuple[str, float, float, float, float]]:
    if shutil.which("wrk") is None:
        print(
            "wrk not found: skipping HTTP numbers (scripts/setup.sh installs it)", file=sys.stderr
        )
        return []
    hello_dir = Path(tempfile.mkdtemp(prefix="atoll-bench-hello-"))
    (hello_dir / "worker.py").write_text(HELLO)
    (hello_dir / "atoll.toml").write_text('name = "hello"\nmain = "worker.py"\n')
    rows: list[tuple[str, float, float, float, float]] = []
    for name, folder, path in (
        ("hello (no wasm)", hello_dir, "/"),
        ("examples/seed ?n=1000 (fresh instance)", SEED, "/?n=1000"),
    ):
        port = free_port()
        proc = start_dev(folder, port)
        try:
            for _ in range(200):
                try:
                    httpx.get(f"http://127.0.0.1:{port}{path}", timeout=1)
                    break
                except httpx.TransportError:
                    time.sleep(0.05)
            runs = [wrk(f"http://127.0.0.1:{port}{path}", seconds, proc.pid) for _ in range(3)]
            rps, per_cpu, p50, p99 = (statistics.median(col) for col in zip(*runs, strict=True))
            rows.append((name, rps, per_cpu, p50, p99))
        finally:
            proc.terminate()
            proc.wait()
    shutil.rmtree(hello_dir, ignore_errors=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    n = 2000 if args.quick else 10000
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cpus, Python {platform.python_version()}, "
        f"wasmtime {wasmtime.__name__}, {BACKEND.name} backend"
    )
    c = bench_calls(n)
    cgi = bench_cgi(n // 4)
    load = bench_worker_load(10 if args.quick else 30)
    cold = bench_cold_start(3 if args.quick else 10)
    http = bench_http(2 if args.quick else 5)
    print()
    print("| what | atoll | wasmtime-py public API | target |")
    print("|---|---|---|---|")
    print(
        f"| fresh instantiate + 1 call + teardown | {c['atoll_fresh']:.1f} µs | {c['public_fresh']:.1f} µs | ≤ 30 µs |"
    )
    print(
        f"| warm export call (i32 → i32) | {c['atoll_warm']:.2f} µs | {c['public_warm']:.2f} µs | ≤ 3 µs |"
    )
    print(
        f"| hello-world WASI program as CGI, on top of a hello Python request "
        f"(Worker.handle: {cgi['cgi']:.0f} vs {cgi['python']:.0f} µs) | "
        f"{cgi['cgi'] - cgi['python']:.1f} µs | — | ≤ 60 µs |"
    )
    print(
        f"| worker load (manifest, import, modules from disk cache) + first response | {load['load_ms']:.2f} ms (min {load['load_ms_min']:.2f}) | — | ≤ 5 ms |"
    )
    print(
        f"| process start → first 200, examples/seed, warm disk cache | {cold['cold_start_ms']:.0f} ms | — | measure (workerd ~49 ms) |"
    )
    if http:
        print()
        print(
            "| route (atoll dev, 1 process, 4 loops; wrk -t1 -c32) | req/s | req per CPU-s | p50 ms | p99 ms |"
        )
        print("|---|---|---|---|---|")
        for name, rps, per_cpu, p50, p99 in http:
            print(f"| {name} | {rps:,.0f} | {per_cpu:,.0f} | {p50:.2f} | {p99:.2f} |")


if __name__ == "__main__":
    main()
