"""``from atoll import fetch`` from a Python entry, over real sockets to a server on 127.0.0.1.

The server is allowed explicitly through ``[outbound] allowed_hosts`` where a test
needs it; with the default policy, loopback is refused. Names are resolved by a
fake resolver (no network): ``*.test`` names map to the addresses a test gives.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from atoll.api import Request
from atoll.bindings.outbound import client
from atoll.bindings.outbound.policy import IPAddress
from atoll.errors import SubrequestError
from atoll.worker import Result, Runtime, Worker, load_worker, run_pending
from tests.bindings.outbound.upstream import Upstream
from tests.support import WorkerFactory


def _proxy_source() -> str:
    # A worker whose fetch() forwards ?url= through atoll.fetch (named so both fit).
    return """
from atoll import Response
from atoll import fetch as subrequest

async def fetch(request, env, ctx):
    target = request.query.get("url")
    try:
        response = await subrequest(target, method=request.query.get("method") or "GET",
                                    headers={"x-test": "1"}, body=request.query.get("body"))
    except Exception as exc:
        return Response(f"{type(exc).__name__}: {exc}", status=502)
    text = await response.text()
    return Response(text, status=response.status,
                    headers={"x-upstream-url": response.url,
                             "x-redirected": str(response.redirected)})
"""


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    server = await Upstream().start()
    yield server
    await server.stop()


@pytest.fixture
def names(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """A fake resolver: ``names["a.test"] = ["127.0.0.1"]``; other names fail."""
    table: dict[str, list[str]] = {}

    async def resolve(host: str, port: int) -> list[IPAddress]:
        try:
            return [ipaddress.ip_address(host.strip("[]"))]
        except ValueError:
            pass
        if host not in table:
            raise SubrequestError(f"fetch: cannot resolve {host!r}", reason="dns")
        return [ipaddress.ip_address(a) for a in table[host]]

    monkeypatch.setattr(client, "resolver", resolve)
    return table


def _worker(
    make_worker: WorkerFactory, runtime: Runtime, outbound: str = "", limits: str = ""
) -> Worker:
    folder: Path = make_worker(_proxy_source(), extra=outbound, limits=limits)
    return load_worker(folder, runtime=runtime)


async def _get(worker: Worker, url: str, **query: str) -> Result:
    from urllib.parse import urlencode

    return await worker.handle(
        Request("http://localhost/?" + urlencode({"url": url, **query})), "rid0000000000000"
    )


async def test_loopback_is_refused_by_default(
    make_worker: WorkerFactory, runtime: Runtime, upstream: Upstream, names: dict[str, list[str]]
) -> None:
    worker = _worker(make_worker, runtime)
    result = await _get(worker, upstream.url + "/hello?secret=abc")
    body = result.response.body.decode()
    assert result.response.status == 502
    assert "EgressRefusedError" in body
    assert "loopback" in body
    assert upstream.connections == 0
    [record] = result.subrequests
    assert (record.method, record.url, record.status, record.outcome, record.reason) == (
        "GET",
        upstream.url + "/hello",
        None,
        "refused",
        "loopback",
    )
    assert any("subrequest refused" in line and "loopback" in line for line in result.logs)
    assert not any("secret=abc" in line for line in result.logs)


async def test_allowed_loopback_is_fetched(
    make_worker: WorkerFactory, runtime: Runtime, upstream: Upstream, names: dict[str, list[str]]
) -> None:
    worker = _worker(
        make_worker, runtime, f'[outbound]\nallowed_hosts = ["http://127.0.0.1:{upstream.port}"]'
    )
    result = await _get(worker, upstream.url + "/hello")
    assert result.response.status == 200
    assert result.response.body == b"hello from upstream"
    [record] = result.subrequests
    assert (record.status, record.outcome) == (200, "ok")
    # The pool is warm: a second request reuses the connection.
    await _get(worker, upstream.url + "/hello")
    assert upstream.connections == 1


async def test_post_sends_method_headers_and_body(
    make_worker: WorkerFactory, runtime: Runtime, upstream: Upstream, names: dict[str, list[str]]
) -> None:
    worker = _worker(
        make_worker, runtime, f'[outbound]\nallowed_hosts = ["http://127.0.0.1:{upstream.port}"]'
    )
    result = await _get(worker, upstream.url + "/echo", method="POST", body="payload")
    echoed = json.loads(result.response.body)
    assert echoed["method"] == "POST"
    assert echoed["body"] == "payload"
    assert ["x-test", "1"] in echoed["headers"]


async def test_a_name_resolving_to_loopback_is_refused(
    make_worker: WorkerFactory, runtime: Runtime, upstream: Upstream, names: dict[str, list[str]]
) -> None:
    names["rebind.test"] = ["127.0.0.1"]
    worker = _worker(make_worker, runtime, '[outbound]\nallowed_hosts = ["*://*:*"]')
    result = await _get(worker, f"http://rebind.test:{upstream.port}/hello")
    assert result.response.status == 502
    assert "rebind.test is at 127.0.0.1, a loopback address" in result.response.body.decode()
    assert upstream.connections == 0


async def test_the_checked_address_is_pinned_and_host_kept(
    make_worker: WorkerFactory, runtime: Runtime, upstream: Upstream, names: dict[str, list[str]]
) -> None:
    """An exact name opens its private addresses; the connection goes to the address
    that was checked, with the URL's Host."""
    names["pinned.test"] = ["10.255.255.1", "127.0.0.1"]  # the first one is not allowed here
    worker = _worker(
        make_worker,
        runtime,
        f'[outbound]\nallowed_hosts = ["http://pinned.test:{upstream.port}"]\n'
        'denied_hosts = ["10.0.0.0/8"]',
    )
    result = await _get(worker, f"http://pinned.test:{upstream.port}/echo")
    assert result.response.status == 200, result.response.body
    echoed = json.loads(result.response.body)
    assert ["host", f"pinned.test:{upstream.port}"] in [
        [k.lower(), v] for k, v in echoed["headers"]
    ]


