"""``atoll:kv``: KV from wasm guests, over every backend.

The guest is inline WAT that re-exports each ``atoll:kv`` import, so a test
drives the host functions from Python through the ordinary ABI (a ``str``
argument becomes ``ptr, len``). Each test runs once per backend kind.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from atoll.api import Request
from atoll.bindings.kv import KVBackend, KVNamespace, kv_bindings, open_backend
from atoll.bindings.kv.host import INVALID, NO_MEMORY, NOT_FOUND, OK, STORE_ERROR
from atoll.errors import GuestTrapError
from atoll.worker import Result, Runtime, Worker, load_worker
from tests.bindings.kv.kv_support import FakeClock
from tests.support import WorkerFactory, wat

IMPORTS = """
  (import "atoll:kv" "get" (func $get (param i32 i32 i32 i32) (result i64)))
  (import "atoll:kv" "put" (func $put (param i32 i32 i32 i32 i32 i32 i64) (result i32)))
  (import "atoll:kv" "delete" (func $delete (param i32 i32 i32 i32) (result i32)))
  (import "atoll:kv" "list" (func $list (param i32 i32 i32 i32 i32 i32 i32) (result i64)))
  (memory (export "memory") 1)
"""

EXPORTS = """
  (func (export "get") (param i32 i32 i32 i32) (result i64)
    (call $get (local.get 0) (local.get 1) (local.get 2) (local.get 3)))
  (func (export "put") (param i32 i32 i32 i32 i32 i32 i64) (result i32)
    (call $put (local.get 0) (local.get 1) (local.get 2) (local.get 3)
               (local.get 4) (local.get 5) (local.get 6)))
  (func (export "delete") (param i32 i32 i32 i32) (result i32)
    (call $delete (local.get 0) (local.get 1) (local.get 2) (local.get 3)))
  (func (export "list") (param i32 i32 i32 i32 i32 i32 i32) (result i64)
    (call $list (local.get 0) (local.get 1) (local.get 2) (local.get 3)
                (local.get 4) (local.get 5) (local.get 6)))
"""

BUMP_ALLOC = """
  (global $next (mut i32) (i32.const 1024))
  ;; a bump allocator that grows memory when it must
  (func (export "alloc") (param $len i32) (result i32)
    (local $p i32) (local $end i32)
    (local.set $p (global.get $next))
    (local.set $end (i32.add (local.get $p) (local.get $len)))
    (if (i32.gt_u (local.get $end) (i32.mul (memory.size) (i32.const 65536)))
      (then
        (if (i32.eq (memory.grow (i32.add (i32.shr_u (i32.sub (local.get $end)
                      (i32.mul (memory.size) (i32.const 65536))) (i32.const 16)) (i32.const 1)))
                    (i32.const -1))
          (then (return (i32.const 0))))))
    (global.set $next (local.get $end))
    (local.get $p))
"""

GUEST = f"(module {IMPORTS} {BUMP_ALLOC} {EXPORTS})"

RUNNER = """
import json
from atoll import Response

async def fetch(request, env, ctx):
    instance = env.GUEST.instantiate()
    out = []
    for op, *args in json.loads(await request.text()):
        name = op.removesuffix("_hex").removesuffix("_raw")
        result = getattr(instance.exports, name)(*args)
        if name in ("get", "list") and result >= 0 and not op.endswith("_raw"):
            data = instance.memory.read(result >> 32, result & 0xFFFFFFFF)
            if op.endswith("_hex"):
                result = data.hex()
            else:
                result = json.loads(data) if name == "list" else data.decode()
        out.append(result)
    return Response(json.dumps(out))
"""

KV_TOML = """
[[kv_namespaces]]
binding = "CACHE"
id = "cache"

[[kv_namespaces]]
binding = "OTHER"
id = "other"

