"""The public-API backend: wasmtime-py's documented API only, in Python.

Used when the compiled path cannot load (another wasmtime version, no C
compiler) or when ``ATOLL_CAPI=0``. Correct and slower: every call crosses
ctypes several times. Its CPU meter reads the thread's CPU clock around the
outermost call, and the epoch deadline (wall time) stops a guest that
never returns.

:class:`PyBound` is also the native backend's call for signatures its C
path does not take (references, ``v128``).
"""

from __future__ import annotations

import ctypes
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import wasmtime

from atoll.runtime.backend.base import Bound, Export, Import, InstanceRef, Meter, Prepared, Ticker
from atoll.runtime.backend.pybound import PyBound, metered
from atoll.runtime.signature import Signature

__all__ = ["BudgetSpent", "PublicBackend", "PyBound", "PyMeter", "PyTicker", "metered"]

_thread_time_ns = time.thread_time_ns


class BudgetSpent(Exception):
    """The invocation's CPU budget was used up before the call."""


class _NeverRaised(Exception):
    """The public backend's ``CallFailed``: its calls raise wasmtime's exceptions."""


class PyMeter:
    """Thread CPU time of the outermost call into a store (see ``base.Meter``)."""

    __slots__ = ("_start", "depth", "stdio")

    def __init__(self) -> None:
        self.depth = 0
        self.stdio: Any = None
        self._start = 0

    def begin(self, allow_ns: int) -> None:
        if self.depth == 0:
            self._start = _thread_time_ns()
        self.depth += 1

    def end(self) -> int:
        self.depth -= 1
        return _thread_time_ns() - self._start if self.depth == 0 else 0


class PyTicker:
    """Keeps an engine's epoch equal to the ticks since start, on a Python thread.

    The thread needs the GIL to run; under contention it wakes late, so it
    counts ticks from the monotonic clock and catches up, rather than adding
    one per wake (which stretched a 500-tick deadline to over a second with
    four busy event loops).
    """

    def __init__(self, engine: wasmtime.Engine, tick_ns: int) -> None:
        self._engine = engine
        self._tick = tick_ns / 1e9
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="atoll-epoch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        increment = self._engine.increment_epoch
        wait = self._stop.wait
        clock = time.monotonic
        tick = self._tick
        start = clock()
        done = 0
        while not wait(tick):
            due = int((clock() - start) / tick)
            for _ in range(due - done):
                increment()
            done = max(done, due)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def export_func(store: wasmtime.Store, instance: wasmtime.Instance, name: str) -> wasmtime.Func:
    func = instance.exports(store)[name]
    assert isinstance(func, wasmtime.Func), f"export {name} is not a function"
    return func


