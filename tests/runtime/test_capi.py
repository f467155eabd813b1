"""Tests for atoll.runtime.capi: the C API fast paths, against wasmtime-py's public API."""

from __future__ import annotations

import ctypes
import gc
import math
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest
import wasmtime

from atoll.runtime import capi
from atoll.runtime.signature import Signature
from tests.runtime import capi_ctypes

WAT = """
(module
  (memory (export "memory") 1)
  (global $g (mut i32) (i32.const 7))
  (global $h (mut i64) (i64.const 0))
  (func (export "add") (param i32 i32) (result i32)
    local.get 0 local.get 1 i32.add)
  (func (export "add64") (param i64 i64) (result i64)
    local.get 0 local.get 1 i64.add)
  (func (export "half32") (param f32) (result f32)
    local.get 0 f32.const 0.5 f32.mul)
  (func (export "half64") (param f64) (result f64)
    local.get 0 f64.const 0.5 f64.mul)
  (func (export "id32") (param i32) (result i32) local.get 0)
  (func (export "id64") (param i64) (result i64) local.get 0)
  (func (export "idf32") (param f32) (result f32) local.get 0)
  (func (export "swap") (param i32 i64 f32 f64) (result f64 f32 i64 i32)
    local.get 3 local.get 2 local.get 1 local.get 0)
  (func (export "bump") (global.set $g (i32.add (global.get $g) (i32.const 1))))
  (func (export "get_g") (result i32) global.get $g)
  (func (export "load") (param i32) (result i32) local.get 0 i32.load8_u)
  (func $boom (export "boom") (param i32) (result i32) unreachable)
  (func $outer (export "outer") (result i32) i32.const 1 call $boom)
  (func $recurse (export "recurse") (param i32) (result i32)
    local.get 0 i32.const 1 i32.add call $recurse)
  (func (export "spin") (loop $l br $l))
)
"""

#: The native backend's own pieces, used directly: not run on the public backend.
pytestmark = pytest.mark.native_backend

DEADLINE = 1_000_000  # ticks; the ticker adds ~1000 a second
TICK_NS = 1_000_000
MS = 1_000_000
SECOND = 1_000_000_000


def _epoch_config() -> wasmtime.Config:
    config = wasmtime.Config()
    config.epoch_interruption = True
    return config


@pytest.fixture(scope="module")
def ticking() -> Iterator[tuple[wasmtime.Engine, capi.Ticker]]:
    """An epoch-interruption engine with a 1 ms native ticker, as atoll runs it."""
    engine = wasmtime.Engine(_epoch_config())
    ticker = capi.start_ticker(engine, TICK_NS)
    yield engine, ticker
    ticker.stop()  # before the engine goes


@pytest.fixture(scope="module")
def epoch_engine(ticking: tuple[wasmtime.Engine, capi.Ticker]) -> wasmtime.Engine:
    return ticking[0]


@pytest.fixture(scope="module")
def ticker(ticking: tuple[wasmtime.Engine, capi.Ticker]) -> capi.Ticker:
    return ticking[1]


@pytest.fixture(scope="module")
def pre(epoch_engine: wasmtime.Engine) -> wasmtime.InstancePre:
    module = _module(epoch_engine, WAT)
    return wasmtime.Linker(epoch_engine).instantiate_pre(module)


@pytest.fixture
def store(epoch_engine: wasmtime.Engine) -> Iterator[wasmtime.Store]:
    s = capi_ctypes.new_store(epoch_engine)
    s.set_epoch_deadline(DEADLINE)
    yield s
    s.close()


@pytest.fixture
def instance(pre: wasmtime.InstancePre, store: wasmtime.Store) -> wasmtime.Instance:
    return capi_ctypes.instantiate(pre, store)


def _module(engine: wasmtime.Engine, wat: str) -> wasmtime.Module:
    return wasmtime.Module(engine, bytes(wasmtime.wat2wasm(wat)))


def _caller(
    store: wasmtime.Store, instance: wasmtime.Instance, name: str
) -> tuple[capi.FastCaller, wasmtime.Func]:
    func = capi_ctypes.export_func(store, instance, name)
    assert func is not None
    return capi.FastCaller(Signature.of_func(store, func), name), func


def test_pinned_version() -> None:
    assert capi.WASMTIME_VERSION == "50.0.1"


