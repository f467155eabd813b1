"""atoll as a library: a worker as an ASGI app, or called in process.

Three ways in, all built on the ASGI app of ``atoll dev`` / ``serve``
(:class:`atoll.http.app.AtollApp`), not beside it:

- :func:`asgi` — one worker folder as an ASGI application, to run under
  uvicorn, granian or hypercorn, or to mount in Starlette / FastAPI;
- :func:`asgi_many` — several workers in one ASGI application, each request
  going to the worker whose ``routes`` match it, as ``atoll serve`` routes;
- :func:`load` — a worker called from Python: ``await worker.fetch(url)``
  returns a :class:`FetchResult` with the response, the outcome
  (``exceeded_cpu``…), the log lines and the tail event.

When things run: a worker is loaded (manifest checked, wasm compiled, the
JavaScript bundled, KV store opened and warmed) when :func:`asgi`,
:func:`asgi_many` or :func:`load` is called, on the calling thread, so that a
broken worker fails there, before anything is served. The ASGI lifespan
startup (or ``async with app``, or :meth:`EmbeddedApp.startup`) starts the KV
store's purge of expired keys and, with ``reload=True``, the folder watcher;
shutdown stops them and closes the store.

A wasm call is synchronous: a request blocks the event loop that serves it
for as long as its wasm runs, up to the worker's ``cpu_ms``. See
``docs/embedding.md`` for what that means inside another application.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from atoll.api import Headers, Request, Response
from atoll.bindings.kv import (
    STATE_DIR,
    KVBackend,
    KVHousekeeping,
    KVNamespace,
    kv_bindings,
    open_backend,
)
from atoll.errors import ConfigError
from atoll.http.app import AtollApp, Router, SingleWorker
from atoll.manifest import Manifest, load_manifest
from atoll.manifest.routes import RouteTable, conflicts, manifest_routes
from atoll.runtime.outcome import Outcome
from atoll.worker import BindingFactory, Result, Runtime, Worker, load_worker, run_pending

__all__ = [
    "EmbeddedApp",
    "EmbeddedWorker",
    "FetchResult",
    "ManualClock",
    "ResultLog",
    "asgi",
    "asgi_many",
    "close_now",
    "load",
    "open_worker",
]

KVSpec = str | KVBackend
"""A KV store: a spec (``memory``, ``sqlite``, ``sqlite:PATH``, ``redis://…``) or an open backend."""


class ManualClock:
    """A clock that moves only when told: KV expiration without sleeping.

    Pass it as ``clock=`` to :func:`load` / :func:`asgi`; the KV store
    measures ``expiration`` and ``expirationTtl`` against it. It starts at
    ``start`` (default: the real time when it is made).
    """

    def __init__(self, start: float | None = None) -> None:
        self.now = time.time() if start is None else float(start)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        """Move forward by ``seconds``; returns the new time."""
        self.now += seconds
        return self.now

    def set(self, when: float) -> None:
        """Jump to ``when`` (seconds since the Unix epoch)."""
        self.now = float(when)


@dataclass
class FetchResult:
    """One request served in process: the response and everything the log line knows."""

    response: Response
    outcome: Outcome
    """``ok``, ``exception``, ``exceeded_cpu``, ``exceeded_memory``, ``refused``… (a ``str``)."""
    request_id: str
    worker: str
    method: str
    url: str
    cpu_ms: float
    wall_ms: float
    logs: list[str] = field(default_factory=list)
    """The request's ``console`` / ``ctx.log`` lines (and atoll's own notes), in order."""
    error: BaseException | None = None
    """What failed, when the outcome is not ``ok``."""
    result: Result | None = field(default=None, repr=False, compare=False)
    """The runtime's own record of the request (subrequests included)."""

    @property
    def status(self) -> int:
        return self.response.status

    @property
    def headers(self) -> Headers:
        return self.response.headers

    @property
    def body(self) -> bytes:
        return self.response.body

    @property
    def text(self) -> str:
        return self.response.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.response.body)

    @property
    def tail_event(self) -> dict[str, Any]:
        """The request as ``atoll tail`` streams it (JSON data), made on first use."""
        from atoll.control.tail import event

        result = self.result or Result(
            self.response, self.outcome, self.request_id, self.cpu_ms, self.logs, self.error
        )
        return event(
            worker=self.worker,
            version="local",
            method=self.method,
            url=self.url,
            result=result,
            wall_ms=self.wall_ms,
            process=os.getpid(),
            rate=1.0,
        )

    @classmethod
    def of(cls, worker: str, method: str, url: str, result: Result, wall_ms: float) -> Self:
        return cls(
            response=result.response,
            outcome=result.outcome,
            request_id=result.request_id,
            worker=worker,
            method=method,
            url=url,
            cpu_ms=result.cpu_ms,
            wall_ms=wall_ms,
            logs=result.logs,
            error=result.error,
            result=result,
        )


