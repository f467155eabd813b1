"""wasmtime-py imported at first use: a process that serves wasm without it, then fails.

The other tests run in a process that imported wasmtime-py long before (``tests/support``
does), so the first-use path is checked here, in fresh interpreters: a worker is loaded
and served without importing it, its buffers and memory work, and the first failures
(a trap, a stack overflow, the CPU limit, a host function's error) import it and are
mapped exactly as on a process that had it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from atoll.runtime.backend.auto import BACKEND
from atoll.runtime.lazy import wasmtime, wasmtime_errors
from tests.support import WorkerFactory

GUEST = """
(module
  (import "env" "abort" (func $abort (param i32 i32 i32 i32)))
  (memory (export "memory") 1)
  (global $next (mut i32) (i32.const 1024))
  (func (export "alloc") (param $n i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $next))
    (global.set $next (i32.add (global.get $next) (local.get $n)))
    (local.get $p))
  (func (export "sum") (param $p i32) (param $n i32) (result i32)
    (local $s i32)
    (block $done (loop $next
      (br_if $done (i32.eqz (local.get $n)))
      (local.set $s (i32.add (local.get $s) (i32.load8_u (local.get $p))))
      (local.set $p (i32.add (local.get $p) (i32.const 1)))
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br $next)))
    (local.get $s))
  (func (export "one") (result i32) (i32.const 1))
  (func (export "crash") unreachable)
  (func $deep (export "deep") (call $deep))
  (func (export "spin") (loop $l (br $l)))
  (func (export "give_up") (call $abort (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 2)))
)
"""

WORKER = """
import sys
from atoll import Response

async def fetch(request, env, ctx):
    what = request.query.get("what")
    before = "wasmtime" in sys.modules
    inst = env.G.instantiate()
    if what == "calls":
        value = inst.exports.one() + inst.exports.sum(b"\\x01\\x02\\x03")
        size = inst.memory.size
        return Response(f"{value} {size} {before} {'wasmtime' in sys.modules}")
    getattr(inst.exports, what)()
    return Response("no failure")
"""

RUN = """
import asyncio, json, sys
from pathlib import Path
from typing import Any
from atoll.api import Request
from atoll.worker import Runtime, load_worker

async def main():
    worker = load_worker(Path(sys.argv[1]), runtime=Runtime(cache_dir=False), dev=True)
    out = {"loaded": "wasmtime" in sys.modules}
    for what in sys.argv[2:]:
        result = await worker.handle(Request(f"http://t/?what={what}"), "r")
        error = result.error
        out[what] = [
            result.response.status,
            result.outcome.value,
            type(error).__name__ if error is not None else None,
            str(error) if error is not None else result.response.body.decode(),
        ]
    print(json.dumps(out))

asyncio.run(main())
"""


def serve(root: Path, *whats: str) -> dict[str, object]:
    """``whats`` requests in a fresh interpreter; what each gave, and if wasmtime-py was
    imported by the load."""
    result: dict[str, object] = fresh(RUN, str(root), *whats)
    return result


def fresh(code: str, *args: str) -> Any:
    """Run ``code`` with ``args`` in a fresh interpreter (a small pool): the JSON of
    the last line it printed."""
    out = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        check=True,
        env=dict(os.environ, ATOLL_POOL_INSTANCES="8"),
        timeout=120,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


@pytest.fixture
def guest(make_worker: WorkerFactory) -> Path:
    return make_worker(textwrap.dedent(WORKER), modules={"G": GUEST}, limits="cpu_ms = 200")


@pytest.mark.native_backend
def test_a_worker_is_loaded_and_served_without_wasmtime_py(guest: Path) -> None:
    assert BACKEND.name == "native"
    result = serve(guest, "calls")
    assert result["loaded"] is False
    # one() + sum of the bytes 1, 2, 3 through alloc and memory; one page; never imported
    assert result["calls"] == [200, "ok", None, "7 65536 False False"]


@pytest.mark.parametrize(
    ("what", "error", "outcome", "text"),
    [
        ("crash", "GuestTrapError", "exception", "G.crash: wasm trap: wasm `unreachable`"),
        ("deep", "GuestTrapError", "exception", "G.deep: stack overflow"),
        ("spin", "CpuLimitError", "exceeded_cpu", "G.spin: exceeded the request's wasm CPU"),
        ("give_up", "GuestTrapError", "exception", "abort: no message at :1:2"),
    ],
)
def test_the_first_failure_imports_wasmtime_py_and_is_mapped_as_always(
    guest: Path, what: str, error: str, outcome: str, text: str
) -> None:
    result = serve(guest, what, "calls")
    failed = result[what]
    assert isinstance(failed, list)
    assert failed[1:3] == [outcome, error]
    assert text in failed[3]
    # the instance after it works, and wasmtime-py is in now (the failure imported it)
    after = result["calls"]
    assert isinstance(after, list)
    assert after[0] == 200
    assert after[3].endswith("True True")


def test_wasmtime_errors_is_empty_only_before_wasmtime_py_is_imported() -> None:
    import wasmtime as real  # (this test process imported it long ago)

    assert wasmtime_errors() == (real.Trap, real.WasmtimeError)
    assert wasmtime.Trap is real.Trap
    code = (
        "import sys; from atoll.runtime.lazy import wasmtime_errors;"
        "print(wasmtime_errors(), 'wasmtime' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == ["()", "False"]


KV_RUN = """
import asyncio, json, sys
from pathlib import Path
from typing import Any
from atoll.api import Request
from atoll.bindings.kv import kv_bindings, open_backend
from atoll.worker import Runtime, load_worker

