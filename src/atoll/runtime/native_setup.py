"""The native backend's engine, modules and linker, made through wasmtime's C API.

What is made once per process (the engine, the linker and its host functions' type)
or once per module load (a module from the compiled-code cache or compiled, its
exports and imports, its pre-linked form), through our own ctypes declarations of the
few C functions it takes, in the library ``libwasmtime.py`` opens: not through
wasmtime-py, whose import is most of a cold start's wasm part (see
docs/benchmarks/coldstart.md). Requests never come here: they go through ``_native``
(``capi.py``).

Each object owns its C object and frees it when collected; ``ptr()`` gives its
address as a ``ctypes.c_void_p``, as wasmtime-py's objects give theirs, so
``capi.address`` reads both. A failure raises wasmtime-py's ``WasmtimeError``
(imported then: a module that does not compile, a cache file that does not load), as
on the public backend.
"""

from __future__ import annotations

import ctypes
from collections.abc import Mapping
from ctypes import POINTER, byref, c_bool, c_int64, c_size_t, c_uint8, c_void_p
from typing import Any

from atoll.runtime.libwasmtime import cfn
from atoll.runtime.signature import Signature, describe_valtype

__all__ = [
    "Engine",
    "FuncType",
    "InstancePre",
    "Linker",
    "Module",
    "enable_pooling",
    "functype_signature",
    "new_config",
    "set_store_limits",
    "wasmtime_error",
]

_P = c_void_p


class _ByteVec(ctypes.Structure):
    _fields_ = (("size", c_size_t), ("data", c_void_p))


class _PtrVec(ctypes.Structure):
    _fields_ = (("size", c_size_t), ("data", POINTER(c_void_p)))


class _HeapType(ctypes.Structure):  # wasmtime_heaptype_t
    _fields_ = (("kind", c_uint8), ("of", c_void_p))


class _RefType(ctypes.Structure):  # wasmtime_reftype_t
    _fields_ = (("nullable", c_bool), ("heaptype", _HeapType))


class _ValType(ctypes.Structure):  # wasmtime_valtype_t
    _fields_ = (("kind", c_uint8), ("reftype", _RefType))


_config_new = cfn("wasm_config_new", _P)
_config_delete = cfn("wasm_config_delete", None, _P)
_engine_new = cfn("wasm_engine_new_with_config", _P, _P)  # takes the config
_engine_delete = cfn("wasm_engine_delete", None, _P)
_module_new = cfn("wasmtime_module_new", _P, _P, ctypes.c_char_p, c_size_t, POINTER(_P))
_module_deserialize = cfn(
    "wasmtime_module_deserialize", _P, _P, ctypes.c_char_p, c_size_t, POINTER(_P)
)
_module_serialize = cfn("wasmtime_module_serialize", _P, _P, POINTER(_ByteVec))
_module_delete = cfn("wasmtime_module_delete", None, _P)
_module_exports = cfn("wasmtime_module_exports", None, _P, POINTER(_PtrVec))
_module_imports = cfn("wasmtime_module_imports", None, _P, POINTER(_PtrVec))
_exporttype_vec_delete = cfn("wasm_exporttype_vec_delete", None, POINTER(_PtrVec))
_importtype_vec_delete = cfn("wasm_importtype_vec_delete", None, POINTER(_PtrVec))
_exporttype_name = cfn("wasm_exporttype_name", POINTER(_ByteVec), _P)
_exporttype_type = cfn("wasm_exporttype_type", _P, _P)
_importtype_module = cfn("wasm_importtype_module", POINTER(_ByteVec), _P)
_importtype_name = cfn("wasm_importtype_name", POINTER(_ByteVec), _P)
_importtype_type = cfn("wasm_importtype_type", _P, _P)
_externtype_kind = cfn("wasm_externtype_kind", c_uint8, _P)
_externtype_as_functype = cfn("wasm_externtype_as_functype_const", _P, _P)
_functype_params = cfn("wasm_functype_params", POINTER(_PtrVec), _P)
_functype_results = cfn("wasm_functype_results", POINTER(_PtrVec), _P)
_functype_new = cfn("wasm_functype_new", _P, POINTER(_PtrVec), POINTER(_PtrVec))
_functype_delete = cfn("wasm_functype_delete", None, _P)
_valtype_new = cfn("wasm_valtype_new", _P, c_uint8)
_valtype_vec_new = cfn("wasm_valtype_vec_new", None, POINTER(_PtrVec), c_size_t, POINTER(_P))
_wt_valtype_new = cfn("wasmtime_valtype_new", None, _P, POINTER(_ValType))
_wt_valtype_delete = cfn("wasmtime_valtype_delete", None, POINTER(_ValType))
_byte_vec_delete = cfn("wasm_byte_vec_delete", None, POINTER(_ByteVec))
_linker_new = cfn("wasmtime_linker_new", _P, _P)
_linker_delete = cfn("wasmtime_linker_delete", None, _P)
_instantiate_pre = cfn("wasmtime_linker_instantiate_pre", _P, _P, _P, POINTER(_P))
_pre_delete = cfn("wasmtime_instance_pre_delete", None, _P)
_store_limiter = cfn("wasmtime_store_limiter", None, _P, *(c_int64,) * 5)