[vars]
NOT_KV = "a var"
"""


def load(
    make_worker: WorkerFactory,
    runtime: Runtime,
    backend: KVBackend,
    guest: str = GUEST,
    toml: str = KV_TOML,
) -> Worker:
    root: Path = make_worker(RUNNER, modules={"GUEST": guest}, extra=toml)
    return load_worker(root, runtime=runtime, dev=True, extra_bindings=kv_bindings(backend))


async def run(worker: Worker, *ops: list[Any]) -> tuple[list[Any], Result]:
    """Run ``ops`` (``[export, *args]``) in one request; their results, and the request's.

    A ``get``/``list`` result that is a buffer is read out (``get_hex``: as hex;
    ``get_raw``: the packed number as it is).
    """
    request = Request("http://kv.test/", method="POST", body=json.dumps(ops))
    result = await worker.handle(request, "req")
    if result.response.status != 200:
        return [], result
    out: list[Any] = json.loads(result.response.body)
    return out, result


def cache(worker: Worker) -> KVNamespace:
    ns = worker.env["CACHE"]
    assert isinstance(ns, KVNamespace)
    return ns


# -- round trips ---------------------------------------------------------------------------


async def test_put_get_delete_round_trip(
    make_worker: WorkerFactory, runtime: Runtime, backend: KVBackend
) -> None:
    worker = load(make_worker, runtime, backend)
    out, result = await run(
        worker,
        ["get", "CACHE", "k"],
        ["put", "CACHE", "k", "héllo", 0],
        ["get", "CACHE", "k"],
        ["put", "CACHE", "k", "replaced", 0],
        ["get", "CACHE", "k"],
        ["put", "CACHE", "empty", "", 0],
        ["get_raw", "CACHE", "empty"],
        ["delete", "CACHE", "k"],
        ["get", "CACHE", "k"],
        ["delete", "CACHE", "never-there"],
    )
    assert result.outcome.value == "ok", result.response.body
    # an empty value comes back as 0: no buffer
    assert out == [NOT_FOUND, OK, "héllo", OK, "replaced", OK, 0, OK, NOT_FOUND, OK]
    assert result.logs == []


async def test_a_large_value_makes_the_guest_grow_its_memory(
    make_worker: WorkerFactory, runtime: Runtime, backend: KVBackend
) -> None:
    worker = load(make_worker, runtime, backend)
    big = "x" * 300_000  # over SQLite's inline limit, and over the guest's first page
    await cache(worker).put("big", big)
    out, result = await run(worker, ["get", "CACHE", "big"])
    assert out == [big], result.response.body


async def test_values_cross_between_wasm_and_python(
    make_worker: WorkerFactory, runtime: Runtime, backend: KVBackend
) -> None:
    worker = load(make_worker, runtime, backend)
    ns = cache(worker)
    await ns.put("from-python", b"\x00\xffbin")
    await ns.put("json", {"a": [1, 2]})
    out, _ = await run(
        worker,
        ["get_hex", "CACHE", "from-python"],
        ["get", "CACHE", "json"],
        ["put", "CACHE", "from-wasm", '{"n": 1}', 0],
    )
    assert out == ["00ff62696e", '{"a":[1,2]}', OK]
    assert await ns.get("from-wasm", type="json") == {"n": 1}
    assert await ns.get_with_metadata("from-wasm") == ('{"n": 1}', None)
    # a write from wasm drops the process's read cache, as a write from Python does
    await ns.put("cached", "old")
    assert await ns.get("cached", cache_ttl=3600) == "old"
    await run(worker, ["put", "CACHE", "cached", "new", 0])
    assert await ns.get("cached", cache_ttl=3600) == "new"


async def test_ttl_expires_keys_written_from_wasm(
    make_worker: WorkerFactory, runtime: Runtime, backend: KVBackend, clock: FakeClock
) -> None:
    worker = load(make_worker, runtime, backend)
    out, _ = await run(worker, ["put", "CACHE", "soon", "v", 60], ["get", "CACHE", "soon"])
    assert out == [OK, "v"]
    page = await cache(worker).list()
    assert page.keys[0].expiration is not None
    assert abs(page.keys[0].expiration - (clock.now + 60)) <= 1
    clock.advance(61)
    out, _ = await run(worker, ["get", "CACHE", "soon"])
    assert out == [NOT_FOUND]
    assert await cache(worker).get("soon") is None


async def test_list_pages_with_prefix_and_cursor(
    make_worker: WorkerFactory, runtime: Runtime, backend: KVBackend, clock: FakeClock
) -> None:
    worker = load(make_worker, runtime, backend)
    ns = cache(worker)
    for i in range(5):
        await ns.put(f"user:{i}", "v", metadata={"i": i} if i == 0 else None)
    await ns.put("user:9", "v", expiration_ttl=120)
    await ns.put("zzz", "v")
    out, _ = await run(worker, ["list", "CACHE", "user:", "", 3])
    (page,) = out
    assert [k["name"] for k in page["keys"]] == ["user:0", "user:1", "user:2"]
    assert page["keys"][0] == {"name": "user:0", "metadata": {"i": 0}}
    assert page["list_complete"] is False
    out, _ = await run(worker, ["list", "CACHE", "user:", page["cursor"], 1000])
    (rest,) = out
    assert [k["name"] for k in rest["keys"]] == ["user:3", "user:4", "user:9"]
    assert rest["keys"][2] == {"name": "user:9", "expiration": math.ceil(clock.now + 120)}
    assert rest["list_complete"] is True
    assert rest["cursor"] is None
    out, _ = await run(worker, ["list", "CACHE", "", "", 1000], ["list", "CACHE", "nope", "", 10])
    assert len(out[0]["keys"]) == 7
    assert out[1] == {"keys": [], "list_complete": True, "cursor": None}
    zero, _ = await run(worker, ["list", "CACHE", "", "", 0])  # 0: the default, as in Workers
    assert zero[0] == out[0]


# -- limits: codes, and the reason in the log ---------------------------------------------


async def test_limit_errors_are_codes_with_the_reason_in_the_log(
    make_worker: WorkerFactory, runtime: Runtime, backend: KVBackend
) -> None:
    worker = load(make_worker, runtime, backend)
    out, result = await run(
        worker,
        ["put", "CACHE", "k" * 513, "v", 0],
        ["get", "CACHE", ""],
        ["put", "CACHE", "k", "v", 30],
        ["put", "CACHE", "k", "v", -5],
        ["delete", "CACHE", ".."],
        ["list", "CACHE", "p" * 513, "", 10],
        ["list", "CACHE", "", "", 1001],
        ["list", "CACHE", "", "", -1],
        ["list", "CACHE", "", "not a cursor!", 10],
        ["get", "CACHE", "fine"],
    )
    assert result.outcome.value == "ok"
    assert out == [INVALID] * 9 + [NOT_FOUND]
    logs = "\n".join(result.logs)
    assert "atoll:kv.put: KV key 'kkkk" in logs
    assert "over the limit of 512 bytes" in logs
    assert "atoll:kv.get: KV key '' is not allowed" in logs
    assert "expiration_ttl 30 is under the minimum of 60 seconds" in logs
    assert "ttl_seconds -5 is negative" in logs
    assert "prefix 'ppp" in logs  # 513 bytes, over a key's size
    assert "list cursor 'not a cursor!' is not valid" in logs
    assert "list limit -1 is outside 1..1000" in logs
    assert len(result.logs) == 9


async def test_a_value_over_25_mib_is_refused_before_it_is_copied(
    make_worker: WorkerFactory, runtime: Runtime, backend: KVBackend
) -> None:
    guest = f"""(module {IMPORTS} {BUMP_ALLOC} {EXPORTS}
      (func (export "put_huge") (result i32)
        (call $put (i32.const 0) (i32.const 5) (i32.const 8) (i32.const 1)
                   (i32.const 0) (i32.const 26214401) (i64.const 0)))
      (data (i32.const 0) "CACHE")
      (data (i32.const 8) "k"))"""
    worker = load(make_worker, runtime, backend, guest)
    out, result = await run(worker, ["put_huge"])
    assert out == [INVALID]
    assert "26214401 bytes, over the limit" in result.logs[0]
    assert await cache(worker).get("k") is None


async def test_a_key_that_is_not_utf8_is_invalid(
    make_worker: WorkerFactory, runtime: Runtime, backend: KVBackend
) -> None:
    guest = f"""(module {IMPORTS} {BUMP_ALLOC} {EXPORTS}
      (func (export "bad_key") (result i64)
        (call $get (i32.const 0) (i32.const 5) (i32.const 8) (i32.const 2)))
      (data (i32.const 0) "CACHE")
      (data (i32.const 8) "\\ff\\fe"))"""
    worker = load(make_worker, runtime, backend, guest)
    out, result = await run(worker, ["bad_key"])
    assert out == [INVALID]
    assert result.logs == ["atoll:kv.get: the key is not valid UTF-8"]


async def test_a_store_failure_is_a_code_with_the_reason_in_the_log(
    make_worker: WorkerFactory, runtime: Runtime, backend: KVBackend
) -> None:
    worker = load(make_worker, runtime, backend)
    await backend.close()  # from now on every operation fails
    out, result = await run(
        worker, ["get", "CACHE", "k"], ["put", "CACHE", "k", "v", 0], ["list", "CACHE", "", "", 9]
    )
    assert result.outcome.value == "ok"
    assert out == [STORE_ERROR] * 3
    assert all("is closed" in line for line in result.logs)
    assert len(result.logs) == 3


# -- isolation: only the worker's own namespaces ------------------------------------------


async def test_namespaces_of_one_worker_do_not_mix(
    make_worker: WorkerFactory, runtime: Runtime, backend: KVBackend
) -> None:
    worker = load(make_worker, runtime, backend)
    out, _ = await run(
        worker,
        ["put", "CACHE", "k", "in cache", 0],
        ["put", "OTHER", "k", "in other", 0],
        ["get", "CACHE", "k"],
        ["get", "OTHER", "k"],
    )
    assert out == [OK, OK, "in cache", "in other"]


async def test_a_binding_the_worker_does_not_have_is_refused(
    make_worker: WorkerFactory, runtime: Runtime, backend: KVBackend
) -> None:
    worker = load(make_worker, runtime, backend)
    # another worker on the same store, with a namespace this one does not declare
    other = load(
        make_worker,
        runtime,
        backend,
        toml='[[kv_namespaces]]\nbinding = "SECRET"\nid = "secret"\n',
    )
    out, _ = await run(other, ["put", "SECRET", "k", "v", 0])
    assert out == [OK]
    for binding in ("SECRET", "NOT_KV", "GUEST"):
        _, result = await run(worker, ["get", binding, "k"])
        assert result.response.status == 500
        assert result.outcome.value == "exception"
        assert isinstance(result.error, GuestTrapError)
        message = str(result.error)
        assert f"worker 'test-worker' has no KV binding '{binding}'" in message
        assert "(its KV bindings: CACHE, OTHER)" in message
        assert f"no KV binding '{binding}'" in result.response.body.decode()


async def test_a_worker_without_kv_namespaces_reaches_none(
    make_worker: WorkerFactory, runtime: Runtime, backend: KVBackend
) -> None:
    worker = load(make_worker, runtime, backend, toml="")
    assert "CACHE" not in worker.env
    _, result = await run(worker, ["put", "CACHE", "k", "v", 0])
    assert isinstance(result.error, GuestTrapError)
    assert "has no KV binding 'CACHE' (its KV bindings: none)" in str(result.error)


# -- guest faults trap ---------------------------------------------------------------------


async def test_alloc_returning_zero_is_a_code(
    make_worker: WorkerFactory, runtime: Runtime, backend: KVBackend
) -> None:
    guest = f"""(module {IMPORTS} {EXPORTS}
      (global $next (mut i32) (i32.const 1024))
      (global $budget (mut i32) (i32.const 2))  ;; enough for the two arguments, then 0
      (func (export "alloc") (param $len i32) (result i32)
        (local $p i32)
        (if (i32.eqz (global.get $budget)) (then (return (i32.const 0))))
        (global.set $budget (i32.sub (global.get $budget) (i32.const 1)))
        (local.set $p (global.get $next))
        (global.set $next (i32.add (local.get $p) (local.get $len)))
        (local.get $p)))"""
    worker = load(make_worker, runtime, backend, guest)
    await cache(worker).put("k", "v")
    out, result = await run(worker, ["get", "CACHE", "k"])
    assert out == [NO_MEMORY]
    assert result.logs == ["atoll:kv.get: the guest's alloc(1) returned 0"]


async def test_guest_faults_trap_with_a_clear_message(
    make_worker: WorkerFactory, runtime: Runtime, backend: KVBackend
) -> None:
    guest = f"""(module {IMPORTS}
      (func (export "bad_pointer") (result i64)
        (call $get (i32.const 0) (i32.const 5) (i32.const 70000) (i32.const 10)))
      (func (export "get_without_alloc") (result i64)
        (call $get (i32.const 0) (i32.const 5) (i32.const 8) (i32.const 1)))
      (data (i32.const 0) "CACHE")
      (data (i32.const 8) "k"))"""
    worker = load(make_worker, runtime, backend, guest)
    await cache(worker).put("k", "v")
    _, result = await run(worker, ["bad_pointer"])
    assert isinstance(result.error, GuestTrapError)
    assert "atoll:kv.get: key pointer/length 70000/10 is outside the guest's memory" in str(
        result.error
    )
    _, result = await run(worker, ["get_without_alloc"])
    assert isinstance(result.error, GuestTrapError)
    assert "exports no alloc(len) -> ptr" in str(result.error)


GET_K = """
      (func (export "get_k") (result i64)
        (call $get (i32.const 0) (i32.const 5) (i32.const 8) (i32.const 1)))
      (data (i32.const 0) "CACHE")
      (data (i32.const 8) "k")"""


async def test_an_alloc_that_traps_fails_the_request(
    make_worker: WorkerFactory, runtime: Runtime, backend: KVBackend
) -> None:
    guest = f"""(module {IMPORTS} {GET_K}
      (func (export "alloc") (param i32) (result i32) unreachable))"""
    worker = load(make_worker, runtime, backend, guest)
    await cache(worker).put("k", "v")
    _, result = await run(worker, ["get_k"])
    assert isinstance(result.error, GuestTrapError)
    assert "atoll:kv.get: the guest's alloc(1) failed" in str(result.error)
    assert "unreachable" in str(result.error)


async def test_an_alloc_of_the_wrong_type_traps(
    make_worker: WorkerFactory, runtime: Runtime, backend: KVBackend
) -> None:
    guest = f"""(module {IMPORTS} {GET_K}
      (func (export "alloc") (param i64) (result i64) (i64.const 64)))"""
    worker = load(make_worker, runtime, backend, guest)
    await cache(worker).put("k", "v")
    _, result = await run(worker, ["get_k"])
    assert isinstance(result.error, GuestTrapError)
    assert "alloc must be (len: i32) -> i32, not (i64) -> (i64)" in str(result.error)


async def test_an_alloc_that_spins_exceeds_the_cpu_limit(
    make_worker: WorkerFactory, runtime: Runtime, backend: KVBackend
) -> None:
    guest = f"""(module {IMPORTS} {GET_K}
      (func (export "alloc") (param i32) (result i32) (loop br 0) (i32.const 0)))"""
    root = make_worker(RUNNER, modules={"GUEST": guest}, extra=KV_TOML, limits="cpu_ms = 50")
    worker = load_worker(root, runtime=runtime, dev=True, extra_bindings=kv_bindings(backend))
    await cache(worker).put("k", "v")
    _, result = await run(worker, ["get_k"])
    assert result.outcome.value == "exceeded_cpu", result.error
    assert result.response.status == 503


# -- guest-controlled lengths are checked before they are copied ----------------------------

HUGE = 8 * 1024 * 1024  # 8 MiB of 'B' at 65536, in a guest of 144 pages (9 MiB)


async def test_an_8_mib_binding_name_or_key_is_not_copied_into_a_message(
    make_worker: WorkerFactory, runtime: Runtime, backend: KVBackend
) -> None:
    imports = IMPORTS.replace('(memory (export "memory") 1)', '(memory (export "memory") 144)')
    guest = f"""(module {imports} {BUMP_ALLOC} {EXPORTS}
      (func $fill (memory.fill (i32.const 65536) (i32.const 66) (i32.const {HUGE})))
      (func (export "huge_binding") (result i64)
        (call $fill)
        (call $get (i32.const 65536) (i32.const {HUGE}) (i32.const 8) (i32.const 1)))
      (func (export "huge_key") (result i64)
        (call $fill)
        (call $get (i32.const 0) (i32.const 5) (i32.const 65536) (i32.const {HUGE})))
      (func (export "huge_cursor") (result i64)
        (call $fill)
        (call $list (i32.const 0) (i32.const 5) (i32.const 8) (i32.const 0)
                    (i32.const 65536) (i32.const {HUGE}) (i32.const 10)))
      (data (i32.const 0) "CACHE")
      (data (i32.const 8) "k"))"""
    worker = load(make_worker, runtime, backend, guest)
    _, result = await run(worker, ["huge_binding"])
    assert isinstance(result.error, GuestTrapError)
    message = str(result.error)
    assert f"has no KV binding of {HUGE} bytes ('BBBB" in message
    assert "its KV bindings: CACHE, OTHER)" in message
    assert len(message) < 1024
    out, result = await run(worker, ["huge_key"], ["huge_cursor"])
    assert out == [INVALID, INVALID]
    assert [len(line) < 1024 for line in result.logs] == [True, True]
    assert "KV key 'BBB" in result.logs[0]
    assert f"is {HUGE} bytes: over the limit of 512 bytes" in result.logs[0]
    assert f"is {HUGE} bytes: over the limit of 1024 bytes" in result.logs[1]


# -- the bindings in docs/wasm-abi.md compile and work ------------------------------------

DOCS = Path(__file__).resolve().parents[3] / "docs" / "wasm-abi.md"
EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "kv-counter"
ASC = EXAMPLE.parent / "node_modules" / ".bin" / "asc"

ROUNDTRIP_WORKER = """
from atoll import Response

