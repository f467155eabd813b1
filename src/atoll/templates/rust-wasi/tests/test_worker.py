"""Tests of this worker, run by `pytest` in its folder after `atoll build`.

atoll's pytest plugin (installed with atoll) loads the worker of this folder
for each test: `atoll_client` is an httpx client bound to it in process,
`atoll_worker.fetch` calls it directly, `atoll_results` holds what each
request logged and its outcome. See atoll's docs/testing.md.
"""

import pytest

pytestmark = pytest.mark.anyio  # anyio's pytest plugin comes with httpx


async def test_page_describes_the_request(atoll_client):
    response = await atoll_client.post("/p/q", params={"x": "1"}, content=b"12345")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert "<h1>Hello from Rust</h1>" in response.text
    assert "<li>path: <code>/p/q</code></li>" in response.text
    assert "<li>body: 5 bytes</li>" in response.text


async def test_logs_each_request(atoll_worker):
    result = await atoll_worker.fetch("/p", method="POST", body=b"12")
    assert result.outcome == "ok"
    assert len(result.logs) == 1  # the line the program wrote to stderr


async def test_unknown_path_is_404(atoll_client):
    response = await atoll_client.get("/missing")
    assert response.status_code == 404
    assert response.text == "nothing at /missing\n"
