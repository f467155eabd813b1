"""KV latency per backend, measured the way a worker sees it: ``await env.CACHE.get(…)``.

Run from the repository root::

    python -m benchmarks.bench_kv            # ~30 s
    python -m benchmarks.bench_kv --quick    # a few seconds
    python -m benchmarks.bench_kv --write    # also write docs/benchmarks/kv.md

Backends: ``memory``, ``sqlite`` (WAL, synchronous=normal: the default),
``sqlite?synchronous=full`` (an fdatasync per put) and ``redis`` (a
``redis-server`` started on a free port in a temporary folder, AOF on with
``appendfsync everysec``, over loopback TCP; skipped if the binary is missing).

Every operation goes through :class:`~atoll.bindings.kv.KVNamespace` on one
event loop (uvloop when installed, as ``atoll serve`` runs), one at a time,
timed alone with ``perf_counter_ns``; the table gives the median and the 99th
percentile over all rounds, in microseconds:

- ``put``: a 100-byte value over 1,000 keys, acknowledged (durable as the
  backend documents);
- ``get``: a hit, 100 bytes, ``type="text"``;
- ``get miss``: a key that does not exist;
- ``cached get``: ``get(key, cache_ttl=60)`` served by the per-process cache;
- ``list 100``: ``list(prefix=…, limit=100)`` with metadata on every key.

Targets (issue 4): SQLite get ≤ 50 µs and durable put ≤ 1 ms p50, Redis get
≤ 200 µs p50 on loopback, cached get ≤ 5 µs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `atoll` importable from src/
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from atoll.bindings.kv import KVNamespace, open_backend

OPS = ("put", "get", "get miss", "cached get", "list 100")
KEYS = 1000


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def redis_server(folder: Path) -> Iterator[str | None]:
    """A throwaway redis-server (AOF on); yields its URL, or None if not installed."""
    binary = shutil.which("redis-server")
    if binary is None:
        yield None
        return
    port = _free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "yes", "--dir", str(folder)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    break
            time.sleep(0.02)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def _time(samples: list[int], n: int, op: Callable[[int], Awaitable[object]]) -> None:
    clock = time.perf_counter_ns
    for i in range(n):
        start = clock()
        await op(i)
        samples.append(clock() - start)


async def bench_backend(spec: str, state: Path, rounds: int, n: int) -> dict[str, list[int]]:
    samples: dict[str, list[int]] = {op: [] for op in OPS}
    async with open_backend(spec, state_dir=state) as backend:
        kv = KVNamespace(backend, "bench")
        value = "v" * 100
        keys = [f"key/{i:05}" for i in range(KEYS)]
        for key in keys:
            await kv.put(key, value, metadata={"n": 1})
        for key in keys[:10]:  # warm up every path once
            await kv.get(key)
            await kv.get(key, cache_ttl=60)
        ops: dict[str, Callable[[int], Awaitable[object]]] = {
            "put": lambda i: kv.put(keys[i % KEYS], value, metadata={"n": i}),
            "get": lambda i: kv.get(keys[i % KEYS]),
            "get miss": lambda i: kv.get(f"missing/{i}"),
            "cached get": lambda i: kv.get(keys[i % 10], cache_ttl=60),
            "list 100": lambda i: kv.list(prefix=f"key/00{i % 10}", limit=100),
        }
        for _ in range(rounds):
            for op, fn in ops.items():
                gc.collect()
                gc.disable()
                try:
                    await _time(samples[op], n if op != "list 100" else max(n // 10, 50), fn)
                finally:
                    gc.enable()
    return samples


def _pct(values: list[int], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000


def table(results: dict[str, dict[str, list[int]]]) -> str:
    lines = [
        "| backend | " + " | ".join(f"{op} p50 / p99 (µs)" for op in OPS) + " |",
        "|---|" + "---|" * len(OPS),
    ]
    for name, samples in results.items():
        cells = [f"{_pct(samples[op], 0.5):.1f} / {_pct(samples[op], 0.99):.1f}" for op in OPS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and operations")
    parser.add_argument("--write", action="store_true", help="write docs/benchmarks/kv.md")
    parser.add_argument("--no-uvloop", action="store_true", help="use asyncio's own loop")
    args = parser.parse_args()
    rounds, n = (2, 500) if args.quick else (5, 2000)

    loop_name = "asyncio"
    if not args.no_uvloop:
        with contextlib.suppress(ImportError):
            import uvloop

            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
            loop_name = "uvloop"

    results: dict[str, dict[str, list[int]]] = {}
    with tempfile.TemporaryDirectory(prefix="atoll-bench-kv-") as tmp:
        root = Path(tmp)
        specs = {
            "memory": "memory",
            "sqlite (normal)": f"sqlite:{root / 'normal.sqlite3'}",
            "sqlite (full)": f"sqlite:{root / 'full.sqlite3'}?synchronous=full",
        }
        (root / "redis").mkdir()
        with redis_server(root / "redis") as url:
            if url is not None:
                specs["redis (loopback)"] = url
            else:
                print("redis-server not found: skipping the redis backend", file=sys.stderr)
            for name, spec in specs.items():
                print(f"… {name}", file=sys.stderr)
                results[name] = asyncio.run(bench_backend(spec, root, rounds, n))

    report = table(results)
    header = (
        f"KV latency through `KVNamespace`, one operation at a time, {loop_name} loop, "
        f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs; "
        f"{rounds} rounds x {n} operations (list: {max(n // 10, 50)}).\n"
        "Run: `python -m benchmarks.bench_kv`. Targets: SQLite get ≤ 50 µs, durable put "
        "≤ 1 ms p50; Redis get ≤ 200 µs p50; cached get ≤ 5 µs.\n"
    )
    print()
    print(header)
    print(report)
    if args.write:
        out = Path(__file__).resolve().parent.parent / "docs" / "benchmarks" / "kv.md"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("# KV latency\n\n" + header + "\n" + report + "\n")
        print(f"\nwritten to {out.relative_to(out.parents[2])}", file=sys.stderr)


if __name__ == "__main__":
    main()
