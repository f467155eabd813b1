"""KVNamespace (``env.CACHE``) against every backend: one suite, run once per backend."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import pytest

from atoll.bindings.kv import KVBackend, KVNamespace, ReadCache
from atoll.errors import KVError, KVLimitError

if TYPE_CHECKING:
    from tests.bindings.kv.kv_support import FakeClock

MiB = 1024 * 1024


# -- round trips -------------------------------------------------------------------------


async def test_text_round_trip(kv: KVNamespace) -> None:
    await kv.put("greeting", "héllo wörld ✓")
    assert await kv.get("greeting") == "héllo wörld ✓"
    assert await kv.get("greeting", type="text") == "héllo wörld ✓"
    assert await kv.get("greeting", type="bytes") == "héllo wörld ✓".encode()


async def test_bytes_round_trip(kv: KVNamespace) -> None:
    blob = bytes(range(256)) * 4
    await kv.put("blob", blob)
    assert await kv.get("blob", type="bytes") == blob
    await kv.put("empty", b"")
    assert await kv.get("empty", type="bytes") == b""
    assert await kv.get("empty") == ""
    await kv.put("view", memoryview(b"abc"))
    assert await kv.get("view", type="bytes") == b"abc"


async def test_json_round_trip(kv: KVNamespace) -> None:
    doc = {"name": "atoll", "n": 3, "ok": True, "tags": ["a", "é"], "none": None}
    await kv.put("doc", doc)
    assert await kv.get("doc", type="json") == doc
    assert await kv.get("doc") == '{"name":"atoll","n":3,"ok":true,"tags":["a","é"],"none":null}'
    await kv.put("list", [1, 2])
    assert await kv.get("list", type="json") == [1, 2]
    await kv.put("number", 42)
    assert await kv.get("number", type="json") == 42
    await kv.put("text-json", '"quoted"')
    assert await kv.get("text-json", type="json") == "quoted"


async def test_wrong_type_is_a_clear_error(kv: KVNamespace) -> None:
    await kv.put("plain", "not json")
    with pytest.raises(KVError, match=r"'plain'.*not valid JSON"):
        await kv.get("plain", type="json")
    with pytest.raises(KVError, match="'text', 'json', 'bytes', 'stream'"):
        await kv.get("plain", type="blob")  # type: ignore[call-overload]


async def test_values_that_cannot_be_stored(kv: KVNamespace) -> None:
    with pytest.raises(KVError, match="None"):
        await kv.put("k", None)
    with pytest.raises(KVError, match="JSON-able"):
        await kv.put("k", object())
    with pytest.raises(KVError, match="JSON-able"):
        await kv.put("k", {"x": float("nan")})
    with pytest.raises(KVError, match="must be a str"):
        await kv.put(b"k", "v")  # type: ignore[arg-type]
    assert await kv.get("k") is None


async def test_missing_key(kv: KVNamespace) -> None:
    assert await kv.get("nope") is None
    assert await kv.get("nope", type="json") is None
    assert await kv.get("nope", type="bytes") is None
    assert await kv.get_with_metadata("nope") == (None, None)
    await kv.delete("nope")  # not an error


async def test_overwrite_and_delete(kv: KVNamespace, clock: FakeClock) -> None:
    await kv.put("k", "one", expiration_ttl=100, metadata={"v": 1})
    await kv.put("k", "two")
    result = await kv.get_with_metadata("k")
    assert result.value == "two"
    assert result.metadata is None  # a put replaces value, metadata and expiration together
    clock.advance(200)
    assert await kv.get("k") == "two"
    await kv.delete("k")
    assert await kv.get("k") is None
    assert (await kv.list()).keys == []


async def test_metadata(kv: KVNamespace) -> None:
    meta = {"author": "zoë", "version": 2, "tags": ["x"]}
    await kv.put("k", "v", metadata=meta)
    value, metadata = await kv.get_with_metadata("k")
    assert (value, metadata) == ("v", meta)
    result = await kv.get_with_metadata("k", type="bytes")
    assert result.value == b"v"
    assert result.metadata == meta
    await kv.put("scalar", "v", metadata=7)
    assert (await kv.get_with_metadata("scalar")).metadata == 7
    await kv.put("none", "v")
    assert (await kv.get_with_metadata("none")).metadata is None
    listed = {info.name: info.metadata for info in (await kv.list()).keys}
    assert listed == {"k": meta, "none": None, "scalar": 7}


async def test_get_many(kv: KVNamespace) -> None:
    await kv.put("a", "1")
    await kv.put("b", {"x": 1})
    got = await kv.get_many(["a", "missing", "b", "a"])
    assert got == {"a": "1", "missing": None, "b": '{"x":1}'}
    assert list(got) == ["a", "missing", "b"]
    assert await kv.get_many(["b"], type="json") == {"b": {"x": 1}}
    assert await kv.get_many(["a", "b"], cache_ttl=30) == {"a": "1", "b": '{"x":1}'}


async def test_large_value_round_trip(kv: KVNamespace) -> None:
    big = bytes(range(256)) * (3 * MiB // 256)  # over every "inline" or "cached" threshold
    await kv.put("big", big, metadata={"size": len(big)})
    assert await kv.get("big", type="bytes") == big
    assert await kv.get("big", type="bytes", cache_ttl=60) == big
    assert (await kv.get_many(["big"], type="bytes"))["big"] == big
    value, metadata = await kv.get_with_metadata("big", type="bytes")
    assert value == big
    assert metadata == {"size": len(big)}


# -- expiration (through the clock hook) -------------------------------------------------


async def test_expiration_ttl(kv: KVNamespace, clock: FakeClock) -> None:
    start = clock.now
    await kv.put("short", "v", expiration_ttl=60, metadata={"m": 1})
    await kv.put("forever", "v")
    [info] = [k for k in (await kv.list()).keys if k.name == "short"]
    assert info.expiration == math.ceil(start + 60)
    assert isinstance(info.expiration, int)
    clock.advance(59)
    assert await kv.get("short") == "v"
    clock.advance(2)
    assert await kv.get("short") is None
    assert await kv.get_with_metadata("short") == (None, None)
    assert await kv.get_many(["short", "forever"]) == {"short": None, "forever": "v"}
    assert [k.name for k in (await kv.list()).keys] == ["forever"]


async def test_absolute_expiration(kv: KVNamespace, clock: FakeClock) -> None:
    at = int(clock.now) + 120
    await kv.put("k", "v", expiration=at)
    assert (await kv.list()).keys[0].expiration == at
    clock.advance(at - clock.now - 1)
    assert await kv.get("k") == "v"
    clock.advance(1)
    assert await kv.get("k") is None
    assert (await kv.list()).keys == []


async def test_expired_keys_are_purged(kv: KVNamespace, clock: FakeClock) -> None:
    backend = kv.backend
    for i in range(30):
        await kv.put(f"gone{i:02}", "v", expiration_ttl=60)
    await kv.put("stays", "v", expiration_ttl=600)
    await kv.put("forever", "v")
    clock.advance(61)
    removed = await backend.purge_expired()
    assert removed >= 29  # a read or list may already have removed some
    assert await backend.purge_expired() == 0
    assert [k.name for k in (await kv.list()).keys] == ["forever", "stays"]
    # a key written again after it expired is a new key
    await kv.put("gone00", "back")
    assert await kv.get("gone00") == "back"


async def test_reads_never_return_expired_keys_before_a_purge(
    kv: KVNamespace, clock: FakeClock
) -> None:
    await kv.put("k", "v", expiration_ttl=60)
    assert await kv.get("k", cache_ttl=300) == "v"  # cached now
    clock.advance(61)
    assert await kv.get("k", cache_ttl=300) is None  # the cache honours expiration too
    assert await kv.get("k") is None


# -- list --------------------------------------------------------------------------------


async def _fill(kv: KVNamespace) -> list[str]:
    names = [f"a/{i:04}" for i in range(1500)] + [f"b/{i:04}" for i in range(1000)]
    for i, name in enumerate(names):
        await kv.put(name, str(i), metadata={"i": i} if i % 100 == 0 else None)
    return names


async def _pages(kv: KVNamespace, prefix: str | None, limit: int) -> list[list[str]]:
    pages: list[list[str]] = []
    cursor: str | None = None
    while True:
        page = await kv.list(prefix=prefix, limit=limit, cursor=cursor)
        pages.append([k.name for k in page.keys])
        if page.list_complete:
            assert page.cursor is None
            return pages
        assert page.cursor
        cursor = page.cursor


def _flat(pages: list[list[str]]) -> list[str]:
    return [name for page in pages for name in page]


async def test_list_pagination_over_2500_keys(kv: KVNamespace) -> None:
    names = await _fill(kv)
    pages = await _pages(kv, None, 1000)
    assert [len(p) for p in pages] == [1000, 1000, 500]
    assert _flat(pages) == sorted(names)
    pages = await _pages(kv, "a/", 1000)
    assert [len(p) for p in pages] == [1000, 500]
    assert _flat(pages) == [n for n in names if n.startswith("a/")]
    pages = await _pages(kv, "b/", 300)
    assert [len(p) for p in pages] == [300, 300, 300, 100]
    assert _flat(pages) == [n for n in names if n.startswith("b/")]
    assert await _pages(kv, "b/00", 1000) == [[f"b/00{i:02}" for i in range(100)]]
    assert await _pages(kv, "c", 10) == [[]]
    default = await kv.list()
    assert len(default.keys) == 1000
    assert not default.list_complete
    first = (await kv.list(prefix="a/", limit=1)).keys[0]
    assert (first.name, first.expiration, first.metadata) == ("a/0000", None, {"i": 0})


async def test_list_cursor_is_stable_under_writes(kv: KVNamespace) -> None:
    for i in range(10):
        await kv.put(f"k{i}", "v")
    page = await kv.list(limit=4)
    assert [k.name for k in page.keys] == ["k0", "k1", "k2", "k3"]
    await kv.put("k00", "v")  # sorts before the cursor: not seen
    await kv.put("k35", "v")  # after the cursor: seen
    await kv.delete("k4")
    await kv.delete("k3")  # the cursor's own key may go away
    rest = await kv.list(cursor=page.cursor)
    assert [k.name for k in rest.keys] == ["k35", "k5", "k6", "k7", "k8", "k9"]
    assert rest.list_complete


async def test_list_orders_by_utf8_bytes(kv: KVNamespace) -> None:
    names = ["z", "é", "\uffff", "\U0001f600", "a", "A", "a\x00", "ab", "\x7f"]
    for name in names:
        await kv.put(name, "v")
    listed = [k.name for k in (await kv.list()).keys]
    assert listed == sorted(names, key=lambda n: n.encode())
    assert [k.name for k in (await kv.list(prefix="a")).keys] == ["a", "a\x00", "ab"]
    pages = await _pages(kv, None, 2)
    assert _flat(pages) == listed


async def test_list_skips_expired_keys(kv: KVNamespace, clock: FakeClock) -> None:
    for i in range(10):
        await kv.put(f"k{i}", "v", expiration_ttl=60 if i % 2 else None)
    clock.advance(61)
    assert _flat(await _pages(kv, None, 3)) == ["k0", "k2", "k4", "k6", "k8"]


async def test_bad_cursor(kv: KVNamespace) -> None:
    await kv.put("k", "v")
    with pytest.raises(KVError, match="cursor"):
        await kv.list(cursor="%%% not a cursor")


# -- limits ------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["", ".", ".."])
async def test_forbidden_keys(kv: KVNamespace, key: str) -> None:
    for call in (kv.get(key), kv.put(key, "v"), kv.delete(key), kv.get_with_metadata(key)):
        with pytest.raises(KVLimitError, match=r"must not be empty, '\.' or '\.\.'"):
            await call


async def test_key_size_limit(kv: KVNamespace) -> None:
    await kv.put("k" * 512, "ascii at the limit")
    await kv.put("é" * 256, "two-byte chars at the limit")
    assert await kv.get("é" * 256) == "two-byte chars at the limit"
    for key in ("k" * 513, "é" * 257, "😀" * 129):
        with pytest.raises(KVLimitError, match=r"bytes: over the limit of 512 bytes") as err:
            await kv.put(key, "v")
        assert key[:20] in str(err.value)
        with pytest.raises(KVLimitError, match="512"):
            await kv.get(key)
    with pytest.raises(KVError, match="lone surrogate"):
        await kv.put("\ud800", "v")


async def test_value_size_limit(kv: KVNamespace) -> None:
    with pytest.raises(KVLimitError, match=r"'too-big'.*26214401 bytes.*26214400 bytes \(25 MiB\)"):
        await kv.put("too-big", b"x" * (25 * MiB + 1))
    with pytest.raises(KVLimitError, match="25 MiB"):
        await kv.put("too-big", "x" * (25 * MiB + 1))
    await kv.put("at-limit", b"x" * (25 * MiB))
    value = await kv.get("at-limit", type="bytes")
    assert value is not None
    assert len(value) == 25 * MiB
    assert await kv.get("too-big") is None


async def test_metadata_size_limit(kv: KVNamespace) -> None:
    fits = "x" * (1024 - 2)  # plus two quotes: exactly 1024 bytes of JSON
    await kv.put("k", "v", metadata=fits)
    assert (await kv.get_with_metadata("k")).metadata == fits
    with pytest.raises(KVLimitError, match=r"'k'.*1025 bytes of JSON.*1024 bytes"):
        await kv.put("k", "v", metadata=fits + "x")
    with pytest.raises(KVError, match="not JSON-able"):
        await kv.put("k", "v", metadata={1, 2})


async def test_expiration_limits(kv: KVNamespace, clock: FakeClock) -> None:
    with pytest.raises(KVLimitError, match=r"'k'.*expiration_ttl 59.*minimum of 60 seconds"):
        await kv.put("k", "v", expiration_ttl=59)
    with pytest.raises(KVLimitError, match=r"'k'.*less than 60 seconds from now"):
        await kv.put("k", "v", expiration=clock.now + 59)
    with pytest.raises(KVLimitError, match="less than 60 seconds"):
        await kv.put("k", "v", expiration=1)  # a duration passed as an absolute time
    with pytest.raises(KVError, match="not both"):
        await kv.put("k", "v", expiration=clock.now + 100, expiration_ttl=100)
    with pytest.raises(KVError, match="number of seconds"):
        await kv.put("k", "v", expiration_ttl="60")  # type: ignore[arg-type]
    await kv.put("k", "v", expiration_ttl=60)
    await kv.put("k2", "v", expiration=clock.now + 60)
    assert await kv.get_many(["k", "k2"]) == {"k": "v", "k2": "v"}


@pytest.mark.parametrize("limit", [-1, 1001, True, 1.5])
async def test_list_limit(kv: KVNamespace, limit: int) -> None:
    with pytest.raises(KVLimitError, match=r"limit .* outside 1\.\.1000"):
        await kv.list(limit=limit)


async def test_cache_ttl_limit(kv: KVNamespace) -> None:
    with pytest.raises(KVLimitError, match=r"'k'.*cache_ttl 29.*minimum of 30 seconds"):
        await kv.get("k", cache_ttl=29)
    with pytest.raises(KVLimitError, match="minimum of 30"):
        await kv.get_many(["k"], cache_ttl=10)
    assert await kv.get("k", cache_ttl=30) is None


async def test_get_many_limit(kv: KVNamespace) -> None:
    assert len(await kv.get_many([f"k{i}" for i in range(100)])) == 100
    with pytest.raises(KVLimitError, match="101 keys is over the limit of 100"):
        await kv.get_many([f"k{i}" for i in range(101)])


# -- isolation ---------------------------------------------------------------------------


async def test_namespaces_never_mix(backend: KVBackend) -> None:
    # ids and keys chosen so that a naive "ns:key" layout would collide
    one = KVNamespace(backend, "a:b")
    two = KVNamespace(backend, "a")
    await one.put("c", "from one")
    await two.put("b:c", "from two")
    await two.put("c", "two's c", metadata={"who": 2})
    assert await one.get("c") == "from one"
    assert await two.get("b:c") == "from two"
    assert await one.get("b:c") is None
    assert [k.name for k in (await one.list()).keys] == ["c"]
    assert [k.name for k in (await two.list()).keys] == ["b:c", "c"]
    assert await one.get_many(["c", "b:c"]) == {"c": "from one", "b:c": None}
    await two.delete("c")
    assert await one.get("c") == "from one"
    assert await backend.purge_expired() == 0


async def test_workers_with_different_ids_are_isolated(backend: KVBackend) -> None:
    # two workers that both bind CACHE, to different ids
    worker_a = KVNamespace(backend, "worker-a-cache")
    worker_b = KVNamespace(backend, "worker-b-cache")
    await worker_a.put("session", "a", expiration_ttl=60)
    assert await worker_b.get("session") is None
    assert (await worker_b.list()).keys == []
    # and two that bind the same id share it
    assert await KVNamespace(backend, "worker-a-cache").get("session") == "a"


async def test_namespace_id_must_not_be_empty(backend: KVBackend) -> None:
    with pytest.raises(KVError, match="non-empty"):
        KVNamespace(backend, "")


# -- the read cache ----------------------------------------------------------------------


async def test_cache_ttl_serves_reads_up_to_its_age(backend: KVBackend, clock: FakeClock) -> None:
    kv = KVNamespace(backend, "test")
    await kv.put("k", "old")
    assert await kv.get("k", cache_ttl=60) == "old"
    # another process writes (straight to the store, bypassing this process's cache)
    await backend.put("test", "k", b"new", None, None)
    assert await kv.get("k") == "new"  # no cache_ttl: always the store
    assert await kv.get("k", cache_ttl=60) == "old"  # cached, 0 s old
    clock.advance(45)
    assert await kv.get("k", cache_ttl=60) == "old"  # 45 s old, within 60
    assert await kv.get("k", cache_ttl=30) == "new"  # 45 s is too old for 30: refetched
    clock.advance(31)
    await backend.put("test", "k", b"newer", None, None)
    assert await kv.get("k", cache_ttl=60) == "new"
    clock.advance(30)
    assert await kv.get("k", cache_ttl=60) == "newer"  # 61 s: refetched


async def test_cache_misses_are_cached_too(backend: KVBackend, clock: FakeClock) -> None:
    kv = KVNamespace(backend, "test")
    assert await kv.get("k", cache_ttl=30) is None
    await backend.put("test", "k", b"v", None, None)
    assert await kv.get("k", cache_ttl=30) is None
    clock.advance(30)
    assert await kv.get("k", cache_ttl=30) == "v"


async def test_own_writes_invalidate_the_cache(backend: KVBackend) -> None:
    kv = KVNamespace(backend, "test")
    other = KVNamespace(backend, "test")  # another binding of the same id in this process
    await kv.put("k", "one")
    assert await kv.get("k", cache_ttl=60) == "one"
    await other.put("k", "two")
    assert await kv.get("k", cache_ttl=60) == "two"
    await kv.put("k", "three", metadata={"n": 3})
    assert await kv.get_with_metadata("k", cache_ttl=60) == ("three", {"n": 3})
    await other.delete("k")
    assert await kv.get("k", cache_ttl=60) is None


async def test_default_cache_ttl(backend: KVBackend, clock: FakeClock) -> None:
    kv = KVNamespace(backend, "test", cache=ReadCache(), default_cache_ttl=60)
    await kv.put("k", "old")
    assert await kv.get("k") == "old"
    await backend.put("test", "k", b"new", None, None)
    assert await kv.get("k") == "old"
    clock.advance(60)
    assert await kv.get("k") == "new"
    with pytest.raises(KVLimitError, match="minimum of 30"):
        KVNamespace(backend, "test", default_cache_ttl=5)
