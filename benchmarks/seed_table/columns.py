"""The seed table's columns: each runs one case once and returns what it computed and how long.

A runner maps a :class:`~benchmarks.seed_table.cases.Case` to measurements keyed
by column (the node runner fills two: its JS and the same .wasm in V8). A column
with nothing to run for a case (no C builtin for fib) returns nothing for it.
Results are normalised so columns can be compared: digests and images as the
hex SHA-256 of their bytes, counts and numbers as decimal strings.

Times are CPU time of the computation (the thread's, or node's process's), with
wall time kept beside it: on a shared machine, CPU time leaves out the time the
scheduler gave to someone else, so the columns stay comparable within a run.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.seed_table import pure
from benchmarks.seed_table.cases import Case
from benchmarks.servers import BENCH_WORKER, ROOT

__all__ = ["COLUMNS", "Measurement", "Runner", "make_runners"]

NODE_SCRIPT = Path(__file__).with_name("kernels.mjs")
WASM = BENCH_WORKER / "pkg" / "bench.wasm"

#: Column keys, in table order, with their headings.
COLUMNS = {
    "pure": "pure Python",
    "builtin": "CPython builtin",
    "native": "native (rustc)",
    "atoll": "wasm in atoll",
    "wasmtime": "wasm in wasmtime-py, no epochs",
    "node_js": "node JS",
    "v8_wasm": "wasm in V8 (node)",
}


@dataclass(frozen=True)
class Measurement:
    result: str
    ms: float  # CPU time of the computation
    copy_ms: float | None = None  # inputs into linear memory and outputs back, where there is one
    wall_ms: float | None = None  # wall time of the computation


Runner = Callable[[Case], dict[str, Measurement]]


def _sha_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class _Clock:
    """CPU and wall time of what runs between :meth:`start` and :meth:`stop`, in ms."""

    def __init__(self) -> None:
        self.cpu_ms = 0.0
        self.wall_ms = 0.0
        self._cpu = self._wall = 0

    def start(self) -> None:
        self._cpu, self._wall = time.thread_time_ns(), time.perf_counter_ns()

    def stop(self) -> None:
        self.cpu_ms += (time.thread_time_ns() - self._cpu) / 1e6
        self.wall_ms += (time.perf_counter_ns() - self._wall) / 1e6


def _timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    """Call ``fn``: its value, CPU ms, wall ms."""
    clock = _Clock()
    clock.start()
    value = fn()
    clock.stop()
    return value, clock.cpu_ms, clock.wall_ms


def _m(
    column: str, result: str, timing: tuple[Any, float, float], copy: _Clock | None = None
) -> dict[str, Measurement]:
    _, cpu, wall = timing
    return {column: Measurement(result, cpu, copy.cpu_ms if copy else None, wall)}


# --------------------------------------------------------------------------- Python


def run_pure(case: Case) -> dict[str, Measurement]:
    if case.kernel == "sha256":
        t = _timed(lambda: pure.sha256(case.data))
        return _m("pure", t[0].hex(), t)
    if case.kernel == "resize":
        t = _timed(lambda: pure.resize(case.data, *case.params))
        return _m("pure", _sha_hex(t[0]), t)
    if case.kernel == "fib":
        t = _timed(lambda: pure.fib(case.params[0]))
        return _m("pure", str(t[0]), t)
    t = _timed(lambda: pure.json_count(case.data))
    return _m("pure", str(t[0]), t)


def count_values(value: Any) -> int:
    """Values in a parsed JSON tree (keys not counted), without recursion."""
    count = 0
    stack = [value]
    while stack:
        item = stack.pop()
        count += 1
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            stack.extend(item.values())
    return count


def run_builtin(case: Case) -> dict[str, Measurement]:
    """CPython's C implementations: ``hashlib`` and ``json`` (parse, then count the tree)."""
    if case.kernel == "sha256":
        t = _timed(lambda: hashlib.sha256(case.data).digest())
        return _m("builtin", t[0].hex(), t)
    if case.kernel == "json":
        t = _timed(lambda: count_values(json.loads(case.data)))
        return _m("builtin", str(t[0]), t)
    return {}


