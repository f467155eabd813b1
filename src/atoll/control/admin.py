"""The admin API: a small ASGI app on its own listener (default 127.0.0.1:8788).

Served by one uvicorn server on the supervisor's event loop, apart from the
serving processes: a request stuck in wasm never delays a deploy, and the
admin port need never be reachable from outside. Every request needs
``Authorization: Bearer TOKEN`` (compared with :func:`hmac.compare_digest`);
without it the answer is 401. Bodies and answers are JSON unless said.

=======  ==================================  ==========================================
method   path                                does
=======  ==================================  ==========================================
GET      /workers                            workers, active versions, routes
GET      /workers/NAME/versions              stored versions, the active one marked
POST     /workers/NAME/versions              upload a bundle (.tar.gz/.zip body); checked
                                             whole, stored, activated (``?activate=0``:
                                             stored only); 201
POST     /workers/NAME/active                ``{"version": "ID-PREFIX"}`` activates it;
                                             ``{}`` rolls back to the previous version
DELETE   /workers/NAME                       the worker, its versions and secrets
DELETE   /workers/NAME/versions/ID           one version that is not active
GET      /workers/NAME/secrets               secret names (never values)
PUT      /workers/NAME/secrets/KEY           set a secret (body: the value, raw)
DELETE   /workers/NAME/secrets/KEY           remove it
GET      /workers/NAME/tail                  server-sent events (``?status=5xx&outcome=
                                             exceeded_cpu&sample=0.1``, repeatable)
GET      /metrics                            Prometheus text format
=======  ==================================  ==========================================

A change answers once every serving process has loaded it (``"processes":
{"total": N, "synced": N}``), so the next request anywhere sees it. A
refused change answers 400 ``{"error": ..., "hint": ...}`` with the message
``atoll dev`` would print; 404 for an unknown path or worker, 413 for a body
over the limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar
from urllib.parse import parse_qs

from atoll.control.bundle import Limits
from atoll.control.deployer import Deployer
from atoll.control.secret_store import MAX_SECRET_BYTES
from atoll.control.state import State
from atoll.control.tail import Subscription, TailFilter
from atoll.errors import AtollError
from atoll.http.server import Receive, Scope, Send

__all__ = ["AdminApp", "Control"]

log = logging.getLogger("atoll.admin")

T = TypeVar("T")

#: Seconds between two comment lines on an idle tail stream (keeps proxies from closing it).
KEEPALIVE = 15.0
_NAME = r"(?P<name>[a-z0-9][a-z0-9-]{0,62})"


class Control(Protocol):
    """What the admin API needs from the supervisor."""

    state: State

    @property
    def deployer(self) -> Deployer: ...

    async def change(self, operation: Callable[[], T]) -> tuple[T, dict[str, Any]]:
        """Run ``operation`` (blocking; one at a time), then sync every serving process."""
        ...

    async def metrics(self) -> str: ...

    def health(self) -> tuple[bool, dict[str, Any]]:
        """Whether the node serves what it should (a cluster node: synced), and details."""
        ...

    async def subscribe(self, tail_filter: TailFilter) -> Subscription: ...

    async def unsubscribe(self, sub: Subscription) -> None: ...


class _HttpError(Exception):
    def __init__(self, status: int, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.hint = hint


Handler = Callable[["_Call"], Awaitable[None]]


class _Call:
    """One admin request: its match, body reader and senders."""

    def __init__(self, scope: Scope, receive: Receive, send: Send, match: re.Match[str]) -> None:
        self.scope = scope
        self.receive = receive
        self.send = send
        self.match = match
        self.query = parse_qs(scope.get("query_string", b"").decode("latin-1"))

    @property
    def name(self) -> str:
        return self.match["name"]

    async def body(self, limit: int) -> bytes:
        declared = _header(self.scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise _HttpError(413, f"the body is over the limit of {limit} bytes")
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                raise _HttpError(400, "the client went away")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise _HttpError(413, f"the body is over the limit of {limit} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def json(self) -> dict[str, Any]:
        raw = await self.body(64 * 1024)
        if not raw.strip():
            return {}
        try:
            data = json.loads(raw)
        except ValueError:
            raise _HttpError(400, "the body is not JSON") from None
        if not isinstance(data, dict):
            raise _HttpError(400, "the body must be a JSON object")
        return data

    async def reply(self, status: int, data: Any) -> None:
        await _send(self.send, status, json.dumps(data, indent=2).encode() + b"\n")


class AdminApp:
    """ASGI app of the admin API (see the module docstring)."""

    def __init__(self, control: Control, token: str, *, limits: Limits | None = None) -> None:
        if not token:
            raise ValueError("the admin API needs a token")
        self.control = control
        self.token = token.encode()
        self.limits = limits or Limits()
        self.routes: list[tuple[str, re.Pattern[str], Handler]] = [
            ("GET", re.compile(r"/workers"), self.list_workers),
            ("GET", re.compile(rf"/workers/{_NAME}/versions"), self.list_versions),
            ("POST", re.compile(rf"/workers/{_NAME}/versions"), self.upload),
            ("POST", re.compile(rf"/workers/{_NAME}/active"), self.activate),
            ("DELETE", re.compile(rf"/workers/{_NAME}"), self.delete_worker),
            ("DELETE", re.compile(rf"/workers/{_NAME}/versions/(?P<v>[0-9a-f]{{1,64}})"),
             self.delete_version),
            ("GET", re.compile(rf"/workers/{_NAME}/secrets"), self.list_secrets),
            ("PUT", re.compile(rf"/workers/{_NAME}/secrets/(?P<key>[^/]+)"), self.put_secret),
            ("DELETE", re.compile(rf"/workers/{_NAME}/secrets/(?P<key>[^/]+)"),
             self.delete_secret),
            ("GET", re.compile(rf"/workers/{_NAME}/tail"), self.tail),
            ("GET", re.compile(r"/metrics"), self.metrics),
            ("GET", re.compile(r"/health"), self.health),
        ]  # fmt: skip

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        try:
            if not self._authorized(scope) and scope.get("path") != "/health":
                raise _HttpError(
                    401, "a valid admin token is needed", "pass --token or set ATOLL_ADMIN_TOKEN"
                )
            call = self._route(scope, receive, send)
            await call.handler(call)
        except _HttpError as exc:
            headers = [(b"www-authenticate", b"Bearer")] if exc.status == 401 else []
            payload = {"error": exc.message, "hint": exc.hint}
            await _send(send, exc.status, json.dumps(payload).encode() + b"\n", headers)
        except AtollError as exc:
            payload = {"error": exc.message, "hint": exc.hint}
            await _send(send, 400, json.dumps(payload).encode() + b"\n")

    def _authorized(self, scope: Scope) -> bool:
        given = _header(scope, b"authorization") or ""
        scheme, _, credential = given.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            credential.strip().encode(), self.token
        )

    def _route(self, scope: Scope, receive: Receive, send: Send) -> _BoundCall:
        path = scope.get("path", "/").rstrip("/") or "/"
        allowed = []
        for method, pattern, handler in self.routes:
            match = pattern.fullmatch(path)
            if match is None:
                continue
            if method == scope["method"]:
                return _BoundCall(scope, receive, send, match, handler)
            allowed.append(method)
        if allowed:
            raise _HttpError(
                405, f"{scope['method']} is not allowed here; use {', '.join(allowed)}"
            )
        raise _HttpError(404, f"no admin endpoint {path}")

    def _known(self, name: str) -> None:
        if not (self.control.state.workers_dir / name).is_dir():
            raise _HttpError(404, f"there is no worker {name!r}", "deploy it with atoll deploy")

    # -- endpoints ---------------------------------------------------------------------------

    async def list_workers(self, call: _Call) -> None:
        def read() -> list[dict[str, Any]]:
            state = self.control.state
            out = []
            for name in state.workers():
                pointer = state.active(name)
                if pointer is None:
                    continue
                info = state.version_info(name, pointer.version)
                out.append(
                    {
                        "name": name,
                        "version": pointer.version,
                        "previous": pointer.previous,
                        "activated_at": pointer.activated_at,
                        "routes": list(info.routes) or [f"{name}.localhost/*"],
                    }
                )
            return out

        await call.reply(200, {"workers": await asyncio.to_thread(read)})

    async def list_versions(self, call: _Call) -> None:
        self._known(call.name)
        state = self.control.state
        pointer = state.active(call.name)
        infos = await asyncio.to_thread(state.versions, call.name)
        await call.reply(
            200,
            {
                "worker": call.name,
                "active": pointer.version if pointer else None,
                "previous": pointer.previous if pointer else None,
                "versions": [info.to_json() for info in infos],
            },
        )

    async def upload(self, call: _Call) -> None:
        data = await call.body(self.limits.upload)
        activate = call.query.get("activate", ["1"])[-1] not in ("0", "false", "no")
        deployer = self.control.deployer
        upload, report = await self.control.change(
            lambda: deployer.upload(call.name, data, activate=activate)
        )
        await call.reply(
            201,
            {
                "worker": call.name,
                "version": upload.version.to_json(),
                "new": upload.new,
                "active": upload.pointer is not None,
                "previous": upload.pointer.previous if upload.pointer else None,
                "processes": report,
                **_nodes(report),
            },
        )

    async def activate(self, call: _Call) -> None:
        self._known(call.name)
        body = await call.json()
        version = body.get("version")
        if version is not None and not isinstance(version, str):
            raise _HttpError(400, "version must be a string")
        deployer = self.control.deployer
        pointer, report = await self.control.change(lambda: deployer.activate(call.name, version))
        await call.reply(
            200,
            {
                "worker": call.name,
                "version": pointer.version,
                "previous": pointer.previous,
                "processes": report,
                **_nodes(report),
            },
        )

    async def delete_worker(self, call: _Call) -> None:
        self._known(call.name)
        deployer = self.control.deployer
        _, report = await self.control.change(lambda: deployer.delete_worker(call.name))
        await call.reply(
            200, {"worker": call.name, "deleted": True, "processes": report, **_nodes(report)}
        )

    async def delete_version(self, call: _Call) -> None:
        self._known(call.name)
        deployer = self.control.deployer
        full, report = await self.control.change(
            lambda: deployer.delete_version(call.name, call.match["v"])
        )
        await call.reply(
            200, {"worker": call.name, "deleted": full, "processes": report, **_nodes(report)}
        )

    async def list_secrets(self, call: _Call) -> None:
        names = self.control.deployer.secrets.names(call.name)
        await call.reply(200, {"worker": call.name, "secrets": names})

    async def put_secret(self, call: _Call) -> None:
        raw = await call.body(MAX_SECRET_BYTES)
        try:
            value = raw.decode()
        except UnicodeDecodeError:
            raise _HttpError(400, "a secret must be UTF-8 text") from None
        key = call.match["key"]
        deployer = self.control.deployer
        _, report = await self.control.change(lambda: deployer.put_secret(call.name, key, value))
        await call.reply(
            200, {"worker": call.name, "secret": key, "processes": report, **_nodes(report)}
        )

    async def delete_secret(self, call: _Call) -> None:
        key = call.match["key"]
        deployer = self.control.deployer
        _, report = await self.control.change(lambda: deployer.delete_secret(call.name, key))
        await call.reply(
            200, {"worker": call.name, "deleted": key, "processes": report, **_nodes(report)}
        )

    async def health(self, call: _Call) -> None:
        """``ready`` (200) once the node serves the cluster's versions, else 503. No token."""
        ready, details = self.control.health()
        await call.reply(200 if ready else 503, {"status": "ready" if ready else "syncing",
                                                 **details})  # fmt: skip

    async def metrics(self, call: _Call) -> None:
        text = await self.control.metrics()
        await _send(
            call.send, 200, text.encode(), [(b"content-type", b"text/plain; version=0.0.4")]
        )

    async def tail(self, call: _Call) -> None:
        self._known(call.name)
        try:
            sample = float(call.query.get("sample", ["1"])[-1])
        except ValueError:
            raise _HttpError(400, "sample must be a number in (0, 1]") from None
        tail_filter = TailFilter(
            worker=call.name,
            statuses=tuple(_split(call.query.get("status", []))),
            outcomes=tuple(_split(call.query.get("outcome", []))),
            sample=sample,
        )
        sub = await self.control.subscribe(tail_filter)
        try:
            await _stream(call, sub)
        finally:
            await self.control.unsubscribe(sub)


