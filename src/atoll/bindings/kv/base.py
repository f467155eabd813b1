"""The swap point between :class:`~atoll.bindings.kv.namespace.KVNamespace` and a store.

A :class:`KVBackend` is a handful of async methods over raw entries. It does
no validation and no encoding: :class:`KVNamespace` checks every key, value,
metadata and option against Workers' limits before a backend sees it, and
decodes what comes back. A backend promises only this:

- Keys of different namespaces never mix: ``ns`` is part of every key.
- An entry whose ``expiration`` is at or before :meth:`KVBackend.now` is never
  returned by ``get``, ``get_many`` or ``list``, whatever the store did with it.
- ``list`` returns keys in the order of their UTF-8 bytes (which is also
  Python's ``str`` order), resumes strictly after the key named by ``cursor``,
  and may return fewer than ``limit`` keys before the end (when it skipped
  expired keys); only ``cursor is None`` means the listing is complete.
- Once ``put`` or ``delete`` returns, every later read through any backend
  open on the same store sees it (read-your-writes on one node).

The clock is a hook: every backend takes ``clock`` (default :func:`time.time`)
and uses it, never its store's own time, to decide what has expired. Tests pass
a clock they can move forward instead of sleeping for 60 s.

Threads and event loops: one backend object serves the whole process, and
``atoll dev`` calls it from several event loops, each in its own thread. Every
method may be called from any thread, from any running loop, concurrently; a
backend keeps whatever is bound to a loop (a Redis connection) per loop.

Wasm guests reach KV through host functions, which are synchronous: for them
a backend also has blocking twins of ``get``, ``put``, ``delete`` and
``list`` (``get_sync``…), same keys, same encoding, same expiry. They block
the calling thread for one store operation (a few µs on SQLite, one round
trip on Redis) and need no event loop.
"""

from __future__ import annotations

import abc
import base64
import binascii
import pathlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Self

from atoll.errors import KVError

__all__ = [
    "Clock",
    "Entry",
    "KVBackend",
    "KeyRecord",
    "ListPage",
    "decode_cursor",
    "encode_cursor",
    "is_live",
]

Clock = Callable[[], float]
"""Returns the current time in seconds since the Unix epoch (like :func:`time.time`)."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One stored value as a backend returns it."""

    value: bytes
    """The value's bytes (a ``str`` value is stored as its UTF-8)."""
    expiration: float | None
    """When the entry expires, in seconds since the epoch; ``None``: never."""
    metadata: bytes | None
    """The metadata as serialized JSON (UTF-8); ``None``: no metadata."""


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """One key of a :class:`ListPage`: its name, expiration and metadata, no value."""

    name: str
    expiration: float | None
    metadata: bytes | None


@dataclass(frozen=True, slots=True)
class ListPage:
    """A page of :meth:`KVBackend.list`; ``cursor`` is ``None`` when no key follows."""

    keys: list[KeyRecord]
    cursor: str | None


def is_live(expiration: float | None, now: float) -> bool:
    """True if an entry that expires at ``expiration`` may still be returned at ``now``."""
    return expiration is None or expiration > now


def encode_cursor(last_key: str) -> str:
    """The opaque cursor that resumes a listing strictly after ``last_key``."""
    return base64.urlsafe_b64encode(last_key.encode()).decode("ascii")


def decode_cursor(cursor: str) -> str:
    """The key a cursor made by :func:`encode_cursor` resumes after.

    Raises :class:`KVError` if ``cursor`` was not made by :func:`encode_cursor`.
    """
    try:
        return base64.urlsafe_b64decode(cursor.encode("ascii")).decode()
    except (binascii.Error, UnicodeError, ValueError) as exc:
        raise KVError(
            f"list cursor {cursor!r} is not valid",
            hint="pass the cursor of the previous list() result unchanged",
        ) from exc


