"""Hot paths through wasmtime's C API, pinned to one wasmtime-py release.

wasmtime-py's public API costs ~18 µs per export call and ~42-55 µs for a
fresh store + instance + call, mostly Python-side wrapping. This module calls
the same C functions through the package's private ctypes bindings
(``wasmtime._bindings``, aliased ``wasmtime._ffi``) and skips the wrapping:

=============================  ==============================================
``instantiate``                ``wasmtime_instance_pre_instantiate``
``FastCaller.call``            ``wasmtime_func_call_unchecked`` on a reused
                               per-thread ``wasmtime_val_raw_t`` array
``export_func``                ``wasmtime_instance_export_get`` (one export,
                               not the whole ``Instance.exports`` map)
``memory_view``                ``wasmtime_memory_data`` / ``_data_size``
``set_epoch_deadline_callback``  ``wasmtime_store_epoch_deadline_callback``
``enable_pooling``             ``wasmtime_pooling_allocation_strategy_set``
=============================  ==============================================

Everything returned is an ordinary wasmtime-py object (``Instance``, ``Func``,
``Trap``, ``WasmtimeError``), so callers can mix both APIs.

The private bindings change between releases, so importing this module raises
``ImportError`` unless the installed wasmtime is exactly ``WASMTIME_VERSION``;
the runtime then falls back to the public API.

Threads: the C functions release the GIL while wasm runs. One ``Store`` must
be used by one thread at a time (wasmtime's rule); ``FastCaller`` objects,
``FuncSig`` and this module's state may be shared by any number of threads.

Caveats:

* When a Python host function raises, wasmtime-py keeps the exception in one
  module global (``wasmtime._func.LAST_EXCEPTION``) and the guest sees a trap;
  whichever thread next fails a call picks it up (``_raise_failure`` here,
  ``enter_wasm`` in wasmtime-py). With host functions that raise on several
  threads at once, an exception can surface on the wrong thread. Host
  functions that report errors through per-request state instead (and never
  raise) avoid it.
* ``FastCaller`` does not check that a ``Func`` belongs to the store or has
  the caller's signature (``FastCaller.check`` does, off the hot path); a
  wrong store aborts the process inside wasmtime, as it does with the
  public API.
* Pinned to one release: ``wasmtime._bindings`` is generated, private, and
  its structs and functions change between versions.
"""

from __future__ import annotations

import contextlib
import ctypes
import enum
import itertools
import operator
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import wasmtime

WASMTIME_VERSION = "50.0.1"


def installed_wasmtime_version() -> str:
    """The installed wasmtime's version, read from its ``.dist-info`` folder.

    The same answer as ``importlib.metadata.version("wasmtime")`` without
    importing ``importlib.metadata`` (~20 ms of every cold start).
    """
    site = Path(wasmtime.__file__).resolve().parent.parent
    for info in site.glob("wasmtime-*.dist-info"):
        return info.name[len("wasmtime-") : -len(".dist-info")]
    import importlib.metadata  # an unusual install layout: ask the slow way

    return importlib.metadata.version("wasmtime")


_installed = installed_wasmtime_version()
if _installed != WASMTIME_VERSION:
    raise ImportError(
        f"atoll.runtime.capi is pinned to wasmtime {WASMTIME_VERSION} (it uses private "
        f"C bindings), but wasmtime {_installed} is installed; install "
        f"wasmtime=={WASMTIME_VERSION} or use the public-API path"
    )

from wasmtime import _ffi as ffi  # noqa: E402  (after the version check, on purpose)
from wasmtime import _func as _wasmtime_func  # noqa: E402

__all__ = [
    "INTERRUPT_MARKER",
    "WASMTIME_VERSION",
    "FastCaller",
    "FuncSig",
    "ValKind",
    "enable_pooling",
    "export_func",
    "export_memory",
    "instantiate",
    "is_interrupt",
    "memory_view",
    "new_store",
    "set_epoch_deadline",
    "set_epoch_deadline_callback",
]

# --- raw C entry points ------------------------------------------------------
#
# Our own foreign-function objects, separate from the ones in wasmtime._bindings
# (whose argtypes wasmtime-py relies on). CDLL functions release the GIL.
#
# The two hot ones have no argtypes: ctypes then passes prebuilt ctypes objects
# (pointers, c_void_p, c_size_t, byref()) without per-argument from_param
# conversion, which measured ~0.3-0.4 µs cheaper per call than typed argtypes.
# Every argument must therefore be a ctypes object of the right C type.

