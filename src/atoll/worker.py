"""A loaded worker: manifest + compiled modules + bindings + the Python entry.

:func:`load_worker` runs once per deploy (or ``atoll dev`` start/reload): it
validates the manifest, compiles every wasm module through the cache,
builds ``env`` and imports the entry. :meth:`Worker.handle` runs once per
request: it creates the request's :class:`Invocation`, awaits ``fetch`` and
turns whatever happens into a response and an outcome. Nothing here knows
HTTP wire formats (``http/`` does) or how a wasm call is made
(``runtime/`` does).

Python entries are the operator's own code: they run in the atoll process,
unsandboxed, like a WSGI app. Only wasm is sandboxed.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import logging
import random
import sys
import traceback
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from atoll.api import ExecutionContext, Request, Response, ScheduledEvent
from atoll.bindings import Env, WasmModuleBinding
from atoll.bindings.kv import host as kv_host
from atoll.bindings.outbound import (
    OUTBOUND,
    FetchResponse,
    SubrequestRecord,
    Subrequests,
    policy_of,
)
from atoll.bindings.outbound import host as http_host
from atoll.bindings.services import ServiceCaller, service_bindings
from atoll.entries import FetchHandler, load_entry
from atoll.errors import (
    AtollError,
    GuestError,
    RequestError,
    ScriptError,
    WorkerLoadError,
)
from atoll.manifest import Manifest, load_manifest
from atoll.manifest.crons import check_crons
from atoll.runtime.cache import ModuleCache, default_cache_dir
from atoll.runtime.engine import Engine, get_engine
from atoll.runtime.hostfuncs import BUILTIN, HostLinker
from atoll.runtime.invocation import CURRENT, Invocation
from atoll.runtime.module import WasmModule
from atoll.runtime.outcome import Outcome
from atoll.runtime.wasi import preview1, wasi_grants

if TYPE_CHECKING:
    from atoll.bindings.assets import Assets

__all__ = ["Result", "Runtime", "Worker", "load_worker"]

log = logging.getLogger("atoll.worker")
_getrandbits = random.getrandbits

#: Frames of a wasm backtrace shown on an error page (a stack overflow has thousands).
MAX_FRAMES = 40

#: Builds extra bindings (KV, secrets…) for a manifest: called once per load.
BindingFactory = Callable[[Manifest], Mapping[str, Any]]


class Runtime:
    """Process-wide parts shared by every worker: engine, linker, compiled-code cache."""

    def __init__(self, engine: Engine | None = None, cache_dir: Path | bool | None = True) -> None:
        self.engine = engine or get_engine()
        directory = default_cache_dir() if cache_dir is True else (cache_dir or None)
        self.cache = ModuleCache(self.engine, directory)
        # What a guest may import, wired here and nowhere else: the runtime's own
        # functions (atoll:log, env.abort), WASI preview 1, KV (atoll:kv) and
        # subrequests (atoll:http).
        self.linker = HostLinker(
            self.engine.engine,
            [
                *BUILTIN,
                *preview1.host_functions(),
                *kv_host.host_functions(),
                *http_host.host_functions(),
            ],
        )


@dataclass(slots=True)
class Result:
    """What one request produced: the response, its outcome and what the log line needs."""

    response: Response
    outcome: Outcome
    request_id: str
    cpu_ms: float = 0.0
    logs: list[str] = field(default_factory=list)
    error: BaseException | None = None
    pending: list[Awaitable[Any]] = field(default_factory=list)
    #: The request's subrequests (``fetch()``), for its log, tail event and metrics.
    subrequests: list[SubrequestRecord] = field(default_factory=list)
    #: The context ``wait_until`` work runs in (its subrequests still count and are checked).
    context: contextvars.Context | None = None


class Worker:
    """A worker ready to serve. Shared by every thread; per-request state lives in ``handle``."""

    def __init__(
        self,
        manifest: Manifest,
        runtime: Runtime,
        env: Env,
        fetch: FetchHandler,
        modules: Mapping[str, WasmModule],
        *,
        dev: bool,
    ) -> None:
        self.manifest = manifest
        self.runtime = runtime
        self.env = env
        self.fetch = fetch
        self.modules = dict(modules)
        self.dev = dev
        self.name = manifest.name
        self.wasi_args = manifest.wasi.argv or (manifest.name,)
        self.wasi_dirs = wasi_grants(manifest)
        #: Static files served before the worker ([assets] / [site]); set by load_worker.
        self.assets: Assets | None = None
        #: Where its subrequests may go ([outbound]); parsed once per load.
        self.egress = policy_of(manifest)
        #: The entry's ``async def scheduled(event, env, ctx)`` (Python entries), if any.
        self.scheduled = scheduled_handler(fetch)

    def handle(self, request: Request, request_id: str) -> Coroutine[Any, Any, Result]:
        """Serve one request: ``await worker.handle(request, rid)``. Never raises (but for
        cancellation): failures become responses. (The coroutine is ``_run``'s own: one
        frame less per request than an ``async def`` awaiting it.)"""
        return self._run(request_id, request, None)

    def run_scheduled(self, event: ScheduledEvent, request_id: str) -> Coroutine[Any, Any, Result]:
        """Run ``scheduled(event, env, ctx)`` once (a cron trigger fired), under the same
        limits, log and outcome as a request: ``await worker.run_scheduled(event, rid)``.
        Never raises (but for cancellation). The result's response stands for the run:
        200 when it ended well, else the error page (500, or 503 past a limit). A worker
        without ``scheduled`` is a 500 naming it."""
        return self._run(request_id, None, event)

    async def _scheduled(self, event: ScheduledEvent, ctx: ExecutionContext) -> Response:
        scheduled = self.scheduled
        if scheduled is None:
            raise WorkerLoadError(
                f"{self.manifest.main} defines no scheduled handler, but "
                f"[triggers] crons fired {event.cron!r}",
                hint="add `async def scheduled(event, env, ctx)` to the entry",
            )
        await scheduled(event, self.env, ctx)
        return Response(f"ran {event.cron}\n")

    async def _run(
        self, request_id: str, request: Request | None, event: ScheduledEvent | None
    ) -> Result:
        """One invocation (``request``'s ``fetch``, or ``event``'s ``scheduled``): its budget,
        its subrequests, its outcome. Never raises (but for cancellation): failures become
        error pages."""
        invocation = Invocation(
            self.runtime.engine, self.manifest.limits, request_id, self.name, self.env
        )
        invocation.wasi_args = self.wasi_args
        invocation.wasi_dirs = self.wasi_dirs
        log = invocation.log
        ctx = ExecutionContext(request_id, log)
        token = CURRENT.set(invocation)
        book = Subrequests(self.egress, self.manifest.limits, log)
        outbound_token = OUTBOUND.set(book)  # what begin() does, with the token to reset
        error: BaseException | None = None
        context: contextvars.Context | None = None
        pending: list[Awaitable[Any]] = []
        try:
            if request is not None:
                response = await self.fetch(request, self.env, ctx)
                if type(response) is not Response:
                    response = await _returned(response)
            else:
                assert event is not None
                response = await self._scheduled(event, ctx)
        except RequestError as exc:
            invocation.outcome = Outcome.REFUSED
            error = exc
            response = self._error_response(exc.status, exc, request_id)
        except GuestError as exc:
            invocation.outcome = Outcome(exc.outcome)
            error = exc
            response = self._error_response(exc.status, exc, request_id)
        except Exception as exc:
            invocation.outcome = Outcome.EXCEPTION
            error = exc
            response = self._error_response(500, exc, request_id)
        finally:
            CURRENT.reset(token)
            if book.count:  # a subrequest was made: close the responses left unread
                await book.close()
            pending = ctx.take_pending()
            if pending:  # wait_until work runs in this context: its subrequests still count
                context = contextvars.copy_context()
            OUTBOUND.reset(outbound_token)
            invocation.close()
        return Result(
            response=response,
            outcome=invocation.outcome,
            request_id=request_id,
            cpu_ms=invocation.cpu_ms,
            logs=invocation.logs,
            error=error,
            pending=pending,
            subrequests=book.records,
            context=context,
        )

    def _error_response(self, status: int, exc: BaseException, request_id: str) -> Response:
        return error_response(status, exc, request_id, dev=self.dev, worker=self.name)


async def _returned(response: object) -> Response:
    """What ``fetch`` returned, when not exactly a :class:`Response`: a subclass (a
    streamed subrequest passed through is read whole), or a ``TypeError``."""
    if not isinstance(response, Response):
        raise TypeError(f"fetch() must return an atoll.Response, got {type(response).__name__}")
    if isinstance(response, FetchResponse):  # a streamed subrequest passed through
        await response.bytes()
    return response


def error_response(
    status: int, exc: BaseException | None, request_id: str, *, dev: bool, worker: str = ""
) -> Response:
    """The error page: the whole story in ``dev``, a plain page with the request id otherwise."""
    reason = {
        413: "Payload Too Large",
        500: "Internal Server Error",
        502: "Bad Gateway",
        503: "Service Unavailable",
    }
    title = f"{status} {reason.get(status, 'Error')}"
    lines = [title, f"request id: {request_id}"]
    if isinstance(exc, RequestError):
        lines.append(str(exc.message))
    elif dev and exc is not None:
        lines.append(f"worker: {worker}")
        lines.append("")
        if isinstance(exc, AtollError):
            lines.append(f"{type(exc).__name__}: {exc}")
        if isinstance(exc, GuestError) and exc.frames:
            lines.append("")
            lines.append(
                "JavaScript stack (innermost first):"
                if isinstance(exc, ScriptError)
                else "wasm backtrace (innermost first):"
            )
            shown = exc.frames[:MAX_FRAMES]
            lines += [f"  {i}: {frame}" for i, frame in enumerate(shown)]
            if len(exc.frames) > len(shown):
                lines.append(f"  … {len(exc.frames) - len(shown)} more frames")
        if not isinstance(exc, GuestError):
            lines += traceback.format_exception(exc)
    body = "\n".join(line.rstrip("\n") for line in lines) + "\n"
    return Response(body, status=status, headers={"atoll-request-id": request_id})


async def run_pending(result: Result) -> None:
    """Run a request's ``wait_until`` work (after its response was sent); log failures."""
    if not result.pending:
        return
    context = result.context
    work = [
        asyncio.get_running_loop().create_task(item, context=context)
        if context is not None and inspect.iscoroutine(item)
        else item
        for item in result.pending
    ]
    outcomes = await asyncio.gather(*work, return_exceptions=True)
    for item in outcomes:
        if isinstance(item, BaseException):
            log.error("wait_until task failed (request %s): %r", result.request_id, item)


