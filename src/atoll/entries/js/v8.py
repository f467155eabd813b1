"""V8 through STPyV8, plus the few V8 calls STPyV8 does not expose (the limits).

STPyV8 (pinned in ``pyproject.toml``) runs JS on the calling thread with the
GIL released. What it lacks for untrusted code is reached here through the
V8 C++ symbols its extension exports (Itanium ABI: a member function is a C
function taking ``this`` first), with ctypes, pinned to V8 13.1 like the
wheel:

* ``Isolate::GetCurrent`` — the isolate entered on this thread (its pointer);
* ``Isolate::TerminateExecution`` — thread-safe: the watchdog stops a running
  call through the pointer (STPyV8's ``terminateAllThreads`` looks the
  isolate up on the *calling* thread and crashes on the watchdog's);
* ``Isolate::RequestInterrupt`` + ``GetHeapStatistics`` — the watchdog asks
  the JS thread to report its heap and external memory (ArrayBuffers and
  wasm memories both count there) between two bytecodes;
* ``Isolate::AddNearHeapLimitCallback`` — when the JS heap nears its limit,
  the request is terminated and the heap given headroom to unwind, instead
  of V8's fatal out-of-memory abort of the whole process.

V8 flags are frozen once V8 is initialised (importing STPyV8 does that), and
setting one afterwards aborts the process. This module imports STPyV8 itself
after ``--no-freeze-flags-after-init``, so that ``--max-old-space-size`` can
be set for each new isolate (read at isolate creation) and
``--wasm-max-mem-pages`` raised to the largest JS worker's ``memory_mb``.
Import this module before anything imports STPyV8.
"""

from __future__ import annotations

import ctypes
import logging
import sys
import threading
import time
from pathlib import Path
from typing import Any

from atoll.errors import WorkerLoadError

log = logging.getLogger("atoll.js")

__all__ = [
    "FLAGS_MUTABLE",
    "STPyV8",
    "V8Api",
    "Watchdog",
    "api",
    "cap_wasm_memory",
    "over_budget",
    "set_flags",
]

#: Flags set once, before V8 starts. ``--stack-size`` stays V8's default (984 KiB) which
#: fits the 8 MiB threads atoll serves from; a deep recursion is a RangeError the worker sees.
_INIT_FLAGS = "--no-freeze-flags-after-init"

#: Set on the ``_STPyV8`` extension module (which stays loaded) when V8 failed to start:
#: Python forgets a module whose import raised, and a second start of V8 in the same
#: process would abort it (V8 checks it is initialised once), so a later import of this
#: module raises the first failure again instead of retrying.
_START_ERROR = "atoll_v8_start_error"


def _start_failed(error: BaseException) -> WorkerLoadError:
    """The error for V8 failing to start in this process, with what the process holds."""
    status: dict[str, str] = {}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            key, _, value = line.partition(":")
            status[key] = value.split()[0] if value.split() else "?"
        mappings = len(Path("/proc/self/maps").read_text().splitlines())
        limit = Path("/proc/sys/vm/max_map_count").read_text().strip()
        size = int(status.get("VmSize", "0")) / 1024**3  # kB -> TiB
        held = (
            f"; this process holds {size:.2f} TiB of address space in {mappings} mappings "
            f"(vm.max_map_count {limit}) and {status.get('Threads', '?')} threads"
        )
    except (OSError, ValueError):  # pragma: no cover - no /proc
        held = ""
    return WorkerLoadError(
        f"V8 could not start in this process: STPyV8's platform init raised "
        f"{type(error).__name__}{f': {error}' if str(error) else ''}{held}",
        hint="JavaScript workers cannot run in this process until it restarts: restart it "
        "(under atoll serve, the node); if it happens again, compare what the process held "
        "(above) with its limits (ulimit -v, ulimit -u, vm.max_map_count)",
    )


_failed: WorkerLoadError | None = getattr(sys.modules.get("_STPyV8"), _START_ERROR, None)
if _failed is not None:
    raise WorkerLoadError(_failed.message, hint=_failed.hint)

FLAGS_MUTABLE = "STPyV8" not in sys.modules and "_STPyV8" not in sys.modules
if FLAGS_MUTABLE:
    import _STPyV8

    _STPyV8.JSEngine.setFlags(_INIT_FLAGS)
else:  # pragma: no cover - only when something imported STPyV8 before atoll
    log.warning(
        "STPyV8 was imported before atoll.entries.js: V8 flags are frozen, so JS isolates get "
        "V8's default heap limit (memory_mb is still enforced by the watchdog's checks)"
    )

try:
    import STPyV8  # after the flags above
except Exception as error:  # MemoryError seen under load in CI: STPyV8 starts V8 on import
    failure = _start_failed(error)
    if "_STPyV8" in sys.modules:
        setattr(sys.modules["_STPyV8"], _START_ERROR, failure)
    raise failure from error

