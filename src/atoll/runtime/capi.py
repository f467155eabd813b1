"""Hot paths through wasmtime's C API, pinned to one wasmtime-py release.

wasmtime-py's public API spends most of an export call, and of a fresh store
+ instance + call, on Python-side wrapping, and even ctypes costs more per
crossing than the call itself (numbers: docs/benchmarks.md, "runtime"). This module reaches the same C functions
two ways: a compiled extension, ``atoll.runtime._native`` (``native/*.c``),
for everything on a request's path, and ctypes (our own declarations:
``libwasmtime.cfn``, ``native_setup.py``) for the rest:

==============================  ===========================================
``FastCaller`` / ``Bound``      ``wasmtime_func_call_unchecked`` (C)
``instantiate_metered``         ``wasmtime_instance_pre_instantiate`` (C)
``export_raw``                  ``wasmtime_instance_export_get`` (C)
``Meter``                       ``wasmtime_store_epoch_deadline_callback``
                                with a C callback: CPU time, no GIL
``start_ticker`` (``Ticker``)   ``wasmtime_engine_increment_epoch`` on a
                                native thread
``define_host_func``            ``wasmtime_linker_define_func_unchecked``
                                with a C trampoline
``enable_pooling``              ctypes
==============================  ===========================================

(The ctypes-era helpers that build stores, instances and exports by hand live
in ``tests/runtime/capi_ctypes.py``: only tests and ``bench_capi`` use them.)

``_native`` links against nothing: this module hands it the addresses of the
C functions in the ``libwasmtime`` of the pinned wasmtime-py release, which
``libwasmtime.py`` opens without importing wasmtime-py. The struct layouts
``native/module.h`` declares are checked against wasmtime-py's definitions by
``tests/runtime/test_native.py``.

wasmtime-py itself is imported only where one of its objects is made: a
failure's ``Trap`` / ``WasmtimeError`` (:func:`failure`), ``instance_from_raw``,
``func_from_raw``, ``RawCaller.get``, and a :class:`MeteredStore` or
:class:`RawCaller` handed to its public API. So callers can still mix both APIs,
and a request that only instantiates and calls numbers never imports it.

The private layouts change between releases, so importing this module raises
``ImportError`` unless the installed wasmtime is exactly ``WASMTIME_VERSION``
(and ``_native`` is built); the runtime then falls back to the public API.

Threads: the C functions release the GIL while wasm runs. One ``Store`` must
be used by one thread at a time (wasmtime's rule); ``FastCaller``, ``Bound``
and this module's state may be shared by any number of threads.

Caveats:

* ``FastCaller`` / ``Bound`` do not check that a function belongs to the
  store or has the caller's signature (``FastCaller.check`` does, off the hot
  path); a wrong store aborts the process inside wasmtime, as it does with
  the public API.
* Pinned to one release: the C API's structs (``native/module.h``) and
  wasmtime-py's private ones change between versions.
"""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

# Before anything else: raises ImportError unless the pinned wasmtime is installed.
from atoll.runtime.libwasmtime import (
    DLL,
    WASMTIME_VERSION,
    address,
    cfn,
    installed_wasmtime_version,
)
from atoll.runtime.native_setup import (
    FuncType,
    functype_signature,
    set_store_limits,
    wasmtime_error,
)
from atoll.runtime.signature import Signature

if TYPE_CHECKING:  # wasmtime-py: imported only where its objects are made (see the notes)
    import wasmtime

try:
    from atoll.runtime import _native
except ImportError as exc:  # pragma: no cover - a source tree without its build
    raise ImportError(
        f"atoll.runtime._native is not built ({exc}); run `pip install -e .` "
        "(needs a C compiler and Python's headers: scripts/setup.sh installs them)"
    ) from exc

__all__ = [
    "INTERRUPT_MARKER",
    "MAX_SLOTS",
    "NATIVE_LOG_WRITE",
    "NATIVE_WASI",
    "WASMTIME_VERSION",
    "Bound",
    "BudgetSpent",
    "CallFailed",
    "FastCaller",
    "LogBook",
    "Meter",
    "MeteredStore",
    "RawCaller",
    "Stdio",
    "Ticker",
    "address",
    "context_address",
    "define_host_func",
    "discard",
    "enable_pooling",
    "export_raw",
    "failure",
    "func_from_raw",
    "installed_wasmtime_version",
    "instance_from_raw",
    "instantiate_metered",
    "is_interrupt",
    "memory_view",
    "new_metered_store",
    "run_export",
    "start_ticker",
    "thread_ns",
]

