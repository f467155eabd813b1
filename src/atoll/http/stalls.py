"""What the serving loop does about stalls: a watch, long requests, and the spares that take over.

``http/server.py`` serves every connection from one event loop (the *serving
loop*) and keeps ``loops - 1`` *spare loops* idle in their own threads. A
synchronous wasm call blocks the loop that makes it for up to its CPU limit;
this module keeps such a call from stopping the node:

- :class:`StallWatch` checks every :data:`WATCH_INTERVAL`, on a native thread
  (``atoll-watch``, from ``atoll.runtime._native``) that takes the GIL only
  when the beat is late, so a healthy serving loop never shares the GIL with
  it; without the extension, on the control loop (``serve``'s own thread).
  The serving loop beats every :data:`BEAT_INTERVAL` (a timer callback). When it has not beaten for
  :attr:`~atoll.http.protocol.ServerLimits.stall_after` and its thread was busy
  on a CPU for half of that (else for :data:`STARVED` times as long: a thread
  that only waits for a CPU on a loaded machine is not stuck), a spare starts
  accepting on the listening socket, until the serving loop beats again.
- The same watch reads the serving loop's current task
  (:func:`asyncio.current_task` with that loop, from the watch's thread: a dict
  lookup under the GIL in CPython 3.11-3.13, a scan of the thread states in
  3.14; made only while the loop is stalled). When one task is current at two
  stalled checks in a row with no beat between them, one step of it has run for
  at least a check interval inside a stalled iteration (a new iteration would
  have run the due beat first). That task's request is then marked long in
  :class:`LongRoutes`: its scope is read from the serving thread's frames
  (:func:`sys._current_frames`, :func:`request_scope`), so that nothing is
  recorded per request for the rare request that stalls.
- :class:`Offload` is the ASGI app the serving loop calls. It runs a request
  whose route is marked long on a spare loop: the app coroutine runs there,
  its ``receive`` and ``send`` are proxied back to the serving loop, which owns
  the connection. The hand-off costs a few thread hops (tens of µs each); short
  requests never pay it.

A route is its request's ``Host`` header and path (no query). Marks are
bounded (:data:`CAPACITY`, oldest dropped first) and escalate: a host with
more than :data:`PATHS_PER_HOST` marked paths is marked whole, and more than
:data:`HOSTS` marked hosts mark every request, so that a client varying the
path or host stalls the serving loop a bounded number of times. A mark is
dropped when its offloaded requests ran quickly (no step of one, from an
``await`` to the next, used a quarter of ``stall_after`` of the spare thread's
CPU: :class:`Steps`) :data:`QUICK_RUNS` times in a row (:data:`QUICK_RUNS`
times :data:`PATHS_PER_HOST` for a host or everything). A step is what holds a
loop; the thread's CPU over the whole request is not evidence, as it counts
what the spare's other requests ran while this one awaited (with a few dozen
concurrent requests on a spare, a request of 0.1 ms counted ~5-10 ms and its
route was never dropped).

:class:`LongRoutes` and :class:`Offload` are used on the serving loop only
(the watch marks through ``call_soon_threadsafe``); the watch's state is its
checks' (one thread at a time: the native thread, or the control loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine, Generator, Sequence
from types import FrameType
from typing import Any, Protocol, TypeAlias, cast

from atoll.http.asgi import ASGIApp, Receive, Scope, Send

__all__ = [
    "BEAT_INTERVAL",
    "CAPACITY",
    "HOSTS",
    "PATHS_PER_HOST",
    "QUICK_RUNS",
    "STARVED",
    "WATCH_INTERVAL",
    "LongRoutes",
    "Offload",
    "Serving",
    "Spare",
    "StallWatch",
    "Steps",
    "request_scope",
]

Key: TypeAlias = tuple[bytes, str] | tuple[bytes] | tuple[()]
"""A marked route: ``(host, path)``, a whole host ``(host,)``, or every request ``()``."""

BEAT_INTERVAL = 0.005
"""Seconds between two heartbeats of the serving loop."""
WATCH_INTERVAL = 0.005
"""Seconds between two checks of the watch."""
CAPACITY = 1024
"""Marked routes kept; past it the least recently marked is dropped."""
PATHS_PER_HOST = 8
"""Marked paths of one host past which the whole host is marked."""
HOSTS = 32
"""Hosts with marked paths past which every request is marked."""
QUICK_RUNS = 8
"""Quick runs in a row after which a route's mark is dropped."""
STARVED = 4
"""A serving loop without a beat for ``stall_after`` counts as stalled if its
thread used the CPU for at least half that time (it is busy: in wasm, in
Python); one that did not (it waits for a CPU on a loaded machine, or blocks in
a system call) counts as stalled after this many times ``stall_after``."""

