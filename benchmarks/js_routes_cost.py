"""``python -m benchmarks.js_routes_cost``: what one request costs a JS worker's entry, in process.

The JS routes of :mod:`benchmarks.js_routes` (``bench.mjs`` on ``bench.wasm``),
driven through ``Worker.handle`` on one asyncio loop with no server and no
socket, against the same routes of atoll's Python entry (``examples/bench``):
the thread's CPU per request over ``--requests`` requests, the lowest of
``--rounds`` rounds (noise only adds). What is left is the worker entry
itself: for JS, the crossing into V8 and back, the Web API objects and the
handler.

``--only N`` runs ``--warm`` requests then ``N`` requests of the first route
and nothing else: run it under ``valgrind --tool=callgrind`` twice (``N`` and
``0``) and divide the difference of the instruction counts by ``N`` for an
instruction count per request that load does not change (``--warm 6000``
lets V8 finish optimising first)::

    valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        python -m benchmarks.js_routes_cost --only 500 --warm 6000 /hello

(wasmtime does not run under valgrind: ``--only`` loads the JS entry alone,
with the startup CPU limit lifted for valgrind's slowness.)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.js_routes import js_worker
from benchmarks.servers import BENCH_WORKER

ROUTES = ("/hello", "/compute?n=1000", "/fresh?n=1000")
HEADERS = [("host", "localhost:8787"), ("user-agent", "wrk"), ("accept", "*/*")]


async def per_request(worker: Any, route: str, requests: int, rounds: int) -> float:
    """Lowest thread CPU µs per request of ``worker`` on ``route``."""
    from atoll.api import Request

    for _ in range(300):
        await worker.handle(Request("http://localhost:8787" + route, headers=HEADERS), "x")
    best = float("inf")
    for _ in range(rounds):
        started = time.thread_time_ns()
        for _ in range(requests):
            result = await worker.handle(
                Request("http://localhost:8787" + route, headers=HEADERS), "x"
            )
            assert result.response.status == 200, result
        best = min(best, (time.thread_time_ns() - started) / requests / 1000)
    return best


async def only(route: str, warm: int, requests: int) -> None:
    """The JS entry alone (no wasmtime), ``warm`` + ``requests`` requests of ``route``."""
    import atoll.entries.js.isolate as isolate_module
    from atoll.api import ExecutionContext, Request
    from atoll.entries.js import load_js_entry
    from atoll.manifest import load_manifest
    from atoll.runtime.invocation import Invocation

    manifest = load_manifest(js_worker(Path(tempfile.mkdtemp()) / "bench-js"))
    startup_ms = isolate_module.STARTUP_CPU_MS
    isolate_module.STARTUP_CPU_MS = 10**7  # valgrind runs the bundle ~50x slower
    try:  # (given back: a test calls this in process, and later tests read the constant)
        isolate = load_js_entry(manifest, {}).isolate()
    finally:
        isolate_module.STARTUP_CPU_MS = startup_ms
    for _ in range(warm + requests):
        invocation = Invocation(None, manifest.limits, "x", "bench", None)  # type: ignore[arg-type]
        ctx = ExecutionContext("x", invocation.log)
        request = Request("http://localhost:8787" + route, headers=HEADERS)
        response = await isolate.serve(request, ctx, invocation)
        assert response.status == 200, response


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("routes", nargs="*", default=list(ROUTES))
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", type=int, default=None, metavar="N")
    parser.add_argument("--warm", type=int, default=300)
    args = parser.parse_args()
    os.environ.setdefault("ATOLL_KV", "memory")
    if args.only is not None:
        asyncio.run(only(args.routes[0], args.warm, args.only))
        return

    async def run() -> None:
        from atoll.worker import Runtime, load_worker

        with tempfile.TemporaryDirectory(prefix="bench-js-") as tmp:
            js = load_worker(js_worker(Path(tmp) / "bench-js"), runtime=Runtime())
            python = load_worker(BENCH_WORKER, runtime=Runtime())
            for route in args.routes:
                j = await per_request(js, route, args.requests, args.rounds)
                p = await per_request(python, route, args.requests, args.rounds)
                print(
                    f"{route:18} JS {j:7.1f} µs CPU/request   Python {p:7.1f}   JS/Python {j / p:5.1f}x"
                )

    asyncio.run(run())


if __name__ == "__main__":
    main()
