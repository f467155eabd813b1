"""What the server does about a stalled serving loop: atoll.http.stalls.

The end-to-end tests serve ``_server_app.py`` (its answers name the thread that
served them in ``x-thread``) and stall the serving loop with a wasm spin; they
assert which thread answered, never how fast. :class:`LongRoutes` is tested
directly.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import httpx
import pytest

from atoll.http.protocol import ServerLimits
from atoll.http.server import _LoopServer
from atoll.http.stalls import (
    BEAT_INTERVAL,
    CAPACITY,
    HOSTS,
    PATHS_PER_HOST,
    QUICK_RUNS,
    LongRoutes,
    Offload,
    StallWatch,
    Steps,
    request_scope,
)
from tests.http.test_server import Running, Spin, start

SERVING = "atoll-http-0"
SPARE = "atoll-http-spare-"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Running]:
    running = start(tmp_path)
    yield running
    if running.proc.poll() is None:
        running.proc.kill()
    running.proc.communicate()


def thread(url: str, path: str = "/hello", **headers: str) -> str:
    """The thread that answered ``path`` on a new connection."""
    response = httpx.get(url + path, headers={"connection": "close", **headers}, timeout=30)
    assert response.status_code == 200
    return response.headers["x-thread"]


def mark_long(url: str, path: str = "/spin?ms=300", **headers: str) -> None:
    """Stall the serving loop with ``path`` once: its route is marked long.

    A spare that accepts for a stall of the serving loop (a loaded machine can
    make one) serves the connection itself and marks nothing: then try again.
    """
    served = [thread(url, path, **headers)]
    while served[-1] != SERVING and len(served) < 3:
        served.append(thread(url, path, **headers))
    assert served[-1] == SERVING, served


# -- while the serving loop is stuck --------------------------------------------------------------


def test_the_serving_loop_serves_everything_while_healthy(tmp_path: Path) -> None:
    # Healthy means beating within stall_after. At the default (10 ms; 40 ms for a
    # thread that only waits for a CPU) a loaded machine's scheduler alone can stall
    # the loop, and then a spare rightly takes a connection. With 1 s (4 s) of room,
    # no request here stalls it: none may be answered by a spare, nor offloaded.
    running = start(tmp_path, stall_after=1.0)
    try:
        for _ in range(3):
            thread(running.url)  # first requests: imports and first calls
        assert {thread(running.url) for _ in range(20)} == {SERVING}
        assert {thread(running.url, "/spin?ms=0") for _ in range(5)} == {SERVING}
    finally:
        running.proc.kill()
        running.proc.communicate()


def test_a_spare_answers_new_connections_while_the_serving_loop_spins(server: Running) -> None:
    spin = Spin.running(server, 2000)
    assert thread(server.url).startswith(SPARE)
    assert not spin.done.is_set(), "/hello had to wait for the wasm spin"
    assert spin.result().headers["x-thread"] == SERVING


def test_a_route_that_stalled_the_loop_runs_on_a_spare_from_then_on(server: Running) -> None:
    mark_long(server.url)
    assert thread(server.url, "/spin?ms=300").startswith(SPARE)
    assert thread(server.url, "/spin?ms=0").startswith(SPARE)  # the query is not the route
    assert thread(server.url) == SERVING  # other routes stay inline


def test_an_offloaded_request_leaves_the_serving_loop_free(server: Running) -> None:
    mark_long(server.url)
    with httpx.Client(base_url=server.url, timeout=30) as keep_alive:
        assert keep_alive.get("/hello").headers["x-thread"] == SERVING
        spin = Spin.running(server, 2000)  # offloaded: runs on a spare
        # The same keep-alive connection, on the serving loop, is answered meanwhile.
        assert keep_alive.get("/hello").headers["x-thread"] == SERVING
        assert not spin.done.is_set()
    response = spin.result()
    assert (response.text, response.headers["x-thread"][: len(SPARE)]) == ("spun 2000", SPARE)


def test_a_marked_route_comes_back_inline_after_quick_runs(server: Running) -> None:
    mark_long(server.url)
    served = [thread(server.url, "/spin?ms=0") for _ in range(QUICK_RUNS * 3)]
    assert served[0].startswith(SPARE)
    assert SERVING in served, served
    back = served.index(SERVING)
    assert all(name.startswith(SPARE) for name in served[:back])
    assert served[back:] == [SERVING] * (len(served) - back)  # and it stays inline


def test_a_host_with_many_slow_paths_is_marked_whole(server: Running) -> None:
    for i in range(PATHS_PER_HOST + 1):
        mark_long(server.url, f"/spin/{i}?ms=150")
    assert thread(server.url, "/spin/new?ms=0").startswith(SPARE)
    assert thread(server.url).startswith(SPARE)  # every path of that host
    assert thread(server.url, "/spin/new?ms=0", host="other.test") == SERVING


def test_connections_a_spare_took_are_sent_home_after_the_stall(server: Running) -> None:
    spin = Spin.running(server, 1500)
    with socket.create_connection((server.host, server.port), timeout=20) as sock:
        request = b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n"
        sock.sendall(request)
        first = _response(sock)
        assert b"x-thread: " + SPARE.encode() in first
        assert b"connection: close" not in first  # kept alive during the stall
        spin.result()  # the serving loop is healthy again
        time.sleep(0.1)  # the watch has seen its heartbeat
        sock.sendall(request)
        second = _response(sock)
        assert b"x-thread: " + SPARE.encode() in second
        assert b"connection: close" in second
        assert sock.recv(1024) == b""  # closed: the client reconnects...
    assert thread(server.url) == SERVING  # ...to the serving loop


def _response(sock: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"hello"):
        chunk = sock.recv(65536)
        assert chunk, f"closed after {data!r}"
        data += chunk
    return data.lower()


def test_spare_threads_run_at_the_configured_lower_priority(server: Running) -> None:
    nice = ServerLimits().spare_nice
    assert nice > 0
    values = [_nice(stat) for stat in Path(f"/proc/{server.proc.pid}/task").glob("*/stat")]
    assert values.count(nice) == 3  # loops=4: three spares; every other thread keeps 0
    assert set(values) == {0, nice}


def test_the_watch_runs_on_its_native_thread(server: Running) -> None:
    names = [
        comm.read_text().strip() for comm in Path(f"/proc/{server.proc.pid}/task").glob("*/comm")
    ]
    assert names.count("atoll-watch") == 1


def _nice(stat: Path) -> int:
    return int(stat.read_text().rpartition(")")[2].split()[16])  # field 19 of proc(5)


def test_shutdown_waits_for_a_request_running_on_a_spare(server: Running) -> None:
    mark_long(server.url)
    spin = Spin.running(server, 1500)
    server.proc.send_signal(signal.SIGTERM)
    response = spin.result()
    assert (response.status_code, response.text) == (200, "spun 1500")
    assert response.headers["x-thread"].startswith(SPARE)
    assert server.wait(10) == 0
    assert server.lifespan() == ["startup", "shutdown"]


def test_one_loop_has_no_spares(tmp_path: Path) -> None:
    running = start(tmp_path, loops=1)
    try:
        stats = Path(f"/proc/{running.proc.pid}/task").glob("*/stat")
        assert {_nice(stat) for stat in stats} == {0}
        spin = Spin.running(running, 800)
        assert thread(running.url) == SERVING  # (once the spin is over: no one else accepts)
        assert spin.result().headers["x-thread"] == SERVING
        assert thread(running.url, "/spin?ms=0") == SERVING  # nothing is offloaded
    finally:
        running.proc.kill()
        running.proc.communicate()


# -- what an offloaded request's run counts ---------------------------------------------------------


def _burn(seconds: float) -> None:
    """Use ``seconds`` of this thread's CPU (whatever the machine's load: CPU, not wall)."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def _offloaded(app: Any) -> Any:
    """``_LoopServer.run_offloaded`` of a spare for ``app``, on the running loop."""
    spare = SimpleNamespace(server_state=SimpleNamespace(tasks=set()))
    return _LoopServer.run_offloaded(spare, app, scope("/x"), _never, _never)  # type: ignore[arg-type]


