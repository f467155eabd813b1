"""Request bodies: read when the worker asks, bounded per request and per process.

A worker reads its request's body whole (``await request.body()``), so every
body being read or held costs its size in memory until the request ends. Two
bounds keep a node serving:

- per request, the worker's ``request_body_mb`` (413): checked on the declared
  ``Content-Length`` before the worker runs (``http/app.py``), and counted
  while a body without one is read;
- per process, :class:`BodyBudget` (503): the bytes of every body being read
  or held by a request in flight, summed over the process's event loops. A
  body that would take the sum over the budget is refused *before* its bytes
  are kept — at once when its ``Content-Length`` says it cannot fit, else at
  the chunk that crosses — and a refused request gives back what it held.
  Bytes are counted as they arrive, not as declared: a client that declares
  a large body and sends it slowly holds only what it sent.

A body must keep coming: :data:`BODY_TIMEOUT` seconds without a byte end the
request with 408 (a client that trickles a body cannot hold a request forever).

Memory is given back when the request ends (its response sent, its log line
written), not when the worker drops the bytes: the request object holds them
until then.

A body is handed to the worker exactly as the client sent it, or not at all: a
client that closes its connection before the end of its body ends the request
with 400 (the worker never sees a truncated body).

Assembling a large body never holds the GIL for long. Copying tens of MiB in one
call (``b"".join`` of the chunks, ``bytes(bytearray)``) holds the GIL for
milliseconds — the first touch of fresh pages costs more than the copy — and
every event loop of the process, whatever it serves, waits for it. So a body of
:data:`PRESIZE_BYTES` or more is written, chunk by chunk as it arrives, into
one ``bytes`` object allocated at its declared ``Content-Length`` and handed to
the worker as it is (no final copy; one of :data:`REAP_BYTES` or more is a buffer
of :class:`BodyBudget`'s pool, reused once nothing holds it); one without a
``Content-Length`` (chunked) is kept as its chunks and copied into one ``bytes``
at the end, in pieces of at most :data:`COPY_SLICE` bytes with the loop free
between them.
"""

from __future__ import annotations

import _thread
import asyncio
import atexit
import contextlib
import functools
import os
import queue
import sys
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

from atoll.errors import BodyTooLargeError, RequestError

try:
    from atoll.runtime._native import Budget as NativeBudget
    from atoll.runtime._native import Pool as _NativePool
    from atoll.runtime._native import Reaper as _NativeReaper
except ImportError:  # pragma: no cover - a source tree without its build: a lock and an int
    NativeBudget = None  # type: ignore[assignment,misc]
    _NativePool = None  # type: ignore[assignment,misc]
    _NativeReaper = None  # type: ignore[assignment,misc]

if TYPE_CHECKING:
    from atoll.api.request import Request

__all__ = [
    "ATTACH_KEY",
    "DEFAULT_BODY_MEMORY",
    "Attach",
    "BodyBudget",
    "BodyReader",
    "BodySink",
    "leave_idle_priority",
]

MIB = 1024 * 1024
#: Default bytes of request bodies one process holds at once.
DEFAULT_BODY_MEMORY = 256 * MIB
#: Seconds a request body may go without a byte before the request ends with 408.
BODY_TIMEOUT = 30.0
#: Bodies at least this large are assembled without one big copy (module docstring).
PRESIZE_BYTES = 1 * MIB
#: Bytes copied at most between two turns of the event loop while assembling a body.
COPY_SLICE = 1 * MIB
#: Size of the pieces a large body without a ``Content-Length`` is kept in.
SEGMENT_BYTES = 4 * MIB
#: Bodies at least this large are freed off the loop once their request ends
#: (:meth:`BodyReader.dispose`).
REAP_BYTES = 8 * MIB
#: Seconds a pooled body buffer stays unused before its pages go back to the kernel
#: (:class:`BodyBudget`'s pool).
POOL_IDLE = 2.0
#: What is left of a declared body for the server to read it on a thread of its own,
#: straight into the body's bytes (``http/protocol.py``), instead of on its loop.
DIRECT_BYTES = 4 * MIB

Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]