# --- raw C entry points ------------------------------------------------------
#
# Our own foreign-function objects (libwasmtime.cfn), separate from wasmtime-py's.
# CDLL functions release the GIL.

_P = ctypes.c_void_p

# wasmtime_extern_t's kinds (native/module.h declares its layout, checked against
# wasmtime-py's in tests/runtime/test_native.py).
_EXTERN_FUNC = 0
_EXTERN_MEMORY = 3


def _wasmtime() -> Any:
    """wasmtime-py, imported on first use: for its exception and object types, which
    only a failure or the public API needs (a served request's path does not)."""
    import wasmtime

    return wasmtime


def _ffi() -> Any:
    from wasmtime import _ffi as ffi

    return ffi


# The C functions _native calls, found in the library libwasmtime opened.
_native.init({name: address(getattr(DLL, name)) for name in _native.needed()})

CallFailed = _native.CallFailed
BudgetSpent = _native.BudgetSpent
Meter = _native.Meter
Bound = _native.Bound
Ticker = _native.Ticker
Stdio = _native.Stdio
LogBook = _native.LogBook
thread_ns = _native.thread_ns

INTERRUPT_MARKER: str = _native.INTERRUPT_MARKER
"""Substring of the ``WasmtimeError`` raised when a :class:`Meter` stops wasm."""


def failure(err: int, trap: int) -> BaseException:
    """The exception for a failed C call, from its error and trap addresses.

    Takes ownership of both. A Python exception that wasmtime-py parked in its
    module global ``LAST_EXCEPTION`` (a public-API host function raised: racy
    across threads, see the module notes) wins, with the failure as its cause.
    Imports wasmtime-py (a failure's exception is one of its types).
    """
    wasmtime, ffi = _wasmtime(), _ffi()
    exc: Exception
    if err:
        if trap:  # not expected together; do not leak the trap
            wasmtime.Trap._from_ptr(ctypes.cast(trap, ctypes.POINTER(ffi.wasm_trap_t))).close()
        exc = wasmtime_error(err)
    else:
        exc = wasmtime.Trap._from_ptr(ctypes.cast(trap, ctypes.POINTER(ffi.wasm_trap_t)))
    from wasmtime import _func as wasmtime_func

    last = wasmtime_func.LAST_EXCEPTION
    if last is not None:
        wasmtime_func.LAST_EXCEPTION = None
        last.__cause__ = exc
        last.__suppress_context__ = True
        return last
    return exc


# --- stores, instances, exports --------------------------------------------------


def context_address(store: wasmtime.Store | wasmtime.Caller | MeteredStore | RawCaller) -> int:
    """The ``wasmtime_context_t*`` of a store (or of a host call's caller), as an int.
    Raises ``ValueError`` for a closed store."""
    if isinstance(store, MeteredStore):  # (without wasmtime-py's pointer types)
        if not store.address:
            raise ValueError("already closed")
        return store.ctx
    if isinstance(store, RawCaller):
        return store.ctx
    return address(store._context())


class MeteredStore:
    """A store made and freed by ``_native`` (see :func:`new_metered_store`).

    It stands for a ``wasmtime.Store`` where wasmtime-py's public API takes one
    (``Func.__call__``, ``Memory.data_len``…: they use ``_context()``). Its ctypes
    pointers (``ptr()``, ``_context()``), which only that API needs, are built on
    first use: a request that only instantiates and calls never builds them (nor
    imports wasmtime-py).
    """

    def __init__(self, engine: Any, address: int, ctx: int) -> None:
        self.engine = engine
        self.address = address
        self.ctx = ctx
        self._store_ptr: Any = None
        self._ctx_ptr: Any = None

    def ptr(self) -> Any:
        if not self.address:
            raise ValueError("already closed")
        if self._store_ptr is None:
            self._store_ptr = ctypes.cast(self.address, ctypes.POINTER(_ffi().wasmtime_store_t))
        return self._store_ptr

    def _context(self) -> Any:
        if not self.address:
            raise ValueError("already closed")
        if self._ctx_ptr is None:
            self._ctx_ptr = ctypes.cast(self.ctx, ctypes.POINTER(_ffi().wasmtime_context_t))
        return self._ctx_ptr

    def _consume(self) -> Any:  # pragma: no cover - stores are never moved
        raise ValueError("a MeteredStore cannot be consumed")

    def set_limits(
        self,
        memory_size: int = -1,
        table_elements: int = -1,
        instances: int = -1,
        tables: int = -1,
        memories: int = -1,
    ) -> None:
        """wasmtime-py's ``Store.set_limits``: a negative limit is not set."""
        if not self.address:
            raise ValueError("already closed")
        set_store_limits(self.address, memory_size, table_elements, instances, tables, memories)

    def set_epoch_deadline(self, ticks_after_current: int) -> None:
        """wasmtime-py's ``Store.set_epoch_deadline`` (the public-API call path's)."""
        if not self.address:
            raise ValueError("already closed")
        _set_epoch_deadline(self.ctx, ticks_after_current)

    def close(self) -> None:
        address, self.address = self.address, 0
        if address:
            self._store_ptr = self._ctx_ptr = None
            _native.store_delete(address)

    def __del__(self) -> None:
        if self.address:
            self.close()


