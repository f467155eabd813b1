"""What a backend provides: the interface both implementations satisfy.

A backend is chosen once per process (``auto.py``) and used by the engine
(configuration, epoch ticker), the linker (host functions), the guest store
(stores and their CPU meter) and instances (instantiation, export calls).
Both give the same user-visible behaviour and errors; they differ in speed
(see ``docs/benchmarks.md``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

from atoll.runtime.signature import Signature

if TYPE_CHECKING:  # the native backend runs without importing wasmtime-py
    import wasmtime

__all__ = ["Backend", "Bound", "Export", "Import", "InstanceRef", "Meter", "Prepared", "Ticker"]

#: An instance as a backend holds it: wasmtime's raw ``(store_id, index)`` (native)
#: or a ``wasmtime.Instance`` (public).
InstanceRef: TypeAlias = "tuple[int, int] | wasmtime.Instance"
#: A module's export: ``(name, kind, signature)``; kind ``func``, ``memory``, ``table``,
#: ``global``…; the signature of a function only.
Export: TypeAlias = tuple[str, str, Signature | None]
#: A module's import: ``(module, name, kind, signature)`` (as :data:`Export`).
Import: TypeAlias = tuple[str, str, str, Signature | None]


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

    def new_engine(
        self, settings: Mapping[str, object], instances: int, pool: Mapping[str, int]
    ) -> tuple[Any, bool]:
        """An engine with ``settings`` (wasmtime-py ``Config`` attribute names and values)
        and, if ``instances``, wasmtime's pooling allocator for that many live instances
        with ``pool``'s settings: ``(engine, pooled)``, ``pooled`` False if this backend
        cannot pool. Once per process."""
        ...

    def compile(self, engine: Any, wasm: bytes) -> Any:
        """Compile ``wasm`` (a module); raises ``wasmtime.WasmtimeError``. Per cache miss."""
        ...

    def deserialize(self, engine: Any, data: bytes) -> Any:
        """The module :meth:`serialize` wrote; raises ``wasmtime.WasmtimeError``."""
        ...

    def serialize(self, module: Any) -> bytes:
        """A compiled module's bytes, for the disk cache."""
        ...

    def exports(self, module: Any) -> list[Export]:
        """A module's exports, in order (once per load)."""
        ...

    def imports(self, module: Any) -> list[Import]:
        """A module's imports, in order (once per load)."""
        ...

    def new_linker(self, engine: Any) -> Any:
        """An empty linker (once per runtime)."""
        ...

    def instantiate_pre(self, linker: Any, module: Any) -> Any:
        """``module`` pre-linked against ``linker`` (once per load); raises
        ``wasmtime.WasmtimeError`` if an import is missing."""
        ...

    def address(self, pointer: Any) -> int:
        """The C address of a wasmtime-py object's ``ptr()`` (0 on the public backend)."""
        ...

    def start_ticker(self, engine: Any, tick_ns: int) -> Ticker:
        """Advance ``engine``'s epoch every ``tick_ns`` (once per engine)."""
        ...

    def define_host(
        self,
        linker: Any,
        module: str,
        name: str,
        sig: Signature,
        impl: Callable[..., Any],
    ) -> None:
        """Define a host function of the numeric signature ``sig``:
        ``impl(caller, *numbers)`` (once per linker)."""
        ...

    def new_store(
        self, engine: Any, engine_address: int, memory_budget: int, tick_ns: int
    ) -> tuple[Any, int, Meter]:
        """A store with limits and a CPU meter: ``(store, ctx, meter)`` (per request)."""
        ...

    def instantiate(
        self,
        pre: Any,
        pre_address: int,
        store: Any,
        ctx: int,
        meter: Meter,
        invocation: Any,
    ) -> InstanceRef:
        """Instantiate charged to ``invocation``. Raises :attr:`BudgetSpent`, or
        ``wasmtime.Trap`` / ``wasmtime.WasmtimeError``."""
        ...

    def memory_view(
        self, store: Any, ctx: int, ref: InstanceRef, name: str
    ) -> Callable[[], tuple[int, int]]:
        """For the exported memory ``name`` of the instance ``ref`` (which has it): a
        function giving its ``(address, length)`` now. Once per instance that uses it."""
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
        store: Any,
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
        Raises like :meth:`instantiate`, or :attr:`CallFailed` (for :meth:`failure`)."""
        ...

    def guest_function(self, caller: Any, name: str) -> tuple[Signature, Any] | None:
        """The calling guest's exported function ``name``, from inside a host function
        (``caller`` is what it received): ``(signature, func)`` for :meth:`call_back`;
        ``None`` if the guest exports no function so named."""
        ...

    def call_back(self, caller: Any, func: Any, prepared: Prepared, *args: int | float) -> Any:
        """Call guest ``func`` (a ``wasmtime.Func``, or what :meth:`guest_function`
        gave) from inside a host function (``caller`` is what the host function
        received); ``prepared`` is :meth:`prepare` for its signature."""
        ...

    def failure(self, failed: Exception) -> BaseException:
        """The wasmtime exception behind a :attr:`CallFailed` (which it takes)."""
        ...

    def discard(self, failed: Exception) -> None:
        """Free what a :attr:`CallFailed` holds without making its exception (a failure
        whose cause is known otherwise: a ``proc_exit`` served in C)."""
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
