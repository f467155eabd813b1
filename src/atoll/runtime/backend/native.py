"""The native backend: atoll's C extension over wasmtime's C API (``runtime/capi.py``).

Importing this module raises ``ImportError`` when ``capi`` cannot load (a
wasmtime other than the pinned version, or ``_native`` not built); ``auto.py``
then chooses the public backend. Numeric export calls are one C call each
(``capi.Bound``); other signatures go through :class:`~.public.PyBound` with
this backend's store and meter.

The engine, modules and linker are ``native_setup``'s (wasmtime's C API through
ctypes), and a served request's path does not import wasmtime-py: only a failure
(its exceptions are wasmtime-py's), a non-numeric export and the public API's
objects (``Instance.raw``, ``RawCaller.get``; host functions find the guest's
``alloc`` with :meth:`guest_function`, without it) do.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from atoll.runtime import capi, native_setup
from atoll.runtime.backend.base import Bound, Export, Import, InstanceRef, Meter, Prepared, Ticker
from atoll.runtime.backend.pybound import PyBound
from atoll.runtime.logs import MAX_LOG_BYTES, MAX_LOG_LINE, MAX_LOG_LINES
from atoll.runtime.signature import Signature

if TYPE_CHECKING:  # imported only for what needs its objects (see capi.py)
    import wasmtime

__all__ = ["NativeBackend"]

_WASI = "wasi_snapshot_preview1"
_LOG_WRITE = ("atoll:log", "write")


class NativeBackend:
    """wasmtime's C API through ``atoll.runtime._native`` (see the module notes)."""

    name = "native"
    wasmtime_version = capi.WASMTIME_VERSION
    CallFailed: type[Exception] = capi.CallFailed
    BudgetSpent: type[Exception] = capi.BudgetSpent

    def __init__(self, tick_ns: int) -> None:
        self.tick_ns = tick_ns

    def new_engine(
        self, settings: Mapping[str, object], instances: int, pool: Mapping[str, int]
    ) -> tuple[Any, bool]:
        config = native_setup.new_config(settings)
        if instances:
            capi.enable_pooling(
                config, total_memories=instances, total_core_instances=instances, **pool
            )
        return native_setup.Engine(config), bool(instances)

    def compile(self, engine: Any, wasm: bytes) -> Any:
        return native_setup.Module.compile(engine, wasm)

    def deserialize(self, engine: Any, data: bytes) -> Any:
        return native_setup.Module.deserialize(engine, data)

    def serialize(self, module: Any) -> bytes:
        serialized: bytes = module.serialize()
        return serialized

    def exports(self, module: Any) -> list[Export]:
        exports: list[Export] = module.exports()
        return exports

    def imports(self, module: Any) -> list[Import]:
        imports: list[Import] = module.imports()
        return imports

    def new_linker(self, engine: Any) -> Any:
        return native_setup.Linker(engine)

    def instantiate_pre(self, linker: Any, module: Any) -> Any:
        return linker.instantiate_pre(module)

    def address(self, pointer: Any) -> int:
        return capi.address(pointer)

    def start_ticker(self, engine: Any, tick_ns: int) -> Ticker:
        ticker: Ticker = capi.start_ticker(engine, tick_ns)  # a C thread: no GIL
        return ticker

    def define_host(
        self,
        linker: Any,
        module: str,
        name: str,
        sig: Signature,
        impl: Callable[..., Any],
    ) -> None:
        if module == _WASI:
            native = capi.NATIVE_WASI.get(name, 0)
        else:
            native = capi.NATIVE_LOG_WRITE if (module, name) == _LOG_WRITE else 0
        capi.define_host_func(linker, module, name, sig, impl, native)

    def new_store(
        self, engine: Any, engine_address: int, memory_budget: int, tick_ns: int
    ) -> tuple[Any, int, Meter]:
        store, meter = capi.new_metered_store(
            engine, engine_address, memory_budget, 64, 64, 64, tick_ns
        )
        return store, store.ctx, meter

    def instantiate(
        self,
        pre: Any,
        pre_address: int,
        store: Any,
        ctx: int,
        meter: Meter,
        invocation: Any,
    ) -> InstanceRef:
        return capi.instantiate_metered(meter, invocation, pre_address, ctx)  # type: ignore[arg-type]

    def memory_view(
        self, store: Any, ctx: int, ref: InstanceRef, name: str
    ) -> Callable[[], tuple[int, int]]:
        assert isinstance(ref, tuple)
        found = capi.export_raw(ctx, ref, name.encode())
        assert found is not None, f"export {name} is missing"
        assert found[0] == 3, f"export {name} is not a memory"
        return capi.memory_view(store, found)

    def raw_instance(self, ref: InstanceRef) -> wasmtime.Instance:
        assert isinstance(ref, tuple)
        return capi.instance_from_raw(ref)

    def prepare(self, name: str, sig: Signature) -> Prepared:
        """A :class:`capi.FastCaller` for a numeric signature, else ``None``."""
        if sig.numeric and max(len(sig.params), len(sig.results)) <= capi.MAX_SLOTS:
            return capi.FastCaller(sig, name)
        return None

    def bind(
        self,
        prepared: Prepared,
        name: str,
        raw_name: bytes,
        sig: Signature,
        store: Any,
        ctx: int,
        meter: Meter,
        ref: InstanceRef,
    ) -> Bound:
        assert isinstance(ref, tuple)
        found = capi.export_raw(ctx, ref, raw_name)
        assert found is not None, f"export {name} is missing"
        assert found[0] == 0, f"export {name} is not a function"
        if isinstance(prepared, capi.FastCaller):
            bound: Bound = prepared.bind(meter, ctx, found[1], found[2])  # type: ignore[arg-type]
            return bound
        cell: list[wasmtime.Func] = []

        def func() -> wasmtime.Func:
            if not cell:
                cell.append(capi.func_from_raw(found))
            return cell[0]

        return PyBound(name, sig, store, meter, func, self.tick_ns, capi.BudgetSpent)

    def run(
        self, raw_name: bytes, ctx: int, meter: Meter, ref: InstanceRef, invocation: Any
    ) -> bool:
        assert isinstance(ref, tuple)
        return capi.run_export(meter, invocation, ctx, ref, raw_name, convert=False)  # type: ignore[arg-type]

    def guest_function(self, caller: Any, name: str) -> tuple[Signature, Any] | None:
        if isinstance(caller, capi.RawCaller):  # without wasmtime-py
            return caller.function(name)
        func = caller.get(name)
        if func is None or not hasattr(func, "_func"):  # (not a function)
            return None
        return Signature.of_func(caller, func), func

    def call_back(self, caller: Any, func: Any, prepared: Prepared, *args: int | float) -> Any:
        if isinstance(func, tuple):  # guest_function's ids
            assert isinstance(prepared, capi.FastCaller), "a numeric signature"
            return prepared.call_ids(caller, func[0], func[1], *args)
        if isinstance(prepared, capi.FastCaller):
            return prepared.call(caller, func, *args)
        return func(caller, *args)

    def failure(self, failed: Exception) -> BaseException:
        return capi.failure(*failed.args)

    def discard(self, failed: Exception) -> None:
        capi.discard(*failed.args)

    def is_interrupt(self, exc: BaseException) -> bool:
        wasmtime = sys.modules.get("wasmtime")  # none of its exceptions exist before it is
        if wasmtime is None:
            return False
        if isinstance(exc, wasmtime.Trap) and capi.INTERRUPT_MARKER in str(exc):
            return True
        return capi.is_interrupt(exc)

    def serve_stdio(self, meter: Meter, context: Any, log: Any = None) -> None:
        """``log`` a ``capi.LogBook`` (the request's counts): stderr goes to it in C too."""
        book = log if isinstance(log, capi.LogBook) else None
        meter.stdio = context.serve_stdio_in_c(capi.Stdio, book)

    def serve_log_context(self, context: Any, log: Any) -> None:
        """Give ``context`` a ``capi.Stdio`` with its argv, environment, stdin and grants,
        writing stdout and stderr to ``log`` (a ``capi.LogBook``): a store without a Stdio
        of its own finds it through the invocation (``native/wasi.c``, ``log_out``) and
        serves the calls in C (all but ``proc_exit``)."""
        if isinstance(log, capi.LogBook):
            context.serve_stdio_in_c(capi.Stdio, log)

    def log_counts(self, lines: list[str]) -> Any:
        """A ``capi.LogBook``: ``atoll:log.write`` keeps and counts lines in C (no GIL)."""
        return capi.LogBook(lines, MAX_LOG_LINES, MAX_LOG_BYTES, MAX_LOG_LINE)