def test_other_wasmtime_version_is_an_import_error() -> None:
    # capi reads the version from wasmtime's .dist-info folder: make the glob find 49.0.0
    code = (
        "import pathlib\n"
        "glob = pathlib.Path.glob\n"
        "pathlib.Path.glob = lambda self, pattern: ("
        "[pathlib.Path('wasmtime-49.0.0.dist-info')] if pattern.startswith('wasmtime-') "
        "else glob(self, pattern))\n"
        "try:\n"
        "    import atoll.runtime.capi\n"
        "except ImportError as e:\n"
        "    print('ImportError:', e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "ImportError:" in out.stdout
    assert "50.0.1" in out.stdout
    assert "49.0.0" in out.stdout


# --- calls ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "args", "expected"),
    [
        ("add", (2, 3), 5),
        ("add", (2**31 - 1, 1), -(2**31)),  # wraps; i32 results are signed
        ("add64", (2**40, 5), 2**40 + 5),
        ("add64", (2**63 - 1, 1), -(2**63)),
        ("half32", (3.0,), 1.5),
        ("half32", (3,), 1.5),  # ints are accepted for floats
        ("half64", (0.1,), 0.05),
        ("id32", (-1,), -1),
        ("get_g", (), 7),
    ],
)
def test_call_numeric_kinds(
    store: wasmtime.Store,
    instance: wasmtime.Instance,
    name: str,
    args: tuple[int | float, ...],
    expected: int | float,
) -> None:
    fast, func = _caller(store, instance, name)
    assert fast.call(store, func, *args) == expected
    assert fast(store, func, *args) == expected


def test_results_match_public_api(store: wasmtime.Store, instance: wasmtime.Instance) -> None:
    for name, args in [
        ("add", (40, 2)),
        ("add64", (-5, 3)),
        ("half32", (1.25,)),
        ("half64", (-7.5,)),
    ]:
        fast, func = _caller(store, instance, name)
        assert fast.call(store, func, *args) == func(store, *args)


def test_f32_result_is_rounded_to_f32(store: wasmtime.Store, instance: wasmtime.Instance) -> None:
    fast, func = _caller(store, instance, "idf32")
    assert fast.call(store, func, 0.1) == ctypes.c_float(0.1).value
    assert fast.call(store, func, 1e39) == math.inf  # overflow: +inf, like a C cast
    assert math.isnan(fast.call(store, func, math.nan))  # type: ignore[arg-type]


def test_multi_value_results_are_a_tuple(
    store: wasmtime.Store, instance: wasmtime.Instance
) -> None:
    fast, func = _caller(store, instance, "swap")
    assert fast.sig.params == (
        "i32",
        "i64",
        "f32",
        "f64",
    )
    assert fast.call(store, func, 1, 2**40, 2.5, 3.25) == (3.25, 2.5, 2**40, 1)


def test_no_results_is_none(store: wasmtime.Store, instance: wasmtime.Instance) -> None:
    bump, func = _caller(store, instance, "bump")
    get_g, get = _caller(store, instance, "get_g")
    assert bump.call(store, func) is None
    assert get_g.call(store, get) == 8


@pytest.mark.parametrize(
    ("name", "arg", "expected"),
    [
        ("id32", 2**32 - 1, -1),
        ("id32", 2**31, -(2**31)),
        ("id32", -(2**31), -(2**31)),
        ("id64", 2**64 - 1, -1),
        ("id64", 2**63, -(2**63)),
    ],
)
def test_unsigned_ints_wrap_to_signed_bits(
    store: wasmtime.Store, instance: wasmtime.Instance, name: str, arg: int, expected: int
) -> None:
    fast, func = _caller(store, instance, name)
    assert fast.call(store, func, arg) == expected


def test_wrong_argument_count(store: wasmtime.Store, instance: wasmtime.Instance) -> None:
    fast, func = _caller(store, instance, "add")
    with pytest.raises(TypeError, match=r"'add' takes 2 argument\(s\), 1 given"):
        fast.call(store, func, 1)
    with pytest.raises(TypeError, match="'add' takes 2"):
        fast.call(store, func, 1, 2, 3)


@pytest.mark.parametrize(
    ("name", "args", "error", "message"),
    [
        ("add", (1, 2**32), ValueError, r"'add' argument 1: 4294967296 out of range for i32"),
        ("add", (-(2**31) - 1, 0), ValueError, r"'add' argument 0: .* out of range for i32"),
        ("add64", (2**64, 0), ValueError, r"'add64' argument 0: .* out of range for i64"),
        ("add", (1.5, 2), TypeError, r"'add' argument 0: expected int for i32, got float"),
        ("add", ("1", 2), TypeError, r"'add' argument 0: expected int for i32, got str"),
        ("half64", ("1.0",), TypeError, r"'half64' argument 0: expected float for f64, got str"),
        (
            "half32",
            (None,),
            TypeError,
            r"'half32' argument 0: expected float for f32, got NoneType",
        ),
    ],
)
def test_bad_arguments_name_the_export(
    store: wasmtime.Store,
    instance: wasmtime.Instance,
    name: str,
    args: tuple[object, ...],
    error: type[Exception],
    message: str,
) -> None:
    fast, func = _caller(store, instance, name)
    with pytest.raises(error, match=message):
        fast.call(store, func, *args)  # type: ignore[arg-type]


