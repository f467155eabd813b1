"""``python -m benchmarks.request_cost``: what one request costs the serving thread, in process.

Drives ``examples/bench`` through atoll's own connection protocol (uvicorn's
httptools protocol with atoll's bounds, ``http/protocol.py``) and the ASGI app,
on one uvloop loop, with a transport that records what would be written: no
sockets, no system calls, no other thread. What is left is the Python (and the
wasm) a request costs around the worker — the part of a request's CPU that
load on the machine does not change in kind.

Two measures per route:

- **CPU µs per request**: the thread's CPU time over ``--requests`` requests on
  one keep-alive connection, the lowest of ``--rounds`` rounds (noise only adds);
- **Python calls per request**: what ``cProfile`` counts (functions, methods and
  builtins) over the same requests, divided by their number. It does not move
  with load, so it compares two trees on a busy machine.

``--bare`` measures uvicorn alone with a two-line ASGI app answering
``Hello, world!``: the floor under atoll's own work. ``--js`` serves the same
routes from the JS worker of :mod:`benchmarks.js_routes` (``bench.mjs``, V8)
instead of ``examples/bench``. Run it from two trees (``PYTHONPATH=other/src``)
to compare them.

``--only N`` serves ``--warm`` requests then ``N`` requests of the first route
and nothing else: run it under ``valgrind --tool=callgrind`` twice (``N`` and
``0``) for instructions per request that load does not change (wasmtime's
pooling allocator cannot reserve its memory under valgrind: turn it off)::

    ATOLL_POOL_INSTANCES=0 valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        python -m benchmarks.request_cost --js --warm 8000 --only 2000 /hello
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import os
import pstats
import tempfile
import time
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

from benchmarks.servers import BENCH_WORKER

__all__ = ["Recorder", "connect", "measure", "serve"]

ROUTES = ("/hello", "/compute?n=1000", "/fresh?n=1000")
DATE = b"Sun, 06 Dec 2026 03:22:06 GMT"
App = Callable[
    [
        MutableMapping[str, Any],
        Callable[[], Awaitable[MutableMapping[str, Any]]],
        Callable[[MutableMapping[str, Any]], Awaitable[None]],
    ],
    Awaitable[None],
]


class Recorder:
    """A transport that keeps what the connection writes and wakes the driver."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False
        self.written: asyncio.Future[None] | None = None

    def get_extra_info(self, name: str, default: object = None) -> object:
        return {"sockname": ("127.0.0.1", 8787), "peername": ("127.0.0.1", 5555)}.get(name)

    def write(self, data: bytes) -> None:
        self.writes.append(data)
        if self.written is not None and not self.written.done():
            self.written.set_result(None)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...


async def bare(
    scope: MutableMapping[str, Any],
    receive: Callable[[], Awaitable[MutableMapping[str, Any]]],
    send: Callable[[MutableMapping[str, Any]], Awaitable[None]],
) -> None:
    """The least an ASGI app does to answer (the ``--bare`` floor)."""
    headers = [(b"content-type", b"text/plain;charset=UTF-8"), (b"content-length", b"13")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"Hello, world!"})


def connect(app: App) -> tuple[Any, Recorder]:
    """One connection of atoll's protocol (a fresh pool, the server's default limits) to
    ``app`` on the running loop, over a :class:`Recorder`: ``(protocol, transport)``."""
    import uvicorn
    from uvicorn.server import ServerState

    from atoll.http.protocol import ConnectionPool, ServerLimits, protocol_class

    limits = ServerLimits()
    config = uvicorn.Config(
        app,
        http=protocol_class(limits, ConnectionPool(limits, 64)),
        ws="none",
        lifespan="off",
        log_config=None,
        proxy_headers=False,
    )
    config.load()
    state = ServerState()
    state.default_headers = [(b"date", DATE), *config.encoded_headers]
    proto: Any = config.http_protocol_class(  # type: ignore[call-arg]
        config=config, server_state=state, app_state={}, _loop=asyncio.get_running_loop()
    )
    wire = Recorder()
    proto.connection_made(wire)
    return proto, wire