class BodyBudget:
    """Bytes of request bodies held by one process. Thread-safe: shared by its event loops,
    and by the native threads that read large bodies (``http/protocol.py``).

    Created once per process (one per :class:`~atoll.http.app.AtollApp`). The count
    is :attr:`counter`: a native one (atomics, usable without the GIL) when the C
    extension is built, else a lock and an int.

    :attr:`pool` (with the C extension, on Linux) reuses the memory of bodies of
    :data:`REAP_BYTES` or more: a body's buffer, once nothing holds it, is handed to
    the next large body instead of being freed, so that its pages are not faulted in,
    zeroed and freed again for each body (``_native.Pool``). It holds at most
    ``limit`` bytes of buffers, and the pages of one unused for :data:`POOL_IDLE`
    seconds go back to the kernel.
    """

    def __init__(self, limit: int = DEFAULT_BODY_MEMORY) -> None:
        if limit < 1:
            raise ValueError(f"the body memory budget must be positive, got {limit}")
        self.limit = limit
        self.refused = 0
        self.counter: _Counter | NativeBudget = (
            _Counter(limit) if NativeBudget is None else NativeBudget(limit)
        )
        self.pool = (
            None
            if _NativePool is None or _NATIVE_REAPER is None
            else _NativePool(limit, int(POOL_IDLE * 1e9), _NATIVE_REAPER)
        )
        self._trimming = False  # a trim() is scheduled on a loop

    def pooled(self) -> None:
        """On a loop, when a pooled body was let go: notes it free, and makes sure its
        pages go back once it has been unused for :data:`POOL_IDLE` seconds."""
        if self.pool is None:
            return
        self.pool.sweep()
        if not self._trimming:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # not on a loop: the next body's end arms it
                return
            self._trimming = True
            loop.call_later(POOL_IDLE, self._trim)

    def _trim(self) -> None:
        self._trimming = False
        if self.pool is not None and self.pool.trim():  # some not unused long enough yet
            self._trimming = True
            asyncio.get_running_loop().call_later(POOL_IDLE / 2, self._trim)

    @property
    def used(self) -> int:
        """Bytes reserved now."""
        return self.counter.used

    def fits(self, size: int) -> bool:
        """Whether ``size`` more bytes would fit now (nothing is reserved)."""
        return self.counter.used + size <= self.limit

    def take(self, size: int) -> bool:
        """Reserve ``size`` bytes; False (nothing reserved) if that would pass the budget."""
        return self.counter.take(size)

    def give(self, size: int) -> None:
        """Return ``size`` bytes reserved by :meth:`take`."""
        self.counter.give(size)


class _Counter:
    """The budget's count without the C extension (what ``_native.Budget`` does with atomics)."""

    __slots__ = ("_lock", "limit", "used")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._lock = threading.Lock()

    def take(self, size: int) -> bool:
        with self._lock:
            if self.used + size > self.limit:
                return False
            self.used += size
            return True

    def give(self, size: int) -> None:
        with self._lock:
            self.used -= size


#: ``attach(receive, sink)``: the server's offer to hand a request's body bytes to
#: ``sink`` as they arrive (``http/protocol.py``); the ASGI scope holds it under
#: :data:`ATTACH_KEY`. True if it will; ``attach(receive, None)`` stops it.
Attach = Callable[[Receive, "BodySink | None"], bool]
ATTACH_KEY = "atoll.body"


