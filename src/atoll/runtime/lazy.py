"""wasmtime-py, imported at the first use of one of its names.

The native backend serves requests without importing wasmtime-py (most of a cold
start's wasm part: docs/benchmarks/coldstart.md), but the code both backends share
names wasmtime-py's exceptions (``Trap``, ``WasmtimeError``) where it catches or
raises them. Those modules write::

    if TYPE_CHECKING:
        import wasmtime
    else:
        from atoll.runtime.lazy import wasmtime

and ``wasmtime.Trap`` then imports the package when it is first evaluated: in an
``except`` clause, only when an exception reaches that clause; a served request that
does not fail never does. Where an exception that is not wasmtime's may pass (a
``TypeError`` from an export call given bytes), :func:`wasmtime_errors` matches without
importing anything.
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["wasmtime", "wasmtime_errors"]


class _Wasmtime:
    """Stands for the ``wasmtime`` module; each name is looked up once, then kept."""

    def __getattr__(self, name: str) -> Any:
        import wasmtime as module

        value = getattr(module, name)
        setattr(self, name, value)  # found as a plain attribute from now on
        return value

    def __repr__(self) -> str:
        return "<wasmtime, imported on first use>"


wasmtime = _Wasmtime()


def wasmtime_errors() -> tuple[type[BaseException], ...]:
    """wasmtime-py's ``Trap`` and ``WasmtimeError``; ``()`` while wasmtime-py is not
    imported (none of its exceptions can exist then). For an ``except`` clause or an
    ``isinstance`` that must not import it."""
    module = sys.modules.get("wasmtime")
    if module is None:
        return ()
    return (module.Trap, module.WasmtimeError)
