"""``env.CACHE``: the Workers KV API, in Python, over any :class:`KVBackend`.

A :class:`KVNamespace` is created once per deploy for each ``[[kv_namespaces]]``
binding of a worker, bound to one namespace id, and shared by every request
of that worker (it keeps no per-request state) and by every event loop and
thread of the process. Its API methods are coroutines, callable from any
running loop; the ``*_sync`` twins serve the ``atoll:kv`` host functions
of wasm guests, which cannot await.

Every argument is checked against Workers KV's limits before the backend sees
it; a value outside them raises :class:`~atoll.errors.KVLimitError` naming the
key and the limit:

======================  ============================================
key                     a ``str``, not empty, not ``.`` or ``..``, ≤ 512 bytes of UTF-8
value                   ≤ 25 MiB once encoded
metadata                ≤ 1024 bytes of serialized JSON
``expiration_ttl``      ≥ 60 seconds
``expiration``          ≥ now + 60 seconds (seconds since the epoch)
``cache_ttl``           ≥ 30 seconds
``list(limit=…)``       1 to 1000 (0: the default, 1000, as Workers reads it)
``list(prefix=…)``      ≤ 512 bytes of UTF-8, as a key
``get_many(keys)``      1 to 100 keys, values of at most 25 MiB together
======================  ============================================

Values: a ``str`` is stored as its UTF-8 text, ``bytes``-like as is, and
anything else (dict, list, number, bool) as its JSON text, so
``put("k", {"a": 1})`` then ``get("k", type="json")`` gives ``{"a": 1}``. A
``str`` is *not* JSON-encoded: to store a JSON string, pass ``json.dumps(s)``.
``None`` is refused (use :meth:`KVNamespace.delete`).

Expirations are whole seconds, as in Workers: a fractional one is rounded up,
and "60 seconds from now" is counted from the current whole second, so
``expiration=int(time.time()) + 60`` is accepted.

Reads: ``type="text"`` decodes UTF-8 with bad bytes replaced by U+FFFD (as
Workers' ``TextDecoder`` does), ``"json"`` parses, ``"bytes"`` gives the bytes,
``"stream"`` a :class:`~atoll.bindings.kv.stream.KVStream` (async iterable of
chunks). ``put`` takes a stream too (see :mod:`atoll.bindings.kv.stream`).

Consistency: reads go to the backend, so a process reads its own writes and,
on SQLite and Redis, every process sees a write once its ``put`` has
returned. Only ``cache_ttl`` trades that for speed: see
:mod:`atoll.bindings.kv.cache` for its staleness bound.
"""

from __future__ import annotations

import json
import math
import threading
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final, Generic, Literal, NamedTuple, TypeVar, overload

from atoll.bindings.kv.base import Entry, KVBackend, ListPage
from atoll.bindings.kv.cache import ReadCache
from atoll.bindings.kv.stream import KVStream, is_stream, read_value, read_value_sync
from atoll.errors import KVError, KVLimitError

__all__ = [
    "DEFAULT_CACHE_TTL",
    "MAX_BULK_BYTES",
    "MAX_GET_MANY_KEYS",
    "MAX_KEY_BYTES",
    "MAX_LIST_LIMIT",
    "MAX_METADATA_BYTES",
    "MAX_VALUE_BYTES",
    "MIN_CACHE_TTL",
    "MIN_EXPIRATION_TTL",
    "KVNamespace",
    "KeyInfo",
    "ListResult",
    "ValueType",
    "ValueWithMetadata",
    "check_key",
]

MAX_KEY_BYTES: Final = 512
MAX_VALUE_BYTES: Final = 25 * 1024 * 1024
MAX_METADATA_BYTES: Final = 1024
MIN_EXPIRATION_TTL: Final = 60
MIN_CACHE_TTL: Final = 30
DEFAULT_CACHE_TTL: Final = 60
"""Workers' default ``cacheTtl``; atoll applies it only where a caller opts in."""
MAX_LIST_LIMIT: Final = 1000
MAX_GET_MANY_KEYS: Final = 100
MAX_BULK_BYTES: Final = 25 * 1024 * 1024
"""The values one bulk read returns, together (Workers' bulk ``get`` cap)."""

