"""Serve an ASGI app from one event loop, with spare loops in threads for when it stalls.

Why spares: a worker's ``fetch`` calls wasm exports synchronously, and one
call may spin up to its CPU limit (30 s), blocking the loop that makes it.
Why one serving loop: several loops that all serve connections contend for
the GIL on every callback (a futex hand-off per read, write and timer: 17-31
futex calls per request with 4 busy loops against 0.5 with one), which cost
about half the requests per CPU-second. So one loop serves while it is healthy
and the others wait, idle in ``epoll_wait``, until it is not
(``http/stalls.py`` has the watch, the marks and the offload).

Threads, all started by one :func:`serve` call::

    caller's thread      the control loop: binds once, runs the app's ASGI lifespan
                         (startup and shutdown, once each), handles SIGINT/SIGTERM,
                         stops the loops, and starts and stops the stall watch
    atoll-watch          the stall watch: a native thread (atoll.runtime._native) that
                         checks the serving loop's beat every 5 ms and takes the GIL
                         only when it is late (without the extension: a timer on
                         the control loop)
    atoll-http-0         the serving loop: uvloop + a uvicorn Server (lifespan off)
                         listening on a dup() of the socket (uvloop closes the fd it
                         is given); accepts and serves every connection while healthy;
                         beats every 5 ms (a timer)
    atoll-http-spare-N   ``loops - 1`` spare loops, each a uvicorn Server with no
                         listener, at a lower CPU priority
                         (:attr:`ServerLimits.spare_nice`); they run the requests
                         of routes marked long, and accept while the serving loop
                         is stalled. An idle spare has no timer (uvicorn's 0.1 s
                         tick runs only while it holds connections of its own):
                         it sleeps in ``epoll_wait`` and never asks for the GIL

What happens when the serving loop stalls (no beat for
:attr:`ServerLimits.stall_after`, 10 ms by default, while its thread is busy):

1. The least busy spare starts accepting on a dup of the listener; when the
   serving loop beats again it stops (the listening fd only).
2. The request whose task is running on the stalled loop is marked long (its
   host and path); from its next request on, the route runs on a spare: the app
   coroutine there, ``receive``/``send`` proxied back to the serving loop, which
   keeps the connection. A mark is dropped after a few quick runs.
3. Connections a spare accepted get ``Connection: close`` on their first
   response once the serving loop is healthy again, so their clients come back
   to it (``http/protocol.py``).

With ``loops=1`` there are no spares, no watch and no offload: one loop, as a
plain uvicorn.

Thread safety: **the app is called from several threads**: the serving loop's,
and each spare's for the requests it runs. Everything requests share (caches,
counters, compiled modules, pools) must be thread-safe, and an object bound to
one event loop (a Future, an ``asyncio.Lock``, a client session) must not be
used from a request served by another loop: a request offloaded to a spare runs
on the spare's loop (``asyncio.get_running_loop()`` is the spare's), its
``receive`` and ``send`` excepted. Tasks the lifespan startup creates run on
the control loop. ``scope["state"]`` is, per request, a shallow copy of what
the lifespan startup put in its state (as in any ASGI server).

Each connection is bounded by ``http/protocol.py`` (head size and time,
connections per loop, keep-alive), with the :class:`ServerLimits` given to
:func:`serve`; docs/limits.md lists them. The serving loop holds most of the
connection cap, the spares share a quarter of it.

Known limits (numbers in docs/benchmarks/http_server.md):

- The first long request of a route runs on the serving loop: it stalls every
  connection the serving loop holds (keep-alive clients wait for it; new
  connections go to a spare after ``stall_after``). Only its later requests run
  on a spare. A client that makes every request a new route (host and path)
  gets a stall per route until the escalation in ``http/stalls.py`` marks the
  host, then every request.
- A connection the serving loop accepted in the iteration it started a long
  call in waits for that call.
- A stall outside a request (a long garbage collection, a slow callback) also
  hands new connections to a spare, but marks nothing.
- More concurrent long requests than spares share the spares: a spare stuck in
  one wasm call makes the requests offloaded to it wait.
- Threads a spare starts (a lazily started helper thread, on the first request
  that needs it) inherit its lower priority; Linux does not let an
  unprivileged process raise it back.
- Shutdown cannot interrupt a synchronous wasm call: a stuck loop stops when
  the call returns (its CPU limit ends it). After ``shutdown_timeout``,
  :func:`serve` returns anyway; loop threads are daemons and die with the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import uvicorn
import uvloop
from uvicorn.config import LOGGING_CONFIG
from uvicorn.lifespan.on import LifespanOn

from atoll.errors import AtollError, ConfigError
from atoll.http.asgi import ASGIApp, Message, Receive, Scope, Send
from atoll.http.protocol import ConnectionPool, ServerLimits, protocol_class, raise_fd_limit
from atoll.http.stalls import BEAT_INTERVAL, LongRoutes, Offload, StallWatch, Steps

__all__ = [
    "DEFAULT_LOOPS",
    "DEFAULT_SWITCH_INTERVAL",
    "ASGIApp",
    "Message",
    "Receive",
    "Scope",
    "Send",
    "ServerLimits",
    "bind",
    "serve",
]


DEFAULT_LOOPS = 4
"""Event loops per process: one serving loop and three spares. The spares are
idle (no GIL contention) until the serving loop stalls or a route is marked
long, so they cost memory (a thread and a loop each), not requests per
CPU-second. Their count is how many long requests run at once without waiting
for each other. See docs/benchmarks/http_server.md."""

DEFAULT_SWITCH_INTERVAL: float | None = None
"""The :func:`sys.setswitchinterval` :func:`serve` sets; ``None`` keeps CPython's
5 ms. Values from 0.1 to 5 ms measured alike within noise (same document)."""

_BACKLOG = 2048
_log = logging.getLogger("atoll.http")


def serve(
    app: ASGIApp,
    *,
    host: str = "127.0.0.1",
    port: int = 8787,
    loops: int = DEFAULT_LOOPS,
    access_log: bool = False,
    log_level: str = "warning",
    ready: Callable[[str, int], None] | None = None,
    shutdown_timeout: float = 10.0,
    sock: socket.socket | None = None,
    switch_interval: float | None = DEFAULT_SWITCH_INTERVAL,
    limits: ServerLimits | None = None,
) -> None:
    """Serve ``app`` on ``host:port`` until SIGINT/SIGTERM: one serving loop, ``loops - 1`` spares.

    Blocks. Binds once with ``SO_REUSEADDR`` (``port=0`` picks a free port),
    or listens on ``sock`` if given: a bound TCP socket that the caller keeps
    and closes. Runs the app's lifespan startup once, starts the loops, then
    calls ``ready(host, port)`` once, in the calling thread, when the serving
    loop listens and every spare runs (``port`` is the actual port).

    Shutdown, on the first SIGINT or SIGTERM: the serving loop stops accepting,
    closes idle connections and lets in-flight requests finish (those running
    on spares too), then the spares do the same; after ``shutdown_timeout``
    seconds the rest are cancelled (a synchronous wasm call cannot be: see the
    module docstring). The app's lifespan shutdown then runs once, if every
    loop has stopped. A second signal stops waiting for both. Signal handlers are installed only when called from the main thread,
    and removed on return.

    ``switch_interval`` (seconds), if not None, is set with
    :func:`sys.setswitchinterval` for the whole process while serving and
    restored on return.

    ``limits`` bound what each connection may cost (head size and time, open
    connections, keep-alive; see ``http/protocol.py``) and say when the serving
    loop counts as stalled and how much lower the spares' priority is. The soft
    file-descriptor limit is raised to the hard one first, once per process.

    Raises :class:`~atoll.errors.ConfigError` if ``loops < 1`` or the address
    cannot be bound, and :class:`~atoll.errors.AtollError` if the lifespan
    startup fails or a loop crashes.
    """
    if loops < 1:
        raise ConfigError(f"loops must be at least 1, got {loops}", key="loops")
    listener = bind(host, port) if sock is None else sock
    old_interval = sys.getswitchinterval()
    # What exists now (modules, loaded workers, compiled code) lives as long as the
    # server: out of the collector's sight, full collections stay cheap. Only the young
    # generations are collected first: a full collection here is most of the time from
    # launch to listening, for a few hundred objects of import-time garbage.
    gc.collect(1)
    gc.freeze()
    try:
        listener.listen(_BACKLOG)
        if switch_interval is not None:
            sys.setswitchinterval(switch_interval)
        control = _Control(
            app,
            listener,
            loops,
            access_log,
            log_level,
            ready,
            shutdown_timeout,
            limits or ServerLimits(),
        )
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(control.run())
    finally:
        sys.setswitchinterval(old_interval)
        gc.unfreeze()
        if sock is None:
            listener.close()


def bind(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """A TCP socket bound to ``host:port`` (``SO_REUSEADDR``; ``SO_REUSEPORT`` if asked), not listening.

    Raises :class:`~atoll.errors.ConfigError` if the address cannot be bound.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"cannot listen on {host}:{port}: {exc.strerror}",
            key="port",
            hint="choose another port (0 picks a free one) or stop what uses this one",
        ) from exc
    return sock


