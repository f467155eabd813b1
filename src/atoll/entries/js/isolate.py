"""One V8 isolate running one worker on one serving thread, and the requests in it.

Created at load, to check the worker (kept as the loading thread's isolate
when that thread runs an event loop, else dropped), and on the first request
any other serving thread gives the worker; reused by every later request of
that worker on that thread, so globals persist between requests as they do in
a warm Workers isolate. Replaced after a limit stopped a call in it (its state
may be half-updated, its heap full) and on reload/deploy (a new worker).

Every entry into JS goes through :meth:`JsIsolate.call` (a request's dispatch
through :meth:`JsIsolate._dispatch`, the same door): enter the isolate, arm the
watchdog with what is left of the request's CPU, run, charge the thread CPU
used (JS, wasm and the host functions it called), leave. V8 runs the microtasks
queued meanwhile before the outermost call returns, so a promise chain advances
inside the call that resolved it and is metered there.

A request crosses into V8 once and back once when its handler answers without
waiting on a timer or subrequest: its head goes in as one string (every value
STPyV8 converts costs thousands of instructions), and the response that settled
while the dispatch drained its microtasks comes back as the return value of
``__atoll_take()`` (a script run, no call out of V8 and into Python); a response
that settles later comes through the ``settle`` host function.

SECURITY: JS reaches the host only through the functions in :meth:`_host`
and :meth:`_core_host`. Each is wrapped, in JS, in a closure that passes only
primitives and is handed to the Web API bundle and the core prelude as an
argument; none stays on ``globalThis``. Python returns only primitives
(str, int, float, bool, None), never an object STPyV8 would wrap.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import chain
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from atoll.api import ExecutionContext, Headers, Request, Response
from atoll.entries.js.bundle import Bundle
from atoll.entries.js.v8 import (
    Guarded,
    STPyV8,
    api,
    cap_wasm_memory,
    over_budget,
    set_flags,
    watchdog,
)
from atoll.errors import (
    AtollError,
    CpuLimitError,
    GuestError,
    KVError,
    MemoryLimitError,
    ScriptError,
    WorkerLoadError,
)
from atoll.manifest import Manifest
from atoll.runtime.invocation import Invocation

if TYPE_CHECKING:
    from atoll.entries.js.sourcemap import SourceMap

__all__ = ["IsolateOwner", "JsIsolate"]


class IsolateOwner(Protocol):
    """What an isolate needs of its worker (``entries.js.JsWorker``; a protocol, so that
    this module and the package that imports it are not an import cycle)."""

    manifest: Manifest
    name: str
    bundle: Bundle
    core_source: str
    webapi_source: str
    webapi_name: str
    modules: dict[str, tuple[str, str]]
    env_json: str
    sourcemap: SourceMap

    def release(self, isolate: JsIsolate) -> None: ...

    async def host_op(
        self, kind: str, args: dict[str, Any], body: str | None
    ) -> tuple[str, str | None]: ...


log = logging.getLogger("atoll.js")
_T = TypeVar("_T")

#: CPU a worker's top-level code may use when an isolate starts (Workers: "startup time").
STARTUP_CPU_MS = 1_000
#: Wall time a request may wait on timers and subrequests before it is ended (500).
REQUEST_WALL_S = 120.0
#: Timers one request may have pending at once (a timer storm past it throws RangeError).
MAX_TIMERS = 10_000
#: Largest delay honoured by setTimeout (as browsers: a 32-bit signed number of ms).
MAX_DELAY_MS = 2_147_483_647

_LEVELS = {"debug", "info", "log", "warn", "error"}
_NEVER = "The script will never generate a response."

_MAKE_HOST = """(function (log, randomBytes, now) {
  "use strict";
  globalThis.__atoll_host = Object.freeze({
    log: (level, text) => { log(String(level), String(text)); },
    randomBytes: (n) => randomBytes(Number(n)),
    now: () => now(),
  });
})"""

_MAKE_CORE_HOST = """(function (op, settle, timer, clearTimer) {
  "use strict";
  globalThis.__atoll_core_host = Object.freeze({
    op: (slot, id, kind, args, body) => { op(slot, id, String(kind), String(args), body === null ? null : String(body)); },
    settle: (slot, kind, text) => { settle(slot, String(kind), text === undefined ? null : String(text)); },
    timer: (slot, id, ms) => { if (!timer(slot, id, ms)) throw new RangeError("too many timers pending in this request"); },
    clearTimer: (id) => { clearTimer(Number(id)); },
  });
})"""


@dataclass(eq=False)
class _Record:
    """One request inside the isolate: its invocation, futures, pending host work."""

    slot: int
    invocation: Invocation
    #: Settles with "response" or "error"; made when the request first waits on it (a request
    #: answered within its dispatch never does), never for the isolate's startup calls (slot 0).
    done: asyncio.Future[str] | None = None
    ops: int = 0
    timers: dict[int, asyncio.TimerHandle] = field(default_factory=dict)
    waited: asyncio.Future[str] | None = None
    finished: bool = False
    #: The core already dropped the request (collect() without waitUntil work).
    collected: bool = False
    #: What the core's collect() gave with the "response"/"error" settle: "E" + the error's
    #: JSON, or "R"/"W" + the response's head (status, then NUL-separated header names and
    #: values) + "\n" + its body.
    text: str | None = None

    def busy(self) -> bool:
        return self.ops > 0 or bool(self.timers)


class JsIsolate:
    """A worker's isolate on the current thread. Use from that thread only."""

    def __init__(self, worker: IsolateOwner) -> None:
        self.worker = worker
        self.broken: str | None = None
        self.disposing = False
        self.records: dict[int, _Record] = {}
        self._next_slot = 1
        self._current: _Record | None = None
        memory = worker.manifest.limits.memory_mb
        with _CREATE_LOCK:
            # Read by V8 when the isolate is created: this isolate's JS heap limit.
            set_flags(f"--max-old-space-size={memory}")
            cap_wasm_memory(memory)
            self.isolate = STPyV8.JSIsolate(True)
        failure: WorkerLoadError | None = None
        self.isolate.enter()
        try:
            self.ptr: int = api.get_current()
            self.context = STPyV8.JSContext()
            self.guard = Guarded(self.ptr, memory * 1024 * 1024)
            watchdog.watch(self.guard)
            self._start()
        except WorkerLoadError as exc:
            # A fresh error: the caught one's traceback holds frames with JS values, which
            # must be freed before the isolate is (when this block ends, not later).
            failure = WorkerLoadError(exc.message, hint=exc.hint)
        finally:
            self.isolate.leave()
        if failure is not None:
            self.dispose()
            raise failure

    # -- start: host, Web APIs, core, modules, env, the worker's code --------------------------

    def _start(self) -> None:
        worker = self.worker
        setup = _Record(0, _startup_invocation(worker))
        self.context.enter()
        try:
            # Never `context.locals.x = …`: STPyV8 builds that wrapper from a template made
            # in the first isolate of the process (a crash in any other). JS sets it instead.
            self.context.eval(_MAKE_HOST, "<host>")(self._log, self._random_bytes, self._now)
            self._eval(setup, worker.webapi_source, worker.webapi_name)
            make_core = self.context.eval(worker.core_source, "atoll:core.js")
            self.context.eval(_MAKE_CORE_HOST, "<host>")(
                self._op, self._settle, self._timer, self._clear_timer
            )
            door = make_core()
            self._post: Any = door[0]
            #: A request's head (and body) are set on it, then ``__atoll_run()`` dispatches them.
            self._door: Any = door[1]
            # A JSScript keeps a reference (not a copy) to the engine that compiled it.
            self._engine: Any = STPyV8.JSEngine()
            self._run: Any = self._engine.compile("__atoll_run()", "<atoll>")
            self._take: Any = self._engine.compile("__atoll_take()", "<atoll>")
            for path, (kind, data) in worker.modules.items():
                self._call(setup, "addModule", path, kind, data)
            self._call(setup, "setEnv", worker.env_json)
            if worker.bundle.is_module:
                self._eval(
                    setup,
                    "globalThis.__atoll_module = async function (__atoll_import) {"
                    f' "use strict";\n{worker.bundle.code}\n}};',
                    worker.manifest.main,
                )
                self._call(setup, "startModule")
                state = self._call(setup, "moduleResult")
                if state == "pending":
                    raise WorkerLoadError(
                        f"{worker.manifest.main}: the worker's top-level code awaits something "
                        "that never settles",
                        hint="top-level await may wait only on things that settle at load "
                        "(wasm instantiation, imports), not on fetch, KV or timers",
                    )
                if state:
                    raise WorkerLoadError(
                        f"{worker.manifest.main}: the worker threw while loading:\n"
                        + "\n".join(map(worker.sourcemap.frame, state.splitlines())),
                        hint="fix the error above; the worker was not loaded",
                    )
            else:
                self._call(setup, "installGlobals")
                self._eval(setup, worker.bundle.code, worker.manifest.main)
                if not self._call(setup, "hasHandler"):
                    raise WorkerLoadError(
                        f"{worker.manifest.main} neither exports a default handler nor adds a "
                        "fetch event listener",
                        hint="write `export default { async fetch(request, env, ctx) { … } }`",
                    )
        except STPyV8.JSError as exc:
            self._load_error(exc)
        except GuestError as exc:
            raise WorkerLoadError(
                f"{worker.manifest.main}: starting the worker failed: {exc.message}",
                hint="the worker's top-level code must finish within "
                f"{STARTUP_CPU_MS} ms of CPU and its memory limit",
            ) from None
        finally:
            self.context.leave()

    def _load_error(self, exc: Any) -> None:
        text = str(getattr(exc, "stack", None) or exc)
        text = "\n".join(map(self.worker.sourcemap.frame, text.splitlines()))
        raise WorkerLoadError(
            f"{self.worker.manifest.main}: the worker threw while loading:\n{text}",
            hint="fix the error above; the worker was not loaded",
        )

    def _eval(self, record: _Record, source: str, name: str) -> Any:
        return self._metered(record, self.context.eval, source, name)

    # -- the one door into JS --------------------------------------------------------------------

    def call(self, record: _Record, name: str, *args: Any) -> Any:
        """Run the core's ``name(*args)`` in the isolate for ``record``'s request, under its limits.

        Raises :class:`CpuLimitError` / :class:`MemoryLimitError` when the
        watchdog stopped it (the isolate is then broken: the worker replaces
        it), :class:`ScriptError` when it threw synchronously.
        """
        return self._inside(self._call, record, name, *args)

    def _inside(self, fn: Callable[..., _T], *args: Any) -> _T:
        """``fn(*args)`` with the isolate and its context entered (every way into JS goes
        through here): a JS exception comes out as :class:`ScriptError`."""
        if self.broken:
            raise _reset_error(self.worker, self.broken)
        self.isolate.enter()
        self.context.enter()
        failure: ScriptError | None = None
        try:
            return fn(*args)
        except STPyV8.JSError as exc:
            # Raised outside this block: a JSError holds V8 handles, and must not stay
            # reachable (as __context__) from an error that outlives the isolate.
            failure = _script_error(exc, self.worker.sourcemap)
        finally:
            self.context.leave()
            self.isolate.leave()
        raise failure

    def _call(self, record: _Record, name: str, *args: Any) -> Any:
        """Post the call (a function call that only stores its arguments), run it metered."""
        self._post(name, *args)
        return self._metered(record, self._run.run)

    def _metered(self, record: _Record, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn(*args)`` (a script run or eval: what V8 may terminate) under the watchdog."""
        invocation = record.invocation
        left = invocation.cpu_budget_ns - invocation.cpu_used_ns
        if left <= 0:
            raise _cpu_error(self.worker, invocation)
        previous, self._current = self._current, record
        start = time.thread_time_ns()
        watchdog.begin(self.guard, left, start)
        try:
            result = fn(*args)
        finally:
            invocation.cpu_used_ns += time.thread_time_ns() - start
            watchdog.end(self.guard)
            self._current = previous
            killed = self.guard.killed
            if killed:
                api.cancel_terminate(self.ptr)
                self.broken = killed
        if killed:
            # No JS value may stay referenced by this frame (the error's traceback keeps it).
            del fn, args, result
            raise (
                _cpu_error(self.worker, invocation)
                if killed == "cpu"
                else _memory_error(self.worker, invocation)
            )
        return result

    # -- requests ---------------------------------------------------------------------------------

    async def serve(
        self, request: Request, ctx: ExecutionContext, invocation: Invocation
    ) -> Response:
        """Run one request's fetch handler to its response.

        Raises :class:`GuestError` when a limit stopped it (then every other request in
        this isolate fails with it too: the isolate is broken and replaced).
        """
        body = await request.bytes()
        slot = self._next_slot
        self._next_slot = slot + 1
        record = self.records[slot] = _Record(slot, invocation)
        keep = False
        try:
            # One string for the head (see core.js dispatch): NUL cannot occur in a method, a
            # header name or value (the server refuses it), nor in a URL the server parsed; a
            # request made in Python (a service binding's) is checked.
            pairs = request.headers.items()
            head = "\0".join([str(slot), request.method, request.url, *chain.from_iterable(pairs)])
            if head.count("\0") != 2 + 2 * len(pairs):
                raise ScriptError(
                    f"worker {self.worker.name}: the request's URL or headers hold a NUL character",
                    hint="NUL is not allowed in a URL or a header",
                )
            text = self._inside(
                self._dispatch_in, record, head, body.decode("latin-1") if body else ""
            )
            if text is not None:
                # Answered within the dispatch ("R" or "E": a "W" comes through settle).
                record.text = text
            else:
                done = self._done(record)
                self._check_stuck(record)
                if not done.done():
                    try:
                        await asyncio.wait_for(asyncio.shield(done), REQUEST_WALL_S)
                    except TimeoutError:
                        raise ScriptError(
                            f"worker {self.worker.name}: no response after {REQUEST_WALL_S:.0f} s",
                            hint="a timer or subrequest kept the request waiting",
                        ) from None
                done.result()  # raises what ended the request meanwhile (a limit, a reset)
                text = record.text
                assert text is not None  # set with the settle that resolved `done`
            if text[0] == "E":
                record.collected = True
                record.waited = None
                raise _thrown(text[1:], self.worker.sourcemap)
            response = self._response(text)
            record.collected = True
            if text[0] == "W":
                ctx.wait_until(self._after(record))
                keep = True
            else:
                record.waited = None
            return response
        except GuestError as exc:
            if self.broken:
                self.records.pop(slot, None)  # this request ends with exc itself
                self.fail_all(exc)
            raise
        finally:
            if not keep:
                self._finish(record)

    def _dispatch_in(self, record: _Record, head: str, body: str) -> str | None:
        """Run the core's ``dispatch(head, body)`` (through :meth:`_inside`, as :meth:`call`
        does) and take what it settled with meanwhile: the response text, or None while it
        is still pending."""
        # No local holds the door: a frame kept by the error of a stopped call would keep it
        # past the isolate's disposal (a JS value must be freed before its isolate).
        if body:
            self._door.body = body
        self._door.head = head
        try:
            self._metered(record, self._run.run)
        except BaseException:
            # The run clears both as it starts; one that never began must not leave them.
            if not self.broken:
                self._door.head = None
                self._door.body = ""
            raise
        text: str | None = self._take.run()
        return text

    def _response(self, text: str) -> Response:
        """The :class:`Response` of a response text ("R"/"W" + head + "\\n" + body)."""
        head, _, out = text.partition("\n")
        fields = head.split("\0")
        status = int(fields[0][1:])
        if status == 0:
            raise ScriptError(
                f"worker {self.worker.name}: fetch() answered with Response.error()",
                hint="a network error response cannot be sent; return a Response with a status",
            )
        # Built field by field: the status is one JS's Response accepted (200-599, or 101),
        # the names and values are as the worker's Headers checked them.
        response = Response.__new__(Response)
        response.status = status
        response.body = out.encode("latin-1")
        response.headers = Headers.from_checked(zip(fields[1::2], fields[2::2], strict=False))
        return response

    def _open(self, invocation: Invocation) -> _Record:
        """A new request's record in a fresh slot."""
        slot = self._next_slot
        self._next_slot += 1
        record = _Record(slot, invocation)
        self.records[slot] = record
        return record

    @staticmethod
    def _done(record: _Record) -> asyncio.Future[str]:
        """The future ``record``'s settle resolves (made on first use, on the serving loop)."""
        done = record.done
        if done is None:
            done = record.done = asyncio.get_running_loop().create_future()
        return done

    async def run_scheduled(
        self, cron: str, scheduled_time_ms: int, ctx: ExecutionContext, invocation: Invocation
    ) -> None:
        """Run one cron trigger's ``scheduled(controller, env, ctx)`` (or the service worker's
        ``"scheduled"`` listeners) to its end; its ``waitUntil`` work goes to ``ctx``."""
        record = self._open(invocation)
        slot = record.slot
        keep = False
        try:
            # A float: STPyV8 passes a Python int as a 32-bit integer.
            self.call(record, "dispatchScheduled", slot, cron, float(scheduled_time_ms))
            done = self._done(record)
            self._check_stuck(record)
            if not done.done():
                try:
                    await asyncio.wait_for(asyncio.shield(done), REQUEST_WALL_S)
                except TimeoutError:
                    raise ScriptError(
                        f"worker {self.worker.name}: scheduled() did not end after "
                        f"{REQUEST_WALL_S:.0f} s",
                        hint="a timer or subrequest kept the scheduled run waiting",
                    ) from None
            done.result()
            text = record.text
            assert text is not None
            record.collected = True
            if text[0] == "E":
                record.waited = None
                raise _thrown(text[1:], self.worker.sourcemap)
            if text[0] == "W":
                ctx.wait_until(self._after(record))
                keep = True
            else:
                record.waited = None
        except GuestError as exc:
            if self.broken:
                self.records.pop(slot, None)  # this request ends with exc itself
                self.fail_all(exc)
            raise
        finally:
            if not keep:
                self._finish(record)

    async def _after(self, record: _Record) -> None:
        """The request's ``waitUntil`` work, awaited after its response was sent."""
        assert record.waited is not None
        try:
            self._check_stuck(record)
            await asyncio.wait_for(asyncio.shield(record.waited), REQUEST_WALL_S)
        finally:
            self._finish(record)

    def _finish(self, record: _Record) -> None:
        if record.finished:
            return
        record.finished = True
        if record.timers:
            for handle in record.timers.values():
                handle.cancel()
            record.timers.clear()
        self.records.pop(record.slot, None)
        if not self.broken and not (record.collected and record.waited is None):
            with contextlib.suppress(AtollError):
                self.call(record, "finish", record.slot)
        if not self.broken and over_budget(self.guard):
            # What short calls kept (globals holding ArrayBuffers, wasm memories) past memory_mb:
            # this isolate serves no more requests.
            log.warning(
                "worker %s: an isolate holds more than memory_mb (%d MiB) after request %s; "
                "replaced",
                self.worker.name,
                self.worker.manifest.limits.memory_mb,
                record.invocation.request_id,
            )
            self.broken = "memory"
        if self.broken:
            self.worker.release(self)

    def _check_stuck(self, record: _Record) -> None:
        """End a request whose promise can no longer settle: nothing of it is pending."""
        if record.busy() or record.finished:
            return
        if record.done is not None and not record.done.done():
            record.done.set_exception(
                ScriptError(
                    f"worker {self.worker.name}: {_NEVER}",
                    hint="the fetch handler's promise never settled and nothing it waits for "
                    "(timer, fetch, KV) is pending",
                )
            )
        elif record.waited is not None and not record.waited.done():
            record.waited.set_exception(
                ScriptError(
                    f"worker {self.worker.name}: a ctx.waitUntil() promise will never settle",
                    hint="nothing it waits for (timer, fetch, KV) is pending",
                )
            )

    def fail_all(self, error: BaseException) -> None:
        """End every request in flight here (the isolate is being replaced)."""
        for record in list(self.records.values()):
            for future in (record.done, record.waited):
                if future is not None and not future.done():
                    future.set_exception(error)
            for handle in record.timers.values():
                handle.cancel()
            record.timers.clear()

    def _enter_event(self, record: _Record, fn: str, *args: Any) -> None:
        """An event for ``record`` from the loop (a host op done, a timer): run it in JS."""
        if record.finished:
            return
        try:
            self.call(record, fn, record.slot, *args)
        except GuestError as exc:
            for future in (record.done, record.waited):
                if future is not None and not future.done():
                    future.set_exception(exc)
                    break
            if self.broken:
                self.fail_all(exc)
                self.worker.release(self)
            return
        self._check_stuck(record)

    # -- host functions (called from JS on this thread, primitives only) ----------------------------

    def _record(self, slot: int) -> _Record | None:
        return self.records.get(int(slot))

    def _log(self, level: str, text: str) -> None:
        record = self._current
        line = (
            text if level in ("log", "info") else f"{level if level in _LEVELS else 'log'}: {text}"
        )
        if record is not None and record.slot:
            record.invocation.log(line)
        else:
            log.info("worker %s: %s", self.worker.name, line)

    @staticmethod
    def _random_bytes(n: float) -> str:
        return os.urandom(max(0, min(int(n), 65536))).decode("latin-1")

    @staticmethod
    def _now() -> float:
        return time.time() * 1000.0

    def _op(self, slot: int, op_id: int, kind: str, args: str, body: str | None) -> None:
        record = self._record(slot)
        if record is None:
            return
        record.ops += 1
        # A request's host calls come while its serving loop runs it (dispatch or an event).
        asyncio.get_running_loop().create_task(self._run_op(record, int(op_id), kind, args, body))

    async def _run_op(
        self, record: _Record, op_id: int, kind: str, args: str, body: str | None
    ) -> None:
        try:
            try:
                ok = True
                meta, data = await self.worker.host_op(kind, json.loads(args), body)
            except (KVError, ValueError, TypeError) as exc:
                ok = False
                name = "TypeError" if isinstance(exc, TypeError | ValueError) else "Error"
                meta, data = json.dumps({"name": name, "message": str(exc)}), None
            except Exception as exc:
                ok = False
                meta = json.dumps({"name": "Error", "message": f"{type(exc).__name__}: {exc}"})
                data = None
        finally:
            record.ops -= 1
        if not self.broken:
            self._enter_event(record, "complete", op_id, ok, meta, data)

    def _settle(self, slot: int, kind: str, text: str | None) -> None:
        record = self._record(slot)
        if record is None:
            return
        if text is not None:
            self._settled(record, text)
        future = record.waited if kind == "waited" else self._done(record)
        if future is not None and not future.done():
            future.set_result(kind)

    def _settled(self, record: _Record, text: str) -> None:
        # The response (or error) itself, collected in JS as it settled (one crossing).
        record.text = text
        if text[0] == "W":
            # Made now: waitUntil promises that already settled report right after.
            record.waited = asyncio.get_running_loop().create_future()

    def _timer(self, slot: int, timer_id: int, ms: float) -> bool:
        record = self._record(slot)
        if record is None:
            return True  # a timer of a finished request never fires (Workers: same)
        if len(record.timers) >= MAX_TIMERS and int(timer_id) not in record.timers:
            return False
        delay = max(0.0, min(float(ms), MAX_DELAY_MS)) / 1000.0
        tid = int(timer_id)
        record.timers[tid] = asyncio.get_running_loop().call_later(delay, self._fire, record, tid)
        return True

    def _fire(self, record: _Record, timer_id: int) -> None:
        record.timers.pop(timer_id, None)
        if not self.broken:
            self._enter_event(record, "fire", timer_id)

    def _clear_timer(self, timer_id: int) -> None:
        for record in self.records.values():
            handle = record.timers.pop(int(timer_id), None)
            if handle is not None:
                handle.cancel()
                return

    # -- end --------------------------------------------------------------------------------------

    def dispose(self) -> None:
        """Free the isolate (on its thread, with no call running in it).

        Every Python wrapper of a JS value of this isolate must be gone first:
        one freed after the isolate is a use-after-free in STPyV8.
        """
        if "guard" in self.__dict__:
            watchdog.forget(self.guard)
        if self.broken:
            # A limit's exception may have left frames (cyclic garbage) holding JS values.
            gc.collect()
        self.__dict__.pop("_post", None)
        self.__dict__.pop("_door", None)
        self.__dict__.pop("_run", None)
        self.__dict__.pop("_take", None)
        self.__dict__.pop("_engine", None)
        if "context" in self.__dict__:
            lock = getattr(self.context, "lock", None)
            if lock is not None:
                # STPyV8's JSContext keeps its v8::Locker until told (never, on its own).
                self.isolate.enter()
                lock.leave()
                self.isolate.leave()
                self.context.lock = None
            del self.context
        self.__dict__.pop("isolate", None)