_set_epoch_deadline = cfn("wasmtime_context_set_epoch_deadline", None, _P, ctypes.c_uint64)


def new_metered_store(
    engine: Any,
    engine_address: int,
    memory_size: int,
    instances: int,
    tables: int,
    memories: int,
    tick_ns: int,
) -> tuple[MeteredStore, Meter]:
    """A store with limits and a :class:`Meter`, in one C call: ``(store, meter)``.

    ``engine_address`` is ``address(engine.ptr())``, computed once; the
    store's context address is ``store.ctx``. The same store as
    :func:`new_store` + ``Store.set_limits(memory_size, instances=…, tables=…,
    memories=…)`` + :func:`install_meter`, without their ctypes crossings.
    """
    meter = _native.Meter(tick_ns)
    ptr, ctx = _native.new_store(engine_address, memory_size, instances, tables, memories, meter)
    return MeteredStore(engine, ptr, ctx), meter


def instantiate_metered(meter: Meter, invocation: Any, pre: int, ctx: int) -> tuple[int, int]:
    """``instantiate`` charged to ``invocation``'s CPU budget (see :class:`Bound`).

    ``pre`` and ``ctx`` are addresses (:func:`address`, :func:`context_address`).
    Returns the instance's raw ``(store_id, index)``, for :func:`export_raw`
    and :func:`instance_from_raw`. Raises :class:`BudgetSpent` when the budget
    is already used up, and what ``instantiate`` raises otherwise.
    """
    try:
        return _native.instantiate(meter, invocation, pre, ctx)
    except CallFailed as failed:
        raise failure(*failed.args) from None


def instance_from_raw(ids: tuple[int, int]) -> wasmtime.Instance:
    """The ``wasmtime.Instance`` for :func:`instantiate_metered`'s ids."""
    instance: wasmtime.Instance = _wasmtime().Instance._from_raw(_ffi().wasmtime_instance_t(*ids))
    return instance


def run_export(
    meter: Meter,
    invocation: Any,
    ctx: int,
    instance: tuple[int, int],
    name: bytes,
    *,
    convert: bool = True,
) -> bool:
    """Call the ``() -> ()`` export ``name`` of an instance, charged like a :class:`Bound`.

    One C call: the lookup and the call (a WASI command's ``_start``). False if
    the instance has no function of that name; raises :class:`BudgetSpent`, or
    the failure's ``wasmtime`` exception (:func:`failure`); with ``convert=False``
    the :class:`CallFailed` itself (for :func:`failure` or :func:`discard`).
    """
    try:
        return _native.run_export(meter, invocation, ctx, instance[0], instance[1], name)
    except CallFailed as failed:
        if not convert:
            raise
        raise failure(*failed.args) from None


_trap_delete = cfn("wasm_trap_delete", None, _P)
_error_delete = cfn("wasmtime_error_delete", None, _P)


def discard(err: int, trap: int) -> None:
    """Free a failed C call's error and trap (:class:`CallFailed`'s arguments) without
    making their exception: for a failure whose cause is known otherwise."""
    if err:
        _error_delete(err)
    if trap:
        _trap_delete(trap)


def export_raw(ctx: int, instance: tuple[int, int], name: bytes) -> tuple[int, ...] | None:
    """One export of an instance as plain ints: ``(kind, store_id, private)`` for a
    function, ``(kind, store_id, private1, private2)`` for a memory; ``None`` if absent."""
    return _native.export_get(ctx, instance[0], instance[1], name)