try:
    from atoll.runtime._native import Watch as NativeWatch
except ImportError:  # pragma: no cover - a source tree without its build: the Python watch
    NativeWatch = None  # type: ignore[assignment,misc]

_log = logging.getLogger("atoll.http")


class Serving(Protocol):
    """The serving loop, as the watch sees it."""

    loop: asyncio.AbstractEventLoop | None
    thread_id: int | None
    """Its thread's :func:`threading.get_ident`, once it runs."""
    beats: int
    last_beat: float
    cpu_clock: int | None
    """Its thread's CPU clock id (:func:`time.pthread_getcpuclockid`), once it runs."""
    on_beat: Callable[[], None] | None
    """Called at each beat, on the serving loop (set by the native watch)."""

    def cpu_time(self) -> float:
        """CPU seconds its thread has used (readable from any thread)."""


class Spare(Protocol):
    """A spare loop, as the serving loop and the watch see it."""

    loop: asyncio.AbstractEventLoop | None
    offloaded: int
    """Requests offloaded to it and not finished (counted on the serving loop)."""

    def accept(self, on: bool) -> None:
        """Start or stop accepting new connections (called on the spare's own loop)."""

    def run_offloaded(
        self, app: ASGIApp, scope: Scope, receive: Receive, send: Send
    ) -> Coroutine[Any, Any, float]:
        """Run ``app`` for one request on the spare's loop; the most CPU seconds one step
        of it used (:class:`Steps`)."""


def _host(scope: Scope) -> bytes:
    for name, value in scope["headers"]:
        if name == b"host":
            return bytes(value).lower()
    return b""


class LongRoutes:
    """Routes whose requests stalled the serving loop (see the module docstring).

    Created once per :func:`~atoll.http.server.serve` call; read for every
    request and changed only on the serving loop.
    """

    def __init__(
        self, quick: float, quick_runs: int = QUICK_RUNS, capacity: int = CAPACITY
    ) -> None:
        self.quick = quick
        """A run whose longest step used under this many CPU seconds counts as quick."""
        self.quick_runs = quick_runs
        self.capacity = capacity
        self.marked: dict[Key, int] = {}  # key -> quick runs in a row; order = least recent first
        self._paths: dict[bytes, int] = {}  # host -> its marked (host, path) keys
        self.marks = 0
        """Routes marked so far (a mark renewed counts again); read for the summary at shutdown."""

    def lookup(self, scope: Scope) -> Key | None:
        """The mark that covers this request, if any (``self.marked`` is not empty)."""
        marked = self.marked
        if () in marked:
            return ()
        host = _host(scope)
        if (host,) in marked:
            return (host,)
        key = (host, scope["path"])
        return key if key in marked else None

    def mark(self, scope: Scope) -> None:
        """Mark this request's route long (escalating as the module docstring says)."""
        host = _host(scope)
        key: Key = (host, scope["path"])
        self.marks += 1
        if key in self.marked:
            del self.marked[key]
            self.marked[key] = 0
            return
        self.marked[key] = 0
        paths = self._paths[host] = self._paths.get(host, 0) + 1
        _log.info("%s stalled the event loop: its requests run on a spare loop", _show(key))
        if paths > PATHS_PER_HOST and (host,) not in self.marked:
            self.marked[(host,)] = 0
            _log.info("host %r has %d slow paths: all its requests run on a spare", host, paths)
        if len(self._paths) > HOSTS and () not in self.marked:
            self.marked[()] = 0
            _log.info("over %d hosts have slow paths: every request runs on a spare", HOSTS)
        while len(self.marked) > self.capacity:
            self._drop(next(iter(self.marked)))

    def ran(self, key: Key, cpu: float) -> None:
        """An offloaded request under ``key`` finished; ``cpu``: its longest step's CPU seconds."""
        runs = self.marked.get(key)
        if runs is None:
            return
        if cpu >= self.quick:
            self.marked[key] = 0
        elif runs + 1 >= self.quick_runs * (1 if len(key) == 2 else PATHS_PER_HOST):
            self._drop(key)
        else:
            self.marked[key] = runs + 1

    def _drop(self, key: Key) -> None:
        del self.marked[key]
        if len(key) == 2:
            host = key[0]
            left = self._paths[host] - 1
            if left:
                self._paths[host] = left
            else:
                del self._paths[host]