#: wasm_externkind_t values, as atoll's messages name them.
_EXTERN_KINDS = ("func", "global", "table", "memory", "tag")
#: wasm_valkind_t of the numeric types (wasm.h).
_VALKINDS = {"i32": 0, "i64": 1, "f32": 2, "f64": 3}
_OPT_LEVELS = {"none": 0, "speed": 1, "speed_and_size": 2}


def wasmtime_error(error: int) -> Exception:
    """wasmtime-py's ``WasmtimeError`` for an error the C API returned (owned).

    Imports wasmtime-py: failures only."""
    import wasmtime
    from wasmtime import _ffi as ffi

    return wasmtime.WasmtimeError._from_ptr(ctypes.cast(error, POINTER(ffi.wasmtime_error_t)))


class _Owned:
    """A C object freed by ``_free`` when this is collected."""

    _free: Any = None

    def __init__(self, pointer: int) -> None:
        self._ptr = pointer

    def ptr(self) -> c_void_p:
        if not self._ptr:
            raise ValueError("already closed")
        return c_void_p(self._ptr)

    def __del__(self) -> None:
        pointer, self._ptr = self._ptr, 0
        if pointer:
            type(self)._free(pointer)


def _wasmtime_py(cls_name: str, ptr_type: str, clone: str, pointer: c_void_p) -> Any:
    """A wasmtime-py object of class ``cls_name`` owning a clone (``clone``) of the C
    object at ``pointer``: the same engine, module or linker, for its public API."""
    import wasmtime
    from wasmtime import _ffi as ffi

    cls = getattr(wasmtime, cls_name)
    obj = cls.__new__(cls)
    obj._set_ptr(getattr(ffi, clone)(ctypes.cast(pointer, POINTER(getattr(ffi, ptr_type)))))
    return obj


class Config(_Owned):
    """A ``wasm_config_t`` (:func:`new_config`); consumed by :class:`Engine`."""

    _free = _config_delete


#: Engine settings (``runtime/engine.py``'s ``Engine.SETTINGS`` names) → how to set them.
def _set(config: int, name: str, value: object) -> None:
    if name == "cranelift_opt_level":
        fn = cfn("wasmtime_config_cranelift_opt_level_set", None, _P, c_uint8)
        fn(config, _OPT_LEVELS[str(value)])
    elif name == "max_wasm_stack":
        cfn("wasmtime_config_max_wasm_stack_set", None, _P, c_size_t)(config, value)
    elif isinstance(value, bool):  # epoch_interruption and the proposals (wasm_*)
        cfn(f"wasmtime_config_{name}_set", None, _P, c_bool)(config, value)
    else:
        raise ValueError(f"unknown engine setting {name}={value!r}")


