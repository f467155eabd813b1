"""Drive wasmtime stores by hand through its C API (ctypes): for tests and bench_capi only.

These helpers were capi's first fast path, before the compiled extension
(``atoll.runtime._native``) took over every request-time call. atoll itself no
longer uses them; tests keep them to build stores, instances, exports and
meters directly, and ``benchmarks/bench_capi.py`` to compare paths. Pinned to
the same wasmtime release as :mod:`atoll.runtime.capi` (they use its private
ctypes bindings).
"""

from __future__ import annotations

import ctypes
from typing import Any

import wasmtime
from wasmtime import _ffi as ffi

from atoll.runtime.capi import Meter, MeteredStore, address, failure
from atoll.runtime.libwasmtime import cfn as _cfn

__all__ = [
    "export_func",
    "export_memory",
    "install_meter",
    "instantiate",
    "memory_view",
    "new_store",
    "set_epoch_deadline",
]

_P = ctypes.c_void_p
_CTX = ctypes.POINTER(ffi.wasmtime_context_t)
_STORE_PTR = ctypes.POINTER(ffi.wasmtime_store_t)
_EXTERN_FUNC = ffi.WASMTIME_EXTERN_FUNC.value
_EXTERN_MEMORY = ffi.WASMTIME_EXTERN_MEMORY.value
_names: dict[str, tuple[bytes, ctypes.c_size_t]] = {}

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


def instantiate(
    pre: wasmtime.InstancePre, store: wasmtime.Store | MeteredStore
) -> wasmtime.Instance:
    """Instantiate a pre-linked module in ``store`` (``InstancePre.instantiate`` minus overhead).

    Runs the module's start function, if any, under the store's epoch
    deadline. Raises ``wasmtime.Trap`` if it traps (``trap_code`` and
    ``frames`` work), ``wasmtime.WasmtimeError`` on any other failure (store
    limits, pooling slots exhausted, stopped by a :class:`Meter`: see
    ``is_interrupt``), ``ValueError`` if ``store`` or ``pre`` is closed.
    """
    inst = ffi.wasmtime_instance_t()
    trap = ctypes.c_void_p()
    err = _instance_pre_instantiate(
        pre.ptr(), store._context(), ctypes.byref(inst), ctypes.byref(trap)
    )
    if err or trap.value:
        raise failure(err or 0, trap.value or 0)
    return wasmtime.Instance._from_raw(inst)


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


def install_meter(store: wasmtime.Store, tick_ns: int) -> Meter:
    """A :class:`Meter` deciding at ``store``'s epoch deadlines (replaces any callback)."""
    meter = Meter(tick_ns)
    meter.install(address(store.ptr()))
    return meter
