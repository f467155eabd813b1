"""Tests of this worker, run by `pytest` in its folder.

atoll's pytest plugin (installed with atoll) loads the worker of this folder
for each test: `atoll_client` is an httpx client bound to it in process,
`atoll_worker.fetch` calls it directly, `atoll_results` holds what each
request logged and its outcome. See atoll's docs/testing.md.
"""

import pytest

pytestmark = pytest.mark.anyio  # anyio's pytest plugin comes with httpx


async def test_greets_by_name(atoll_client):
    response = await atoll_client.get("/", params={"name": "Ada"})
    assert response.status_code == 200
    assert response.text.startswith("Hello, Ada!\n")


async def test_json_describes_the_request(atoll_client):
    response = await atoll_client.post("/json", params={"q": "1"}, content=b"abc")
    assert response.json() == {"method": "POST", "path": "/json", "query": "?q=1", "bytes": 3}


async def test_logs_each_request(atoll_worker, atoll_results):
    result = await atoll_worker.fetch("/upload", method="POST", body=b"abc")
    assert result.outcome == "ok"
    assert "body:   3 bytes" in result.text
    assert atoll_results.logs == ["POST /upload"]


@pytest.mark.atoll(vars={"GREETING": "Bonjour"})
async def test_greeting_is_a_var(atoll_client):
    response = await atoll_client.get("/")
    assert response.text.startswith("Bonjour, world!\n")