# --------------------------------------------------------------------------- atoll


class AtollRunner:
    """The kernels through atoll's binding: the bench worker loaded as ``atoll dev`` would.

    Each run takes a fresh instance (not timed) inside a request scope of its own;
    the copy of the input into linear memory (the guest's ``alloc`` + a memmove)
    and of the output back are timed apart from the call.
    """

    def __init__(self) -> None:
        from atoll.worker import Runtime, load_worker

        self.worker = load_worker(BENCH_WORKER, runtime=Runtime())

    @contextlib.contextmanager
    def _request(self) -> Iterator[None]:
        # What Worker.handle does around fetch(): a request's wasm state, current for the call.
        from atoll.runtime.hostfuncs import CURRENT
        from atoll.runtime.invocation import Invocation

        worker = self.worker
        invocation = Invocation(
            worker.runtime.engine, worker.manifest.limits, "bench", worker.name, worker.env
        )
        token = CURRENT.set(invocation)
        try:
            yield
        finally:
            CURRENT.reset(token)
            invocation.close()

    def __call__(self, case: Case) -> dict[str, Measurement]:
        with self._request():
            instance = self.worker.env.BENCH.instantiate()
            exports, memory = instance.exports, instance.memory

            def copy_in() -> int:
                return int(memory.alloc(case.data))

            def copy_out(packed: int) -> bytes:
                packed &= 0xFFFFFFFFFFFFFFFF
                return bytes(memory.read(packed >> 32, packed & 0xFFFFFFFF))

            return run_kernel("atoll", case, exports, copy_in, copy_out)


def run_kernel(
    column: str,
    case: Case,
    exports: Any,
    copy_in: Callable[[], int],
    copy_out: Callable[[int], bytes],
) -> dict[str, Measurement]:
    """One case on an instance: copy in, call, copy out, each timed (copies together)."""
    copy = _Clock()
    if case.kernel == "fib":
        t = _timed(lambda: exports.fib(case.params[0]))
        return _m(column, str(t[0]), t)
    copy.start()
    ptr = copy_in()
    copy.stop()
    n = len(case.data)
    if case.kernel == "json":
        t = _timed(lambda: exports.json_count(ptr, n))
        return _m(column, str(t[0]), t, copy)
    if case.kernel == "sha256":
        t = _timed(lambda: exports.sha256(ptr, n))
    else:
        t = _timed(lambda: exports.resize(ptr, n, *case.params))
    copy.start()
    out = copy_out(t[0])
    copy.stop()
    return _m(column, out.hex() if case.kernel == "sha256" else _sha_hex(out), t, copy)


class _PlainExports:
    """``exports.NAME(...)`` for a plain wasmtime instance (the shape atoll's exports have)."""

    def __init__(self, store: Any, instance: Any) -> None:
        self._store, self._exports = store, instance.exports(store)

    def __getattr__(self, name: str) -> Callable[..., Any]:
        func = self._exports[name]
        return lambda *args: func(self._store, *args)