def request_scope(task: asyncio.Task[Any], frame: FrameType | None) -> Scope | None:
    """The HTTP scope of the request ``task`` serves, if ``frame`` (a thread's innermost
    frame) runs that task's coroutine; else None (the thread runs something else).

    Read by the watch on a stalled serving loop (under the GIL, the serving thread
    blocked in a call): the outermost frame of the task with a local ``scope`` that is an
    HTTP scope, the one the server passed (ASGI apps take it so named); else the
    ``scope`` of the object whose method the task runs (the connection's request cycle,
    ``http/protocol.py``), for an app that names its argument otherwise.
    """
    top: FrameType | None = getattr(task.get_coro(), "cr_frame", None)
    found: Scope | None = None
    while frame is not None:
        code = frame.f_code
        if "scope" in code.co_varnames or "scope" in code.co_cellvars:
            found = _http(frame.f_locals.get("scope")) or found
        if frame is top:
            if found is None and "self" in code.co_varnames:
                own = top.f_locals.get("self")
                found = _http(getattr(own, "scope", None))
            return found
        frame = frame.f_back
    return None


def _http(value: object) -> Scope | None:
    if isinstance(value, dict) and value.get("type") == "http":
        return cast(Scope, value)
    return None


def _show(key: Key) -> str:
    """``host/path`` for a log line, control characters escaped (a path is the client's)."""
    host = key[0].decode("latin-1") if key else "*"
    path = key[1] if len(key) == 2 else "/*"
    return repr(host + path)[1:-1]


class Steps:
    """Awaits a coroutine and keeps the most thread CPU one of its steps used (``longest``).

    A step runs from one suspension of the coroutine (an ``await`` that waits)
    to the next, as the event loop runs it; what other tasks of the loop run
    meanwhile is not counted. Used by a spare for each request it runs
    offloaded (``await Steps(app(...))``); it adds two clock reads a step.
    """

    __slots__ = ("coro", "longest")

    def __init__(self, awaitable: Awaitable[Any]) -> None:
        # An ASGI app may return any awaitable: one that is not a coroutine is awaited in one.
        self.coro: Coroutine[Any, Any, Any] = (
            awaitable if isinstance(awaitable, Coroutine) else _wait(awaitable)
        )
        self.longest = 0.0

    def __await__(self) -> Generator[Any, Any, Any]:
        coro = self.coro
        clock = time.thread_time
        value: Any = None
        error: BaseException | None = None
        while True:
            start = clock()
            try:
                yielded = coro.send(value) if error is None else coro.throw(error)
            except StopIteration as stop:
                self.longest = max(self.longest, clock() - start)
                return stop.value
            except BaseException:
                self.longest = max(self.longest, clock() - start)
                raise
            self.longest = max(self.longest, clock() - start)
            try:
                value, error = (yield yielded), None
            except BaseException as exc:  # thrown in by the task (cancelled) or close()
                value, error = None, exc


async def _wait(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


class _Across:
    """``receive`` or ``send`` of the serving loop, awaited from a spare loop."""

    __slots__ = ("fn", "home")

    def __init__(self, fn: Callable[..., Awaitable[Any]], home: asyncio.AbstractEventLoop) -> None:
        self.fn = fn
        self.home = home

    async def __call__(self, *args: Any) -> Any:
        # uvicorn's receive and send are coroutine functions (an ASGI server's may be any awaitable).
        coro = cast(Coroutine[Any, Any, Any], self.fn(*args))
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.home))