class _LoopServer(uvicorn.Server):
    """One event loop's uvicorn Server: the serving loop (``spare=False``) or a spare.

    Made once per loop by :class:`_Control`; runs in the loop's own thread. The
    serving loop listens from the start and beats every
    :data:`~atoll.http.stalls.BEAT_INTERVAL`; a spare listens only while the
    watch asks it to (:meth:`accept`) and runs the requests the serving loop
    offloads to it (:meth:`run_offloaded`).
    """

    def __init__(
        self,
        config: uvicorn.Config,
        state: dict[str, Any],
        on_started: Callable[[], None],
        pool: ConnectionPool,
        listener: socket.socket,
        spare: bool,
    ) -> None:
        super().__init__(config)
        self._state = state
        self._on_started = on_started
        self.pool = pool
        self.listener = listener
        self.spare = spare
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread_id: int | None = None
        self.cpu_clock: int | None = None
        self.on_beat: Callable[[], None] | None = None
        self.beats = 0
        self.last_beat = time.monotonic()
        self.offloaded = 0
        self.accepted = 0
        """Times this spare started accepting for a stalled serving loop."""
        self._accepting: asyncio.AbstractServer | None = None
        self._want_accept = False
        self._opening = False
        self._wake: asyncio.Event | None = None  # a spare's, while it waits idle

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        self.loop = asyncio.get_running_loop()
        self.thread_id = threading.get_ident()
        with contextlib.suppress(AttributeError, OSError):  # not on every platform
            self.cpu_clock = time.pthread_getcpuclockid(threading.get_ident())
        self.lifespan.state.update(self._state)
        await super().startup(sockets)
        if not self.spare:
            self._beat()
        if self.started:
            self._on_started()

    async def main_loop(self) -> None:
        """The serving loop ticks every 0.1 s (uvicorn's: the date header, late heads, the
        exit flag). A spare ticks only while it has connections of its own or accepts:
        idle, it waits for :meth:`wake` without a timer, so that it never asks for the
        GIL while the serving loop serves."""
        if not self.spare:
            await super().main_loop()
            return
        self._wake = asyncio.Event()
        counter = 0
        while not await self.on_tick(counter):
            if self._idle():
                self._wake.clear()
                await self._wake.wait()
                counter = 0  # the first tick after a wait renews the date header
            else:
                counter = (counter + 1) % 864000
                await asyncio.sleep(0.1)

    def _idle(self) -> bool:
        return not (self.server_state.connections or self._want_accept or self._opening)

    def wake(self) -> None:
        """Let an idle spare tick again (on its own loop): it accepts, or should exit."""
        if self._wake is not None:
            self._wake.set()

    def exit(self, force: bool = False) -> None:
        """Ask this loop to stop (from any thread): gracefully, or cancelling its requests."""
        if force:
            self.force_exit = True
        self.should_exit = True
        if self.loop is not None:
            with contextlib.suppress(RuntimeError):  # its loop has closed: it stopped
                self.loop.call_soon_threadsafe(self.wake)

    async def on_tick(self, counter: int) -> bool:
        if counter % 5 == 0:  # every 0.5 s: late heads are closed within that of their timeout
            self.pool.sweep()
        return await super().on_tick(counter)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self.spare:
            self.accept(False)
        await super().shutdown(sockets)
        self.pool.log_refusals()  # the refusals counted since the last line

    def cpu_time(self) -> float:
        """CPU seconds this loop's thread has used (any thread may ask; 0 if unknown)."""
        if self.cpu_clock is None:
            return 0.0
        try:
            return time.clock_gettime(self.cpu_clock)
        except OSError:  # the thread ended
            return 0.0

    def _beat(self) -> None:
        self.beats += 1
        self.last_beat = time.monotonic()
        if self.on_beat is not None:
            self.on_beat()
        assert self.loop is not None
        self.loop.call_later(BEAT_INTERVAL, self._beat)

    # -- spares -------------------------------------------------------------------------------

    def accept(self, on: bool) -> None:
        """Start or stop accepting connections on a dup of the listener (on this loop).

        Stopping closes the listening socket only: the connections stay, and
        each is answered ``Connection: close`` on its next request.
        """
        on = on and not self.should_exit
        self._want_accept = on
        self.pool.send_home = not on
        if on:
            self.wake()
        if on and self._accepting is None and not self._opening:
            self._opening = True
            assert self.loop is not None
            self.loop.create_task(self._open())
        elif not on and self._accepting is not None:
            self._accepting.close()
            self._accepting = None

    async def _open(self) -> None:
        assert self.loop is not None
        config = self.config
        try:
            server = await self.loop.create_server(
                lambda: config.http_protocol_class(  # type: ignore[call-arg]
                    config=config,
                    server_state=self.server_state,
                    app_state=self.lifespan.state,
                    _loop=self.loop,
                ),
                sock=self.listener.dup(),  # uvloop closes the fd it is given
                backlog=_BACKLOG,
            )
        except OSError:
            _log.exception("a spare loop could not listen")
            return
        finally:
            self._opening = False
        if self._want_accept:
            self._accepting = server
            self.accepted += 1
        else:
            server.close()

    async def run_offloaded(
        self, app: ASGIApp, scope: Scope, receive: Receive, send: Send
    ) -> float:
        """Run one request the serving loop offloaded; the most CPU seconds one step of it used
        (not this thread's CPU meanwhile: that counts the other requests it ran).

        The request counts among this loop's tasks, so that a graceful shutdown waits for it.
        """
        task = asyncio.current_task()
        assert task is not None
        tasks = self.server_state.tasks
        tasks.add(task)
        steps = Steps(app(scope, receive, send))
        try:
            await steps
        finally:
            tasks.discard(task)
        return steps.longest