def test_an_offloaded_run_counts_its_own_steps_not_its_neighbours() -> None:
    # The regression: a spare running many requests at once (32 wrk connections on a JS
    # route marked by its isolate's first build) counted, for each, the thread's CPU over
    # the whole request, so other requests' work made every run "slow" and the route never
    # came back to the serving loop. A request that only waits while another one burns
    # 50 ms on the same loop is quick; the one that burns is not.
    async def main() -> tuple[float, float]:
        other_ran = asyncio.Event()

        async def waits(scope: Any, receive: Any, send: Any) -> None:
            await asyncio.sleep(0)
            await other_ran.wait()
            await asyncio.sleep(0)

        async def burns(scope: Any, receive: Any, send: Any) -> None:
            await asyncio.sleep(0)
            _burn(0.05)
            other_ran.set()

        quick, slow = await asyncio.gather(_offloaded(waits), _offloaded(burns))
        return quick, slow

    quick, slow = asyncio.run(main())
    assert slow >= 0.05
    routes = LongRoutes(quick=0.025)
    routes.mark(scope("/x"))
    for _ in range(QUICK_RUNS):
        routes.ran((b"a.test", "/x"), quick)
    assert routes.lookup(scope("/x")) is None, quick  # its route comes back inline


def test_steps_pass_results_errors_and_cancellation_through() -> None:
    async def main() -> None:
        async def answer() -> int:
            await asyncio.sleep(0)
            return 42

        async def fails() -> None:
            await asyncio.sleep(0)
            raise ValueError("boom")

        cancelled = asyncio.Event()

        async def forever() -> None:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                cancelled.set()
                raise

        assert await Steps(answer()) == 42
        with pytest.raises(ValueError, match="boom"):
            await Steps(fails())
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        loop.call_soon(future.set_result, "a future")
        assert await Steps(future) == "a future"  # an awaitable that is not a coroutine
        task = asyncio.ensure_future(Steps(forever()))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert cancelled.is_set()

    asyncio.run(main())


