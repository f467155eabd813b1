"""The default KV backend: one SQLite file in WAL mode, shared by the processes of one machine.

Spec: ``sqlite`` (the file ``STATE_DIR/kv.sqlite3``) or ``sqlite:PATH``, with
an optional ``?synchronous=normal|full`` (default ``normal``).

Durability
    The journal is WAL. With ``synchronous=normal`` (the default) a commit is
    a ``write(2)`` of the transaction's pages into the WAL file, with no
    ``fsync``; SQLite syncs at checkpoints. Once ``write(2)`` returns the
    kernel owns those pages, so **an acknowledged put survives ``kill -9``
    of the process** (and any crash of Python or atoll) - that is what the
    tests check. It does *not* survive a kernel panic or power loss: the last
    transactions before the most recent checkpoint can be lost (the file stays
    consistent). ``synchronous=full`` syncs the WAL at every commit, so an
    acknowledged put also survives power loss; it costs one ``fdatasync`` per
    put (short on a virtual disk, up to milliseconds on real ones),
    which is why those puts run on the writer thread (below), not on the loop.

Several processes
    Any number of processes may open the same file: WAL lets readers run
    while one writer commits, and writers wait for each other on SQLite's
    lock (``busy_timeout``, 5 s by default, then :class:`~atoll.errors.KVError`).

Event loop
    A point read and a small put cost less inline than a round trip to a
    thread (docs/kv.md, docs/benchmarks.md), so they run inline on the
    loop through a connection whose busy timeout is 0: it never waits for a
    lock. Whenever it would (another process holds the write lock, a
    checkpoint is running), and for anything that may take long - values over
    :data:`INLINE_VALUE_BYTES`, ``synchronous=full`` puts, purges,
    checkpoints - the call goes to one writer thread with its own
    connection, which waits for the lock as long as ``busy_timeout``.

Threads
    The inline connection is shared by every thread (every event loop of
    ``atoll dev``, and wasm guests' host calls). That is safe: SQLite is
    built serialized (``sqlite3.threadsafety == 3``), so statements of several
    threads on one connection take turns on its mutex; the connection is
    opened with ``check_same_thread=False``; every statement is its own
    autocommit transaction (``isolation_level=None``), and a write commits
    when it finishes even while another thread's read on the connection is
    still open. Python's ``sqlite3`` hands a cached statement to one cursor
    at a time. The writer thread is reached from any loop (``asyncio``
    wraps its futures for the loop that waits) or, by the blocking twins
    for wasm guests (``get_sync``…), by waiting on its future.

Expiry
    Expired rows are filtered out by every read (against the clock hook) and
    deleted lazily when a read meets them, and in batches by
    :meth:`SQLiteBackend.purge_expired`.

The table keeps the value last in the row so that ``list`` reads expiration
and metadata without walking a large value's overflow pages.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import itertools
import pathlib
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Literal, Self, TypeVar

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
from atoll.runtime.private import private_dir, private_file, tighten

__all__ = ["INLINE_VALUE_BYTES", "SQLiteBackend"]

INLINE_VALUE_BYTES = 256 * 1024
"""Values larger than this are read and written on the writer thread, not on the loop."""

CHECKPOINT_EVERY = 500
"""Inline writes between two passive checkpoints (run on the writer thread)."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (
    ns TEXT NOT NULL,          -- namespace id
    key BLOB NOT NULL,         -- the key's UTF-8: BLOB order is UTF-8 byte order
    expiration REAL,           -- seconds since the epoch, NULL: never
    metadata BLOB,             -- serialized JSON, NULL: none
    value BLOB NOT NULL,       -- last, so list() never reads it
    PRIMARY KEY (ns, key)
);
CREATE INDEX IF NOT EXISTS kv_by_expiration ON kv (expiration) WHERE expiration IS NOT NULL;
"""

_GET = (
    "SELECT CASE WHEN length(value) <= ? THEN value END, expiration, metadata"
    " FROM kv WHERE ns = ? AND key = ?"
)
_GET_FULL = "SELECT value, expiration, metadata FROM kv WHERE ns = ? AND key = ?"
_PUT = (
    "INSERT INTO kv (ns, key, expiration, metadata, value) VALUES (?, ?, ?, ?, ?)"
    " ON CONFLICT (ns, key) DO UPDATE SET"
    " expiration = excluded.expiration, metadata = excluded.metadata, value = excluded.value"
)
_DELETE = "DELETE FROM kv WHERE ns = ? AND key = ?"
_DELETE_IF_EXPIRED = "DELETE FROM kv WHERE ns = ? AND key = ? AND expiration <= ?"
_LIST = (
    "SELECT key, expiration, metadata FROM kv"
    " WHERE ns = ? AND key {op} ? AND key < ? AND (expiration IS NULL OR expiration > ?)"
    " ORDER BY key LIMIT ?"
)
_LIST_FROM = _LIST.format(op=">=")
_LIST_AFTER = _LIST.format(op=">")
_PURGE = (
    "DELETE FROM kv WHERE rowid IN"
    " (SELECT rowid FROM kv WHERE expiration <= ? ORDER BY expiration LIMIT ?)"
)
_PURGE_BATCH = 1000

_BUSY = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)

_T = TypeVar("_T")
_Row = tuple[Any, ...]
"""A row as ``sqlite3`` returns it."""


class _Busy(enum.Enum):
    """What an inline statement gives when a lock is in the way (go to the writer thread)."""

    BUSY = 0


_BUSY_MARK = _Busy.BUSY

Synchronous = Literal["normal", "full"]


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is None:
        return "locked" in str(exc)
    return code & 0xFF in _BUSY


def _upper_bound(prefix: bytes) -> bytes:
    # UTF-8 never contains 0xFF, so every key that starts with ``prefix``
    # sorts below ``prefix + b"\xff"`` and every key that does not, above.
    return prefix + b"\xff"


class SQLiteBackend(KVBackend):
    """A :class:`~atoll.bindings.kv.base.KVBackend` in one SQLite file (see the module doc).

    Opening creates the file, its folder and the table if missing, and sets
    WAL mode (once per file, persistent). Raises :class:`~atoll.errors.KVError`
    if the file cannot be opened or is not a database.
    """

    def __init__(
        self,
        path: pathlib.Path,
        *,
        synchronous: Synchronous = "normal",
        busy_timeout: float = 5.0,
        clock: Clock = time.time,
    ) -> None:
        if synchronous not in ("normal", "full"):
            raise KVError(f"sqlite synchronous={synchronous!r} is not 'normal' or 'full'")
        self.path = path
        self.synchronous: Synchronous = synchronous
        self._clock = clock
        self._inline_writes = synchronous == "normal"
        self._inline_count = itertools.count(1)  # next() is atomic: no lock needed
        self._closed = False
        try:
            # KV data is private to the node's user: a missing folder is made 0700,
            # the file 0600, and SQLite gives its -wal and -shm files the file's mode.
            private_dir(path.parent, tighten_existing=False)
            private_file(path)
            for companion in ("-wal", "-shm"):
                tighten(path.with_name(path.name + companion))
            # The writer thread's connection: waits for locks up to busy_timeout.
            self._slow = self._connect(busy_timeout)
            self._slow.execute("PRAGMA journal_mode = WAL")
            self._slow.executescript(_SCHEMA)
            # The loop's connection: never waits for a lock, never checkpoints.
            self._fast = self._connect(0.0)
            self._fast.execute("PRAGMA wal_autocheckpoint = 0")
        except (OSError, sqlite3.Error) as exc:
            raise KVError(f"cannot open the KV store {path}: {exc}") from exc
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="atoll-kv-sqlite")

    def _connect(self, timeout: float) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, timeout=timeout, isolation_level=None, check_same_thread=False
        )
        conn.execute(f"PRAGMA synchronous = {self.synchronous.upper()}")
        return conn

    @classmethod
    def from_spec(cls, spec: str, *, state_dir: pathlib.Path, clock: Clock = time.time) -> Self:
        """Open ``sqlite``, ``sqlite:PATH`` or either with ``?synchronous=normal|full``.

        A relative ``PATH`` is relative to the current directory.
        """
        rest = spec.removeprefix("sqlite")
        options: dict[str, str] = {}
        if "?" in rest:
            rest, _, query = rest.rpartition("?")
            for item in query.split("&"):
                name, sep, value = item.partition("=")
                if not sep or name != "synchronous":
                    raise KVError(
                        f"KV spec {spec!r}: unknown option {item!r}",
                        hint="the only option is ?synchronous=normal|full",
                    )
                options[name] = value.lower()
        if rest.startswith(":"):
            if not rest[1:]:
                raise KVError(f"KV spec {spec!r}: no path after 'sqlite:'")
            path = pathlib.Path(rest[1:]).expanduser()
        elif rest == "":
            path = state_dir / "kv.sqlite3"
        else:
            raise KVError(f"KV spec {spec!r} is not 'sqlite' or 'sqlite:PATH'")
        synchronous = options.get("synchronous", "normal")
        if synchronous not in ("normal", "full"):
            raise KVError(f"KV spec {spec!r}: synchronous must be 'normal' or 'full'")
        return cls(path, synchronous=synchronous, clock=clock)  # type: ignore[arg-type]

    def now(self) -> float:
        return self._clock()

    # -- the ways to run a statement -----------------------------------------------------

    def _closed_error(self) -> KVError:
        return KVError(f"the KV store {self.path} is closed")

    def _error(self, exc: sqlite3.Error) -> KVError:
        if isinstance(exc, sqlite3.OperationalError) and _is_busy(exc):
            return KVError(
                f"the KV store {self.path} stayed locked by another process",
                hint="another process holds a long write; retry",
            )
        if self._closed:
            return self._closed_error()
        return KVError(f"KV store {self.path}: {exc}")

    def _inline(self, fn: Callable[[sqlite3.Connection], _T]) -> _T | _Busy:
        """Run ``fn(inline connection)`` on this thread; :data:`_BUSY_MARK` if a lock is in the way."""
        if self._closed:
            raise self._closed_error()
        try:
            return fn(self._fast)
        except sqlite3.OperationalError as exc:
            if _is_busy(exc):
                return _BUSY_MARK
            raise self._error(exc) from exc
        except sqlite3.Error as exc:
            raise self._error(exc) from exc

    def _submit(self, fn: Callable[[sqlite3.Connection], _T]) -> Future[_T]:
        if self._closed:
            raise self._closed_error()
        try:
            return self._executor.submit(fn, self._slow)
        except RuntimeError as exc:  # the executor was shut down by close()
            raise self._closed_error() from exc

    async def _on_thread(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run ``fn(writer connection)`` on the writer thread; it may wait for locks."""
        try:
            return await asyncio.wrap_future(self._submit(fn))
        except sqlite3.Error as exc:
            raise self._error(exc) from exc

    def _on_thread_sync(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        """:meth:`_on_thread`, blocking this thread until the writer thread is done."""
        try:
            return self._submit(fn).result()
        except sqlite3.Error as exc:
            raise self._error(exc) from exc

    async def _run(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run ``fn`` inline; on a lock, on the writer thread."""
        result = self._inline(fn)
        if result is _BUSY_MARK:
            return await self._on_thread(fn)
        return result

    def _run_sync(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        result = self._inline(fn)
        if result is _BUSY_MARK:
            return self._on_thread_sync(fn)
        return result

    def _wrote_inline(self) -> None:
        if next(self._inline_count) % CHECKPOINT_EVERY == 0 and not self._closed:
            with contextlib.suppress(RuntimeError):  # closed meanwhile
                self._executor.submit(_quietly, self._slow, "PRAGMA wal_checkpoint(PASSIVE)")

    def _write_inline(self, size: int) -> bool:
        """True if a write of ``size`` bytes runs inline (else: on the writer thread)."""
        return self._inline_writes and size <= INLINE_VALUE_BYTES

    def _entry(self, ns: str, bkey: bytes, row: _Row | None) -> Entry | _Busy | None:
        """The entry of a ``_GET`` row; :data:`_BUSY_MARK` if its value must be read on the thread."""
        if row is None:
            return None
        value, expiration, metadata = row
        if expiration is not None and expiration <= self._clock():
            self._purge_one(ns, bkey)
            return None
        if value is None:  # too large to read on the loop
            return _BUSY_MARK
        return Entry(value, expiration, metadata)

    def _full_entry(self, row: _Row | None) -> Entry | None:
        if row is None or not is_live(row[1], self._clock()):
            return None
        return Entry(row[0], row[1], row[2])

    # -- KVBackend -----------------------------------------------------------------------

    async def get(self, ns: str, key: str) -> Entry | None:
        bkey = key.encode()
        full = _fetch_one(_GET_FULL, (ns, bkey))
        row = self._inline(_fetch_one(_GET, (INLINE_VALUE_BYTES, ns, bkey)))
        if row is _BUSY_MARK:
            return self._full_entry(await self._on_thread(full))
        entry = self._entry(ns, bkey, row)
        if entry is _BUSY_MARK:
            return self._full_entry(await self._on_thread(full))
        return entry

    def get_sync(self, ns: str, key: str) -> Entry | None:
        bkey = key.encode()
        full = _fetch_one(_GET_FULL, (ns, bkey))
        row = self._inline(_fetch_one(_GET, (INLINE_VALUE_BYTES, ns, bkey)))
        if row is _BUSY_MARK:
            return self._full_entry(self._on_thread_sync(full))
        entry = self._entry(ns, bkey, row)
        if entry is _BUSY_MARK:
            return self._full_entry(self._on_thread_sync(full))
        return entry

    async def get_many(self, ns: str, keys: Sequence[str]) -> dict[str, Entry]:
        if not keys:
            return {}
        bkeys = [key.encode() for key in keys]
        marks = ", ".join("?" * len(bkeys))
        sql = (
            "SELECT key, CASE WHEN length(value) <= ? THEN value END, expiration, metadata"
            f" FROM kv WHERE ns = ? AND key IN ({marks})"
        )
        args = (INLINE_VALUE_BYTES, ns, *bkeys)
        rows = await self._run(lambda c: c.execute(sql, args).fetchall())
        now = self._clock()
        found: dict[str, Entry] = {}
        for bkey, value, expiration, metadata in rows:
            if not is_live(expiration, now):
                self._purge_one(ns, bkey)
                continue
            key = bkey.decode()
            if value is None:  # too large to read on the loop
                entry = await self.get(ns, key)
                if entry is not None:
                    found[key] = entry
            else:
                found[key] = Entry(value, expiration, metadata)
        return found

    async def put(
        self,
        ns: str,
        key: str,
        value: bytes,
        expiration: float | None,
        metadata: bytes | None,
    ) -> None:
        put = _execute(_PUT, (ns, key.encode(), expiration, metadata, value))
        if self._write_inline(len(value)):
            await self._run(put)
            self._wrote_inline()
        else:
            await self._on_thread(put)

    def put_sync(
        self,
        ns: str,
        key: str,
        value: bytes,
        expiration: float | None,
        metadata: bytes | None,
    ) -> None:
        put = _execute(_PUT, (ns, key.encode(), expiration, metadata, value))
        if self._write_inline(len(value)):
            self._run_sync(put)
            self._wrote_inline()
        else:
            self._on_thread_sync(put)

    async def delete(self, ns: str, key: str) -> None:
        delete = _execute(_DELETE, (ns, key.encode()))
        if self._write_inline(0):
            await self._run(delete)
            self._wrote_inline()
        else:
            await self._on_thread(delete)

    def delete_sync(self, ns: str, key: str) -> None:
        delete = _execute(_DELETE, (ns, key.encode()))
        if self._write_inline(0):
            self._run_sync(delete)
            self._wrote_inline()
        else:
            self._on_thread_sync(delete)

    def _list_query(
        self, ns: str, prefix: str | None, limit: int, cursor: str | None
    ) -> Callable[[sqlite3.Connection], list[_Row]]:
        low = (prefix or "").encode()
        sql = _LIST_FROM
        if cursor is not None:
            after = decode_cursor(cursor).encode()
            if after >= low:
                low, sql = after, _LIST_AFTER
        args = (ns, low, _upper_bound((prefix or "").encode()), self._clock(), limit + 1)
        return lambda c: c.execute(sql, args).fetchall()

    @staticmethod
    def _page(rows: list[_Row], limit: int) -> ListPage:
        keys = [KeyRecord(name.decode(), exp, meta) for name, exp, meta in rows[:limit]]
        if len(rows) > limit:
            return ListPage(keys, encode_cursor(keys[-1].name))
        return ListPage(keys, None)

    async def list(self, ns: str, prefix: str | None, limit: int, cursor: str | None) -> ListPage:
        return self._page(await self._run(self._list_query(ns, prefix, limit, cursor)), limit)

    def list_sync(self, ns: str, prefix: str | None, limit: int, cursor: str | None) -> ListPage:
        return self._page(self._run_sync(self._list_query(ns, prefix, limit, cursor)), limit)

    async def purge_expired(self) -> int:
        now = self._clock()

        def purge(conn: sqlite3.Connection) -> int:
            removed = 0
            while True:
                count = conn.execute(_PURGE, (now, _PURGE_BATCH)).rowcount
                removed += count
                if count < _PURGE_BATCH:
                    return removed

        return await self._on_thread(purge)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._executor.shutdown(wait=True)
        self._fast.close()
        self._slow.close()

    def _purge_one(self, ns: str, bkey: bytes) -> None:
        """Delete one expired row met by a read, without waiting for it.

        Inline if no lock is in the way (``synchronous=normal``), else on the
        writer thread; if that fails too, :meth:`purge_expired` will do it.
        """
        args = (ns, bkey, self._clock())
        if self._inline_writes:
            try:
                self._fast.execute(_DELETE_IF_EXPIRED, args)
                return
            except sqlite3.Error:
                pass
        if not self._closed:
            with contextlib.suppress(RuntimeError):  # closed meanwhile
                self._executor.submit(_quietly, self._slow, _DELETE_IF_EXPIRED, args)


def _fetch_one(sql: str, args: tuple[object, ...]) -> Callable[[sqlite3.Connection], _Row | None]:
    def fetch(conn: sqlite3.Connection) -> _Row | None:
        row: _Row | None = conn.execute(sql, args).fetchone()
        return row

    return fetch


def _execute(sql: str, args: tuple[object, ...]) -> Callable[[sqlite3.Connection], None]:
    def execute(conn: sqlite3.Connection) -> None:
        conn.execute(sql, args)

    return execute


def _quietly(conn: sqlite3.Connection, sql: str, args: tuple[object, ...] = ()) -> None:
    """Run housekeeping SQL on the writer thread; a failure is retried by a later purge."""
    with contextlib.suppress(sqlite3.Error):
        conn.execute(sql, args)