async def fetch(request, env, ctx):
    return Response(str(env.GUEST.instantiate().exports.roundtrip()))
"""


def docs_block(lang: str) -> str:
    page = DOCS.read_text()
    blocks: list[str] = re.findall(
        rf"```{lang}\n(.*?)```", page[page.index("## KV from wasm") :], re.S
    )
    (block,) = blocks
    return block


def compile_or_skip(argv: list[str], cwd: Path, tool: str) -> None:
    if shutil.which(argv[0]) is None and not Path(argv[0]).exists():
        pytest.skip(f"{tool} is not installed: scripts/install-toolchains.sh")
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr


async def roundtrip(
    make_worker: WorkerFactory, runtime: Runtime, tmp_path: Path, binding: str, key: str
) -> tuple[str, str | None]:
    """Call the guest's ``roundtrip()``: its result, and ``key`` of ``binding`` read by Python."""
    backend = open_backend("memory", state_dir=tmp_path)
    try:
        wasm = (tmp_path / "guest.wasm").read_bytes()
        toml = f'[[kv_namespaces]]\nbinding = "{binding}"\nid = "ns"\n'
        root = make_worker(ROUNDTRIP_WORKER, modules={"GUEST": wasm}, extra=toml)
        worker = load_worker(root, runtime=runtime, extra_bindings=kv_bindings(backend))
        result = await worker.handle(Request("http://kv.test/"), "req")
        assert result.response.status == 200, result.response.body
        return result.response.body.decode(), await worker.env[binding].get(key)
    finally:
        await backend.close()


