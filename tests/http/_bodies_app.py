"""A raw ASGI app for test_bodies.py that reads each request's body with
:class:`~atoll.http.bodies.BodyReader`, and a script that serves it.

Every request is answered ``ATTACHED SIZE SHA256``: whether the server took the
sink the reader offered (the body went from the connection straight into it),
the body's length and its sha256; ``/ignore`` answers ``ignored`` without
reading the body; a refused body is answered with its status and message.
``?mark=PATH`` creates ``PATH.attached`` once the server took the sink and
``PATH.read`` once the body is read, then holds the body (and its budget) until
``PATH.go`` exists.
``$ATOLL_TEST_BODY_BUDGET`` (bytes) sets the process's body budget (64 MiB);
``$ATOLL_TEST_BODY_READER`` which thread reads the rest of a large body: ``native``
(``_native.BodyRead``; the default, and it must be built), ``python``, or ``failing``
(one that cannot be made: the loop reads the body).
Run: ``python _bodies_app.py``; prints ``READY host port`` once it listens.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from atoll.errors import RequestError
from atoll.http import protocol
from atoll.http.bodies import ATTACH_KEY, MIB, BodyBudget, BodyReader, BodySink
from atoll.http.server import Receive, Scope, Send, serve

BUDGET = BodyBudget(int(os.environ.get("ATOLL_TEST_BODY_BUDGET", 64 * MIB)))
_PROTOCOL = vars(protocol)
_READER = os.environ.get("ATOLL_TEST_BODY_READER", "native")
if _READER == "python":
    _PROTOCOL["NativeBodyRead"] = None
elif _READER == "failing":  # as when the process is out of descriptors

    def _no_reader(*args: object) -> None:
        raise OSError(24, "Too many open files")

    _PROTOCOL["NativeBodyRead"] = _no_reader
else:  # the native reader is what a built node uses: the test must not pass without it
    assert _PROTOCOL["NativeBodyRead"] is not None
    assert isinstance(BUDGET.counter, _PROTOCOL["NativeBudget"])


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    answer, status = b"ignored", 200
    if scope["path"] != "/ignore":
        offered = scope.get(ATTACH_KEY)
        attached: list[bool] = []

        query = parse_qs(scope["query_string"].decode())
        mark = query["mark"][0] if "mark" in query else None

        def attach(receive: Any, sink: BodySink | None) -> bool:
            took = bool(offered(receive, sink)) if offered is not None else False
            if sink is not None:
                attached.append(took)
                if mark and took:
                    _touch(mark + ".attached")
            return took

        declared = dict(scope["headers"]).get(b"content-length")
        reader = BodyReader(
            receive, 64 * MIB, BUDGET, int(declared) if declared else None, attach=attach
        )
        try:
            body = await reader()
            answer = f"{attached == [True]} {len(body)} {hashlib.sha256(body).hexdigest()}".encode()
            if mark:
                _touch(mark + ".read")
                for _ in range(600):  # 30 s at most
                    if _exists(mark + ".go"):
                        break
                    await asyncio.sleep(0.05)
        except RequestError as exc:
            status, answer = exc.status, str(exc).encode()
        finally:
            reader.release()
    headers = [(b"content-length", str(len(answer)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": answer})


def _touch(path: str) -> None:
    Path(path).touch()


def _exists(path: str) -> bool:
    return Path(path).exists()


def main() -> None:
    def ready(host: str, port: int) -> None:
        print(f"READY {host} {port}", flush=True)

    serve(app, port=0, loops=1, ready=ready, shutdown_timeout=1.0)


if __name__ == "__main__":
    main()
