"""A raw ASGI app for test_server.py, and a script that serves it.

Every answer but ``/stream``'s names the thread that served it in ``x-thread``.
Routes: ``/hello`` answers at once; ``/client`` answers ``HOST SCHEME`` (the
client address and scheme the server gave the app); ``/protocols`` answers how many
connection protocols are in memory (with ``$ATOLL_TEST_GC_OFF`` set the garbage
collector is off, so this counts those only a collection would free); ``/stream`` sends its head,
then waits for the request body and answers with it; ``/spin?ms=N`` (and any
path under ``/spin/``) runs a wasm ``(loop br 0)`` until an epoch deadline N ms
away stops it (a 1 ms ticker thread advances the epoch), then answers ``spun N``. The lifespan appends ``startup``/``shutdown``
lines to the file named by ``$ATOLL_TEST_LIFESPAN_LOG``; each spin appends a line to
``$ATOLL_TEST_SPIN_LOG`` as it starts (tests wait for it instead of sleeping).

Run: ``python _server_app.py LOOPS SHUTDOWN_TIMEOUT``; prints ``READY host port``
on stdout once every loop listens. ``$ATOLL_TEST_LIMITS``, if set, is a JSON
object of :class:`~atoll.http.server.ServerLimits` fields.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import sys
import threading
from typing import Any
from urllib.parse import parse_qs

import wasmtime

from atoll.http.server import Receive, Scope, Send, ServerLimits, serve

SPIN_WAT = """
(module
  (func (export "spin")
    (loop $forever (br $forever))))
"""


class SpinApp:
    """One engine and module for the process; a fresh Store per request (thread-safe)."""

    def __init__(self) -> None:
        config = wasmtime.Config()
        config.epoch_interruption = True
        self.engine = wasmtime.Engine(config)
        self.module = wasmtime.Module(self.engine, SPIN_WAT)
        self._ticking = threading.Event()

    def _tick(self) -> None:
        while not self._ticking.wait(0.001):
            self.engine.increment_epoch()

    def spin(self, ms: int) -> None:
        store = wasmtime.Store(self.engine)
        store.set_epoch_deadline(ms)
        spin = wasmtime.Instance(store, self.module, []).exports(store)["spin"]
        assert isinstance(spin, wasmtime.Func)
        path = os.environ.get("ATOLL_TEST_SPIN_LOG")
        if path:
            with open(path, "a") as f:
                f.write(f"{ms} {threading.current_thread().name}\n")
        try:
            spin(store)
        except wasmtime.Trap as trap:
            if trap.trap_code != wasmtime.TrapCode.INTERRUPT:
                raise

    def _log_lifespan(self, what: str) -> None:
        path = os.environ.get("ATOLL_TEST_LIFESPAN_LOG")
        if path:
            with open(path, "a") as f:
                f.write(what + "\n")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    threading.Thread(target=self._tick, daemon=True).start()
                    self._log_lifespan("startup")
                    await send({"type": "lifespan.startup.complete"})
                else:
                    self._ticking.set()
                    self._log_lifespan("shutdown")
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        assert scope["type"] == "http"
        if scope["path"] == "/spin" or scope["path"].startswith("/spin/"):
            ms = int(parse_qs(scope["query_string"].decode())["ms"][0])
            self.spin(ms)
            body = f"spun {ms}".encode()
        elif scope["path"] == "/sleep":  # in a request without holding the loop
            ms = int(parse_qs(scope["query_string"].decode())["ms"][0])
            await asyncio.sleep(ms / 1000)
            body = f"slept {ms}".encode()
        elif scope["path"] == "/protocols":  # connections' protocols still in memory
            alive = sum(type(o).__name__ == "AtollHttpProtocol" for o in gc.get_objects())
            body = str(alive).encode()
        elif scope["path"] == "/client":
            body = f"{scope['client'][0]} {scope['scheme']}".encode()
        elif scope["path"] == "/stream":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            received = b""
            more = True
            while more:
                message = await receive()
                received += message.get("body", b"")
                more = message.get("more_body", False)
            await send({"type": "http.response.body", "body": received})
            return
        else:
            body = b"hello"
        await _respond(send, body)


async def _respond(send: Send, body: bytes) -> None:
    headers: list[Any] = [
        (b"content-type", b"text/plain"),
        (b"content-length", b"%d" % len(body)),
        (b"x-thread", threading.current_thread().name.encode()),
    ]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def main() -> None:
    loops, timeout = int(sys.argv[1]), float(sys.argv[2])

    def ready(host: str, port: int) -> None:
        print(f"READY {host} {port}", flush=True)

    if os.environ.get("ATOLL_TEST_GC_OFF"):
        gc.disable()  # what reference cycles hold stays in memory (see /protocols)
    limits = ServerLimits(**json.loads(os.environ.get("ATOLL_TEST_LIMITS", "{}")))
    serve(SpinApp(), port=0, loops=loops, ready=ready, shutdown_timeout=timeout, limits=limits)


if __name__ == "__main__":
    main()