# -- what the serving loop pays per request, and how the watch finds a stalled one -----------------


def test_a_request_of_no_marked_route_gets_the_apps_own_awaitable() -> None:
    # No coroutine of Offload's around the app's (one more frame at every resumption
    # of every request), nothing recorded: the app is called and its result returned.
    returned = object()
    calls: list[Any] = []

    def app(scope: Any, receive: Any, send: Any) -> Any:
        calls.append(scope)
        return returned

    routes = LongRoutes(quick=0.005)
    routes.mark(scope("/slow"))
    spare = SimpleNamespace(offloaded=0, loop=None)  # never used: nothing runs on it
    offload = Offload(app, routes, [spare])
    request = scope("/fast")
    assert offload(request, _never, _never) is returned
    assert calls == [request]
    marked = offload(scope("/slow"), _never, _never)  # a marked route: the offload's coroutine
    assert marked is not returned
    cast(Coroutine[Any, Any, None], marked).close()


def test_the_watch_finds_the_scope_of_the_request_a_task_runs_in_its_frames() -> None:
    found: dict[str, Any] = {}
    request = scope("/slow")

    async def inner() -> None:
        found["own"] = request_scope(_current(), sys._getframe())

    async def app(scope: Any, receive: Any, send: Any) -> None:
        derived = {**scope, "path": "/other"}  # an inner frame's scope: the outer one counts
        await deeper(derived)

    async def deeper(scope: Any) -> None:
        await inner()

    async def not_a_request() -> None:
        found["none"] = request_scope(_current(), sys._getframe())
        found["other task"] = request_scope(found["request task"], sys._getframe())

    async def named_otherwise(s: Any, receive: Any, send: Any) -> None:
        found["cycle's"] = request_scope(_current(), sys._getframe())

    class Cycle:  # as the connection's request cycle: the task runs its method
        def __init__(self, scope: Any) -> None:
            self.scope = scope

        async def run(self, app: Any) -> None:
            await app(self.scope, _never, _never)

    async def main() -> None:
        async def serve() -> None:
            await app(request, _never, _never)

        found["request task"] = asyncio.create_task(serve())
        await found["request task"]
        await asyncio.create_task(not_a_request())
        await asyncio.create_task(Cycle(request).run(named_otherwise))

    asyncio.run(main())
    assert found["own"] is request
    assert found["none"] is None  # a task with no HTTP scope: a stall outside a request
    assert found["other task"] is None  # the frames run another task than the one named
    assert found["cycle's"] is request  # an app whose argument is not called scope


