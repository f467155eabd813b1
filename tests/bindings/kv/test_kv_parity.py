"""Workers KV behaviours found by a port of the peers' KV tests, on every backend.

Bulk ``get_with_metadata``, streams both ways, ``get_many([])``, whole-second
expirations, ``list(limit=0)``, bad UTF-8 read as text, the list prefix bound
and the 25 MiB cap of a bulk read.
"""

from __future__ import annotations

import io
import math
from collections.abc import AsyncIterator

import pytest

from atoll.bindings.kv import KVNamespace, ValueWithMetadata
from atoll.bindings.kv.namespace import MAX_BULK_BYTES, MAX_VALUE_BYTES
from atoll.bindings.kv.stream import CHUNK_BYTES, KVStream
from atoll.errors import KVError, KVLimitError
from tests.bindings.kv.kv_support import FakeClock


async def test_bulk_get_with_metadata(kv: KVNamespace) -> None:
    await kv.put("a", "1", metadata={"m": "a"})
    await kv.put("b", '{"x": 2}')
    got = await kv.get_with_metadata(["a", "b", "missing"])
    assert got == {
        "a": ValueWithMetadata("1", {"m": "a"}),
        "b": ValueWithMetadata('{"x": 2}', None),
        "missing": ValueWithMetadata(None, None),
    }
    as_json = await kv.get_with_metadata(["b"], type="json")
    assert as_json == {"b": ValueWithMetadata({"x": 2}, None)}
    with pytest.raises(KVLimitError, match="at least one key"):
        await kv.get_with_metadata([])
    with pytest.raises(KVLimitError, match="101 keys"):
        await kv.get_with_metadata([f"k{i}" for i in range(101)])


async def test_get_many_of_no_keys_is_refused(kv: KVNamespace) -> None:
    with pytest.raises(KVLimitError, match="at least one key"):
        await kv.get_many([])
    with pytest.raises(KVError, match="not one str"):
        await kv.get_many("abc")


async def test_get_as_a_stream(kv: KVNamespace) -> None:
    value = bytes(range(256)) * 1000  # several chunks
    await kv.put("big", value, metadata={"kind": "blob"})
    stream = await kv.get("big", type="stream")
    assert isinstance(stream, KVStream)
    chunks = [chunk async for chunk in stream]
    assert len(chunks) == math.ceil(len(value) / CHUNK_BYTES)
    assert b"".join(chunks) == value
    with pytest.raises(KVError, match="already read"):
        await stream.read()
    again, meta = await kv.get_with_metadata("big", type="stream")
    assert again is not None
    assert await again.read() == value
    assert meta == {"kind": "blob"}
    assert await kv.get("missing", type="stream") is None
    with pytest.raises(KVError, match="bulk read type 'stream'"):
        await kv.get_many(["big"], type="stream")


async def test_put_takes_streams(kv: KVNamespace) -> None:
    async def chunks() -> AsyncIterator[bytes | str]:
        yield b"hello "
        yield "wörld"

    await kv.put("async", chunks())
    assert await kv.get("async") == "hello wörld"
    await kv.put("file", io.BytesIO(b"from a file"))
    assert await kv.get("file") == "from a file"
    source = await kv.get("file", type="stream")
    await kv.put("copy", source, expiration_ttl=60)  # a stream read from KV, written back
    assert await kv.get("copy") == "from a file"
    kv.put_sync("sync", io.BytesIO(b"blocking"))
    assert await kv.get("sync") == "blocking"


async def test_a_stream_over_the_value_limit_is_refused_while_read(kv: KVNamespace) -> None:
    pulled = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal pulled
        while True:
            pulled += 1
            yield b"x" * (1024 * 1024)

    with pytest.raises(KVLimitError, match="streamed value passed"):
        await kv.put("k", endless())
    assert pulled == MAX_VALUE_BYTES // (1024 * 1024) + 1  # not one chunk more
    assert await kv.get("k") is None


async def test_expiration_in_whole_seconds(kv: KVNamespace, clock: FakeClock) -> None:
    clock.now = math.floor(clock.now) + 0.9  # late in a second: int(now) + 60 < now + 60
    await kv.put("k", "v", expiration=int(clock.now) + 60)
    assert (await kv.list()).keys[0].expiration == int(clock.now) + 60
    with pytest.raises(KVLimitError, match="less than 60 seconds"):
        await kv.put("k", "v", expiration=int(clock.now) + 59)


async def test_list_limit_zero_is_the_default(kv: KVNamespace) -> None:
    for i in range(3):
        await kv.put(f"k{i}", "v")
    page = await kv.list(limit=0)
    assert [k.name for k in page.keys] == ["k0", "k1", "k2"]
    assert page.list_complete
    assert [k.name for k in kv.list_sync(limit=0).keys] == ["k0", "k1", "k2"]


async def test_bad_utf8_read_as_text_is_replaced(kv: KVNamespace) -> None:
    await kv.put("binary", b"ok \xff\xfe end")
    assert await kv.get("binary") == "ok \ufffd\ufffd end"
    assert await kv.get_many(["binary"]) == {"binary": "ok \ufffd\ufffd end"}
    assert await kv.get("binary", type="bytes") == b"ok \xff\xfe end"


async def test_list_prefix_over_512_bytes_is_refused(kv: KVNamespace) -> None:
    assert (await kv.list(prefix="p" * 512)).keys == []
    with pytest.raises(KVLimitError, match=r"prefix .* 513 bytes"):
        await kv.list(prefix="p" * 513)
    with pytest.raises(KVLimitError, match="prefix"):
        kv.list_sync(prefix="é" * 257)  # 514 bytes of UTF-8


async def test_bulk_reads_are_capped_at_25_mib(kv: KVNamespace) -> None:
    size = MAX_BULK_BYTES // 2 + 1
    await kv.put("a", b"a" * size)
    assert len((await kv.get_many(["a"], type="bytes"))["a"]) == size
    await kv.put("b", b"b" * size)
    with pytest.raises(KVLimitError, match="over the bulk read limit"):
        await kv.get_many(["a", "b"], type="bytes")
    with pytest.raises(KVLimitError, match="over the bulk read limit"):
        await kv.get_with_metadata(["a", "b"])
