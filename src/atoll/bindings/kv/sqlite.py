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
    put (≈30-90 µs on this machine's virtual disk, 0.1-10 ms on real ones),
    which is why those puts run on the writer thread (below), not on the loop.

Several processes
    Any number of processes may open the same file: WAL lets readers run
    while one writer commits, and writers wait for each other on SQLite's
    lock (``busy_timeout``, 5 s by default, then :class:`~atoll.errors.KVError`).

Event loop
    A point read is ≈10 µs and a small put ≈15 µs inline, against ≈50 µs for
    a round trip to a thread (docs: REFERENCE.md), so they run inline on the
    loop through a connection whose busy timeout is 0: it never waits for a
    lock. Whenever it would (another process holds the write lock, a
    checkpoint is running), and for anything that may take long - values over
    :data:`INLINE_VALUE_BYTES`, ``synchronous=full`` puts, purges,
    checkpoints - the call goes to one writer thread with its own
    connection, which waits for the lock as long as ``busy_timeout``.

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
import pathlib
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Literal, Self, TypeVar

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
        self._writes_since_checkpoint = 0
        self._closed = False
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
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

    # -- the two ways to run a statement -------------------------------------------------

    async def _on_thread(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run ``fn(slow connection)`` on the writer thread; it may wait for locks."""
        if self._closed:
            raise KVError(f"the KV store {self.path} is closed")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, fn, self._slow)
        except sqlite3.OperationalError as exc:
            if _is_busy(exc):
                raise KVError(
                    f"the KV store {self.path} stayed locked by another process",
                    hint="another process holds a long write; retry",
                ) from exc
            raise KVError(f"KV store {self.path}: {exc}") from exc
        except sqlite3.Error as exc:
            raise KVError(f"KV store {self.path}: {exc}") from exc

    async def _run(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run ``fn`` inline on the loop's connection; on a lock, on the writer thread."""
        if self._closed:
            raise KVError(f"the KV store {self.path} is closed")
        try:
            return fn(self._fast)
        except sqlite3.OperationalError as exc:
            if not _is_busy(exc):
                raise KVError(f"KV store {self.path}: {exc}") from exc
        except sqlite3.Error as exc:
            raise KVError(f"KV store {self.path}: {exc}") from exc
        return await self._on_thread(fn)

    def _wrote_inline(self) -> None:
        self._writes_since_checkpoint += 1
        if self._writes_since_checkpoint >= CHECKPOINT_EVERY and not self._closed:
            self._writes_since_checkpoint = 0
            self._executor.submit(_quietly, self._slow, "PRAGMA wal_checkpoint(PASSIVE)")

    # -- KVBackend -----------------------------------------------------------------------

    async def get(self, ns: str, key: str) -> Entry | None:
        bkey = key.encode()
        if self._closed:
            raise KVError(f"the KV store {self.path} is closed")
        try:
            row = self._fast.execute(_GET, (INLINE_VALUE_BYTES, ns, bkey)).fetchone()
        except sqlite3.OperationalError as exc:
            if not _is_busy(exc):
                raise KVError(f"KV store {self.path}: {exc}") from exc
            row = await self._on_thread(lambda c: c.execute(_GET_FULL, (ns, bkey)).fetchone())
        if row is None:
            return None
        value, expiration, metadata = row
        if expiration is not None and expiration <= self._clock():
            self._purge_one(ns, bkey)
            return None
        if value is None:  # too large to read on the loop
            row = await self._on_thread(lambda c: c.execute(_GET_FULL, (ns, bkey)).fetchone())
            if row is None or not is_live(row[1], self._clock()):
                return None
            value, expiration, metadata = row
        return Entry(value, expiration, metadata)

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
        args = (ns, key.encode(), expiration, metadata, value)

        def put(conn: sqlite3.Connection) -> None:
            conn.execute(_PUT, args)

        if self._inline_writes and len(value) <= INLINE_VALUE_BYTES:
            await self._run(put)
            self._wrote_inline()
        else:
            await self._on_thread(put)

    async def delete(self, ns: str, key: str) -> None:
        args = (ns, key.encode())

        def delete(conn: sqlite3.Connection) -> None:
            conn.execute(_DELETE, args)

        if self._inline_writes:
            await self._run(delete)
            self._wrote_inline()
        else:
            await self._on_thread(delete)

    async def list(self, ns: str, prefix: str | None, limit: int, cursor: str | None) -> ListPage:
        low = (prefix or "").encode()
        sql = _LIST_FROM
        if cursor is not None:
            after = decode_cursor(cursor).encode()
            if after >= low:
                low, sql = after, _LIST_AFTER
        args = (ns, low, _upper_bound((prefix or "").encode()), self._clock(), limit + 1)
        rows = await self._run(lambda c: c.execute(sql, args).fetchall())
        keys = [KeyRecord(name.decode(), exp, meta) for name, exp, meta in rows[:limit]]
        if len(rows) > limit:
            return ListPage(keys, encode_cursor(keys[-1].name))
        return ListPage(keys, None)

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
            self._executor.submit(_quietly, self._slow, _DELETE_IF_EXPIRED, args)


def _quietly(conn: sqlite3.Connection, sql: str, args: tuple[object, ...] = ()) -> None:
    """Run housekeeping SQL on the writer thread; a failure is retried by a later purge."""
    with contextlib.suppress(sqlite3.Error):
        conn.execute(sql, args)