def _current() -> asyncio.Task[Any]:
    task = asyncio.current_task()
    assert task is not None
    return task


# -- LongRoutes -------------------------------------------------------------------------------


def scope(path: str, host: bytes = b"a.test") -> dict[str, object]:
    return {"type": "http", "path": path, "headers": [(b"host", host)]}


def test_a_mark_covers_its_host_and_path_only() -> None:
    routes = LongRoutes(quick=0.005)
    routes.mark(scope("/slow"))
    assert routes.lookup(scope("/slow")) == (b"a.test", "/slow")
    assert routes.lookup(scope("/slow", b"A.TEST")) == (b"a.test", "/slow")
    assert routes.lookup(scope("/fast")) is None
    assert routes.lookup(scope("/slow", b"b.test")) is None


def test_quick_runs_in_a_row_drop_a_mark_and_a_slow_one_starts_over() -> None:
    routes = LongRoutes(quick=0.005)
    routes.mark(scope("/slow"))
    key = routes.lookup(scope("/slow"))
    assert key is not None
    for _ in range(QUICK_RUNS - 1):
        routes.ran(key, 0.001)
    routes.ran(key, 0.050)  # slow again: the count starts over
    for _ in range(QUICK_RUNS - 1):
        routes.ran(key, 0.001)
    assert routes.lookup(scope("/slow")) == key
    routes.ran(key, 0.001)
    assert routes.lookup(scope("/slow")) is None


def test_many_slow_paths_mark_the_host_and_many_hosts_mark_everything() -> None:
    routes = LongRoutes(quick=0.005)
    for i in range(PATHS_PER_HOST):
        routes.mark(scope(f"/p{i}"))
    assert routes.lookup(scope("/other")) is None
    routes.mark(scope("/one-more"))
    assert routes.lookup(scope("/other")) == (b"a.test",)
    assert routes.lookup(scope("/other", b"b.test")) is None
    for h in range(HOSTS):
        routes.mark(scope("/x", f"h{h}.test".encode()))
    assert routes.lookup(scope("/anything", b"new.test")) == ()
    for _ in range(QUICK_RUNS * PATHS_PER_HOST):
        routes.ran((), 0.0)
    assert routes.lookup(scope("/anything", b"new.test")) is None


def test_marks_are_bounded() -> None:
    routes = LongRoutes(quick=0.005)
    for i in range(CAPACITY * 2):
        routes.mark(scope("/x", f"h{i}.test".encode()))
    assert len(routes.marked) <= CAPACITY
    assert routes.lookup(scope("/x", f"h{CAPACITY * 2 - 1}.test".encode())) is not None