class BodyReader:
    """Reads one request's body from ASGI ``receive``, within ``limit`` and the ``budget``.

    One per request; :meth:`release` (idempotent) is called when the request ends.
    ``attach`` (the scope's :data:`ATTACH_KEY`, if the server offers it) lets the
    body's bytes go straight from the connection into a :class:`BodySink`.
    """

    __slots__ = ("attach", "budget", "declared", "held", "large", "limit", "receive", "timeout")

    def __init__(
        self,
        receive: Receive,
        limit: int,
        budget: BodyBudget,
        declared: int | None,
        *,
        timeout: float = BODY_TIMEOUT,
        attach: Attach | None = None,
    ) -> None:
        self.receive = receive
        self.limit = limit
        self.budget = budget
        self.declared = declared
        self.timeout = timeout
        self.attach = attach
        self.held = 0
        self.large: bytes | None = None  # a body of REAP_BYTES or more it returned

    def _refuse(self) -> RequestError:
        self.release()
        self.budget.refused += 1
        return RequestError(
            f"the node holds {self.budget.limit // MIB} MiB of request bodies, its limit; "
            "this body was refused before it was read",
            status=503,
            hint="retry later, or raise --body-memory-mb",
        )

    async def __call__(self) -> bytes:
        """The whole body. Raises :class:`~atoll.errors.BodyTooLargeError` (413) past
        ``limit``, :class:`~atoll.errors.RequestError` 503 past the budget, 408
        when the body stops coming for ``timeout`` seconds and 400 when the client
        closes its connection before the end of its body."""
        declared = self.declared
        if declared is not None and not self.budget.fits(declared):
            raise self._refuse()  # before a byte is read
        sink = BodySink(self)
        attach = self.attach
        attached = attach is not None and attach(self.receive, sink)
        whole = False
        try:
            while True:
                # An attached sink takes bytes without waking this task: the wait
                # is for the end of the body, or for timeout seconds without a byte.
                wait = self.timeout - (time.monotonic() - sink.last_byte())
                try:
                    async with asyncio.timeout(max(wait, 0.0)):
                        message = await self.receive()
                except TimeoutError:
                    if time.monotonic() - sink.last_byte() < self.timeout:
                        continue
                    self.release()
                    raise RequestError(
                        f"the request body stopped coming ({self.timeout:g} s without a byte)",
                        status=408,
                        hint="send the body as fast as the network allows",
                    ) from None
                if message["type"] == "http.disconnect":
                    self.release()
                    raise RequestError(
                        f"the client closed the connection after {sink.size} bytes of its body"
                        + (f" (of {declared} declared)" if declared is not None else ""),
                        hint="the client must send the whole body before it stops",
                    )
                chunk = message.get("body", b"")
                if chunk:
                    sink.feed(chunk)
                if sink.error is not None:
                    raise sink.error
                if not message.get("more_body", False):
                    break
            whole = True
        finally:
            if attached and attach is not None:
                attach(self.receive, None)
            if not whole:
                sink.drop()
        body = await sink.body()
        if len(body) >= REAP_BYTES and _REAP:
            self.large = body
        return body

    def release(self) -> None:
        """Give back what this body held (once the request is over). A body large
        enough for a buffer of the pool also starts the pool's trim: one cut short (the
        client gone, a limit) lets its buffer go without :meth:`dispose`, and that
        buffer's pages must go back after :data:`POOL_IDLE` all the same."""
        if self.held:
            self.budget.give(self.held)
            self.held = 0
        if self.large is None and (self.declared or 0) >= REAP_BYTES:
            self.budget.pooled()

    def dispose(self, request: Request) -> None:
        """At the very end of ``request`` (its response sent, its ``wait_until`` work
        done): if a large body it returned is held by nothing but ``request``, take it
        from the request: a buffer of the budget's pool goes back to the pool (the next
        large body is written into it), any other has its pages freed on a thread of its
        own, without the GIL (freeing 48 MiB holds the GIL and the loop for
        milliseconds): :func:`_reaper`. The request's body cannot be read after this
        (:class:`~atoll.errors.RequestError`)."""
        body, self.large = self.large, None
        if body is None or not request._body_is(body):
            return
        # Its references: ``body`` here, getrefcount's argument, the request's (and
        # the pool's, if the body is one of its buffers: then it is reused, not freed).
        pool = self.budget.pool
        pooled = pool is not None and pool.owns(body)
        if sys.getrefcount(body) != 3 + pooled:
            return
        request._forget_body(_gone)
        if pooled:
            del body  # the pool's is the last reference: the buffer is free
            self.budget.pooled()
            return
        # If the Python reaper's thread cannot be made, ``body`` is freed here, on the
        # calling thread (the native reaper does that itself).
        with contextlib.suppress(OSError, RuntimeError):
            _reaper().put(body)


