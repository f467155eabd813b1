"""``atoll dev`` end to end: a real process, real sockets."""

from __future__ import annotations

import re
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from tests.support import REPO, DevServer, StartDev, WorkerFactory, start_dev

__all__ = ["REPO", "DevServer", "start_dev"]  # used by other end-to-end tests


def test_seed_example_answers_over_http(dev_server: StartDev, tmp_path: Path) -> None:
    server = dev_server(REPO / "examples" / "seed")
    response = httpx.get(f"{server.url}/?n=1000")
    assert response.status_code == 200
    assert response.text == "Result: 332833500"
    time.sleep(0.2)
    assert re.search(r"GET /\?n=1000 200 ok [\d.]+ms cpu=[\d.]+ms id=[0-9a-f]{16}", server.log())


def test_assemblyscript_seed_gives_the_same_answer(dev_server: StartDev) -> None:
    server = dev_server(REPO / "examples" / "seed-assemblyscript")
    assert httpx.get(f"{server.url}/?n=1000").text == "Result: 332833500"


SPIN = """
(module
  (func (export "spin") (loop br 0))
  (func (export "one") (result i32) (i32.const 1)))
"""

SPIN_WORKER = """
import threading
from atoll import Response

async def fetch(request, env, ctx):
    if request.path == "/spin":
        if "mark" in request.query:  # the test's sign that the spin holds the loop now
            open(request.query["mark"], "w").close()
        env.S.instantiate().exports.spin()
    if request.path == "/echo":
        body = await request.bytes()
        return Response(f"{len(body)} bytes")
    one = env.S.instantiate().exports.one()
    return Response(f"hello {one} {threading.current_thread().name}")
"""


def test_a_request_spinning_in_wasm_does_not_stop_others(
    dev_server: StartDev, make_worker: WorkerFactory, tmp_path: Path
) -> None:
    # The spin holds the serving loop until its CPU limit ends it (503). The limit is
    # long, so that the other requests surely happen during it, even where the spin
    # gets most of a CPU and the spare that answers them (at a lower priority) little.
    folder = make_worker(SPIN_WORKER, modules={"S": SPIN}, limits="cpu_ms = 8000")
    server = dev_server(folder)
    mark = tmp_path / "spinning"
    spin_done = threading.Event()
    spin_status: list[int] = []

    def spin() -> None:
        try:
            url = f"{server.url}/spin?mark={mark}"
            spin_status.append(httpx.get(url, timeout=600).status_code)
        finally:
            spin_done.set()

    thread = threading.Thread(target=spin)
    thread.start()
    deadline = time.monotonic() + 60
    while not mark.exists():  # the worker is about to call the spin, on the serving loop
        assert time.monotonic() < deadline, "the spin did not start"
        assert not spin_done.is_set(), spin_status
        time.sleep(0.01)
    answered = []
    for _ in range(5):
        with httpx.Client() as client:  # a new connection each time, made during the spin
            answered.append(client.get(f"{server.url}/hello", timeout=60).text)
    hello_finished_first = not spin_done.is_set()
    thread.join()
    # Answered by a spare loop (the serving loop is in the spin), before the spin ended.
    assert [text.rpartition("-")[0] for text in answered] == ["hello 1 atoll-http-spare"] * 5
    assert hello_finished_first, "/hello waited for the spinning request"
    assert spin_status == [503]


def test_body_over_the_limit_is_refused_with_413(
    dev_server: StartDev, make_worker: WorkerFactory
) -> None:
    folder = make_worker(SPIN_WORKER, modules={"S": SPIN}, limits="request_body_mb = 1")
    server = dev_server(folder)
    small = httpx.post(f"{server.url}/echo", content=b"x" * 1000)
    assert small.text == "1000 bytes"
    declared = httpx.post(f"{server.url}/echo", content=b"x" * (2 * 1024 * 1024))
    assert declared.status_code == 413

    def chunks() -> Iterator[bytes]:
        for _ in range(40):
            yield b"y" * 65536

    streamed = httpx.post(f"{server.url}/echo", content=chunks())
    assert streamed.status_code == 413
    assert "over the limit of 1 MiB" in streamed.text


def test_sigterm_lets_the_request_in_flight_finish(
    dev_server: StartDev, make_worker: WorkerFactory
) -> None:
    slow = """
import asyncio
from atoll import Response

async def fetch(request, env, ctx):
    await asyncio.sleep(1.0)
    return Response("finished")
"""
    folder = make_worker(slow)
    server = dev_server(folder)
    result: list[httpx.Response] = []
    thread = threading.Thread(target=lambda: result.append(httpx.get(server.url, timeout=30)))
    thread.start()
    time.sleep(0.3)
    server.proc.send_signal(signal.SIGTERM)
    thread.join()
    assert result[0].text == "finished"
    assert server.proc.wait(timeout=15) == 0


def test_whole_wasm_worker_over_http(dev_server: StartDev, tmp_path: Path) -> None:
    folder = tmp_path / "cgi"
    (folder / "build").mkdir(parents=True)
    probe = REPO / "tests" / "runtime" / "guests" / "cgi_probe.wasm"
    (folder / "build" / "app.wasm").write_bytes(probe.read_bytes())
    (folder / "atoll.toml").write_text('name = "cgi"\nmain = "build/app.wasm"\n')
    server = dev_server(folder)
    hello = httpx.get(f"{server.url}/")
    assert (hello.status_code, hello.text) == (200, "hello from wasi\n")
    echo = httpx.post(f"{server.url}/?echo", content=b"\x00binary\xff" * 1000)
    assert echo.content == b"\x00binary\xff" * 1000
    env = httpx.get(f"{server.url}/x/y?env", headers={"X-Probe": "1"}).text
    assert "PATH_INFO=/x/y" in env
    assert "HTTP_X_PROBE=1" in env
    assert "REMOTE_ADDR=127.0.0.1" in env
    assert httpx.get(f"{server.url}/?status").status_code == 404


def test_a_change_is_served_without_a_restart(
    dev_server: StartDev, make_worker: WorkerFactory
) -> None:
    folder = make_worker(
        'from atoll import Response\n\nasync def fetch(request, env, ctx):\n    return Response("v1")\n'
    )
    server = dev_server(folder)
    assert httpx.get(server.url).text == "v1"
    entry = folder / "src" / "worker.py"
    entry.write_text(entry.read_text().replace('"v1"', '"v2"'))
    deadline = time.monotonic() + 15
    while httpx.get(server.url).text != "v2" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert httpx.get(server.url).text == "v2"
    entry.write_text("this is not python(")  # broken: the last good version keeps serving
    time.sleep(1.0)
    assert httpx.get(server.url).text == "v2"
    assert "reload failed" in server.log()
