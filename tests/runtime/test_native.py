"""Tests for the compiled paths of atoll.runtime.capi (``native/*.c``): the native epoch
Ticker, Bound calls charged to a request's CPU budget, ``instantiate_metered`` +
``export_raw``, and host functions behind the C trampoline.

Timing: the only exact assertions are lower bounds that hold on any machine (a Meter
never stops wasm before its allowance is spent; a Ticker never runs ahead of the
monotonic clock); upper bounds are generous wall-time limits.
"""

from __future__ import annotations

import ctypes
import gc
import os
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import wasmtime

from atoll.runtime import capi
from atoll.runtime.signature import Signature
from tests.runtime import capi_ctypes
from tests.support import wat

#: The native backend's own pieces, used directly: not run on the public backend.
pytestmark = pytest.mark.native_backend

MS = 1_000_000
SECOND = 1_000_000_000
TICK_NS = MS

GUEST = wat(
    """
    (module
      (memory (export "memory") 1)
      (global $g (mut i32) (i32.const 7))
      (func (export "add") (param i32 i32) (result i32)
        local.get 0 local.get 1 i32.add)
      (func (export "add64") (param i64 i64) (result i64)
        local.get 0 local.get 1 i64.add)
      (func (export "half32") (param f32) (result f32)
        local.get 0 f32.const 0.5 f32.mul)
      (func (export "half64") (param f64) (result f64)
        local.get 0 f64.const 0.5 f64.mul)
      (func (export "id32") (param i32) (result i32) local.get 0)
      (func (export "swap") (param i32 i64 f32 f64) (result f64 f32 i64 i32)
        local.get 3 local.get 2 local.get 1 local.get 0)
      (func (export "bump") (global.set $g (i32.add (global.get $g) (i32.const 1))))
      (func (export "get_g") (result i32) global.get $g)
      (func $boom (export "boom") (param i32) (result i32) unreachable)
      (func $outer (export "outer") (result i32) i32.const 1 call $boom)
      (func (export "spin") (loop $l br $l))
      (func (export "work") (param $n i32) (result i32) (local $i i32) (local $x i32)
        (block $done
          (loop $next
            (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
            (local.set $x (i32.add (i32.mul (local.get $x) (i32.const 1103515245))
                                   (i32.const 12345)))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br $next)))
        local.get $x))
    """
)


@dataclass
class Invocation:
    """What ``Bound`` and ``instantiate_metered`` charge: any object with these two ints."""

    cpu_budget_ns: int = 60 * SECOND
    cpu_used_ns: int = 0


def _epoch_engine() -> wasmtime.Engine:
    config = wasmtime.Config()
    config.epoch_interruption = True
    return wasmtime.Engine(config)


@pytest.fixture(scope="module")
def ticking() -> Iterator[tuple[wasmtime.Engine, capi.Ticker]]:
    engine = _epoch_engine()
    ticker = capi.start_ticker(engine, TICK_NS)
    yield engine, ticker
    ticker.stop()


@pytest.fixture(scope="module")
def engine(ticking: tuple[wasmtime.Engine, capi.Ticker]) -> wasmtime.Engine:
    return ticking[0]


@pytest.fixture(scope="module")
def pre(engine: wasmtime.Engine) -> wasmtime.InstancePre:
    return wasmtime.Linker(engine).instantiate_pre(wasmtime.Module(engine, GUEST))


STORE_KINDS = ("install_meter", "new_metered_store")


class Guest:
    """One metered store with one instance, set up the way atoll's C API path does.

    ``kind``: ``new_metered_store`` (what atoll uses: the meter is also the store's
    data) or ``new_store`` + ``install_meter``.
    """

    def __init__(
        self, engine: wasmtime.Engine, pre: wasmtime.InstancePre, kind: str = "new_metered_store"
    ) -> None:
        self.store: Any  # a capi.MeteredStore or a wasmtime.Store: wasmtime-py takes both
        if kind == "new_metered_store":
            store, self.meter = capi.new_metered_store(
                engine, capi.address(engine.ptr()), 1 << 24, 8, 8, 8, TICK_NS
            )
            self.store, self.ctx = store, store.ctx
        else:
            self.store = capi_ctypes.new_store(engine)
            self.meter = capi_ctypes.install_meter(self.store, TICK_NS)
            self.ctx = capi.context_address(self.store)
        self.setup = Invocation()
        self.ids = capi.instantiate_metered(
            self.meter, self.setup, capi.address(pre.ptr()), self.ctx
        )
        self.instance = capi.instance_from_raw(self.ids)

    def raw(self, name: str) -> tuple[int, ...]:
        found = capi.export_raw(self.ctx, self.ids, name.encode())
        assert found is not None
        return found

    def fast(self, name: str) -> tuple[capi.FastCaller, wasmtime.Func]:
        func = capi.func_from_raw(self.raw(name))
        return capi.FastCaller(Signature.of_func(self.store, func), name), func

    def bound(self, name: str) -> capi.Bound:
        fast, _ = self.fast(name)
        kind, store_id, private = self.raw(name)
        assert kind == 0
        return fast.bind(self.meter, self.ctx, store_id, private)


@pytest.fixture(params=STORE_KINDS)
def guest(
    request: pytest.FixtureRequest, engine: wasmtime.Engine, pre: wasmtime.InstancePre
) -> Iterator[Guest]:
    g = Guest(engine, pre, request.param)
    yield g
    g.store.close()


def _call_failed(bound: capi.Bound, invocation: Any, *args: int | float) -> BaseException:
    """Call ``bound`` expecting ``CallFailed``; the wasmtime exception it stands for."""
    with pytest.raises(capi.CallFailed) as info:
        bound(invocation, *args)
    err, trap = info.value.args
    assert isinstance(err, int)
    assert isinstance(trap, int)
    assert (err != 0) != (trap != 0)  # exactly one of them
    return capi.failure(err, trap)


# --- Ticker ---------------------------------------------------------------------------