_flags_lock = threading.Lock()


_wasm_pages = 0


def cap_wasm_memory(memory_mb: int) -> None:
    """Let no wasm memory grow past the largest ``memory_mb`` of the JS workers loaded so far.

    ``--wasm-max-mem-pages`` is process-wide: a ``memory.grow`` past it returns -1 at once
    (instead of the watchdog stopping the request after the fact).
    """
    global _wasm_pages
    pages = memory_mb * 16
    if pages > _wasm_pages and set_flags(f"--wasm-max-mem-pages={pages}"):
        _wasm_pages = pages


def set_flags(flags: str) -> bool:
    """Set V8 flags now (process-wide). False (and nothing set) when flags are frozen."""
    if not FLAGS_MUTABLE:
        return False
    with _flags_lock:
        STPyV8.JSEngine.setFlags(flags)
    return True


class _HeapStatistics(ctypes.Structure):
    # v8::HeapStatistics of V8 13.1 (include/v8-statistics.h), padded generously.
    _fields_ = [
        ("total_heap_size", ctypes.c_size_t),
        ("total_heap_size_executable", ctypes.c_size_t),
        ("total_physical_size", ctypes.c_size_t),
        ("total_available_size", ctypes.c_size_t),
        ("used_heap_size", ctypes.c_size_t),
        ("heap_size_limit", ctypes.c_size_t),
        ("malloced_memory", ctypes.c_size_t),
        ("external_memory", ctypes.c_size_t),
        ("peak_malloced_memory", ctypes.c_size_t),
        ("number_of_native_contexts", ctypes.c_size_t),
        ("number_of_detached_contexts", ctypes.c_size_t),
        ("total_global_handles_size", ctypes.c_size_t),
        ("used_global_handles_size", ctypes.c_size_t),
        ("does_zap_garbage", ctypes.c_bool),
        ("_spare", ctypes.c_char * 128),
    ]


_NEAR_HEAP_LIMIT = ctypes.CFUNCTYPE(
    ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t
)
_INTERRUPT = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)


class V8Api:
    """The V8 functions STPyV8 does not wrap, bound from its extension's exported symbols."""

    def __init__(self) -> None:
        lib = ctypes.CDLL(_STPyV8_file())
        self.get_current = lib._ZN2v87Isolate10GetCurrentEv
        self.get_current.restype = ctypes.c_void_p
        self.get_current.argtypes = []
        self.terminate = lib._ZN2v87Isolate18TerminateExecutionEv
        self.terminate.argtypes = [ctypes.c_void_p]
        self.terminate.restype = None
        self.cancel_terminate = lib._ZN2v87Isolate24CancelTerminateExecutionEv
        self.cancel_terminate.argtypes = [ctypes.c_void_p]
        self.cancel_terminate.restype = None
        self.heap_stats = lib._ZN2v87Isolate17GetHeapStatisticsEPNS_14HeapStatisticsE
        self.heap_stats.argtypes = [ctypes.c_void_p, ctypes.POINTER(_HeapStatistics)]
        self.heap_stats.restype = None
        self.request_interrupt = lib._ZN2v87Isolate16RequestInterruptEPFvPS0_PvES2_
        self.request_interrupt.argtypes = [ctypes.c_void_p, _INTERRUPT, ctypes.c_void_p]
        self.request_interrupt.restype = None
        self.add_near_heap_limit = lib._ZN2v87Isolate24AddNearHeapLimitCallbackEPFmPvmmES1_
        self.add_near_heap_limit.argtypes = [ctypes.c_void_p, _NEAR_HEAP_LIMIT, ctypes.c_void_p]
        self.add_near_heap_limit.restype = None
        self.low_memory = lib._ZN2v87Isolate21LowMemoryNotificationEv
        self.low_memory.argtypes = [ctypes.c_void_p]
        self.low_memory.restype = None

    def memory(self, isolate: int, stats: _HeapStatistics | None = None) -> tuple[int, int]:
        """(JS heap in use, external memory) of ``isolate``. Call on the isolate's thread;
        ``stats`` is a structure of that thread's to fill (a new one if None)."""
        if stats is None:
            stats = _HeapStatistics()
        self.heap_stats(isolate, ctypes.byref(stats))
        return stats.used_heap_size, stats.external_memory


def _STPyV8_file() -> str:
    module: Any = sys.modules["_STPyV8"]
    return str(module.__file__)


api = V8Api()


