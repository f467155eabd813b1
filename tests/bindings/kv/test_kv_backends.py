"""The backends themselves: opening by spec, several processes, crashes, housekeeping."""

from __future__ import annotations

import asyncio
import pathlib
import signal
import sqlite3
import time
from typing import TYPE_CHECKING

import pytest

from atoll.bindings.kv import BACKENDS, KVNamespace, backend_name, open_backend, purge_forever
from atoll.bindings.kv.memory import MemoryBackend
from atoll.bindings.kv.sqlite import INLINE_VALUE_BYTES, SQLiteBackend
from atoll.errors import KVError
from tests.bindings.kv.kv_support import python

if TYPE_CHECKING:
    from tests.bindings.kv.kv_support import FakeClock, RedisServer

# -- opening by spec ---------------------------------------------------------------------


async def test_specs_select_backends(tmp_path: pathlib.Path) -> None:
    assert backend_name("sqlite") == "sqlite"
    assert backend_name("sqlite:/x/y.db?synchronous=full") == "sqlite"
    assert backend_name("redis://127.0.0.1:6379/0") == "redis"
    assert backend_name("rediss://h:1/0") == "redis"
    assert backend_name("unix:///run/redis.sock") == "redis"
    assert backend_name("memory") == "memory"
    assert set(BACKENDS) == {"sqlite", "redis", "memory"}
    with pytest.raises(KVError, match="'mongodb://x' is not known"):
        open_backend("mongodb://x", state_dir=tmp_path)
    with pytest.raises(KVError, match="no options"):
        open_backend("memory:x", state_dir=tmp_path)
    async with open_backend("memory", state_dir=tmp_path) as memory:
        assert isinstance(memory, MemoryBackend)


async def test_sqlite_specs(tmp_path: pathlib.Path) -> None:
    async with open_backend("sqlite", state_dir=tmp_path / "state") as default:
        assert isinstance(default, SQLiteBackend)
        assert default.path == tmp_path / "state" / "kv.sqlite3"
        assert default.synchronous == "normal"
    assert (tmp_path / "state" / "kv.sqlite3").exists()
    path = tmp_path / "elsewhere" / "store.db"
    async with open_backend(f"sqlite:{path}?synchronous=full", state_dir=tmp_path) as full:
        assert isinstance(full, SQLiteBackend)
        assert (full.path, full.synchronous) == (path, "full")
        await KVNamespace(full, "ns").put("k", "v")
        assert await KVNamespace(full, "ns").get("k") == "v"
    with pytest.raises(KVError, match="unknown option"):
        open_backend("sqlite?sync=off", state_dir=tmp_path)
    with pytest.raises(KVError, match="'normal' or 'full'"):
        open_backend("sqlite?synchronous=off", state_dir=tmp_path)
    (tmp_path / "junk.db").write_bytes(b"this is not a database" * 100)
    with pytest.raises(KVError, match="cannot open the KV store"):
        open_backend(f"sqlite:{tmp_path / 'junk.db'}", state_dir=tmp_path)


def test_redis_is_imported_only_when_chosen(tmp_path: pathlib.Path) -> None:
    proc = python(
        """
        import asyncio, pathlib, sys
        from atoll.bindings.kv import KVNamespace, open_backend
        async def main():
            async with open_backend("sqlite", state_dir=pathlib.Path(sys.argv[1])) as b:
                await KVNamespace(b, "ns").put("k", "v")
        asyncio.run(main())
        print("redis" in sys.modules, "atoll.bindings.kv.redis" in sys.modules)
        """,
        str(tmp_path),
    )
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert out.split() == ["False", "False"]


async def test_redis_url_errors_name_the_server(tmp_path: pathlib.Path) -> None:
    pytest.importorskip("redis")
    backend = open_backend("redis://:s3cret@127.0.0.1:1/0", state_dir=tmp_path)
    try:
        with pytest.raises(KVError, match=r"127\.0\.0\.1:1") as err:
            await KVNamespace(backend, "ns").get("k")
        assert "s3cret" not in str(err.value)
    finally:
        await backend.close()


# -- several processes -------------------------------------------------------------------

