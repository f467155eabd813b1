"""The isolate that checks a JS worker at load, and the first request after it.

A load on a serving loop's thread keeps its checking isolate as that thread's
isolate of the worker, so the first request runs in it (its top-level code ran
once); a load off any loop drops it, and the first request makes its own.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from atoll.api import Request
from atoll.worker import Runtime, load_worker

WORKER = """
const born = crypto.randomUUID();
console.log("born " + born);
export default { async fetch() { return new Response(born); } };
"""


def _worker(folder: Path) -> Path:
    folder.mkdir()
    (folder / "index.js").write_text(WORKER)
    (folder / "atoll.toml").write_text('name = "born"\nmain = "index.js"\n')
    return folder


def _born(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage().rpartition("born ")[2] for r in caplog.records if "born " in r.getMessage()
    ]


def test_a_load_on_a_loop_serves_its_first_request_from_the_checking_isolate(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = _worker(tmp_path / "w")
    caplog.set_level(logging.INFO, logger="atoll.js")

    async def run() -> tuple[str, str]:
        worker = load_worker(folder, runtime=Runtime())
        first = await worker.handle(Request("http://x/"), "r1")
        second = await worker.handle(Request("http://x/"), "r2")
        return first.response.body.decode(), second.response.body.decode()

    first, second = asyncio.run(run())
    assert _born(caplog) == [first]  # one isolate: the load's, its top-level code ran once
    assert second == first


def test_a_load_off_any_loop_leaves_the_first_request_a_new_isolate(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = _worker(tmp_path / "w")
    caplog.set_level(logging.INFO, logger="atoll.js")
    worker = load_worker(folder, runtime=Runtime())

    async def run() -> str:
        result = await worker.handle(Request("http://x/"), "r1")
        return result.response.body.decode()

    first = asyncio.run(run())
    born = _born(caplog)
    assert len(born) == 2  # the load's isolate, then the request's
    assert born[1] == first
    assert born[0] != first