async def serve(proto: Any, wire: Recorder, route: str, count: int) -> bytes:
    """``count`` keep-alive GET requests of ``route``, one after the other, each until its
    response is written and its task has ended; the last response."""
    loop = asyncio.get_running_loop()
    request = f"GET {route} HTTP/1.1\r\nHost: localhost:8787\r\n\r\n".encode()
    for _ in range(count):
        wire.writes.clear()
        wire.written = loop.create_future()
        proto.data_received(request)
        await wire.written
        await asyncio.sleep(0)  # the request's task ends (its response hooks run)
    return b"".join(wire.writes)


async def measure(
    app: App, route: str, requests: int, rounds: int, profile: bool
) -> tuple[float, float, bytes]:
    """(lowest CPU µs per request, Python calls per request, the last response)."""
    proto, wire = connect(app)
    await serve(proto, wire, route, 2000)  # warm: caches, the warm instance, specialised bytecode
    last = await serve(proto, wire, route, 1)
    gc.collect()
    gc.freeze()  # as the server does before serving
    best = float("inf")
    for _ in range(rounds):
        started = time.thread_time()
        await serve(proto, wire, route, requests)
        best = min(best, (time.thread_time() - started) / requests * 1e6)
    calls = 0.0
    if profile:
        profiler = cProfile.Profile()
        profiler.enable()
        await serve(proto, wire, route, requests)
        profiler.disable()
        calls = pstats.Stats(profiler).total_calls / requests  # type: ignore[attr-defined]
    gc.unfreeze()
    return best, calls, last


async def only(app: App, route: str, warm: int, requests: int) -> None:
    """``warm`` then ``requests`` requests of ``route`` on one connection, nothing else
    (``--only``: for an instruction count, N minus 0)."""
    proto, wire = connect(app)
    await serve(proto, wire, route, warm)
    gc.collect()
    gc.freeze()  # as the server does before serving
    last = await serve(proto, wire, route, requests)
    gc.unfreeze()
    if requests:
        assert last.startswith(b"HTTP/1.1 200 OK\r\n"), last[:200]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("routes", nargs="*", default=list(ROUTES))
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--bare", action="store_true", help="uvicorn and a two-line app")
    parser.add_argument("--js", action="store_true", help="the JS worker (bench.mjs) instead")
    parser.add_argument("--no-calls", action="store_true", help="skip the cProfile count")
    parser.add_argument("--only", type=int, default=None, metavar="N")
    parser.add_argument("--warm", type=int, default=2000)
    args = parser.parse_args()
    os.environ.setdefault("ATOLL_KV", "memory")

    async def run() -> None:
        from atoll.http.app import AtollApp, SingleWorker
        from atoll.worker import Runtime, load_worker

        app: App = bare
        if not args.bare:
            folder = BENCH_WORKER
            if args.js:
                from benchmarks.js_routes import js_worker

                folder = js_worker(Path(tempfile.mkdtemp(prefix="bench-js-")) / "bench-js")
            if args.js and args.only is not None:
                import atoll.entries.js.isolate as isolate_module

                allowance = isolate_module.STARTUP_CPU_MS
                isolate_module.STARTUP_CPU_MS = 10**7  # valgrind runs the bundle ~50x slower
                try:
                    worker = load_worker(folder, runtime=Runtime(), dev=True)
                finally:
                    isolate_module.STARTUP_CPU_MS = allowance
            else:
                worker = load_worker(folder, runtime=Runtime(), dev=True)
            app = AtollApp(SingleWorker(worker), dev=True)
        if args.only is not None:
            await only(app, args.routes[0], args.warm, args.only)
            return
        for route in ["/hello"] if args.bare else args.routes:
            cpu, calls, last = await measure(
                app, route, args.requests, args.rounds, not args.no_calls
            )
            answer = last.rpartition(b"\r\n\r\n")[2][:40].decode(errors="replace")
            print(
                f"{route:18} {cpu:7.2f} µs CPU/request (lowest of {args.rounds})"
                f"  {calls:6.1f} Python calls/request  → {answer!r}"
            )

    import uvloop

    uvloop.run(run())


if __name__ == "__main__":
    main()
