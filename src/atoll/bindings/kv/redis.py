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
"""

from __future__ import annotations

import math
import pathlib
import time
import urllib.parse
from collections.abc import Sequence
from typing import Any, Self, cast

import redis.asyncio as aioredis
from redis.exceptions import RedisError

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


class RedisBackend(KVBackend):
    """A :class:`~atoll.bindings.kv.base.KVBackend` on a Redis server (see the module doc).

    Creating it opens no connection: the first command connects, on the loop
    that runs it. Server errors raise :class:`~atoll.errors.KVError` naming
    the URL (without password).
    """

    def __init__(self, url: str, *, clock: Clock = time.time) -> None:
        self.url = _public_url(url)
        self._clock = clock
        try:
            self._redis: aioredis.Redis = aioredis.Redis.from_url(url, decode_responses=False)
        except (ValueError, RedisError) as exc:
            raise KVError(f"KV spec {self.url!r} is not a valid Redis URL: {exc}") from exc
        self._put = self._redis.register_script(_PUT)
        self._delete = self._redis.register_script(_DELETE)
        self._delete_if_expired = self._redis.register_script(_DELETE_IF_EXPIRED)
        self._list = self._redis.register_script(_LIST)
        self._purge = self._redis.register_script(_PURGE)
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

    async def _call(self, script: Any, keys: list[bytes], args: list[Any]) -> Any:
        if self._closed:
            raise KVError(f"the KV store {self.url} is closed")
        try:
            return await script(keys=keys, args=args)
        except RedisError as exc:
            raise self._error(exc) from exc

    async def get(self, ns: str, key: str) -> Entry | None:
        if self._closed:
            raise KVError(f"the KV store {self.url} is closed")
        name = key.encode()
        prefix = _prefix(ns)
        try:
            fields = await self._redis.hmget(prefix + b"v:" + name, [b"v", b"e", b"m"])
            value, e, metadata = cast("list[bytes | None]", fields)
        except RedisError as exc:
            raise self._error(exc) from exc
        if value is None:
            return None
        expiration = _float(e)
        if expiration is not None and expiration <= self._clock():
            await self._call(
                self._delete_if_expired,
                [prefix + b"v:" + name, prefix + b"index", prefix + b"expiry"],
                [name, repr(self._clock())],
            )
            return None
        return Entry(value, expiration, metadata)

    async def get_many(self, ns: str, keys: Sequence[str]) -> dict[str, Entry]:
        if self._closed:
            raise KVError(f"the KV store {self.url} is closed")
        prefix = _prefix(ns)
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.hmget(prefix + b"v:" + key.encode(), [b"v", b"e", b"m"])
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
        name = key.encode()
        prefix = _prefix(ns)
        await self._call(
            self._put,
            [prefix + b"v:" + name, prefix + b"index", prefix + b"expiry", _NAMESPACES],
            [
                name,
                value,
                b"" if expiration is None else repr(float(expiration)).encode(),
                0 if expiration is None else math.ceil(expiration * 1000),
                b"0" if metadata is None else b"1",
                metadata or b"",
                ns.encode(),
            ],
        )

    async def delete(self, ns: str, key: str) -> None:
        name = key.encode()
        prefix = _prefix(ns)
        await self._call(
            self._delete,
            [prefix + b"v:" + name, prefix + b"index", prefix + b"expiry"],
            [name],
        )

    async def list(self, ns: str, prefix: str | None, limit: int, cursor: str | None) -> ListPage:
        low = (prefix or "").encode()
        start = b"[" + low
        if cursor is not None:
            after = decode_cursor(cursor).encode()
            if after >= low:
                start = b"(" + after
        stop = b"(" + low + b"\xff"  # UTF-8 has no 0xFF: see sqlite._upper_bound
        space = _prefix(ns)
        reply = await self._call(
            self._list,
            [space + b"index", space + b"expiry"],
            [start, stop, limit, repr(self._clock()), space + b"v:", limit + _SCAN_EXTRA],
        )
        more, last, *flat = reply
        keys = [
            KeyRecord(flat[i].decode(), _float(flat[i + 1]), flat[i + 2])
            for i in range(0, len(flat), 3)
        ]
        if int(more) and last is not None:
            return ListPage(keys, encode_cursor(last.decode()))
        return ListPage(keys, None)

    async def purge_expired(self) -> int:
        if self._closed:
            raise KVError(f"the KV store {self.url} is closed")
        try:
            namespaces = cast("set[bytes]", await self._redis.smembers(_NAMESPACES))
        except RedisError as exc:
            raise self._error(exc) from exc
        removed = 0
        for raw in namespaces:
            space = _prefix(raw.decode())
            while True:
                seen = await self._call(
                    self._purge,
                    [space + b"index", space + b"expiry"],
                    [repr(self._clock()), space + b"v:", _PURGE_BATCH],
                )
                removed += int(seen)
                if int(seen) < _PURGE_BATCH:
                    break
        return removed

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._redis.aclose()
