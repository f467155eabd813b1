"""A small, bounded load generator for tests: a few threads, one request at a time each.

Each thread sends requests back to back until stopped (half the threads
reuse one keep-alive connection, half open a new connection per request) and
records every request: when it started and ended, and its status and body,
or the error it got. Nothing is timed against a threshold; the records are
what a test checks.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import httpx

__all__ = ["Load", "Record"]


@dataclass(frozen=True, slots=True)
class Record:
    started: float
    ended: float
    status: int
    body: str
    error: str = ""
    keep_alive: bool = False


class Load:
    """``with Load(url, host) as load:`` loads ``url`` (``Host: host``) until the block ends.

    ``limit`` seconds cap the run whatever happens (a test that hangs stops loading).
    """

    def __init__(self, url: str, host: str, *, threads: int = 4, limit: float = 60.0) -> None:
        self.url = url
        self.host = host
        self.records: list[Record] = []  # list.append is atomic: threads share it
        self._stop = threading.Event()
        self._end = time.monotonic() + limit
        self._threads = [
            threading.Thread(target=self._work, args=(i,), daemon=True) for i in range(threads)
        ]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def wait_for(self, count: int, after: float = 0.0) -> None:
        """Block until ``count`` requests that started after ``after`` have ended."""
        while time.monotonic() < self._end:
            if sum(1 for r in list(self.records) if r.started > after) >= count:
                return
            time.sleep(0.02)
        raise AssertionError(f"the load did not reach {count} requests")

    def _work(self, index: int) -> None:
        keep_alive = index % 2 == 0
        client = httpx.Client(timeout=30) if keep_alive else None
        headers = {"host": self.host}
        try:
            while not self._stop.is_set() and time.monotonic() < self._end:
                started = time.monotonic()
                try:
                    if client is not None:
                        response = client.get(self.url, headers=headers)
                    else:
                        with httpx.Client(timeout=30) as once:
                            response = once.get(self.url, headers=headers)
                    record = Record(
                        started,
                        time.monotonic(),
                        response.status_code,
                        response.text,
                        "",
                        keep_alive,
                    )
                except httpx.HTTPError as exc:
                    record = Record(started, time.monotonic(), 0, "", repr(exc), keep_alive)
                self.records.append(record)
        finally:
            if client is not None:
                client.close()