def test_closed_store_is_a_value_error(
    pre: wasmtime.InstancePre, epoch_engine: wasmtime.Engine
) -> None:
    s = capi_ctypes.new_store(epoch_engine)
    s.set_epoch_deadline(DEADLINE)
    fast, func = _caller(s, capi_ctypes.instantiate(pre, s), "add")
    s.close()
    with pytest.raises(ValueError, match="closed"):
        fast.call(s, func, 1, 2)


def test_fast_caller_rejects_reference_types() -> None:
    ty = wasmtime.FuncType([wasmtime.ValType.externref()], [wasmtime.ValType.i32()])
    sig = Signature.of(ty)
    assert not sig.numeric
    assert sig.params == ("externref",)
    with pytest.raises(ValueError, match="'takes_ref'"):
        capi.FastCaller(sig, "takes_ref")


def test_check_signature(store: wasmtime.Store, instance: wasmtime.Instance) -> None:
    fast, func = _caller(store, instance, "add")
    fast.check(store, func)
    other = capi_ctypes.export_func(store, instance, "add64")
    assert other is not None
    with pytest.raises(TypeError, match="'add' has type"):
        fast.check(store, other)


def test_one_caller_serves_many_instances(
    epoch_engine: wasmtime.Engine, pre: wasmtime.InstancePre
) -> None:
    fast: capi.FastCaller | None = None
    for i in range(20):
        s = capi_ctypes.new_store(epoch_engine)
        s.set_epoch_deadline(DEADLINE)
        inst = capi_ctypes.instantiate(pre, s)
        func = capi_ctypes.export_func(s, inst, "add")
        assert func is not None
        fast = fast or capi.FastCaller(Signature.of_func(s, func), "add")
        assert fast.call(s, func, i, 1) == i + 1
        s.close()


def test_wide_signature(store: wasmtime.Store) -> None:
    n = 20
    params = " ".join(["i64"] * n)
    body = " ".join(f"local.get {i}" for i in range(n)) + " " + " ".join(["i64.add"] * (n - 1))
    wat = f'(module (func (export "sum") (param {params}) (result i64) {body}))'
    module = _module(store.engine, wat)
    inst = capi_ctypes.instantiate(wasmtime.Linker(store.engine).instantiate_pre(module), store)
    fast, func = _caller(store, inst, "sum")
    assert fast.call(store, func, *range(n)) == sum(range(n))


def test_too_wide_signature_is_refused() -> None:
    i64 = "i64"
    assert capi.FastCaller(Signature((i64,) * 64, (i64,)), "widest").sig.params == (i64,) * 64
    with pytest.raises(ValueError, match="'too_wide': more than 64 params"):
        capi.FastCaller(Signature((i64,) * 65, ()), "too_wide")


# --- traps and host errors ---------------------------------------------------------------


def test_unreachable_is_a_trap_with_named_frames(
    store: wasmtime.Store, instance: wasmtime.Instance
) -> None:
    fast, func = _caller(store, instance, "outer")
    with pytest.raises(wasmtime.Trap) as info:
        fast.call(store, func)
    trap = info.value
    assert trap.trap_code == wasmtime.TrapCode.UNREACHABLE
    assert [f.func_name for f in trap.frames] == ["boom", "outer"]
    assert not capi.is_interrupt(trap)
    # The store stays usable after a trap.
    add, add_func = _caller(store, instance, "add")
    assert add.call(store, add_func, 1, 1) == 2


def test_stack_overflow_is_a_trap(store: wasmtime.Store, instance: wasmtime.Instance) -> None:
    fast, func = _caller(store, instance, "recurse")
    with pytest.raises(wasmtime.Trap) as info:
        fast.call(store, func, 0)
    assert info.value.trap_code == wasmtime.TrapCode.STACK_OVERFLOW
    assert info.value.frames[0].func_name == "recurse"


def test_host_function_exception_is_reraised(epoch_engine: wasmtime.Engine) -> None:
    wat = """
    (module
      (import "env" "fail" (func $fail (param i32) (result i32)))
      (func (export "run") (param i32) (result i32) local.get 0 call $fail))
    """
    linker = wasmtime.Linker(epoch_engine)

    def fail(x: int) -> int:
        raise KeyError(f"host says no to {x}")

    linker.define_func(
        "env", "fail", wasmtime.FuncType([wasmtime.ValType.i32()], [wasmtime.ValType.i32()]), fail
    )
    pre = linker.instantiate_pre(_module(epoch_engine, wat))
    s = capi_ctypes.new_store(epoch_engine)
    s.set_epoch_deadline(DEADLINE)
    fast, func = _caller(s, capi_ctypes.instantiate(pre, s), "run")
    with pytest.raises(KeyError, match="host says no to 5"):
        fast.call(s, func, 5)
    from wasmtime import _func

    assert _func.LAST_EXCEPTION is None
    s.close()


