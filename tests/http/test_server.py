"""End-to-end tests of atoll.http.server.serve over real sockets.

Each test starts ``_server_app.py`` (a raw ASGI app whose ``/spin?ms=N`` runs a
wasm infinite loop that an epoch deadline stops after N ms) in a subprocess,
reads the port its ``ready`` callback prints, and talks to it with httpx.
"""

from __future__ import annotations

import asyncio
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import uvicorn

from atoll.errors import AtollError, ConfigError
from atoll.http.protocol import ConnectionPool, ServerLimits
from atoll.http.server import Receive, Scope, Send, _LoopServer, serve

HERE = Path(__file__).resolve().parent
SRC = HERE.parents[1] / "src"


@dataclass
class Running:
    proc: subprocess.Popen[str]
    host: str
    port: int
    lifespan_log: Path
    url: str = field(init=False)

    def __post_init__(self) -> None:
        self.url = f"http://{self.host}:{self.port}"

    def lifespan(self) -> list[str]:
        return self.lifespan_log.read_text().split() if self.lifespan_log.exists() else []

    @property
    def spin_log(self) -> Path:
        return self.lifespan_log.with_name("spins.log")

    def spins(self) -> int:
        """How many /spin requests the app has started running."""
        return len(self.spin_log.read_text().splitlines()) if self.spin_log.exists() else 0

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout)


def start(
    tmp_path: Path, loops: int = 4, shutdown_timeout: float = 10.0, **limits: object
) -> Running:
    """Serve ``_server_app.py``; ``limits``: :class:`ServerLimits` fields to change."""
    log = tmp_path / "lifespan.log"
    env = {**os.environ, "ATOLL_TEST_LIFESPAN_LOG": str(log)}
    env["ATOLL_TEST_SPIN_LOG"] = str(log.with_name("spins.log"))
    env["ATOLL_TEST_LIMITS"] = json.dumps(limits)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH")]))
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "_server_app.py"), str(loops), str(shutdown_timeout)],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 30)
    line = proc.stdout.readline() if ready else ""
    if not line.startswith("READY "):
        proc.kill()
        proc.communicate()
        pytest.fail(f"server did not become ready: {line!r}")
    _, host, port = line.split()
    return Running(proc, host, int(port), log)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Running]:
    running = start(tmp_path)
    yield running
    if running.proc.poll() is None:
        running.proc.kill()
    running.proc.communicate()


class Spin:
    """A /spin request in a background thread, on its own connection."""

    def __init__(self, url: str, ms: int) -> None:
        self.response: httpx.Response | None = None
        self.error: BaseException | None = None
        self.done = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(url, ms))
        self._thread.start()

    def _run(self, url: str, ms: int) -> None:
        try:
            self.response = httpx.get(f"{url}/spin?ms={ms}", timeout=30)
        except BaseException as exc:
            self.error = exc
        finally:
            self.done.set()

    @classmethod
    def running(cls, server: Running, ms: int) -> Spin:
        """A /spin of ``ms`` in the background, returned once the app runs it (on a
        loaded machine the request can take a while to reach a loop: no fixed sleep)."""
        before = server.spins()
        spin = cls(server.url, ms)
        deadline = time.monotonic() + 30
        while server.spins() == before:
            assert not spin.done.is_set(), f"the spin ended before it started: {spin.error!r}"
            assert time.monotonic() < deadline, "the spin request never started"
            time.sleep(0.005)
        return spin

    def result(self) -> httpx.Response:
        self._thread.join(30)
        if self.error is not None:
            raise self.error
        assert self.response is not None
        return self.response


def test_ready_reports_the_port_picked_for_port_0(server: Running) -> None:
    assert server.host == "127.0.0.1"
    assert server.port != 0
    response = httpx.get(f"{server.url}/hello")
    assert (response.status_code, response.text) == (200, "hello")


def test_other_loops_answer_while_one_spins_in_wasm(server: Running) -> None:
    spin = Spin.running(server, 2000)
    for _ in range(10):
        # A new connection each time: a free loop accepts it.
        response = httpx.get(f"{server.url}/hello", headers={"connection": "close"})
        assert response.text == "hello"
    assert not spin.done.is_set(), "/hello had to wait for the wasm spin"
    assert spin.result().text == "spun 2000"


def test_sigterm_lets_the_request_in_flight_finish(server: Running) -> None:
    spin = Spin.running(server, 1500)
    server.proc.send_signal(signal.SIGTERM)
    response = spin.result()
    assert (response.status_code, response.text) == (200, "spun 1500")
    assert server.wait(10) == 0
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server.url}/hello")


def test_lifespan_runs_once_not_once_per_loop(server: Running) -> None:
    assert server.lifespan() == ["startup"]
    for _ in range(8):
        httpx.get(f"{server.url}/hello", headers={"connection": "close"})
    server.proc.send_signal(signal.SIGINT)
    assert server.wait(10) == 0
    assert server.lifespan() == ["startup", "shutdown"]


