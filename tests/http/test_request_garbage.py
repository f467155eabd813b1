"""A request leaves no reference cycles behind: everything it made is freed by reference
counting when it ends, so that serving never needs the garbage collector.

Each cycle left per request (the scope holding the cycle's ``respond`` and the cycle the
scope; a fresh instance and its exports) cost a collection of the young generation every
few dozen requests. Driven through atoll's own protocol and app, in process.
"""

from __future__ import annotations

import gc

import pytest
import uvloop

from atoll.api import ExecutionContext, Request, Response
from atoll.bindings import Env
from atoll.errors import AtollError
from atoll.http.app import AtollApp, SingleWorker
from atoll.runtime.instance import Instance
from atoll.worker import Runtime, load_worker
from benchmarks.request_cost import connect, serve
from benchmarks.servers import BENCH_WORKER

ROUTES = ("/hello", "/compute?n=10", "/fresh?n=10", "/nothing-here")


def test_requests_leave_nothing_for_the_garbage_collector(runtime: Runtime) -> None:
    worker = load_worker(BENCH_WORKER, runtime=runtime, dev=True)
    app = AtollApp(SingleWorker(worker), dev=True)

    async def run() -> dict[str, int]:
        proto, wire = connect(app)
        for route in ROUTES:  # first uses: caches, the warm instance
            await serve(proto, wire, route, 5)
        found = {}
        gc.collect()
        gc.disable()
        try:
            for route in ROUTES:
                answer = await serve(proto, wire, route, 50)
                assert answer.startswith((b"HTTP/1.1 200 ", b"HTTP/1.1 404 ")), answer
                found[route] = gc.collect()
                assert not proto.tasks  # each request's task left the server's tasks as it ended
        finally:
            gc.enable()
        return found

    assert uvloop.run(run()) == dict.fromkeys(ROUTES, 0)


def test_a_fresh_instance_kept_past_its_request_is_refused(runtime: Runtime) -> None:
    """Its store closed: the exports it had looked up, and those it had not, refuse."""
    worker = load_worker(BENCH_WORKER, runtime=runtime, dev=True)
    kept: list[Instance] = []

    async def fetch(request: Request, env: Env, ctx: ExecutionContext) -> Response:
        instance = worker.env.BENCH.instantiate()
        instance.exports.heavy_compute(1)
        kept.append(instance)
        return await original(request, env, ctx)

    original = worker.fetch
    worker.fetch = fetch

    async def run() -> None:
        result = await worker.handle(Request("http://t/hello"), "r1")
        assert result.response.status == 200
        instance = kept[0]
        for name in ("heavy_compute", "fib"):
            with pytest.raises(AtollError, match="belongs to another request"):
                instance.exports[name](1)

    uvloop.run(run())
