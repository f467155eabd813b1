"""A wasm function's signature, read without ever aborting the process.

wasmtime-py turns a value type into text (``str(valtype)``, ``==``, and every
``Func.__call__``) through the C function ``wasm_valtype_kind``, which
*aborts the process* (a Rust panic across the C boundary) on any type the
original wasm C API cannot name: ``v128``, ``(ref func)``, ``anyref``,
``i31ref``, ``exnref``… A 60-byte module exporting ``(func (param v128))``
was enough to take a node down.

So atoll never asks wasmtime-py for a module's value types. It reads them
here with ``wasmtime_valtype_new`` (wasmtime's newer C API, which knows every
type and never panics), once per module at load, and keeps them as plain
strings in a :class:`Signature`. Both call backends (``runtime/backend.py``)
decide from it what they can call: numbers only for the C path, numbers and
references on the public path; a ``v128`` export loads (SIMD is supported)
but is refused from Python with an :class:`~atoll.errors.AbiError` naming it.

The engine turns GC, function references, exceptions and the other
proposals whose types would reach here off (``runtime/engine.py``); the
names below for their types exist only so that an unexpected one is
described, never fatal.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass

import wasmtime
from wasmtime import _ffi as ffi

__all__ = ["NUMERIC", "Signature", "valtype_name"]

#: The value types a Python number converts to and from.
NUMERIC = frozenset({"i32", "i64", "f32", "f64"})

_KINDS = ("i32", "i64", "f32", "f64", "v128")
_REF_KIND = 5
#: wasmtime_heaptype_kind_t values (wasmtime/val.h) as the text format spells them.
_HEAPS = {
    0: "extern",
    1: "noextern",
    2: "func",
    3: "nofunc",
    5: "any",
    6: "none",
    7: "eq",
    8: "i31",
    9: "array",
    11: "struct",
    13: "exn",
}
#: (nullable, heap) with a short name.
_SHORT = {"extern": "externref", "func": "funcref"}


def valtype_name(ty: wasmtime.ValType) -> str:
    """The text-format name of a value type (``i32``, ``v128``, ``funcref``, ``(ref func)``…).

    Never calls ``wasm_valtype_kind`` (which aborts on types the wasm C API
    cannot name); safe on any type a compiled module holds.
    """
    out = ffi.wasmtime_valtype_t()
    ffi.wasmtime_valtype_new(ty.ptr(), ctypes.byref(out))
    try:
        kind = int(out.kind)
        if kind < len(_KINDS):
            return _KINDS[kind]
        if kind != _REF_KIND:
            return f"valtype#{kind}"
        heap_kind = int(out.reftype.heaptype.kind)
        heap = _HEAPS.get(heap_kind, f"heap#{heap_kind}")
        if out.reftype.nullable:
            short = _SHORT.get(heap)
            return short if short is not None else f"(ref null {heap})"
        return f"(ref {heap})"
    finally:
        ffi.wasmtime_valtype_delete(ctypes.byref(out))


@dataclass(frozen=True, slots=True)
class Signature:
    """Parameter and result types of a function, as text-format names.

    Built once per module export at load (:meth:`of`) and shared by every
    instance and thread.
    """

    params: tuple[str, ...]
    results: tuple[str, ...]

    @classmethod
    def of(cls, ty: wasmtime.FuncType) -> Signature:
        """The signature of ``ty``, read safely (see the module notes)."""
        return cls(
            tuple(valtype_name(p) for p in ty.params),
            tuple(valtype_name(r) for r in ty.results),
        )

    @property
    def numeric(self) -> bool:
        """True when every parameter and result is i32, i64, f32 or f64."""
        return NUMERIC.issuperset(self.params) and NUMERIC.issuperset(self.results)

    def unsupported(self) -> str | None:
        """The first type Python cannot pass or receive (``v128``), or ``None``."""
        for kind in self.params + self.results:
            if kind == "v128" or kind.startswith("(") or "#" in kind:
                return kind
        return None

    def __str__(self) -> str:
        return f"({', '.join(self.params)}) -> ({', '.join(self.results)})"
