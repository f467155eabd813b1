"""The ASGI application: HTTP in, a worker's response out.

It knows HTTP, not wasm: it builds a :class:`~atoll.api.Request` from the
ASGI scope, refuses bodies over the limit (413, before they are read whole),
picks the worker through a :class:`Router`, checks the response (one that
cannot be sent as the worker wrote it becomes a 502 or 500, see
:mod:`atoll.http.wire`) and sends it, writes one log line per request, calls
the result hooks (metrics, tail) and runs the request's ``wait_until`` work,
whatever the worker returned.

It can be mounted inside another ASGI app (``atoll.asgi``): the mount's
``root_path`` is taken off the path, so routes and the worker see the URL
below the mount. :meth:`AtollApp.fetch` serves a request in process, without
ASGI (``atoll.load``). Served by ``atoll dev`` / ``serve``
through several event loops (``http/server.py``), it is called from several
threads at once: it keeps no per-request state outside the call.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, MutableMapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from time import perf_counter
from typing import Any, Protocol
from urllib.parse import parse_qs

from atoll.api import Request, Response, ScheduledEvent
from atoll.errors import BodyTooLargeError, ResponseError
from atoll.http.bodies import ATTACH_KEY, BodyBudget, BodyReader
from atoll.http.wire import drop_length, wire_headers
from atoll.runtime.logs import log_lines
from atoll.runtime.outcome import Outcome
from atoll.worker import Result, Worker, error_response, request_id, run_pending

__all__ = ["AtollApp", "ResultHook", "Router", "SingleWorker"]

log = logging.getLogger("atoll.request")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

MIB = 1024 * 1024
#: The scope key under which atoll's server offers to take a whole response in one call
#: (``http/protocol.py``), on the connection's own loop; elsewhere (another server, a
#: request offloaded to a spare loop) the app sends the two ASGI messages.
RESPOND = "atoll.respond"


class Router(Protocol):
    """Picks the worker for a request (``None``: no route matched → 404)."""

    def match(self, host: str, path: str) -> Worker | None: ...


class SingleWorker:
    """Every request goes to one worker (``atoll dev``). ``worker`` may be swapped on reload."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker

    def match(self, host: str, path: str) -> Worker | None:
        return self.worker


Hook = Callable[[], Awaitable[None]]
ResultHook = Callable[[Worker | None, str, str, Result, float], None]
"""``hook(worker, method, url, result, wall_ms)``: once per request, after its response was
sent and its log line written, on the loop that served it (``worker`` is None when no route
matched). Must be quick and must not block (metrics, tail); an exception is logged."""