class BodySink:
    """Where one request's body bytes go as they arrive: counted against the limit
    and the budget, and kept (see the module docstring for how).

    Made by :meth:`BodyReader.__call__`; :meth:`feed` runs for each chunk, either
    from that call or, when the server attached the sink, from the connection's
    ``data_received`` (without waking the request's task).
    """

    __slots__ = (
        "chunks",
        "error",
        "fill",
        "last",
        "progress",
        "reader",
        "room",
        "segments",
        "size",
        "used",
    )

    def __init__(self, reader: BodyReader) -> None:
        self.reader = reader
        self.size = 0
        self.last = time.monotonic()
        #: While a thread reads the body straight into its bytes (``http/protocol.py``):
        #: when it last read a byte (``time.monotonic()``).
        self.progress: Callable[[], float] | None = None
        #: Why the body was refused (the reader raises it); bytes fed after it are dropped.
        self.error: RequestError | None = None
        self.chunks: list[bytes] = []  # a small body, or the first bytes of a large one
        self.segments: list[_Unfilled | None] = []  # the rest of a large one (chunked)
        self.used = 0  # bytes in the last segment
        declared = reader.declared
        # A large declared body goes straight into its final bytes object; any
        # other is kept as its chunks and joined at the end.
        self.fill: _Unfilled | None = None
        self.room = 0
        if _PRESIZE and declared is not None and PRESIZE_BYTES <= declared <= reader.limit:
            self.fill = _Unfilled(declared, reader.budget.pool)
            self.room = declared

    def feed(self, chunk: bytes) -> bool:
        """Count and keep ``chunk``. Never raises: True when the body has just been
        refused (:attr:`error` says why), so that the reader is woken to raise it."""
        if self.error is not None:
            return False
        reader = self.reader
        start = self.size
        size = self.size = start + len(chunk)
        self.last = time.monotonic()
        if size > reader.limit:
            reader.release()
            self.error = BodyTooLargeError(
                f"request body is over the limit of {reader.limit // MIB} MiB "
                "(refused while reading)"
            )
            return True
        if size > reader.held:
            if not reader.budget.take(size - reader.held):
                self.error = reader._refuse()
                return True
            reader.held = size
        fill = self.fill
        if fill is None:
            if size <= PRESIZE_BYTES or not _PRESIZE:
                self.chunks.append(chunk)
            else:
                self._spill(chunk)
        elif size <= self.room:
            fill.write(start, chunk)
        else:  # the HTTP parser frames bodies by Content-Length: never happens
            reader.release()
            self.error = RequestError(
                f"the request body is over its Content-Length {reader.declared}"
            )
            return True
        return False

    def last_byte(self) -> float:
        """When the last byte of the body came (``time.monotonic()``)."""
        progress = self.progress
        return self.last if progress is None else max(self.last, progress())

    def direct_into(self) -> tuple[bytes, int] | None:
        """The presized ``bytes`` of a body kept in one (declared, not refused) and how
        much of it is written, if at least :data:`DIRECT_BYTES` are still to come; else
        None. The server may read the rest of the body straight into it on a native
        thread (``http/protocol.py``), then call :meth:`add_direct`."""
        fill = self.fill
        if fill is None or self.error is not None or self.room - self.size < DIRECT_BYTES:
            return None
        return fill.out, self.size

    def direct_target(self) -> memoryview | None:
        """A writable view of what is still to come of a body kept in one presized
        ``bytes`` (declared, not refused), if at least :data:`DIRECT_BYTES`; else None.
        The server may read the rest of the body straight into it
        (``http/protocol.py``), then call :meth:`add_direct`."""
        fill = self.fill
        if fill is None or self.error is not None or self.room - self.size < DIRECT_BYTES:
            return None
        return fill.view(self.size, self.room)

    def add_direct(self, size: int, taken: int) -> None:
        """``size`` bytes were written into :meth:`direct_target`, ``taken`` of them
        already taken from the budget (on the reading thread)."""
        self.size += size
        self.reader.held += taken
        self.last = time.monotonic()

    def drop(self) -> None:
        """Let go of what was kept of a body that will never be whole (refused, cut
        short, timed out): the error raised for it keeps this sink alive through its
        traceback's frames, in a reference cycle, until the garbage collector runs, and
        the body's memory must not wait for that (a pool buffer would stay taken, its
        pages in memory). A thread still reading into the bytes holds them itself."""
        self.fill = None
        self.room = 0
        self.chunks = []
        self.segments = []

    def _spill(self, chunk: bytes) -> None:
        at, n = 0, len(chunk)
        segments = self.segments
        while at < n:
            segment = segments[-1] if segments else None
            if segment is None or self.used == SEGMENT_BYTES:
                segment = _Unfilled(SEGMENT_BYTES)
                segments.append(segment)
                self.used = 0
            copied = segment.write(self.used, chunk, at, at + SEGMENT_BYTES - self.used)
            self.used += copied
            at += copied

    async def body(self) -> bytes:
        """The whole body, once its last chunk has been fed."""
        if self.fill is not None:
            if self.size != self.room:
                self.reader.release()
                self.drop()
                raise RequestError(
                    f"the request body ended after {self.size} bytes; "
                    f"its Content-Length said {self.room}"
                )
            return self.fill.out
        if not self.segments:
            return b"".join(self.chunks)
        # One bytes of the whole size, copied from the chunks and the segments with
        # the loop free every COPY_SLICE bytes; each segment is freed once copied.
        out = _Unfilled(self.size, self.reader.budget.pool)
        at = 0
        for chunk in self.chunks:
            at += out.write(at, chunk)
        self.chunks.clear()
        segments, last = self.segments, len(self.segments) - 1
        for i, segment in enumerate(segments):
            assert segment is not None
            end = self.used if i == last else SEGMENT_BYTES
            for piece in range(0, end, COPY_SLICE):
                at += out.write(at, segment.out, piece, min(piece + COPY_SLICE, end))
                await asyncio.sleep(0)
            segments[i] = segment = None
        segments.clear()
        return out.out


