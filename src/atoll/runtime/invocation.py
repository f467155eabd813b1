"""One request's wasm state: budgets, store, and how a failed wasm entry becomes an error.

An :class:`Invocation` is created per request by the worker. It owns the
request's CPU budget (``limits.cpu_ms``), its memory budget
(``limits.memory_mb``), the store that holds its fresh instances, its log
lines and its outcome. Every instantiate and every export call, fresh or
warm, goes through the engine backend's metered calls (``Backend.instantiate``,
``Backend.bind``: ``runtime/backend/``), which

1. refuses to start when the budget is spent;
2. sets the store's epoch deadline to the remaining budget (the epoch ticker
   advances every millisecond; see ``runtime/engine.py``);
3. on the native backend, re-checks at the deadline the *thread CPU time*
   actually used (a ``capi.Meter``, in C), so a request is charged CPU, not
   wall time lost to other threads;
4. recomputes the memory limit when the request holds several instances, so
   their sum stays under ``memory_mb`` (wasmtime's limit is per memory);
5. charges the thread CPU time used (host functions included: their work is
   done for the guest), once per outermost call, and maps traps to atoll's
   errors.
"""

from __future__ import annotations

import contextvars
import logging
import re
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol, cast

from atoll.errors import (
    AtollError,
    CapacityError,
    CpuLimitError,
    GuestError,
    GuestTrapError,
    MemoryLimitError,
)
from atoll.manifest.schema import Limits
from atoll.runtime.backend.auto import BACKEND, TICK_NS
from atoll.runtime.backend.base import Meter
from atoll.runtime.engine import Engine
from atoll.runtime.lazy import wasmtime_errors
from atoll.runtime.logs import RequestLog
from atoll.runtime.outcome import Outcome
from atoll.runtime.wasi.context import DirGrant, ProcExit, WasiContext

if TYPE_CHECKING:
    import wasmtime
else:  # its exception types, imported when a failure is mapped (see lazy.py)
    from atoll.runtime.lazy import wasmtime

__all__ = ["CURRENT", "GuestStore", "Invocation", "StoredInstance"]

#: The native backend's raw failure (``GuestStore.failure`` makes its exception).
_CALL_FAILED = BACKEND.CallFailed

log = logging.getLogger("atoll.runtime")

MIB = 1024 * 1024
PAGE = 65536
_TICK_NS = TICK_NS


class StoredInstance(Protocol):
    """What a store needs of the instances it holds (``instance.Instance``)."""

    def memory_size(self) -> int: ...

    def release(self) -> None: ...


#: The invocation (request) on whose behalf wasm runs right now: set by the worker for
#: the duration of a request, read by instances and host functions.
CURRENT: contextvars.ContextVar[Invocation | None] = contextvars.ContextVar(
    "atoll_invocation", default=None
)


