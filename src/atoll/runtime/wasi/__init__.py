"""WASI preview 1, implemented by atoll: in-memory stdio, read-only grants, nothing else.

Importing this package registers every ``wasi_snapshot_preview1`` host
function (see ``preview1.py``); the runtime imports it before it builds its
linker.
"""

from atoll.runtime.wasi import preview1
from atoll.runtime.wasi.context import DirGrant, ProcExit, WasiContext
from atoll.runtime.wasi.preview1 import OutputLimitError

__all__ = ["DirGrant", "OutputLimitError", "ProcExit", "WasiContext", "preview1"]
