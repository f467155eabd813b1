"""Tail: a live stream of request events for ``atoll tail``.

Where things run:

- In each serving process, :class:`TailSource` holds the filters of every
  open stream (sent by the supervisor when one opens or closes). Per request,
  :meth:`TailSource.wants` costs one attribute read when nobody tails; only a
  wanted request is turned into an event (:func:`event`), and only then are
  tracebacks formatted.
- In the supervisor, :class:`TailHub` hands each event to the streams whose
  filter takes it. Each stream has a bounded queue: when a client reads slower
  than events come, new events are dropped and counted, and the stream says
  how many it lost (an ``{"dropped": N}`` event) as soon as it has room again.
  Requests never wait for a stream; the serving process's own queue to the
  supervisor drops the same way (``channel.py``).

A filter (:class:`TailFilter`) names a worker and, optionally, statuses
(``500``, ``5xx``), outcomes (``exceeded_cpu``) and a sampling rate (``0.1``
keeps one request in ten, at random). The source samples at the highest rate
any matching stream asks for; the hub samples again for each stream, so each
gets its own rate.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from atoll.errors import ControlError, GuestError
from atoll.worker import MAX_FRAMES, Result

__all__ = ["Subscription", "TailFilter", "TailHub", "TailSource", "event"]

#: Events a stream may hold unread before new ones are dropped.
QUEUE_EVENTS = 1000
#: Log lines, and characters per line, an event carries at most.
MAX_LOG_LINES = 100
MAX_LINE_CHARS = 2000
MAX_TRACEBACK_CHARS = 20_000

_STATUS = re.compile(r"[1-5](xx|\d\d)", re.IGNORECASE)
_OUTCOMES = frozenset(
    {"ok", "exception", "exceeded_cpu", "exceeded_memory", "overloaded", "canceled", "refused",
     "load_error"}
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class TailFilter:
    """What one stream wants: a worker's requests, optionally narrowed and sampled."""

    worker: str
    statuses: tuple[str, ...] = ()
    """``"500"`` or ``"5xx"``; empty: every status."""
    outcomes: tuple[str, ...] = ()
    """Outcome names; empty: every outcome."""
    sample: float = 1.0
    """Share of matching requests to send, 0 < sample ≤ 1."""

    def __post_init__(self) -> None:
        for status in self.statuses:
            if not _STATUS.fullmatch(status):
                raise ControlError(
                    f"status filter {status!r} is not valid",
                    hint="use a code (404) or a class (5xx)",
                )
        for outcome in self.outcomes:
            if outcome not in _OUTCOMES:
                raise ControlError(
                    f"outcome filter {outcome!r} is not valid",
                    hint=f"use one of {', '.join(sorted(_OUTCOMES))}",
                )
        if not 0 < self.sample <= 1:
            raise ControlError(f"sample rate {self.sample} is not in (0, 1]")

    def matches(self, worker: str, status: int, outcome: str) -> bool:
        if worker != self.worker:
            return False
        if self.outcomes and outcome not in self.outcomes:
            return False
        if self.statuses:
            code = str(status)
            return any(
                code == s or (s[1:].lower() == "xx" and code[0] == s[0]) for s in self.statuses
            )
        return True

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TailFilter:
        return cls(
            worker=data["worker"],
            statuses=tuple(data.get("statuses", ())),
            outcomes=tuple(data.get("outcomes", ())),
            sample=float(data.get("sample", 1.0)),
        )


class TailSource:
    """A serving process's side: which requests to turn into events. Thread-safe (one swap)."""

    def __init__(self) -> None:
        self._filters: tuple[TailFilter, ...] = ()

    def set_filters(self, filters: Iterable[TailFilter]) -> None:
        self._filters = tuple(filters)

    def wants(self, worker: str, status: int, outcome: str) -> float:
        """The rate at which to sample this request (0: no stream wants it)."""
        filters = self._filters
        if not filters:
            return 0.0
        rate = max((f.sample for f in filters if f.matches(worker, status, outcome)), default=0.0)
        if rate and (rate >= 1.0 or random.random() < rate):
            return rate
        return 0.0


