"""Tests of this worker, run by `pytest` in its folder after `atoll build`.

atoll's pytest plugin (installed with atoll) loads the worker of this folder
for each test: `atoll_client` is an httpx client bound to it in process,
`atoll_worker.fetch` calls it directly, `atoll_results` holds what each
request logged and its outcome. See atoll's docs/testing.md.
"""

import pytest

pytestmark = pytest.mark.anyio  # anyio's pytest plugin comes with httpx


async def test_greets_and_counts_vowels(atoll_client):
    response = await atoll_client.get("/", params={"name": "Ada"})
    assert response.status_code == 200
    assert response.text == "Hello, Ada! (from Rust)\nThere are 2 vowels in 'Ada'.\n"


async def test_each_request_is_ok(atoll_worker, atoll_results):
    result = await atoll_worker.fetch("/?name=Grace")
    assert result.outcome == "ok"
    assert "There are 2 vowels in 'Grace'." in result.text
    assert atoll_results.outcomes == ["ok"]