WRITER = """
import asyncio, pathlib, sys
from atoll.bindings.kv import KVNamespace, open_backend

async def main(spec, who):
    async with open_backend(spec, state_dir=pathlib.Path(".")) as backend:
        kv = KVNamespace(backend, "shared")
        for i in range(300):
            await kv.put(f"{who}/{i:03}", f"{who}:{i}", metadata={"by": who})
            await kv.put(f"both/{i:03}", who)
            if i % 50 == 0:
                await kv.list(prefix="both/")
    print("done")

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


@pytest.fixture(params=["sqlite", "redis"])
def shared_spec(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:{tmp_path / 'shared.sqlite3'}"
    server: RedisServer = request.getfixturevalue("redis_server")
    server.command("FLUSHALL")
    return server.url


async def test_two_processes_write_concurrently(shared_spec: str, tmp_path: pathlib.Path) -> None:
    writers = [python(WRITER, shared_spec, who) for who in ("p1", "p2")]
    for proc in writers:
        out, err = await asyncio.to_thread(proc.communicate, timeout=120)
        assert proc.returncode == 0, err
        assert out.strip() == "done"
    async with open_backend(shared_spec, state_dir=tmp_path) as backend:
        kv = KVNamespace(backend, "shared")
        names: list[str] = []
        cursor = None
        while True:
            page = await kv.list(cursor=cursor)
            names += [k.name for k in page.keys]
            if page.list_complete:
                break
            cursor = page.cursor
        expected = {f"{who}/{i:03}" for who in ("p1", "p2", "both") for i in range(300)}
        assert names == sorted(expected)
        for who in ("p1", "p2"):
            got = await kv.get_many([f"{who}/{i:03}" for i in range(0, 300, 3)])
            assert got == {f"{who}/{i:03}": f"{who}:{i}" for i in range(0, 300, 3)}
            assert await kv.get_with_metadata(f"{who}/299") == (f"{who}:299", {"by": who})
        both = await kv.get_many([f"both/{i:03}" for i in range(100)])
        assert set(both.values()) <= {"p1", "p2"}


# -- crashes -----------------------------------------------------------------------------

PUT_THEN_HANG = """
import asyncio, pathlib, sys, time
from atoll.bindings.kv import KVNamespace, open_backend

async def main():
    backend = open_backend(sys.argv[1], state_dir=pathlib.Path("."))
    kv = KVNamespace(backend, "durable")
    for i in range(100):
        await kv.put(f"k{i}", f"value {i}", metadata={"i": i})
    await kv.put("last", "acknowledged")
    print("acked", flush=True)
    time.sleep(3600)  # still holding the store open when killed