class ResultLog(list[FetchResult]):
    """The requests an app served (``record=True``), in order, with views across them."""

    @property
    def logs(self) -> list[str]:
        """Every request's log lines (``console``, ``ctx.log``), in order."""
        return [line for result in self for line in result.logs]

    @property
    def outcomes(self) -> list[Outcome]:
        return [result.outcome for result in self]

    @property
    def last(self) -> FetchResult:
        """The latest request. Raises ``IndexError`` when there was none."""
        return self[-1]


class EmbeddedApp(AtollApp):
    """The ASGI app :func:`asgi` and :func:`asgi_many` return: :class:`AtollApp` plus its store.

    ``workers`` maps each worker's name to its loaded :class:`~atoll.worker.Worker`.
    With ``record=True`` every request it serves is kept in ``results`` (a
    :class:`FetchResult` each, in order; for tests: it grows without bound).

    A server runs :meth:`startup` and :meth:`shutdown` through the ASGI
    lifespan. A parent app does not forward the lifespan to what it mounts
    (Starlette's ``Mount`` does not): call them from the parent's lifespan,
    or ``async with app:``.
    """

    def __init__(
        self,
        router: Router,
        workers: Mapping[str, Worker],
        backend: KVBackend,
        *,
        dev: bool,
        record: bool,
        reloader: Any = None,
        own_backend: bool = True,
    ) -> None:
        self.workers = dict(workers)
        self.backend = backend
        self.results = ResultLog()
        self._housekeeping = KVHousekeeping(backend) if own_backend else None
        self._reloader = reloader
        self._started = False
        super().__init__(
            router,
            dev=dev,
            on_startup=[self.startup],
            on_shutdown=[self.shutdown],
            on_result=[self._record] if record else (),
        )

    async def startup(self) -> None:
        """Once, before serving (the ASGI lifespan startup): the KV purge, the watcher."""
        if self._started:
            return
        self._started = True
        if self._housekeeping is not None:
            await self._housekeeping.start()
        if self._reloader is not None:
            self._reloader.start()

    async def shutdown(self) -> None:
        """Once, after the last request (the ASGI lifespan shutdown): stops and closes the store.

        Closes the store even when :meth:`startup` never ran (a store passed in
        as a backend is the caller's, and left open).
        """
        self._started = False
        if self._reloader is not None:
            self._reloader.stop()
        if self._housekeeping is not None:
            await self._housekeeping.stop()

    async def __aenter__(self) -> Self:
        await self.startup()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.shutdown()

    def _record(
        self, worker: Worker | None, method: str, url: str, result: Result, wall_ms: float
    ) -> None:
        name = worker.name if worker is not None else ""
        self.results.append(FetchResult.of(name, method, url, result, wall_ms))


