"""``atoll:http``: subrequests from wasm guests, over a real socket to 127.0.0.1.

The guest is inline WAT that re-exports ``atoll:http.fetch``; a Python entry
drives it with ``str`` arguments (``ptr, len`` in the ordinary ABI) and
decodes the buffer it returns.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from atoll.api import Request
from atoll.bindings.outbound.host import FAILED, INVALID, LIMIT, REFUSED
from atoll.errors import GuestTrapError
from atoll.worker import Result, Runtime, Worker, load_worker
from tests.bindings.kv.test_kv_host import BUMP_ALLOC
from tests.bindings.outbound.upstream import Upstream
from tests.support import WorkerFactory

GUEST = f"""(module
  (import "atoll:http" "fetch" (func $fetch (param i32 i32 i32 i32) (result i64)))
  (memory (export "memory") 1)
  {BUMP_ALLOC}
  (func (export "fetch") (param i32 i32 i32 i32) (result i64)
    (call $fetch (local.get 0) (local.get 1) (local.get 2) (local.get 3)))
  (func (export "bad_pointer") (result i64)
    (call $fetch (i32.const 0x7fff0000) (i32.const 16) (i32.const 0) (i32.const 0)))
)"""


def no_alloc(request: str) -> str:
    """A guest without ``alloc`` whose ``bad_pointer`` export fetches ``request`` (in a data
    segment); it cannot take the response."""
    data = request.replace("\\", "\\\\").replace('"', '\\"')
    return f"""(module
  (import "atoll:http" "fetch" (func $fetch (param i32 i32 i32 i32) (result i64)))
  (memory (export "memory") 1)
  (data (i32.const 64) "{data}")
  (func (export "bad_pointer") (result i64)
    (call $fetch (i32.const 64) (i32.const {len(request)}) (i32.const 0) (i32.const 0)))
)"""


RUNNER = """
import json, struct
from atoll import Response

async def fetch(request, env, ctx):
    instance = env.GUEST.instantiate()
    out = []
    for req, body in json.loads(await request.text()):
        if req is None:
            out.append(instance.exports.bad_pointer())
            continue
        result = instance.exports.fetch(json.dumps(req) if isinstance(req, dict) else req, body)
        if result < 0:
            out.append(result)
            continue
        data = instance.memory.read(result >> 32, result & 0xFFFFFFFF)
        (n,) = struct.unpack("<I", data[:4])
        out.append({"head": json.loads(data[4:4 + n]), "body": data[4 + n:].decode()})
    return Response(json.dumps(out))
"""


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    # In a thread of its own: a guest's fetch blocks the loop it runs on.
    server = Upstream().start_in_thread()
    yield server
    server.stop_thread()


def _load(
    make_worker: WorkerFactory, runtime: Runtime, toml: str = "", guest: str = GUEST,
    limits: str = "",
) -> Worker:  # fmt: skip
    root = make_worker(RUNNER, modules={"GUEST": guest}, extra=toml, limits=limits)
    return load_worker(root, runtime=runtime, dev=True)


async def _run(worker: Worker, *calls: tuple[Any, str]) -> tuple[list[Any], Result]:
    request = Request("http://guest.test/", method="POST", body=json.dumps(calls))
    result = await worker.handle(request, "req")
    assert result.response.status == 200, result.response.body.decode()
    return json.loads(result.response.body), result


async def test_a_guest_fetches_an_allowed_server(
    make_worker: WorkerFactory, runtime: Runtime, upstream: Upstream
) -> None:
    worker = _load(
        make_worker, runtime, f'[outbound]\nallowed_hosts = ["http://127.0.0.1:{upstream.port}"]'
    )
    request = {"url": upstream.url + "/echo", "method": "PUT", "headers": [["x-guest", "yes"]]}
    [answer], result = await _run(worker, (request, "guest body"))
    assert answer["head"]["status"] == 200
    echoed = json.loads(answer["body"])
    assert echoed["method"] == "PUT"
    assert echoed["body"] == "guest body"
    assert ["x-guest", "yes"] in echoed["headers"]
    assert [(r.method, r.status, r.outcome) for r in result.subrequests] == [("PUT", 200, "ok")]


async def test_codes_for_refused_limited_failed_and_invalid(
    make_worker: WorkerFactory, runtime: Runtime, upstream: Upstream
) -> None:
    worker = _load(
        make_worker,
        runtime,
        f'[outbound]\nallowed_hosts = ["http://127.0.0.1:{upstream.port}"]',
        limits="subrequests = 2\nsubrequest_response_mb = 1",
    )
    answers, result = await _run(
        worker,
        ({"url": "http://127.0.0.1:1/"}, ""),  # another port: not allowed
        ({"url": upstream.url + f"/big?n={2 * 1024 * 1024}"}, ""),  # over 1 MiB
        ("not json", ""),
        ({"url": upstream.url + "/hello"}, ""),  # the third: over the limit of 2
    )
    assert answers == [REFUSED, FAILED, INVALID, LIMIT]
    text = "\n".join(result.logs)
    assert "not in [outbound] allowed_hosts" in text
    assert "over 1 MiB" in text
    assert "invalid request" in text
    assert "already made its 2 subrequests" in text


async def test_loopback_is_refused_by_default(
    make_worker: WorkerFactory, runtime: Runtime, upstream: Upstream
) -> None:
    worker = _load(make_worker, runtime)
    answers, result = await _run(worker, ({"url": upstream.url + "/hello"}, ""))
    assert answers == [REFUSED]
    assert "a loopback address" in "\n".join(result.logs)
    assert upstream.connections == 0


async def test_guest_faults_trap(
    make_worker: WorkerFactory, runtime: Runtime, upstream: Upstream
) -> None:
    worker = _load(make_worker, runtime)
    request = Request("http://guest.test/", method="POST", body=json.dumps([[None, ""]]))
    result = await worker.handle(request, "req")
    assert isinstance(result.error, GuestTrapError)
    assert "outside the guest's memory" in str(result.error)
    allowed = f'[outbound]\nallowed_hosts = ["http://127.0.0.1:{upstream.port}"]'
    guest = no_alloc(json.dumps({"url": upstream.url + "/hello"}))
    without = _load(make_worker, runtime, allowed, guest=guest)
    body = json.dumps([[None, ""]])
    result = await without.handle(Request("http://g/", method="POST", body=body), "req")
    assert isinstance(result.error, GuestTrapError)
    assert "exports no alloc" in str(result.error)
