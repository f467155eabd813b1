"""Fresh instances isolate requests; warm instances persist; the bytes/str ABI; host imports."""

from __future__ import annotations

from pathlib import Path

import pytest

from atoll.api import Request
from atoll.runtime.outcome import Outcome
from atoll.worker import Result, Runtime, load_worker
from tests.support import WorkerFactory

COUNTER = """
(module
  (memory (export "memory") 1)
  (global $g (mut i32) (i32.const 0))
  ;; a counter in linear memory at address 16, and one in a global
  (func (export "bump") (result i32)
    (i32.store (i32.const 16) (i32.add (i32.load (i32.const 16)) (i32.const 1)))
    (global.set $g (i32.add (global.get $g) (i32.const 1)))
    (i32.add (i32.mul (i32.load (i32.const 16)) (i32.const 1000)) (global.get $g)))
  (func (export "crash") unreachable)
)
"""

COUNTER_WORKER = """
from atoll import Response

async def fetch(request, env, ctx):
    which = request.query.get("which")
    if which == "warm":
        return Response(str(env.C.instance.exports.bump()))
    if which == "warm-crash":
        env.C.instance.exports.crash()
    inst = env.C.instantiate()
    return Response(str(inst.exports.bump()))
"""


async def get(worker_root: Path, runtime: Runtime, query: str) -> Result:
    worker = load_worker(worker_root, runtime=runtime, dev=True)
    return await worker.handle(Request(f"http://test/?{query}"), "rid")


async def test_fresh_instances_do_not_leak_between_requests(
    make_worker: WorkerFactory, runtime: Runtime
) -> None:
    root = make_worker(COUNTER_WORKER, modules={"C": COUNTER})
    worker = load_worker(root, runtime=runtime)
    bodies = [
        (await worker.handle(Request("http://t/?which=fresh"), "r")).response.body for _ in range(3)
    ]
    assert bodies == [b"1001", b"1001", b"1001"]


async def test_warm_instance_persists_and_is_replaced_after_a_trap(
    make_worker: WorkerFactory, runtime: Runtime
) -> None:
    root = make_worker(COUNTER_WORKER, modules={"C": COUNTER})
    worker = load_worker(root, runtime=runtime)

    async def call(which: str) -> Result:
        return await worker.handle(Request(f"http://t/?which={which}"), "r")

    assert [(await call("warm")).response.body for _ in range(3)] == [b"1001", b"2002", b"3003"]
    crashed = await call("warm-crash")
    assert crashed.outcome is Outcome.EXCEPTION
    assert (await call("warm")).response.body == b"1001"


BUFFERS = """
(module
  (memory (export "memory") 1)
  (global $next (mut i32) (i32.const 1024))
  (global $freed (export "freed") (mut i32) (i32.const 0))
  (func (export "alloc") (param $len i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $next))
    (global.set $next (i32.add (global.get $next) (local.get $len)))
    (local.get $p))
  (func (export "dealloc") (param i32 i32)
    (global.set $freed (i32.add (global.get $freed) (i32.const 1))))
  (func (export "freed_count") (result i32) (global.get $freed))
  (func (export "sum") (param $p i32) (param $n i32) (result i32)
    (local $s i32)
    (block $done (loop $l
      (br_if $done (i32.eqz (local.get $n)))
      (local.set $s (i32.add (local.get $s) (i32.load8_u (local.get $p))))
      (local.set $p (i32.add (local.get $p) (i32.const 1)))
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br $l)))
    (local.get $s))
  ;; echo: returns the same buffer packed as (ptr << 32) | len
  (func (export "echo") (param $p i32) (param $n i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get $p)) (i64.const 32))
            (i64.extend_i32_u (local.get $n))))
  (func (export "echo2") (param $p i32) (param $n i32) (result i32 i32)
    (local.get $p) (local.get $n))
  (func (export "add") (param i32 i32) (result i32) (i32.add (local.get 0) (local.get 1)))
  (func (export "addf") (param f64 f32) (result f64) (f64.add (local.get 0) (f64.promote_f32 (local.get 1))))
  (func (export "big") (param i64) (result i64) (local.get 0))
)
"""