async def main():
    backend = open_backend("memory", state_dir=Path(sys.argv[2]))
    worker = load_worker(
        Path(sys.argv[1]), runtime=Runtime(cache_dir=False), dev=True,
        extra_bindings=kv_bindings(backend),
    )
    ops = [["put", "CACHE", "k", "h\\u00e9llo", 0], ["get", "CACHE", "k"]]
    request = Request("http://kv.test/", method="POST", body=json.dumps(ops))
    result = await worker.handle(request, "r")
    body = json.loads(result.response.body)
    print(json.dumps([result.response.status, body, "wasmtime" in sys.modules]))

asyncio.run(main())
"""


@pytest.mark.native_backend
def test_a_kv_get_hands_the_guest_its_value_without_wasmtime_py(
    make_worker: WorkerFactory, tmp_path: Path
) -> None:
    # atoll:kv's get copies the value into a buffer of the guest's alloc, found and
    # called from inside the host function (RawCaller.function, FastCaller.call_ids)
    from tests.bindings.kv.test_kv_host import GUEST as KV_GUEST
    from tests.bindings.kv.test_kv_host import KV_TOML, RUNNER

    root = make_worker(RUNNER, modules={"GUEST": KV_GUEST}, extra=KV_TOML)
    assert fresh(KV_RUN, str(root), str(tmp_path)) == [200, [0, "héllo"], False]


CGI_RUN = """
import asyncio, json, sys
from pathlib import Path
from typing import Any
from atoll.api import Request
from atoll.worker import Runtime, load_worker

async def main():
    worker = load_worker(Path(sys.argv[1]), runtime=Runtime(cache_dir=False), dev=True)
    out = []
    for query in ("", "exit3"):
        result = await worker.handle(Request(f"http://t/?{query}"), "r")
        out.append([result.response.status, result.response.body.decode()])
    out.append("wasmtime" in sys.modules)
    print(json.dumps(out))

asyncio.run(main())
"""


@pytest.mark.native_backend
def test_a_cgi_program_that_exits_is_served_without_wasmtime_py(tmp_path: Path) -> None:
    # proc_exit(3) is served in C: the failure it ends the run with is freed, not made into
    # wasmtime-py's Trap (GuestStore.failure sees the Stdio's exit first)
    root = tmp_path / "cgi"
    root.mkdir()
    probe = Path(__file__).parent / "guests" / "cgi_probe.wasm"
    (root / "app.wasm").write_bytes(probe.read_bytes())
    (root / "atoll.toml").write_text('name = "cgi"\nmain = "app.wasm"\n')
    hello, exited, imported = fresh(CGI_RUN, str(root))
    assert hello == [200, "hello from wasi\n"]
    assert exited[0] == 500
    assert "exited with code 3" in exited[1]
    assert imported is False
