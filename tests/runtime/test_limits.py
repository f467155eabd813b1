"""Limits are enforced: CPU, memory, stack, module size and validity."""

from __future__ import annotations

import gzip
import os
import time
from pathlib import Path

import pytest

from atoll.api import Request
from atoll.errors import ModuleLoadError
from atoll.runtime.backend.auto import BACKEND
from atoll.runtime.outcome import Outcome
from atoll.worker import Result, Runtime, load_worker
from tests.support import WorkerFactory

GUEST = """
(module
  (memory (export "memory") 1)
  (func (export "spin") (loop br 0))
  (func $rec (export "rec") (param i32) (result i32)
    (call $rec (i32.add (local.get 0) (i32.const 1))))
  (func (export "bomb") (result i32)
    (loop (br_if 0 (i32.ne (memory.grow (i32.const 1)) (i32.const -1))))
    unreachable)
  (func (export "grow_until_refused") (result i32)
    (loop (br_if 0 (i32.ne (memory.grow (i32.const 1)) (i32.const -1))))
    (memory.size))
  (func (export "crash") unreachable)
  (func (export "div") (param i32) (result i32) (i32.div_s (i32.const 1) (local.get 0)))
)
"""

WORKER = """
from atoll import Response

async def fetch(request, env, ctx):
    op = request.query.get("op")
    inst = env.G.instantiate()
    if op == "spin":
        inst.exports.spin()
    if op == "spin_twice":
        try:
            inst.exports.spin()
        except Exception:
            pass
        env.G.instantiate().exports.spin()  # budget spent: refused before it runs
    if op == "rec":
        inst.exports.rec(0)
    if op == "bomb":
        inst.exports.bomb()
    if op == "grow":
        return Response(str(inst.exports.grow_until_refused()))
    if op == "two":
        other = env.G.instantiate()
        a = inst.exports.grow_until_refused()
        b = other.exports.grow_until_refused()
        return Response(f"{a} {b}")
    if op == "crash":
        inst.exports.crash()
    if op == "div":
        inst.exports.div(0)
    return Response("ok")
"""


async def serve_one(root: Path, runtime: Runtime, op: str) -> Result:
    worker = load_worker(root, runtime=runtime, dev=True)
    return await worker.handle(Request(f"http://test/?op={op}"), "rid")


async def test_infinite_loop_ends_with_503_at_cpu_ms(
    make_worker: WorkerFactory, runtime: Runtime
) -> None:
    root = make_worker(WORKER, modules={"G": GUEST}, limits="cpu_ms = 50")
    started = time.perf_counter()
    result = await serve_one(root, runtime, "spin")
    wall_ms = (time.perf_counter() - started) * 1000
    assert result.response.status == 503
    assert result.outcome is Outcome.EXCEEDED_CPU
    assert b"exceeded the request's wasm CPU limit of 50 ms" in result.response.body
    # Charged thread CPU time: the limit plus at most one tick and the callback's slack.
    # (Without the C API the deadline is wall time, so the charge may fall short of 50.)
    assert result.cpu_ms <= 50 + 20
    if BACKEND.name == "native":  # the public backend's deadline is wall time
        assert result.cpu_ms >= 50
    assert wall_ms < 5_000  # it ended; not a timing claim


async def test_spent_budget_refuses_further_wasm(
    make_worker: WorkerFactory, runtime: Runtime
) -> None:
    root = make_worker(WORKER, modules={"G": GUEST}, limits="cpu_ms = 20")
    result = await serve_one(root, runtime, "spin_twice")
    assert result.outcome is Outcome.EXCEEDED_CPU
    assert result.response.status == 503
    if BACKEND.name == "native":  # charged CPU time reaches the budget exactly; see docs/limits.md
        assert b"already used its 20 ms" in result.response.body


async def test_memory_bomb_is_refused_at_memory_mb(
    make_worker: WorkerFactory, runtime: Runtime
) -> None:
    root = make_worker(WORKER, modules={"G": GUEST}, limits="memory_mb = 8")
    result = await serve_one(root, runtime, "bomb")
    assert result.response.status == 503
    assert result.outcome is Outcome.EXCEEDED_MEMORY
    grown = await serve_one(root, runtime, "grow")
    assert grown.response.status == 200
    assert int(grown.response.body) * 65536 == 8 * 1024 * 1024


async def test_memory_budget_is_shared_by_a_requests_instances(
    make_worker: WorkerFactory, runtime: Runtime
) -> None:
    root = make_worker(WORKER, modules={"G": GUEST}, limits="memory_mb = 8")
    result = await serve_one(root, runtime, "two")
    a, b = (int(x) for x in result.response.body.split())
    assert (a + b) * 65536 == 8 * 1024 * 1024


