"""Loading modules: the proposals atoll supports, and modules that once aborted the process.

The hostile cases run in a child process: on the old code they killed the
interpreter with SIGABRT (wasmtime-py's ``str()`` of a ``v128`` or GC type),
which must fail a test, not take pytest down with it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from atoll.api import Request
from atoll.errors import ModuleLoadError
from atoll.worker import Runtime, load_worker
from tests.support import REPO, WorkerFactory, wat

#: The 60-byte module of issue 10: a v128 parameter in an export.
V128_EXPORT = """
(module (func (export "f") (param v128)) (memory (export "memory") 1) (func (export "_start")))
"""

#: name -> (WAT, what must happen: "load" or a substring of the ModuleLoadError).
HOSTILE: dict[str, tuple[str, str]] = {
    "v128 param export": (V128_EXPORT, "load"),
    "v128 result export": (
        '(module (func (export "f") (param i32) (result v128) (i32x4.splat (local.get 0))))',
        "load",
    ),
    "v128 global export": (
        '(module (global (export "g") v128 (v128.const i32x4 1 2 3 4))'
        ' (memory (export "memory") 1) (func (export "f") (param i32) (result i32) local.get 0))',
        "load",
    ),
    "v128 import": (
        '(module (import "env" "abort" (func (param v128))))',
        "imports env.abort with the wrong type (v128) -> ()",
    ),
    "v128 unknown import": (
        '(module (import "x" "y" (func (param v128))))',
        "imports x.y, which atoll does not provide",
    ),
    "(ref func) export": (
        '(module (func (export "f") (param (ref func))))',
        "does not support: function references",
    ),
    "anyref export": ('(module (func (export "f") (param anyref)))', "does not support"),
    "i31ref import": (
        '(module (import "env" "abort" (func (param i31ref))))',
        "does not support",
    ),
    "exnref export": ('(module (func (export "f") (param exnref)))', "does not support: exception"),
    "tag export": ('(module (tag (export "t") (param i32)))', "does not support"),
    "shared memory": ('(module (memory (export "memory") 1 2 shared))', "does not support"),
    "memory64": ('(module (memory (export "memory") i64 1))', "does not support"),
    "global import": (
        '(module (import "env" "abort" (global i32)))',
        "imports env.abort as a global, but atoll provides a function",
    ),
    "externref/funcref export": (
        '(module (func (export "f") (param externref) (result funcref) ref.null func))',
        "load",
    ),
}

_CHILD = textwrap.dedent(
    """
    import json, sys
    from atoll.errors import AtollError
    from atoll.runtime.module import WasmModule
    from atoll.worker import Runtime

    cases = json.loads(sys.stdin.read())
    runtime = Runtime(cache_dir=False)
    cache, linker = runtime.cache, runtime.linker
    for name, path in cases.items():
        print("case", name, flush=True)
        try:
            module = WasmModule.load("M", __import__("pathlib").Path(path), cache=cache, linker=linker)
            print("ok", name, json.dumps({n: [list(i.sig.params), list(i.sig.results)]
                                          for n, i in module.functions.items()}), flush=True)
        except AtollError as exc:
            print("refused", name, json.dumps(str(exc)), flush=True)
    """
)


def _run_child(files: dict[str, Path], capi: str) -> dict[str, tuple[str, str]]:
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD],
        input=json.dumps({k: str(v) for k, v in files.items()}),
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "ATOLL_CAPI": capi},
        timeout=120,
    )
    assert proc.returncode == 0, (
        f"the loader died with {proc.returncode} (a negative code is a signal: "
        f"-6 is SIGABRT)\nstdout:\n{proc.stdout[-2000:]}\nstderr:\n{proc.stderr[-2000:]}"
    )
    results: dict[str, tuple[str, str]] = {}
    for line in proc.stdout.splitlines():
        verdict, _, rest = line.partition(" ")
        if verdict in ("ok", "refused"):
            for name in files:
                if rest.startswith(name + " "):
                    results[name] = (verdict, rest[len(name) + 1 :])
    return results


@pytest.mark.parametrize("capi", ["1", "0"], ids=["c-api", "public-api"])
def test_hostile_signatures_load_or_are_refused_without_aborting(tmp_path: Path, capi: str) -> None:
    files = {}
    for i, (name, (text, _)) in enumerate(HOSTILE.items()):
        files[name] = tmp_path / f"m{i}.wasm"
        files[name].write_bytes(wat(text))
    results = _run_child(files, capi)
    for name, (_, expected) in HOSTILE.items():
        verdict, detail = results[name]
        if expected == "load":
            assert verdict == "ok", (name, detail)
        else:
            assert verdict == "refused", (name, detail)
            assert expected in json.loads(detail), (name, detail)


SIMD = """
(module
  (memory (export "memory") 1)
  ;; sum of (a+1, b+2, c+3, d+4), computed with i32x4 lanes
  (func (export "sum4") (param $a i32) (param $b i32) (param $c i32) (param $d i32) (result i32)
    (local $v v128)
    (local.set $v
      (i32x4.add
        (i32x4.replace_lane 3
          (i32x4.replace_lane 2
            (i32x4.replace_lane 1 (i32x4.splat (local.get $a)) (local.get $b))
            (local.get $c))
          (local.get $d))
        (v128.const i32x4 1 2 3 4)))
    (i32.add
      (i32.add (i32x4.extract_lane 0 (local.get $v)) (i32x4.extract_lane 1 (local.get $v)))
      (i32.add (i32x4.extract_lane 2 (local.get $v)) (i32x4.extract_lane 3 (local.get $v)))))
  ;; a v128 in the signature: loads, but Python cannot call it
  (func (export "splat") (param i32) (result v128) (i32x4.splat (local.get 0)))
  ;; f32x4 through memory: scale 4 floats at ptr by k, in place
  (func (export "scale") (param $ptr i32) (param $k f32)
    (v128.store (local.get $ptr)
      (f32x4.mul (v128.load (local.get $ptr)) (f32x4.splat (local.get $k)))))
)
"""

SIMD_WORKER = """
import struct
from atoll import Response
from atoll.errors import AbiError