ValueType = Literal["text", "json", "bytes", "stream"]
_TYPES: Final = ("text", "json", "bytes", "stream")
_BULK_TYPES: Final = ("text", "json", "bytes")

T = TypeVar("T")


class ValueWithMetadata(NamedTuple, Generic[T]):
    """What :meth:`KVNamespace.get_with_metadata` returns; both ``None`` for a missing key."""

    value: T | None
    metadata: Any


class KeyInfo:
    """One key of a :class:`ListResult`: ``name``, ``expiration``, ``metadata``.

    ``expiration`` is in seconds since the epoch (``None``: the key does not
    expire); ``metadata`` is the key's metadata decoded from JSON (``None``:
    none), decoded on first access: a listing that reads only names parses
    no JSON.
    """

    __slots__ = ("_metadata", "_raw", "expiration", "name")

    def __init__(
        self,
        name: str,
        expiration: int | None = None,
        metadata: Any = None,
        *,
        raw_metadata: bytes | None = None,
    ) -> None:
        self.name = name
        self.expiration = expiration
        self._metadata = metadata
        self._raw = raw_metadata

    @property
    def metadata(self) -> Any:
        if self._raw is not None:
            self._metadata = _decode_metadata(self._raw, self.name)
            self._raw = None
        return self._metadata

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, KeyInfo):
            return NotImplemented
        return (self.name, self.expiration, self.metadata) == (
            other.name,
            other.expiration,
            other.metadata,
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"KeyInfo(name={self.name!r}, expiration={self.expiration!r},"
            f" metadata={self.metadata!r})"
        )


@dataclass(frozen=True, slots=True)
class ListResult:
    """A page of :meth:`KVNamespace.list`.

    ``list_complete`` is true on the last page; otherwise pass ``cursor`` to
    the next call. A page may hold fewer than ``limit`` keys (even none) and
    still not be the last: keys that expired are skipped.
    """

    keys: list[KeyInfo]
    list_complete: bool
    cursor: str | None


_json_decode = json.JSONDecoder().decode  # json.loads without its per-call checks

_caches: weakref.WeakKeyDictionary[KVBackend, ReadCache] = weakref.WeakKeyDictionary()
_caches_lock = threading.Lock()