_P = ctypes.c_void_p
_CTX = ctypes.POINTER(ffi.wasmtime_context_t)


def _cfn(name: str, restype: Any, *argtypes: Any) -> Any:
    fn = ffi.dll._FuncPtr((name, ffi.dll))
    fn.restype = restype
    if argtypes:
        fn.argtypes = argtypes
    return fn


# (context*, const wasmtime_func_t*, wasmtime_val_raw_t*, size_t, wasm_trap_t**) -> error*
_func_call_unchecked = _cfn("wasmtime_func_call_unchecked", _P)
# (const instance_pre_t*, context*, wasmtime_instance_t*, wasm_trap_t**) -> error*
_instance_pre_instantiate = _cfn("wasmtime_instance_pre_instantiate", _P)
# (context*, const wasmtime_instance_t*, const char*, size_t, wasmtime_extern_t*) -> bool
_instance_export_get = _cfn("wasmtime_instance_export_get", ctypes.c_bool)
# (context*, uint64_t) -> void
_set_epoch_deadline = _cfn("wasmtime_context_set_epoch_deadline", None)
_memory_data = _cfn("wasmtime_memory_data", _P, _CTX, ctypes.POINTER(ffi.wasmtime_memory_t))
_memory_data_size = _cfn(
    "wasmtime_memory_data_size", ctypes.c_size_t, _CTX, ctypes.POINTER(ffi.wasmtime_memory_t)
)
_store_new = _cfn("wasmtime_store_new", _P, _P, _P, _P)
_store_context = _cfn("wasmtime_store_context", _CTX, _P)
_error_new = _cfn("wasmtime_error_new", _P, ctypes.c_char_p)

_TRAP_PTR = ctypes.POINTER(ffi.wasm_trap_t)
_ERROR_PTR = ctypes.POINTER(ffi.wasmtime_error_t)
_STORE_PTR = ctypes.POINTER(ffi.wasmtime_store_t)

_EXTERN_FUNC = ffi.WASMTIME_EXTERN_FUNC.value
_EXTERN_MEMORY = ffi.WASMTIME_EXTERN_MEMORY.value


def _raise_failure(err: int | None, trap: ctypes.c_void_p) -> None:
    """Turn a failed C call (error pointer or trap out-param) into an exception.

    Two Python exceptions can hide behind a failure, and win over it (chained
    to it as ``__cause__``): a ``KeyboardInterrupt``/``SystemExit`` raised in
    this thread's epoch deadline callback, then a Python host function's
    exception, which wasmtime-py parks in its module global ``LAST_EXCEPTION``
    (racy across threads: see the module notes).
    """
    exc: Exception
    if err:
        if trap.value:  # not expected together; do not leak the trap
            wasmtime.Trap._from_ptr(ctypes.cast(trap.value, _TRAP_PTR)).close()
            trap.value = None
        exc = wasmtime.WasmtimeError._from_ptr(ctypes.cast(err, _ERROR_PTR))
    else:
        addr = trap.value or 0
        trap.value = None
        exc = wasmtime.Trap._from_ptr(ctypes.cast(addr, _TRAP_PTR))
    pending = _tls.pending
    if pending is not None:
        _tls.pending = None
        raise pending from exc
    last = _wasmtime_func.LAST_EXCEPTION
    if last is not None:
        _wasmtime_func.LAST_EXCEPTION = None
        raise last from exc
    raise exc


# --- per-thread scratch --------------------------------------------------------

_SCRATCH_SLOTS = 16  # val_raw slots kept per thread; larger signatures allocate
_VAL_RAW_SIZE = ctypes.sizeof(ffi.wasmtime_val_raw)  # 16


class _Scratch:
    """One thread's reusable ValRaw array and trap out-param, as ready-made C arguments.

    Re-entrant use on one thread (wasm → Python host function → another call)
    is safe: wasmtime reads the parameters on entry and writes the results and
    the trap only on return, and each call unpacks before its caller resumes.
    """

    __slots__ = ("arg_p", "args", "buf", "trap", "trap_p", "views")

    def __init__(self, slots: int) -> None:
        self.buf = bytearray(slots * _VAL_RAW_SIZE)
        self.args = (ctypes.c_char * len(self.buf)).from_buffer(self.buf)
        self.arg_p = ctypes.c_void_p(ctypes.addressof(self.args))
        self.trap = ctypes.c_void_p()
        self.trap_p = ctypes.byref(self.trap)
        # Typed views of slot 0, indexed by _VIEW_INDEX: a lone result is read
        # through one of these (~50 ns) rather than struct.unpack_from (~110 ns).
        raw = memoryview(self.buf)
        self.views = (raw.cast("i"), raw.cast("q"), raw.cast("f"), raw.cast("d"))