def test_ticker_follows_the_monotonic_clock() -> None:
    # No timed assertion: on a loaded machine the ticker's thread may wake late, by any
    # amount. What must hold whenever it is read: never ahead of the clock (its count
    # starts after t0), and it keeps counting (polled, with a deadline only for a stuck one).
    engine = _epoch_engine()
    t0 = time.monotonic_ns()
    ticker = capi.start_ticker(engine, TICK_NS)
    try:
        assert ticker.running
        reads = []
        deadline = time.monotonic() + 30
        while (ticks := ticker.ticks) < 10:
            assert time.monotonic() < deadline, f"the ticker is stuck at {ticks} ticks"
            reads.append((ticks, time.monotonic_ns() - t0))
            time.sleep(0.001)
        elapsed = time.monotonic_ns() - t0
        assert ticks <= elapsed // TICK_NS  # never ahead of the clock
        assert all(seen <= at // TICK_NS for seen, at in reads)
        assert [seen for seen, _ in reads] == sorted(seen for seen, _ in reads)  # never back
        while ticker.ticks == ticks:  # and it goes on
            assert time.monotonic() < deadline, f"the ticker stopped at {ticks} ticks"
            time.sleep(0.001)
    finally:
        ticker.stop()


def test_ticker_stop_joins_and_freezes_the_epoch() -> None:
    engine = _epoch_engine()
    ticker = capi.start_ticker(engine, TICK_NS)
    module = wasmtime.Module(engine, GUEST)
    store = capi_ctypes.new_store(engine)
    try:
        instance = capi_ctypes.instantiate(wasmtime.Linker(engine).instantiate_pre(module), store)
        spin = capi_ctypes.export_func(store, instance, "spin")
        work = capi_ctypes.export_func(store, instance, "work")
        assert spin is not None
        assert work is not None
        fast_spin = capi.FastCaller(Signature.of_func(store, spin), "spin")
        fast_work = capi.FastCaller(Signature.of_func(store, work), "work")
        store.set_epoch_deadline(1)
        with pytest.raises(wasmtime.Trap) as info:  # a running ticker interrupts
            fast_spin.call(store, spin)
        assert info.value.trap_code == wasmtime.TrapCode.INTERRUPT
        ticker.stop()
        assert not ticker.running
        frozen = ticker.ticks
        time.sleep(0.03)
        assert ticker.ticks == frozen
        ticker.stop()  # idempotent
        # No more epoch increments: a deadline of one tick never comes.
        store.set_epoch_deadline(1)
        fast_work.call(store, work, 3_000_000)
        time.sleep(0.005)
        fast_work.call(store, work, 3_000_000)
    finally:
        ticker.stop()
        store.close()


def test_ticker_interrupts_a_guest_after_its_deadline() -> None:
    engine = _epoch_engine()
    ticker = capi.start_ticker(engine, TICK_NS)
    store = capi_ctypes.new_store(engine)
    try:
        instance = capi_ctypes.instantiate(
            wasmtime.Linker(engine).instantiate_pre(wasmtime.Module(engine, GUEST)), store
        )
        spin = capi_ctypes.export_func(store, instance, "spin")
        assert spin is not None
        fast = capi.FastCaller(Signature.of_func(store, spin), "spin")
        before = ticker.ticks
        start = time.monotonic_ns()
        store.set_epoch_deadline(200)
        with pytest.raises(wasmtime.Trap) as info:
            fast.call(store, spin)
        elapsed = time.monotonic_ns() - start
        assert info.value.trap_code == wasmtime.TrapCode.INTERRUPT
        # 200 increments take 200 ms of clock, less only what the ticker was behind when
        # the deadline was set (it catches up in a burst): not 100 ms of it.
        assert 100 * MS <= elapsed < 2 * SECOND
        deadline = time.monotonic() + 2
        while ticker.ticks < before + 200 and time.monotonic() < deadline:
            time.sleep(0.001)
        assert ticker.ticks >= before + 200
    finally:
        ticker.stop()
        store.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="counts /proc/self/task")
def test_ticker_thread_ends_with_stop_and_with_the_object() -> None:
    def threads() -> set[str]:
        return set(os.listdir("/proc/self/task"))

    engine = _epoch_engine()
    for drop in (False, True):
        before = threads()
        ticker = capi.start_ticker(engine, TICK_NS)
        started = threads() - before
        assert len(started) == 1  # the ticker's native thread
        if drop:
            del ticker  # dropped without stop(): the destructor joins the thread
            gc.collect()
        else:
            ticker.stop()
        # joined; the kernel may list an exited thread for a moment longer
        deadline = time.monotonic() + 5
        while started & threads() and time.monotonic() < deadline:
            time.sleep(0.001)
        assert not started & threads()


def test_ticker_keeps_its_engine_alive() -> None:
    engine = _epoch_engine()
    ref = weakref.ref(engine)
    ticker = capi.start_ticker(engine, TICK_NS)
    del engine
    gc.collect()
    assert ref() is not None  # the native thread still increments its epoch
    ticker.stop()
    assert ref() is not None  # held until the Ticker itself goes
    del ticker
    gc.collect()
    assert ref() is None


@pytest.mark.parametrize("tick_ns", [0, -1])
def test_ticker_rejects_a_bad_tick(tick_ns: int) -> None:
    with pytest.raises(ValueError, match="tick_ns must be positive"):
        capi.start_ticker(_epoch_engine(), tick_ns)
    with pytest.raises(ValueError, match="NULL engine"):
        capi.Ticker(0, TICK_NS)


# --- Bound ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "args", "expected"),
    [
        ("add", (2, 3), 5),
        ("add", (2**31 - 1, 1), -(2**31)),
        ("add", (2**32 - 1, 0), -1),  # unsigned in, signed out
        ("add64", (2**40, 5), 2**40 + 5),
        ("add64", (2**64 - 1, 0), -1),
        ("half32", (3.0,), 1.5),
        ("half32", (0.1,), ctypes.c_float(ctypes.c_float(0.1).value * 0.5).value),
        ("half64", (7,), 3.5),
        ("swap", (1, 2**40, 2.5, 3.25), (3.25, 2.5, 2**40, 1)),
        ("get_g", (), 7),
        ("bump", (), None),
    ],
)
def test_bound_results(
    guest: Guest, name: str, args: tuple[int | float, ...], expected: object
) -> None:
    bound = guest.bound(name)
    assert bound.sig.name == name
    invocation = Invocation()
    assert bound(invocation, *args) == expected
    fast, func = guest.fast(name)
    if name != "bump":
        assert fast.call(guest.store, func, *args) == expected