def new_config(settings: Mapping[str, object]) -> Config:
    """A config with ``settings`` (names and values as wasmtime-py's ``Config`` attributes
    that ``Engine.SETTINGS`` lists: booleans, ``max_wasm_stack``, ``cranelift_opt_level``)."""
    config = Config(_config_new())
    for name, value in settings.items():
        _set(config._ptr, name, value)
    return config


class Engine(_Owned):
    """A ``wasm_engine_t`` built from a :class:`Config` (which it consumes)."""

    _free = _engine_delete

    def __init__(self, config: Config) -> None:
        pointer, config._ptr = config._ptr, 0
        if not pointer:
            raise ValueError("the config was used already")
        super().__init__(_engine_new(pointer))

    def to_wasmtime_py(self) -> Any:
        """A ``wasmtime.Engine`` of this engine (imports wasmtime-py; benchmarks, tests)."""
        return _wasmtime_py("Engine", "wasm_engine_t", "wasmtime_engine_clone", self.ptr())


class Module(_Owned):
    """A compiled ``wasmtime_module_t``: :meth:`deserialize`\\ d or :meth:`compile`\\ d."""

    _free = _module_delete

    @classmethod
    def compile(cls, engine: Engine, wasm: bytes) -> Module:
        out = _P()
        error = _module_new(engine.ptr(), wasm, len(wasm), byref(out))
        if error:
            raise wasmtime_error(error)
        return cls(out.value or 0)

    @classmethod
    def deserialize(cls, engine: Engine, data: bytes) -> Module:
        """What :meth:`serialize` wrote, by this wasmtime with the same settings."""
        out = _P()
        error = _module_deserialize(engine.ptr(), data, len(data), byref(out))
        if error:
            raise wasmtime_error(error)
        return cls(out.value or 0)

    def to_wasmtime_py(self) -> Any:
        """A ``wasmtime.Module`` of this module (imports wasmtime-py; benchmarks, tests)."""
        return _wasmtime_py("Module", "wasmtime_module_t", "wasmtime_module_clone", self.ptr())

    def serialize(self) -> bytes:
        raw = _ByteVec()
        error = _module_serialize(self.ptr(), byref(raw))
        if error:
            raise wasmtime_error(error)
        try:
            return ctypes.string_at(raw.data, raw.size)
        finally:
            _byte_vec_delete(byref(raw))

    def exports(self) -> list[tuple[str, str, Signature | None]]:
        """``(name, kind, signature)`` per export; the signature of functions only."""
        vec = _PtrVec()
        _module_exports(self.ptr(), byref(vec))
        try:
            out = []
            for i in range(vec.size):
                item = vec.data[i]
                kind, sig = _extern(_exporttype_type(item))
                out.append((_text(_exporttype_name(item)), kind, sig))
            return out
        finally:
            _exporttype_vec_delete(byref(vec))

    def imports(self) -> list[tuple[str, str, str, Signature | None]]:
        """``(module, name, kind, signature)`` per import; the signature of functions only."""
        vec = _PtrVec()
        _module_imports(self.ptr(), byref(vec))
        try:
            out = []
            for i in range(vec.size):
                item = vec.data[i]
                kind, sig = _extern(_importtype_type(item))
                name = _importtype_name(item)
                out.append(
                    (_text(_importtype_module(item)), _text(name) if name else "", kind, sig)
                )
            return out
        finally:
            _importtype_vec_delete(byref(vec))


def _text(vec: Any) -> str:
    raw = vec.contents
    return ctypes.string_at(raw.data, raw.size).decode("utf-8") if raw.size else ""


def _extern(externtype: int) -> tuple[str, Signature | None]:
    kind_code = int(_externtype_kind(externtype))
    kind = _EXTERN_KINDS[kind_code] if kind_code < len(_EXTERN_KINDS) else f"extern#{kind_code}"
    if kind != "func":
        return kind, None
    return kind, functype_signature(_externtype_as_functype(externtype))


def functype_signature(functype: int) -> Signature:
    """The signature of a ``wasm_functype_t`` (borrowed)."""
    return Signature(_valtypes(_functype_params(functype)), _valtypes(_functype_results(functype)))