class _ThreadScratch(threading.local):
    def __init__(self) -> None:
        self.s = _Scratch(_SCRATCH_SLOTS)
        # KeyboardInterrupt/SystemExit caught in this thread's deadline
        # callback, re-raised by the failing call (see _raise_failure).
        self.pending: BaseException | None = None


_tls = _ThreadScratch()


# --- stores, instances, exports --------------------------------------------------


def new_store(engine: wasmtime.Engine) -> wasmtime.Store:
    """Create a ``wasmtime.Store`` without ``Store.__init__``'s Python overhead.

    Same object as ``wasmtime.Store(engine)`` (no user data). Call once per
    request; close it with ``store.close()``.
    """
    ptr = _store_new(ctypes.cast(engine.ptr(), _P), None, None)
    store: wasmtime.Store = wasmtime.Store.__new__(wasmtime.Store)
    store._set_ptr(ctypes.cast(ptr, _STORE_PTR))
    store._Store__context = _store_context(ptr)  # type: ignore[attr-defined]  # Store.__context
    store.engine = engine
    return store


def instantiate(pre: wasmtime.InstancePre, store: wasmtime.Store) -> wasmtime.Instance:
    """Instantiate a pre-linked module in ``store`` (``InstancePre.instantiate`` minus overhead).

    Runs the module's start function, if any, under the store's epoch
    deadline. Raises ``wasmtime.Trap`` if it traps (``trap_code`` and
    ``frames`` work), ``wasmtime.WasmtimeError`` on any other failure (store
    limits, pooling slots exhausted, interrupted by a deadline callback: see
    ``is_interrupt``), ``ValueError`` if ``store`` or ``pre`` is closed.
    """
    s = _tls.s
    inst = ffi.wasmtime_instance_t()
    err = _instance_pre_instantiate(pre.ptr(), store._context(), ctypes.byref(inst), s.trap_p)
    if err or s.trap.value:
        _raise_failure(err, s.trap)
    return wasmtime.Instance._from_raw(inst)


_names: dict[str, tuple[bytes, ctypes.c_size_t]] = {}


_EXTERN_SIZE = ctypes.sizeof(ffi.wasmtime_extern_t)
_EXTERN_OF = ffi.wasmtime_extern_t.of.offset


def _extern_as(field: str, ctype: Any) -> Any:
    """A ``wasmtime_extern_t`` layout with the union replaced by one member.

    ``item.func`` is then one ctypes field access instead of ``item.of.func``
    (two), and sharing the buffer avoids a copy; ~0.5 µs per lookup.
    """
    fields = [("kind", ctypes.c_uint8), (field, ctype)]
    rest = _EXTERN_SIZE - _EXTERN_OF - ctypes.sizeof(ctype)
    if rest:
        fields.append(("_rest", ctypes.c_uint8 * rest))
    layout = type(f"_Extern_{field}", (ctypes.Structure,), {"_fields_": fields})
    if ctypes.sizeof(layout) != _EXTERN_SIZE or getattr(layout, field).offset != _EXTERN_OF:
        raise ImportError(f"unexpected wasmtime_extern_t layout for {field}")
    return layout


_ExternFunc = _extern_as("func", ffi.wasmtime_func_t)
_ExternMemory = _extern_as("memory", ffi.wasmtime_memory_t)


def _export(
    store: wasmtime.Store, instance: wasmtime.Instance, name: str, item: Any, kind: int
) -> bool:
    """Fill ``item`` with the export ``name``; False if it is absent or not of ``kind``."""
    encoded = _names.get(name)
    if encoded is None:
        raw = name.encode()
        encoded = (raw, ctypes.c_size_t(len(raw)))
        if len(_names) < 4096:
            _names[name] = encoded
    found = _instance_export_get(
        store._context(),
        ctypes.byref(instance._instance),
        encoded[0],
        encoded[1],
        ctypes.byref(item),
    )
    return bool(found) and item.kind == kind