class Invocation:
    """The wasm side of one request. Not shared between threads."""

    def __init__(
        self,
        engine: Engine,
        limits: Limits,
        request_id: str,
        worker: str,
        env: Mapping[str, Any] | None = None,
    ) -> None:
        self.engine = engine
        #: The worker's bindings: host functions grant a guest only what is here.
        self.env: Mapping[str, Any] = env if env is not None else {}
        self.limits = limits
        self.request_id = request_id
        self.worker = worker
        self.cpu_budget_ns = limits.cpu_ms * 1_000_000
        self.cpu_used_ns = 0
        self.memory_budget = limits.memory_mb * MIB
        self.logs: list[str] = []
        self._log_book: RequestLog | None = None  # made by the first line (log_book)
        #: Public backend: the thread CPU clock at which the outermost wasm call's budget
        #: ends (``hostfuncs.check_cpu`` stops long host work there). None: no call running.
        self.cpu_deadline_ns: int | None = None
        self.host_error: Exception | None = None
        self.outcome = Outcome.OK
        self.closed = False
        self._store: GuestStore | None = None
        #: WASI state of this request's guests (stdin/stdout/grants); see runtime/wasi.
        self.wasi: WasiContext | None = None
        #: argv and folder grants for WASI modules called from Python ([wasi] of the worker).
        self.wasi_args: tuple[str, ...] = (worker,)
        self.wasi_dirs: tuple[DirGrant, ...] = ()

    @property
    def cpu_ms(self) -> float:
        return self.cpu_used_ns / 1e6

    @property
    def log_book(self) -> RequestLog:
        """Bounds ``logs`` (lines, bytes, line length) and counts what it drops; see
        runtime/logs.py. Made on first use (a line logged, a guest's stdout served), as
        most requests log nothing."""
        book = self._log_book
        if book is None:
            book = self._log_book = RequestLog(self.logs, BACKEND.log_counts(self.logs))
        return book

    @log_book.setter
    def log_book(self, book: RequestLog) -> None:
        self._log_book = book

    def log(self, line: str) -> None:
        """Add a line to this request's log (from a guest or from ``ctx.log``), within its
        bounds (see runtime/logs.py: what does not fit is counted and reported at the end)."""
        self.log_book.add(line)

    def wasi_context(self) -> WasiContext:
        """This request's WASI context; for modules called from Python, made on first use:
        no stdin, stdout and stderr to the request log, the worker's ``[wasi]`` grants."""
        if self.wasi is None:
            self.wasi = WasiContext(
                args=list(self.wasi_args), dirs=self.wasi_dirs, stdout_to_log=True
            )
            # native backend: its WASI calls in C, stdout and stderr to the log there too
            BACKEND.serve_log_context(self.wasi, self.log_book.counts)
        return self.wasi

    def fresh_store(self) -> GuestStore:
        """The store that holds this request's fresh instances (created on first use)."""
        if self.closed:
            raise AtollError(
                "this request has finished; its wasm instances are gone",
                hint="create instances inside fetch() and do not keep them past the response",
            )
        if self._store is None:
            self._store = GuestStore(self.engine, self.memory_budget)
        return self._store

    def close(self) -> None:
        """Drop the request's store and every fresh instance in it, close the files its
        guests opened, and end its log (with what was dropped). Idempotent."""
        if self.wasi is not None:
            if self.wasi.has_partial_line():  # a last line without its newline
                self.wasi.flush_log(self.log_book)
            self.wasi.close()
        if not self.closed and self._log_book is not None:  # (else nothing was logged)
            self._log_book.finish()
        self.closed = True
        if self._store is not None:
            self._store.close()
            self._store = None


