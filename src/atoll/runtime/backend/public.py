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

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import wasmtime

from atoll.runtime.backend.base import Bound, InstanceRef, Meter, Prepared, Ticker
from atoll.runtime.signature import Signature

__all__ = ["BudgetSpent", "PublicBackend", "PyBound", "PyMeter", "PyTicker"]

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


def metered(
    store: wasmtime.Store,
    meter: Meter,
    invocation: Any,
    tick_ns: int,
    spent: type[Exception],
    fn: Callable[..., Any],
    *args: Any,
) -> Any:
    """``fn(*args)`` under the invocation's budget: checked, deadline set, CPU charged."""
    left = 0
    outermost = meter.depth == 0
    if outermost:  # a nested call runs under the outermost call's deadline
        left = invocation.cpu_budget_ns - invocation.cpu_used_ns
        if left <= 0:
            raise spent
        store.set_epoch_deadline(-(-left // tick_ns) + 1)  # ceil in integers
        # where hostfuncs.check_cpu stops long host work (the native meter knows it itself)
        invocation.cpu_deadline_ns = _thread_time_ns() + left
    meter.begin(left)
    try:
        return fn(*args)
    finally:
        used = meter.end()
        if outermost:
            invocation.cpu_used_ns += used


class PyBound:
    """An export of one instance called through wasmtime-py's ``Func.__call__``."""

    __slots__ = ("_func", "_meter", "_name", "_sig", "_spent", "_store", "_tick_ns")

    def __init__(
        self,
        name: str,
        sig: Signature,
        store: wasmtime.Store,
        meter: Meter,
        func: Callable[[], wasmtime.Func],
        tick_ns: int,
        spent: type[Exception],
    ) -> None:
        self._name = name
        self._sig = sig
        self._store = store
        self._meter = meter
        self._func = func
        self._tick_ns = tick_ns
        self._spent = spent

    def __call__(self, invocation: Any, *args: Any) -> Any:
        sig = self._sig
        sig.refuse_unsupported(self._name)
        converted = sig.convert(self._name, args)
        result = metered(
            self._store,
            self._meter,
            invocation,
            self._tick_ns,
            self._spent,
            self._func(),
            self._store,
            *converted,
        )
        return tuple(result) if isinstance(result, list) else result


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

    def pooling(self, config: wasmtime.Config, instances: int, settings: Mapping[str, int]) -> bool:
        return False  # the pooling allocator is reached through the C API only

    def address(self, pointer: Any) -> int:
        return 0

    def start_ticker(self, engine: wasmtime.Engine, tick_ns: int) -> Ticker:
        return PyTicker(engine, tick_ns)

    def define_host(
        self,
        linker: wasmtime.Linker,
        module: str,
        name: str,
        ty: wasmtime.FuncType,
        impl: Callable[..., Any],
    ) -> None:
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

    def call_back(
        self, caller: Any, func: wasmtime.Func, prepared: Prepared, *args: int | float
    ) -> Any:
        return func(caller, *args)

    def failure(self, failed: Exception) -> BaseException:
        return failed  # pragma: no cover - nothing raises _NeverRaised

    def is_interrupt(self, exc: BaseException) -> bool:
        return isinstance(exc, wasmtime.Trap) and exc.trap_code == wasmtime.TrapCode.INTERRUPT

    def serve_log_context(self, context: Any, log: Any) -> None:
        return None  # the WASI functions all run in Python

    def log_counts(self, lines: list[str]) -> Any:
        return None  # atoll:log.write runs in Python: RequestLog counts in Python

    def serve_stdio(self, meter: Meter, context: Any, log: Any = None) -> None:
        return None  # the WASI functions all run in Python (runtime/wasi/preview1.py)
