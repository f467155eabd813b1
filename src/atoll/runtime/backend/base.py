"""What a backend provides: the interface both implementations satisfy.

A backend is chosen once per process (``auto.py``) and used by the engine
(configuration, epoch ticker), the linker (host functions), the guest store
(stores and their CPU meter) and instances (instantiation, export calls).
Both give the same user-visible behaviour and errors; they differ in speed
(see ``docs/benchmarks.md``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

import wasmtime

from atoll.runtime.signature import Signature

__all__ = ["Backend", "Bound", "InstanceRef", "Meter", "Prepared", "Ticker"]

#: An instance as a backend holds it: wasmtime's raw ``(store_id, index)`` (native)
#: or a ``wasmtime.Instance`` (public).
InstanceRef = tuple[int, int] | wasmtime.Instance


class Meter(Protocol):
    """A store's CPU meter: the thread CPU time of the outermost call into the store.

    ``begin(allow_ns)`` … ``end()`` bracket a call; ``end`` returns the CPU
    time to charge (0 for a nested call, which the outermost call charges).
    ``stdio`` is the WASI state served in C during a CGI run (native only;
    always ``None`` on the public backend).
    """

    depth: int
    stdio: Any

    def begin(self, allow_ns: int) -> None: ...

    def end(self) -> int: ...


class Ticker(Protocol):
    """Advances an engine's epoch every tick until stopped."""

    def stop(self) -> None: ...


class Bound(Protocol):
    """One export of one instance, ready to call: ``bound(invocation, *numbers)``.

    Checks the invocation's CPU budget (raising the backend's
    ``BudgetSpent``), sets the deadline, calls, charges the thread CPU time.
    Raises ``TypeError`` / ``ValueError`` for arguments that do not fit the
    signature (the same text on both backends), the backend's ``CallFailed``
    or a ``wasmtime.Trap`` / ``WasmtimeError`` when the guest fails, and
    :class:`~atoll.errors.AbiError` for a signature Python cannot call (v128).
    """

    def __call__(self, invocation: Any, *args: Any) -> Any: ...


#: What a backend prepares once per (module, export) at load: opaque to callers.
Prepared = object


class Backend(Protocol):
    """The operations atoll needs from wasmtime, behind one interface.

    Preconditions common to all: a ``store`` is used by one thread at a time;
    ``ctx`` and ``meter`` are the ones :meth:`new_store` returned with it.
    """

    #: "native" or "public".
    name: str
    #: The wasmtime version, part of the compiled-code cache key.
    wasmtime_version: str
    #: Raised by a :class:`Bound` when the guest fails; :meth:`failure` gives the exception.
    CallFailed: type[Exception]
    #: Raised by a :class:`Bound` (and :meth:`instantiate`) when the budget is used up.
    BudgetSpent: type[Exception]

    def pooling(self, config: wasmtime.Config, instances: int, settings: Mapping[str, int]) -> bool:
        """Make engines built from ``config`` use wasmtime's pooling allocator for
        ``instances`` live instances (once per engine); False if this backend cannot."""
        ...

    def address(self, pointer: Any) -> int:
        """The C address of a wasmtime-py object's ``ptr()`` (0 on the public backend)."""
        ...

    def start_ticker(self, engine: wasmtime.Engine, tick_ns: int) -> Ticker:
        """Advance ``engine``'s epoch every ``tick_ns`` (once per engine)."""
        ...

    def define_host(
        self,
        linker: wasmtime.Linker,
        module: str,
        name: str,
        ty: wasmtime.FuncType,
        impl: Callable[..., Any],
    ) -> None:
        """Define a host function: ``impl(caller, *numbers)`` (once per linker)."""
        ...

    def new_store(
        self, engine: wasmtime.Engine, engine_address: int, memory_budget: int, tick_ns: int
    ) -> tuple[wasmtime.Store, int, Meter]:
        """A store with limits and a CPU meter: ``(store, ctx, meter)`` (per request)."""
        ...

    def instantiate(
        self,
        pre: wasmtime.InstancePre,
        pre_address: int,
        store: wasmtime.Store,
        ctx: int,
        meter: Meter,
        invocation: Any,
    ) -> InstanceRef:
        """Instantiate charged to ``invocation``. Raises :attr:`BudgetSpent`, or
        ``wasmtime.Trap`` / ``wasmtime.WasmtimeError``."""
        ...

    def raw_instance(self, ref: InstanceRef) -> wasmtime.Instance:
        """The ``wasmtime.Instance`` for ``ref`` (memory access, public-API calls)."""
        ...

    def prepare(self, name: str, sig: Signature) -> Prepared:
        """Per-export work done once per module load."""
        ...

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
        """The :class:`Bound` call of export ``name`` of the instance ``ref``."""
        ...

    def run(
        self, raw_name: bytes, ctx: int, meter: Meter, ref: InstanceRef, invocation: Any
    ) -> bool:
        """Call the ``() -> ()`` export ``raw_name`` in one step; False when this
        backend has no such shortcut (the caller then goes through :meth:`bind`).
        Raises like :meth:`instantiate`."""
        ...

    def call_back(
        self, caller: Any, func: wasmtime.Func, prepared: Prepared, *args: int | float
    ) -> Any:
        """Call guest ``func`` from inside a host function (``caller`` is what the
        host function received); ``prepared`` is :meth:`prepare` for its signature."""
        ...

    def failure(self, failed: Exception) -> BaseException:
        """The wasmtime exception behind a :attr:`CallFailed`."""
        ...

    def is_interrupt(self, exc: BaseException) -> bool:
        """True if ``exc`` means the guest was stopped for time (epoch or meter)."""
        ...

    def serve_stdio(self, meter: Meter, context: Any, log: Any = None) -> None:
        """Serve a CGI run's common WASI calls in C, if this backend can (per request);
        ``log``: the request's ``RequestLog.counts``, for its stderr."""
        ...

    def serve_log_context(self, context: Any, log: Any) -> None:
        """Serve in C, if this backend can, the WASI calls of ``context``, a context whose
        stdout and stderr go to the log (a request's default one, for modules called from
        Python); ``log``: the request's ``RequestLog.counts``. Once per request."""
        ...

    def log_counts(self, lines: list[str]) -> Any:
        """The counters of a request's log whose lines are ``lines`` (a
        ``logs.LogCounts``), or ``None`` for ``logs.RequestLog``'s own. Per request,
        when its invocation is made."""
        ...