def func_from_raw(raw: tuple[int, ...]) -> wasmtime.Func:
    """A ``wasmtime.Func`` from :func:`export_raw`'s answer for a function."""
    wt = _wasmtime()
    func: wasmtime.Func = wt.Func.__new__(wt.Func)
    func._func = _ffi().wasmtime_func_t(raw[1], raw[2])
    return func


class _MemoryT(ctypes.Structure):
    """``wasmtime_memory_t`` (native/module.h's ``wt_memory_t``: 24 bytes)."""

    _fields_ = (
        ("store_id", ctypes.c_uint64),
        ("priv1", ctypes.c_uint32),
        ("_pad", ctypes.c_uint32),
        ("priv2", ctypes.c_uint32),
    )


_memory_data = cfn("wasmtime_memory_data", _P, _P, ctypes.POINTER(_MemoryT))
_memory_data_size = cfn("wasmtime_memory_data_size", ctypes.c_size_t, _P, ctypes.POINTER(_MemoryT))


def memory_view(store: MeteredStore, raw: tuple[int, ...]) -> Callable[[], tuple[int, int]]:
    """For :func:`export_raw`'s answer for a memory of ``store``: a function giving the
    memory's ``(address, length)`` now (it moves when the memory grows). It raises
    ``ValueError`` once the store is closed, as wasmtime-py's ``Memory`` does."""
    memory = ctypes.byref(_MemoryT(raw[1], raw[2], 0, raw[3]))  # (holds the struct)
    context = _P(store.ctx)

    def view() -> tuple[int, int]:
        if not store.address:
            raise ValueError("already closed")
        return _memory_data(context, memory) or 0, _memory_data_size(context, memory)

    return view


# --- calls -----------------------------------------------------------------------------


_CODE = {"i32": "i", "i64": "I", "f32": "f", "f64": "d"}

#: Most parameters (or results) a C call takes.
MAX_SLOTS: int = _native.MAX_SLOTS


def _codes(kinds: tuple[str, ...]) -> bytes:
    """The kind codes ``_native`` takes: i (i32), I (i64), f (f32), d (f64)."""
    return "".join(_CODE[k] for k in kinds).encode()


class FastCaller:
    """Calls an export of one signature on any instance, through ``wasmtime_func_call_unchecked``.

    Build it once per (module, export) and cache it; ``call`` it with a
    store and ``Func``, or :meth:`bind` it once per instance for the hot
    path. Safe to use from many threads at once (the C code keeps its
    argument array on the stack).

    Conversions: i32/i64 params take Python ints in the signed *or* unsigned
    range (``0xFFFF_FFFF`` passes as ``-1``); f32/f64 params take ints or
    floats (an f32 overflow becomes ±inf, as a C cast). i32/i64 results come
    back as signed ints, like wasmtime-py's ``Func.__call__``. One result is
    returned bare, several as a tuple, none as ``None``.

    Precondition, not checked on the hot path: ``func`` belongs to ``store``
    and has exactly the signature this caller was built for (``check`` tests
    it). The C call is *unchecked*: a wrong signature reads or writes the
    wrong slots, and a func from another store aborts the process.
    """

    __slots__ = ("_sig", "name", "sig")

    def __init__(self, sig: Signature, name: str) -> None:
        if not sig.numeric:
            raise ValueError(
                f"export {name!r}: FastCaller supports only i32/i64/f32/f64, got {sig}"
            )
        if max(len(sig.params), len(sig.results)) > _native.MAX_SLOTS:
            raise ValueError(f"export {name!r}: more than {_native.MAX_SLOTS} params or results")
        self.sig = sig
        self.name = name
        self._sig = _native.Sig(_codes(sig.params), _codes(sig.results), name)

    def check(self, store: wasmtime.Store | MeteredStore, func: wasmtime.Func) -> None:
        """Raise ``TypeError`` unless ``func``'s type is this caller's signature."""
        actual = Signature.of_func(store, func)
        if actual != self.sig:
            raise TypeError(f"export {self.name!r} has type {actual}, caller built for {self.sig}")

    def call(
        self,
        store: wasmtime.Store | wasmtime.Caller | MeteredStore | RawCaller,
        func: wasmtime.Func,
        *args: int | float,
    ) -> int | float | tuple[int | float, ...] | None:
        """Call ``func`` in ``store`` with ``args``.

        ``store`` may also be the caller a host function receives (a call back
        into the guest from inside a host call).

        Raises ``wasmtime.Trap`` on a trap (``trap_code``, ``frames``),
        ``wasmtime.WasmtimeError`` on other failures (e.g. a :class:`Meter`
        stopped it: ``is_interrupt``), ``TypeError`` / ``ValueError`` for
        wrong arguments, ``ValueError`` if the store is closed.
        """
        raw = func._func
        try:
            result: Any = self._sig.call(
                context_address(store), raw.store_id, getattr(raw, "__private") or 0, *args
            )
        except CallFailed as failed:
            raise failure(*failed.args) from None
        return result  # type: ignore[no-any-return]

    __call__ = call

    def call_ids(
        self, caller: RawCaller, store_id: int, private: int, *args: int | float
    ) -> int | float | tuple[int | float, ...] | None:
        """:meth:`call` of the function ``RawCaller.function`` found (its ids), from
        inside a host function; the same preconditions and errors."""
        try:
            result: Any = self._sig.call(caller.ctx, store_id, private, *args)
        except CallFailed as failed:
            raise failure(*failed.args) from None
        return result  # type: ignore[no-any-return]

    def bind(self, meter: Meter, ctx: int, store_id: int, private: int) -> Bound:
        """A :class:`Bound` call of one function (``export_raw``'s ids) in the store at ``ctx``."""
        return _native.Bound(self._sig, meter, ctx, store_id, private)