class PublicBackend:
    """wasmtime-py's public API (see the module notes)."""

    name = "public"
    CallFailed: type[Exception] = _NeverRaised
    BudgetSpent: type[Exception] = BudgetSpent

    def __init__(self, tick_ns: int) -> None:
        import importlib.metadata  # here: it would weigh on every cold start of the native backend

        self.tick_ns = tick_ns
        self.wasmtime_version = importlib.metadata.version("wasmtime")

    def new_engine(
        self, settings: Mapping[str, object], instances: int, pool: Mapping[str, int]
    ) -> tuple[Any, bool]:
        config = wasmtime.Config()
        for name, value in settings.items():
            setattr(config, name, value)
        # the pooling allocator is reached through the C API only
        return wasmtime.Engine(config), False

    def compile(self, engine: Any, wasm: bytes) -> Any:
        return wasmtime.Module(engine, wasm)

    def deserialize(self, engine: Any, data: bytes) -> Any:
        return wasmtime.Module.deserialize(engine, data)

    def serialize(self, module: Any) -> bytes:
        return bytes(module.serialize())

    def exports(self, module: Any) -> list[Export]:
        return [(e.name, *_describe(e.type)) for e in module.exports]

    def imports(self, module: Any) -> list[Import]:
        return [(i.module, i.name or "", *_describe(i.type)) for i in module.imports]

    def new_linker(self, engine: Any) -> Any:
        return wasmtime.Linker(engine)

    def instantiate_pre(self, linker: Any, module: Any) -> Any:
        return linker.instantiate_pre(module)

    def address(self, pointer: Any) -> int:
        return 0

    def start_ticker(self, engine: wasmtime.Engine, tick_ns: int) -> Ticker:
        return PyTicker(engine, tick_ns)

    def define_host(
        self,
        linker: wasmtime.Linker,
        module: str,
        name: str,
        sig: Signature,
        impl: Callable[..., Any],
    ) -> None:
        ty = wasmtime.FuncType(
            [_VALTYPES[k]() for k in sig.params], [_VALTYPES[k]() for k in sig.results]
        )
        linker.define_func(module, name, ty, impl, access_caller=True)

    def new_store(
        self, engine: wasmtime.Engine, engine_address: int, memory_budget: int, tick_ns: int
    ) -> tuple[wasmtime.Store, int, Meter]:
        store = wasmtime.Store(engine)
        store.set_limits(memory_size=memory_budget, instances=64, tables=64, memories=64)
        return store, 0, PyMeter()

    def instantiate(
        self,
        pre: wasmtime.InstancePre,
        pre_address: int,
        store: wasmtime.Store,
        ctx: int,
        meter: Meter,
        invocation: Any,
    ) -> InstanceRef:
        instance: wasmtime.Instance = metered(
            store, meter, invocation, self.tick_ns, BudgetSpent, pre.instantiate, store
        )
        return instance

    def memory_view(
        self, store: Any, ctx: int, ref: InstanceRef, name: str
    ) -> Callable[[], tuple[int, int]]:
        memory = self.raw_instance(ref).exports(store)[name]
        assert isinstance(memory, wasmtime.Memory)

        def view() -> tuple[int, int]:
            base = ctypes.cast(memory.data_ptr(store), ctypes.c_void_p).value or 0
            return base, memory.data_len(store)

        return view

    def raw_instance(self, ref: InstanceRef) -> wasmtime.Instance:
        assert isinstance(ref, wasmtime.Instance)
        return ref

    def prepare(self, name: str, sig: Signature) -> Prepared:
        return None

    def bind(
        self,
        prepared: Prepared,
        name: str,
        raw_name: bytes,
        sig: Signature,
        store: wasmtime.Store,
        ctx: int,
        meter: Meter,
        ref: InstanceRef,
    ) -> Bound:
        instance = self.raw_instance(ref)
        cell: list[wasmtime.Func] = []

        def func() -> wasmtime.Func:
            if not cell:
                cell.append(export_func(store, instance, raw_name.decode()))
            return cell[0]

        return PyBound(name, sig, store, meter, func, self.tick_ns, BudgetSpent)

    def run(
        self, raw_name: bytes, ctx: int, meter: Meter, ref: InstanceRef, invocation: Any
    ) -> bool:
        return False

    def guest_function(self, caller: Any, name: str) -> tuple[Signature, Any] | None:
        func = caller.get(name)
        if not isinstance(func, wasmtime.Func):
            return None
        return Signature.of_func(caller, func), func

    def call_back(self, caller: Any, func: Any, prepared: Prepared, *args: int | float) -> Any:
        return func(caller, *args)

    def failure(self, failed: Exception) -> BaseException:
        return failed  # pragma: no cover - nothing raises _NeverRaised

    def discard(self, failed: Exception) -> None:
        return None  # pragma: no cover - nothing raises _NeverRaised

    def is_interrupt(self, exc: BaseException) -> bool:
        return isinstance(exc, wasmtime.Trap) and exc.trap_code == wasmtime.TrapCode.INTERRUPT

    def serve_log_context(self, context: Any, log: Any) -> None:
        return None  # the WASI functions all run in Python

    def log_counts(self, lines: list[str]) -> Any:
        return None  # atoll:log.write runs in Python: RequestLog counts in Python

    def serve_stdio(self, meter: Meter, context: Any, log: Any = None) -> None:
        return None  # the WASI functions all run in Python (runtime/wasi/preview1.py)


#: How to make each numeric value type.
_VALTYPES: dict[str, Callable[[], wasmtime.ValType]] = {
    "i32": wasmtime.ValType.i32,
    "i64": wasmtime.ValType.i64,
    "f32": wasmtime.ValType.f32,
    "f64": wasmtime.ValType.f64,
}

_KINDS: dict[type, str] = {
    wasmtime.FuncType: "func",
    wasmtime.MemoryType: "memory",
    wasmtime.TableType: "table",
    wasmtime.GlobalType: "global",
}


def _describe(ty: object) -> tuple[str, Signature | None]:
    """``(kind, signature)`` of an extern type (the signature of a function only)."""
    kind = _KINDS.get(type(ty), type(ty).__name__)
    return kind, Signature.of(ty) if isinstance(ty, wasmtime.FuncType) else None
