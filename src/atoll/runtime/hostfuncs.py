"""Host functions a guest may import: what atoll provides, and nothing else.

Import namespace (documented in ``docs/wasm-abi.md``): one wasm import module
per capability, named ``atoll:<capability>``, so the set can grow (``atoll:kv``
comes with KV) and a guest imports only what it uses. Plus the one import
common toolchains emit on their own: AssemblyScript's ``env.abort``.

The linker is built once per engine and shared by every module; each host
function finds the request it serves through :data:`CURRENT` (a context
variable set by the invocation for the duration of a request), so one
compiled, pre-linked module serves every request.

A host function never lets an exception escape into wasmtime-py (which would
pass it through a process-global, racy across threads): it records the error
on the invocation and returns a trap, and the call path reports the recorded
error.
"""

from __future__ import annotations

import contextvars
import ctypes
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import wasmtime

from atoll.errors import CpuLimitError, GuestTrapError
from atoll.runtime import calls
from atoll.runtime.logs import MAX_LOG_LINE

if TYPE_CHECKING:
    from atoll.runtime.invocation import Invocation

__all__ = [
    "CURRENT",
    "PROVIDED",
    "HostFunction",
    "build_linker",
    "check_cpu",
    "describe_provided",
    "fail",
    "memory_bytes",
    "memory_view",
    "register",
]

#: The invocation (request) on whose behalf wasm runs right now.
CURRENT: contextvars.ContextVar[Invocation | None] = contextvars.ContextVar(
    "atoll_invocation", default=None
)

I32 = wasmtime.ValType.i32()
I64 = wasmtime.ValType.i64()


@dataclass(frozen=True)
class HostFunction:
    """One import a guest may use.

    ``impl`` is called as ``impl(caller, *params)`` on the thread running the
    guest, with :data:`CURRENT` set to the request. It must not raise except
    through :func:`fail`, and must not block.
    """

    module: str
    name: str
    params: tuple[wasmtime.ValType, ...]
    results: tuple[wasmtime.ValType, ...]
    impl: Callable[..., Any]
    doc: str


#: (module, name) → host function. The single list of what guests may import.
PROVIDED: dict[tuple[str, str], HostFunction] = {}


def register(function: HostFunction) -> None:
    """Add a host function (at import time of the module that implements it).

    ``runtime/`` provides ``atoll:log`` and ``env.abort``; bindings add their
    own capability (``atoll:kv``…) so the runtime never imports them. Must run
    before :func:`build_linker`.
    """
    PROVIDED[(function.module, function.name)] = function


def describe_provided() -> str:
    """The imports atoll provides, for error messages."""
    return ", ".join(f"{m}.{n}" for m, n in PROVIDED)


def build_linker(engine: wasmtime.Engine) -> wasmtime.Linker:
    """A linker with every host function of :data:`PROVIDED` (called once per runtime)."""
    linker = wasmtime.Linker(engine)
    for fn in PROVIDED.values():
        ty = wasmtime.FuncType(list(fn.params), list(fn.results))
        if calls.capi is not None:  # raw callback: ~3x cheaper, no process-global for errors
            native = (
                calls.capi.NATIVE_WASI.get(fn.name, 0)
                if fn.module == "wasi_snapshot_preview1"
                else 0
            )
            calls.capi.define_host_func(linker, fn.module, fn.name, ty, fn.impl, native)
            continue
        linker.define_func(
            fn.module,
            fn.name,
            wasmtime.FuncType(list(fn.params), list(fn.results)),
            fn.impl,
            access_caller=True,
        )
    return linker


def memory_view(caller: Any) -> tuple[int, int]:
    """``(address, length)`` of the calling guest's ``memory`` export; ``(0, 0)`` if none.

    ``caller`` is a ``capi.RawCaller`` (fast path) or a ``wasmtime.Caller``.
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


def check_cpu(caller: Any, what: str) -> None:
    """Trap with :class:`~atoll.errors.CpuLimitError` if the guest's CPU budget is spent.

    For host functions whose work grows with a guest's arguments: call it between
    steps of a long loop. The budget is that of the outermost call into the
    caller's store (C API path: its meter; public path: the deadline
    ``GuestStore.enter`` set on the request).
    """
    left = getattr(caller, "cpu_left_ns", None)
    if left is not None:  # a capi.RawCaller
        remaining: int | None = left()
    else:
        invocation = CURRENT.get()
        deadline = invocation.cpu_deadline_ns if invocation is not None else None
        remaining = None if deadline is None else deadline - time.thread_time_ns()
    if remaining is not None and remaining <= 0:
        invocation = CURRENT.get()
        limit = invocation.limits.cpu_ms if invocation is not None else "?"
        fail(
            CpuLimitError(
                f"{what}: exceeded the request's wasm CPU limit of {limit} ms (in the host)",
                hint="raise [limits] cpu_ms, or do less work per request",
            )
        )


def _log_write(caller: wasmtime.Caller, ptr: int, length: int) -> None:
    invocation = CURRENT.get()
    if invocation is not None and invocation.log_book.full():  # nothing read or copied
        invocation.log_book.drop(1, length & 0xFFFFFFFF)
        return
    data = memory_bytes(caller, ptr, min(length & 0xFFFFFFFF, MAX_LOG_LINE))
    if data is None:
        line = f"<atoll:log.write: bad pointer/length {ptr}/{length}>"
    else:
        line = data.decode("utf-8", errors="replace")
        if (length & 0xFFFFFFFF) > MAX_LOG_LINE:
            line += f"… (cut at {MAX_LOG_LINE} bytes of {length & 0xFFFFFFFF})"
            if invocation is not None:
                invocation.log_book.drop(0, (length & 0xFFFFFFFF) - MAX_LOG_LINE)
    if invocation is not None:
        invocation.log_book.add(line, cut=False)  # at most MAX_LOG_LINE bytes, and the note


def _as_string(caller: wasmtime.Caller, ptr: int) -> str:
    """An AssemblyScript string: UTF-16LE at ``ptr``, its byte length at ``ptr - 4``."""
    if ptr == 0:
        return ""
    header = memory_bytes(caller, ptr - 4, 4)
    if header is None:
        return "?"
    data = memory_bytes(caller, ptr, min(int.from_bytes(header, "little"), 4096))
    return "?" if data is None else data.decode("utf-16-le", errors="replace")


def _abort(caller: wasmtime.Caller, msg: int, file: int, line: int, col: int) -> None:
    text = f"abort: {_as_string(caller, msg) or 'no message'} at {_as_string(caller, file)}:{line}:{col}"
    fail(GuestTrapError(text, hint="the guest called abort(); see its message"))


register(
    HostFunction(
        "atoll:log",
        "write",
        (I32, I32),
        (),
        _log_write,
        "write(ptr, len): one UTF-8 line to the request's log",
    )
)
register(
    HostFunction(
        "env",
        "abort",
        (I32, I32, I32, I32),
        (),
        _abort,
        "abort(msg, file, line, col): AssemblyScript's abort; ends the request with a trap",
    )
)


def fail(error: Exception) -> Any:
    """Record ``error`` on the current invocation and trap out of the guest."""
    invocation = CURRENT.get()
    if invocation is not None:
        invocation.host_error = error
    raise wasmtime.Trap(str(error))