BUFFER_WORKER = """
import json
from atoll import Response

async def fetch(request, env, ctx):
    inst = env.B.instantiate()
    e = inst.exports
    out = {
        "sum_bytes": e.sum(b"\\x01\\x02\\x03"),
        "sum_str": e.sum("é"),          # UTF-8: 0xC3 0xA9
        "echo": e.echo.text("hello wörld"),
        "echo2": e.echo2.bytes(b"\\x00\\xff"),
        "echo_json": e.echo.json('{"a": [1, 2]}'),
        "add": e.add(2, 3),
        "add_unsigned": e.add(2**32 - 1, 0),
        "addf": e.addf(1.5, 0.25),
        "big": e.big(2**40),
        "freed": e.freed_count(),
        "has": ["sum" in e, "nope" in e],
    }
    out["echo2"] = list(out["echo2"])
    return Response.json(out)
"""


async def test_bytes_and_str_cross_through_alloc(
    make_worker: WorkerFactory, runtime: Runtime
) -> None:
    root = make_worker(BUFFER_WORKER, modules={"B": BUFFERS})
    result = await get(root, runtime, "")
    assert result.response.status == 200, result.response.body
    import json

    out = json.loads(result.response.body)
    assert out == {
        "sum_bytes": 6,
        "sum_str": 0xC3 + 0xA9,
        "echo": "hello wörld",
        "echo2": [0, 255],
        "echo_json": {"a": [1, 2]},
        "add": 5,
        "add_unsigned": -1,
        "addf": 1.75,
        "big": 2**40,
        # sum x2, echo x3 (input and output), echo2 x2 (input and output), echo.json x2
        "freed": 2 + 2 + 2 + 2,
        "has": [True, False],
    }


@pytest.mark.parametrize(
    ("call", "message"),
    [
        ("e.add(1)", "takes 2 argument(s)"),
        ("e.add('x', 1)", "takes 2 argument(s)"),  # a str expands to (ptr, len): 3 args
        ("e.nope()", "B has no exported function 'nope'"),
        ("e.add(2**40, 1)", "out of range for i32"),
    ],
)
async def test_wrong_calls_are_clear_errors(
    make_worker: WorkerFactory, runtime: Runtime, call: str, message: str
) -> None:
    source = f"""
from atoll import Response

async def fetch(request, env, ctx):
    e = env.B.instantiate().exports
    {call}
    return Response("unreachable")
"""
    root = make_worker(source, modules={"B": BUFFERS})
    result = await get(root, runtime, "")
    assert result.response.status == 500
    assert message in result.response.body.decode()


NO_ALLOC = '(module (memory (export "memory") 1) (func (export "f") (param i32 i32)))'


async def test_bytes_to_a_module_without_alloc(
    make_worker: WorkerFactory, runtime: Runtime
) -> None:
    source = """
from atoll import Response

async def fetch(request, env, ctx):
    env.N.instantiate().exports.f(b"abc")
    return Response("no")
"""
    root = make_worker(source, modules={"N": NO_ALLOC})
    result = await get(root, runtime, "")
    assert "N exports no alloc(len) -> ptr" in result.response.body.decode()


HOST_IMPORTS = """
(module
  (import "atoll:log" "write" (func $log (param i32 i32)))
  (import "env" "abort" (func $abort (param i32 i32 i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "hello from wasm")
  ;; AssemblyScript strings: UTF-16LE with the byte length at ptr - 4
  (data (i32.const 196) "\\06\\00\\00\\00o\\00o\\00f\\00")
  (data (i32.const 296) "\\06\\00\\00\\00a\\00.\\00t\\00")
  (func (export "hello") (call $log (i32.const 100) (i32.const 15)))
  (func (export "fail") (call $abort (i32.const 200) (i32.const 300) (i32.const 7) (i32.const 3)))
)
"""


async def test_guest_log_lines_join_the_request_log(
    make_worker: WorkerFactory, runtime: Runtime
) -> None:
    source = """
from atoll import Response

async def fetch(request, env, ctx):
    env.H.instantiate().exports.hello()
    ctx.log("from python", 42)
    return Response("ok")
"""
    root = make_worker(source, modules={"H": HOST_IMPORTS})
    result = await get(root, runtime, "")
    assert result.logs == ["hello from wasm", "from python 42"]