class GuestStore:
    """A wasmtime Store plus what atoll tracks about it.

    A fresh store lives for one request; a warm store (the ``instance`` of a
    module binding) lives for the process, on one thread. Either way each
    entry into wasm is charged to the invocation that makes it.
    """

    def __init__(self, engine: Engine, memory_budget: int) -> None:
        self.memory_budget = memory_budget
        self.instances: list[StoredInstance] = []
        self._limit = memory_budget
        #: Set when a call into this store failed: a warm instance in it is then replaced.
        self.failed = False
        #: The backend's store: a ``wasmtime.Store`` or a ``capi.MeteredStore``.
        self.store: Any
        #: The store's context address (native backend; 0 on the public one) and its
        #: CPU meter, which charges the thread CPU time of the outermost call.
        self.ctx: int
        self.meter: Meter
        self.store, self.ctx, self.meter = BACKEND.new_store(
            engine.engine, engine.address, memory_budget, _TICK_NS
        )

    def close(self) -> None:
        for instance in self.instances:
            instance.release()
        self.instances.clear()
        self.store.close()

    def memory_in_use(self, exclude: StoredInstance | None = None) -> int:
        return sum(i.memory_size() for i in self.instances if i is not exclude)

    def fit_memory(self, instance: StoredInstance | None) -> None:
        """Before a call into ``instance``: cap its memory at what the request's other
        instances leave of ``memory_budget`` (wasmtime's limit is per memory)."""
        limit = max(0, self.memory_budget - self.memory_in_use(exclude=instance))
        if limit != self._limit:
            self.store.set_limits(memory_size=limit)
            self._limit = limit

    def spent(self, invocation: Invocation, what: str) -> CpuLimitError:
        """The error for a call refused because the request's CPU budget is used up."""
        invocation.outcome = Outcome.EXCEEDED_CPU
        return CpuLimitError(
            f"{what}: this request already used its {invocation.limits.cpu_ms} ms of wasm CPU",
            hint="raise [limits] cpu_ms, or do less work per request",
        )

    def failure(
        self,
        invocation: Invocation,
        what: str,
        exc: BaseException,
        instance: StoredInstance | None,
    ) -> BaseException:
        """The exception to raise for a failed wasm entry (a trap or a wasmtime error).

        Sets the invocation's outcome. ``ProcExit`` (a WASI ``proc_exit``) and a
        :class:`GuestError` a host function recorded win over the trap. ``exc`` may be
        the backend's ``CallFailed``: it becomes wasmtime-py's exception here only if
        it is needed (a ``proc_exit`` served in C ends a CGI run without importing
        wasmtime-py).
        """
        host_error, invocation.host_error = invocation.host_error, None
        _clear_wasmtime_last_exception()
        stdio = self.meter.stdio
        if isinstance(exc, _CALL_FAILED):
            if isinstance(host_error, ProcExit) or (stdio is not None and stdio.exited):
                BACKEND.discard(exc)
            else:
                exc = BACKEND.failure(exc)
        if isinstance(host_error, ProcExit):  # proc_exit(): the run is over
            return host_error
        if stdio is not None and stdio.exited:  # proc_exit() served in C
            stdio.exited = False
            if invocation.wasi is not None:  # as the Python proc_exit records it
                invocation.wasi.exit_code = stdio.exit_code
            return ProcExit(stdio.exit_code)
        if not isinstance(exc, wasmtime_errors()):
            return exc  # a Python exception that surfaced through the call (rare)
        self.failed = True
        if isinstance(host_error, GuestError):  # a host function said why
            host_error.frames = host_error.frames or tuple(_frames(exc, what))
            invocation.outcome = Outcome(host_error.outcome)
            return host_error
        if host_error is not None:
            error: GuestError = GuestTrapError(
                f"{what}: host function failed: {host_error!r}", frames=_frames(exc, what)
            )
        elif isinstance(exc, wasmtime.Trap):
            error = self._trap_error(invocation, what, exc, instance)
        else:
            error = self._wasmtime_error(
                invocation, what, cast("wasmtime.WasmtimeError", exc), instance
            )
        invocation.outcome = Outcome(error.outcome)
        if isinstance(error, CpuLimitError):
            # Stopped for time: the budget is used, whichever clock stopped it (the
            # public backend's deadline is wall time and may fire a little short).
            invocation.cpu_used_ns = max(invocation.cpu_used_ns, invocation.cpu_budget_ns)
        return error

    # -- mapping failures -------------------------------------------------

    def _trap_error(
        self,
        invocation: Invocation,
        what: str,
        trap: wasmtime.Trap,
        instance: StoredInstance | None,
    ) -> GuestError:
        frames = _frames(trap, what)
        code = trap.trap_code
        error: GuestError
        if code == wasmtime.TrapCode.INTERRUPT or BACKEND.is_interrupt(trap):
            error = CpuLimitError(
                f"{what}: exceeded the request's wasm CPU limit of {invocation.limits.cpu_ms} ms",
                frames=frames,
                hint="raise [limits] cpu_ms, or do less work per request",
            )
        elif self._at_memory_limit(instance):
            error = MemoryLimitError(
                f"{what}: wasm memory reached the limit of {invocation.limits.memory_mb} MiB "
                f"and the guest trapped ({_trap_message(trap)})",
                frames=frames,
                hint="raise [limits] memory_mb, or use less memory per request",
            )
        elif code == wasmtime.TrapCode.STACK_OVERFLOW:
            error = GuestTrapError(
                f"{what}: stack overflow (wasm call stack over 512 KiB)",
                frames=frames,
                hint="look for unbounded recursion in the frames below",
            )
        else:
            error = GuestTrapError(f"{what}: wasm trap: {_trap_message(trap)}", frames=frames)
        return error

    def _at_memory_limit(self, instance: StoredInstance | None) -> bool:
        """Did the guest trap because a ``memory.grow`` was refused?

        wasmtime does not report refused grows, so this is an inference: the
        trapping instance holds memory within ``max(2 MiB, limit / 16)`` of its
        limit, where an allocator's next grow (often a few pages) would fail.
        """
        slack = max(32 * PAGE, self._limit // 16)
        candidates = [instance] if instance is not None else self.instances
        return any(i is not None and i.memory_size() + slack > self._limit for i in candidates)

    def _wasmtime_error(
        self,
        invocation: Invocation,
        what: str,
        exc: wasmtime.WasmtimeError,
        instance: StoredInstance | None,
    ) -> GuestError:
        text = str(exc)
        frames = _frames(exc, what)
        error: GuestError
        if BACKEND.is_interrupt(exc):
            error = CpuLimitError(
                f"{what}: exceeded the request's wasm CPU limit of {invocation.limits.cpu_ms} ms",
                frames=frames,
                hint="raise [limits] cpu_ms, or do less work per request",
            )
        elif "concurrent limit" in text:
            error = CapacityError(
                f"{what}: this node holds its maximum of {invocation.engine.pool_instances} "
                "live wasm instances",
                hint="retry; or raise ATOLL_POOL_INSTANCES, or keep fewer instances alive "
                "across awaits",
            )
        elif not frames and "memory" in text and ("limit" in text or "exceeds" in text):
            error = MemoryLimitError(
                f"{what}: the module's initial memory is over the limit of "
                f"{invocation.limits.memory_mb} MiB",
                hint="raise [limits] memory_mb, or lower the module's initial memory",
            )
        elif frames and self._at_memory_limit(instance):
            error = MemoryLimitError(
                f"{what}: wasm memory reached the limit of {invocation.limits.memory_mb} MiB "
                f"and the guest failed ({_cause(text)})",
                frames=frames,
                hint="raise [limits] memory_mb, or use less memory per request",
            )
        else:
            error = GuestTrapError(f"{what}: {_cause(text)}", frames=frames)
        return error


def _cause(text: str) -> str:
    """The cause in a wasmtime message (it comes last, after the backtrace)."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return "trap"
    return lines[-1].removeprefix("wasm trap: ")


def _trap_message(trap: wasmtime.Trap) -> str:
    return _cause(str(trap.message))


_FRAME_LINE = re.compile(r"^\s*\d+:\s+0x[0-9a-f]+ - (?:(.*?)!)?(.+?)\s*$")


def _frames(exc: BaseException, what: str) -> list[str]:
    """``module!function`` for each wasm frame, innermost first (the binding names the module)."""
    module_name = what.split(".")[0].split(" ")[0]
    if isinstance(exc, wasmtime.Trap):
        out = []
        for frame in exc.frames:
            func = frame.func_name or f"func[{frame.func_index}]"
            out.append(f"{frame.module_name or module_name}!{func}")
        return out
    frames = []  # a WasmtimeError carries its backtrace only as text
    for line in str(exc).splitlines():
        match = _FRAME_LINE.match(line)
        if match:
            module = match.group(1)
            module = module_name if module in (None, "<unknown>") else module
            frames.append(f"{module}!{match.group(2)}")
    return frames


def _clear_wasmtime_last_exception() -> None:
    """wasmtime-py parks a host function's exception in a global; ours are recorded per invocation."""
    wfunc = sys.modules.get("wasmtime._func")  # (not imported: nothing to clear)
    if wfunc is not None:
        setattr(wfunc, "LAST_EXCEPTION", None)  # noqa: B010 (an attribute mypy cannot see)