class Offload:
    """The ASGI app the serving loop calls: ``app`` inline, or on a spare for long routes.

    Called for every request the serving loop serves. A request of no marked
    route costs one truth test here: ``app``'s own awaitable is returned, not
    wrapped in another coroutine (one more frame in every resumption of the
    request), and nothing is recorded (the watch finds a stalled request's
    scope in the serving thread's frames: :func:`request_scope`).
    """

    def __init__(self, app: ASGIApp, routes: LongRoutes, spares: Sequence[Spare]) -> None:
        self.app = app
        self.routes = routes
        self.spares = spares
        self.runs = 0
        """Requests run on a spare so far."""
        self._next = 0

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        if self.routes.marked:
            key = self.routes.lookup(scope)
            if key is not None:
                return self._offload(key, scope, receive, send)
        return self.app(scope, receive, send)

    async def _offload(self, key: Key, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the request on a spare; here if none runs any more (shutdown)."""
        spare = self._pick()
        home = asyncio.get_running_loop()
        coro = spare.run_offloaded(self.app, scope, _Across(receive, home), _Across(send, home))
        try:
            if spare.loop is None:
                raise RuntimeError("not started")
            future = asyncio.run_coroutine_threadsafe(coro, spare.loop)
        except RuntimeError:  # its loop is closed
            coro.close()
            await self.app(scope, receive, send)
            return
        spare.offloaded += 1
        self.runs += 1
        try:
            cpu = await asyncio.wrap_future(future)
        finally:
            spare.offloaded -= 1
        self.routes.ran(key, cpu)

    def _pick(self) -> Spare:
        """The spare with the fewest offloaded requests; ties taken in turn."""
        spares = self.spares
        count = len(spares)
        start = self._next
        self._next = (start + 1) % count
        best = spares[start]
        for i in range(1, count):
            spare = spares[(start + i) % count]
            if spare.offloaded < best.offloaded:
                best = spare
        return best


class StallWatch:
    """Watches the serving loop from the control loop (see the module docstring).

    :meth:`start` once when every loop runs; :meth:`stop` once at shutdown.
    With the native extension (``native``, the default when it is built) the
    checks run on a native thread that takes the GIL only for a late beat
    (:meth:`_late`, :meth:`_beaten` run there); the serving loop's heartbeat
    calls its ``beat`` (set as ``serving.on_beat`` here). Without it each check
    is a timer on the control loop and costs it a GIL acquisition.
    """

    def __init__(
        self,
        serving: Serving,
        offload: Offload,
        spares: Sequence[Spare],
        stall_after: float,
        native: bool = True,
    ) -> None:
        self.serving = serving
        self.offload = offload
        self.spares = spares
        self.stall_after = stall_after
        self.stalls = 0
        """Stalls seen (each one a spare accepted for the serving loop)."""
        self.helper: Spare | None = None  # the spare accepting now
        self._beats = -1  # the serving loop's beat count at the last check
        self._cpu0: float | None = None  # its CPU time at the first check without a beat
        self._seen: tuple[asyncio.Task[Any] | None, int] | None = None
        self._marked: asyncio.Task[Any] | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._native: NativeWatch | None = None
        if native and NativeWatch is not None:
            self._native = NativeWatch(
                round(WATCH_INTERVAL * 1e9),
                round(stall_after * 1e9),
                STARVED,
                self._late,
                self._beaten,
            )
            serving.on_beat = self._native.beat

    @property
    def native(self) -> bool:
        """True if the checks run on the native thread."""
        return self._native is not None

    def start(self) -> None:
        """Start checking (on the control loop, once every loop runs)."""
        if self._native is not None:
            clock = self.serving.cpu_clock
            self._native.start(-1 if clock is None else clock)
            return
        self._loop = asyncio.get_running_loop()
        self._handle = self._loop.call_later(WATCH_INTERVAL, self._check)

    def stop(self) -> None:
        """Stop watching; a spare that accepts for the serving loop stops.

        The native thread is joined first: no check runs after this returns.
        """
        if self._native is not None:
            self._native.stop()
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._release()

    def summary(self) -> str:
        """What the watch saw and did so far, for a log line: stalls, marks, offloaded runs."""
        return (
            f"{self.stalls} stall(s) of the serving loop, {self.offload.routes.marks} route "
            f"mark(s), {self.offload.runs} request(s) run on a spare"
        )

    def _check(self) -> None:
        """One check of the Python watch (the native one makes the same in C)."""
        assert self._loop is not None
        self._handle = self._loop.call_later(WATCH_INTERVAL, self._check)
        serving = self.serving
        beats = serving.beats
        if beats != self._beats:  # it beat since the last check
            self._beats = beats
            self._cpu0 = None
            self._beaten()
            return
        if self._cpu0 is None:
            self._cpu0 = serving.cpu_time()
        silent = time.monotonic() - serving.last_beat
        if silent < self.stall_after:
            return
        # A loop that is busy (in wasm, in Python) stalls; one that is only waiting for a
        # CPU on a loaded machine does not, unless it waits long: then a spare helps too.
        busy = serving.cpu_time() - self._cpu0
        if busy < self.stall_after / 2 and silent < STARVED * self.stall_after:
            return
        self._late(beats)

    def _beaten(self) -> None:
        """The serving loop beat again after a late check (the native watch calls it once)."""
        self._seen = None
        self._release()

    def _late(self, beats: int) -> None:
        """A check found the serving loop stalled (``beats``: its beat count, unchanged)."""
        serving = self.serving
        if self.helper is None:
            self._help()
        task = asyncio.current_task(serving.loop)
        seen = (task, beats)
        if task is not None and seen == self._seen and task is not self._marked:
            frame = sys._current_frames().get(serving.thread_id or 0)
            scope = request_scope(task, frame)
            if scope is not None and serving.loop is not None:
                self._marked = task
                with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                    serving.loop.call_soon_threadsafe(self.offload.routes.mark, scope)
        self._seen = seen

    def _help(self) -> None:
        spare = min(self.spares, key=lambda s: s.offloaded)
        if spare.loop is None:
            return
        self.stalls += 1
        self.helper = spare
        with contextlib.suppress(RuntimeError):
            spare.loop.call_soon_threadsafe(spare.accept, True)

    def _release(self) -> None:
        spare, self.helper = self.helper, None
        if spare is not None and spare.loop is not None:
            with contextlib.suppress(RuntimeError):
                spare.loop.call_soon_threadsafe(spare.accept, False)