class EmbeddedWorker:
    """One worker, called from Python. Made by :func:`load` (or :func:`open_worker`).

    Safe to call from several tasks of one loop; from several threads too
    (the worker keeps no per-request state), but a wasm call blocks the loop
    it runs on, for up to the worker's ``cpu_ms``.
    """

    def __init__(self, app: EmbeddedApp) -> None:
        (self.worker,) = app.workers.values()
        #: The ASGI app serving this worker (for ``httpx.ASGITransport``, a mount…).
        self.app = app

    @property
    def name(self) -> str:
        return self.worker.name

    @property
    def manifest(self) -> Manifest:
        return self.worker.manifest

    @property
    def env(self) -> Any:
        """The worker's ``env`` (vars, secrets, KV namespaces, wasm modules)."""
        return self.worker.env

    @property
    def results(self) -> ResultLog:
        """Every request served so far, in process or over ASGI (with ``record=True``)."""
        return self.app.results

    def kv(self, binding: str) -> KVNamespace:
        """The KV namespace bound as ``env.<binding>`` (seed it, read it back).

        Raises :class:`~atoll.errors.ConfigError` when the worker declares no
        such ``[[kv_namespaces]]`` binding.
        """
        namespace = getattr(self.worker.env, binding, None)
        if not isinstance(namespace, KVNamespace):
            declared = ", ".join(e.binding for e in self.manifest.kv_namespaces) or "none"
            raise ConfigError(
                f"worker {self.name!r} has no KV namespace bound as {binding!r} "
                f"(declared: {declared})",
                path=str(self.manifest.path),
                hint=f'add [[kv_namespaces]] binding = "{binding}" to the config',
            )
        return namespace

    async def fetch(
        self,
        request: Request | str,
        *,
        method: str = "GET",
        headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
        body: bytes | str | None = None,
        wait_until: bool = True,
    ) -> FetchResult:
        """Serve one request in process, with the worker's limits; never raises for the worker.

        ``request`` is an :class:`atoll.Request`, or a URL (relative URLs get
        ``http://NAME.localhost``) with ``method``, ``headers`` and ``body``.
        A worker that fails, runs out of CPU or memory gets the error page and
        outcome it gets over HTTP. With ``wait_until`` (the default) the
        request's ``ctx.wait_until`` work is awaited before returning, so its
        effects (a KV write…) are visible; otherwise it runs as a task.
        """
        if not isinstance(request, Request):
            url = request if "://" in request else f"http://{self.name}.localhost{request}"
            request = Request(url, method=method, headers=headers, body=body)
        started = time.perf_counter()
        result = await self.app.fetch(self.worker, request)
        wall_ms = (time.perf_counter() - started) * 1000
        if wait_until:
            await run_pending(result)
        elif result.pending:
            import asyncio

            task = asyncio.ensure_future(run_pending(result))
            _BACKGROUND.add(task)
            task.add_done_callback(_BACKGROUND.discard)
        return FetchResult.of(self.name, request.method, request.url, result, wall_ms)

    async def scheduled(
        self,
        cron: str | None = None,
        *,
        scheduled_time: datetime | None = None,
        wait_until: bool = True,
    ) -> FetchResult:
        """Run the worker's ``scheduled`` handler once, as a cron trigger would.

        ``cron`` defaults to the first of ``[triggers] crons`` (a worker may be
        run with any expression, as ``wrangler dev --test-scheduled`` allows);
        ``scheduled_time`` defaults to now (UTC). Same limits, log, outcome and
        tail event as a request; the result's status is 200 when the run ended
        well, else the error page's (500, or 503 past a limit). Never raises for
        the worker: a worker with no ``scheduled`` handler gets a 500 naming it.
        """
        from atoll.api.scheduled import ScheduledEvent
        from atoll.worker import request_id

        crons = self.manifest.triggers.crons
        event = ScheduledEvent(
            cron if cron is not None else (crons[0] if crons else ""),
            scheduled_time or datetime.now(UTC),
        )
        started = time.perf_counter()
        result = await self.worker.run_scheduled(event, request_id())
        wall_ms = (time.perf_counter() - started) * 1000
        if wait_until:
            await run_pending(result)
        url = f"scheduled://{self.name}/{event.cron}"
        for hook in self.app.on_result:  # record=True keeps it in results, as a request
            hook(self.worker, "SCHEDULED", url, result, wall_ms)
        return FetchResult.of(self.name, "SCHEDULED", url, result, wall_ms)

    async def close(self) -> None:
        """Close the KV store (unless it was passed in open). Idempotent."""
        await self.app.shutdown()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


_BACKGROUND: set[Any] = set()


def close_now(worker: EmbeddedWorker) -> None:
    """Close ``worker`` from synchronous code (a fixture's teardown).

    Runs the close on a loop of its own, never set as the thread's current
    loop (so it leaves the test runner's loop alone); from inside a running
    loop it is scheduled there instead.
    """
    import asyncio

    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is not None:
        task = running.create_task(worker.close())
        _BACKGROUND.add(task)
        task.add_done_callback(_BACKGROUND.discard)
        return
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(worker.close())
    finally:
        loop.close()