def test_a_marked_path_is_logged_with_its_control_characters_escaped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    routes = LongRoutes(quick=0.005)
    with caplog.at_level("INFO", logger="atoll.http"):
        routes.mark(scope("/a\nforged line"))
    assert "a.test/a\\nforged line stalled the event loop" in caplog.text
    assert "\nforged" not in caplog.text


# -- StallWatch in process: the native watch and the Python fallback alike ------------------------


class _Loop:
    """An event loop running in its own thread (a serving loop or a spare for the watch)."""

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run)
        self.thread.start()
        self.ready.wait()

    def _run(self) -> None:
        assert self.loop is not None
        self.loop.call_soon(self.ready.set)
        self.loop.run_forever()

    def close(self) -> None:
        assert self.loop is not None
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


class _Serving(_Loop):
    def __init__(self) -> None:
        self.beats = 0
        self.last_beat = time.monotonic()
        self.cpu_clock: int | None = None
        self.thread_id: int | None = None
        self.on_beat: Callable[[], None] | None = None
        super().__init__()

    def _run(self) -> None:
        self.thread_id = threading.get_ident()
        self.cpu_clock = time.pthread_getcpuclockid(self.thread_id)
        assert self.loop is not None
        self.loop.call_soon(self._beat)
        super()._run()

    def _beat(self) -> None:
        self.beats += 1
        self.last_beat = time.monotonic()
        if self.on_beat is not None:
            self.on_beat()
        assert self.loop is not None
        self.loop.call_later(BEAT_INTERVAL, self._beat)

    def cpu_time(self) -> float:
        assert self.cpu_clock is not None
        return time.clock_gettime(self.cpu_clock)


class _Spare(_Loop):
    offloaded = 0

    def __init__(self) -> None:
        self.accepts: list[bool] = []
        super().__init__()

    def accept(self, on: bool) -> None:
        self.accepts.append(on)

    def run_offloaded(self, app: Any, scope: Any, receive: Any, send: Any) -> Any:
        raise AssertionError("nothing is offloaded here")


@pytest.mark.parametrize("native", [True, False], ids=["native", "python"])
def test_the_watch_hands_a_stall_to_a_spare_and_marks_the_request(native: bool) -> None:
    serving, spare = _Serving(), _Spare()
    stop_spinning = threading.Event()

    async def spin(scope: Any, receive: Any, send: Any) -> None:
        while not stop_spinning.is_set():  # busy on the serving loop until the watch acted
            pass

    routes = LongRoutes(quick=0.005)
    offload = Offload(spin, routes, [spare])
    watch = StallWatch(serving, offload, [spare], stall_after=0.010, native=native)
    assert watch.native is native

    async def control() -> None:
        watch.start()
        try:
            assert serving.loop is not None
            request = asyncio.run_coroutine_threadsafe(
                _awaited(offload(scope("/slow"), _never, _never)), serving.loop
            )
            await _until(lambda: bool(spare.accepts) and watch._marked is not None)
            stop_spinning.set()
            await asyncio.wrap_future(request)
            await _until(lambda: not spare.accepts[-1])  # beating again: the spare stops
        finally:
            watch.stop()

    try:
        asyncio.run(asyncio.wait_for(control(), 30))
        assert spare.accepts == [True, False]
        assert watch.stalls == 1
        assert routes.marks == 1
        assert watch.summary() == (
            "1 stall(s) of the serving loop, 1 route mark(s), 0 request(s) run on a spare"
        )
        assert serving.loop is not None
        asyncio.run_coroutine_threadsafe(asyncio.sleep(0), serving.loop).result(5)
        assert routes.lookup(scope("/slow")) == (b"a.test", "/slow")
    finally:
        stop_spinning.set()
        serving.close()
        spare.close()


async def _awaited(awaitable: Awaitable[None]) -> None:
    await awaitable


async def _until(check: Callable[[], bool]) -> None:
    while True:
        if check():
            return
        await asyncio.sleep(0.005)


async def _never(*args: Any) -> Any:
    raise AssertionError("not called")