def test_bound_and_fast_caller_change_the_same_instance(guest: Guest) -> None:
    bump, get_g = guest.bound("bump"), guest.bound("get_g")
    invocation = Invocation()
    bump(invocation)
    bump(invocation)
    fast, func = guest.fast("get_g")
    assert get_g(invocation) == fast.call(guest.store, func) == 9


@pytest.mark.parametrize(
    ("name", "args", "error", "message"),
    [
        ("add", (1,), TypeError, r"^export 'add' takes 2 argument\(s\), 1 given$"),
        ("add", (1, 2, 3), TypeError, r"^export 'add' takes 2 argument\(s\), 3 given$"),
        ("add", (1, 2**32), ValueError, r"'add' argument 1: 4294967296 out of range for i32"),
        ("add", (-(2**31) - 1, 0), ValueError, r"'add' argument 0: .* out of range for i32"),
        ("add64", (2**64, 0), ValueError, r"'add64' argument 0: .* out of range for i64"),
        ("add64", (-(2**63) - 1, 0), ValueError, r"'add64' argument 0: .* out of range for i64"),
        ("add", (1.5, 2), TypeError, r"'add' argument 0: expected int for i32, got float"),
        ("add", ("1", 2), TypeError, r"'add' argument 0: expected int for i32, got str"),
        ("half64", ("1.0",), TypeError, r"'half64' argument 0: expected float for f64, got str"),
        ("half64", (10**400,), ValueError, r"'half64' argument 0: .* out of range for f64"),
        ("half32", (None,), TypeError, r"'half32' argument 0: expected float for f32, got None"),
    ],
)
def test_bound_argument_errors_match_fast_caller(
    guest: Guest, name: str, args: tuple[Any, ...], error: type[Exception], message: str
) -> None:
    fast, func = guest.fast(name)
    with pytest.raises(error, match=message) as from_fast:
        fast.call(guest.store, func, *args)
    invocation = Invocation(cpu_budget_ns=0)  # arguments are checked before the budget
    with pytest.raises(error, match=message) as from_bound:
        guest.bound(name)(invocation, *args)
    assert str(from_bound.value) == str(from_fast.value)
    assert invocation.cpu_used_ns == 0


def test_bound_call_shape(guest: Guest) -> None:
    bound = guest.bound("add")
    with pytest.raises(TypeError, match=r"Bound\(invocation, \*args\)"):
        bound()  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="positional arguments only"):
        bound(Invocation(), 1, b=2)  # type: ignore[call-arg]
    with pytest.raises(AttributeError, match="cpu_budget_ns"):
        bound(object(), 1, 2)
    with pytest.raises(TypeError):
        bound(Invocation(cpu_budget_ns="lots"), 1, 2)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        capi.Bound(bound.sig, "not a meter", guest.ctx, 0, 0)  # type: ignore[arg-type]


@pytest.mark.parametrize(("budget", "used"), [(0, 0), (5 * MS, 5 * MS), (5 * MS, 6 * MS)])
def test_bound_refuses_a_spent_budget(guest: Guest, budget: int, used: int) -> None:
    bump = guest.bound("bump")
    invocation = Invocation(cpu_budget_ns=budget, cpu_used_ns=used)
    with pytest.raises(capi.BudgetSpent):
        bump(invocation)
    assert invocation.cpu_used_ns == used  # nothing charged
    assert guest.bound("get_g")(Invocation()) == 7  # and the guest never ran


def test_bound_charges_the_threads_cpu_time(guest: Guest) -> None:
    work = guest.bound("work")
    invocation = Invocation(cpu_used_ns=1_000)
    before = capi.thread_ns()
    work(invocation, 2_000_000)
    spent = capi.thread_ns() - before
    first = invocation.cpu_used_ns - 1_000
    assert 0 < first <= spent  # what the call itself took, no more than the thread did
    work(invocation, 2_000_000)
    assert invocation.cpu_used_ns > first + 1_000  # charges add up


def test_bound_stops_a_spinning_guest_when_its_budget_is_spent(guest: Guest) -> None:
    spin = guest.bound("spin")
    invocation = Invocation(cpu_budget_ns=50 * MS, cpu_used_ns=20 * MS)
    guest.store.set_epoch_deadline(1)  # Bound sets its own deadline
    start = time.monotonic()
    error = _call_failed(spin, invocation)
    assert time.monotonic() - start < 10
    assert type(error) is wasmtime.WasmtimeError
    assert capi.is_interrupt(error)
    assert invocation.cpu_used_ns >= 50 * MS  # charged at least the 30 ms that were left
    assert guest.meter.allow_ns == 30 * MS
    with pytest.raises(capi.BudgetSpent):
        spin(invocation)
    assert guest.bound("add")(Invocation(), 1, 2) == 3  # the store still works


def test_bound_trap_becomes_a_trap_with_frames(guest: Guest) -> None:
    outer = guest.bound("outer")
    invocation = Invocation()
    with pytest.raises(capi.CallFailed) as info:
        outer(invocation)
    err, trap_address = info.value.args
    assert err == 0
    assert trap_address != 0
    trap = capi.failure(err, trap_address)
    assert isinstance(trap, wasmtime.Trap)
    assert trap.trap_code == wasmtime.TrapCode.UNREACHABLE
    assert [f.func_name for f in trap.frames] == ["boom", "outer"]
    assert not capi.is_interrupt(trap)
    assert invocation.cpu_used_ns > 0  # a failed call is charged too
    assert guest.bound("add")(invocation, 2, 2) == 4


def test_bound_result_with_an_uncooperative_invocation(guest: Guest) -> None:
    @dataclass(frozen=True)
    class Frozen:
        cpu_budget_ns: int = SECOND
        cpu_used_ns: int = 0

    # Charging fails after a successful call: that error is raised.
    with pytest.raises(AttributeError, match="cpu_used_ns"):
        guest.bound("bump")(Frozen())
    assert guest.bound("get_g")(Invocation()) == 8  # the call did run
    # After a failed call the call's own failure wins.
    error = _call_failed(guest.bound("outer"), Frozen())
    assert isinstance(error, wasmtime.Trap)


# --- instantiate_metered and export_raw ---------------------------------------------------


