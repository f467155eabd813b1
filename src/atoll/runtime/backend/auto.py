"""Choose the backend once per process (uvicorn's ``protocols/http/auto.py`` pattern).

The native backend when ``runtime/capi.py`` imports (the pinned wasmtime and
the built ``_native`` extension), else the public one, with a warning.
``ATOLL_CAPI=0`` forces the public backend (CI runs part of the suite so;
see ``scripts/test.sh``).
"""

from __future__ import annotations

import logging
import os

from atoll.runtime.backend.base import Backend

__all__ = ["BACKEND", "TICK_NS", "choose"]

log = logging.getLogger("atoll.runtime")

#: Epoch tick period, in ns. A deadline of N ticks fires N to N+1 ticks later.
TICK_NS = 1_000_000


def choose(native: bool = True) -> Backend:
    """The native backend if ``native`` and it imports, else the public one."""
    if native:
        try:
            from atoll.runtime.backend.native import NativeBackend
        except ImportError as exc:  # another wasmtime version: correct, slower
            log.warning("wasmtime C API fast path off (%s); using the public API", exc)
        else:
            return NativeBackend(TICK_NS)
    # here: the public backend imports wasmtime-py, which the native one does without
    from atoll.runtime.backend.public import PublicBackend

    return PublicBackend(TICK_NS)


#: The process's backend.
BACKEND: Backend = choose(native=os.environ.get("ATOLL_CAPI", "1") != "0")
