"""The per-process read cache behind ``get(key, cache_ttl=…)``.

One :class:`ReadCache` exists per backend object, i.e. per process and store;
every :class:`~atoll.bindings.kv.namespace.KVNamespace` on that backend shares
it. An entry remembers when it was read from the backend (``fetched_at``, by
the backend's clock), so one cached read serves any later read whose
``cache_ttl`` is at least its age.

The staleness bound: a read with ``cache_ttl=N`` returns what the backend held
at some moment in the last ``N`` seconds. Writes made by *this* process
(``put``, ``delete``, through any namespace object of the same backend) drop
the entry when they return, so a process always reads its own writes; writes
of other processes and machines may stay unseen for up to ``N`` seconds. An
entry past its key's expiration is never returned. Misses (key absent) are
cached too, with the same bound.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Final

from atoll.bindings.kv.base import Entry

__all__ = ["MAX_CACHED_VALUE_BYTES", "ReadCache"]

MAX_CACHED_VALUE_BYTES: Final = 1024 * 1024
"""Values larger than this are never cached (they would evict everything else)."""


class _Slot:
    __slots__ = ("entry", "fetched_at", "size")

    def __init__(self, entry: Entry | None, fetched_at: float, size: int) -> None:
        self.entry = entry
        self.fetched_at = fetched_at
        self.size = size


class ReadCache:
    """A bounded LRU of backend reads keyed by ``(namespace id, key)``.

    Thread-safe: shared by every event loop (thread) of the process.
    """

    def __init__(self, *, max_entries: int = 10_000, max_bytes: int = 64 * 1024 * 1024) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._slots: OrderedDict[tuple[str, str], _Slot] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.generation = 0
        """Bumped by every invalidation: a read that started before one must not be stored."""

    def __len__(self) -> int:
        return len(self._slots)

    def lookup(self, ns: str, key: str, max_age: float, now: float) -> _Slot | None:
        """The slot of ``key`` if it was fetched less than ``max_age`` seconds before ``now``.

        A hit whose entry has expired by ``now`` is returned with ``entry=None``.
        """
        with self._lock:
            slot = self._slots.get((ns, key))
            if slot is None or now - slot.fetched_at >= max_age:
                return None
            entry = slot.entry
            if entry is not None and entry.expiration is not None and entry.expiration <= now:
                return _EXPIRED
            self._slots.move_to_end((ns, key))
            return slot

    def store(
        self, ns: str, key: str, entry: Entry | None, fetched_at: float, generation: int
    ) -> None:
        """Remember a backend read that started when :attr:`generation` was ``generation``."""
        size = 64 + len(key) + (0 if entry is None else len(entry.value))
        if entry is not None and len(entry.value) > MAX_CACHED_VALUE_BYTES:
            return
        with self._lock:
            if generation != self.generation:
                return  # a write of this process may have landed after that read
            old = self._slots.pop((ns, key), None)
            if old is not None:
                self._bytes -= old.size
            self._slots[(ns, key)] = _Slot(entry, fetched_at, size)
            self._bytes += size
            while len(self._slots) > self.max_entries or self._bytes > self.max_bytes:
                _, evicted = self._slots.popitem(last=False)
                self._bytes -= evicted.size

    def invalidate(self, ns: str, key: str) -> None:
        """Forget ``key``: called when a write through this process returns (or fails)."""
        with self._lock:
            self.generation += 1
            old = self._slots.pop((ns, key), None)
            if old is not None:
                self._bytes -= old.size

    def clear(self) -> None:
        with self._lock:
            self.generation += 1
            self._slots.clear()
            self._bytes = 0


_EXPIRED = _Slot(None, 0.0, 0)