def test_reentrant_call_from_a_host_function(epoch_engine: wasmtime.Engine) -> None:
    """wasm → Python host → FastCaller on the same thread: the outer call's arguments
    and results (on the C stack) survive the inner call."""
    wat = """
    (module
      (import "env" "host" (func $host (param i32 i64) (result i64)))
      (func (export "mul") (param i64 i64) (result i64) local.get 0 local.get 1 i64.mul)
      (func (export "run") (param i32 i64) (result i64 i32)
        local.get 0 local.get 1 call $host local.get 0))
    """
    linker = wasmtime.Linker(epoch_engine)
    inner: dict[str, object] = {}

    def host(caller: wasmtime.Caller, a: int, b: int) -> int:
        mul = caller["mul"]
        assert isinstance(mul, wasmtime.Func)
        fast = inner["mul"]
        assert isinstance(fast, capi.FastCaller)
        product = fast.call(caller, mul, a, b)
        assert isinstance(product, int)
        return product + 1

    i32, i64 = wasmtime.ValType.i32(), wasmtime.ValType.i64()
    linker.define_func(
        "env", "host", wasmtime.FuncType([i32, i64], [i64]), host, access_caller=True
    )
    pre = linker.instantiate_pre(_module(epoch_engine, wat))
    s = capi_ctypes.new_store(epoch_engine)
    s.set_epoch_deadline(DEADLINE)
    inst = capi_ctypes.instantiate(pre, s)
    inner["mul"] = _caller(s, inst, "mul")[0]
    run, func = _caller(s, inst, "run")
    assert run.call(s, func, 6, 7) == (43, 6)
    s.close()


# --- instantiate ---------------------------------------------------------------------------


def test_fast_and_public_instantiate_agree(
    epoch_engine: wasmtime.Engine, pre: wasmtime.InstancePre
) -> None:
    results = []
    for make in (capi_ctypes.instantiate, lambda p, s: p.instantiate(s)):
        s = wasmtime.Store(epoch_engine)
        s.set_epoch_deadline(DEADLINE)
        inst = make(pre, s)
        exports = inst.exports(s)
        add = exports["add"]
        assert isinstance(add, wasmtime.Func)
        results.append((sorted(exports), add(s, 20, 22)))
        s.close()
    assert results[0] == results[1]
    assert results[0][1] == 42


def test_start_function_trap(store: wasmtime.Store) -> None:
    wat = "(module (func $start unreachable) (start $start))"
    module = _module(store.engine, wat)
    pre = wasmtime.Linker(store.engine).instantiate_pre(module)
    with pytest.raises(wasmtime.Trap) as info:
        capi_ctypes.instantiate(pre, store)
    assert info.value.trap_code == wasmtime.TrapCode.UNREACHABLE
    assert info.value.frames[0].func_name == "start"


def test_instantiate_error_is_a_wasmtime_error(epoch_engine: wasmtime.Engine) -> None:
    module = _module(epoch_engine, "(module (memory 20))")
    pre = wasmtime.Linker(epoch_engine).instantiate_pre(module)
    s = capi_ctypes.new_store(epoch_engine)
    s.set_limits(memory_size=65536, memories=1)
    with pytest.raises(wasmtime.WasmtimeError) as info:
        capi_ctypes.instantiate(pre, s)
    assert type(info.value) is wasmtime.WasmtimeError
    assert "memory" in str(info.value)
    s.close()


# --- exports and memory ----------------------------------------------------------------


def test_export_lookups(store: wasmtime.Store, instance: wasmtime.Instance) -> None:
    assert isinstance(capi_ctypes.export_func(store, instance, "add"), wasmtime.Func)
    assert capi_ctypes.export_func(store, instance, "memory") is None  # not a function
    assert capi_ctypes.export_func(store, instance, "missing") is None
    assert capi_ctypes.export_func(store, instance, "ünïcode") is None
    assert isinstance(capi_ctypes.export_memory(store, instance), wasmtime.Memory)
    assert capi_ctypes.export_memory(store, instance, "add") is None


def test_memory_view_reads_and_writes(store: wasmtime.Store, instance: wasmtime.Instance) -> None:
    memory = capi_ctypes.export_memory(store, instance)
    assert memory is not None
    addr, size = capi_ctypes.memory_view(store, memory)
    assert size == 65536 == memory.data_len(store)
    assert addr == ctypes.addressof(memory.data_ptr(store).contents)
    ctypes.memmove(addr + 100, b"\x2a\xff", 2)
    load, func = _caller(store, instance, "load")
    assert load.call(store, func, 100) == 42
    assert load.call(store, func, 101) == 255
    assert memory.read(store, 100, 102) == bytearray(b"\x2a\xff")