class KVBackend(abc.ABC):
    """A store of namespaced entries: the interface every KV backend implements.

    One backend object is opened per process (per ``--kv`` spec) when the
    runtime starts, shared by every namespace, request, thread and event
    loop, and closed once with :meth:`close` (or ``async with``) when the
    runtime stops. Every method is thread-safe (see the module doc).

    Keys, values and metadata arrive already validated by ``KVNamespace``.
    Errors of the store itself (unreachable, locked too long, corrupt) are
    raised as :class:`~atoll.errors.KVError`.
    """

    @classmethod
    @abc.abstractmethod
    def from_spec(cls, spec: str, *, state_dir: pathlib.Path, clock: Clock = time.time) -> Self:
        """Open the backend a ``--kv`` spec names (``sqlite:PATH``, ``redis://…``, ``memory``).

        Called once per process by :func:`atoll.bindings.kv.open_backend`;
        ``state_dir`` is where a backend keeps files when the spec gives no
        path. Raises :class:`~atoll.errors.KVError` if the spec is malformed
        or the store cannot be opened.
        """

    @abc.abstractmethod
    def now(self) -> float:
        """The backend's clock (the ``clock`` hook): what "expired" is measured against."""

    @abc.abstractmethod
    async def get(self, ns: str, key: str) -> Entry | None:
        """The live entry of ``key`` in namespace ``ns``, or ``None``."""

    @abc.abstractmethod
    async def get_many(self, ns: str, keys: Sequence[str]) -> dict[str, Entry]:
        """The live entries among ``keys``; missing or expired keys are left out."""

    @abc.abstractmethod
    async def put(
        self,
        ns: str,
        key: str,
        value: bytes,
        expiration: float | None,
        metadata: bytes | None,
    ) -> None:
        """Create or replace ``key``: value, expiration and metadata together, atomically.

        When it returns, the write is durable as the backend documents.
        """

    @abc.abstractmethod
    async def delete(self, ns: str, key: str) -> None:
        """Remove ``key``; deleting a missing key is not an error."""

    @abc.abstractmethod
    async def list(self, ns: str, prefix: str | None, limit: int, cursor: str | None) -> ListPage:
        """Up to ``limit`` live keys of ``ns`` that start with ``prefix``, after ``cursor``.

        ``cursor`` is ``None`` or the cursor of an earlier page (of any
        backend: cursors are :func:`encode_cursor` of the last key). A bad
        cursor raises :class:`~atoll.errors.KVError`.
        """

    @abc.abstractmethod
    async def purge_expired(self) -> int:
        """Delete expired entries of every namespace; return how many were removed.

        The runtime calls it periodically (e.g. once a minute). It is
        housekeeping only: reads never depend on it to hide expired keys.
        """

    @abc.abstractmethod
    async def close(self) -> None:
        """Release connections, threads and files; calling it again does nothing.

        Called once, on any loop, when nothing else uses the backend any more.
        """

    # -- the blocking twins, for wasm host functions (see the module doc) ----------------

    def warm_up(self) -> None:
        """Open what the blocking calls need (a connection…) before any request does.

        Best effort, never raises: a worker with KV bindings calls it at load, so
        the first guest call of a request does not pay (in CPU, against its
        ``cpu_ms``) for setting up the store. The default does nothing.
        """
        return None

    @abc.abstractmethod
    def get_sync(self, ns: str, key: str) -> Entry | None:
        """:meth:`get`, blocking the calling thread."""

    @abc.abstractmethod
    def put_sync(
        self,
        ns: str,
        key: str,
        value: bytes,
        expiration: float | None,
        metadata: bytes | None,
    ) -> None:
        """:meth:`put`, blocking the calling thread; as durable when it returns."""

    @abc.abstractmethod
    def delete_sync(self, ns: str, key: str) -> None:
        """:meth:`delete`, blocking the calling thread."""

    @abc.abstractmethod
    def list_sync(self, ns: str, prefix: str | None, limit: int, cursor: str | None) -> ListPage:
        """:meth:`list`, blocking the calling thread."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
