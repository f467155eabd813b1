"""One backend, several event loops in threads: how ``atoll dev`` uses KV.

Every test runs once per backend. The namespace is made on the test's loop
(as ``atoll dev`` makes it at load) and then used from four threads, each with
an event loop of its own, at the same time.
"""

from __future__ import annotations

import asyncio
import pathlib
import threading
from collections.abc import Callable, Coroutine
from typing import Any

import uvloop

from atoll.bindings.kv import KVNamespace, open_backend
from tests.bindings.kv.kv_support import RedisServer

THREADS = 4
KEYS = 40


def in_threads(work: Callable[[int], Coroutine[Any, Any, None]]) -> None:
    """Run ``work(i)`` in ``THREADS`` threads, each on a new event loop; re-raise a failure.

    Half the loops are uvloop's (as ``atoll dev`` serves), half asyncio's.
    """
    barrier = threading.Barrier(THREADS)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        async def start() -> None:
            barrier.wait(timeout=30)  # every loop starts its work together
            await work(i)

        factory = uvloop.new_event_loop if i % 2 else asyncio.new_event_loop
        try:
            with asyncio.Runner(loop_factory=factory) as runner:
                runner.run(start())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    if errors:
        raise errors[0]


async def test_one_namespace_serves_four_loops_at_once(kv: KVNamespace) -> None:
    async def work(i: int) -> None:
        for n in range(KEYS):
            await kv.put(f"t{i}/{n:03}", f"{i}:{n}", metadata={"thread": i})
            await kv.put("shared", f"{i}:{n}")
            assert await kv.get(f"t{i}/{n:03}") == f"{i}:{n}"
            assert await kv.get(f"t{i}/{n:03}", cache_ttl=60) == f"{i}:{n}"
            assert (await kv.get("shared")) is not None
        page = await kv.list(prefix=f"t{i}/")
        assert [k.name for k in page.keys] == [f"t{i}/{n:03}" for n in range(KEYS)]
        assert {k.metadata["thread"] for k in page.keys} == {i}
        many = await kv.get_many([f"t{i}/000", f"t{i}/001", "nope"])
        assert many == {f"t{i}/000": f"{i}:0", f"t{i}/001": f"{i}:1", "nope": None}
        for n in range(0, KEYS, 2):
            await kv.delete(f"t{i}/{n:03}")

    in_threads(work)
    # back on the test's loop: every thread's writes are there
    page = await kv.list()
    names = [k.name for k in page.keys]
    assert len(names) == THREADS * KEYS // 2 + 1
    for i in range(THREADS):
        assert await kv.get(f"t{i}/001") == f"{i}:1"
        assert await kv.get(f"t{i}/000") is None
    assert (await kv.get("shared") or "").endswith(f":{KEYS - 1}")


async def test_a_write_on_one_loop_invalidates_the_cache_for_all(kv: KVNamespace) -> None:
    await kv.put("k", "v0")
    assert await kv.get("k", cache_ttl=3600) == "v0"  # cached, shared by every loop
    writer_done = threading.Event()

    async def work(i: int) -> None:
        if i == 0:
            await kv.put("k", "v1")
            writer_done.set()
        else:
            await asyncio.to_thread(writer_done.wait, 30)
            assert await kv.get("k", cache_ttl=3600) == "v1"

    in_threads(work)
    assert await kv.get("k", cache_ttl=3600) == "v1"


async def test_blocking_twins_from_threads_without_loops(kv: KVNamespace) -> None:
    """The guest path: plain threads (a wasm call blocks its loop) calling the *_sync twins."""
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for n in range(KEYS):
                kv.put_sync(f"s{i}/{n:03}", f"{i}:{n}".encode())
                assert kv.get_sync(f"s{i}/{n:03}") == f"{i}:{n}".encode()
            page = kv.list_sync(prefix=f"s{i}/", limit=KEYS // 2)
            assert len(page.keys) == KEYS // 2
            assert not page.list_complete
            rest = kv.list_sync(prefix=f"s{i}/", cursor=page.cursor)
            assert len(rest.keys) == KEYS // 2
            assert rest.list_complete
            kv.delete_sync(f"s{i}/000")
            assert kv.get_sync(f"s{i}/000") is None
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors[0]
    # what the blocking twins wrote, the async API reads, and the other way round
    assert await kv.get("s1/001") == "1:1"
    await kv.put("from-async", b"\x00\xff")
    assert kv.get_sync("from-async") == b"\x00\xff"


async def test_redis_closes_each_loops_client_with_its_loop(
    redis_server: RedisServer, tmp_path: pathlib.Path
) -> None:
    redis_server.command("FLUSHALL")

    def clients() -> int:
        return redis_server.command("CLIENT", "LIST").count(b"\nid=") + 1

    async with open_backend(redis_server.url, state_dir=tmp_path) as backend:
        kv = KVNamespace(backend, "ns")
        await kv.put("k", "v")  # this loop's client
        before = clients()

        async def work(i: int) -> None:
            assert await kv.get("k") == "v"

        in_threads(work)
        # each thread's loop closed its own client when it shut down: nothing left behind
        for _ in range(50):
            if clients() == before:
                break
            await asyncio.sleep(0.02)
        assert clients() == before
        assert await kv.get("k") == "v"
    for _ in range(50):
        if clients() == before - 1:
            break
        await asyncio.sleep(0.02)
    assert clients() == before - 1  # and close() closed this loop's