def test_new_store_is_a_normal_store(
    epoch_engine: wasmtime.Engine, pre: wasmtime.InstancePre
) -> None:
    s = capi_ctypes.new_store(epoch_engine)
    assert isinstance(s, wasmtime.Store)
    assert s.engine is epoch_engine
    assert s.data() is None
    s.set_limits(memory_size=1 << 20)
    capi_ctypes.set_epoch_deadline(s, DEADLINE)
    inst = pre.instantiate(s)
    add = inst.exports(s)["add"]
    assert isinstance(add, wasmtime.Func)
    assert add(s, 1, 2) == 3
    s.close()
    s.close()  # idempotent, like any Store


# --- epoch deadline and the CPU meter ----------------------------------------------------
#
# A Meter is a store's epoch-deadline callback written in C: at each deadline it lets
# wasm run on while the thread CPU time of the outermost call (``begin(allow_ns)`` ...
# ``end()``) is under ``allow_ns``, and stops it with a WasmtimeError carrying
# INTERRUPT_MARKER once spent. Its guarantee is a lower bound (wasm is never stopped
# before the allowance is used), which these tests check exactly; upper bounds are
# generous wall-time limits.


def test_spin_without_meter_traps_with_interrupt(
    store: wasmtime.Store, instance: wasmtime.Instance
) -> None:
    fast, func = _caller(store, instance, "spin")
    store.set_epoch_deadline(5)
    start = time.monotonic()
    with pytest.raises(wasmtime.Trap) as info:
        fast.call(store, func)
    assert info.value.trap_code == wasmtime.TrapCode.INTERRUPT
    assert capi.is_interrupt(info.value)
    assert time.monotonic() - start < 5


def _metered_spin(
    store: wasmtime.Store, instance: wasmtime.Instance, meter: capi.Meter, allow_ns: int
) -> tuple[wasmtime.WasmtimeError, int]:
    """Spin under ``meter`` allowed ``allow_ns``: the error that stopped it and the CPU
    the meter counted (checked against the thread's own clock around the call)."""
    fast, func = _caller(store, instance, "spin")
    store.set_epoch_deadline(1)
    before = capi.thread_ns()
    meter.begin(allow_ns)
    try:
        with pytest.raises(wasmtime.WasmtimeError) as info:
            fast.call(store, func)
    finally:
        used = meter.end()
    assert used <= capi.thread_ns() - before
    return info.value, used


def test_meter_runs_a_guest_until_its_cpu_allowance_is_spent(
    store: wasmtime.Store, instance: wasmtime.Instance
) -> None:
    meter = capi_ctypes.install_meter(store, TICK_NS)
    assert meter.tick_ns == TICK_NS
    wall = time.monotonic()
    error, used = _metered_spin(store, instance, meter, 40 * MS)
    assert time.monotonic() - wall < 10
    assert type(error) is wasmtime.WasmtimeError
    assert capi.INTERRUPT_MARKER in str(error)
    assert capi.is_interrupt(error)
    assert used >= 40 * MS  # past the first deadline (1 tick): it ran until the CPU was spent
    assert (meter.allow_ns, meter.used_ns, meter.depth) == (40 * MS, used, 0)
    # The store is still usable afterwards, and a fresh allowance runs it again.
    store.set_epoch_deadline(DEADLINE)
    add, add_func = _caller(store, instance, "add")
    assert add.call(store, add_func, 2, 2) == 4
    error, used = _metered_spin(store, instance, meter, 10 * MS)
    assert capi.is_interrupt(error)
    assert used >= 10 * MS


def test_meter_continues_across_many_deadlines(
    store: wasmtime.Store, instance: wasmtime.Instance, ticker: capi.Ticker
) -> None:
    # A tick "longer" than any allowance: each deadline moves the next one by a single
    # tick, so every epoch increment during the call is a deadline the meter let pass.
    meter = capi_ctypes.install_meter(store, 10**15)
    before = ticker.ticks
    error, used = _metered_spin(store, instance, meter, 100 * MS)
    assert capi.is_interrupt(error)
    assert used >= 100 * MS
    assert ticker.ticks - before >= 10


def test_an_idle_ticker_slows_down_and_the_next_guest_speeds_it_up(
    store: wasmtime.Store, instance: wasmtime.Instance, ticker: capi.Ticker
) -> None:
    """With no guest in wasm for a while the ticker wakes ten times a second, not a
    thousand; a metered call wakes it, and its deadlines come a tick apart as ever
    (counted: a slow ticker adds one tick per 100 ms, so 50 ms of a guest's CPU would
    see at most one)."""
    deadline = time.monotonic() + 60
    while not ticker.slow:
        assert time.monotonic() < deadline, "the ticker never slowed down"
        time.sleep(0.01)
    meter = capi_ctypes.install_meter(store, 10**15)
    before = ticker.ticks
    error, used = _metered_spin(store, instance, meter, 50 * MS)
    assert capi.is_interrupt(error)
    assert used >= 50 * MS
    assert ticker.ticks - before >= 10