async def fetch(request, env, ctx):
    inst = env.S.instantiate()
    out = [inst.exports.sum4(10, 20, 30, 40)]
    inst.memory.write(64, struct.pack("<4f", 1.0, 2.0, 3.0, 4.0))
    inst.exports.scale(64, 2.5)
    out.append(list(struct.unpack("<4f", inst.memory.read(64, 16))))
    try:
        inst.exports.splat(1)
    except AbiError as exc:
        out.append(str(exc))
    warm = env.S.instance.exports.sum4(1, 1, 1, 1)
    out.append(warm)
    return Response.json(out)
"""


async def test_simd_modules_run_and_v128_exports_are_refused_by_name(
    make_worker: WorkerFactory, runtime: Runtime
) -> None:
    root = make_worker(SIMD_WORKER, modules={"S": SIMD})
    worker = load_worker(root, runtime=runtime)
    result = await worker.handle(Request("http://t/"), "rid")
    assert result.response.status == 200, result.response.body
    total, scaled, refused, warm = json.loads(result.response.body)
    assert total == 110
    assert scaled == [2.5, 5.0, 7.5, 10.0]
    assert "export 'S.splat' has type v128" in refused
    assert "(i32) -> (v128)" in refused
    assert warm == 14


async def test_the_60_byte_module_is_served_as_a_whole_wasm_worker(
    make_worker: WorkerFactory, runtime: Runtime
) -> None:
    root = make_worker("", name="v128")
    (root / "main.wasm").write_bytes(wat(V128_EXPORT))
    manifest = (root / "atoll.toml").read_text().replace("src/worker.py", "main.wasm")
    (root / "atoll.toml").write_text(manifest)
    worker = load_worker(root, runtime=runtime)
    result = await worker.handle(Request("http://t/"), "rid")
    # It prints nothing: no CGI headers, a 502; what matters is that it ran.
    assert result.response.status == 502


def test_a_disabled_proposal_names_itself_in_the_load_error(
    make_worker: WorkerFactory, runtime: Runtime
) -> None:
    root = make_worker("", modules={"G": '(module (func (export "f") (param (ref func))))'})
    with pytest.raises(ModuleLoadError) as info:
        load_worker(root, runtime=runtime)
    text = str(info.value)
    assert "wasm module G (pkg/G.wasm) uses a WebAssembly feature atoll does not support" in text
    assert "function references required for non-nullable types" in text
    assert "not gc, function_references, exceptions" in text