async def test_stack_overflow_is_a_500_with_backtrace(
    make_worker: WorkerFactory, runtime: Runtime
) -> None:
    root = make_worker(WORKER, modules={"G": GUEST})
    result = await serve_one(root, runtime, "rec")
    assert result.response.status == 500
    assert result.outcome is Outcome.EXCEPTION
    body = result.response.body.decode()
    assert "stack overflow" in body
    assert "G!rec" in body
    assert body.count("G!rec") > 5


@pytest.mark.parametrize(
    ("op", "message"),
    [("crash", "unreachable"), ("div", "integer divide by zero")],
)
async def test_trap_is_a_500_naming_the_export(
    make_worker: WorkerFactory, runtime: Runtime, op: str, message: str
) -> None:
    root = make_worker(WORKER, modules={"G": GUEST})
    result = await serve_one(root, runtime, op)
    assert result.response.status == 500
    body = result.response.body.decode()
    assert f"G.{op}: wasm trap:" in body
    assert message in body


async def test_errors_in_serve_mode_hide_details(
    make_worker: WorkerFactory, runtime: Runtime
) -> None:
    root = make_worker(WORKER, modules={"G": GUEST})
    worker = load_worker(root, runtime=runtime, dev=False)
    result = await worker.handle(Request("http://test/?op=crash"), "rid42")
    body = result.response.body.decode()
    assert result.response.status == 500
    assert "request id: rid42" in body
    assert "unreachable" not in body
    assert result.response.headers.get("atoll-request-id") == "rid42"


def test_a_file_that_is_not_wasm_is_refused_at_load(
    make_worker: WorkerFactory, runtime: Runtime
) -> None:
    root = make_worker(WORKER, modules={"G": b"(module)"})
    with pytest.raises(ModuleLoadError, match=r"G \(pkg/G.wasm\) is not a WebAssembly binary"):
        load_worker(root, runtime=runtime)


def test_invalid_wasm_is_refused_at_load(make_worker: WorkerFactory, runtime: Runtime) -> None:
    root = make_worker(WORKER, modules={"G": b"\0asm\x01\0\0\0\x01\xff"})
    with pytest.raises(ModuleLoadError, match="is not valid WebAssembly"):
        load_worker(root, runtime=runtime)


def test_module_over_10mb_compressed_is_refused(
    make_worker: WorkerFactory, runtime: Runtime
) -> None:
    # A custom section of random bytes does not compress: 11 MB stays over the limit.
    payload = os.urandom(11 * 1024 * 1024)
    name = b"\x04blob"
    body = name + payload
    size = len(body)
    leb = bytearray()
    while True:
        byte = size & 0x7F
        size >>= 7
        leb.append(byte | (0x80 if size else 0))
        if not size:
            break
    module = b"\0asm\x01\0\0\0" + b"\x00" + bytes(leb) + body
    assert len(gzip.compress(module[:1_000_000])) > 900_000
    root = make_worker(WORKER, modules={"G": module})
    with pytest.raises(ModuleLoadError, match="over the 10 MB limit"):
        load_worker(root, runtime=runtime)


def test_unknown_import_is_refused_at_load_naming_it(
    make_worker: WorkerFactory, runtime: Runtime
) -> None:
    root = make_worker(
        WORKER,
        modules={
            "G": '(module (import "env" "memcpy_fast" (func (param i32 i32 i32) (result i32))))'
        },
    )
    with pytest.raises(
        ModuleLoadError,
        match=r"imports env\.memcpy_fast, which atoll does not provide",
    ):
        load_worker(root, runtime=runtime)


def test_import_with_wrong_type_is_refused(make_worker: WorkerFactory, runtime: Runtime) -> None:
    root = make_worker(WORKER, modules={"G": '(module (import "env" "abort" (func (param i32))))'})
    with pytest.raises(ModuleLoadError, match=r"imports env\.abort with the wrong type"):
        load_worker(root, runtime=runtime)


@pytest.mark.native_backend  # the pooling allocator is reached through the C API only
async def test_pool_exhaustion_is_a_503_naming_the_limit(make_worker: WorkerFactory) -> None:
    from atoll.runtime.engine import Engine

    small = Engine(pool_instances=3)
    try:
        source = """
from atoll import Response

async def fetch(request, env, ctx):
    kept = [env.G.instantiate() for _ in range(int(request.query.get("n", "5")))]
    return Response(str(len(kept)))
"""
        root = make_worker(source, modules={"G": GUEST})
        worker = load_worker(root, runtime=Runtime(small, cache_dir=False), dev=True)
        result = await worker.handle(Request("http://t/"), "rid")
        assert result.response.status == 503
        assert result.outcome is Outcome.OVERLOADED
        assert "maximum of 3 live wasm instances" in result.response.body.decode()
        again = await worker.handle(Request("http://t/?n=3"), "rid2")  # slots were given back
        assert again.response.body == b"3"
    finally:
        small.close()
