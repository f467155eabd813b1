"""wasmtime-py's ``Func.__call__`` under a request's CPU budget: :class:`PyBound`.

The public backend's export call, and the native backend's for the signatures its C
path does not take (references, ``v128``). Importing this module does not import
wasmtime-py (the native backend imports it for a non-numeric export only when one is
bound).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from atoll.runtime.backend.base import Meter
from atoll.runtime.signature import Signature

if TYPE_CHECKING:
    import wasmtime

__all__ = ["PyBound", "metered"]

_thread_time_ns = time.thread_time_ns


def metered(
    store: wasmtime.Store,
    meter: Meter,
    invocation: Any,
    tick_ns: int,
    spent: type[Exception],
    fn: Callable[..., Any],
    *args: Any,
) -> Any:
    """``fn(*args)`` under the invocation's budget: checked, deadline set, CPU charged."""
    left = 0
    outermost = meter.depth == 0
    if outermost:  # a nested call runs under the outermost call's deadline
        left = invocation.cpu_budget_ns - invocation.cpu_used_ns
        if left <= 0:
            raise spent
        store.set_epoch_deadline(-(-left // tick_ns) + 1)  # ceil in integers
        # where hostfuncs.check_cpu stops long host work (the native meter knows it itself)
        invocation.cpu_deadline_ns = _thread_time_ns() + left
    meter.begin(left)
    try:
        return fn(*args)
    finally:
        used = meter.end()
        if outermost:
            invocation.cpu_used_ns += used


class PyBound:
    """An export of one instance called through wasmtime-py's ``Func.__call__``."""

    __slots__ = ("_func", "_meter", "_name", "_sig", "_spent", "_store", "_tick_ns")

    def __init__(
        self,
        name: str,
        sig: Signature,
        store: wasmtime.Store,
        meter: Meter,
        func: Callable[[], wasmtime.Func],
        tick_ns: int,
        spent: type[Exception],
    ) -> None:
        self._name = name
        self._sig = sig
        self._store = store
        self._meter = meter
        self._func = func
        self._tick_ns = tick_ns
        self._spent = spent

    def __call__(self, invocation: Any, *args: Any) -> Any:
        sig = self._sig
        sig.refuse_unsupported(self._name)
        converted = sig.convert(self._name, args)
        result = metered(
            self._store,
            self._meter,
            invocation,
            self._tick_ns,
            self._spent,
            self._func(),
            self._store,
            *converted,
        )
        return tuple(result) if isinstance(result, list) else result