class _Control:
    """What the control loop does: once per :func:`serve` call, in the caller's thread."""

    def __init__(
        self,
        app: ASGIApp,
        listener: socket.socket,
        loops: int,
        access_log: bool,
        log_level: str,
        ready: Callable[[str, int], None] | None,
        shutdown_timeout: float,
        limits: ServerLimits,
    ) -> None:
        self.app = app
        self.limits = limits
        self.listener = listener
        self.loops = loops
        self.access_log = access_log
        self.log_level = log_level
        self.ready = ready
        self.shutdown_timeout = shutdown_timeout
        self.servers: list[_LoopServer] = []  # the serving loop first, then the spares
        self.watch: StallWatch | None = None
        self.errors: list[BaseException] = []
        self.stop = asyncio.Event()  # first signal
        self.forced = asyncio.Event()  # second signal

    def _config(
        self, lifespan: str, app: ASGIApp | None = None, pool: ConnectionPool | None = None
    ) -> uvicorn.Config:
        return uvicorn.Config(
            app or self.app,
            loop="uvloop",
            http=protocol_class(self.limits, pool) if pool is not None else "httptools",
            # Offload is called, not awaited as a coroutine function: not ASGI 2.
            interface="asgi3",
            timeout_keep_alive=self.limits.keep_alive_timeout,
            proxy_headers=self.limits.proxy_headers,
            # Workers get no WebSocket here: an Upgrade request is served as plain HTTP
            # (the worker sees the header), and the websockets package is never imported.
            ws="none",
            lifespan=lifespan,  # type: ignore[arg-type]
            # Configure logging once (the first Config), not once per loop.
            log_config=LOGGING_CONFIG if lifespan == "auto" else None,
            log_level=self.log_level,
            access_log=self.access_log,
        )

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        signals = self._install_signals(loop)
        try:
            lifespan = LifespanOn(self._config("auto"))
            await lifespan.startup()
            if lifespan.should_exit:
                raise AtollError("the app's lifespan startup failed", hint="see the log above")
            started = [loop.create_future() for _ in range(self.loops)]
            stopped = [loop.create_future() for _ in range(self.loops)]
            self._make_servers(lifespan.state, started, stopped)
            try:
                if await _first(asyncio.gather(*started), self.stop.wait(), *stopped) == 0:
                    if self.watch is not None:
                        self.watch.start()
                    if self.ready is not None:
                        host, port = self.listener.getsockname()[:2]
                        self.ready(host, port)
                    await _first(self.stop.wait(), *stopped)
            finally:
                all_stopped = await self._stop_loops(stopped)
            if all_stopped and not self.forced.is_set():
                await _first(lifespan.shutdown(), self.forced.wait())
        finally:
            for sig in signals:
                loop.remove_signal_handler(sig)
        if self.errors:
            raise AtollError(f"an event loop failed: {self.errors[0]!r}") from self.errors[0]

    def _make_servers(
        self,
        state: dict[str, Any],
        started: list[asyncio.Future[None]],
        stopped: list[asyncio.Future[None]],
    ) -> None:
        """Make the loops' servers and start their threads: the serving loop, then the spares."""
        serving_cap, spare_cap = self.limits.connection_caps(self.loops, raise_fd_limit())
        control = asyncio.get_running_loop()

        def resolve(fut: asyncio.Future[None]) -> None:
            # The control loop is closed if it stopped waiting for this loop.
            with contextlib.suppress(RuntimeError):
                control.call_soon_threadsafe(_set_done, fut)

        def make(index: int, app: ASGIApp, cap: int, spare: bool) -> _LoopServer:
            pool = ConnectionPool(self.limits, cap)
            pool.send_home = spare
            config = self._config("off", app, pool)
            ready = started[index]
            return _LoopServer(config, state, lambda: resolve(ready), pool, self.listener, spare)

        spares = [make(i, self.app, spare_cap, True) for i in range(1, self.loops)]
        app = self.app
        if spares:
            routes = LongRoutes(quick=self.limits.stall_after / 4)
            offload = Offload(self.app, routes, spares)
            app = offload
        serving = make(0, app, serving_cap, False)
        if spares:
            self.watch = StallWatch(serving, offload, spares, self.limits.stall_after)
        self.servers = [serving, *spares]
        for index, server in enumerate(self.servers):
            self._start_thread(index, server, stopped[index], resolve)

    def _start_thread(
        self,
        index: int,
        server: _LoopServer,
        stopped: asyncio.Future[None],
        resolve: Callable[[asyncio.Future[None]], None],
    ) -> None:
        nice = self.limits.spare_nice if server.spare else 0

        def run() -> None:
            try:
                if nice:
                    _lower_priority(nice)
                server.run(sockets=[] if server.spare else [self.listener.dup()])
            except BaseException as exc:
                self.errors.append(exc)
                _log.exception("event loop %d failed", index)
            finally:
                resolve(stopped)

        name = f"atoll-http-spare-{index}" if server.spare else "atoll-http-0"
        threading.Thread(target=run, name=name, daemon=True).start()

    def _install_signals(self, loop: asyncio.AbstractEventLoop) -> list[signal.Signals]:
        if threading.current_thread() is not threading.main_thread():
            return []

        def on_signal() -> None:
            if self.stop.is_set():
                self.forced.set()
            self.stop.set()

        sigs = [signal.SIGINT, signal.SIGTERM]
        for sig in sigs:
            loop.add_signal_handler(sig, on_signal)
        return sigs

    async def _stop_loops(self, stopped: list[asyncio.Future[None]]) -> bool:
        """Ask every loop to stop and wait for them; True if all stopped.

        The serving loop first: until its requests end, they may still run on
        spares. The spares follow when it has stopped (or the time is up).
        """
        self.stop.set()
        if self.watch is not None:
            self.watch.stop()
            _log.info("stall watch: %s", self.watch.summary())
        deadline = asyncio.get_running_loop().time() + self.shutdown_timeout
        for wave in (self.servers[:1], self.servers[1:]):
            for server in wave:
                server.exit()
            waiting = [stopped[self.servers.index(s)] for s in wave]
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(deadline):
                    await _first(asyncio.gather(*waiting), self.forced.wait())
        if all(f.done() for f in stopped):
            return True
        for server in self.servers:
            server.exit(force=True)  # the loop cancels its requests and ends
        if not self.forced.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await _first(asyncio.gather(*stopped), self.forced.wait())
        busy = sum(not f.done() for f in stopped)
        if busy:
            _log.warning("%d event loop(s) still busy in a call at shutdown; not waiting", busy)
        return busy == 0


def _lower_priority(nice: int) -> None:
    """Lower the calling thread's CPU priority by ``nice`` (Linux: nice is per thread)."""
    try:
        tid = threading.get_native_id()
        now = os.getpriority(os.PRIO_PROCESS, tid)
        os.setpriority(os.PRIO_PROCESS, tid, min(19, now + nice))
    except OSError as exc:  # not Linux, or a sandbox that forbids it: serve anyway
        _log.warning("could not lower a spare loop's priority: %s", exc)


def _set_done(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


async def _first(*aws: Awaitable[Any]) -> int:
    """Wait until one of ``aws`` is done and return its index.

    Coroutines are wrapped in tasks that are cancelled on return; futures
    belong to the caller and are left alone.
    """
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for a, t in zip(aws, tasks, strict=True):
            if t is not a:
                t.cancel()
    return next(i for i, t in enumerate(tasks) if t in done)