def test_second_signal_stops_waiting(server: Running) -> None:
    spin = Spin.running(server, 10_000)
    server.proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    t0 = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    assert server.wait(5) == 0
    assert time.monotonic() - t0 < 5
    assert server.lifespan() == ["startup"]  # shutdown skipped: a loop was still busy
    assert spin.done.wait(5)
    assert spin.error is not None  # the connection died with the process


def test_shutdown_timeout_bounds_the_wait(tmp_path: Path) -> None:
    running = start(tmp_path, shutdown_timeout=0.5)
    try:
        spin = Spin.running(running, 10_000)
        t0 = time.monotonic()
        running.proc.send_signal(signal.SIGTERM)
        assert running.wait(8) == 0
        assert time.monotonic() - t0 < 8
        assert spin.done.wait(5)
    finally:
        if running.proc.poll() is None:
            running.proc.kill()
        running.proc.communicate()


async def _never_called(scope: Scope, receive: Receive, send: Send) -> None:
    raise AssertionError("serve should have refused to start")


def test_loops_below_one_is_refused() -> None:
    with pytest.raises(ConfigError, match="loops must be at least 1"):
        serve(_never_called, port=0, loops=0)


def test_a_port_in_use_is_a_config_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=f"cannot listen on 127.0.0.1:{port}"):
            serve(_never_called, port=port)


class StateApp:
    """Lifespan puts a value in the state; /hello answers it and the serving thread's name."""

    def __init__(self, fail_startup: bool = False) -> None:
        self.fail_startup = fail_startup
        self.events: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                self.events.append(message["type"])
                if message["type"] == "lifespan.startup":
                    if self.fail_startup:
                        await send({"type": "lifespan.startup.failed", "message": "no"})
                        return
                    scope["state"]["greeting"] = "hi"
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = f"{scope['state']['greeting']} from {threading.current_thread().name}".encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})


@pytest.mark.skipif(
    threading.current_thread() is not threading.main_thread(), reason="needs signals"
)
def test_serve_in_process_on_a_given_socket() -> None:
    app = StateApp()
    answers: list[str] = []

    def ready(host: str, port: int) -> None:
        # Runs on the control loop; the serving loops are other threads.
        for _ in range(4):
            answers.append(
                httpx.get(f"http://{host}:{port}/", headers={"connection": "close"}).text
            )
        signal.raise_signal(signal.SIGTERM)

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        serve(app, sock=sock, loops=2, ready=ready)
        assert sock.fileno() != -1, "serve closed the caller's socket"
    assert len(answers) == 4
    assert all(a.startswith("hi from atoll-http-") for a in answers), answers
    assert app.events == ["lifespan.startup", "lifespan.shutdown"]


def test_a_failed_lifespan_startup_is_an_error() -> None:
    app = StateApp(fail_startup=True)
    with pytest.raises(AtollError, match="lifespan startup failed"):
        serve(app, port=0, loops=2, log_level="critical")


class _CountingSpare(_LoopServer):
    """A spare loop's server that records its ticks (uvicorn's 0.1 s ``on_tick``)."""

    ticks: list[int]

    async def on_tick(self, counter: int) -> bool:
        self.ticks.append(counter)
        return await super().on_tick(counter)


def test_an_idle_spare_waits_without_ticking_until_it_has_work() -> None:
    # A spare that ticked every 0.1 s asked for the GIL each time, forcing the serving loop's
    # thread to hand it over: three spares, 30 forced switches a second for nothing. Idle,
    # a spare waits; with a connection of its own it ticks (date header, late heads), and
    # exit() wakes it to stop.
    limits = ServerLimits()
    pool = ConnectionPool(limits, 16)
    config = uvicorn.Config(StateApp(), lifespan="off", log_config=None, interface="asgi3")
    with socket.socket() as listener:
        spare = _CountingSpare(config, {}, lambda: None, pool, listener, spare=True)
        spare.ticks = []

        async def main() -> None:
            spare.loop = asyncio.get_running_loop()
            running = asyncio.create_task(spare.main_loop())
            await asyncio.sleep(0.35)  # an idle spare ticked 3 times in this before
            assert spare.ticks == [0]
            spare.server_state.connections.add(object())  # type: ignore[arg-type]
            spare.wake()
            await _until(lambda: len(spare.ticks) >= 3)  # ticking: it holds a connection
            spare.server_state.connections.clear()
            ticked = len(spare.ticks)
            await _until(lambda: len(spare.ticks) > ticked)  # that tick found it idle: it waits
            await asyncio.sleep(0.35)
            assert len(spare.ticks) == ticked + 1
            spare.exit()
            await asyncio.wait_for(running, 30)
            assert spare.ticks[ticked + 1 :] == [0]  # woken to stop: one tick, which stops it

        asyncio.run(main())


async def _until(check: Callable[[], bool]) -> None:
    while True:
        if check():
            return
        await asyncio.sleep(0.01)