class AtollApp:
    """ASGI 3 application serving the workers of ``router``.

    ``on_startup`` and ``on_shutdown`` are awaited, in order, by the ASGI
    lifespan: once per server, on the loop that runs the lifespan (in
    ``atoll dev``, the control loop, not a serving loop). A startup hook that
    raises fails the startup, so nothing is served; a shutdown hook that
    raises is logged and the next ones still run. ``on_result`` hooks: see
    :data:`ResultHook`. ``body_budget`` bounds the request bodies the process
    holds at once (``http/bodies.py``); one per process.
    """

    def __init__(
        self,
        router: Router,
        *,
        dev: bool = False,
        on_startup: Sequence[Hook] = (),
        on_shutdown: Sequence[Hook] = (),
        on_result: Sequence[ResultHook] = (),
        body_budget: BodyBudget | None = None,
        test_scheduled: bool = False,
    ) -> None:
        self.router = router
        #: ``atoll dev --test-scheduled``: ``/__scheduled?cron=…`` runs the worker's
        #: ``scheduled`` handler instead of its ``fetch`` (as ``wrangler dev``).
        self.test_scheduled = test_scheduled
        self.body_budget = body_budget or BodyBudget()
        self.dev = dev
        self.on_startup = tuple(on_startup)
        self.on_shutdown = tuple(on_shutdown)
        self.on_result = tuple(on_result)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http":
            if kind == "lifespan":
                await self._lifespan(receive, send)
            return  # websocket: not served (the server answers 403)
        # An HTTP request, served here rather than in a method of its own: one coroutine
        # less per request.
        started = perf_counter()
        rid = request_id()
        raw_headers = scope["headers"]
        host, declared, chunked = _host_and_length(raw_headers)
        method = scope["method"]
        if scope.get("root_path"):  # mounted under a prefix: routes and workers see what is below
            scope = _below_root(scope)
        path = scope.get("path", "/")
        parts = _url_parts(scope, host)
        worker = self.router.match(host or "", path)
        if self.test_scheduled and path == "/__scheduled" and worker is not None:
            await self._scheduled(worker, scope, send, rid, _join(*parts), started)
            return
        if worker is not None and worker.assets is not None:
            status = await worker.assets.serve(scope, receive, send, has_worker=True)
            if status is not None:  # a static file (or its redirect, 304, 404 page)
                self._finish(
                    worker,
                    method,
                    _join(*parts),
                    scope,
                    Result(Response(status=status), Outcome.OK, rid),
                    started,
                )
                return
        result: Result
        body: BodyReader | None = None
        request: Request | None = None
        if worker is None:
            result = Result(
                Response(f"404 Not Found\nno route matched {_join(*parts)}\n", status=404),
                Outcome.REFUSED,
                rid,
            )
        else:
            limit = worker.manifest.limits.request_body_mb * MIB
            if declared is not None and declared.isdigit() and int(declared) > limit:
                exc = BodyTooLargeError(
                    f"request body of {declared} bytes is over the limit of "
                    f"{worker.manifest.limits.request_body_mb} MiB"
                )
                result = Result(
                    error_response(413, exc, rid, dev=self.dev), Outcome.REFUSED, rid, error=exc
                )
            else:
                client = scope.get("client")
                version = scope.get("http_version", "1.1")
                if (
                    declared is None
                    and not chunked
                    and method in ("GET", "HEAD")
                    and version in ("1.1", "1.0")
                ):
                    # HTTP/1 frames a body by Content-Length or Transfer-Encoding only
                    # (RFC 9112 §6.3): this request has none, and request.bytes() is b"".
                    body = None
                else:
                    length = int(declared) if declared is not None and declared.isdigit() else None
                    body = BodyReader(
                        receive, limit, self.body_budget, length, attach=scope.get(ATTACH_KEY)
                    )
                request = Request.from_parts(
                    *parts,
                    method=method,
                    raw_headers=raw_headers,
                    reader=body,
                    remote_addr=client[0] if client else None,
                    http_version=version,
                )
                try:
                    result = await worker.handle(request, rid)
                except BaseException:  # cancelled (client gone, forced shutdown)
                    if body is not None:
                        body.release()
                    raise
        head = method == "HEAD"
        try:
            wire = wire_headers(result.response, head=head)
        except Exception as exc:  # cannot be sent as written: an error page in its place
            result, wire = self._refused(result, worker, exc, head=head)
        response = result.response
        respond = scope.get(RESPOND)
        if respond is None:
            if response.status == 304:  # another server may wait for the length's body
                wire = drop_length(wire)
        elif getattr(send, "__self__", None) is not respond.__self__:
            respond = None  # send is a proxy (the request runs on another loop): use it
        try:
            if respond is not None:  # atoll's own server: the whole response in one call
                unfinished = respond(response.status, wire, b"" if head else response.body)
                if unfinished is not None:  # the connection drains first, or send is used
                    await unfinished
            else:
                await send(
                    {"type": "http.response.start", "status": response.status, "headers": wire}
                )
                await send({"type": "http.response.body", "body": b"" if head else response.body})
        except Exception as exc:  # the client is gone, or the server refused: still logged
            result.logs.append(f"sending the response failed: {exc!r}")
        finally:
            if body is not None:
                body.release()
        if self.on_result:  # the URL is built for the result hooks only
            url = request.url if request is not None else _join(*parts)
            self._finish(worker, method, url, scope, result, started)
        elif log.isEnabledFor(logging.INFO):  # else _finish has nothing to do
            self._finish(worker, method, "", scope, result, started)
        if result.pending:
            await run_pending(result)
        if body is not None and body.large is not None and request is not None:
            body.dispose(request)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    for hook in self.on_startup:
                        await hook()
                except Exception as exc:
                    log.exception("startup failed")
                    await send({"type": "lifespan.startup.failed", "message": repr(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                for hook in self.on_shutdown:
                    try:
                        await hook()
                    except Exception:
                        log.exception("shutdown hook failed")
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def fetch(self, worker: Worker, request: Request) -> Result:
        """One request served in process, without ASGI (``atoll.load(...).fetch``).

        Runs once per call, on the caller's loop: ``worker`` serves ``request``,
        and its result is checked, logged and handed to the ``on_result`` hooks
        as a request over HTTP is (static assets and the 413 check aside: the
        request is already in memory). Its ``wait_until`` work is left in
        ``result.pending`` for the caller. Never raises (but for cancellation).
        """
        started = perf_counter()
        result = await worker.handle(request, request_id())
        result, _wire = self._checked(result, worker, head=request.method == "HEAD")
        query = request.url.partition("?")[2].partition("#")[0]
        scope = {"path": request.path, "query_string": query.encode("latin-1")}
        self._finish(worker, request.method, request.url, scope, result, started)
        return result

    async def _scheduled(
        self, worker: Worker, scope: Scope, send: Send, rid: str, url: str, started: float
    ) -> None:
        """``/__scheduled?cron=…``: one scheduled run now (``--test-scheduled`` only)."""
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        crons = worker.manifest.triggers.crons
        cron = query.get("cron", [crons[0] if crons else ""])[0]
        event = ScheduledEvent(cron, datetime.now(UTC))
        result = await worker.run_scheduled(event, rid)
        if result.outcome == Outcome.OK:
            result = replace(result, response=Response("Ran scheduled event\n"))
        response = result.response
        await send(
            {
                "type": "http.response.start",
                "status": response.status,
                "headers": wire_headers(response, head=False),
            }
        )
        await send({"type": "http.response.body", "body": response.body})
        self._finish(worker, "SCHEDULED", url, scope, result, started)
        await run_pending(result)

    def _finish(
        self,
        worker: Worker | None,
        method: str,
        url: str,
        scope: Scope,
        result: Result,
        started: float,
    ) -> None:
        """Once per request, after its response was sent: the log line and the result hooks."""
        wall_ms = (perf_counter() - started) * 1000
        _log_request(method, scope, result, wall_ms)
        for hook in self.on_result:
            try:
                hook(worker, method, url, result, wall_ms)
            except Exception:
                log.exception("on_result hook failed")

    def _checked(
        self, result: Result, worker: Worker | None, *, head: bool
    ) -> tuple[Result, list[tuple[bytes, bytes]]]:
        """``result`` and its wire headers, or, when its response cannot be sent as
        written, an error page in its place (see :meth:`_refused`). Once per request."""
        try:
            return result, wire_headers(result.response, head=head)
        except Exception as exc:
            return self._refused(result, worker, exc, head=head)

    def _refused(
        self, result: Result, worker: Worker | None, exc: Exception, *, head: bool
    ) -> tuple[Result, list[tuple[bytes, bytes]]]:
        """An error page in place of a response that ``wire_headers`` refused with ``exc``
        (502 for a whole-wasm worker, 500 for the others), with the reason as the
        request's error, and its wire headers."""
        if isinstance(exc, ResponseError):
            error = exc
        else:  # not a rule of wire_headers: still one clean error
            error = ResponseError(f"the response cannot be sent: {exc!r}")
        error.status = 502 if worker is not None and worker.manifest.whole_wasm else 500
        name = worker.name if worker is not None else ""
        page = error_response(error.status, error, result.request_id, dev=self.dev, worker=name)
        result = replace(result, response=page, outcome=Outcome.EXCEPTION, error=error)
        return result, wire_headers(page, head=head)


def _host_and_length(
    raw: Iterable[tuple[bytes, bytes]],
) -> tuple[str | None, str | None, bool]:
    """The ``host`` and ``content-length`` of ASGI's raw headers, as ``Headers.get`` gives
    them (names in any case; repeated values joined with ``", "``), and whether a
    ``transfer-encoding`` is there, without building a :class:`Headers` (the worker's
    request builds its own when it reads them)."""
    host: str | None = None
    length: str | None = None
    chunked = False
    for name, value in raw:
        key = name.lower()
        if key == b"host":
            text = value.decode("latin-1")
            host = text if host is None else f"{host}, {text}"
        elif key == b"content-length":
            text = value.decode("latin-1")
            length = text if length is None else f"{length}, {text}"
        elif key == b"transfer-encoding":
            chunked = True
    return host, length, chunked


def _url_parts(scope: Scope, host: str | None) -> tuple[str, str, str, str]:
    """The request's URL as ``(scheme, host, target, query)`` (see :func:`_join`): the
    ``Host`` header, else the address the server listens on; the raw path as sent."""
    if not host:
        server = scope.get("server") or ("localhost", None)
        host = server[0] if server[1] in (None, 80, 443) else f"{server[0]}:{server[1]}"
    path = scope.get("raw_path")
    target = path.decode("latin-1") if isinstance(path, bytes) else scope.get("path", "/")
    query = scope.get("query_string", b"")
    return scope.get("scheme", "http"), host, target, query.decode("latin-1") if query else ""


def _join(scheme: str, host: str, target: str, query: str) -> str:
    url = f"{scheme}://{host}{target}"
    return url + "?" + query if query else url


def _below_root(scope: Scope) -> Scope:
    """``scope`` with its ``root_path`` taken off ``path`` and ``raw_path`` (ASGI puts the
    mount prefix in both: Starlette's ``Mount``, uvicorn's ``--root-path``)."""
    root: str = scope["root_path"]
    path: str = scope.get("path", "/")
    if not path.startswith(root):
        return scope
    below = {**scope, "path": path[len(root) :] or "/"}
    raw = scope.get("raw_path")
    prefix = root.encode("latin-1")
    if isinstance(raw, bytes) and raw.startswith(prefix):
        below["raw_path"] = raw[len(prefix) :] or b"/"
    else:
        below.pop("raw_path", None)
    return below


def _log_request(method: str, scope: Scope, result: Result, wall_ms: float) -> None:
    if not log.isEnabledFor(logging.INFO):
        return
    query = scope.get("query_string", b"")
    target = scope.get("path", "/") + ("?" + query.decode("latin-1") if query else "")
    log.info(
        "%s %s %d %s %.2fms cpu=%.2fms id=%s",
        method,
        target,
        result.response.status,
        result.outcome.value,
        wall_ms,
        result.cpu_ms,
        result.request_id,
    )
    log_lines(log, result.request_id, result.logs)
    if result.error is not None and result.outcome != Outcome.OK:
        log.warning("  [%s] %s: %s", result.request_id, type(result.error).__name__, result.error)
