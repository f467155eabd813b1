"""Host functions a guest may import: what atoll provides, and nothing else.

Import namespace (documented in ``docs/wasm-abi.md``): one wasm import module
per capability, named ``atoll:<capability>``, so the set can grow (``atoll:kv``
comes with KV) and a guest imports only what it uses. Plus the one import
common toolchains emit on their own: AssemblyScript's ``env.abort``.

The linker (:class:`HostLinker`) is built once per runtime from the host
functions it is given, and shared by every module; each host function finds
the request it serves through :data:`CURRENT` (a context variable set for
the duration of a request, defined in ``invocation.py`` and re-exported
here), so one compiled, pre-linked module serves every request.

A host function never lets an exception escape into wasmtime-py (which would
pass it through a process-global, racy across threads): it records the error
on the invocation and returns a trap, and the call path reports the recorded
error.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from atoll.errors import CpuLimitError, GuestTrapError
from atoll.runtime.backend.auto import BACKEND
from atoll.runtime.invocation import CURRENT
from atoll.runtime.logs import MAX_LOG_LINE
from atoll.runtime.memory import memory_bytes, memory_view
from atoll.runtime.signature import Signature

if TYPE_CHECKING:
    import wasmtime
else:  # its Trap, imported when a host function fails (the native backend runs without it)
    from atoll.runtime.lazy import wasmtime

__all__ = [
    "BUILTIN",
    "CURRENT",
    "HostFunction",
    "HostLinker",
    "check_cpu",
    "fail",
    "memory_bytes",
    "memory_view",
]

#: The value types host functions take and return (text-format names, as in a
#: :class:`~atoll.runtime.signature.Signature`).
I32 = "i32"
I64 = "i64"


@dataclass(frozen=True)
class HostFunction:
    """One import a guest may use.

    ``impl`` is called as ``impl(caller, *params)`` on the thread running the
    guest, with :data:`CURRENT` set to the request. It must not raise except
    through :func:`fail`, and must not block.
    """

    module: str
    name: str
    params: tuple[str, ...]
    results: tuple[str, ...]
    impl: Callable[..., Any]
    doc: str


class HostLinker:
    """A wasmtime linker and the host functions it provides: what a guest may import.

    Built once per runtime (``worker.Runtime``) from the capabilities the
    runtime grants, listed there explicitly: ``BUILTIN`` (``atoll:log``,
    ``env.abort``), WASI (``wasi.preview1.host_functions()``), KV
    (``bindings.kv.host.host_functions()``). Shared by every module and thread.
    """

    def __init__(self, engine: Any, functions: Iterable[HostFunction]) -> None:
        """``engine``: the backend's (``Engine.engine``)."""
        self.linker = BACKEND.new_linker(engine)
        #: (module, name) → host function.
        self.provided: dict[tuple[str, str], HostFunction] = {}
        for fn in functions:
            key = (fn.module, fn.name)
            if key in self.provided:
                raise ValueError(f"host function {fn.module}.{fn.name} is defined twice")
            self.provided[key] = fn
            sig = Signature(fn.params, fn.results)
            BACKEND.define_host(self.linker, fn.module, fn.name, sig, fn.impl)

    def describe(self) -> str:
        """The imports this linker provides, for error messages."""
        return ", ".join(f"{m}.{n}" for m, n in self.provided)


def check_cpu(caller: Any, what: str) -> None:
    """Trap with :class:`~atoll.errors.CpuLimitError` if the guest's CPU budget is spent.

    For host functions whose work grows with a guest's arguments: call it between
    steps of a long loop. The budget is that of the outermost call into the
    caller's store (native backend: its meter; public: the deadline its metered
    call set on the request).
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
    """``atoll:log.write(ptr, len)``: one line. The native backend serves it in C
    (``runtime/native/log.c``, the same rules), and this only where C cannot."""
    invocation = CURRENT.get()
    ptr &= 0xFFFFFFFF  # i32 arrive signed on the public backend, unsigned on the native one
    length &= 0xFFFFFFFF
    if invocation is not None and invocation.log_book.full():  # nothing read or copied
        invocation.log_book.drop(1, length)
        return
    data = memory_bytes(caller, ptr, min(length, MAX_LOG_LINE))
    cut = data is not None and length > MAX_LOG_LINE
    if data is None:
        line = f"<atoll:log.write: bad pointer/length {ptr}/{length}>"
    else:
        line = data.decode("utf-8", errors="replace")
        if cut:
            line += f"… (cut at {MAX_LOG_LINE} bytes of {length})"
    if invocation is None:
        return
    # at most MAX_LOG_LINE bytes, and the note; not kept: the guest's bytes count as dropped
    if invocation.log_book.add(line, cut=False, written=length) and cut:
        invocation.log_book.drop(0, length - MAX_LOG_LINE)  # the part cut off


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


#: The host functions of the runtime itself (capabilities add their own).
BUILTIN: tuple[HostFunction, ...] = (
    HostFunction(
        "atoll:log",
        "write",
        (I32, I32),
        (),
        _log_write,
        "write(ptr, len): one UTF-8 line to the request's log",
    ),
    HostFunction(
        "env",
        "abort",
        (I32, I32, I32, I32),
        (),
        _abort,
        "abort(msg, file, line, col): AssemblyScript's abort; ends the request with a trap",
    ),
)


def fail(error: Exception) -> Any:
    """Record ``error`` on the current invocation and trap out of the guest."""
    invocation = CURRENT.get()
    if invocation is not None:
        invocation.host_error = error
    raise wasmtime.Trap(str(error))
