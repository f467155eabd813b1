"""How a call reaches a guest export: the C API fast path, or wasmtime-py's public path.

One :class:`ExportCaller` is built per (module, export) at load and shared by
every instance and thread. When :mod:`atoll.runtime.capi` imports (wasmtime
is the pinned version) and the signature is numeric, calls go through
``wasmtime_func_call_unchecked`` (~1 µs); otherwise through ``Func.__call__``
(~18 µs). Both raise ``wasmtime.Trap`` / ``wasmtime.WasmtimeError`` on failure,
which ``runtime/invocation.py`` maps to atoll's errors.
"""

from __future__ import annotations

import logging
import os
from types import ModuleType
from typing import Any

import wasmtime

from atoll.errors import AbiError
from atoll.runtime.signature import Signature

__all__ = ["FAST_PATH", "ExportCaller", "instantiate"]

log = logging.getLogger("atoll.runtime")

capi: ModuleType | None = None
if os.environ.get("ATOLL_CAPI", "1") != "0":  # ATOLL_CAPI=0 forces the public path (benchmarks)
    try:
        from atoll.runtime import capi as _capi

        capi = _capi
    except ImportError as exc:  # another wasmtime version: correct, slower
        log.warning("wasmtime C API fast path off (%s); using the public API", exc)

#: True when calls and instantiation go through the C API fast path.
FAST_PATH = capi is not None


class _Never(Exception):
    """Stands in for the C API's exceptions on the public path: never raised."""


#: ``capi.CallFailed`` / ``capi.BudgetSpent``, or a class nothing raises (public path).
CallFailed: type[Exception] = capi.CallFailed if capi is not None else _Never
BudgetSpent: type[Exception] = capi.BudgetSpent if capi is not None else _Never


def capi_failure(failed: Exception) -> BaseException:
    """The wasmtime exception behind a ``capi.CallFailed``."""
    assert capi is not None
    return capi.failure(*failed.args)  # type: ignore[no-any-return]


class ExportCaller:
    """Calls one export (by signature) on any instance of its module."""

    __slots__ = ("_fast", "name", "params", "results", "unsupported")

    def __init__(self, name: str, ty: wasmtime.FuncType) -> None:
        self.name = name
        sig = Signature.of(ty)
        self.params = sig.params
        self.results = sig.results
        #: A type Python cannot pass (``v128``): calls are refused (see :meth:`call`).
        self.unsupported = sig.unsupported()
        self._fast: Any = None
        if capi is not None and sig.numeric:
            self._fast = capi.FastCaller(capi.FuncSig.from_type(ty), name)

    def bind(self, meter: Any, ctx: int, store_id: int, private: int) -> Any:
        """A ``capi.Bound``: ``bound(invocation, *numbers)`` calls the function
        ``(store_id, private)`` in the store at ``ctx``, charged to the
        invocation's CPU budget (C API path only, numeric signatures; else ``None``)."""
        if self._fast is None:
            return None
        return self._fast.bind(meter, ctx, store_id, private)

    def call(self, store: wasmtime.Store, func: wasmtime.Func, args: tuple[Any, ...]) -> Any:
        """Call ``func`` in ``store`` with Python numbers; ``None``, a value, or a tuple back."""
        if self.unsupported is not None:
            raise AbiError(
                f"export '{self.name}' has type {self.unsupported} in its signature "
                f"({', '.join(self.params)}) -> ({', '.join(self.results)}), "
                "which Python cannot pass or receive",
                hint="export a wrapper taking and returning i32/i64/f32/f64 "
                "(v128 values can go through linear memory); see docs/wasm-abi.md",
            )
        if len(args) != len(self.params):
            raise AbiError(
                f"{self.name} takes {len(self.params)} argument(s) "
                f"({', '.join(self.params) or 'none'}), got {len(args)}"
            )
        if self._fast is not None:
            try:
                return self._fast.call(store, func, *args)
            except (TypeError, ValueError) as exc:
                raise AbiError(str(exc)) from None
        for i, (arg, kind) in enumerate(zip(args, self.params, strict=True)):
            if kind in ("i32", "i64") and (isinstance(arg, bool) or not isinstance(arg, int)):
                raise AbiError(
                    f"export '{self.name}' argument {i}: expected an int for {kind}, got {type(arg).__name__}"
                )
            if kind in ("f32", "f64") and not isinstance(arg, int | float):
                raise AbiError(
                    f"export '{self.name}' argument {i}: expected a number for {kind}, got {type(arg).__name__}"
                )
        converted = tuple(
            _to_signed(a, k, self.name, i)
            for i, (a, k) in enumerate(zip(args, self.params, strict=True))
        )
        result = func(store, *converted)
        if isinstance(result, list):
            return tuple(result)
        return result


_RANGES = {"i32": 32, "i64": 64}


def _to_signed(value: Any, kind: str, name: str, index: int) -> Any:
    """Accept signed and unsigned ints, as the fast path does; wrap to the signed form."""
    bits = _RANGES.get(kind)
    if bits is None or not isinstance(value, int):
        return value
    lo, hi = -(2 ** (bits - 1)), 2**bits - 1
    if not lo <= value <= hi:
        raise AbiError(
            f"export '{name}' argument {index}: {value} out of range for {kind} [{lo}, {hi}]"
        )
    return value - 2**bits if value >= 2 ** (bits - 1) else value


def instantiate(pre: wasmtime.InstancePre, store: wasmtime.Store) -> wasmtime.Instance:
    """Instantiate a pre-linked module (runs its start function); the public path."""
    return pre.instantiate(store)
