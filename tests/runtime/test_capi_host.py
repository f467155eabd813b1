"""capi.define_host_func: raw host functions (parameters, results, traps, the caller's memory)."""

from __future__ import annotations

from typing import Any

import pytest
import wasmtime

from atoll.runtime import capi
from tests.support import wat

GUEST = wat(
    """
    (module
      (import "host" "mix" (func $mix (param i32 i64 f64) (result i64)))
      (import "host" "fail" (func $fail (param i32)))
      (import "host" "peek" (func $peek (param i32) (result i32)))
      (memory (export "memory") 1)
      (data (i32.const 8) "\\2a")
      (func (export "mix") (param i32 i64 f64) (result i64)
        (call $mix (local.get 0) (local.get 1) (local.get 2)))
      (func (export "fail") (param i32) (call $fail (local.get 0)))
      (func (export "peek") (param i32) (result i32) (call $peek (local.get 0))))
    """
)

#: The native backend's own pieces, used directly: not run on the public backend.
pytestmark = pytest.mark.native_backend


def wasmtime_address(caller: Any, memory: wasmtime.Memory) -> int:
    import ctypes

    return ctypes.cast(memory.data_ptr(caller), ctypes.c_void_p).value or 0


def run(export: str, *args: Any) -> Any:
    engine = wasmtime.Engine()
    linker = wasmtime.Linker(engine)
    seen: list[Any] = []
    i32, i64, f64 = wasmtime.ValType.i32(), wasmtime.ValType.i64(), wasmtime.ValType.f64()

    def mix(caller: Any, a: int, b: int, c: float) -> int:
        seen.append((a, b, c))
        return a + b + int(c)

    def fail(caller: Any, how: int) -> None:
        if how == 1:
            raise wasmtime.Trap("stopped on purpose")
        raise ValueError("a bug in a host function")

    def peek(caller: Any, ptr: int) -> int:
        address, size = caller.memory_view()
        memory = caller.get("memory")
        assert isinstance(memory, wasmtime.Memory)
        assert memory.data_len(caller) == size == 65536
        assert address == wasmtime_address(caller, memory)
        return int(memory.read(caller, ptr, ptr + 1)[0])

    capi.define_host_func(linker, "host", "mix", wasmtime.FuncType([i32, i64, f64], [i64]), mix)
    capi.define_host_func(linker, "host", "fail", wasmtime.FuncType([i32], []), fail)
    capi.define_host_func(linker, "host", "peek", wasmtime.FuncType([i32], [i32]), peek)
    store = wasmtime.Store(engine)
    instance = linker.instantiate(store, wasmtime.Module(engine, GUEST))
    func = instance.exports(store)[export]
    assert isinstance(func, wasmtime.Func)
    return func(store, *args), seen


def test_parameters_and_result_cross_raw() -> None:
    result, seen = run("mix", -1, 2**40, 2.5)
    assert seen == [(2**32 - 1, 2**40, 2.5)]  # i32 arrives unsigned
    assert result == 2**32 - 1 + 2**40 + 2


def test_a_trap_raised_by_the_host_carries_its_message() -> None:
    with pytest.raises((wasmtime.Trap, wasmtime.WasmtimeError), match="stopped on purpose"):
        run("fail", 1)


def test_any_other_exception_becomes_a_trap_not_a_crash() -> None:
    with pytest.raises((wasmtime.Trap, wasmtime.WasmtimeError), match="a bug in a host function"):
        run("fail", 2)
    import wasmtime._func as wfunc

    assert wfunc.LAST_EXCEPTION is None  # nothing parked in wasmtime-py's global


def test_the_callers_memory() -> None:
    assert run("peek", 8)[0] == 42


def test_only_numeric_signatures() -> None:
    engine = wasmtime.Engine()
    ty = wasmtime.FuncType([wasmtime.ValType.externref()], [])
    with pytest.raises(ValueError, match="numbers only"):
        capi.define_host_func(wasmtime.Linker(engine), "h", "f", ty, lambda caller, x: None)