class WasmtimeRunner:
    """The same .wasm in wasmtime-py alone: no atoll, and no epoch interruption.

    The engine is atoll's but for ``epoch_interruption`` (Cranelift ``speed``,
    512 KiB stack), so the gap to *wasm in atoll* is what interrupting a guest
    on time costs (an epoch check on every function entry and loop back-edge).
    Public API; the copies go through ``Memory.write`` / ``Memory.read``.
    """

    def __init__(self) -> None:
        import wasmtime

        config = wasmtime.Config()
        config.cranelift_opt_level = "speed"
        config.max_wasm_stack = 512 * 1024
        self._wasmtime = wasmtime
        self.engine = wasmtime.Engine(config)
        self.module = wasmtime.Module(self.engine, WASM.read_bytes())

    def __call__(self, case: Case) -> dict[str, Measurement]:
        wasmtime = self._wasmtime
        store = wasmtime.Store(self.engine)
        instance = wasmtime.Instance(store, self.module, [])
        exports = _PlainExports(store, instance)
        memory = instance.exports(store)["memory"]

        def copy_in() -> int:
            ptr = int(exports.alloc(len(case.data))) & 0xFFFFFFFF
            memory.write(store, case.data, ptr)
            return ptr

        def copy_out(packed: int) -> bytes:
            packed &= 0xFFFFFFFFFFFFFFFF
            ptr, n = packed >> 32, packed & 0xFFFFFFFF
            return bytes(memory.read(store, ptr, ptr + n))

        return run_kernel("wasmtime", case, exports, copy_in, copy_out)


# --------------------------------------------------------------------------- native and node


def build_native(out: Path) -> Path | None:
    """Build ``rust/native.rs`` with Debian's rustc into ``out``; None if rustc is missing."""
    if not Path("/usr/bin/rustc").exists():
        return None
    subprocess.run(
        ["bash", str(BENCH_WORKER / "build.sh"), "--native", str(out)],
        check=True,
        capture_output=True,
        text=True,
    )
    return out


class NativeRunner:
    def __init__(self, binary: Path, inputs: Path) -> None:
        self.binary = binary
        self.inputs = inputs

    def __call__(self, case: Case) -> dict[str, Measurement]:
        if case.kernel == "fib":
            args = ["fib", str(case.params[0])]
        else:
            args = [case.kernel, str(self.inputs / case.input_name), *map(str, case.params)]
        out = subprocess.run(
            [str(self.binary), *args], check=True, capture_output=True, text=True, timeout=300
        )
        data = json.loads(out.stdout)
        return {"native": Measurement(data["result"], data["ms"], None, data["wall_ms"])}


class NodeRunner:
    """One node process per case and round: warm-up, then one timed run of JS and of V8 wasm."""

    def __init__(self, node: str, inputs: Path) -> None:
        self.node = node
        self.inputs = inputs

    def __call__(self, case: Case) -> dict[str, Measurement]:
        spec = {
            "kernel": case.kernel,
            "input": str(self.inputs / case.input_name) if case.data else None,
            "params": list(case.params),
            "wasm": str(WASM),
        }
        out = subprocess.run(
            [self.node, str(NODE_SCRIPT), json.dumps(spec)],
            check=True,
            capture_output=True,
            text=True,
            timeout=600,
            cwd=ROOT,
        )
        data = json.loads(out.stdout)
        wasm = data["wasm"]
        js = data["js"]
        return {
            "node_js": Measurement(js["result"], js["ms"], None, js["wall_ms"]),
            "v8_wasm": Measurement(
                wasm["result"], wasm["ms"], wasm["copy_ms"] or None, wasm["wall_ms"]
            ),
        }


def make_runners(inputs: Path, build_dir: Path) -> tuple[dict[str, Runner], list[str]]:
    """The runners available on this machine, and notes on the ones that are not."""
    runners: dict[str, Runner] = {
        "pure": run_pure,
        "builtin": run_builtin,
        "atoll": AtollRunner(),
        "wasmtime": WasmtimeRunner(),
    }
    notes = []
    binary = build_native(build_dir / "bench_native")
    if binary is None:
        notes.append("native: skipped (no /usr/bin/rustc; scripts/install-toolchains.sh)")
    else:
        runners["native"] = NativeRunner(binary, inputs)
    node = shutil.which("node")
    if node is None:
        notes.append("node JS, wasm in V8: skipped (node not found)")
    else:
        runners["node"] = NodeRunner(node, inputs)
    return runners, notes


def python_version() -> str:
    return sys.version.split()[0]
