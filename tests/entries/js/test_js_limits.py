"""Hostile JavaScript, each contained to its own request, over a real socket.

One ``atoll dev`` (two loops) serves a worker with a route per attack; after
each attack the same node still answers ``/``. Limits: ``cpu_ms = 300``,
``memory_mb = 64``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import DevServer, start_dev, wat

#: memory.grow by 16 pages until refused, then touch a page per 4 KiB up to an address.
BOMB_WAT = """
(module
  (memory (export "memory") 1)
  (func (export "bomb")
    (loop (br_if 0 (i32.ne (memory.grow (i32.const 16)) (i32.const -1)))))
  (func (export "touch") (param i32) (local i32)
    (loop
      (i32.store (local.get 1) (i32.const 1))
      (local.set 1 (i32.add (local.get 1) (i32.const 4096)))
      (br_if 0 (i32.lt_u (local.get 1) (local.get 0))))))
"""

LOOP_WAT = '(module (func (export "spin") (loop (br 0))))'

HOSTILE_JS = """\
import bomb from "./bomb.wasm";
import spin from "./spin.wasm";

export default {
  async fetch(request) {
    const path = new URL(request.url).pathname;
    if (path === "/loop") { while (true) {} }
    if (path === "/wasm-loop") { new WebAssembly.Instance(spin, {}).exports.spin(); }
    if (path === "/heap") { const a = []; while (true) a.push(new Array(1024).fill(a.length)); }
    if (path === "/arraybuffers") { const a = []; while (true) a.push(new ArrayBuffer(1 << 20)); }
    if (path === "/big-arraybuffer") { const b = new Uint8Array(1 << 30); b.fill(1); return new Response("filled"); }
    if (path === "/wasm-memory") {
      const instance = new WebAssembly.Instance(bomb, {});
      instance.exports.bomb();
      const mib = instance.exports.memory.buffer.byteLength >> 20;
      instance.exports.touch(instance.exports.memory.buffer.byteLength - 4096);
      const more = [];
      while (true) { const i = new WebAssembly.Instance(bomb, {}); i.exports.bomb(); i.exports.touch(mib << 20); more.push(i); }
    }
    if (path === "/recursion") { const f = (n) => f(n + 1) + 1; return new Response(String(f(0))); }
    if (path === "/never") { return new Promise(() => {}); }
    if (path === "/timer-storm") { for (let i = 0; i < 1e6; i++) setTimeout(() => {}, 60000); return new Response("?"); }
    if (path === "/interval-storm") {
      return new Promise(() => { for (let i = 0; i < 100; i++) setInterval(() => { for (let j = 0; j < 1e4; j++); }, 0); });
    }
    if (path === "/microtask-loop") { const f = () => Promise.resolve().then(f); f(); return new Promise(() => {}); }
    if (path === "/hoard") {
      globalThis.hoard = globalThis.hoard || [];
      globalThis.hoard.push(new Uint8Array(16 << 20).fill(1));
      return new Response(String(globalThis.hoard.length));
    }
    return new Response("ok");
  },
};
"""


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    folder: Path = tmp_path_factory.mktemp("hostile")
    (folder / "atoll.toml").write_text(
        'name = "hostile"\nmain = "index.js"\n[limits]\ncpu_ms = 300\nmemory_mb = 64\n'
    )
    (folder / "index.js").write_text(HOSTILE_JS)
    (folder / "bomb.wasm").write_bytes(wat(BOMB_WAT))
    (folder / "spin.wasm").write_bytes(wat(LOOP_WAT))
    server = start_dev(folder, "--loops", "2")
    try:
        yield server
    finally:
        server.stop()


def _still_serving(server: DevServer) -> None:
    assert server.proc.poll() is None, server.log()
    for _ in range(4):  # both loops, whichever takes the connection
        response = httpx.get(server.url + "/", timeout=30)
        assert (response.status_code, response.text) == (200, "ok")


@pytest.mark.parametrize(
    ("path", "status", "outcome"),
    [
        ("/loop", 503, "exceeded_cpu"),
        ("/wasm-loop", 503, "exceeded_cpu"),
        ("/heap", 503, "exceeded_memory"),
        ("/arraybuffers", 503, "exceeded_memory"),
        ("/big-arraybuffer", 500, "exception"),
        ("/wasm-memory", 503, "exceeded_memory"),
        ("/recursion", 500, "exception"),
        ("/never", 500, "exception"),
        ("/timer-storm", 500, "exception"),
        ("/interval-storm", 503, "exceeded_cpu"),
        # promises made as fast as they run: CPU or heap runs out first, depending on the GC
        ("/microtask-loop", 503, "exceeded_"),
    ],
)
def test_hostile_js_costs_only_its_own_request(
    hostile: DevServer, path: str, status: int, outcome: str
) -> None:
    response = httpx.get(hostile.url + path, timeout=60)
    assert response.status_code == status, response.text
    request_id = response.headers["atoll-request-id"]
    _still_serving(hostile)
    line = next(
        (line for line in hostile.lines if request_id in line and path in line), None
    ) or _wait_line(hostile, request_id)
    assert outcome in line


def test_a_deep_recursion_is_a_range_error_in_js(hostile: DevServer) -> None:
    response = httpx.get(hostile.url + "/recursion")
    assert "RangeError" in response.text
    assert "Maximum call stack size exceeded" in response.text


def test_one_allocation_past_memory_mb_fails_as_in_v8(hostile: DevServer) -> None:
    # Refused before a byte is committed (RangeError, as when V8's allocator fails).
    response = httpx.get(hostile.url + "/big-arraybuffer")
    assert "RangeError: Array buffer allocation failed" in response.text


def test_a_promise_that_never_settles_says_so(hostile: DevServer) -> None:
    assert "will never generate a response" in httpx.get(hostile.url + "/never").text


def test_memory_kept_across_requests_retires_the_isolate(hostile: DevServer) -> None:
    # 16 MiB kept per request in a global. Once the isolate holds more than memory_mb (64),
    # it is replaced (checked after each request, or by the watchdog during the one that
    # crosses it, which then gets 503), and the hoard starts again in a new isolate.
    with httpx.Client() as client:  # one connection: one loop, one isolate
        answers = [client.get(hostile.url + "/hoard") for _ in range(10)]
    assert {r.status_code for r in answers} <= {200, 503}
    counts = [int(r.text) for r in answers if r.status_code == 200]
    assert max(counts) <= 4, counts
    assert counts.count(1) >= 2, counts
    _still_serving(hostile)


def _wait_line(server: DevServer, request_id: str) -> str:
    import time

    for _ in range(200):
        for line in server.lines:
            if request_id in line and " GET " in line:
                return line
        time.sleep(0.01)
    pytest.fail(f"no log line for {request_id}:\n{server.log()}")
