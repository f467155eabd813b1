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
import operator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from atoll.errors import AbiError

if TYPE_CHECKING:  # wasmtime-py: imported where its objects are read (the public backend)
    import wasmtime

__all__ = ["NUMERIC", "Signature", "describe_valtype", "valtype_name"]

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
    from wasmtime import _ffi as ffi

    out = ffi.wasmtime_valtype_t()
    ffi.wasmtime_valtype_new(ty.ptr(), ctypes.byref(out))
    try:
        ref = out.reftype
        return describe_valtype(int(out.kind), bool(ref.nullable), int(ref.heaptype.kind))
    finally:
        ffi.wasmtime_valtype_delete(ctypes.byref(out))


def describe_valtype(kind: int, nullable: bool, heap_kind: int) -> str:
    """The text-format name of a ``wasmtime_valtype_t`` from its fields (``kind``; for a
    reference, ``reftype.nullable`` and ``reftype.heaptype.kind``)."""
    if kind < len(_KINDS):
        return _KINDS[kind]
    if kind != _REF_KIND:
        return f"valtype#{kind}"
    heap = _HEAPS.get(heap_kind, f"heap#{heap_kind}")
    if nullable:
        short = _SHORT.get(heap)
        return short if short is not None else f"(ref null {heap})"
    return f"(ref {heap})"


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

    @classmethod
    def of_func(cls, store: wasmtime.Store | Any, func: wasmtime.Func) -> Signature:
        """The signature of ``func`` (``store``: its store, or a host call's caller)."""
        return cls.of(func.type(store))

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

    def refuse_unsupported(self, name: str) -> None:
        """Raise :class:`AbiError` naming ``name`` if its signature has a ``v128``."""
        kind = self.unsupported()
        if kind is not None:
            raise AbiError(
                f"export '{name}' has type {kind} in its signature {self}, "
                "which Python cannot pass or receive",
                hint="export a wrapper taking and returning i32/i64/f32/f64 "
                "(v128 values can go through linear memory); see docs/wasm-abi.md",
            )

    def convert(self, name: str, args: tuple[Any, ...]) -> tuple[Any, ...]:
        """Check ``args`` against the parameters, as the C path does, with its messages.

        i32/i64 take ints (anything with ``__index__``) in the signed or unsigned
        range, passed on in the signed form wasmtime-py wants; f32/f64 take
        ints and floats. Raises ``TypeError`` / ``ValueError``.
        """
        if len(args) != len(self.params):
            raise TypeError(
                f"export {name!r} takes {len(self.params)} argument(s), {len(args)} given"
            )
        out: list[Any] = []
        for index, (value, kind) in enumerate(zip(args, self.params, strict=True)):
            bits = _INT_BITS.get(kind)
            if bits is not None:
                try:
                    number = operator.index(value)
                except TypeError:
                    raise TypeError(
                        f"export {name!r} argument {index}: expected int for {kind}, "
                        f"got {type(value).__name__}"
                    ) from None
                low, high = -(1 << (bits - 1)), (1 << bits) - 1
                if not low <= number <= high:
                    raise ValueError(
                        f"export {name!r} argument {index}: {number} out of range for "
                        f"{kind} [{low}, {high}]"
                    )
                out.append(number - (1 << bits) if number >= 1 << (bits - 1) else number)
            elif kind in ("f32", "f64"):
                if isinstance(value, str | bytes | bytearray) or not (
                    hasattr(type(value), "__float__") or hasattr(type(value), "__index__")
                ):
                    raise TypeError(
                        f"export {name!r} argument {index}: expected float for {kind}, "
                        f"got {type(value).__name__}"
                    )
                try:
                    out.append(float(value))
                except OverflowError:
                    raise ValueError(
                        f"export {name!r} argument {index}: {value} out of range for {kind}"
                    ) from None
            else:
                out.append(value)  # funcref / externref: wasmtime-py converts them
        return tuple(out)


_INT_BITS = {"i32": 32, "i64": 64}
