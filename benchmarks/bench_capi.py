"""Microbenchmark: wasmtime-py's public API against ``atoll.runtime.capi``.

Run from the repository root::

    python -m benchmarks.bench_capi            # ~1 minute
    python -m benchmarks.bench_capi --quick    # a few seconds
    python benchmarks/bench_capi.py

Cases (each timed in batches; batches of all cases interleaved round by
round, so a noisy neighbour hits every case alike; the figure is the median
over rounds of the per-operation mean inside a batch, in wall time and in
the thread's CPU time (steadier on a busy machine: it leaves out time spent
waiting for a core); Python's GC is paused inside a batch and run between
rounds):

- warm call of ``add(i32, i32) -> i32`` on a live instance: ``Func.__call__``
  vs ``FastCaller.call`` vs a ``capi.Bound`` (budget check, deadline, CPU
  charged to a request);
- a request's life: new Store + epoch deadline + instantiate + look up
  ``heavy_compute`` + call it once (``heavy_compute(1)``) + ``store.close()``,
  by these paths: ``Linker.instantiate`` (public), ``InstancePre.instantiate``
  (public), ``capi.new_store`` + ``capi.instantiate`` + ``capi.export_func``
  + ``FastCaller``, the same plus a CPU meter (``capi.install_meter`` +
  ``Meter.begin`` / ``end``), and as atoll runs a request
  (``capi.new_metered_store`` + ``capi.instantiate_metered`` +
  ``capi.export_raw`` + a ``Bound`` call charged to the request); each on
  an engine with the on-demand allocator, the pooling allocator
  (``capi.enable_pooling``, wasmtime's defaults), and the pooling allocator
  keeping 64 KiB of each freed memory/table slot resident
  (``linear_memory_keep_resident``, ``table_keep_resident``).

The module looks like a real worker: a 1-page exported memory with a data
segment, two mutable globals, ``add`` and ``heavy_compute``.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import wasmtime

if __package__ in (None, ""):  # run as a script: make `atoll` importable from src/
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from atoll.runtime import capi
from atoll.runtime.signature import Signature
from tests.runtime import capi_ctypes

WAT = """
(module
  (memory (export "memory") 1)
  (global $requests (mut i32) (i32.const 0))
  (global $acc (mut i64) (i64.const 0))
  (data (i32.const 16) "hello from a seed worker")
  (func (export "add") (param i32 i32) (result i32)
    local.get 0 local.get 1 i32.add)
  (func (export "heavy_compute") (param $n i32) (result i32)
    (local $i i32) (local $x i32)
    (global.set $requests (i32.add (global.get $requests) (i32.const 1)))
    (local.set $x (i32.const 1))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $x (i32.add (i32.mul (local.get $x) (i32.const 1103515245))
                               (i32.const 12345)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (global.set $acc (i64.add (global.get $acc) (i64.extend_i32_u (local.get $x))))
    (i32.store (i32.const 0) (local.get $x))
    (local.get $x))
)
"""

DEADLINE = 1_000_000  # epoch ticks; nothing ticks here, but the store needs a deadline
TICK_NS = 1_000_000  # the meter's tick (atoll's)
BUDGET_NS = 10**15  # a request's CPU budget that never runs out here


class Invocation:
    """What ``Bound`` and ``instantiate_metered`` charge (atoll's ``Invocation``, reduced)."""

    __slots__ = ("cpu_budget_ns", "cpu_used_ns")

    def __init__(self) -> None:
        self.cpu_budget_ns = BUDGET_NS
        self.cpu_used_ns = 0


ALLOCATORS = ("on-demand", "pooling", "pooling+keep-resident")


def _config(allocator: str) -> wasmtime.Config:
    config = wasmtime.Config()
    config.epoch_interruption = True
    if allocator != "on-demand":
        keep = 64 << 10 if allocator == "pooling+keep-resident" else None
        capi.enable_pooling(
            config,
            total_memories=100,
            max_memory_size=128 << 20,
            total_core_instances=100,
            linear_memory_keep_resident=keep,
            table_keep_resident=keep,
        )
    return config


class Setup:
    """One engine, module and pre-linked instance, plus the three fresh-request paths."""

    def __init__(self, allocator: str) -> None:
        self.engine = wasmtime.Engine(_config(allocator))
        self.engine_address = capi.address(self.engine.ptr())
        self.module = wasmtime.Module(self.engine, bytes(wasmtime.wat2wasm(WAT)))
        self.linker = wasmtime.Linker(self.engine)
        self.pre = self.linker.instantiate_pre(self.module)
        self.pre_address = capi.address(self.pre.ptr())
        store = wasmtime.Store(self.engine)
        store.set_epoch_deadline(DEADLINE)
        inst = capi_ctypes.instantiate(self.pre, store)
        heavy = capi_ctypes.export_func(store, inst, "heavy_compute")
        assert heavy is not None
        self.heavy = capi.FastCaller(Signature.of_func(store, heavy), "heavy_compute")
        store.close()

    def fresh_public(self) -> None:
        store = wasmtime.Store(self.engine)
        store.set_epoch_deadline(DEADLINE)
        inst = self.linker.instantiate(store, self.module)
        func = inst.exports(store)["heavy_compute"]
        assert isinstance(func, wasmtime.Func)
        func(store, 1)
        store.close()

    def fresh_pre_public(self) -> None:
        store = wasmtime.Store(self.engine)
        store.set_epoch_deadline(DEADLINE)
        inst = self.pre.instantiate(store)
        func = inst.exports(store)["heavy_compute"]
        assert isinstance(func, wasmtime.Func)
        func(store, 1)
        store.close()

    def fresh_capi(self) -> None:
        store = capi_ctypes.new_store(self.engine)
        capi_ctypes.set_epoch_deadline(store, DEADLINE)
        inst = capi_ctypes.instantiate(self.pre, store)
        func = capi_ctypes.export_func(store, inst, "heavy_compute")
        assert func is not None
        self.heavy.call(store, func, 1)
        store.close()

    def fresh_capi_meter(self) -> None:
        store = capi_ctypes.new_store(self.engine)
        meter = capi_ctypes.install_meter(store, TICK_NS)
        capi_ctypes.set_epoch_deadline(store, DEADLINE)
        meter.begin(BUDGET_NS)
        inst = capi_ctypes.instantiate(self.pre, store)
        func = capi_ctypes.export_func(store, inst, "heavy_compute")
        assert func is not None
        self.heavy.call(store, func, 1)
        meter.end()
        store.close()

    def fresh_capi_request(self) -> None:
        invocation = Invocation()
        store, meter = capi.new_metered_store(
            self.engine, self.engine_address, 128 << 20, 64, 64, 64, TICK_NS
        )
        ids = capi.instantiate_metered(meter, invocation, self.pre_address, store.ctx)
        raw = capi.export_raw(store.ctx, ids, b"heavy_compute")
        assert raw is not None
        self.heavy.bind(meter, store.ctx, raw[1], raw[2])(invocation, 1)
        store.close()


def _timed_batch(fn: Callable[[], object], n: int) -> tuple[float, float]:
    """Mean (wall µs, thread-CPU µs) per call of ``fn`` over ``n`` back-to-back calls."""
    gc.disable()
    try:
        cpu0, wall0 = time.thread_time_ns(), time.perf_counter_ns()
        for _ in range(n):
            fn()
        wall, cpu = time.perf_counter_ns() - wall0, time.thread_time_ns() - cpu0
    finally:
        gc.enable()
    return wall / n / 1000, cpu / n / 1000


def run(rounds: int, batch: int) -> list[tuple[str, float, float, float]]:
    setups = {allocator: Setup(allocator) for allocator in ALLOCATORS}
    plain = setups["on-demand"]

    warm_store = wasmtime.Store(plain.engine)
    warm_store.set_epoch_deadline(DEADLINE)
    warm_inst = capi_ctypes.instantiate(plain.pre, warm_store)
    add = capi_ctypes.export_func(warm_store, warm_inst, "add")
    assert add is not None
    add_fast = capi.FastCaller(Signature.of_func(warm_store, add), "add")
    assert add(warm_store, 1, 2) == 3
    assert add_fast.call(warm_store, add, 1, 2) == 3
    warm_meter = capi_ctypes.install_meter(warm_store, TICK_NS)
    raw_add = add._func
    add_bound = add_fast.bind(
        warm_meter,
        capi.context_address(warm_store),
        raw_add.store_id,
        getattr(raw_add, "__private"),
    )
    invocation = Invocation()
    assert add_bound(invocation, 1, 2) == 3

    cases: list[tuple[str, Callable[[], object], int]] = [
        ("warm call add(i32,i32): Func.__call__", lambda: add(warm_store, 1, 2), batch),
        (
            "warm call add(i32,i32): FastCaller.call",
            lambda: add_fast.call(warm_store, add, 1, 2),
            batch * 10,
        ),
        (
            "warm call add(i32,i32): Bound (budget + deadline + CPU charge)",
            lambda: add_bound(invocation, 1, 2),
            batch * 10,
        ),
    ]
    for label, setup in setups.items():
        cases += [
            (f"fresh, {label}: Linker.instantiate (public)", setup.fresh_public, batch),
            (f"fresh, {label}: InstancePre.instantiate (public)", setup.fresh_pre_public, batch),
            (f"fresh, {label}: capi.instantiate + FastCaller", setup.fresh_capi, batch),
            (f"fresh, {label}: capi + CPU meter", setup.fresh_capi_meter, batch),
            (
                f"fresh, {label}: metered store + instantiate_metered + Bound (atoll)",
                setup.fresh_capi_request,
                batch,
            ),
        ]

    for _, fn, n in cases:  # warm up caches, pools and the branch predictor
        _timed_batch(fn, max(1, n // 4))
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name, _, _ in cases}
    for r in range(rounds):
        order = cases[r % len(cases) :] + cases[: r % len(cases)]
        for name, fn, n in order:
            samples[name].append(_timed_batch(fn, n))
        gc.collect()
    warm_store.close()
    results = []
    for name, values in samples.items():
        walls, cpus = [w for w, _ in values], [c for _, c in values]
        results.append(
            (
                name,
                statistics.median(walls),
                statistics.quantiles(walls, n=10)[-1],
                statistics.median(cpus),
            )
        )
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--batch", type=int, default=200, help="calls per timed batch")
    parser.add_argument("--quick", action="store_true", help="10 rounds of 50")
    args = parser.parse_args(argv)
    rounds, batch = (10, 50) if args.quick else (args.rounds, args.batch)
    results = run(rounds, batch)
    print(
        f"wasmtime {capi.WASMTIME_VERSION}, Python {sys.version.split()[0]}, "
        f"{rounds} rounds x {batch}-call batches (warm FastCaller, Bound: x10)\n"
    )
    print("| case | median µs (wall) | p90 µs (wall) | median µs (thread CPU) |")
    print("|---|---:|---:|---:|")
    for name, median, p90, cpu in results:
        print(f"| {name} | {median:.2f} | {p90:.2f} | {cpu:.2f} |")


if __name__ == "__main__":
    main()