def _show(key: str) -> str:
    return repr(key if len(key) <= 60 else key[:57] + "...")


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class KVNamespace:
    """One KV namespace as a worker sees it (``env.CACHE``); see the module doc.

    ``backend`` is the process's store and ``namespace_id`` the ``id`` of the
    ``[[kv_namespaces]]`` entry: keys of different ids never mix. ``cache``
    defaults to the one :class:`ReadCache` of ``backend`` (shared by every
    namespace on it, so any write of this process invalidates it).
    ``default_cache_ttl`` applies to reads that pass no ``cache_ttl``; ``None``
    (the default) means such reads always go to the backend. Set it to
    :data:`DEFAULT_CACHE_TTL` to behave like Workers, whose reads may be up to
    60 s stale.

    Raises :class:`~atoll.errors.KVError` if ``namespace_id`` is empty.
    """

    __slots__ = ("_backend", "_cache", "_default_cache_ttl", "_ns")

    def __init__(
        self,
        backend: KVBackend,
        namespace_id: str,
        *,
        cache: ReadCache | None = None,
        default_cache_ttl: float | None = None,
    ) -> None:
        if not isinstance(namespace_id, str) or not namespace_id:
            raise KVError(f"KV namespace id {namespace_id!r} must be a non-empty string")
        if default_cache_ttl is not None:
            _check_cache_ttl(default_cache_ttl, "default_cache_ttl")
        self._backend = backend
        self._ns = namespace_id
        if cache is None:
            with _caches_lock:
                cache = _caches.get(backend)
                if cache is None:
                    cache = _caches[backend] = ReadCache()
        self._cache = cache
        self._default_cache_ttl = default_cache_ttl

    @property
    def id(self) -> str:
        """The namespace id this object is bound to."""
        return self._ns

    @property
    def backend(self) -> KVBackend:
        return self._backend

    def __repr__(self) -> str:
        return f"<KVNamespace {self._ns!r} on {type(self._backend).__name__}>"

    # -- reads ---------------------------------------------------------------------------

    def _cache_ttl(self, key: str, cache_ttl: float | None) -> float | None:
        if cache_ttl is None:
            return self._default_cache_ttl
        _check_cache_ttl(cache_ttl, "cache_ttl", key)
        return cache_ttl

    async def _read(self, key: str, cache_ttl: float | None) -> Entry | None:
        cache_ttl = self._cache_ttl(key, cache_ttl)
        if cache_ttl is None:
            return await self._backend.get(self._ns, key)
        cache = self._cache
        now = self._backend.now()
        slot = cache.lookup(self._ns, key, cache_ttl, now)
        if slot is not None:
            return slot.entry
        generation = cache.generation
        entry = await self._backend.get(self._ns, key)
        cache.store(self._ns, key, entry, now, generation)
        return entry

    def _read_sync(self, key: str, cache_ttl: float | None) -> Entry | None:
        cache_ttl = self._cache_ttl(key, cache_ttl)
        if cache_ttl is None:
            return self._backend.get_sync(self._ns, key)
        cache = self._cache
        now = self._backend.now()
        slot = cache.lookup(self._ns, key, cache_ttl, now)
        if slot is not None:
            return slot.entry
        generation = cache.generation
        entry = self._backend.get_sync(self._ns, key)
        cache.store(self._ns, key, entry, now, generation)
        return entry

    @overload
    async def get(
        self, key: str, type: Literal["text"] = "text", cache_ttl: float | None = None
    ) -> str | None: ...
    @overload
    async def get(self, key: str, type: Literal["json"], cache_ttl: float | None = None) -> Any: ...
    @overload
    async def get(
        self, key: str, type: Literal["bytes"], cache_ttl: float | None = None
    ) -> bytes | None: ...
    @overload
    async def get(
        self, key: str, type: Literal["stream"], cache_ttl: float | None = None
    ) -> KVStream | None: ...
    async def get(self, key: str, type: ValueType = "text", cache_ttl: float | None = None) -> Any:
        """The value of ``key`` decoded as ``type``, or ``None`` if it is missing or expired.

        ``type``: ``"text"`` (``str``; bad UTF-8 replaced), ``"json"`` (the
        decoded JSON), ``"bytes"`` or ``"stream"`` (a :class:`KVStream`). ``cache_ttl`` (≥ 30 s) lets this process answer from a
        read made up to that many seconds ago. Raises
        :class:`~atoll.errors.KVLimitError` for a bad key or ``cache_ttl``,
        :class:`~atoll.errors.KVError` if the value is not valid as ``type``.
        """
        check_key(key)
        if type not in _TYPES:
            raise _bad_type(type)
        entry = await self._read(key, cache_ttl)
        if entry is None:
            return None
        return _decode(entry.value, type, key)

    @overload
    async def get_with_metadata(
        self, key: str, type: Literal["text"] = "text", cache_ttl: float | None = None
    ) -> ValueWithMetadata[str]: ...
    @overload
    async def get_with_metadata(
        self, key: str, type: Literal["json"], cache_ttl: float | None = None
    ) -> ValueWithMetadata[Any]: ...
    @overload
    async def get_with_metadata(
        self, key: str, type: Literal["bytes"], cache_ttl: float | None = None
    ) -> ValueWithMetadata[bytes]: ...
    @overload
    async def get_with_metadata(
        self, key: str, type: Literal["stream"], cache_ttl: float | None = None
    ) -> ValueWithMetadata[KVStream]: ...
    @overload
    async def get_with_metadata(
        self,
        key: list[str] | tuple[str, ...],
        type: ValueType = "text",
        cache_ttl: float | None = None,
    ) -> dict[str, ValueWithMetadata[Any]]: ...
    async def get_with_metadata(
        self, key: str | Iterable[str], type: ValueType = "text", cache_ttl: float | None = None
    ) -> ValueWithMetadata[Any] | dict[str, ValueWithMetadata[Any]]:
        """Like :meth:`get`, with the key's metadata: ``(value, metadata)``, both ``None`` if missing.

        Given a list of keys (Workers' bulk ``getWithMetadata``), a dict of
        every key asked to its ``(value, metadata)``, with the limits of
        :meth:`get_many`.
        """
        if not isinstance(key, str):
            entries = await self._bulk(key, type, cache_ttl)
            return {
                name: ValueWithMetadata(None, None)
                if entry is None
                else ValueWithMetadata(
                    _decode(entry.value, type, name), _decode_metadata(entry.metadata, name)
                )
                for name, entry in entries.items()
            }
        check_key(key)
        if type not in _TYPES:
            raise _bad_type(type)
        entry = await self._read(key, cache_ttl)
        if entry is None:
            return ValueWithMetadata(None, None)
        return ValueWithMetadata(
            _decode(entry.value, type, key), _decode_metadata(entry.metadata, key)
        )

    async def get_many(
        self, keys: Iterable[str], type: ValueType = "text", cache_ttl: float | None = None
    ) -> dict[str, Any]:
        """The values of 1 to 100 ``keys``: a dict of every key asked, ``None`` if missing.

        Same types (but ``"stream"``), ``cache_ttl`` and errors as :meth:`get`.
        Raises :class:`~atoll.errors.KVLimitError` for no key or more than 100
        (as Workers does), and when the values found are over 25 MiB together.
        """
        entries = await self._bulk(keys, type, cache_ttl)
        return {
            key: None if entry is None else _decode(entry.value, type, key)
            for key, entry in entries.items()
        }

    async def _bulk(
        self, keys: Iterable[str], type: ValueType, cache_ttl: float | None
    ) -> dict[str, Entry | None]:
        """The entries of a bulk read, in the order asked, checked against Workers' limits."""
        if isinstance(keys, str):
            raise KVError("get_many takes a list of keys, not one str", hint="use get(key)")
        wanted = list(dict.fromkeys(keys))
        if not wanted:
            raise KVLimitError(
                f"KV namespace {self._ns!r}: a bulk read needs at least one key",
                hint="Workers refuses get([]) too; skip the call when there is nothing to read",
            )
        if len(wanted) > MAX_GET_MANY_KEYS:
            raise KVLimitError(
                f"KV namespace {self._ns!r}: get_many of {len(wanted)} keys is over the limit"
                f" of {MAX_GET_MANY_KEYS} keys",
                hint="split the keys into batches of 100",
            )
        for key in wanted:
            check_key(key)
        if type not in _BULK_TYPES:
            raise KVError(
                f"KV bulk read type {type!r} is not one of 'text', 'json', 'bytes'",
                hint="read a stream one key at a time with get(key, type='stream')",
            )
        if cache_ttl is None:
            cache_ttl = self._default_cache_ttl
        else:
            _check_cache_ttl(cache_ttl, "cache_ttl", wanted[0])
        entries: dict[str, Entry | None] = {}
        if cache_ttl is None:
            found = await self._backend.get_many(self._ns, wanted)
        else:
            now = self._backend.now()
            missing: list[str] = []
            for key in wanted:
                slot = self._cache.lookup(self._ns, key, cache_ttl, now)
                if slot is None:
                    missing.append(key)
                else:
                    entries[key] = slot.entry
            generation = self._cache.generation
            found = await self._backend.get_many(self._ns, missing) if missing else {}
            for key in missing:
                self._cache.store(self._ns, key, found.get(key), now, generation)
        result = {key: entries[key] if key in entries else found.get(key) for key in wanted}
        total = sum(len(entry.value) for entry in result.values() if entry is not None)
        if total > MAX_BULK_BYTES:
            raise KVLimitError(
                f"KV namespace {self._ns!r}: the {len(wanted)} values read are {total} bytes"
                f" together, over the bulk read limit of {MAX_BULK_BYTES} bytes (25 MiB)",
                hint="read fewer keys at a time",
            )
        return result

    async def list(
        self, prefix: str | None = None, limit: int = MAX_LIST_LIMIT, cursor: str | None = None
    ) -> ListResult:
        """Keys in UTF-8 byte order, with expiration and metadata, ``limit`` (1-1000) at a time.

        ``prefix`` keeps keys that start with it; ``cursor`` is the ``cursor``
        of the previous page. Raises :class:`~atoll.errors.KVLimitError` for a
        bad ``limit``, :class:`~atoll.errors.KVError` for a bad cursor.
        """
        limit = self._check_list(prefix, limit, cursor)
        return _list_result(
            await self._backend.list(self._ns, prefix or None, limit, cursor or None)
        )

    def _check_list(self, prefix: str | None, limit: int, cursor: str | None) -> int:
        """The limit to use (0 means the default, as in Workers); raises for bad arguments."""
        if limit == 0 and not isinstance(limit, bool):
            limit = MAX_LIST_LIMIT
        if (
            isinstance(limit, bool)
            or not isinstance(limit, int)
            or not (1 <= limit <= MAX_LIST_LIMIT)
        ):
            raise KVLimitError(
                f"KV namespace {self._ns!r}: list limit {limit!r} is outside 1..{MAX_LIST_LIMIT}"
            )
        if prefix is not None and not isinstance(prefix, str):
            raise KVError(f"KV list prefix must be a str, not {type(prefix).__name__}")
        if prefix:
            size = len(_utf8(prefix, "prefix"))
            if size > MAX_KEY_BYTES:
                raise KVLimitError(
                    f"KV list prefix {_show(prefix)} is {size} bytes: over the limit of"
                    f" {MAX_KEY_BYTES} bytes (UTF-8), the size of a key",
                )
        if cursor is not None and not isinstance(cursor, str):
            raise KVError(f"KV list cursor must be a str, not {type(cursor).__name__}")
        return limit

    # -- writes --------------------------------------------------------------------------

    async def put(
        self,
        key: str,
        value: str | bytes | bytearray | memoryview | Any,
        expiration: float | None = None,
        expiration_ttl: float | None = None,
        metadata: Any = None,
    ) -> None:
        """Create or replace ``key`` with ``value`` (see the module doc for how it is encoded).

        ``expiration`` (seconds since the epoch, ≥ now + 60) or
        ``expiration_ttl`` (seconds from now, ≥ 60), not both, make the key
        expire; ``metadata`` is any JSON-able value (≤ 1024 bytes as JSON).
        When it returns, the write is durable as the backend documents and
        visible to every later read. Raises :class:`~atoll.errors.KVLimitError`
        for a bad key, size or expiration, :class:`~atoll.errors.KVError` for a
        value or metadata that cannot be encoded. ``value`` may be a stream (a
        :class:`KVStream`, an async iterable of chunks, a binary file): it is
        read to its end, or until it passes 25 MiB.
        """
        if is_stream(value):
            check_key(key)
            value = await read_value(value, MAX_VALUE_BYTES, f"KV key {_show(key)}")
        data, meta, expires = self._prepare_put(key, value, expiration, expiration_ttl, metadata)
        try:
            await self._backend.put(self._ns, key, data, expires, meta)
        finally:
            self._cache.invalidate(self._ns, key)

    def check_put(
        self,
        key: str,
        value: str | bytes | bytearray | memoryview | Any,
        expiration: float | None = None,
        expiration_ttl: float | None = None,
        metadata: Any = None,
    ) -> None:
        """Raise what :meth:`put` would raise for these arguments, without writing.

        For callers that validate a batch before writing any of it (``atoll
        kv bulk put``).
        """
        self._prepare_put(key, value, expiration, expiration_ttl, metadata)

    def _prepare_put(
        self,
        key: str,
        value: object,
        expiration: float | None,
        expiration_ttl: float | None,
        metadata: object,
    ) -> tuple[bytes, bytes | None, float | None]:
        check_key(key)
        data = _encode_value(value, key)
        meta = _encode_metadata(metadata, key)
        return data, meta, self._expiration(key, expiration, expiration_ttl)

    async def delete(self, key: str) -> None:
        """Remove ``key``; removing a missing key is not an error."""
        check_key(key)
        try:
            await self._backend.delete(self._ns, key)
        finally:
            self._cache.invalidate(self._ns, key)

    # -- blocking twins, for wasm host functions -----------------------------------------

    def get_sync(self, key: str, cache_ttl: float | None = None) -> bytes | None:
        """``await get(key, type="bytes", cache_ttl=…)``, blocking the calling thread.

        For the ``atoll:kv`` host functions (wasm guests call synchronously):
        same checks, same read cache, same errors. It blocks for one store
        operation (µs on SQLite, a round trip on Redis); Python code should
        await :meth:`get` instead.
        """
        check_key(key)
        entry = self._read_sync(key, cache_ttl)
        return None if entry is None else entry.value

    def put_sync(
        self,
        key: str,
        value: str | bytes | bytearray | memoryview | Any,
        expiration: float | None = None,
        expiration_ttl: float | None = None,
        metadata: Any = None,
    ) -> None:
        """:meth:`put`, blocking the calling thread (see :meth:`get_sync`); no async streams."""
        if is_stream(value):
            check_key(key)
            value = read_value_sync(value, MAX_VALUE_BYTES, f"KV key {_show(key)}")
        data, meta, expires = self._prepare_put(key, value, expiration, expiration_ttl, metadata)
        try:
            self._backend.put_sync(self._ns, key, data, expires, meta)
        finally:
            self._cache.invalidate(self._ns, key)

    def delete_sync(self, key: str) -> None:
        """:meth:`delete`, blocking the calling thread (see :meth:`get_sync`)."""
        check_key(key)
        try:
            self._backend.delete_sync(self._ns, key)
        finally:
            self._cache.invalidate(self._ns, key)

    def list_sync(
        self, prefix: str | None = None, limit: int = MAX_LIST_LIMIT, cursor: str | None = None
    ) -> ListResult:
        """:meth:`list`, blocking the calling thread (see :meth:`get_sync`)."""
        limit = self._check_list(prefix, limit, cursor)
        return _list_result(
            self._backend.list_sync(self._ns, prefix or None, limit, cursor or None)
        )

    def _expiration(
        self, key: str, expiration: float | None, expiration_ttl: float | None
    ) -> float | None:
        if expiration is not None and expiration_ttl is not None:
            raise KVError(
                f"KV key {_show(key)}: give expiration or expiration_ttl, not both",
            )
        now = self._backend.now()
        if expiration_ttl is not None:
            if not _is_number(expiration_ttl) or not math.isfinite(expiration_ttl):
                raise KVError(f"KV key {_show(key)}: expiration_ttl must be a number of seconds")
            if expiration_ttl < MIN_EXPIRATION_TTL:
                raise KVLimitError(
                    f"KV key {_show(key)}: expiration_ttl {expiration_ttl} is under the minimum"
                    f" of {MIN_EXPIRATION_TTL} seconds",
                )
            return float(math.ceil(now + expiration_ttl))
        if expiration is not None:
            if not _is_number(expiration) or not math.isfinite(expiration):
                raise KVError(
                    f"KV key {_show(key)}: expiration must be seconds since the epoch (a number)"
                )
            if expiration < math.floor(now) + MIN_EXPIRATION_TTL:  # whole seconds, as Workers
                raise KVLimitError(
                    f"KV key {_show(key)}: expiration {expiration} is less than"
                    f" {MIN_EXPIRATION_TTL} seconds from now ({math.floor(now)})",
                    hint="expiration is absolute (seconds since the epoch); for a duration"
                    " use expiration_ttl",
                )
            return float(math.ceil(expiration))
        return None


