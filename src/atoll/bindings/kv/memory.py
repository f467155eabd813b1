"""An in-process KV backend for tests: dicts and a sorted key list, nothing persisted.

Opened with the spec ``memory``. Every ``MemoryBackend`` object is its own
store: two processes (or two objects) never see each other's keys. The one
object a process opens is shared by all its threads and event loops: every
operation runs under one lock, so each is atomic. Nothing waits for I/O, so
the async methods and their blocking twins (``get_sync``…, for wasm guests)
are the same code.
"""

from __future__ import annotations

import bisect
import contextlib
import pathlib
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Self

from atoll.bindings.kv.base import (
    Clock,
    Entry,
    KeyRecord,
    KVBackend,
    ListPage,
    decode_cursor,
    encode_cursor,
    is_live,
)
from atoll.errors import KVError

__all__ = ["MemoryBackend"]


class _Space:
    """One namespace: entries by key, and the keys kept sorted for ``list``."""

    __slots__ = ("entries", "order")

    def __init__(self) -> None:
        self.entries: dict[str, Entry] = {}
        self.order: list[str] = []


class MemoryBackend(KVBackend):
    """A :class:`~atoll.bindings.kv.base.KVBackend` held in this process's memory."""

    def __init__(self, *, clock: Clock = time.time) -> None:
        self._clock = clock
        self._spaces: dict[str, _Space] = {}
        self._lock = threading.Lock()
        self._closed = False

    @classmethod
    def from_spec(cls, spec: str, *, state_dir: pathlib.Path, clock: Clock = time.time) -> Self:
        """Open from the spec ``memory`` (``state_dir`` is not used)."""
        if spec != "memory":
            raise KVError(f"KV spec {spec!r}: the memory backend takes no options")
        return cls(clock=clock)

    def now(self) -> float:
        return self._clock()

    # -- KVBackend: nothing waits, so the async methods call the blocking ones -----------

    async def get(self, ns: str, key: str) -> Entry | None:
        return self.get_sync(ns, key)

    async def get_many(self, ns: str, keys: Sequence[str]) -> dict[str, Entry]:
        found: dict[str, Entry] = {}
        with self._open():
            for key in keys:
                entry = self._get(ns, key)
                if entry is not None:
                    found[key] = entry
        return found

    async def put(
        self,
        ns: str,
        key: str,
        value: bytes,
        expiration: float | None,
        metadata: bytes | None,
    ) -> None:
        self.put_sync(ns, key, value, expiration, metadata)

    async def delete(self, ns: str, key: str) -> None:
        self.delete_sync(ns, key)

    async def list(self, ns: str, prefix: str | None, limit: int, cursor: str | None) -> ListPage:
        return self.list_sync(ns, prefix, limit, cursor)

    async def purge_expired(self) -> int:
        now = self._clock()
        removed = 0
        with self._open():
            for space in self._spaces.values():
                dead = [k for k, e in space.entries.items() if not is_live(e.expiration, now)]
                for key in dead:
                    self._remove(space, key)
                removed += len(dead)
        return removed

    async def close(self) -> None:
        with self._lock:
            self._closed = True
            self._spaces = {}

    def get_sync(self, ns: str, key: str) -> Entry | None:
        with self._open():
            return self._get(ns, key)

    def put_sync(
        self,
        ns: str,
        key: str,
        value: bytes,
        expiration: float | None,
        metadata: bytes | None,
    ) -> None:
        with self._open():
            space = self._spaces.setdefault(ns, _Space())
            if key not in space.entries:
                bisect.insort(space.order, key)
            space.entries[key] = Entry(bytes(value), expiration, metadata)

    def delete_sync(self, ns: str, key: str) -> None:
        with self._open():
            space = self._spaces.get(ns)
            if space is not None and key in space.entries:
                self._remove(space, key)

    def list_sync(self, ns: str, prefix: str | None, limit: int, cursor: str | None) -> ListPage:
        after = decode_cursor(cursor) if cursor is not None else None
        prefix = prefix or ""
        with self._open():
            space = self._spaces.get(ns)
            if space is None:
                return ListPage([], None)
            if after is not None and after >= prefix:
                index = bisect.bisect_right(space.order, after)
            else:
                index = bisect.bisect_left(space.order, prefix)
            now = self._clock()
            keys: list[KeyRecord] = []
            order = space.order
            for i in range(index, len(order)):
                name = order[i]
                if not name.startswith(prefix):
                    break
                entry = space.entries[name]
                if not is_live(entry.expiration, now):
                    continue
                if len(keys) == limit:
                    return ListPage(keys, encode_cursor(keys[-1].name))
                keys.append(KeyRecord(name, entry.expiration, entry.metadata))
            return ListPage(keys, None)

    # -- under the lock ------------------------------------------------------------------

    @contextlib.contextmanager
    def _open(self) -> Iterator[None]:
        """Hold the lock; raise :class:`KVError` if the store was closed."""
        with self._lock:
            if self._closed:
                raise KVError("the KV store memory is closed")
            yield

    def _get(self, ns: str, key: str) -> Entry | None:
        space = self._spaces.get(ns)
        if space is None:
            return None
        entry = space.entries.get(key)
        if entry is None:
            return None
        if not is_live(entry.expiration, self._clock()):
            self._remove(space, key)  # lazy purge
            return None
        return entry

    @staticmethod
    def _remove(space: _Space, key: str) -> None:
        del space.entries[key]
        index = bisect.bisect_left(space.order, key)
        del space.order[index]
