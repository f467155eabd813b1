"""What embedding costs: ``worker.fetch`` in process, and ``atoll.asgi`` under uvicorn, vs ``atoll dev``.

Run from the repository root::

    python -m benchmarks.embedding            # 3 rounds of 5 s per set-up, ~3 minutes
    python -m benchmarks.embedding --quick    # 1 round of 2 s

One worker (``examples/bench``), two routes: ``/hello`` (no wasm) and
``/compute?n=1000`` (a warm wasm instance). Set-ups, all in the same run:

- ``Worker.handle`` in process: the runtime's own per-request call, the floor;
- ``worker.fetch(Request)`` in process (``atoll.load``): what the library adds
  (the response check, the log line, the result object);
- ``atoll dev --loops 1`` over a loopback socket;
- ``atoll.asgi(folder)`` served by ``uvicorn`` (one process, one loop, httptools);
- the same app mounted at ``/edge`` in a Starlette app under ``uvicorn``.

In-process set-ups count requests per second of this process's CPU
(``time.process_time``). Servers are loaded by ``wrk -t1 -c32`` and count
requests per second of the server process's CPU (``/proc/PID/stat``), so the
load generator's CPU is not in the figure, and requests per wall second. Rounds
are interleaved so that a noisy neighbour hits every set-up alike; the median
round is reported. The markdown table is printed and written into
``docs/benchmarks/embedding.md`` (between its result markers).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from benchmarks.report import results_text, write_results
from benchmarks.servers import BENCH_WORKER, ROOT, Server, atoll_server, free_port, running

DOC = ROOT / "docs" / "benchmarks" / "embedding.md"
PATHS = ("/hello", "/compute?n=1000")


# --------------------------------------------------------------------------- ASGI apps


def make_direct() -> Any:
    """``uvicorn --factory benchmarks.embedding:make_direct``: the worker as the whole app."""
    import atoll

    return atoll.asgi(BENCH_WORKER)


def make_mounted() -> Any:
    """``uvicorn --factory benchmarks.embedding:make_mounted``: mounted at /edge in Starlette."""
    from starlette.applications import Starlette
    from starlette.routing import Mount

    import atoll

    edge = atoll.asgi(BENCH_WORKER)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        async with edge:
            yield

    return Starlette(routes=[Mount("/edge", app=edge)], lifespan=lifespan)


def uvicorn_server(factory: str) -> Server:
    port = free_port()
    argv = [sys.executable, "-m", "uvicorn", "--factory", f"benchmarks.embedding:{factory}"]
    argv += ["--port", str(port), "--log-level", "warning", "--no-access-log"]
    argv += ["--http", "httptools", "--loop", "uvloop"]
    return Server(f"uvicorn:{factory}", argv, port, env=dict(os.environ))


# --------------------------------------------------------------------------- measuring


def wrk(server: Server, path: str, seconds: float) -> tuple[float, float]:
    """(requests per wall second, requests per server CPU second) for one round."""
    url = f"http://127.0.0.1:{server.port}{path}"
    cpu0 = server.cpu_seconds()
    out = subprocess.run(
        ["wrk", "-t1", "-c32", f"-d{max(1, round(seconds))}s", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    cpu = server.cpu_seconds() - cpu0
    total = re.search(r"(\d+) requests in ([\d.]+)(\w+)", out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if total is None or errors is not None:
        raise RuntimeError(f"wrk against {url} failed:\n{out}")
    count = int(total.group(1))
    wall = float(total.group(2)) * {"s": 1.0, "ms": 0.001, "m": 60.0}[total.group(3)]
    return count / wall, count / cpu if cpu else float("nan")


async def in_process(call: Callable[[], Any], seconds: float) -> tuple[float, float]:
    """(calls per wall second, calls per CPU second of this process) of ``await call()``."""
    for _ in range(200):  # warm
        await call()
    count = 0
    wall0, cpu0 = time.perf_counter(), time.process_time()
    deadline = wall0 + seconds
    while time.perf_counter() < deadline:
        for _ in range(100):
            await call()
        count += 100
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return count / wall, count / cpu


async def measure(rounds: int, seconds: float) -> dict[tuple[str, str], list[tuple[float, float]]]:
    import atoll
    from atoll.worker import request_id

    results: dict[tuple[str, str], list[tuple[float, float]]] = {}
    worker = await atoll.load(BENCH_WORKER, dev=False)
    servers = [atoll_server(BENCH_WORKER, loops=1), uvicorn_server("make_direct")]
    mounted = uvicorn_server("make_mounted")
    with running(servers), running([mounted], path="/edge/hello"):
        for r in range(rounds):
            for path in PATHS:
                url = f"http://bench.localhost{path}"

                async def floor(url: str = url) -> Any:
                    return await worker.worker.handle(atoll.Request(url), request_id())

                async def fetch(url: str = url) -> Any:
                    return await worker.fetch(atoll.Request(url))

                setups: list[tuple[str, Callable[[], Any]]] = [
                    ("Worker.handle in process", floor),
                    ("worker.fetch in process", fetch),
                ]
                order = list(range(5))
                order = order[r % 5 :] + order[: r % 5]
                for index in order:
                    if index < 2:
                        name, call = setups[index]
                        got = await in_process(call, seconds)
                    else:
                        name, server, prefix = [
                            ("atoll dev --loops 1, socket", servers[0], ""),
                            ("atoll.asgi under uvicorn", servers[1], ""),
                            ("atoll.asgi mounted in Starlette, uvicorn", mounted, "/edge"),
                        ][index - 2]
                        got = wrk(server, prefix + path, seconds)
                    results.setdefault((name, path), []).append(got)
                    print(f"round {r + 1} {path:18} {name:42} {got[0]:9.0f}/s {got[1]:9.0f}/cpu-s")
    await worker.close()
    return results


def table(results: dict[tuple[str, str], list[tuple[float, float]]]) -> str:
    lines = [
        "| set-up | route | requests/s (wall) | requests per CPU-second | CPU µs per request |",
        "|---|---|---:|---:|---:|",
    ]
    for (name, path), rounds in results.items():
        wall = statistics.median(r[0] for r in rounds)
        cpu = statistics.median(r[1] for r in rounds)
        lines.append(f"| {name} | `{path}` | {wall:,.0f} | {cpu:,.0f} | {1e6 / cpu:,.1f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="1 round of 2 s")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    rounds, seconds = (1, 2.0) if args.quick else (3, 5.0)
    results = asyncio.run(measure(rounds, seconds))
    text = results_text("embedding", table(results), rounds, seconds, args.quick)
    print(text)
    if not args.no_write:
        write_results(DOC, text)


if __name__ == "__main__":
    main()