# -- checks and codecs ---------------------------------------------------------------------


def _list_result(page: ListPage) -> ListResult:
    keys = [
        KeyInfo(
            record.name,
            None if record.expiration is None else math.ceil(record.expiration),
            raw_metadata=record.metadata,
        )
        for record in page.keys
    ]
    return ListResult(keys, page.cursor is None, page.cursor)


def _utf8(text: str, what: str) -> bytes:
    try:
        return text.encode()
    except UnicodeEncodeError as exc:
        raise KVError(f"KV {what} {_show(text)} is not valid Unicode (lone surrogate)") from exc


def check_key(key: object) -> None:
    """Raise :class:`~atoll.errors.KVLimitError` (or ``KVError``) if ``key`` is not a valid key."""
    if not isinstance(key, str):
        raise KVError(f"a KV key must be a str, not {type(key).__name__}")
    if not key or key == "." or key == "..":
        raise KVLimitError(
            f"KV key {key!r} is not allowed: a key must not be empty, '.' or '..'",
        )
    size = len(key) if key.isascii() else len(_utf8(key, "key"))
    if size > MAX_KEY_BYTES:
        raise KVLimitError(
            f"KV key {_show(key)} is {size} bytes: over the limit of {MAX_KEY_BYTES} bytes (UTF-8)",
        )


