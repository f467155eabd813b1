"""WASI preview 1, implemented by atoll: in-memory stdio, read-only grants, nothing else.

``preview1.host_functions()`` lists the ``wasi_snapshot_preview1`` host
functions; the runtime wires them into its linker (``worker.Runtime``).
Importing this package registers nothing.
"""

from atoll.runtime.wasi.context import DirGrant, ProcExit, WasiContext, wasi_grants

__all__ = ["DirGrant", "ProcExit", "WasiContext", "wasi_grants"]