ScheduledHandler = Callable[[ScheduledEvent, Env, ExecutionContext], Awaitable[Any]]


def scheduled_handler(fetch: Any) -> ScheduledHandler | None:
    """A Python entry's ``async def scheduled(event, env, ctx)``, found beside its ``fetch``
    (once per load), or a JS entry's (its ``JsEntry.scheduled``, which runs the script's
    ``scheduled`` or says it has none). Other entry kinds have none."""
    js = sys.modules.get("atoll.entries.js")  # loaded once a JS worker was
    owner = getattr(fetch, "__self__", None)
    if js is not None and isinstance(owner, js.JsEntry):
        js_handler: ScheduledHandler = owner.scheduled
        return js_handler
    module_globals = getattr(fetch, "__globals__", None)
    found = module_globals.get("scheduled") if isinstance(module_globals, dict) else None
    if found is not None and inspect.iscoroutinefunction(found):
        handler: ScheduledHandler = found
        return handler
    return None


def load_worker(
    location: Path | str | Manifest,
    *,
    runtime: Runtime | None = None,
    dev: bool = False,
    extra_bindings: BindingFactory | None = None,
    services: ServiceCaller | None = None,
) -> Worker:
    """Load a worker folder (or an already-loaded manifest).

    ``services`` runs the calls of its ``[[services]]`` bindings (the node's
    workers); without it, a call fails saying where service bindings work.

    Raises :class:`~atoll.errors.ConfigError` for a bad manifest and
    :class:`~atoll.errors.WorkerLoadError` (or ``ModuleLoadError``) when a
    module or the entry cannot be loaded. Nothing is served from a worker
    that failed to load.
    """
    manifest = location if isinstance(location, Manifest) else load_manifest(location)
    check_crons(manifest.triggers.crons, str(manifest.path))
    runtime = runtime or Runtime()
    modules: dict[str, WasmModule] = {}
    bindings: dict[str, Any] = {}
    js = manifest.entry_kind == "js"
    for binding, relative in manifest.wasm_modules.items():
        if js:
            # Compiled by V8 in each isolate (wasm-bindgen modules import JS, not atoll:*).
            from atoll.entries.js import wasm_binding

            bindings[binding] = wasm_binding(manifest, binding, relative)
            continue
        module = WasmModule.load(
            binding,
            manifest.resolve(relative),
            cache=runtime.cache,
            linker=runtime.linker,
            display=relative,
        )
        modules[binding] = module
        bindings[binding] = WasmModuleBinding(module, runtime.engine, manifest.limits.memory_mb)
    if js:
        from atoll.entries.js import blob_bindings

        bindings.update(blob_bindings(manifest))
    if extra_bindings is not None:
        bindings.update(extra_bindings(manifest))
    if manifest.services:
        entries = tuple((s.binding, s.service, s.entrypoint) for s in manifest.services)
        bindings.update(service_bindings(manifest.name, entries, services))
    bindings.update(manifest.vars)
    assets: Assets | None = None
    if manifest.assets is not None or manifest.site is not None:
        from atoll.bindings.assets import Assets, AssetsBinding  # a worker with static files only

        assets = Assets.from_manifest(manifest)
        if assets is not None and manifest.assets is not None and manifest.assets.binding:
            bindings[manifest.assets.binding] = AssetsBinding(assets)
    fetch = load_entry(
        manifest,
        runtime.cache,
        runtime.linker,
        bindings,
        cache_dir=runtime.cache.directory,
    )
    worker = Worker(manifest, runtime, Env(bindings), fetch, modules, dev=dev)
    worker.assets = assets
    return worker


def request_id() -> str:
    """A new request id (16 hex digits).

    Ids name requests in logs, tail and error pages; they are not secrets, so
    they come from the process's PRNG (seeded from the OS, reseeded in a forked
    child by :mod:`random`) rather than a ``getrandom`` system call per request.
    """
    return _getrandbits(64).to_bytes(8, "big").hex()  # 16 hex digits, as f"{n:016x}"