def export_func(
    store: wasmtime.Store, instance: wasmtime.Instance, name: str
) -> wasmtime.Func | None:
    """Look up one exported function by name; ``None`` if absent or not a function.

    One ``wasmtime_instance_export_get`` (a hash lookup in wasmtime) instead of
    ``instance.exports(store)[name]``, which wraps every export of the
    instance on first use (~10x slower for a module with a few exports).
    """
    item = _ExternFunc()
    if not _export(store, instance, name, item, _EXTERN_FUNC):
        return None
    func: wasmtime.Func = wasmtime.Func.__new__(wasmtime.Func)
    func._func = item.func
    return func


def export_memory(
    store: wasmtime.Store, instance: wasmtime.Instance, name: str = "memory"
) -> wasmtime.Memory | None:
    """Look up one exported linear memory by name; ``None`` if absent or not a memory."""
    item = _ExternMemory()
    if not _export(store, instance, name, item, _EXTERN_MEMORY):
        return None
    memory: wasmtime.Memory = wasmtime.Memory.__new__(wasmtime.Memory)
    memory._memory = item.memory
    return memory


def set_epoch_deadline(store: wasmtime.Store, ticks: int) -> None:
    """``store.set_epoch_deadline(ticks)`` without the typed-ctypes overhead (~0.3 µs less)."""
    _set_epoch_deadline(store._context(), ctypes.c_uint64(ticks))


def memory_view(store: wasmtime.Store, memory: wasmtime.Memory) -> tuple[int, int]:
    """Return ``(address, length_in_bytes)`` of ``memory``'s current data.

    For ``ctypes.memmove`` / ``ctypes.string_at``. Valid until the memory
    grows (the guest may grow it during any call) or the store closes: take a
    fresh view after each call into wasm, and bounds-check against the length.
    """
    ctx = store._context()
    mem = memory._memory
    addr = _memory_data(ctx, mem)
    return (addr or 0), _memory_data_size(ctx, mem)


# --- calls -----------------------------------------------------------------------------


class ValKind(enum.Enum):
    """A wasm value type, as far as the fast call path cares."""

    I32 = "i32"
    I64 = "i64"
    F32 = "f32"
    F64 = "f64"
    OTHER = "other"  # references, v128: not supported by FastCaller


_FAST_KINDS = frozenset({ValKind.I32, ValKind.I64, ValKind.F32, ValKind.F64})
_STRUCT_CODE = {ValKind.I32: "i", ValKind.I64: "q", ValKind.F32: "f", ValKind.F64: "d"}
_VIEW_INDEX = {ValKind.I32: 0, ValKind.I64: 1, ValKind.F32: 2, ValKind.F64: 3}


def _kind(ty: wasmtime.ValType) -> ValKind:
    try:
        return ValKind(str(ty))
    except ValueError:
        return ValKind.OTHER


@dataclass(frozen=True, slots=True)
class FuncSig:
    """Parameter and result kinds of a function type."""

    params: tuple[ValKind, ...]
    results: tuple[ValKind, ...]

    @classmethod
    def from_type(cls, ty: wasmtime.FuncType) -> FuncSig:
        return cls(tuple(_kind(p) for p in ty.params), tuple(_kind(r) for r in ty.results))

    @classmethod
    def of(cls, store: wasmtime.Store, func: wasmtime.Func) -> FuncSig:
        return cls.from_type(func.type(store))

    @property
    def is_fast(self) -> bool:
        """True when every param and result is i32, i64, f32 or f64."""
        return all(k in _FAST_KINDS for k in self.params + self.results)


def _slot_format(kinds: tuple[ValKind, ...]) -> str:
    # One 16-byte little-endian ValRaw slot per value; values sit at offset 0.
    return "<" + "".join(
        f"{_STRUCT_CODE[k]}{_VAL_RAW_SIZE - struct.calcsize(_STRUCT_CODE[k])}x" for k in kinds
    )


_INT_RANGE = {
    ValKind.I32: (-(2**31), 2**32 - 1, 2**31, 2**32),
    ValKind.I64: (-(2**63), 2**64 - 1, 2**63, 2**64),
}


