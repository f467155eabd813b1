"""The shared KV backend: one Redis server for several atoll processes or machines.

Spec: any URL redis-py accepts (``redis://host:port/db``, ``rediss://…``,
``unix:///path.sock``). This module imports ``redis`` at its top, and nothing
imports this module unless the operator chose a Redis spec, so a SQLite-only
install never needs the package.

Layout (``P`` = ``atoll:kv:<len of ns in bytes>:<ns>:``, unambiguous whatever
the namespace id contains):

``P v:<key>``  a hash: ``v`` the value, ``e`` the expiration (seconds since
    the epoch; empty: never; always present, so one ``HMGET`` tells a missing
    key from a live one), ``m`` the metadata JSON (absent: none). Redis expires
    it itself (``PEXPIREAT``).
``P index``    a sorted set of every key name, all with score 0, so
    ``ZRANGEBYLEX`` walks them in byte order: this is what ``list`` reads,
    never ``KEYS`` or ``SCAN``.
``P expiry``   a sorted set of the names of expiring keys, scored by
    expiration, so :meth:`RedisBackend.purge_expired` finds expired names
    without a scan.
``atoll:kv:namespaces``  the set of namespace ids, for ``purge_expired``.

Every write is one Lua script, so the hash and both sorted sets change
together, atomically, for every client. A list cursor is the last key name
returned; the next page starts strictly after it (``ZRANGEBYLEX (name``), so
a cursor stays valid whatever is written in between: keys present for the
whole listing are returned exactly once.

When Redis has expired a hash, its name stays in ``index`` until ``list``
meets it (the list script removes it) or ``purge_expired`` runs. What
"expired" means is decided by the atoll clock (the ``clock`` hook), compared
with ``e``, not by Redis's clock: Redis expiry is only the garbage collector.

Durability is the server's: with ``appendonly yes`` (and the default
``appendfsync everysec``) Redis writes the AOF before it answers, so an
acknowledged put survives a crash or restart of ``redis-server``, and up to
one second of writes can be lost on power loss. Configure Redis with
``maxmemory-policy noeviction``: an evicted hash would silently lose a key.
Scripts name some keys in ``ARGV``, so Redis Cluster is not supported.

Event loops and threads
    A redis-py asyncio client belongs to the loop that connected it, and
    ``atoll dev`` calls one backend from several loops. So the backend keeps
    **one asyncio client per event loop**, made on that loop's first command.
    Each is closed on its own loop: by :meth:`RedisBackend.close` if the loop
    is the caller's or still running, else when the loop shuts down (it is
    tied to an async generator of that loop, which ``asyncio.run`` and
    ``asyncio.Runner`` close before closing the loop; uvicorn's serving loops
    end that way). The blocking twins for wasm guests (``get_sync``…) share
    **one synchronous client**, whose connection pool is thread-safe: each
    call takes a connection of its own for one round trip, and gives up after
    :data:`SYNC_TIMEOUT` seconds. Both kinds run the same scripts on the same
    layout.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import pathlib
import threading
import time
import urllib.parse
from collections.abc import AsyncGenerator, Sequence
from typing import Any, Final, Literal, Self, cast

import redis
import redis.asyncio as aioredis
from redis.exceptions import NoScriptError, RedisError

from atoll.bindings.kv.base import (
    Clock,
    Entry,
    KeyRecord,
    KVBackend,
    ListPage,
    decode_cursor,
    encode_cursor,
)
from atoll.errors import KVError

__all__ = ["RedisBackend"]

_NAMESPACES = b"atoll:kv:namespaces"
_SCAN_EXTRA = 1000
"""``list`` looks at no more than ``limit + _SCAN_EXTRA`` names (expired ones included)."""
_PURGE_BATCH = 500
SYNC_TIMEOUT: Final = 5.0
"""Seconds a blocking call (a wasm guest's) waits to connect or for a reply before failing."""
_CLOSE_WAIT = 2.0
"""Seconds :meth:`RedisBackend.close` waits for another running loop to close its client."""

# KEYS: hash, index, expiry, namespaces
# ARGV: name, value, expiration ('' = never), expiration in ms, has metadata ('1'/'0'), metadata, ns
_PUT = """
redis.call('DEL', KEYS[1])
if ARGV[5] == '1' then
  redis.call('HSET', KEYS[1], 'v', ARGV[2], 'e', ARGV[3], 'm', ARGV[6])
else
  redis.call('HSET', KEYS[1], 'v', ARGV[2], 'e', ARGV[3])
end
if ARGV[3] ~= '' then
  redis.call('PEXPIREAT', KEYS[1], ARGV[4])
  redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
else
  redis.call('ZREM', KEYS[3], ARGV[1])
end
redis.call('ZADD', KEYS[2], 0, ARGV[1])
redis.call('SADD', KEYS[4], ARGV[7])
return 1
"""

# KEYS: hash, index, expiry. ARGV: name
_DELETE = """
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
return 1
"""

# KEYS: hash, index, expiry. ARGV: name, now. Deletes the key only if it expired by `now`.
_DELETE_IF_EXPIRED = """
local e = redis.call('HGET', KEYS[1], 'e')
if e and e ~= '' and tonumber(e) <= tonumber(ARGV[2]) then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ARGV[1])
  redis.call('ZREM', KEYS[3], ARGV[1])
  return 1
end
return 0
"""

# KEYS: index, expiry. ARGV: min, max (ZRANGEBYLEX bounds), limit, now, hash prefix, budget.
# Returns {more, cursor, name1, e1, m1, name2, ...}: more = 1 if keys may follow
# `cursor` (the name to resume after). Names whose hash is gone or expired by `now`
# are skipped and cleaned up.
_LIST = """
local index, expiry = KEYS[1], KEYS[2]
local min, max = ARGV[1], ARGV[2]
local limit, now, prefix = tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
local budget = tonumber(ARGV[6])
local out = {0, false}
local count = 0
while true do
  local batch = redis.call('ZRANGEBYLEX', index, min, max, 'LIMIT', 0, 256)
  if #batch == 0 then
    return out
  end
  for _, name in ipairs(batch) do
    local key = prefix .. name
    local fields = redis.call('HMGET', key, 'e', 'm')
    local e = fields[1]
    local live = true
    if not e then
      live = false
      redis.call('ZREM', index, name)
      redis.call('ZREM', expiry, name)
    elseif e ~= '' and tonumber(e) <= now then
      live = false
      redis.call('DEL', key)
      redis.call('ZREM', index, name)
      redis.call('ZREM', expiry, name)
    end
    if live then
      if count == limit then
        out[1] = 1
        return out
      end
      count = count + 1
      out[#out + 1] = name
      out[#out + 1] = e or ''
      out[#out + 1] = fields[2]
      out[2] = name
    end
    budget = budget - 1
    if budget <= 0 then
      out[1] = 1
      out[2] = name
      return out
    end
    min = '(' .. name
  end
end
"""

# KEYS: index, expiry. ARGV: now, hash prefix, batch. Returns how many names it looked at.
_PURGE = """
local names = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, name in ipairs(names) do
  local key = ARGV[2] .. name
  local e = redis.call('HGET', key, 'e')
  if (not e) or (e ~= '' and tonumber(e) <= tonumber(ARGV[1])) then
    redis.call('DEL', key)
    redis.call('ZREM', KEYS[1], name)
  end
  redis.call('ZREM', KEYS[2], name)
end
return #names
"""


class _Script:
    """A Lua script run by its SHA1, loaded on a server that does not know it yet."""

    __slots__ = ("sha", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.sha = hashlib.sha1(text.encode()).hexdigest()

    async def run(self, client: aioredis.Redis, keys: list[bytes], args: list[Any]) -> Any:
        try:
            return await client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            return await client.eval(self.text, len(keys), *keys, *args)

    def run_sync(self, client: redis.Redis, keys: list[bytes], args: list[Any]) -> Any:
        try:
            return client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            return client.eval(self.text, len(keys), *keys, *args)


_PUT_SCRIPT = _Script(_PUT)
_DELETE_SCRIPT = _Script(_DELETE)
_DELETE_IF_EXPIRED_SCRIPT = _Script(_DELETE_IF_EXPIRED)
_LIST_SCRIPT = _Script(_LIST)
_PURGE_SCRIPT = _Script(_PURGE)


def _prefix(ns: str) -> bytes:
    raw = ns.encode()
    return b"atoll:kv:%d:%s:" % (len(raw), raw)


def _public_url(url: str) -> str:
    """``url`` without a password, for error messages."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = parts.username or ""
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def _float(raw: bytes | None) -> float | None:
    return float(raw) if raw else None


def _put_call(
    ns: str, key: str, value: bytes, expiration: float | None, metadata: bytes | None
) -> tuple[list[bytes], list[Any]]:
    name = key.encode()
    prefix = _prefix(ns)
    keys = [prefix + b"v:" + name, prefix + b"index", prefix + b"expiry", _NAMESPACES]
    args = [
        name,
        value,
        b"" if expiration is None else repr(float(expiration)).encode(),
        0 if expiration is None else math.ceil(expiration * 1000),
        b"0" if metadata is None else b"1",
        metadata or b"",
        ns.encode(),
    ]
    return keys, args


def _key_call(ns: str, key: str) -> tuple[list[bytes], list[Any]]:
    """Keys and args of ``_DELETE`` (and, with the time appended, ``_DELETE_IF_EXPIRED``)."""
    name = key.encode()
    prefix = _prefix(ns)
    return [prefix + b"v:" + name, prefix + b"index", prefix + b"expiry"], [name]


def _list_call(
    ns: str, prefix: str | None, limit: int, cursor: str | None, now: float
) -> tuple[list[bytes], list[Any]]:
    low = (prefix or "").encode()
    start = b"[" + low
    if cursor is not None:
        after = decode_cursor(cursor).encode()
        if after >= low:
            start = b"(" + after
    stop = b"(" + low + b"\xff"  # UTF-8 has no 0xFF: see sqlite._upper_bound
    space = _prefix(ns)
    keys = [space + b"index", space + b"expiry"]
    return keys, [start, stop, limit, repr(now), space + b"v:", limit + _SCAN_EXTRA]


def _list_page(reply: Any) -> ListPage:
    more, last, *flat = reply
    keys = [
        KeyRecord(flat[i].decode(), _float(flat[i + 1]), flat[i + 2])
        for i in range(0, len(flat), 3)
    ]
    if int(more) and last is not None:
        return ListPage(keys, encode_cursor(last.decode()))
    return ListPage(keys, None)


_FIELDS: Final = [b"v", b"e", b"m"]


async def _close_with_loop(
    backend: RedisBackend, loop: asyncio.AbstractEventLoop, client: aioredis.Redis
) -> AsyncGenerator[None, None]:
    """Suspended for the life of ``loop``; closing it (on ``loop``) closes ``client``.

    Started on ``loop``, so ``loop`` closes it before it closes itself
    (``shutdown_asyncgens``), and the client's connections are closed on the
    loop they belong to.
    """
    try:
        yield
    finally:
        backend._forget(loop)
        await client.aclose()


class RedisBackend(KVBackend):
    """A :class:`~atoll.bindings.kv.base.KVBackend` on a Redis server (see the module doc).

    Creating it opens no connection: the first command of each event loop
    connects that loop's client, the first blocking call the shared
    synchronous one. Server errors raise :class:`~atoll.errors.KVError`
    naming the URL (without password).
    """

    def __init__(self, url: str, *, clock: Clock = time.time) -> None:
        self.url = _public_url(url)
        self._secret_url = url
        self._clock = clock
        try:
            self._sync: redis.Redis = redis.Redis.from_url(
                url,
                decode_responses=False,
                socket_timeout=SYNC_TIMEOUT,
                socket_connect_timeout=SYNC_TIMEOUT,
            )
        except (ValueError, RedisError) as exc:
            raise KVError(f"KV spec {self.url!r} is not a valid Redis URL: {exc}") from exc
        self._lock = threading.Lock()
        self._clients: dict[asyncio.AbstractEventLoop, aioredis.Redis] = {}
        self._keepers: dict[asyncio.AbstractEventLoop, AsyncGenerator[None, None]] = {}
        self._closed = False

    @classmethod
    def from_spec(cls, spec: str, *, state_dir: pathlib.Path, clock: Clock = time.time) -> Self:
        """Open ``redis://…``, ``rediss://…`` or ``unix://…`` (``state_dir`` is not used)."""
        return cls(spec, clock=clock)

    def now(self) -> float:
        return self._clock()

    def _error(self, exc: RedisError) -> KVError:
        return KVError(
            f"KV store {self.url}: {exc}",
            hint="check that redis-server is running and reachable at that address",
        )

    def _closed_error(self) -> KVError:
        return KVError(f"the KV store {self.url} is closed")

    # -- clients: one per event loop, one shared by blocking callers ---------------------

    async def _client(self) -> aioredis.Redis:
        """The client of the running loop (made, and tied to the loop, on first use)."""
        if self._closed:
            raise self._closed_error()
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is not None:
            return client
        client = aioredis.Redis.from_url(self._secret_url, decode_responses=False)
        keeper = _close_with_loop(self, loop, client)
        with self._lock:
            self._clients[loop] = client
            self._keepers[loop] = keeper
        await anext(keeper)  # runs to its yield at once: registered with this loop now
        return client

    def warm_up(self) -> None:
        """Connect the shared blocking client and load the scripts (best effort)."""
        if self._closed:
            return
        try:
            self._sync.ping()
            for script in (_PUT_SCRIPT, _DELETE_SCRIPT, _DELETE_IF_EXPIRED_SCRIPT, _LIST_SCRIPT):
                self._sync.script_load(script.text)
        except RedisError:
            pass  # the first real call reports it, naming the URL

    def _forget(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._lock:
            self._clients.pop(loop, None)
            self._keepers.pop(loop, None)

    def _sync_client(self) -> redis.Redis:
        if self._closed:
            raise self._closed_error()
        return self._sync

    async def _call(self, script: _Script, keys: list[bytes], args: list[Any]) -> Any:
        client = await self._client()
        try:
            return await script.run(client, keys, args)
        except RedisError as exc:
            raise self._error(exc) from exc

    def _call_sync(self, script: _Script, keys: list[bytes], args: list[Any]) -> Any:
        client = self._sync_client()
        try:
            return script.run_sync(client, keys, args)
        except RedisError as exc:
            raise self._error(exc) from exc

    # -- KVBackend -----------------------------------------------------------------------

    def _entry(self, fields: Any) -> Entry | Literal[False] | None:
        """The entry of an ``HMGET v e m`` reply; ``False`` if it expired (delete it)."""
        value, e, metadata = cast("list[bytes | None]", fields)
        if value is None:
            return None
        expiration = _float(e)
        if expiration is not None and expiration <= self._clock():
            return False
        return Entry(value, expiration, metadata)

    async def get(self, ns: str, key: str) -> Entry | None:
        client = await self._client()
        keys, args = _key_call(ns, key)
        try:
            entry = self._entry(await client.hmget(keys[0], _FIELDS))
        except RedisError as exc:
            raise self._error(exc) from exc
        if entry is False:
            await self._call(_DELETE_IF_EXPIRED_SCRIPT, keys, [*args, repr(self._clock())])
            return None
        return entry

    def get_sync(self, ns: str, key: str) -> Entry | None:
        client = self._sync_client()
        keys, args = _key_call(ns, key)
        try:
            entry = self._entry(client.hmget(keys[0], _FIELDS))
        except RedisError as exc:
            raise self._error(exc) from exc
        if entry is False:
            self._call_sync(_DELETE_IF_EXPIRED_SCRIPT, keys, [*args, repr(self._clock())])
            return None
        return entry

    async def get_many(self, ns: str, keys: Sequence[str]) -> dict[str, Entry]:
        client = await self._client()
        prefix = _prefix(ns)
        try:
            async with client.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.hmget(prefix + b"v:" + key.encode(), _FIELDS)
                rows = await pipe.execute()
        except RedisError as exc:
            raise self._error(exc) from exc
        now = self._clock()
        found: dict[str, Entry] = {}
        for key, (value, e, metadata) in zip(keys, rows, strict=True):
            expiration = _float(e)
            if value is not None and (expiration is None or expiration > now):
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
        await self._call(_PUT_SCRIPT, *_put_call(ns, key, value, expiration, metadata))

    def put_sync(
        self,
        ns: str,
        key: str,
        value: bytes,
        expiration: float | None,
        metadata: bytes | None,
    ) -> None:
        self._call_sync(_PUT_SCRIPT, *_put_call(ns, key, value, expiration, metadata))

    async def delete(self, ns: str, key: str) -> None:
        await self._call(_DELETE_SCRIPT, *_key_call(ns, key))

    def delete_sync(self, ns: str, key: str) -> None:
        self._call_sync(_DELETE_SCRIPT, *_key_call(ns, key))

    async def list(self, ns: str, prefix: str | None, limit: int, cursor: str | None) -> ListPage:
        call = _list_call(ns, prefix, limit, cursor, self._clock())
        return _list_page(await self._call(_LIST_SCRIPT, *call))

    def list_sync(self, ns: str, prefix: str | None, limit: int, cursor: str | None) -> ListPage:
        call = _list_call(ns, prefix, limit, cursor, self._clock())
        return _list_page(self._call_sync(_LIST_SCRIPT, *call))

    async def purge_expired(self) -> int:
        client = await self._client()
        try:
            namespaces = cast("set[bytes]", await client.smembers(_NAMESPACES))
        except RedisError as exc:
            raise self._error(exc) from exc
        removed = 0
        for raw in namespaces:
            space = _prefix(raw.decode())
            while True:
                seen = await self._call(
                    _PURGE_SCRIPT,
                    [space + b"index", space + b"expiry"],
                    [repr(self._clock()), space + b"v:", _PURGE_BATCH],
                )
                removed += int(seen)
                if int(seen) < _PURGE_BATCH:
                    break
        return removed

    async def close(self) -> None:
        """Close every client: this loop's here, a running loop's on that loop.

        A client of a loop that is no longer running was closed when that
        loop shut down (or will be, if it is only stopped).
        """
        if self._closed:
            return
        self._closed = True
        with self._lock:
            keepers = list(self._keepers.items())
        current = asyncio.get_running_loop()
        for loop, keeper in keepers:
            if loop is current:
                await keeper.aclose()
            elif loop.is_running():
                future = asyncio.run_coroutine_threadsafe(keeper.aclose(), loop)
                with contextlib.suppress(Exception):  # a loop stuck in wasm: give up waiting
                    await asyncio.wait_for(asyncio.wrap_future(future), _CLOSE_WAIT)
        self._sync.close()
