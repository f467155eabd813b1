"""Each kind of worker entry, run on a spare loop once its route stalled the serving loop.

``atoll dev`` (4 loops, ``--log-level info`` so that the mark is logged) serves
a worker whose ``/burn`` route holds its loop for a while: the first request
stalls the serving loop and marks the route; the next ones run on a spare
loop (``http/stalls.py``), where the worker must work as it does inline: a
Python entry with its warm instance and request body, a whole-wasm (CGI)
program, a JavaScript worker with its own isolate on that thread.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import DevServer, WorkerFactory, start_dev

BURN_WAT = """
(module
  (func (export "burn") (param $n i32)
    (loop $again
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br_if $again (i32.gt_s (local.get $n) (i32.const 0))))))
"""

PYTHON = """
import threading
from atoll import Response

async def fetch(request, env, ctx):
    if request.path == "/burn":
        env.BURN.instance.exports.burn(int(request.query.get("n", "1")))
    body = await request.bytes()
    return Response(f"{threading.current_thread().name} {body.decode()}")
"""

JS = """\
export default {
  async fetch(request) {
    const url = new URL(request.url);
    let x = 0;
    if (url.pathname === "/burn") {
      for (let i = 0; i < Number(url.searchParams.get("n")); i++) x = (x + i) & 7;
    }
    return new Response(`js ${await request.text()} ${x >= 0}`);
  },
};
"""

CGI_PROBE = Path(__file__).parents[1] / "runtime" / "guests" / "cgi_probe.wasm"


@pytest.fixture
def dev() -> Iterator[list[DevServer]]:
    started: list[DevServer] = []
    yield started
    for server in started:
        server.stop()


def _serve(folder: Path, started: list[DevServer]) -> DevServer:
    server = start_dev(folder, "--log-level", "info", "--no-reload")
    started.append(server)
    return server


def _mark(server: DevServer, path: str, request: Callable[[], httpx.Response]) -> httpx.Response:
    """Send the long ``request`` until its route is marked (a spare that took the
    connection for a stall of the serving loop serves it without marking); its first
    response."""
    first = request()
    for _ in range(2):
        if _marked(server, path, wait=5):
            break
        request()
    assert _marked(server, path), server.log()
    return first


def _marked(server: DevServer, path: str, wait: float = 10) -> bool:
    """Whether the log says ``path`` was marked (the line may come just after the response)."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if any(f"{path} stalled the event loop" in line for line in server.lines):
            return True
        time.sleep(0.05)
    return False


def test_a_python_entry_runs_on_a_spare_with_its_instance_and_body(
    make_worker: WorkerFactory, dev: list[DevServer]
) -> None:
    folder = make_worker(PYTHON, modules={"BURN": BURN_WAT}, limits="cpu_ms = 20000")
    server = _serve(folder, dev)
    first = _mark(
        server,
        "/burn",
        lambda: httpx.post(f"{server.url}/burn?n=600000000", content=b"one", timeout=60),
    )
    assert first.text.endswith(" one")
    again = httpx.post(f"{server.url}/burn?n=1", content=b"two", timeout=60)
    name, body = again.text.split()
    assert (name.startswith("atoll-http-spare-"), body) == (True, "two")
    assert httpx.get(f"{server.url}/other").text.startswith("atoll-http-0 ")


def test_a_javascript_entry_runs_on_a_spare(tmp_path: Path, dev: list[DevServer]) -> None:
    (tmp_path / "atoll.toml").write_text(
        'name = "js"\nmain = "index.js"\n[limits]\ncpu_ms = 20000\n'
    )
    (tmp_path / "index.js").write_text(JS)
    server = _serve(tmp_path, dev)
    first = _mark(
        server,
        "/burn",
        lambda: httpx.post(f"{server.url}/burn?n=30000000", content=b"one", timeout=60),
    )
    assert first.text == "js one true"
    for body in ("two", "three"):  # on a spare: an isolate of its own, made there
        again = httpx.post(f"{server.url}/burn?n=1", content=body.encode(), timeout=60)
        assert again.text == f"js {body} true"


def test_a_whole_wasm_program_runs_on_a_spare(tmp_path: Path, dev: list[DevServer]) -> None:
    (tmp_path / "build").mkdir()
    shutil.copy(CGI_PROBE, tmp_path / "build" / "app.wasm")
    (tmp_path / "atoll.toml").write_text(
        'name = "cgi"\nmain = "build/app.wasm"\n[limits]\ncpu_ms = 400\n'
    )
    server = _serve(tmp_path, dev)
    spun = _mark(server, "/burn", lambda: httpx.get(f"{server.url}/burn?spin", timeout=60))
    assert spun.status_code == 503  # ended at cpu_ms
    for _ in range(2):
        again = httpx.get(f"{server.url}/burn", timeout=60)
        assert (again.status_code, again.text) == (200, "hello from wasi\n")