class FastCaller:
    """Calls an export of one signature on any instance, through ``wasmtime_func_call_unchecked``.

    Build it once per (module, export) and cache it; ``call`` it once per
    request with that request's store and ``Func``. Safe to use from many
    threads at once (each thread has its own argument array).

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

    __slots__ = (
        "_nparams",
        "_nresults",
        "_pack",
        "_slots",
        "_slots_c",
        "_unpack",
        "_view",
        "name",
        "sig",
    )

    def __init__(self, sig: FuncSig, name: str) -> None:
        if not sig.is_fast:
            raise ValueError(
                f"export {name!r}: FastCaller supports only i32/i64/f32/f64, got {sig}"
            )
        self.sig = sig
        self.name = name
        self._nparams = len(sig.params)
        self._nresults = len(sig.results)
        self._slots = max(self._nparams, self._nresults)
        self._slots_c = ctypes.c_size_t(self._slots)
        self._view = _VIEW_INDEX[sig.results[0]] if self._nresults == 1 else -1
        self._pack = struct.Struct(_slot_format(sig.params)).pack_into
        self._unpack = struct.Struct(_slot_format(sig.results)).unpack_from

    def check(self, store: wasmtime.Store, func: wasmtime.Func) -> None:
        """Raise ``TypeError`` unless ``func``'s type is this caller's signature."""
        actual = FuncSig.of(store, func)
        if actual != self.sig:
            raise TypeError(f"export {self.name!r} has type {actual}, caller built for {self.sig}")

    def call(
        self, store: wasmtime.Store | wasmtime.Caller, func: wasmtime.Func, *args: int | float
    ) -> int | float | tuple[int | float, ...] | None:
        """Call ``func`` in ``store`` with ``args``.

        ``store`` may also be the ``wasmtime.Caller`` a host function receives
        (a call back into the guest from inside a host call).

        Raises ``wasmtime.Trap`` on a trap (``trap_code``, ``frames``),
        ``wasmtime.WasmtimeError`` on other failures (e.g. a deadline callback
        stopped it: ``is_interrupt``), the original exception if a Python host
        function raised, ``TypeError`` / ``ValueError`` for wrong arguments,
        ``ValueError`` if the store is closed.
        """
        s = _tls.s if self._slots <= _SCRATCH_SLOTS else _Scratch(self._slots)
        try:
            self._pack(s.buf, 0, *args)
        except (struct.error, OverflowError, TypeError):
            self._pack(s.buf, 0, *self._coerce(args))
        err = _func_call_unchecked(
            store._context(), ctypes.byref(func._func), s.arg_p, self._slots_c, s.trap_p
        )
        if err or s.trap.value:
            _raise_failure(err, s.trap)
        view = self._view
        if view >= 0:
            return s.views[view][0]
        if self._nresults == 0:
            return None
        return self._unpack(s.buf)

    __call__ = call

    def _coerce(self, args: tuple[Any, ...]) -> list[int | float]:
        """Slow path: validate ``args`` and convert them for ``struct``; raise a clear error."""
        if len(args) != self._nparams:
            raise TypeError(
                f"export {self.name!r} takes {self._nparams} argument(s), {len(args)} given"
            )
        out: list[int | float] = []
        for i, (kind, v) in enumerate(zip(self.sig.params, args, strict=True)):
            if kind in _INT_RANGE:
                try:
                    n = operator.index(v)
                except TypeError:
                    raise TypeError(
                        f"export {self.name!r} argument {i}: expected int for {kind.value}, "
                        f"got {type(v).__name__}"
                    ) from None
                lo, hi, sign, mod = _INT_RANGE[kind]
                if not lo <= n <= hi:
                    raise ValueError(
                        f"export {self.name!r} argument {i}: {n} out of range for {kind.value} "
                        f"[{lo}, {hi}]"
                    )
                out.append(n - mod if n >= sign else n)
            else:
                if isinstance(v, str | bytes | bytearray) or not hasattr(type(v), "__float__"):
                    raise TypeError(
                        f"export {self.name!r} argument {i}: expected float for {kind.value}, "
                        f"got {type(v).__name__}"
                    )
                f = float(v)
                out.append(ctypes.c_float(f).value if kind is ValKind.F32 else f)
        return out


# --- epoch deadline callback -------------------------------------------------------

INTERRUPT_MARKER = "atoll: interrupted by epoch deadline callback"
"""Substring of the ``WasmtimeError`` raised when a deadline callback stops wasm."""

_CONTINUE = 0  # WASMTIME_UPDATE_DEADLINE_CONTINUE

_DeadlineFn = ctypes.CFUNCTYPE(
    _P, _P, _P, ctypes.POINTER(ctypes.c_uint64), ctypes.POINTER(ctypes.c_uint8)
)
_FinalizerFn = ctypes.CFUNCTYPE(None, _P)

_callbacks: dict[int, Callable[[], int | None]] = {}
_callback_ids = itertools.count(1)


def _interrupt_error(detail: str = "") -> int:
    message = INTERRUPT_MARKER + (f" ({detail})" if detail else "")
    return int(_error_new(message.encode("utf-8", "replace")))


def _on_deadline(_ctx: Any, data: Any, delta: Any, kind: Any) -> int:
    # Runs on the thread executing wasm, with the GIL re-acquired by ctypes.
    try:
        ticks = _callbacks[data]()
    except BaseException as exc:  # never let it unwind into wasmtime
        if not isinstance(exc, Exception):  # Ctrl-C while wasm spins: re-raised after
            _tls.pending = exc
        try:
            return _interrupt_error(f"callback raised {type(exc).__name__}: {exc}")
        except BaseException:
            return _interrupt_error()
    if ticks is None:
        return _interrupt_error()
    try:
        delta[0] = min(max(1, int(ticks)), 2**63)
    except BaseException:
        return _interrupt_error("callback returned a bad tick count")
    kind[0] = _CONTINUE
    return 0


def _on_callback_dropped(data: Any) -> None:
    # wasmtime drops the callback with the store (or when it is replaced).
    with contextlib.suppress(BaseException):  # e.g. at interpreter shutdown
        _callbacks.pop(data, None)


# Module-level, so they live as long as any store can call them: one pair of C
# thunks for every store, no per-store ctypes objects to keep alive or leak.
_deadline_trampoline = _DeadlineFn(_on_deadline)
_deadline_finalizer = _FinalizerFn(_on_callback_dropped)


# (wasmtime_store_t*, callback, void* data, finalizer) -> void
_set_deadline_callback = _cfn("wasmtime_store_epoch_deadline_callback", None)


def set_epoch_deadline_callback(store: wasmtime.Store, callback: Callable[[], int | None]) -> None:
    """Call ``callback()`` whenever ``store`` reaches its epoch deadline, instead of trapping.

    Set once per store, before running wasm; the store must also have a
    deadline (``store.set_epoch_deadline(n)``). ``callback`` runs on the
    thread running wasm, holding the GIL, each time the engine's epoch (bumped
    by ``Engine.increment_epoch`` from any thread) passes the deadline:

    * return an int ``N`` to continue, with the deadline moved to the current
      epoch + ``N`` ticks (values below 1 count as 1);
    * return ``None`` to stop: the running call (or ``instantiate``) raises
      ``wasmtime.WasmtimeError`` whose message contains ``INTERRUPT_MARKER``
      (``is_interrupt(exc)`` is True).

    An exception in ``callback`` stops wasm the same way; its type and message
    are appended to the error. A ``KeyboardInterrupt`` or ``SystemExit`` there
    (a signal handler runs in the callback when wasm spins on the main thread)
    also stops wasm, and ``FastCaller.call`` / ``instantiate`` re-raise it
    (the public API raises the ``WasmtimeError``). Replaces any previous
    callback on the store; the callback is released when the store closes.
    """
    key = next(_callback_ids)
    _callbacks[key] = callback
    _set_deadline_callback(store.ptr(), _deadline_trampoline, _P(key), _deadline_finalizer)


def is_interrupt(exc: BaseException) -> bool:
    """True if ``exc`` means wasm was stopped for time: an epoch trap or a callback stop."""
    if isinstance(exc, wasmtime.Trap):
        return exc.trap_code == wasmtime.TrapCode.INTERRUPT
    if isinstance(exc, wasmtime.WasmtimeError):
        return INTERRUPT_MARKER in str(exc)
    return False


# --- pooling allocator ---------------------------------------------------------------


def enable_pooling(
    config: wasmtime.Config,
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

    Call once, before ``wasmtime.Engine(config)``. The pool reserves virtual
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
    pc = ffi.wasmtime_pooling_allocation_config_new()
    try:
        ffi.wasmtime_pooling_allocation_config_total_memories_set(pc, total_memories)
        ffi.wasmtime_pooling_allocation_config_max_memory_size_set(pc, max_memory_size)
        ffi.wasmtime_pooling_allocation_config_total_core_instances_set(pc, total_core_instances)
        ffi.wasmtime_pooling_allocation_config_total_tables_set(
            pc, total_core_instances if total_tables is None else total_tables
        )
        ffi.wasmtime_pooling_allocation_config_max_memories_per_module_set(
            pc, max_memories_per_module
        )
        ffi.wasmtime_pooling_allocation_config_max_tables_per_module_set(pc, max_tables_per_module)
        optional = {
            ffi.wasmtime_pooling_allocation_config_table_elements_set: table_elements,
            ffi.wasmtime_pooling_allocation_config_max_core_instance_size_set: max_core_instance_size,
            ffi.wasmtime_pooling_allocation_config_max_unused_warm_slots_set: max_unused_warm_slots,
            ffi.wasmtime_pooling_allocation_config_linear_memory_keep_resident_set: linear_memory_keep_resident,
            ffi.wasmtime_pooling_allocation_config_table_keep_resident_set: table_keep_resident,
            ffi.wasmtime_pooling_allocation_config_total_gc_heaps_set: total_gc_heaps,
        }
        for setter, value in optional.items():
            if value is not None:
                setter(pc, value)
        ffi.wasmtime_pooling_allocation_strategy_set(config.ptr(), pc)  # copies pc
    finally:
        ffi.wasmtime_pooling_allocation_config_delete(pc)


# --- host functions ------------------------------------------------------------------
#
# wasmtime-py's ``Linker.define_func`` wraps every host call in a ``Caller``
# object and converts each parameter through ``Val`` (~6 µs a call), and a host
# exception travels through a process-global. ``define_host_func`` registers a
# ``wasmtime_func_unchecked_callback_t`` instead: parameters are read straight
# from the ``wasmtime_val_raw_t`` array, and a failure becomes a trap built
# here, so nothing passes through wasmtime-py's globals.

_caller_export_get = _cfn(
    "wasmtime_caller_export_get",
    ctypes.c_bool,
    _P,
    ctypes.c_char_p,
    ctypes.c_size_t,
    ctypes.c_void_p,
)
_caller_context = _cfn("wasmtime_caller_context", _CTX, _P)
_trap_new = _cfn("wasmtime_trap_new", _P, ctypes.c_char_p, ctypes.c_size_t)
_RAW_ARRAY = ctypes.POINTER(ffi.wasmtime_val_raw)


class RawCaller:
    """What a host function registered by :func:`define_host_func` receives.

    Behaves as wasmtime-py's ``Caller`` where atoll's host code needs it
    (``get(name)`` returns ``Func``/``Memory`` of the calling instance, and it
    can be passed as the store to their methods), plus :meth:`memory_view`, a
    fast ``(address, length)`` of the caller's ``memory`` export. Valid only
    during the host call.
    """

    __slots__ = ("__context", "_ptr")

    def __init__(self, ptr: int) -> None:
        self._ptr = ptr
        self.__context: Any = None

    def _context(self) -> Any:
        if self.__context is None:
            self.__context = _caller_context(self._ptr)
        return self.__context

    def get(self, name: str) -> wasmtime.Func | wasmtime.Memory | None:
        raw = name.encode()
        item = ffi.wasmtime_extern_t()
        if not _caller_export_get(self._ptr, raw, len(raw), ctypes.byref(item)):
            return None
        kind = int(item.kind)
        if kind == _EXTERN_FUNC:
            func: wasmtime.Func = wasmtime.Func.__new__(wasmtime.Func)
            func._func = item.of.func
            return func
        if kind == _EXTERN_MEMORY:
            memory: wasmtime.Memory = wasmtime.Memory.__new__(wasmtime.Memory)
            memory._memory = item.of.memory
            return memory
        return None

    def memory_view(self, name: bytes = b"memory") -> tuple[int, int]:
        """``(address, length)`` of the caller's memory export; ``(0, 0)`` if it has none."""
        scratch = _host_scratch.memory
        if not _caller_export_get(self._ptr, name, len(name), scratch.ref):
            return 0, 0
        if scratch.item.kind != _EXTERN_MEMORY:
            return 0, 0
        context = self._context()
        mem = scratch.item.memory
        return (_memory_data(context, mem) or 0), _memory_data_size(context, mem)