# --- CPU metering at epoch deadlines ---------------------------------------------------
#
# A Meter (C) is a store's epoch-deadline callback: at each deadline it lets
# the call run on while the guest's thread CPU time in the outermost call into
# the store (``begin(allow_ns)`` … ``end()``, or a Bound / instantiate_metered
# call) is under ``allow_ns``, moving the deadline by the ticks left; past it
# the call fails with a WasmtimeError containing INTERRUPT_MARKER. It takes no
# GIL, so a guest spinning under its limit never stalls other threads' Python.
#
# The CPU counted is the thread's during the outermost call: wasm and the host
# functions it calls (their work is done for the guest: a guest looping over a
# host call is bounded too). On a store made by new_metered_store the meter is
# also the store's data, so calls back into the guest from a host function
# (``FastCaller.call``, a nested ``Bound``) count within the outermost call,
# which alone is charged. Bound and instantiate_metered keep the GIL and give
# it up at their first deadline, a tick in, if they still run.


def is_interrupt(exc: BaseException) -> bool:
    """True if ``exc`` means wasm was stopped for time: an epoch trap or a meter stop."""
    wasmtime = sys.modules.get("wasmtime")  # none of its exceptions exist before it is
    if wasmtime is None:
        return False
    if isinstance(exc, wasmtime.Trap):
        return exc.trap_code == wasmtime.TrapCode.INTERRUPT  # type: ignore[no-any-return]
    if isinstance(exc, wasmtime.WasmtimeError):
        return INTERRUPT_MARKER in str(exc)
    return False


def start_ticker(engine: Any, tick_ns: int) -> Ticker:
    """Increment ``engine``'s epoch once per ``tick_ns`` of the monotonic clock, on a
    native thread that never takes the GIL (catching up after a late wake-up).
    It holds ``engine`` until stopped and freed, so the engine outlives it."""
    return _native.Ticker(address(engine.ptr()), tick_ns, engine)


# --- pooling allocator ---------------------------------------------------------------