#: Whether :class:`_Unfilled` can be made (it needs CPython's C API); elsewhere
#: bodies are joined whole.
_PRESIZE = sys.implementation.name == "cpython"


class _Unfilled:
    """A new ``bytes`` of ``size`` (> 1) bytes, filled by :meth:`write` before anyone sees it.

    What C code does with ``PyBytes_FromStringAndSize(NULL, size)``: the memory
    is allocated but not touched (no zeroing); or, given a ``pool`` and a size of
    :data:`REAP_BYTES` or more, the pool's (:class:`BodyBudget`). Each write is a ``memmove`` that
    releases the GIL: the first touch of a fresh page (the kernel zeroes it)
    costs more than the copy, and it must not keep the other event loops of the
    process waiting. ``out`` is given out only once written whole (to everyone
    else bytes are immutable). CPython only.
    """

    __slots__ = ("_address", "out")

    def __init__(self, size: int, pool: _NativePool | None = None) -> None:
        new, address, _memmove, _view = _capi()
        # a large one from the pool (a buffer of an earlier body, or a new one)
        self.out: bytes = new(None, size) if pool is None or size < REAP_BYTES else pool.take(size)
        self._address: int = address(self.out)

    def view(self, start: int, end: int) -> memoryview:
        """A writable view of ``out[start:end]`` (valid while ``out`` lives)."""
        view: memoryview = _capi()[3](self._address + start, end - start, 0x200)  # PyBUF_WRITE
        return view

    def write(self, at: int, data: bytes, start: int = 0, end: int | None = None) -> int:
        """Copy ``data[start:end]`` to ``out[at:]`` (the caller keeps within ``len(out)``);
        returns how many bytes it copied."""
        n = (len(data) if end is None else min(end, len(data))) - start
        _new, address, memmove, _view = _capi()
        memmove(self._address + at, data if start == 0 else address(data) + start, n)
        return n