class Guarded:
    """One isolate's watch state: what it may use, and why it was stopped (if it was).

    Created once per isolate; :meth:`Watchdog.begin`/``end`` bracket every call
    into it (they run on the isolate's thread).
    """

    __slots__ = (
        "_near_cb",
        "clock",
        "deadline_ns",
        "isolate",
        "killed",
        "memory_budget",
        "running",
        "started_ns",
        "stats",
        "stats_at",
    )

    def __init__(self, isolate: int, memory_budget: int) -> None:
        self.isolate = isolate
        self.memory_budget = memory_budget
        self.clock = time.pthread_getcpuclockid(threading.get_ident())
        self.deadline_ns = 0
        self.started_ns = 0
        self.running = False
        #: "cpu" or "memory" once the watchdog (or the heap callback) stopped a call.
        self.killed: str | None = None
        #: Filled by :func:`over_budget` (on the isolate's thread only: one per isolate).
        self.stats = _HeapStatistics()
        self.stats_at = ctypes.pointer(self.stats)

        def near_heap_limit(_data: int | None, current: int, _initial: int) -> int:
            # On the JS thread, inside V8's GC: end the request, give the heap room to unwind.
            # Only a watched call (a script run) may be terminated; outside one the isolate is
            # marked and replaced after the call.
            self.killed = self.killed or "memory"
            if self.running:
                api.terminate(self.isolate)
            return current + 64 * 1024 * 1024

        self._near_cb = _NEAR_HEAP_LIMIT(near_heap_limit)
        api.add_near_heap_limit(isolate, self._near_cb, None)


class Watchdog:
    """One thread per process that stops JS calls past their CPU or memory budget.

    Every ``TICK_S`` it looks at the isolates it watches (:meth:`watch`, once
    per isolate) for a call in flight: a call whose thread CPU clock passed
    its deadline is terminated (``exceeded_cpu``); every call is asked,
    through a V8 interrupt run on its own thread, for its heap and external
    memory, and terminated past ``memory_mb`` (``exceeded_memory``).
    """

    TICK_S = 0.002
    TICK_NS = 2_000_000

    def __init__(self) -> None:
        self._active: dict[int, Guarded] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._interrupt = _INTERRUPT(self._check_memory)

    def watch(self, guarded: Guarded) -> None:
        """Watch ``guarded``'s isolate from now on (once, when it is made), until :meth:`forget`."""
        with self._lock:
            self._active[guarded.isolate] = guarded
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="atoll-js-watchdog", daemon=True
                )
                self._thread.start()

    def forget(self, guarded: Guarded) -> None:
        """Stop watching ``guarded``'s isolate (it is being disposed of; no call runs in it)."""
        with self._lock:
            if self._active.get(guarded.isolate) is guarded:
                del self._active[guarded.isolate]

    @staticmethod
    def begin(guarded: Guarded, cpu_left_ns: int, now_ns: int) -> None:
        """Arm the watch for one call on ``guarded``'s isolate (on its thread; once per call).

        ``now_ns`` is the thread's CPU time (``time.thread_time_ns()``: the clock the
        watchdog reads through ``guarded.clock``). ``running`` is set last: the watchdog
        reads the deadline only of a call it sees running.
        """
        guarded.started_ns = now_ns
        guarded.deadline_ns = now_ns + max(cpu_left_ns, 0)
        guarded.running = True

    def end(self, guarded: Guarded) -> None:
        """Disarm it (the call returned, normally or terminated). Under the lock: a tick
        that found the call past its deadline terminates it before this returns, never
        after (a termination outside a call would stop the isolate's next one)."""
        with self._lock:
            guarded.running = False

    def _run(self) -> None:
        while True:
            time.sleep(self.TICK_S)
            with self._lock:
                active = list(self._active.values())
                for guarded in active:
                    if not guarded.running or guarded.killed:
                        continue
                    try:
                        now = time.clock_gettime_ns(guarded.clock)
                    except OSError:  # pragma: no cover - the thread is gone
                        continue
                    if now >= guarded.deadline_ns:
                        guarded.killed = "cpu"
                        api.terminate(guarded.isolate)
                    elif now - guarded.started_ns >= self.TICK_NS:
                        # A call past a tick: have it report its memory. (Shorter calls are
                        # checked by JsIsolate after each request, without an interrupt.)
                        api.request_interrupt(guarded.isolate, self._interrupt, None)

    def _check_memory(self, isolate: int | None, _data: int | None) -> None:
        # Runs on the JS thread, between two bytecodes of the call being watched.
        guarded = self._active.get(isolate or 0)
        if guarded is None or guarded.killed or not guarded.running:
            return
        if over_budget(guarded):
            guarded.killed = "memory"
            api.terminate(guarded.isolate)


def over_budget(guarded: Guarded) -> bool:
    """True when the isolate holds more than its budget (JS heap + ArrayBuffers + wasm).

    On the isolate's thread only. Garbage counts until collected: collected once
    before the isolate is blamed.
    """
    stats = guarded.stats
    api.heap_stats(guarded.isolate, guarded.stats_at)  # api.memory's call, once per request
    if stats.used_heap_size + stats.external_memory <= guarded.memory_budget:
        return False
    api.low_memory(guarded.isolate)
    heap, external = api.memory(guarded.isolate, guarded.stats)
    return heap + external > guarded.memory_budget


watchdog = Watchdog()
