"""A JavaScript worker's global ``fetch`` takes the same path: policy, limits, tail records."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from atoll.api import Request
from atoll.worker import Runtime, load_worker
from tests.bindings.outbound.upstream import Upstream

WORKER = """
export default {
  async fetch(request, env, ctx) {
    const target = new URL(request.url).searchParams.get("url");
    try {
      const response = await fetch(target, { method: "POST", body: "from js" });
      return new Response(await response.text(), {
        status: response.status,
        headers: { "x-redirected": String(response.redirected) },
      });
    } catch (e) {
      return new Response("refused: " + e.message, { status: 502 });
    }
  },
};
"""


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    server = await Upstream().start()
    yield server
    await server.stop()


def _folder(tmp_path: Path, outbound: str) -> Path:
    (tmp_path / "index.js").write_text(WORKER)
    (tmp_path / "atoll.toml").write_text(f'name = "js-fetch"\nmain = "index.js"\n{outbound}\n')
    return tmp_path


async def test_js_fetch_is_refused_by_default(tmp_path: Path, upstream: Upstream) -> None:
    worker = load_worker(_folder(tmp_path, ""), runtime=Runtime(cache_dir=False))
    result = await worker.handle(
        Request(f"http://localhost/?url={upstream.url}/echo"), "rid0000000000002"
    )
    assert result.response.status == 502
    assert "127.0.0.1, a loopback address" in result.response.body.decode()
    assert [r.outcome for r in result.subrequests] == ["refused"]
    assert upstream.connections == 0


async def test_js_fetch_when_allowed_follows_redirects(tmp_path: Path, upstream: Upstream) -> None:
    outbound = f'[outbound]\nallowed_hosts = ["http://127.0.0.1:{upstream.port}"]'
    worker = load_worker(_folder(tmp_path, outbound), runtime=Runtime(cache_dir=False))
    target = f"{upstream.url}/redirect?status=307%26to={upstream.url}/echo"
    result = await worker.handle(
        Request("http://localhost/?url=" + target.replace("?", "%3F").replace("=", "%3D")),
        "rid0000000000003",
    )
    assert result.response.status == 200, result.response.body
    echoed = json.loads(result.response.body)
    assert echoed["method"] == "POST"  # 307 keeps the method and the body
    assert echoed["body"] == "from js"
    assert result.response.headers.get("x-redirected") == "true"
    assert [(r.method, r.status) for r in result.subrequests] == [("POST", 307), ("POST", 200)]