def _valtypes(vec: Any) -> tuple[str, ...]:
    """Names of a functype's value types, read with ``wasmtime_valtype_new``, which never
    aborts on a type the wasm C API cannot name (see ``runtime/signature.py``)."""
    raw = vec.contents
    names = []
    for i in range(raw.size):
        out = _ValType()
        _wt_valtype_new(raw.data[i], byref(out))
        try:
            ref = out.reftype
            names.append(describe_valtype(out.kind, ref.nullable, ref.heaptype.kind))
        finally:
            _wt_valtype_delete(byref(out))
    return tuple(names)


class FuncType(_Owned):
    """A numeric ``wasm_functype_t`` (what a host function is defined with)."""

    _free = _functype_delete

    def __init__(self, sig: Signature) -> None:
        vecs = []
        for kinds in (sig.params, sig.results):
            vec = _PtrVec()
            items = (_P * max(1, len(kinds)))(*(_valtype_new(_VALKINDS[k]) for k in kinds))
            _valtype_vec_new(byref(vec), len(kinds), items)  # owns the valtypes
            vecs.append(vec)
        super().__init__(_functype_new(byref(vecs[0]), byref(vecs[1])))  # owns the vectors
        self.sig = sig


class Linker(_Owned):
    """A ``wasmtime_linker_t`` (host functions are defined in it by ``capi.define_host_func``)."""

    _free = _linker_delete

    def __init__(self, engine: Engine) -> None:
        super().__init__(_linker_new(engine.ptr()))
        self.engine = engine

    def to_wasmtime_py(self) -> Any:
        """A ``wasmtime.Linker`` with this linker's definitions (imports wasmtime-py;
        benchmarks, tests)."""
        linker = _wasmtime_py("Linker", "wasmtime_linker_t", "wasmtime_linker_clone", self.ptr())
        linker.engine = self.engine.to_wasmtime_py()
        return linker

    def instantiate_pre(self, module: Module) -> InstancePre:
        """``module`` with its imports resolved here; raises ``WasmtimeError`` if one is
        not defined."""
        out = _P()
        error = _instantiate_pre(self.ptr(), module.ptr(), byref(out))
        if error:
            raise wasmtime_error(error)
        return InstancePre(out.value or 0)


class InstancePre(_Owned):
    """A pre-linked module (``wasmtime_instance_pre_t``): what a request instantiates."""

    _free = _pre_delete


def set_store_limits(
    store: int,
    memory_size: int = -1,
    table_elements: int = -1,
    instances: int = -1,
    tables: int = -1,
    memories: int = -1,
) -> None:
    """``wasmtime_store_limiter`` on the store at ``store`` (wasmtime-py's
    ``Store.set_limits``: a negative limit is not set)."""
    _store_limiter(store, memory_size, table_elements, instances, tables, memories)


_POOLING = "wasmtime_pooling_allocation_config_"
#: The pooling settings that are a ``size_t`` (the others are a ``uint32_t``).
_POOLING_SIZES = frozenset(
    {
        "max_memory_size",
        "table_elements",
        "max_core_instance_size",
        "linear_memory_keep_resident",
        "table_keep_resident",
    }
)


def enable_pooling(config: Any, settings: Mapping[str, int | None]) -> None:
    """Set wasmtime's pooling allocator on ``config`` (anything with ``ptr()``): each of
    ``settings`` is a ``wasmtime_pooling_allocation_config_<name>_set`` (``None``: left
    at wasmtime's default). See ``capi.enable_pooling``."""
    new = cfn(_POOLING + "new", _P)
    delete = cfn(_POOLING + "delete", None, _P)
    pc = new()
    try:
        for name, value in settings.items():
            if value is not None:
                size = c_size_t if name in _POOLING_SIZES else ctypes.c_uint32
                cfn(f"{_POOLING}{name}_set", None, _P, size)(pc, value)
        strategy = cfn("wasmtime_pooling_allocation_strategy_set", None, _P, _P)
        strategy(config.ptr(), pc)  # copies pc
    finally:
        delete(pc)