asyncio.run(main())
"""


@pytest.mark.parametrize("synchronous", ["normal", "full"])
async def test_sqlite_put_survives_kill_9(tmp_path: pathlib.Path, synchronous: str) -> None:
    spec = f"sqlite:{tmp_path / 'kv.sqlite3'}?synchronous={synchronous}"
    proc = python(PUT_THEN_HANG, spec)
    try:
        assert proc.stdout is not None
        line = await asyncio.to_thread(proc.stdout.readline)
    finally:
        proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate(timeout=10)
    assert line.strip() == "acked", err
    assert proc.returncode == -signal.SIGKILL
    async with open_backend(spec, state_dir=tmp_path) as backend:
        kv = KVNamespace(backend, "durable")
        assert await kv.get("last") == "acknowledged"
        assert await kv.get_with_metadata("k99") == ("value 99", {"i": 99})
        assert len((await kv.list()).keys) == 101


async def test_redis_put_survives_a_server_crash(
    own_redis_server: RedisServer, tmp_path: pathlib.Path
) -> None:
    server = own_redis_server
    async with open_backend(server.url, state_dir=tmp_path) as backend:
        kv = KVNamespace(backend, "durable")
        for i in range(100):
            await kv.put(f"k{i}", f"value {i}", expiration_ttl=3600, metadata={"i": i})
        await kv.put("last", "acknowledged")
    server.kill()  # kill -9: no shutdown save, only the append-only file remains
    server.start()
    async with open_backend(server.url, state_dir=tmp_path) as backend:
        kv = KVNamespace(backend, "durable")
        assert await kv.get("last") == "acknowledged"
        assert await kv.get_with_metadata("k99") == ("value 99", {"i": 99})
        page = await kv.list(prefix="k")
        assert len(page.keys) == 100
        assert all(k.expiration is not None for k in page.keys)


# -- SQLite: never block the loop on a lock ----------------------------------------------


async def test_sqlite_waits_for_a_lock_off_the_loop(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "kv.sqlite3"
    async with SQLiteBackend(path) as backend:
        kv = KVNamespace(backend, "ns")
        await kv.put("k", "before")
        other = sqlite3.connect(path, isolation_level=None)  # another process, in effect
        other.execute("BEGIN IMMEDIATE")  # holds the write lock
        try:
            put = asyncio.create_task(kv.put("k", "after"))
            ticks = 0
            start = time.monotonic()
            while time.monotonic() - start < 0.3:  # the loop keeps running meanwhile
                await asyncio.sleep(0.01)
                ticks += 1
            assert ticks > 10
            assert not put.done()
            assert await kv.get("k") == "before"  # WAL: reads go on during the write lock
        finally:
            other.execute("COMMIT")
            other.close()
        await put
        assert await kv.get("k") == "after"


async def test_sqlite_large_values_use_the_thread(tmp_path: pathlib.Path) -> None:
    async with SQLiteBackend(tmp_path / "kv.sqlite3") as backend:
        big = b"x" * (INLINE_VALUE_BYTES + 1)
        await backend.put("ns", "big", big, None, b'{"a":1}')
        await backend.put("ns", "small", b"s", None, None)
        entry = await backend.get("ns", "big")
        assert entry is not None
        assert (entry.value, entry.metadata) == (big, b'{"a":1}')
        many = await backend.get_many("ns", ["big", "small", "none"])
        assert {k: e.value for k, e in many.items()} == {"big": big, "small": b"s"}


async def test_closed_backend_raises(tmp_path: pathlib.Path) -> None:
    backend = SQLiteBackend(tmp_path / "kv.sqlite3")
    await backend.close()
    await backend.close()  # twice is fine
    with pytest.raises(KVError, match="closed"):
        await backend.get("ns", "k")


# -- housekeeping ------------------------------------------------------------------------


async def test_sqlite_purge_deletes_rows(tmp_path: pathlib.Path, clock: FakeClock) -> None:
    path = tmp_path / "kv.sqlite3"
    async with SQLiteBackend(path, clock=clock) as backend:
        for i in range(2500):
            await backend.put("ns", f"k{i}", b"v", clock.now + 60 if i % 2 else None, None)
        clock.advance(61)
        assert await backend.purge_expired() == 1250
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM kv").fetchone() == (1250,)


async def test_redis_cleans_up_after_its_own_expiry(
    redis_server: RedisServer, tmp_path: pathlib.Path
) -> None:
    import redis.asyncio as aioredis

    redis_server.command("FLUSHALL")
    # the real clock, and an expiration Redis itself acts on
    async with open_backend(redis_server.url, state_dir=tmp_path) as backend:
        await backend.put("ns", "soon", b"v", time.time() + 0.05, None)
        await backend.put("ns", "later", b"v", time.time() + 3600, None)
        await backend.put("ns", "never", b"v", None, None)
        await asyncio.sleep(0.15)
        client = aioredis.Redis.from_url(redis_server.url)
        try:
            index, expiry = b"atoll:kv:2:ns:index", b"atoll:kv:2:ns:expiry"
            assert await client.exists(b"atoll:kv:2:ns:v:soon") == 0  # Redis expired it
            assert await client.zcard(index) == 3
            page = await backend.list("ns", None, 1000, None)
            assert [k.name for k in page.keys] == ["later", "never"]
            assert await client.zcard(index) == 2  # the list cleaned the stale name
            await backend.put("ns", "soon2", b"v", time.time() + 0.05, None)
            await asyncio.sleep(0.15)
            assert await backend.purge_expired() == 1
            assert await client.zrange(index, 0, -1) == [b"later", b"never"]
            assert await client.zrange(expiry, 0, -1) == [b"later"]
        finally:
            await client.aclose()


async def test_redis_list_looks_past_many_expired_keys(
    redis_server: RedisServer, tmp_path: pathlib.Path, clock: FakeClock
) -> None:
    redis_server.command("FLUSHALL")
    async with open_backend(redis_server.url, state_dir=tmp_path, clock=clock) as backend:
        kv = KVNamespace(backend, "ns")
        for i in range(2100):
            await kv.put(f"a{i:04}", "v", expiration_ttl=60)
        await kv.put("b", "v")
        clock.advance(61)
        page = await kv.list(limit=10)
        # the script looks at limit + 1000 names at most, then hands back a cursor
        assert page.keys == []
        assert not page.list_complete
        names = []
        while True:
            names += [k.name for k in page.keys]
            if page.list_complete:
                break
            page = await kv.list(limit=10, cursor=page.cursor)
        assert names == ["b"]


async def test_purge_forever_runs_until_cancelled(tmp_path: pathlib.Path, clock: FakeClock) -> None:
    async with open_backend("memory", state_dir=tmp_path, clock=clock) as backend:
        await backend.put("ns", "k", b"v", clock.now + 60, None)
        clock.advance(61)
        task = asyncio.create_task(purge_forever(backend, every=0.01))
        await asyncio.sleep(0.05)
        assert await backend.purge_expired() == 0  # the task got there first
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