def enable_pooling(
    config: Any,
    *,
    total_memories: int,
    max_memory_size: int,
    total_core_instances: int,
    total_tables: int | None = None,
    max_memories_per_module: int = 1,
    max_tables_per_module: int = 1,
    table_elements: int | None = None,
    max_core_instance_size: int | None = None,
    max_unused_warm_slots: int | None = None,
    linear_memory_keep_resident: int | None = None,
    table_keep_resident: int | None = None,
    total_gc_heaps: int | None = None,
) -> None:
    """Make engines built from ``config`` use wasmtime's pooling instance allocator.

    ``config``: a ``wasmtime.Config`` or a ``native_setup.Config``. Call once,
    before the engine is made from it. The pool reserves virtual
    memory for ``total_memories`` linear memories up front (each slot is at
    least ``Config.memory_reservation``, 4 GiB by default, plus guards) and
    refuses instantiation beyond ``total_core_instances`` live instances or
    ``total_memories`` live memories: ``instantiate`` then raises
    ``wasmtime.WasmtimeError`` naming the limit. A module whose memory
    minimum exceeds ``max_memory_size`` is rejected by ``wasmtime.Module``
    (compile time); growth past it makes ``memory.grow`` return -1.

    ``total_tables`` defaults to ``total_core_instances``. ``*_keep_resident``
    (bytes) keeps that much of each freed slot mapped and zeroes it with
    ``memset`` instead of ``madvise``: cheaper teardown for small instances.
    Other ``None`` values keep wasmtime's defaults.
    """
    from atoll.runtime.native_setup import enable_pooling as set_pooling

    set_pooling(
        config,
        {
            "total_memories": total_memories,
            "max_memory_size": max_memory_size,
            "total_core_instances": total_core_instances,
            "total_tables": total_core_instances if total_tables is None else total_tables,
            "max_memories_per_module": max_memories_per_module,
            "max_tables_per_module": max_tables_per_module,
            "table_elements": table_elements,
            "max_core_instance_size": max_core_instance_size,
            "max_unused_warm_slots": max_unused_warm_slots,
            "linear_memory_keep_resident": linear_memory_keep_resident,
            "table_keep_resident": table_keep_resident,
            "total_gc_heaps": total_gc_heaps,
        },
    )


# --- host functions ------------------------------------------------------------------
#
# wasmtime-py's ``Linker.define_func`` wraps every host call in a ``Caller``
# object and converts each parameter through ``Val`` (costly per call), and a host
# exception travels through a process-global. ``define_host_func`` registers a
# C trampoline (``_native.define_host``) instead: parameters are read straight
# from the ``wasmtime_val_raw_t`` array, and a failure becomes a trap built
# there, so nothing passes through wasmtime-py's globals.

_caller_export_get = cfn(
    "wasmtime_caller_export_get",
    ctypes.c_bool,
    _P,
    ctypes.c_char_p,
    ctypes.c_size_t,
    ctypes.c_void_p,
)
_caller_context = cfn("wasmtime_caller_context", _P, _P)


class _FuncT(ctypes.Structure):
    """``wasmtime_func_t`` (native/module.h's ``wt_func_t``: 16 bytes)."""

    _fields_ = (("store_id", ctypes.c_uint64), ("private", _P))


class _ExternT(ctypes.Structure):
    """``wasmtime_extern_t`` holding a function (``wt_extern_t``: 32 bytes)."""

    _fields_ = (
        ("kind", ctypes.c_uint8),
        ("store_id", ctypes.c_uint64),  # of.func, at offset 8
        ("private", _P),
        ("_rest", ctypes.c_uint64),
    )


_func_type = cfn("wasmtime_func_type", _P, _P, ctypes.POINTER(_FuncT))
_functype_delete = cfn("wasm_functype_delete", None, _P)


class RawCaller:
    """What a host function registered by :func:`define_host_func` receives.

    Behaves as wasmtime-py's ``Caller`` where atoll's host code needs it
    (``get(name)`` returns ``Func``/``Memory`` of the calling instance, and it
    can be passed as the store to their methods), plus :meth:`memory_view`, a
    fast ``(address, length)`` of the caller's ``memory`` export. Valid only
    during the host call.
    """

    __slots__ = ("__context", "_ctx", "_ptr")

    def __init__(self, ptr: int) -> None:
        self._ptr = ptr
        self._ctx = 0
        self.__context: Any = None

    @property
    def ctx(self) -> int:
        """The caller's store context address."""
        if not self._ctx:
            self._ctx = _caller_context(self._ptr) or 0
        return self._ctx

    def _context(self) -> Any:
        if self.__context is None:
            self.__context = ctypes.cast(self.ctx, ctypes.POINTER(_ffi().wasmtime_context_t))
        return self.__context

    def function(self, name: str) -> tuple[Signature, tuple[int, int]] | None:
        """The caller's exported function ``name``: its signature and its ids (for
        :meth:`FastCaller.call_ids`), without wasmtime-py; ``None`` if it exports no
        function so named."""
        raw = name.encode()
        item = _ExternT()
        if not _caller_export_get(self._ptr, raw, len(raw), ctypes.byref(item)):
            return None
        if item.kind != _EXTERN_FUNC:
            return None
        func = _FuncT(item.store_id, item.private)
        functype = _func_type(self.ctx, ctypes.byref(func))
        try:
            sig = functype_signature(functype)
        finally:
            _functype_delete(functype)
        return sig, (func.store_id, func.private or 0)

    def get(self, name: str) -> wasmtime.Func | wasmtime.Memory | None:
        """The caller's export ``name`` as a wasmtime-py object (imports wasmtime-py)."""
        wt, ffi = _wasmtime(), _ffi()
        raw = name.encode()
        item = ffi.wasmtime_extern_t()
        if not _caller_export_get(self._ptr, raw, len(raw), ctypes.byref(item)):
            return None
        kind = int(item.kind)
        if kind == _EXTERN_FUNC:
            func: wasmtime.Func = wt.Func.__new__(wt.Func)
            func._func = item.of.func
            return func
        if kind == _EXTERN_MEMORY:
            memory: wasmtime.Memory = wt.Memory.__new__(wt.Memory)
            memory._memory = item.of.memory
            return memory
        return None

    def memory_view(self, name: bytes = b"memory") -> tuple[int, int]:
        """``(address, length)`` of the caller's memory export; ``(0, 0)`` if it has none."""
        return _native.caller_memory(self._ptr, name)

    def cpu_left_ns(self) -> int | None:
        """CPU ns the outermost call into the caller's store may still use (its meter's
        allowance less what it used); ``None`` if no meter counts this call."""
        return _native.caller_cpu_left(self._ptr)