class _BoundCall(_Call):
    def __init__(
        self, scope: Scope, receive: Receive, send: Send, match: re.Match[str], handler: Handler
    ) -> None:
        super().__init__(scope, receive, send, match)
        self.handler = handler


async def _stream(call: _Call, sub: Subscription) -> None:
    """Send ``sub``'s events as server-sent events until the client leaves or the node stops."""
    await call.send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"text/event-stream"),
                (b"cache-control", b"no-store"),
                (b"x-accel-buffering", b"no"),
            ],
        }
    )

    async def emit(kind: str, data: Any) -> None:
        body = f"event: {kind}\ndata: {json.dumps(data)}\n\n".encode()
        await call.send({"type": "http.response.body", "body": body, "more_body": True})

    async def client_gone() -> None:
        while (await call.receive())["type"] != "http.disconnect":
            pass

    gone = asyncio.ensure_future(client_gone())
    try:
        await emit("open", sub.filter.to_json())
        while not gone.done():
            getter = asyncio.ensure_future(sub.queue.get())
            done, _ = await asyncio.wait(
                {getter, gone}, timeout=KEEPALIVE, return_when="FIRST_COMPLETED"
            )
            if getter not in done:
                getter.cancel()
                if not gone.done():
                    await call.send(
                        {
                            "type": "http.response.body",
                            "body": b": keepalive\n\n",
                            "more_body": True,
                        }
                    )
                continue
            item = getter.result()
            if item is None:
                break
            if "dropped" in item:
                await emit("dropped", item)
            else:
                await emit("request", item)
            if sub.dropped and sub.queue.empty():
                await emit("dropped", {"dropped": sub.dropped})
                sub.dropped = 0
        with contextlib.suppress(OSError):
            await call.send({"type": "http.response.body", "body": b"", "more_body": False})
    finally:
        gone.cancel()


def _nodes(report: dict[str, Any]) -> dict[str, Any]:
    """A cluster change's ``nodes`` (how many nodes serve it, which not yet) as its own field."""
    nodes = report.pop("nodes", None)
    return {} if nodes is None else {"nodes": nodes}


def _split(values: list[str]) -> list[str]:
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


async def _send(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    head = headers or [(b"content-type", b"application/json")]
    head = [*head, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body})