def _check_cache_ttl(cache_ttl: object, what: str, key: str | None = None) -> None:
    where = f"KV key {_show(key)}: " if key is not None else ""
    if not _is_number(cache_ttl) or not math.isfinite(cache_ttl):  # type: ignore[arg-type]
        raise KVError(f"{where}{what} must be a number of seconds, not {cache_ttl!r}")
    if cache_ttl < MIN_CACHE_TTL:  # type: ignore[operator]
        raise KVLimitError(
            f"{where}{what} {cache_ttl} is under the minimum of {MIN_CACHE_TTL} seconds",
        )


def _bad_type(type_: object) -> KVError:
    return KVError(f"KV get type {type_!r} is not one of 'text', 'json', 'bytes', 'stream'")


def _encode_value(value: object, key: str) -> bytes:
    if isinstance(value, str):
        data = _utf8(value, f"value of key {_show(key)}:")
    elif isinstance(value, bytes):
        data = value
    elif isinstance(value, bytearray | memoryview):
        data = bytes(value)
    elif value is None:
        raise KVError(
            f"KV key {_show(key)}: the value is None",
            hint="to remove a key use delete(); to store JSON null pass 'null'",
        )
    else:
        try:
            text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise KVError(
                f"KV key {_show(key)}: the value is not str, bytes or JSON-able: {exc}"
            ) from exc
        data = text.encode()
    if len(data) > MAX_VALUE_BYTES:
        raise KVLimitError(
            f"KV key {_show(key)}: the value is {len(data)} bytes, over the limit of"
            f" {MAX_VALUE_BYTES} bytes (25 MiB)",
        )
    return data