async def test_docs_c_binding(make_worker: WorkerFactory, runtime: Runtime, tmp_path: Path) -> None:
    source = tmp_path / "guest.c"
    source.write_text(
        docs_block("c")
        + """
extern unsigned char __heap_base;
static uintptr_t next;
__attribute__((export_name("alloc"))) void *alloc(size_t len) {
    if (!next) next = (uintptr_t)&__heap_base;
    void *p = (void *)next;
    next += len;
    return p;
}
__attribute__((export_name("roundtrip"))) int64_t roundtrip(void) {
    int32_t put = atoll_kv_put(BINDING, sizeof BINDING - 1, "n", 1, "1234", 4, 0);
    if (put != ATOLL_KV_OK) return put;
    return read_count("n", 1);
}
"""
    )
    linker = shutil.which("wasm-ld") or shutil.which("wasm-ld-14") or "wasm-ld"
    compile_or_skip(
        ["clang-14", "--target=wasm32", "-O2", "-nostdlib", "-ffreestanding",
         f"-fuse-ld={linker}", f"-I{EXAMPLE / 'include'}", "-Wl,--no-entry",
         "-o", "guest.wasm", "guest.c"],
        tmp_path,
        "clang-14",
    )  # fmt: skip
    assert await roundtrip(make_worker, runtime, tmp_path, "COUNTS", "n") == ("1234", "1234")