@pytest.mark.parametrize("allow_ns", [None, 0, -5 * MS])
def test_meter_without_allowance_stops_at_the_first_deadline(
    store: wasmtime.Store, instance: wasmtime.Instance, allow_ns: int | None
) -> None:
    meter = capi_ctypes.install_meter(store, TICK_NS)
    if allow_ns is not None:
        meter.begin(allow_ns)
    fast, func = _caller(store, instance, "spin")
    store.set_epoch_deadline(1)
    start = time.monotonic()
    with pytest.raises(wasmtime.WasmtimeError) as info:
        fast.call(store, func)
    assert capi.is_interrupt(info.value)
    assert time.monotonic() - start < 5
    if allow_ns is not None:
        meter.end()


def test_meter_begin_and_end_count_the_outermost_call() -> None:
    meter = capi.Meter(TICK_NS)
    assert (meter.allow_ns, meter.used_ns, meter.depth) == (0, 0, 0)
    with pytest.raises(RuntimeError, match="without begin"):
        meter.end()
    before = capi.thread_ns()
    meter.begin(123 * MS)
    meter.begin(5)  # nested: counted within the outermost call, allowance unchanged
    assert (meter.allow_ns, meter.depth) == (123 * MS, 2)
    sum(range(200_000))  # some CPU
    assert meter.end() == 0  # a nested call is not charged on its own
    assert meter.depth == 1
    used = meter.end()
    assert 0 < used <= capi.thread_ns() - before
    assert (meter.used_ns, meter.depth) == (used, 0)
    with pytest.raises(TypeError):
        meter.begin("soon")  # type: ignore[arg-type]
    assert meter.depth == 0
    with pytest.raises(AttributeError):
        meter.allow_ns = 5


@pytest.mark.parametrize("tick_ns", [0, -1])
def test_meter_rejects_a_bad_tick(tick_ns: int) -> None:
    with pytest.raises(ValueError, match="tick_ns must be positive"):
        capi.Meter(tick_ns)


def test_meter_on_one_store_does_not_affect_another(
    epoch_engine: wasmtime.Engine, pre: wasmtime.InstancePre
) -> None:
    stopped = capi_ctypes.new_store(epoch_engine)
    stopped_meter = capi_ctypes.install_meter(stopped, TICK_NS)
    stopped_meter.begin(0)
    plain = capi_ctypes.new_store(epoch_engine)
    metered = capi_ctypes.new_store(epoch_engine)
    meter = capi_ctypes.install_meter(metered, TICK_NS)
    try:
        # No meter on this store: wasmtime's own trap, not the other store's callback.
        fast, func = _caller(plain, capi_ctypes.instantiate(pre, plain), "spin")
        plain.set_epoch_deadline(2)
        with pytest.raises(wasmtime.Trap) as trap:
            fast.call(plain, func)
        assert trap.value.trap_code == wasmtime.TrapCode.INTERRUPT
        # Its own meter's allowance, not the other's zero.
        error, used = _metered_spin(metered, capi_ctypes.instantiate(pre, metered), meter, 30 * MS)
        assert capi.is_interrupt(error)
        assert used >= 30 * MS
        assert (stopped_meter.allow_ns, stopped_meter.depth) == (0, 1)
        # And the first store's meter still stops it at once.
        fast, func = _caller(stopped, capi_ctypes.instantiate(pre, stopped), "spin")
        stopped.set_epoch_deadline(1)
        with pytest.raises(wasmtime.WasmtimeError) as info:
            fast.call(stopped, func)
        assert capi.is_interrupt(info.value)
        stopped_meter.end()
    finally:
        for s in (stopped, plain, metered):
            s.close()


def test_metered_wasm_runs_without_the_gil(
    epoch_engine: wasmtime.Engine, pre: wasmtime.InstancePre
) -> None:
    """wasm and the meter's checks run without the GIL: this thread sleeps and wakes
    while another thread's guest spins through its 500 ms allowance."""
    s = capi_ctypes.new_store(epoch_engine)
    meter = capi_ctypes.install_meter(s, TICK_NS)
    fast, func = _caller(s, capi_ctypes.instantiate(pre, s), "spin")
    entering = threading.Event()
    errors: list[BaseException] = []
    used: list[int] = []

    def spin() -> None:
        s.set_epoch_deadline(1)
        meter.begin(500 * MS)
        entering.set()
        try:
            fast.call(s, func)
        except BaseException as exc:
            errors.append(exc)
        finally:
            used.append(meter.end())

    worker = threading.Thread(target=spin)
    worker.start()
    try:
        assert entering.wait(10)
        time.sleep(0.02)  # returns only if the spinning thread does not hold the GIL
        assert worker.is_alive()
    finally:
        worker.join(10)
    assert not worker.is_alive()
    assert len(errors) == 1
    assert capi.is_interrupt(errors[0])
    assert used[0] >= 500 * MS
    s.close()