def _encode_metadata(metadata: object, key: str) -> bytes | None:
    if metadata is None:
        return None
    try:
        text = json.dumps(metadata, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise KVError(f"KV key {_show(key)}: the metadata is not JSON-able: {exc}") from exc
    data = text.encode()
    if len(data) > MAX_METADATA_BYTES:
        raise KVLimitError(
            f"KV key {_show(key)}: the metadata is {len(data)} bytes of JSON, over the limit of"
            f" {MAX_METADATA_BYTES} bytes",
        )
    return data


def _decode(value: bytes, type_: str, key: str) -> Any:
    if type_ == "text":
        return value.decode(errors="replace")  # as TextDecoder: U+FFFD, never an error
    if type_ == "json":
        try:
            return _json_decode(value.decode())
        except ValueError as exc:
            raise KVError(
                f"KV key {_show(key)}: the value is not valid JSON ({exc})",
                hint="read it with type='text'",
            ) from exc
    if type_ == "stream":
        return KVStream(value)
    return value


def _decode_metadata(metadata: bytes | None, key: str) -> Any:
    if metadata is None:
        return None
    try:
        return _json_decode(metadata.decode())
    except ValueError as exc:
        raise KVError(f"KV key {_show(key)}: its stored metadata is not valid JSON") from exc