async def test_assemblyscript_abort_is_a_trap_with_its_message(
    make_worker: WorkerFactory, runtime: Runtime
) -> None:
    source = """
from atoll import Response

async def fetch(request, env, ctx):
    env.H.instantiate().exports.fail()
    return Response("no")
"""
    root = make_worker(source, modules={"H": HOST_IMPORTS})
    result = await get(root, runtime, "")
    assert result.response.status == 500
    assert "abort: oof at a.t:7:3" in result.response.body.decode()


async def test_instances_cannot_outlive_their_request(
    make_worker: WorkerFactory, runtime: Runtime
) -> None:
    source = """
from atoll import Response
KEPT = []

async def fetch(request, env, ctx):
    if KEPT:
        KEPT[0].exports.bump()
    KEPT.append(env.C.instantiate())
    return Response("ok")
"""
    root = make_worker(source, modules={"C": COUNTER})
    worker = load_worker(root, runtime=runtime, dev=True)
    first = await worker.handle(Request("http://t/"), "r1")
    assert first.response.status == 200
    second = await worker.handle(Request("http://t/"), "r2")
    assert second.response.status == 500
    assert "belongs to another request" in second.response.body.decode()


ARGS = """
(module
  (func (export "takes") (param i32 f64) (result i32) (local.get 0))
  (func (export "wide") (param i64) (result i64) (local.get 0)))
"""

ARGS_WORKER = """
from atoll import Response
from atoll.errors import AbiError

async def fetch(request, env, ctx):
    inst = env.A.instantiate()
    out = []
    for call in (
        lambda: inst.exports.takes(1),
        lambda: inst.exports.takes([1], 1.0),
        lambda: inst.exports.takes(2**32, 1.0),
        lambda: inst.exports.takes(1, None),
        lambda: inst.exports.wide(2**64),
    ):
        try:
            call()
        except AbiError as exc:
            out.append(str(exc))
    out.append(str(inst.exports.takes(0xFFFF_FFFF, 2)))
    out.append(str(inst.exports.wide(2**64 - 1)))
    return Response("\\n".join(out))
"""


async def test_argument_errors_read_the_same_on_both_backends(
    make_worker: WorkerFactory, runtime: Runtime
) -> None:
    # CI runs this file on the native backend and again with ATOLL_CAPI=0 (scripts/test.sh):
    # the texts a worker author sees must not depend on the backend.
    root = make_worker(ARGS_WORKER, modules={"A": ARGS})
    worker = load_worker(root, runtime=runtime)
    result = await worker.handle(Request("http://t/"), "r")
    assert result.response.body.decode().splitlines() == [
        "export 'A.takes' takes 2 argument(s), 1 given (signature: A.takes(i32, f64))",
        "export 'A.takes' argument 0: expected int for i32, got list (signature: A.takes(i32, f64))",
        "export 'A.takes' argument 0: 4294967296 out of range for i32 [-2147483648, 4294967295]"
        " (signature: A.takes(i32, f64))",
        "export 'A.takes' argument 1: expected float for f64, got NoneType"
        " (signature: A.takes(i32, f64))",
        "export 'A.wide' argument 0: 18446744073709551616 out of range for i64"
        " [-9223372036854775808, 18446744073709551615] (signature: A.wide(i64))",
        "-1",
        "-1",
    ]


SAME_EXPORT_WORKER = """
from atoll import Response

async def fetch(request, env, ctx):
    exports = env.C.instance.exports
    first = exports.bump
    same = first is exports.bump and first is exports["bump"]
    return Response(f"{same} {first()} {'bump' in dir(exports)}")
"""


async def test_an_export_is_looked_up_once_and_found_again(
    make_worker: WorkerFactory, runtime: Runtime
) -> None:
    root = make_worker(SAME_EXPORT_WORKER, modules={"C": COUNTER})
    worker = load_worker(root, runtime=runtime)
    result = await worker.handle(Request("http://t/"), "r")
    assert result.response.body == b"True 1001 True"