def test_meter_interrupts_start_functions(epoch_engine: wasmtime.Engine) -> None:
    wat = "(module (func $start (loop $l br $l)) (start $start))"
    pre = wasmtime.Linker(epoch_engine).instantiate_pre(_module(epoch_engine, wat))
    s = capi_ctypes.new_store(epoch_engine)
    meter = capi_ctypes.install_meter(s, TICK_NS)
    s.set_epoch_deadline(1)
    meter.begin(5 * MS)
    with pytest.raises(wasmtime.WasmtimeError) as info:
        capi_ctypes.instantiate(pre, s)
    assert capi.is_interrupt(info.value)
    assert meter.end() >= 5 * MS
    s.set_epoch_deadline(1)
    meter.begin(5 * MS)
    with pytest.raises(wasmtime.WasmtimeError) as info:
        pre.instantiate(s)  # the public path runs the same callback
    assert capi.is_interrupt(info.value)
    assert meter.end() >= 5 * MS
    s.close()


def test_meter_is_released_with_its_store(epoch_engine: wasmtime.Engine) -> None:
    meter = capi.Meter(TICK_NS)
    base = sys.getrefcount(meter)
    s = capi_ctypes.new_store(epoch_engine)
    meter.install(capi.address(s.ptr()))
    assert sys.getrefcount(meter) == base + 1  # the store's callback holds it
    meter.install(capi.address(s.ptr()))
    assert sys.getrefcount(meter) == base + 1  # replacing the callback released the old one
    other = capi_ctypes.install_meter(s, TICK_NS)
    assert sys.getrefcount(meter) == base
    s.close()
    assert sys.getrefcount(other) == 2  # `other` and getrefcount's argument
    meter.begin(1)  # outlives the store
    meter.end()
    s2 = wasmtime.Store(epoch_engine)
    meter.install(capi.address(s2.ptr()))
    assert sys.getrefcount(meter) == base + 1
    del s2  # dropped without close(): released by the store's destructor
    gc.collect()
    assert sys.getrefcount(meter) == base


def test_meter_install_needs_a_store() -> None:
    with pytest.raises(ValueError, match="NULL store"):
        capi.Meter(TICK_NS).install(0)


def _rss_kib() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 // 1024


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/statm")
def test_many_stores_with_meters_do_not_leak(epoch_engine: wasmtime.Engine) -> None:
    def churn(n: int) -> None:
        for _ in range(n):
            s = capi_ctypes.new_store(epoch_engine)
            capi_ctypes.install_meter(s, TICK_NS)
            s.close()

    churn(5_000)  # warm up allocators
    gc.collect()
    before = _rss_kib()
    churn(30_000)
    gc.collect()
    assert _rss_kib() - before < 4096  # a per-store leak of even 150 B would show
    shared = capi.Meter(TICK_NS)
    base = sys.getrefcount(shared)
    stores = [capi_ctypes.new_store(epoch_engine) for _ in range(500)]
    for s in stores:
        shared.install(capi.address(s.ptr()))
    assert sys.getrefcount(shared) == base + 500
    for s in stores:
        s.close()
    assert sys.getrefcount(shared) == base


def test_is_interrupt_ignores_other_errors() -> None:
    assert not capi.is_interrupt(ValueError(capi.INTERRUPT_MARKER))
    assert not capi.is_interrupt(wasmtime.WasmtimeError("something else"))
    assert capi.is_interrupt(wasmtime.WasmtimeError(f"x {capi.INTERRUPT_MARKER} y"))
    assert not capi.is_interrupt(wasmtime.Trap("unreachable, but not an interrupt"))


# --- threads -------------------------------------------------------------------------------------