def test_instantiate_metered_gives_a_working_instance(
    guest: Guest, pre: wasmtime.InstancePre
) -> None:
    store_id, index = guest.ids
    assert guest.instance._instance.store_id == store_id
    assert getattr(guest.instance._instance, "__private") == index
    assert 0 < guest.setup.cpu_used_ns < SECOND
    kind, func_store, _private = guest.raw("add")
    assert (kind, func_store) == (0, store_id)
    add = capi.func_from_raw(guest.raw("add"))
    assert add(guest.store, 20, 22) == 42  # the public API accepts it
    exports = guest.instance.exports(guest.store)  # and the Instance
    assert "spin" in exports
    assert capi.export_raw(guest.ctx, guest.ids, b"missing") is None
    assert capi.export_raw(guest.ctx, guest.ids, "ünïcode".encode()) is None
    memory = capi.export_raw(guest.ctx, guest.ids, b"memory")
    assert memory is not None
    assert memory[:2] == (3, store_id)


def test_export_raw_memory_ids_match_wasmtime(engine: wasmtime.Engine) -> None:
    from wasmtime import _ffi as ffi

    module = wasmtime.Module(
        engine, wat('(module (memory (export "m0") 1) (memory (export "m1") 1))')
    )
    store = capi_ctypes.new_store(engine)
    try:
        instance = capi_ctypes.instantiate(wasmtime.Linker(engine).instantiate_pre(module), store)
        ids = (instance._instance.store_id, getattr(instance._instance, "__private"))
        for name in ("m0", "m1"):
            item = ffi.wasmtime_extern_t()
            assert ffi.wasmtime_instance_export_get(
                store._context(), ctypes.byref(instance._instance), name.encode(), 2, item
            )
            memory = item.of.memory
            expected = (
                3,
                memory._anon_1.store_id,
                getattr(memory._anon_1, "__private1"),
                getattr(memory, "__private2"),
            )
            assert capi.export_raw(capi.context_address(store), ids, name.encode()) == expected
    finally:
        store.close()


def test_instantiate_metered_charges_the_start_function(engine: wasmtime.Engine) -> None:
    module = wasmtime.Module(
        engine,
        wat(
            """
            (module
              (global $x (mut i32) (i32.const 0))
              (func $start (local $i i32)
                (loop $l
                  (local.set $i (i32.add (local.get $i) (i32.const 1)))
                  (br_if $l (i32.lt_u (local.get $i) (i32.const 3000000))))
                (global.set $x (local.get $i)))
              (start $start)
              (func (export "x") (result i32) global.get $x))
            """
        ),
    )
    pre = wasmtime.Linker(engine).instantiate_pre(module)
    store = capi_ctypes.new_store(engine)
    meter = capi_ctypes.install_meter(store, TICK_NS)
    invocation = Invocation(cpu_used_ns=7)
    try:
        before = capi.thread_ns()
        ids = capi.instantiate_metered(
            meter, invocation, capi.address(pre.ptr()), capi.context_address(store)
        )
        spent = capi.thread_ns() - before
        assert 0 < invocation.cpu_used_ns - 7 <= spent
        x = capi_ctypes.export_func(store, capi.instance_from_raw(ids), "x")
        assert x is not None
        assert x(store) == 3_000_000
    finally:
        store.close()


def test_instantiate_metered_refuses_a_spent_budget(
    engine: wasmtime.Engine, pre: wasmtime.InstancePre
) -> None:
    store = capi_ctypes.new_store(engine)
    meter = capi_ctypes.install_meter(store, TICK_NS)
    invocation = Invocation(cpu_budget_ns=MS, cpu_used_ns=MS)
    try:
        with pytest.raises(capi.BudgetSpent):
            capi.instantiate_metered(
                meter, invocation, capi.address(pre.ptr()), capi.context_address(store)
            )
        assert invocation.cpu_used_ns == MS
    finally:
        store.close()


def test_instantiate_metered_stops_a_spinning_start_function(engine: wasmtime.Engine) -> None:
    module = wasmtime.Module(engine, wat("(module (func $s (loop $l br $l)) (start $s))"))
    pre = wasmtime.Linker(engine).instantiate_pre(module)
    store = capi_ctypes.new_store(engine)
    meter = capi_ctypes.install_meter(store, TICK_NS)
    invocation = Invocation(cpu_budget_ns=30 * MS)
    try:
        start = time.monotonic()
        with pytest.raises(wasmtime.WasmtimeError) as info:
            capi.instantiate_metered(
                meter, invocation, capi.address(pre.ptr()), capi.context_address(store)
            )
        assert time.monotonic() - start < 10
        assert capi.is_interrupt(info.value)
        assert invocation.cpu_used_ns >= 30 * MS
    finally:
        store.close()


def test_instantiate_metered_start_trap(engine: wasmtime.Engine) -> None:
    module = wasmtime.Module(engine, wat("(module (func $start unreachable) (start $start))"))
    pre = wasmtime.Linker(engine).instantiate_pre(module)
    store = capi_ctypes.new_store(engine)
    meter = capi_ctypes.install_meter(store, TICK_NS)
    try:
        with pytest.raises(wasmtime.Trap) as info:
            capi.instantiate_metered(
                meter, Invocation(), capi.address(pre.ptr()), capi.context_address(store)
            )
        assert info.value.trap_code == wasmtime.TrapCode.UNREACHABLE
        assert info.value.frames[0].func_name == "start"
    finally:
        store.close()


def test_instantiate_metered_checks_its_arguments(guest: Guest) -> None:
    with pytest.raises(TypeError, match="instantiate"):
        capi.instantiate_metered("meter", Invocation(), 0, guest.ctx)  # type: ignore[arg-type]


# --- host functions (define_host_func) ------------------------------------------------------

I32, I64 = wasmtime.ValType.i32(), wasmtime.ValType.i64()
F32, F64 = wasmtime.ValType.f32(), wasmtime.ValType.f64()