async def test_redirects_are_followed_and_checked_each_time(
    make_worker: WorkerFactory, runtime: Runtime, upstream: Upstream, names: dict[str, list[str]]
) -> None:
    names["private.test"] = ["10.0.0.7"]
    worker = _worker(
        make_worker,
        runtime,
        f'[outbound]\nallowed_hosts = ["http://127.0.0.1:{upstream.port}", "http://*.test:*"]',
    )
    result = await _get(worker, upstream.url + f"/redirect?to={upstream.url}/hello")
    assert result.response.status == 200
    assert result.response.headers.get("x-redirected") == "True"
    assert result.response.headers.get("x-upstream-url") == upstream.url + "/hello"
    assert [r.status for r in result.subrequests] == [302, 200]

    for target in ("http://10.0.0.7/", "http://private.test/x", "http://169.254.169.254/latest"):
        result = await _get(worker, upstream.url + "/redirect?to=" + target)
        assert result.response.status == 502, target
        assert "EgressRefusedError" in result.response.body.decode()
        assert [r.outcome for r in result.subrequests] == ["ok", "refused"]


async def test_redirect_loops_stop(
    make_worker: WorkerFactory, runtime: Runtime, upstream: Upstream, names: dict[str, list[str]]
) -> None:
    worker = _worker(
        make_worker, runtime, f'[outbound]\nallowed_hosts = ["http://127.0.0.1:{upstream.port}"]'
    )
    result = await _get(worker, upstream.url + "/loop")
    assert result.response.status == 502
    assert "more than 20 redirects" in result.response.body.decode()


async def test_subrequest_limit(
    make_worker: WorkerFactory, runtime: Runtime, upstream: Upstream, names: dict[str, list[str]]
) -> None:
    worker = _worker(
        make_worker,
        runtime,
        f'[outbound]\nallowed_hosts = ["http://127.0.0.1:{upstream.port}"]',
        limits="subrequests = 1",
    )
    result = await _get(worker, upstream.url + f"/redirect?to={upstream.url}/hello")
    assert result.response.status == 502
    assert "SubrequestLimitError" in result.response.body.decode()
    assert [r.outcome for r in result.subrequests] == ["ok", "refused"]
    assert (await _get(worker, upstream.url + "/hello")).response.status == 200  # per request


async def test_response_size_and_timeout_limits(
    make_worker: WorkerFactory, runtime: Runtime, upstream: Upstream, names: dict[str, list[str]]
) -> None:
    worker = _worker(
        make_worker,
        runtime,
        f'[outbound]\nallowed_hosts = ["http://127.0.0.1:{upstream.port}"]',
        limits="subrequest_response_mb = 1\nsubrequest_timeout_s = 1",
    )
    ok = await _get(worker, upstream.url + f"/big?n={1024 * 1024}")
    assert ok.response.status == 200
    assert len(ok.response.body) == 1024 * 1024
    big = await _get(worker, upstream.url + f"/big?n={1024 * 1024 + 1}")
    assert big.response.status == 502
    assert "over 1 MiB" in big.response.body.decode()
    slow = await _get(worker, upstream.url + "/slow?s=3")
    assert slow.response.status == 502
    assert "timed out after 1 s" in slow.response.body.decode()
    assert slow.subrequests[0].reason == "timeout"


async def test_gzip_bodies_are_decoded(
    make_worker: WorkerFactory, runtime: Runtime, upstream: Upstream, names: dict[str, list[str]]
) -> None:
    worker = _worker(
        make_worker, runtime, f'[outbound]\nallowed_hosts = ["http://127.0.0.1:{upstream.port}"]'
    )
    result = await _get(worker, upstream.url + "/gzip")
    assert result.response.body == b"unzipped " * 10
    assert result.response.headers.get("content-encoding") is None


async def test_streamed_body_and_wait_until(
    make_worker: WorkerFactory, runtime: Runtime, upstream: Upstream, names: dict[str, list[str]]
) -> None:
    folder = make_worker(
        f"""
from atoll import Response
from atoll import fetch as get

async def later():
    await get("{upstream.url}/hello?from=wait_until")

async def fetch(request, env, ctx):
    response = await get("{upstream.url}/big?n=300000", stream=True)
    size = 0
    async for chunk in response.iter_bytes():
        size += len(chunk)
    ctx.wait_until(later())
    return Response(str(size))
""",
        extra=f'[outbound]\nallowed_hosts = ["http://127.0.0.1:{upstream.port}"]',
    )
    worker = load_worker(folder, runtime=runtime)
    result = await worker.handle(Request("http://localhost/"), "rid0000000000001")
    assert result.response.body == b"300000"
    await run_pending(result)
    assert upstream.requests[-1]["target"] == "/hello?from=wait_until"