async def test_docs_rust_binding(
    make_worker: WorkerFactory, runtime: Runtime, tmp_path: Path
) -> None:
    (tmp_path / "lib.rs").write_text(
        """#![no_std]
#![allow(dead_code)]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! { core::arch::wasm32::unreachable() }
extern "C" { static __heap_base: u8; }
static mut NEXT: usize = 0;
#[no_mangle]
pub unsafe extern "C" fn alloc(len: usize) -> usize {
    if NEXT == 0 { NEXT = &__heap_base as *const u8 as usize; }
    let p = NEXT;
    NEXT += len;
    p
}
"""
        + docs_block("rust")
        + """
#[no_mangle]
pub extern "C" fn roundtrip() -> i64 {
    if put("CACHE", "r", b"from rust", 0).is_err() { return -100; }
    match get("CACHE", "r") { Ok(Some(v)) => v.len() as i64, Ok(None) => -101, Err(c) => c }
}
"""
    )
    compile_or_skip(
        ["/usr/bin/rustc", "--edition", "2021", "--crate-type", "cdylib", "-C", "panic=abort",
         "--target", "wasm32-unknown-unknown", "-o", "guest.wasm", "lib.rs"],
        tmp_path,
        "Debian's rustc with the wasm32 standard library",
    )  # fmt: skip
    assert await roundtrip(make_worker, runtime, tmp_path, "CACHE", "r") == ("9", "from rust")


