"""The seed table's columns: each runs one case once and returns what it computed and how long.

A runner maps a :class:`~benchmarks.seed_table.cases.Case` to measurements keyed
by column (the node runner fills two: its JS and the same .wasm in V8). A column
with nothing to run for a case (no C builtin for fib) returns nothing for it.
Results are normalised so columns can be compared: digests and images as the
hex SHA-256 of their bytes, counts and numbers as decimal strings.
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
    "node_js": "node JS",
    "v8_wasm": "wasm in V8 (node)",
}


@dataclass(frozen=True)
class Measurement:
    result: str
    ms: float  # the computation
    copy_ms: float | None = None  # inputs into linear memory and outputs back, where there is one


Runner = Callable[[Case], dict[str, Measurement]]


def _sha_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    value = fn()
    return value, (time.perf_counter() - start) * 1000


# --------------------------------------------------------------------------- Python


def run_pure(case: Case) -> dict[str, Measurement]:
    if case.kernel == "sha256":
        digest, ms = _timed(lambda: pure.sha256(case.data))
        return {"pure": Measurement(digest.hex(), ms)}
    if case.kernel == "resize":
        image, ms = _timed(lambda: pure.resize(case.data, *case.params))
        return {"pure": Measurement(_sha_hex(image), ms)}
    if case.kernel == "fib":
        value, ms = _timed(lambda: pure.fib(case.params[0]))
        return {"pure": Measurement(str(value), ms)}
    count, ms = _timed(lambda: pure.json_count(case.data))
    return {"pure": Measurement(str(count), ms)}


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
        digest, ms = _timed(lambda: hashlib.sha256(case.data).digest())
        return {"builtin": Measurement(digest.hex(), ms)}
    if case.kernel == "json":
        count, ms = _timed(lambda: count_values(json.loads(case.data)))
        return {"builtin": Measurement(str(count), ms)}
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
            if case.kernel == "fib":
                value, ms = _timed(lambda: exports.fib(case.params[0]))
                return {"atoll": Measurement(str(value), ms)}
            start = time.perf_counter()
            ptr = memory.alloc(case.data)
            copy_in = time.perf_counter() - start
            if case.kernel == "json":
                count, ms = _timed(lambda: exports.json_count(ptr, len(case.data)))
                return {"atoll": Measurement(str(count), ms, copy_in * 1000)}
            if case.kernel == "sha256":
                packed, ms = _timed(lambda: exports.sha256(ptr, len(case.data)))
            else:
                packed, ms = _timed(lambda: exports.resize(ptr, len(case.data), *case.params))
            start = time.perf_counter()
            packed &= 0xFFFFFFFFFFFFFFFF
            out = memory.read(packed >> 32, packed & 0xFFFFFFFF)
            copy_out = time.perf_counter() - start
            result = out.hex() if case.kernel == "sha256" else _sha_hex(out)
            return {"atoll": Measurement(result, ms, (copy_in + copy_out) * 1000)}


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
        return {"native": Measurement(data["result"], data["ms"])}


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
        return {
            "node_js": Measurement(data["js"]["result"], data["js"]["ms"]),
            "v8_wasm": Measurement(wasm["result"], wasm["ms"], wasm["copy_ms"] or None),
        }


def make_runners(inputs: Path, build_dir: Path) -> tuple[dict[str, Runner], list[str]]:
    """The runners available on this machine, and notes on the ones that are not."""
    runners: dict[str, Runner] = {"pure": run_pure, "builtin": run_builtin, "atoll": AtollRunner()}
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