def asgi(
    location: Path | str,
    *,
    kv: KVSpec = "memory",
    vars: Mapping[str, Any] | None = None,
    secrets: Mapping[str, str] | None = None,
    config: Path | str | None = None,
    env: str | None = None,
    dev: bool = False,
    reload: bool = False,
    build: bool = False,
    record: bool = False,
    clock: Callable[[], float] | None = None,
    runtime: Runtime | None = None,
) -> EmbeddedApp:
    """The worker in folder ``location`` as an ASGI application.

    ``kv``: the store of its KV namespaces (``memory``, the default, lives
    as long as the app; ``sqlite`` is ``location/.atoll/kv.sqlite3``, what
    ``atoll dev`` and ``atoll kv`` use); or an open backend, shared and left
    open. ``vars`` are set over ``[vars]``; ``secrets`` are bound as
    ``env.NAME`` too (a clash with a declared binding is an error).
    ``config`` / ``env`` pick the file and ``[env.NAME]`` (``-c``, ``--env``).
    ``dev`` shows error pages with tracebacks. ``reload`` watches the folder
    and swaps in each change, rebuilt when ``build`` (off by default: an
    embedded worker is served as it is); ``build`` also runs the
    ``[build]`` command once before loading. ``clock`` is the KV store's
    clock (a :class:`ManualClock` in tests).

    Raises :class:`~atoll.errors.ConfigError` for a bad config and
    :class:`~atoll.errors.WorkerLoadError` when the worker cannot load.
    """
    runtime = runtime or Runtime()
    manifest = _manifest(location, config, env, vars)
    if build:
        _build(manifest)
    backend, own = _backend(kv, manifest, clock)
    bindings = _bindings(backend, secrets)
    worker = load_worker(manifest, runtime=runtime, dev=dev, extra_bindings=bindings)
    router = SingleWorker(worker)
    reloader = None
    if reload:
        from atoll.devtools.reload import DevReloader

        adjust = _vars_adjust(vars)
        reloader = DevReloader(
            manifest.root,
            router,
            runtime,
            extra_bindings=bindings,
            adjust=adjust,
            build=build,
            config=manifest.path if config is not None else None,
            env=env,
        )
    return EmbeddedApp(
        router,
        {worker.name: worker},
        backend,
        dev=dev,
        record=record,
        reloader=reloader,
        own_backend=own,
    )


def asgi_many(
    locations: Iterable[Path | str],
    *,
    kv: KVSpec = "memory",
    vars: Mapping[str, Mapping[str, Any]] | None = None,
    secrets: Mapping[str, Mapping[str, str]] | None = None,
    dev: bool = False,
    record: bool = False,
    clock: Callable[[], float] | None = None,
    runtime: Runtime | None = None,
) -> EmbeddedApp:
    """Several worker folders as one ASGI application, routed by their ``routes``.

    Each request goes to the worker whose route pattern matches its host and
    path most specifically, as ``atoll serve`` routes (see
    :mod:`atoll.manifest.routes`); a worker without ``routes`` gets
    ``NAME.localhost/*``; no match is a 404. ``vars`` and ``secrets`` are
    keyed by worker name. The workers share one KV store (two declaring the
    same namespace ``id`` share its keys). Other arguments: :func:`asgi`.

    Raises :class:`~atoll.errors.ConfigError` when two workers have one
    name or claim the same route pattern.
    """
    runtime = runtime or Runtime()
    vars = vars or {}
    secrets = secrets or {}
    manifests: dict[str, Manifest] = {}
    for location in locations:
        manifest = load_manifest(location)
        if manifest.name in manifests:
            raise ConfigError(
                f"two workers are named {manifest.name!r}: "
                f"{manifests[manifest.name].path} and {manifest.path}",
                path=str(manifest.path),
                hint="give each worker its own `name`",
            )
        manifests[manifest.name] = _with_vars(manifest, vars.get(manifest.name))
    unknown = sorted((set(vars) | set(secrets)) - set(manifests))
    if unknown:
        raise ConfigError(
            f"vars or secrets given for {unknown[0]!r}, which is none of the workers "
            f"({', '.join(sorted(manifests))})",
            hint="key vars= and secrets= by each worker's `name`",
        )
    claims = {name: manifest_routes(m) for name, m in manifests.items()}
    clash = conflicts(claims)
    if clash:
        pattern, owner, other = clash[0]
        raise ConfigError(
            f"route {pattern!r} is claimed by both {other!r} and {owner!r}",
            path=str(manifests[owner].path),
            key="routes",
            hint="give each route pattern to one worker",
        )
    first = next(iter(manifests.values()), None)
    if first is None:
        raise ConfigError("asgi_many() was given no worker folder", hint="pass a list of folders")
    backend, own = _backend(kv, first, clock)
    kv_bind = kv_bindings(backend)
    workers: dict[str, Worker] = {}
    for name, manifest in manifests.items():
        workers[name] = load_worker(
            manifest,
            runtime=runtime,
            dev=dev,
            extra_bindings=_bindings(backend, secrets.get(name), kv_bind),
        )
    table = RouteTable(
        (route, workers[name], name) for name, routes in claims.items() for route in routes
    )
    return EmbeddedApp(table, workers, backend, dev=dev, record=record, own_backend=own)