async def test_docs_assemblyscript_binding(
    make_worker: WorkerFactory, runtime: Runtime, tmp_path: Path
) -> None:
    (tmp_path / "index.ts").write_text(
        docs_block("ts")
        + """
export function roundtrip(): i32 {
  if (putText("CACHE", "a", "from assemblyscript", 0) != 0) return -100;
  const v = getText("CACHE", "a");
  return v == null ? -101 : v.length;
}
"""
    )
    if shutil.which("node") is None or not ASC.exists():
        pytest.skip("the AssemblyScript compiler is not installed: scripts/install-toolchains.sh")
    compile_or_skip(
        [str(ASC), "index.ts", "--runtime", "stub", "-o", "guest.wasm"], tmp_path, "asc"
    )
    result = await roundtrip(make_worker, runtime, tmp_path, "CACHE", "a")
    assert result == ("19", "from assemblyscript")


# -- whole-wasm (WASI) workers use the same imports ---------------------------------------

WASI_GUEST = f"""
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  {IMPORTS}
  {BUMP_ALLOC}
  (data (i32.const 0) "CACHE")
  (data (i32.const 8) "greeting")
  (data (i32.const 16) "from-wasi")
  (data (i32.const 32) "Content-Type: text/plain\\n\\n")
  (data (i32.const 64) "written by a WASI program")
  (func (export "_start")
    (local $r i64)
    (drop (call $put (i32.const 0) (i32.const 5) (i32.const 16) (i32.const 9)
                     (i32.const 64) (i32.const 25) (i64.const 0)))
    (local.set $r (call $get (i32.const 0) (i32.const 5) (i32.const 8) (i32.const 8)))
    ;; iovecs at 512: the headers, then the value
    (i32.store (i32.const 512) (i32.const 32))
    (i32.store (i32.const 516) (i32.const 26))
    (i32.store (i32.const 520) (i32.wrap_i64 (i64.shr_u (local.get $r) (i64.const 32))))
    (i32.store (i32.const 524) (i32.wrap_i64 (local.get $r)))
    (drop (call $fd_write (i32.const 1) (i32.const 512) (i32.const 2) (i32.const 600)))))
"""


async def test_a_whole_wasm_worker_uses_kv(
    runtime: Runtime, backend: KVBackend, tmp_path: Path
) -> None:
    root = tmp_path / "wasi-worker"
    root.mkdir()
    (root / "app.wasm").write_bytes(wat(WASI_GUEST))
    # a generous CPU budget: host calls count toward it, and this machine may be loaded
    (root / "atoll.toml").write_text(
        'name = "wasi-kv"\nmain = "app.wasm"\n' + KV_TOML + "[limits]\ncpu_ms = 2000\n"
    )
    worker = load_worker(root, runtime=runtime, dev=True, extra_bindings=kv_bindings(backend))
    await cache(worker).put("greeting", "hello from Python")
    result = await worker.handle(Request("http://kv.test/"), "req")
    assert result.response.status == 200, result.response.body
    assert result.response.body == b"hello from Python"
    assert await cache(worker).get("from-wasi") == "written by a WASI program"