HOST_GUEST = wat(
    """
    (module
      (import "host" "probe" (func $probe (param i32 i64 f32 f64)))
      (import "host" "r32" (func $r32 (param i32) (result i32)))
      (import "host" "r64" (func $r64 (param i32) (result i64)))
      (import "host" "rf32" (func $rf32 (param i32) (result f32)))
      (import "host" "rf64" (func $rf64 (param i32) (result f64)))
      (import "host" "fail" (func $fail (param i32)))
      (import "host" "twice" (func $twice (param i32 i64) (result i64)))
      (import "host" "down" (func $down (param i32) (result i32)))
      (import "host" "greet" (func $greet (param i32 i32) (result i32)))
      (memory (export "memory") 1)
      (data (i32.const 64) "hello, host")
      (func (export "probe") (param i32 i64 f32 f64)
        (call $probe (local.get 0) (local.get 1) (local.get 2) (local.get 3)))
      (func (export "r32") (param i32) (result i32) (call $r32 (local.get 0)))
      (func (export "r64") (param i32) (result i64) (call $r64 (local.get 0)))
      (func (export "rf32") (param i32) (result f32) (call $rf32 (local.get 0)))
      (func (export "rf64") (param i32) (result f64) (call $rf64 (local.get 0)))
      (func (export "fail") (param i32) (call $fail (local.get 0)))
      (func (export "mul") (param i64 i64) (result i64) local.get 0 local.get 1 i64.mul)
      (func (export "twice") (param i32 i64) (result i64 i32)
        (call $twice (local.get 0) (local.get 1)) local.get 0)
      ;; countdown(n) = n + host.down(n - 1), and host.down calls countdown again
      (func (export "countdown") (param i32) (result i32)
        (if (result i32) (i32.eqz (local.get 0))
          (then (i32.const 0))
          (else (i32.add (local.get 0)
                         (call $down (i32.sub (local.get 0) (i32.const 1)))))))
      (func (export "greet") (result i32) (call $greet (i32.const 64) (i32.const 11))))
    """
)


class Hosts:
    """The host side of HOST_GUEST: records what it receives."""

    def __init__(self) -> None:
        self.seen: list[tuple[Any, ...]] = []
        self.results: dict[str, Any] = {}
        self.callers: list[Any] = []

    def probe(self, caller: Any, a: int, b: int, c: float, d: float) -> None:
        self.callers.append(caller)
        self.seen.append((a, b, c, d))

    def r32(self, caller: Any, which: int) -> Any:
        return self.results["r32"]

    def r64(self, caller: Any, which: int) -> Any:
        return self.results["r64"]

    def rf32(self, caller: Any, which: int) -> Any:
        return self.results["rf32"]

    def rf64(self, caller: Any, which: int) -> Any:
        return self.results["rf64"]

    def fail(self, caller: Any, how: int) -> None:
        if how == 1:
            raise wasmtime.Trap("stopped on purpose")
        if how == 2:
            raise KeyError("nope")
        raise RuntimeError(f"how={how}")

    def twice(self, caller: Any, a: int, b: int) -> int:
        # wasm -> host -> wasm: FastCaller with the RawCaller as the store
        mul = caller.get("mul")
        assert isinstance(mul, wasmtime.Func)
        fast = capi.FastCaller(Signature.of_func(caller, mul), "mul")
        product = fast.call(caller, mul, a, b)
        assert isinstance(product, int)
        return product + 1

    def down(self, caller: Any, n: int) -> int:
        countdown = caller.get("countdown")
        assert isinstance(countdown, wasmtime.Func)
        result = capi.FastCaller(Signature.of_func(caller, countdown), "countdown").call(
            caller, countdown, n
        )
        assert isinstance(result, int)
        return result

    def greet(self, caller: Any, ptr: int, length: int) -> int:
        address, size = caller.memory_view()
        assert size == 65536
        text = ctypes.string_at(address + ptr, length)
        ctypes.memmove(address + ptr, text.upper(), length)
        assert caller.memory_view(b"nothing") == (0, 0)
        return len(text)


def _host_linker(engine: wasmtime.Engine, hosts: Hosts) -> wasmtime.Linker:
    linker = wasmtime.Linker(engine)
    types: dict[str, wasmtime.FuncType] = {
        "probe": wasmtime.FuncType([I32, I64, F32, F64], []),
        "r32": wasmtime.FuncType([I32], [I32]),
        "r64": wasmtime.FuncType([I32], [I64]),
        "rf32": wasmtime.FuncType([I32], [F32]),
        "rf64": wasmtime.FuncType([I32], [F64]),
        "fail": wasmtime.FuncType([I32], []),
        "twice": wasmtime.FuncType([I32, I64], [I64]),
        "down": wasmtime.FuncType([I32], [I32]),
        "greet": wasmtime.FuncType([I32, I32], [I32]),
    }
    for name, ty in types.items():
        capi.define_host_func(linker, "host", name, ty, getattr(hosts, name))
    return linker


class HostGuest:
    def __init__(self, engine: wasmtime.Engine) -> None:
        self.hosts = Hosts()
        self.linker = _host_linker(engine, self.hosts)
        self.pre = self.linker.instantiate_pre(wasmtime.Module(engine, HOST_GUEST))
        self.store = capi_ctypes.new_store(engine)
        self.store.set_epoch_deadline(10**9)
        self.instance = capi_ctypes.instantiate(self.pre, self.store)

    def call(self, name: str, *args: int | float) -> Any:
        func = capi_ctypes.export_func(self.store, self.instance, name)
        assert func is not None
        return capi.FastCaller(Signature.of_func(self.store, func), name).call(
            self.store, func, *args
        )


@pytest.fixture
def host_guest(engine: wasmtime.Engine) -> Iterator[HostGuest]:
    g = HostGuest(engine)
    yield g
    g.store.close()


def test_host_parameters(host_guest: HostGuest) -> None:
    host_guest.call("probe", -1, -1, 0.1, 0.1)
    host_guest.call("probe", 2**31, 2**63, -2.5, 1e300)
    host_guest.call("probe", 7, 2**40, 1e39, -0.0)
    assert host_guest.hosts.seen == [
        (2**32 - 1, -1, ctypes.c_float(0.1).value, 0.1),  # i32 unsigned, i64 signed
        (2**31, -(2**63), -2.5, 1e300),
        (7, 2**40, float("inf"), -0.0),
    ]
    assert all(type(c) is capi.RawCaller for c in host_guest.hosts.callers)


@pytest.mark.parametrize(
    ("name", "returned", "expected"),
    [
        ("r32", 5, 5),
        ("r32", 2**32 - 1, -1),  # written as bits: the guest sees it signed
        ("r32", -1, -1),
        ("r32", True, 1),
        ("r64", -(2**63), -(2**63)),
        ("r64", 2**64 - 1, -1),
        ("rf32", 0.1, ctypes.c_float(0.1).value),
        ("rf32", 3, 3.0),
        ("rf64", 0.1, 0.1),
        ("rf64", -7, -7.0),
    ],
)
def test_host_results(host_guest: HostGuest, name: str, returned: object, expected: object) -> None:
    host_guest.hosts.results[name] = returned
    result = host_guest.call(name, 0)
    assert result == expected
    assert type(result) is type(expected)