def test_one_caller_from_four_threads(
    epoch_engine: wasmtime.Engine, pre: wasmtime.InstancePre
) -> None:
    probe = capi_ctypes.new_store(epoch_engine)
    probe.set_epoch_deadline(DEADLINE)
    probe_func = capi_ctypes.export_func(probe, capi_ctypes.instantiate(pre, probe), "swap")
    assert probe_func is not None
    swap = capi.FastCaller(Signature.of_func(probe, probe_func), "swap")
    probe.close()
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def worker(k: int) -> None:
        try:
            s = capi_ctypes.new_store(epoch_engine)
            s.set_epoch_deadline(DEADLINE)
            func = capi_ctypes.export_func(s, capi_ctypes.instantiate(pre, s), "swap")
            assert func is not None
            barrier.wait()
            for i in range(3000):
                a, b = k * 1_000_000 + i, -(k * 10**12 + i)
                got = swap.call(s, func, a, b, float(k), float(i))
                assert got == (float(i), float(k), b, a), got
            s.close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_spinning_threads_each_stopped_by_their_own_meter(
    epoch_engine: wasmtime.Engine, pre: wasmtime.InstancePre
) -> None:
    """Four guests spin at once on their own stores; each meter counts its own
    thread's CPU time (four threads on fewer cores: wall time is not CPU time)."""
    results: dict[int, tuple[bool, bool]] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def worker(k: int) -> None:
        try:
            s = capi_ctypes.new_store(epoch_engine)
            meter = capi_ctypes.install_meter(s, TICK_NS)
            fast, func = _caller(s, capi_ctypes.instantiate(pre, s), "spin")
            allow = (k + 1) * 20 * MS
            barrier.wait()
            s.set_epoch_deadline(1)
            meter.begin(allow)
            try:
                fast.call(s, func)
            except wasmtime.WasmtimeError as exc:
                results[k] = (capi.is_interrupt(exc), meter.end() >= allow)
            s.close()
        except BaseException as exc:
            errors.append(exc)

    wall = time.monotonic()
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert time.monotonic() - wall < 30
    assert errors == []
    assert results == {k: (True, True) for k in range(4)}


# --- pooling allocator ------------------------------------------------------------------------


def _pooling_engine(**overrides: int) -> wasmtime.Engine:
    config = _epoch_config()
    options = {"total_memories": 4, "max_memory_size": 1 << 20, "total_core_instances": 4}
    options.update(overrides)
    capi.enable_pooling(config, **options)
    return wasmtime.Engine(config)


def test_pooling_engine_runs_wasm() -> None:
    engine = _pooling_engine(linear_memory_keep_resident=65536, table_keep_resident=65536)
    module = _module(engine, WAT)
    pre = wasmtime.Linker(engine).instantiate_pre(module)
    fast: capi.FastCaller | None = None
    for i in range(50):  # far more than the pool: slots are reused after close()
        s = capi_ctypes.new_store(engine)
        s.set_epoch_deadline(DEADLINE)
        inst = capi_ctypes.instantiate(pre, s)
        func = capi_ctypes.export_func(s, inst, "add")
        assert func is not None
        fast = fast or capi.FastCaller(Signature.of_func(s, func), "add")
        assert fast.call(s, func, i, i) == 2 * i
        memory = capi_ctypes.export_memory(s, inst)
        assert memory is not None
        addr, size = capi_ctypes.memory_view(s, memory)
        assert size == 65536
        assert ctypes.string_at(addr + 200, 4) == b"\0\0\0\0"  # a reused slot comes back zeroed
        ctypes.memmove(addr + 200, b"used", 4)
        s.close()


def test_pooling_limits_are_clean_errors() -> None:
    engine = _pooling_engine(total_memories=2, total_core_instances=2)
    module = _module(engine, WAT)
    pre = wasmtime.Linker(engine).instantiate_pre(module)
    stores = []
    for _ in range(2):
        s = capi_ctypes.new_store(engine)
        s.set_epoch_deadline(DEADLINE)
        capi_ctypes.instantiate(pre, s)
        stores.append(s)
    extra = capi_ctypes.new_store(engine)
    extra.set_epoch_deadline(DEADLINE)
    with pytest.raises(wasmtime.WasmtimeError, match="concurrent") as info:
        capi_ctypes.instantiate(pre, extra)
    assert type(info.value) is wasmtime.WasmtimeError
    stores.pop().close()  # a slot frees up
    capi_ctypes.instantiate(pre, extra)
    extra.close()
    for s in stores:
        s.close()


def test_pooling_max_memory_size_is_enforced() -> None:
    engine = _pooling_engine(max_memory_size=2 * 65536)
    with pytest.raises(wasmtime.WasmtimeError, match="pooling allocator"):
        _module(engine, "(module (memory 4))")  # rejected at compile
    s = capi_ctypes.new_store(engine)
    grow = _module(
        engine,
        '(module (memory 1) (func (export "grow") (param i32) (result i32) local.get 0 memory.grow))',
    )
    s.set_epoch_deadline(DEADLINE)
    fast, func = _caller(
        s, capi_ctypes.instantiate(wasmtime.Linker(engine).instantiate_pre(grow), s), "grow"
    )
    assert fast.call(s, func, 1) == 1
    assert fast.call(s, func, 1) == -1  # past max_memory_size: memory.grow fails, no trap
    s.close()


def test_installed_version_is_read_from_the_dist_info() -> None:
    import importlib.metadata

    assert capi.installed_wasmtime_version() == importlib.metadata.version("wasmtime")