def open_worker(
    location: Path | str,
    *,
    kv: KVSpec = "memory",
    vars: Mapping[str, Any] | None = None,
    secrets: Mapping[str, str] | None = None,
    config: Path | str | None = None,
    env: str | None = None,
    dev: bool = True,
    build: bool = False,
    record: bool = False,
    clock: Callable[[], float] | None = None,
    runtime: Runtime | None = None,
) -> EmbeddedWorker:
    """:func:`load`, from synchronous code (what the pytest fixtures use)."""
    app = asgi(
        location,
        kv=kv,
        vars=vars,
        secrets=secrets,
        config=config,
        env=env,
        dev=dev,
        build=build,
        record=record,
        clock=clock,
        runtime=runtime,
    )
    return EmbeddedWorker(app)


async def load(
    location: Path | str,
    *,
    kv: KVSpec = "memory",
    vars: Mapping[str, Any] | None = None,
    secrets: Mapping[str, str] | None = None,
    config: Path | str | None = None,
    env: str | None = None,
    dev: bool = True,
    build: bool = False,
    record: bool = False,
    clock: Callable[[], float] | None = None,
    runtime: Runtime | None = None,
) -> EmbeddedWorker:
    """The worker in folder ``location``, to call with ``await worker.fetch(...)``.

    Arguments as :func:`asgi`, but ``dev`` is on by default (error pages
    carry the traceback). The worker loads on the calling thread (it blocks
    the loop while wasm compiles; a second load of the same modules comes
    from the compiled-code cache). Close it with ``await worker.close()`` or
    ``async with``. Raises as :func:`asgi`.
    """
    return open_worker(
        location,
        kv=kv,
        vars=vars,
        secrets=secrets,
        config=config,
        env=env,
        dev=dev,
        build=build,
        record=record,
        clock=clock,
        runtime=runtime,
    )


# -- the parts ----------------------------------------------------------------------------


def _manifest(
    location: Path | str,
    config: Path | str | None,
    env: str | None,
    vars: Mapping[str, Any] | None,
) -> Manifest:
    manifest = load_manifest(location, config=config, env=env)
    manifest_routes(manifest)  # a bad route is an error here, as in the CLI
    return _with_vars(manifest, vars)


def _with_vars(manifest: Manifest, vars: Mapping[str, Any] | None) -> Manifest:
    adjust = _vars_adjust(vars)
    return manifest if adjust is None else adjust(manifest)


def _vars_adjust(vars: Mapping[str, Any] | None) -> Callable[[Manifest], Manifest] | None:
    if not vars:
        return None
    extra = dict(vars)

    def adjust(manifest: Manifest) -> Manifest:
        return dataclasses.replace(manifest, vars={**manifest.vars, **extra})

    return adjust


def _build(manifest: Manifest) -> None:
    from atoll.devtools.build import run_build

    run_build(manifest)


def _backend(
    kv: KVSpec, manifest: Manifest, clock: Callable[[], float] | None
) -> tuple[KVBackend, bool]:
    """The store and whether it is ours to close."""
    if not isinstance(kv, str):
        return kv, False
    state_dir = manifest.root / STATE_DIR
    if clock is None:
        return open_backend(kv, state_dir=state_dir), True
    return open_backend(kv, state_dir=state_dir, clock=clock), True


def _bindings(
    backend: KVBackend,
    secrets: Mapping[str, str] | None,
    kv_bind: BindingFactory | None = None,
) -> BindingFactory:
    kv_bind = kv_bind or kv_bindings(backend)
    if not secrets:
        return kv_bind
    from atoll.control.secret_store import secret_bindings

    secret_bind = secret_bindings(dict(secrets))

    def bind(manifest: Manifest) -> Mapping[str, Any]:
        return {**kv_bind(manifest), **secret_bind(manifest)}

    return bind