def _host_failure(host_guest: HostGuest, export: str, *args: int) -> BaseException:
    from wasmtime import _func

    with pytest.raises((wasmtime.Trap, wasmtime.WasmtimeError)) as info:
        host_guest.call(export, *args)
    assert _func.LAST_EXCEPTION is None  # nothing parked in wasmtime-py's global
    assert not capi.is_interrupt(info.value)
    return info.value


def test_host_trap_carries_its_message(host_guest: HostGuest) -> None:
    error = _host_failure(host_guest, "fail", 1)
    assert "stopped on purpose" in str(error)
    assert "host function failed" not in str(error)


@pytest.mark.parametrize(
    ("how", "message"),
    [(2, "host function failed: KeyError('nope')"), (3, "host function failed: RuntimeError")],
)
def test_host_exception_becomes_a_trap(host_guest: HostGuest, how: int, message: str) -> None:
    error = _host_failure(host_guest, "fail", how)
    assert message in str(error)
    assert host_guest.call("twice", 2, 3) == (7, 2)  # the store still works


@pytest.mark.parametrize(
    ("name", "returned", "message"),
    [
        ("r32", "5", "TypeError"),
        ("r32", 1.5, "TypeError"),
        ("r64", None, "TypeError"),
        ("rf64", "x", "TypeError"),
        ("rf64", 10**400, "OverflowError"),
    ],
)
def test_host_bad_result_becomes_a_trap(
    host_guest: HostGuest, name: str, returned: object, message: str
) -> None:
    host_guest.hosts.results[name] = returned
    error = _host_failure(host_guest, name, 0)
    assert f"host function failed: {message}" in str(error)


def test_host_calls_back_into_the_guest(host_guest: HostGuest) -> None:
    assert host_guest.call("twice", 6, 7) == (43, 6)
    assert host_guest.call("twice", -3, 2**40) == (-3 * 2**40 + 1, -3)
    # countdown(n) -> host down(n-1) -> countdown(n-1) -> ...: 20 levels of re-entry
    assert host_guest.call("countdown", 20) == sum(range(21))


def test_host_reads_and_writes_the_callers_memory(host_guest: HostGuest) -> None:
    assert host_guest.call("greet") == 11
    memory = capi_ctypes.export_memory(host_guest.store, host_guest.instance)
    assert memory is not None
    assert memory.read(host_guest.store, 64, 75) == bytearray(b"HELLO, HOST")


def test_host_functions_from_several_threads(engine: wasmtime.Engine) -> None:
    hosts = Hosts()
    pre = _host_linker(engine, hosts).instantiate_pre(wasmtime.Module(engine, HOST_GUEST))
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def worker(k: int) -> None:
        try:
            store = capi_ctypes.new_store(engine)
            store.set_epoch_deadline(10**9)
            instance = capi_ctypes.instantiate(pre, store)
            func = capi_ctypes.export_func(store, instance, "twice")
            assert func is not None
            twice = capi.FastCaller(Signature.of_func(store, func), "twice")
            barrier.wait()
            for i in range(500):
                assert twice.call(store, func, k, i) == (k * i + 1, k)
            store.close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []


def test_host_function_is_released_with_its_linker(engine: wasmtime.Engine) -> None:
    def impl(caller: Any) -> None:
        return None

    base = sys.getrefcount(impl)
    linker = wasmtime.Linker(engine)
    capi.define_host_func(linker, "host", "noop", wasmtime.FuncType([], []), impl)
    assert sys.getrefcount(impl) == base + 1
    module = wasmtime.Module(
        engine, wat('(module (import "host" "noop" (func)) (export "noop" (func 0)))')
    )
    pre = linker.instantiate_pre(module)
    store = capi_ctypes.new_store(engine)
    capi_ctypes.instantiate(pre, store)
    del linker
    gc.collect()
    assert sys.getrefcount(impl) == base + 1  # still used by the pre-linked module
    store.close()
    del pre
    gc.collect()
    assert sys.getrefcount(impl) == base


_DEFINE_TWICE = """
import sys, wasmtime
from atoll.runtime import capi

def impl(caller):
    return None

linker = wasmtime.Linker(wasmtime.Engine())
ty = wasmtime.FuncType([], [])
capi.define_host_func(linker, "host", "f", ty, impl)
base = sys.getrefcount(impl)
try:
    capi.define_host_func(linker, "host", "f", ty, impl)
except wasmtime.WasmtimeError as exc:
    print("error:", exc)
print("refcount", sys.getrefcount(impl) - base)
"""