class _MemoryScratch:
    __slots__ = ("item", "ref")

    def __init__(self) -> None:
        self.item = _ExternMemory()
        self.ref = ctypes.byref(self.item)


class _HostScratch(threading.local):
    def __init__(self) -> None:
        self.memory = _MemoryScratch()


_host_scratch = _HostScratch()


# index → (impl, param kinds, result kind or None, all params integers); the index is the env
_HOST: list[tuple[Callable[..., Any], tuple[ValKind, ...], ValKind | None, bool]] = []
_HOST_LOCK = threading.Lock()


def _host_trap(message: str) -> int:
    raw = message.encode("utf-8", errors="replace")
    return int(_trap_new(raw, len(raw)) or 0)


def _host_trampoline_py(env: Any, caller: Any, args: int, nargs: int) -> int:
    try:
        impl, kinds, result, integers = _HOST[env or 0]
        if integers:  # every parameter i32/i64: read the slots as plain 64-bit words
            words = _U64_ARRAY.from_address(args)
            params: list[Any] = [
                words[2 * i] & 0xFFFFFFFF if kind is ValKind.I32 else _wrap(words[2 * i], 64)
                for i, kind in enumerate(kinds)
            ]
        else:
            values = ctypes.cast(args, _RAW_ARRAY)
            params = []
            for i, kind in enumerate(kinds):
                slot = values[i]
                if kind is ValKind.I32:
                    params.append(slot.i32 & 0xFFFFFFFF)
                elif kind is ValKind.I64:
                    params.append(slot.i64)
                elif kind is ValKind.F32:
                    params.append(slot.f32)
                else:
                    params.append(slot.f64)
        out = impl(RawCaller(caller), *params)
        if result is not None:
            slot = ctypes.cast(args, _RAW_ARRAY)[0]
            if result is ValKind.I32:
                slot.i32 = _wrap(int(out), 32)
            elif result is ValKind.I64:
                slot.i64 = _wrap(int(out), 64)
            elif result is ValKind.F32:
                slot.f32 = out
            else:
                slot.f64 = out
        return 0
    except wasmtime.Trap as trap:
        return _host_trap(str(trap.message))
    except BaseException as exc:  # never unwind through wasm
        return _host_trap(f"host function failed: {exc!r}")


