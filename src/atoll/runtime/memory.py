"""The calling guest's linear memory, as a host function sees it.

Host functions (``hostfuncs.py``, ``wasi/``, ``bindings/kv/host.py``) read
and write the memory of the guest that called them through these helpers.
``caller`` is what the backend passes a host function: a
``capi.RawCaller`` (native backend) or a ``wasmtime.Caller`` (public).
"""

from __future__ import annotations

import ctypes
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import wasmtime
else:  # a public-API caller's memory (a RawCaller, native, has memory_view)
    from atoll.runtime.lazy import wasmtime

__all__ = ["memory_bytes", "memory_view"]


def memory_view(caller: Any) -> tuple[int, int]:
    """``(address, length)`` of the calling guest's ``memory`` export; ``(0, 0)`` if none.

    Valid until the guest runs again (memory may move when it grows).
    """
    view = getattr(caller, "memory_view", None)
    if view is not None:
        result: tuple[int, int] = view()
        return result
    memory = caller.get("memory")
    if not isinstance(memory, wasmtime.Memory):
        return 0, 0
    address = ctypes.cast(memory.data_ptr(caller), ctypes.c_void_p).value or 0
    return address, memory.data_len(caller)


def memory_bytes(caller: Any, ptr: int, length: int) -> bytes | None:
    """A copy of guest memory ``[ptr, ptr + length)``; ``None`` if out of bounds."""
    address, size = memory_view(caller)
    ptr &= 0xFFFFFFFF
    length &= 0xFFFFFFFF
    if not address or ptr + length > size:
        return None
    return ctypes.string_at(address + ptr, length)