def event(
    *,
    worker: str,
    version: str,
    method: str,
    url: str,
    result: Result,
    wall_ms: float,
    process: int,
    rate: float,
) -> dict[str, Any]:
    """A request as a tail event (JSON data). Runs only for requests a stream wants."""
    logs = [line[:MAX_LINE_CHARS] for line in result.logs[:MAX_LOG_LINES]]
    if len(result.logs) > MAX_LOG_LINES:
        logs.append(f"… {len(result.logs) - MAX_LOG_LINES} more lines")
    return {
        "time": time.time() - wall_ms / 1000,
        "worker": worker,
        "version": version,
        "request_id": result.request_id,
        "method": method,
        "url": url,
        "status": result.response.status,
        "outcome": result.outcome.value,
        "wall_ms": round(wall_ms, 3),
        "cpu_ms": round(result.cpu_ms, 3),
        "logs": logs,
        "subrequests": [r.to_json() for r in result.subrequests[:MAX_LOG_LINES]],
        "exception": _exception(result.error),
        "process": process,
        "sampled": rate,
    }


def _exception(error: BaseException | None) -> dict[str, Any] | None:
    if error is None:
        return None
    data: dict[str, Any] = {"type": type(error).__name__, "message": str(error)[:MAX_LINE_CHARS]}
    if isinstance(error, GuestError):
        data["frames"] = list(error.frames[:MAX_FRAMES])
        if len(error.frames) > MAX_FRAMES:
            data["frames"].append(f"… {len(error.frames) - MAX_FRAMES} more frames")
    else:
        text = "".join(traceback.format_exception(error))
        data["traceback"] = text[-MAX_TRACEBACK_CHARS:]
    return data


class Subscription:
    """One open stream: its filter and its bounded queue (on the supervisor's loop)."""

    def __init__(self, tail_filter: TailFilter, size: int = QUEUE_EVENTS) -> None:
        self.filter = tail_filter
        self.queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(size)
        self.dropped = 0
        """Events lost since the stream last said so."""
        self.dropped_total = 0

    def offer(self, item: dict[str, Any]) -> None:
        if self.dropped and self.queue.qsize() < self.queue.maxsize - 1:
            self.queue.put_nowait({"dropped": self.dropped})
            self.dropped = 0
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self.dropped += 1
            self.dropped_total += 1

    def close(self) -> None:
        """End the stream (the server is stopping): the reader gets None next."""
        while True:
            try:
                self.queue.put_nowait(None)
                return
            except asyncio.QueueFull:
                self.queue.get_nowait()


class TailHub:
    """The supervisor's side: open streams, and where each event goes. One event loop only.

    ``on_change(filters)`` is called whenever a stream opens or closes, with
    every open stream's filter: the supervisor sends them to the serving
    processes.
    """

    def __init__(self, on_change: Callable[[Sequence[TailFilter]], None]) -> None:
        self.on_change = on_change
        self.subscriptions: list[Subscription] = []
        self.dropped = 0

    def filters(self) -> list[TailFilter]:
        return [s.filter for s in self.subscriptions]

    def subscribe(self, tail_filter: TailFilter) -> Subscription:
        sub = Subscription(tail_filter)
        self.subscriptions.append(sub)
        self.on_change(self.filters())
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        if sub in self.subscriptions:
            self.subscriptions.remove(sub)
            self.dropped += sub.dropped_total
            self.on_change(self.filters())

    def publish(self, item: Mapping[str, Any]) -> None:
        """Hand a serving process's event to every stream that wants it."""
        rate = float(item.get("sampled", 1.0)) or 1.0
        for sub in self.subscriptions:
            f = sub.filter
            if not f.matches(item["worker"], item["status"], item["outcome"]):
                continue
            keep = f.sample / rate
            if keep < 1.0 and random.random() >= keep:
                continue
            sub.offer(dict(item))

    def lost(self, worker: str, count: int) -> None:
        """A serving process dropped ``count`` events of ``worker`` before they got here."""
        for sub in self.subscriptions:
            if sub.filter.worker == worker:
                sub.dropped += count
                sub.dropped_total += count

    def close(self) -> None:
        for sub in self.subscriptions:
            sub.close()
