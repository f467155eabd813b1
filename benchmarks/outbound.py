"""What a subrequest and a service-binding call cost, in process.

Run from the repository root::

    python -m benchmarks.outbound            # 3 rounds of 3 s per set-up
    python -m benchmarks.outbound --quick    # 1 round of 1 s

Set-ups, all through ``Worker.handle`` (the runtime's per-request call), one
request at a time on one event loop:

- ``direct``: a worker answering a fixed body (the floor);
- ``subrequest``: a worker doing one ``await fetch(upstream)`` per request
  and answering its body, the upstream a small HTTP/1.1 server on 127.0.0.1
  in a process of its own (keep-alive: atoll's pool stays warm);
- ``httpx alone``: the same GET with a bare ``httpx.AsyncClient`` (no
  worker, no policy), to see what atoll's path adds to the client;
- ``callee direct``: the service worker called with ``Worker.handle``;
- ``service binding``: a worker calling it through ``env.AUTH.fetch``.

Figures: requests per wall second, and CPU µs per request of this process
(``time.process_time``; the upstream's CPU is its own process's, not counted). Rounds are interleaved; the median round is
reported. The table is printed and written into ``docs/benchmarks/outbound.md``
(between its result markers).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

from atoll.api import Request
from atoll.control.services import LocalServices
from atoll.worker import Runtime, Worker, load_worker
from benchmarks.report import results_text, write_results

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks" / "outbound.md"

BODY = b"hello from upstream"


UPSTREAM = f"""
import asyncio

async def serve(reader, writer):
    head = b"HTTP/1.1 200 OK\\r\\ncontent-length: {len(BODY)}\\r\\n\\r\\n"
    try:
        while True:
            await reader.readuntil(b"\\r\\n\\r\\n")
            writer.write(head + {BODY!r})
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()

async def main():
    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()

asyncio.run(main())
"""


class _Upstream:
    """A keep-alive HTTP/1.1 server answering BODY, in a process of its own (its CPU is not
    this process's)."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", UPSTREAM], stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline())

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def _worker(root: Path, name: str, source: str, toml: str, services: LocalServices) -> Worker:
    folder = root / name
    folder.mkdir()
    (folder / "worker.py").write_text(textwrap.dedent(source))
    (folder / "atoll.toml").write_text(f'name = "{name}"\nmain = "worker.py"\n{toml}')
    return load_worker(folder, runtime=Runtime(cache_dir=False), services=services)


async def _rate(call: Callable[[], Awaitable[object]], seconds: float) -> tuple[float, float]:
    """(requests per wall second, CPU µs per request) of ``call`` for ``seconds``."""
    for _ in range(50):  # warm: pools, caches
        await call()
    count = 0
    wall0, cpu0 = time.perf_counter(), time.process_time()
    deadline = wall0 + seconds
    while time.perf_counter() < deadline:
        for _ in range(20):
            await call()
        count += 20
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return count / wall, cpu / count * 1e6


async def measure(rounds: int, seconds: float) -> dict[str, tuple[float, float]]:
    upstream = _Upstream()
    try:
        return await _measure(upstream, rounds, seconds)
    finally:
        upstream.stop()


async def _measure(
    upstream: _Upstream, rounds: int, seconds: float
) -> dict[str, tuple[float, float]]:
    url = f"http://127.0.0.1:{upstream.port}/"
    workers: dict[str, Worker] = {}
    services = LocalServices(lambda: workers)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        direct = _worker(
            root,
            "direct",
            f"""
            from atoll import Response
            async def fetch(request, env, ctx):
                return Response({BODY!r})
            """,
            "",
            services,
        )
        fetching = _worker(
            root,
            "fetching",
            f"""
            from atoll import Response
            from atoll import fetch as subrequest
            async def fetch(request, env, ctx):
                upstream = await subrequest({url!r})
                return Response(upstream.body)
            """,
            f'[outbound]\nallowed_hosts = ["http://127.0.0.1:{upstream.port}"]\n',
            services,
        )
        callee = _worker(
            root,
            "auth",
            """
            from atoll import Response
            async def fetch(request, env, ctx):
                return Response("ok")
            """,
            "",
            services,
        )
        caller = _worker(
            root,
            "front",
            """
            from atoll import Response
            async def fetch(request, env, ctx):
                reply = await env.AUTH.fetch(request)
                return Response(reply.body)
            """,
            '[[services]]\nbinding = "AUTH"\nservice = "auth"\n',
            services,
        )
        workers.update({w.name: w for w in (direct, fetching, callee, caller)})
        client = httpx.AsyncClient()

        def handle(worker: Worker) -> Callable[[], Awaitable[object]]:
            return lambda: worker.handle(Request("http://bench.test/"), "bench")

        setups: dict[str, Callable[[], Awaitable[object]]] = {
            "direct (Worker.handle, fixed body)": handle(direct),
            "subrequest (one fetch() to 127.0.0.1 per request)": handle(fetching),
            "httpx alone (AsyncClient.get, same upstream)": lambda: client.get(url),
            "callee direct (Worker.handle)": handle(callee),
            "service binding (env.AUTH.fetch → callee)": handle(caller),
        }
        runs: dict[str, list[tuple[float, float]]] = {name: [] for name in setups}
        for _ in range(rounds):
            for name, call in setups.items():
                runs[name].append(await _rate(call, seconds))
        await client.aclose()
    return {
        name: (
            statistics.median(r for r, _ in values),
            statistics.median(c for _, c in values),
        )
        for name, values in runs.items()
    }


def table(results: dict[str, tuple[float, float]]) -> str:
    lines = [
        "| set-up | requests/s (wall) | CPU µs per request |",
        "|---|---:|---:|",
    ]
    for name, (rate, cpu) in results.items():
        lines.append(f"| {name} | {rate:,.0f} | {cpu:.1f} |")
    names = list(results)
    sub = results[names[1]][1] - results[names[0]][1]
    over_httpx = results[names[1]][1] - results[names[0]][1] - results[names[2]][1]
    service = results[names[4]][1] - results[names[3]][1]
    lines.append("")
    lines.append(
        f"A subrequest adds {sub:.1f} µs of CPU to a request; "
        f"atoll's path over a bare httpx GET: {over_httpx:.1f} µs. "
        f"A service-binding call adds {service:.1f} µs of CPU over calling the callee directly "
        "(target: ≤ 30 µs)."
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="1 round of 1 s")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    rounds, seconds = (1, 1.0) if args.quick else (3, 3.0)
    results = asyncio.run(measure(rounds, seconds))
    text = results_text("outbound", table(results), rounds, seconds, args.quick)
    print(text)
    if not args.no_write:
        write_results(DOC, text)


if __name__ == "__main__":
    main()