@functools.cache
def _capi() -> tuple[Any, Any, Any, Any]:
    """CPython's ``PyBytes_FromStringAndSize`` and ``PyBytes_AsString``, a ``memmove``
    called without the GIL, and ``PyMemoryView_FromMemory`` (looked up on the first
    large body)."""
    import ctypes

    api = ctypes.pythonapi
    new = api.PyBytes_FromStringAndSize
    new.restype = ctypes.py_object
    new.argtypes = [ctypes.c_void_p, ctypes.c_ssize_t]
    address = api.PyBytes_AsString
    address.restype = ctypes.c_void_p
    address.argtypes = [ctypes.py_object]
    view = api.PyMemoryView_FromMemory
    view.restype = ctypes.py_object
    view.argtypes = [ctypes.c_void_p, ctypes.c_ssize_t, ctypes.c_int]
    # ctypes.memmove is a CFUNCTYPE function: ctypes releases the GIL around it.
    return new, address, ctypes.memmove, view


#: Whether bodies are freed on the reaper thread (Linux's ``madvise``, CPython).
_REAP = _PRESIZE and sys.platform.startswith("linux")
#: Bodies freed by the Python reaper thread (without the C extension) since the process
#: started; :func:`reaped` counts both.
_reaped = 0


def reaped() -> int:
    """How many large bodies the reaper has given back to the kernel since the process started."""
    return _reaped + (_NATIVE_REAPER.reaped if _NATIVE_REAPER is not None else 0)


async def _gone() -> bytes:
    raise RequestError(
        "this request's body was freed when the request ended (its response sent, "
        "its wait_until work done)",
        hint="read the body while the request runs, and keep the bytes if they are needed later",
    )


def _reaper() -> _NativeReaper | queue.SimpleQueue[bytes]:
    """Where :meth:`BodyReader.dispose` puts a body to free: the native reaper (its
    thread never takes the GIL, and waking it never preempts the loop: it runs at
    ``SCHED_IDLE``), else the queue of a Python thread (started on first use)."""
    return _NATIVE_REAPER if _NATIVE_REAPER is not None else _python_reaper()


@functools.cache
def _python_reaper() -> queue.SimpleQueue[bytes]:
    """The queue of the Python thread that frees large bodies (started on first use)."""
    import ctypes

    work: queue.SimpleQueue[bytes] = queue.SimpleQueue()
    madvise = ctypes.CDLL(None, use_errno=True).madvise
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    madvise.restype = ctypes.c_int
    address = _capi()[1]
    page = os.sysconf("SC_PAGE_SIZE")

    def run() -> None:
        global _reaped
        while True:
            body = work.get()
            # Nothing else holds ``body``: its pages are given back to the kernel
            # (MADV_DONTNEED, ctypes releases the GIL), only those wholly inside its
            # data, never the allocator's headers around them; then it is freed.
            start = address(body)
            first, end = -(-start // page) * page, (start + len(body)) // page * page
            if end > first:
                madvise(first, end - first, 4)  # 4: MADV_DONTNEED
            del body
            _reaped += 1

    _thread.start_new_thread(run, ())  # not Thread.start(): it waits for the thread to run
    return work


#: The native reaper (``runtime/native/bodyread.c``), if the C extension is built.
_NATIVE_REAPER = _NativeReaper() if _NativeReaper is not None and _REAP else None


def leave_idle_priority() -> int:
    """Put every ``SCHED_IDLE`` thread of the process (body readers waiting for a slow
    client's bytes) back to the normal policy, where the process may (root,
    ``CAP_SYS_NICE``, or an ``RLIMIT_NICE`` that allows it); returns how many were.

    Runs at exit (``atexit``), once: the kernel ends a process only once each of its
    threads has run to die, and under full CPU load a ``SCHED_IDLE`` thread can wait
    seconds for that (twenty idle readers delayed an exit by about a second). The
    reaper leaves no idle thread (its thread ends when it has nothing to do)."""
    raised = 0
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return 0
    for name in tasks:
        try:
            tid = int(name)
            if os.sched_getscheduler(tid) == os.SCHED_IDLE:
                os.sched_setscheduler(tid, os.SCHED_OTHER, os.sched_param(0))
                raised += 1
        except (OSError, ValueError):  # gone, or not allowed: it waits for the CPU, as ever
            continue
    return raised


if NativeBudget is not None and hasattr(os, "SCHED_IDLE"):
    atexit.register(leave_idle_priority)