def _host_error_message(exc: BaseException) -> bytes:
    """The trap message for a host function's exception (``wasmtime.Trap``: its own)."""
    wasmtime = sys.modules.get("wasmtime")  # none of its exceptions exist before it is
    if wasmtime is not None and isinstance(exc, wasmtime.Trap):
        text = str(exc.message)
    elif wasmtime is not None and isinstance(exc, wasmtime.WasmtimeError):
        text = f"host function failed: {exc}"  # str keeps INTERRUPT_MARKER (is_interrupt)
    else:
        text = f"host function failed: {exc!r}"
    return text.encode("utf-8", errors="replace")


#: WASI preview 1 functions ``_native`` serves in C when the store's meter has a
#: :class:`Stdio` (a CGI run): name → ``define_host_func``'s ``native`` argument.
NATIVE_WASI: dict[str, int] = {name: i + 1 for i, name in enumerate(_native.wasi_names())}
#: ``define_host_func``'s ``native`` for ``atoll:log.write``: served in C when the calling
#: store has a meter and the outermost call an invocation whose ``log_book.counts`` is a
#: :class:`LogBook` (``runtime/native/log.c``).
NATIVE_LOG_WRITE: int = _native.LOG_WRITE_NATIVE


def define_host_func(
    linker: Any,
    module: str,
    name: str,
    ty: wasmtime.FuncType | Signature,
    impl: Callable[..., Any],
    native: int = 0,
) -> None:
    """Define ``module.name`` in ``linker`` as the raw host function ``impl``.

    ``linker``: a ``native_setup.Linker`` or a ``wasmtime.Linker``; ``ty``: the
    function's type, a :class:`Signature` (its type is made here) or a
    ``wasmtime.FuncType``.

    ``impl(caller: RawCaller, *params)`` gets i32 parameters as **unsigned**
    ints (pointers and lengths), i64 as signed; it returns the single result
    (or ``None``). To fail, raise ``wasmtime.Trap(message)``: the guest traps
    with that message. Any other exception also becomes a trap (and is never
    lost in a global). Numeric signatures only (at most one result).

    ``native`` (a value of :data:`NATIVE_WASI`, or :data:`NATIVE_LOG_WRITE`):
    when the calling store has a meter, the C version of that function runs
    first, without the GIL, and ``impl`` only for what it leaves (without a
    :class:`Stdio` on the meter, most WASI calls; stderr, files, a write past
    the stdout limit…).
    """
    sig = ty if isinstance(ty, Signature) else Signature.of(ty)
    if not sig.numeric or len(sig.results) > 1 or len(sig.params) > _native.MAX_SLOTS:
        raise ValueError(f"{module}.{name}: host functions take and return numbers only")
    functype = FuncType(sig) if isinstance(ty, Signature) else ty
    error = _native.define_host(
        address(linker.ptr()),
        module.encode(),
        name.encode(),
        address(functype.ptr()),  # borrowed: the linker copies the type
        impl,
        _codes(sig.params),
        _codes(sig.results),
        RawCaller,
        _host_error_message,
        native,
    )
    if error:
        raise wasmtime_error(error)
