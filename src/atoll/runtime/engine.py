"""The process's wasmtime Engine and its epoch ticker.

One :class:`Engine` per process (:func:`get_engine`): compiled modules are
tied to it, and it is shared safely by every thread. Epoch interruption is
on; one daemon thread advances the epoch every :data:`TICK_SECONDS`, which is
how a guest that never returns is stopped (see ``runtime/invocation.py``).
"""

from __future__ import annotations

import hashlib
import os
import threading
from typing import Any, ClassVar

from atoll.runtime.backend.auto import BACKEND, TICK_NS
from atoll.runtime.backend.base import Ticker

__all__ = ["PROPOSALS", "TICK_SECONDS", "Engine", "get_engine"]

#: Epoch tick period. A deadline of N ticks fires N to N+1 ticks later.
TICK_SECONDS = TICK_NS / 1e9

#: Live instances (and memories) the pooling allocator holds at once, per process.
DEFAULT_POOL_INSTANCES = 1000

#: Pooling allocator settings (native backend only). Slots are reserved address space,
#: not memory: 4 GiB memories, a few MiB of instance state. The first 128 KiB
#: of a freed memory stay mapped (zeroed with memset, not madvise) so the next
#: request reuses them without page faults: two wasm pages, all a C, Zig or
#: AssemblyScript program's data and stack often need (a hello-world CGI
#: request then takes no page fault; a module whose stack sits higher, like the
#: seed's Rust module, pays a little more: docs/benchmarks.md).
POOL: dict[str, int] = {
    "max_memory_size": 4096 * 1024 * 1024,
    "max_memories_per_module": 2,
    "max_tables_per_module": 2,
    "table_elements": 100_000,
    "max_core_instance_size": 4 * 1024 * 1024,
    "linear_memory_keep_resident": 128 * 1024,
    "table_keep_resident": 64 * 1024,
}


#: WebAssembly proposals, each set explicitly (wasmtime's defaults move between
#: releases). On: what toolchains emit for ordinary code (SIMD is common in
#: Rust and C image code). Off: proposals whose types wasmtime-py cannot
#: describe without aborting the process (GC, function references,
#: exceptions: see ``runtime/signature.py``), and ones atoll's ABI or
#: sandbox has no use for (threads and shared memory, 64-bit memories,
#: custom page sizes, wide arithmetic, stack switching). A module using an
#: "off" proposal fails to load with a :class:`~atoll.errors.ModuleLoadError`
#: (docs/limits.md lists them).
PROPOSALS: dict[str, bool] = {
    "simd": True,
    "relaxed_simd": True,
    "bulk_memory": True,
    "multi_value": True,
    "reference_types": True,
    "tail_call": True,
    "multi_memory": True,
    "gc": False,
    "function_references": False,
    "exceptions": False,
    "stack_switching": False,
    "threads": False,
    "memory64": False,
    "custom_page_sizes": False,
    "wide_arithmetic": False,
}


class Engine:
    """A wasmtime engine configured for atoll, with its epoch ticker.

    Created once per process; :meth:`close` stops the ticker (tests only).
    ``key`` identifies the compiled-code format: wasmtime's version plus every
    engine setting atoll makes, so a disk cache never mixes configurations.
    """

    #: The settings that change compiled code. Any change here changes ``key``.
    SETTINGS: ClassVar[dict[str, object]] = {
        "epoch_interruption": True,
        "cranelift_opt_level": "speed",
        "max_wasm_stack": 512 * 1024,
        **{f"wasm_{name}": on for name, on in PROPOSALS.items()},
    }

    def __init__(self, pool_instances: int | None = None) -> None:
        """``pool_instances``: size of the pooling allocator (live instances and
        memories at once, warm ones included); ``0`` turns pooling off. Default:
        ``$ATOLL_POOL_INSTANCES`` or :data:`DEFAULT_POOL_INSTANCES`."""
        if pool_instances is None:
            pool_instances = int(os.environ.get("ATOLL_POOL_INSTANCES", DEFAULT_POOL_INSTANCES))
        #: The backend's engine: a ``wasmtime.Engine`` (public backend) or a
        #: ``native_setup.Engine``.
        self.engine: Any
        self.engine, pooled = BACKEND.new_engine(self.SETTINGS, pool_instances, POOL)
        self.pool_instances = pool_instances if pooled else 0
        settings_used = dict(self.SETTINGS)
        if pooled:
            settings_used["pooling"] = POOL
        self.wasmtime_version: str = BACKEND.wasmtime_version
        #: The engine's C address (native backend; 0 on the public one).
        self.address = BACKEND.address(self.engine.ptr())
        settings = ",".join(f"{k}={v}" for k, v in sorted(settings_used.items()))
        self.key = hashlib.sha256(
            f"wasmtime-{self.wasmtime_version};{settings}".encode()
        ).hexdigest()[:16]
        self._ticker: Ticker | None = BACKEND.start_ticker(self.engine, TICK_NS)

    def close(self) -> None:
        """Stop the ticker. The engine stays usable but deadlines no longer fire."""
        ticker, self._ticker = self._ticker, None
        if ticker is not None:
            ticker.stop()


_ENGINE: Engine | None = None
_ENGINE_LOCK = threading.Lock()


def get_engine() -> Engine:
    """The process's engine, created on first use."""
    global _ENGINE
    if _ENGINE is None:
        with _ENGINE_LOCK:
            if _ENGINE is None:
                _ENGINE = Engine()
    return _ENGINE
