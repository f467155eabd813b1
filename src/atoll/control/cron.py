"""Cron triggers: run each worker's ``scheduled`` handler at the times ``[triggers] crons`` names.

Where things run and how often:

- A :class:`Scheduler` runs in every serving process of ``atoll serve`` (and in
  ``atoll dev``), as a task on the loop of the app's lifespan, started and
  stopped by its lifespan hooks. It asks for the current workers at each tick
  (a deploy swaps them: the next tick sees the new version, and the cursor of
  each ``(worker, cron)`` pair is kept across it, so a deploy skips no time).
- Before running a scheduled time, a scheduler **claims** it:
  ``claim(worker, cron, time)`` succeeds for exactly one caller. With
  :class:`SqliteClaims` (a file in the state folder) that makes one run per
  scheduled time per node, whichever process gets there first, and a process
  that dies leaves the others to go on. The claim is the only thing shared,
  so a store shared by several nodes (the cluster issue: a table in a shared
  database, or Redis ``SET NX``) makes it one run per time per cluster.
- Times missed while no process ran (the node was down) are not run
  afterwards: a scheduler starts from the time it starts, as Workers does not
  replay missed runs. A tick that comes late (a blocked loop) runs the latest
  due time of each pair once, not every missed one.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from atoll.api import ScheduledEvent
from atoll.manifest.crons import next_time
from atoll.runtime.logs import log_lines
from atoll.worker import Result, Worker, run_pending

if TYPE_CHECKING:
    import sqlite3

__all__ = ["Claims", "MemoryClaims", "RunHook", "Scheduler", "SqliteClaims"]

log = logging.getLogger("atoll.cron")

#: Longest sleep between ticks, so a deploy's new triggers are seen within it.
MAX_SLEEP = 30.0
#: Claims older than this are pruned (a claim only matters around its time).
KEEP_CLAIMS_S = 7 * 24 * 3600

RunHook = Callable[[Worker, ScheduledEvent, Result, float], None]
"""``hook(worker, event, result, wall_ms)``: once per run, after it ended and its
``wait_until`` work was started (metrics, tail, the line ``atoll dev`` prints)."""


class Claims(Protocol):
    """Who runs a scheduled time: the one ``claim`` said yes to. Thread-safe."""

    def claim(self, worker: str, cron: str, when: float) -> bool: ...


class MemoryClaims:
    """Claims in this process only (``atoll dev``, tests)."""

    def __init__(self) -> None:
        self._taken: set[tuple[str, str, float]] = set()
        self._lock = threading.Lock()

    def claim(self, worker: str, cron: str, when: float) -> bool:
        key = (worker, cron, when)
        with self._lock:
            if key in self._taken:
                return False
            self._taken.add(key)
            return True


class SqliteClaims:
    """Claims in a SQLite file shared by the processes of a node (``STATE/cron.sqlite``).

    One ``INSERT OR IGNORE`` per claim, in its own short transaction: the row's
    primary key makes exactly one process win.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        with self._connect() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS claims (worker TEXT, cron TEXT, at REAL,"
                " pid INTEGER, claimed REAL, PRIMARY KEY (worker, cron, at))"
            )

    def _connect(self) -> sqlite3.Connection:
        import sqlite3  # here: atoll dev (MemoryClaims) never opens a file of claims

        db = sqlite3.connect(self.path, timeout=10.0, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        return db

    def claim(self, worker: str, cron: str, when: float) -> bool:
        with self._lock:
            db = self._connect()
            try:
                cursor = db.execute(
                    "INSERT OR IGNORE INTO claims VALUES (?, ?, ?, ?, ?)",
                    (worker, cron, when, os.getpid(), time.time()),
                )
                won = cursor.rowcount == 1
                if won:
                    db.execute("DELETE FROM claims WHERE at < ?", (when - KEEP_CLAIMS_S,))
                return won
            finally:
                db.close()


class Scheduler:
    """Runs the cron triggers of the workers ``workers()`` returns (see module docstring)."""

    def __init__(
        self,
        workers: Callable[[], Mapping[str, Worker]],
        claims: Claims,
        *,
        on_run: tuple[RunHook, ...] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.workers = workers
        self.claims = claims
        self.on_run = on_run
        self.clock = clock
        #: The last time handled per (worker, cron): runs are after it.
        self.cursors: dict[tuple[str, str], float] = {}
        self.running: set[asyncio.Task[Result]] = set()
        self._task: asyncio.Task[None] | None = None
        self._warned: set[str] = set()
        self._sequence = 0

    async def start(self) -> None:
        """Lifespan startup hook: begin ticking on this loop."""
        self.tick_due(self.clock(), run=False)  # cursors start now: missed times are not run
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        """Lifespan shutdown hook: stop ticking; runs in flight are awaited."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self.running:
            await asyncio.gather(*self.running, return_exceptions=True)

    async def _loop(self) -> None:
        while True:
            now = self.clock()
            wake = self.tick_due(now)
            await asyncio.sleep(max(0.0, min(wake - now, MAX_SLEEP)))

    def tick_due(self, now: float, *, run: bool = True) -> float:
        """Start the runs due at ``now`` (claimed ones only); the time of the next one.

        ``run=False`` only places the cursors of pairs not seen yet at ``now``.
        """
        upcoming = now + MAX_SLEEP
        seen: set[tuple[str, str]] = set()
        for name, worker in self.workers().items():
            crons = worker.manifest.triggers.crons
            if crons and worker.scheduled is None and name not in self._warned:
                self._warned.add(name)
                log.warning(
                    "worker %s: [triggers] crons are set but its entry has no scheduled "
                    "handler (JavaScript entries: not yet); runs fail until it has one",
                    name,
                )
            for cron in crons:
                key = (name, cron)
                seen.add(key)
                cursor = self.cursors.setdefault(key, now)
                due = next_time(cron, cursor)
                if due <= now:
                    latest = due
                    while (following := next_time(cron, latest)) <= now:
                        latest = following  # a late tick runs the latest due time once
                    self.cursors[key] = latest
                    if run and self.claims.claim(name, cron, latest):
                        self._start(worker, cron, latest)
                    due = next_time(cron, latest)
                upcoming = min(upcoming, due)
        for key in set(self.cursors) - seen:  # a trigger or a worker that went away
            del self.cursors[key]
        return upcoming

    def _start(self, worker: Worker, cron: str, when: float) -> None:
        event = ScheduledEvent(cron, datetime.fromtimestamp(when, UTC))
        task = asyncio.get_running_loop().create_task(self.run(worker, event))
        self.running.add(task)
        task.add_done_callback(self.running.discard)

    async def run(self, worker: Worker, event: ScheduledEvent) -> Result:
        """Run one scheduled event on ``worker`` now, then its hooks and ``wait_until`` work."""
        self._sequence += 1
        run_id = f"{os.urandom(5).hex()}{self._sequence % 0xFFFFFF:06x}"
        started = time.perf_counter()
        result = await worker.run_scheduled(event, run_id)
        wall_ms = (time.perf_counter() - started) * 1000
        for hook in self.on_run:
            try:
                hook(worker, event, result, wall_ms)
            except Exception:
                log.exception("cron run hook failed")
        await run_pending(result)
        return result


def log_run(worker: Worker, event: ScheduledEvent, result: Result, wall_ms: float) -> None:
    """The log lines of a run (as ``http/app.py`` writes a request's)."""
    log.info(
        "cron %r %s %s %.2fms cpu=%.2fms id=%s",
        event.cron,
        worker.name,
        result.outcome.value,
        wall_ms,
        result.cpu_ms,
        result.request_id,
    )
    log_lines(log, result.request_id, result.logs)
    if result.error is not None:
        log.warning("  [%s] %s: %s", result.request_id, type(result.error).__name__, result.error)