def test_host_function_defined_twice_is_an_error() -> None:
    # In a child process: the failure mode was a crash (a double free of the host
    # function's state: wasmtime runs its finalizer when it refuses the definition).
    out = subprocess.run(
        [sys.executable, "-c", _DEFINE_TWICE], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "defined twice" in out.stdout
    assert "refcount 0" in out.stdout


def test_host_function_signatures_are_numeric_only(engine: wasmtime.Engine) -> None:
    linker = wasmtime.Linker(engine)
    with pytest.raises(ValueError, match="numbers only"):
        capi.define_host_func(
            linker, "h", "two", wasmtime.FuncType([], [I32, I32]), lambda caller: (1, 2)
        )
    with pytest.raises(ValueError, match="numbers only"):
        capi.define_host_func(
            linker, "h", "ref", wasmtime.FuncType([wasmtime.ValType.externref()], []), print
        )


# --- nested calls: a host function calling back into its store --------------------------------
#
# What a Bound charges is the thread CPU of the outermost call into the store: wasm and
# the host functions it calls. Calls back into the guest from a host function count
# within it, and only the outermost is charged. These tests run on an engine nobody
# ticks: the host function advances the epoch itself, one tick per call, so when the
# deadlines fall is deterministic.


@pytest.fixture(scope="module")
def quiet_engine() -> wasmtime.Engine:
    return _epoch_engine()


def _nested_guest(engine: wasmtime.Engine, kind: str, host: Callable[..., Any]) -> Guest:
    linker = wasmtime.Linker(engine)
    capi.define_host_func(linker, "env", "host", wasmtime.FuncType([], []), host)
    module = wasmtime.Module(
        engine,
        wat(
            """
            (module
              (import "env" "host" (func $host))
              (func (export "work") (param $n i32) (result i32) (local $i i32)
                (loop $l
                  (local.set $i (i32.add (local.get $i) (i32.const 1)))
                  (br_if $l (i32.lt_u (local.get $i) (local.get $n))))
                local.get $i)
              (func (export "noop"))
              (func (export "once") call $host)
              (func (export "loop") (loop $l call $host br $l)))
            """
        ),
    )
    return Guest(engine, linker.instantiate_pre(module), kind)


@pytest.mark.parametrize("kind", STORE_KINDS)
@pytest.mark.parametrize("inner", ["Bound", "FastCaller"])
def test_nested_call_is_charged_once(quiet_engine: wasmtime.Engine, kind: str, inner: str) -> None:
    nested: dict[str, Any] = {}

    def host(caller: Any) -> None:
        start = capi.thread_ns()
        if inner == "Bound":
            assert nested["work"](nested["invocation"], 20_000_000) == 20_000_000
        else:
            work = caller.get("work")
            assert nested["fast"].call(caller, work, 20_000_000) == 20_000_000
        nested["inner_ns"] = capi.thread_ns() - start

    guest = _nested_guest(quiet_engine, kind, host)
    try:
        invocation = Invocation()
        nested.update(work=guest.bound("work"), fast=guest.fast("work")[0], invocation=invocation)
        before = capi.thread_ns()
        guest.bound("once")(invocation)
        spent = capi.thread_ns() - before
        # the nested work counts (within the outer call), and only once
        assert nested["inner_ns"] <= invocation.cpu_used_ns <= spent
        assert guest.meter.depth == 0
    finally:
        guest.store.close()


def _loop_over_host(
    engine: wasmtime.Engine, kind: str, inner: Callable[[Guest, Invocation], object] | None
) -> tuple[BaseException, int, Invocation]:
    """Run a guest that loops over a host call (~0.2 ms of Python, one epoch tick, then
    ``inner``) on a 20 ms budget: the error that ended it, the thread CPU it took."""
    state: dict[str, Any] = {}

    def host(caller: Any) -> None:
        engine.increment_epoch()
        if capi.thread_ns() - state["start"] > SECOND:
            raise RuntimeError("watchdog: 1 s of CPU")
        for _ in range(10_000):
            pass
        if inner is not None:
            inner(state["guest"], state["invocation"])

    guest = _nested_guest(engine, kind, host)
    try:
        invocation = Invocation(cpu_budget_ns=20 * MS)
        state.update(guest=guest, invocation=invocation, start=capi.thread_ns())
        error = _call_failed(guest.bound("loop"), invocation)
        assert guest.meter.depth == 0
        return error, capi.thread_ns() - state["start"], invocation
    finally:
        guest.store.close()


@pytest.mark.parametrize("kind", STORE_KINDS)
def test_host_time_counts_against_the_budget(quiet_engine: wasmtime.Engine, kind: str) -> None:
    """A guest looping over a host call is bounded by its budget like a spinning one."""
    error, used, invocation = _loop_over_host(quiet_engine, kind, None)
    assert "watchdog" not in str(error)
    assert capi.is_interrupt(error)
    assert 20 * MS <= invocation.cpu_used_ns <= used < 500 * MS


def _nested_fast(guest: Guest, invocation: Invocation) -> None:
    fast, func = guest.fast("noop")
    fast.call(guest.store, func)


def _nested_bound(guest: Guest, invocation: Invocation) -> None:
    try:
        guest.bound("noop")(invocation)
    except capi.CallFailed as failed:  # as atoll's ExportFunction does
        raise capi.failure(*failed.args) from None


@pytest.mark.parametrize("kind", STORE_KINDS)
@pytest.mark.parametrize(
    "inner",
    [
        pytest.param(_nested_fast, id="FastCaller"),
        pytest.param(_nested_bound, id="Bound"),
    ],
)
def test_nested_calls_do_not_extend_the_outer_budget(
    quiet_engine: wasmtime.Engine, kind: str, inner: Callable[[Guest, Invocation], object]
) -> None:
    error, used, invocation = _loop_over_host(quiet_engine, kind, inner)
    assert "watchdog" not in str(error)
    assert 20 * MS <= invocation.cpu_used_ns <= used < 500 * MS


@pytest.mark.parametrize("kind", STORE_KINDS)
def test_interrupt_in_a_nested_call_stays_an_interrupt(
    quiet_engine: wasmtime.Engine, kind: str
) -> None:
    # The host advances the epoch and then calls back into the guest: the meter's
    # check, and its stop once the budget is spent, happen in the nested call.
    error, used, invocation = _loop_over_host(quiet_engine, kind, _nested_fast)
    assert invocation.cpu_used_ns >= 20 * MS
    assert used < 500 * MS
    assert capi.is_interrupt(error), str(error)


def test_bound_gives_up_the_gil_while_a_guest_runs(engine: wasmtime.Engine) -> None:
    """A Bound call keeps the GIL at first, and gives it up at its first epoch deadline
    if still running: this thread sleeps and wakes while the guest spins."""
    guest = Guest(engine, wasmtime.Linker(engine).instantiate_pre(wasmtime.Module(engine, GUEST)))
    spin = guest.bound("spin")
    invocation = Invocation(cpu_budget_ns=500 * MS)
    entering = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        entering.set()
        try:
            spin(invocation)
        except BaseException as exc:
            errors.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    try:
        assert entering.wait(10)
        time.sleep(0.02)  # returns only if the spinning thread gave up the GIL
        assert worker.is_alive()
    finally:
        worker.join(10)
    try:
        assert not worker.is_alive()
        assert len(errors) == 1
        assert isinstance(errors[0], capi.CallFailed)
        assert capi.is_interrupt(capi.failure(*errors[0].args))
        assert invocation.cpu_used_ns >= 500 * MS
        assert guest.bound("add")(Invocation(), 1, 2) == 3  # the GIL came back with it
    finally:
        guest.store.close()


def test_capi_all_names_exist() -> None:
    missing = [name for name in capi.__all__ if not hasattr(capi, name)]
    assert missing == []


# --- stores made in C (new_metered_store) ----------------------------------------------------


def test_new_metered_store(engine: wasmtime.Engine, pre: wasmtime.InstancePre) -> None:
    store, meter = capi.new_metered_store(
        engine, capi.address(engine.ptr()), 2 * 65536, 2, 4, 4, TICK_NS
    )
    assert sys.getrefcount(meter) == 3  # `meter`, the store's callback, getrefcount's argument
    # it stands for a wasmtime.Store in wasmtime-py's API (which reaches it through these)
    assert store.ptr() is not None
    assert store._context() is not None
    assert store.ctx == capi.context_address(store)
    assert meter.tick_ns == TICK_NS
    assert meter.stdio is None
    invocation = Invocation(cpu_budget_ns=20 * MS)
    ids = capi.instantiate_metered(meter, invocation, capi.address(pre.ptr()), store.ctx)
    kind, store_id, private = capi.export_raw(store.ctx, ids, b"add") or (None, 0, 0)
    assert kind == 0
    fast = capi.FastCaller(
        Signature.of_func(store, capi.func_from_raw((kind, store_id, private))), "add"
    )
    assert fast.bind(meter, store.ctx, store_id, private)(invocation, 40, 2) == 42
    # its meter is installed: a spinning guest stops when the budget is spent
    kind, store_id, private = capi.export_raw(store.ctx, ids, b"spin") or (None, 0, 0)
    spin = capi.FastCaller(Signature((), ()), "spin").bind(meter, store.ctx, store_id, private)
    error = _call_failed(spin, invocation)
    assert capi.is_interrupt(error)
    assert invocation.cpu_used_ns >= 20 * MS
    # its limits hold: two instances at most, memories of two pages at most
    capi_ctypes.instantiate(pre, store)
    with pytest.raises(wasmtime.WasmtimeError, match="instance"):
        capi_ctypes.instantiate(pre, store)
    del spin  # a Bound holds its meter
    gc.collect()  # and so may a traceback kept by pytest.raises (a cycle through its frame)
    store.close()
    store.close()  # idempotent
    with pytest.raises(ValueError, match="closed"):
        store.ptr()
    assert sys.getrefcount(meter) == 2  # released with the store


def test_new_metered_store_memory_limit(engine: wasmtime.Engine) -> None:
    store, _meter = capi.new_metered_store(
        engine, capi.address(engine.ptr()), 2 * 65536, 4, 4, 4, TICK_NS
    )
    try:
        big = wasmtime.Module(engine, wat("(module (memory 3))"))
        with pytest.raises(wasmtime.WasmtimeError, match="memory"):
            capi_ctypes.instantiate(wasmtime.Linker(engine).instantiate_pre(big), store)
    finally:
        store.close()


def test_new_metered_store_dropped_without_close(engine: wasmtime.Engine) -> None:
    store, meter = capi.new_metered_store(
        engine, capi.address(engine.ptr()), 65536, 4, 4, 4, TICK_NS
    )
    assert sys.getrefcount(meter) == 3
    del store
    gc.collect()
    assert sys.getrefcount(meter) == 2


# --- the module's tables (native/module.h, native/wasi.c) ---------------------------------


def test_init_asks_for_each_wasmtime_function_once() -> None:
    from atoll.runtime import _native

    names = _native.needed()
    assert len(names) == len(set(names))
    assert all(name.startswith("wasmtime_") for name in names)
    for name in names:  # each one is in wasmtime-py's own libwasmtime
        assert getattr(wasmtime._ffi.dll, name) is not None
    with pytest.raises(KeyError, match=f"no address for {names[0]}"):
        _native.init({})  # refused before the table is touched: the module keeps working


def test_wasi_names_are_preview1_functions_and_define_host_checks_the_index() -> None:
    from atoll.runtime import _native
    from atoll.runtime.wasi.preview1 import MODULE, host_functions

    provided = {(fn.module, fn.name) for fn in host_functions()}
    names = _native.wasi_names()
    assert len(names) == len(set(names))
    assert all((MODULE, name) in provided for name in names)
    assert {name: i + 1 for i, name in enumerate(names)} == capi.NATIVE_WASI
    assert len(names) + 1 == capi.NATIVE_LOG_WRITE  # atoll:log.write, after the WASI ones
    linker = wasmtime.Linker(wasmtime.Engine())
    ty = wasmtime.FuncType([], [])
    with pytest.raises(ValueError, match="no such native function"):
        capi.define_host_func(linker, "env", "f", ty, lambda caller: None, len(names) + 2)


@pytest.mark.parametrize("kind", STORE_KINDS)
def test_caller_cpu_left_is_the_outer_calls_allowance(
    quiet_engine: wasmtime.Engine, kind: str
) -> None:
    seen: list[int | None] = []

    def host(caller: Any) -> None:
        seen.append(caller.cpu_left_ns())

    guest = _nested_guest(quiet_engine, kind, host)
    try:
        guest.bound("once")(Invocation(cpu_budget_ns=20 * MS))
    finally:
        guest.store.close()
    (left,) = seen
    if kind == "new_metered_store":  # the store's data is its meter: found from the caller
        assert left is not None
        assert 0 < left <= 20 * MS
    else:  # a store whose data is wasmtime-py's: no meter to ask
        assert left is None


# --- the layouts native/module.h declares ------------------------------------------------


def test_the_struct_layouts_native_declares_are_wasmtime_pys() -> None:
    # native/module.h declares these itself (it includes no wasmtime header), and capi no
    # longer imports wasmtime-py to compare them at import: this is where they are checked.
    from wasmtime import _ffi as ffi

    sizes = {
        "wasmtime_func_t": 16,
        "wasmtime_instance_t": 16,
        "wasmtime_memory_t": 24,
        "wasmtime_extern_t": 32,
        "wasmtime_val_raw": 16,
    }
    assert {name: ctypes.sizeof(getattr(ffi, name)) for name in sizes} == sizes
    assert ffi.WASMTIME_EXTERN_FUNC.value == capi._EXTERN_FUNC == 0
    assert ffi.WASMTIME_EXTERN_MEMORY.value == capi._EXTERN_MEMORY == 3
    assert ffi.wasmtime_extern_t.of.offset == 8


def test_the_native_backend_opens_wasmtime_pys_own_library() -> None:
    from wasmtime import _ffi as ffi

    from atoll.runtime import libwasmtime

    assert Path(ffi.filename).resolve() == libwasmtime.LIBRARY.resolve()
    assert capi.installed_wasmtime_version() == capi.WASMTIME_VERSION