_CREATE_LOCK = threading.Lock()


def _startup_invocation(worker: IsolateOwner) -> Invocation:
    invocation = Invocation(
        None,  # type: ignore[arg-type]  # no wasmtime store is ever made for it
        worker.manifest.limits,
        "startup",
        worker.name,
        None,
    )
    invocation.cpu_budget_ns = STARTUP_CPU_MS * 1_000_000
    return invocation


def _cpu_error(worker: IsolateOwner, invocation: Invocation) -> CpuLimitError:
    return CpuLimitError(
        f"worker {worker.name}: exceeded the request's CPU limit of {invocation.limits.cpu_ms} ms "
        "(JavaScript and wasm)",
        hint="raise [limits] cpu_ms, or do less work per request",
    )


def _memory_error(worker: IsolateOwner, invocation: Invocation) -> MemoryLimitError:
    return MemoryLimitError(
        f"worker {worker.name}: exceeded the memory limit of {invocation.limits.memory_mb} MiB "
        "(JS heap, ArrayBuffers and wasm memories of its isolate)",
        hint="raise [limits] memory_mb, or hold less at once",
    )


def _reset_error(worker: IsolateOwner, reason: str) -> GuestError:
    error = GuestError(
        f"worker {worker.name}: the isolate serving this request was reset because a request "
        f"in it exceeded its {reason} limit",
        hint="retry the request",
    )
    error.outcome = "canceled"
    error.status = 503
    return error


def _frames(stack: str, sourcemap: SourceMap) -> list[str]:
    """The worker's frames, in its own files (atoll's core frames left out)."""
    return [
        sourcemap.frame(line.strip())
        for line in stack.splitlines()
        if line.strip().startswith("at ")
        and "(atoll:core.js:" not in line
        and "<atoll>" not in line
    ]


def _script_error(exc: Any, sourcemap: SourceMap) -> ScriptError:
    stack = str(getattr(exc, "stackTrace", "") or "")
    return ScriptError(f"Uncaught {exc}", frames=_frames(stack, sourcemap))


def _thrown(text: str, sourcemap: SourceMap) -> ScriptError:
    info = json.loads(text)
    message = info["message"]
    if not message.startswith("Uncaught"):
        message = f"Uncaught {info['name']}: {message}"
    return ScriptError(message, frames=_frames(info["stack"], sourcemap))