# Same C signature as ffi.wasmtime_func_unchecked_callback_t, with plain addresses
# (no ctypes pointer objects built per call).
_HostCallback = ctypes.CFUNCTYPE(ctypes.c_size_t, _P, _P, _P, ctypes.c_size_t)
_host_trampoline = _HostCallback(_host_trampoline_py)
_U64_ARRAY = ctypes.c_uint64 * 64  # a view of up to 32 val_raw slots (16 bytes each)


def _wrap(value: int, bits: int) -> int:
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def define_host_func(
    linker: wasmtime.Linker,
    module: str,
    name: str,
    ty: wasmtime.FuncType,
    impl: Callable[..., Any],
) -> None:
    """Define ``module.name`` in ``linker`` as the raw host function ``impl``.

    ``impl(caller: RawCaller, *params)`` gets i32 parameters as **unsigned**
    ints (pointers and lengths), i64 as signed; it returns the single result
    (or ``None``). To fail, raise ``wasmtime.Trap(message)``: the guest traps
    with that message. Any other exception also becomes a trap (and is never
    lost in a global). Numeric signatures only (at most one result).
    """
    sig = FuncSig.from_type(ty)
    if not sig.is_fast or len(sig.results) > 1:
        raise ValueError(f"{module}.{name}: host functions take and return numbers only")
    with _HOST_LOCK:
        index = len(_HOST)
        integers = len(sig.params) <= 32 and all(
            k in (ValKind.I32, ValKind.I64) for k in sig.params
        )
        _HOST.append((impl, sig.params, sig.results[0] if sig.results else None, integers))
    raw_module, raw_name = module.encode(), name.encode()
    error = ffi.wasmtime_linker_define_func_unchecked(
        linker.ptr(),
        raw_module,
        len(raw_module),
        raw_name,
        len(raw_name),
        ty.ptr(),
        ctypes.cast(_host_trampoline, ffi.wasmtime_func_unchecked_callback_t),
        index,
        _NO_FINALIZER,
    )
    if error:
        raise wasmtime.WasmtimeError._from_ptr(error)


_NO_FINALIZER = ctypes.CFUNCTYPE(None, ctypes.c_void_p)()  # a NULL function pointer
