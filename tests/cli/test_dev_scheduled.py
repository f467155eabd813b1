"""``atoll dev --test-scheduled``: ``/__scheduled?cron=…`` runs ``scheduled`` (a real socket)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.support import StartDev

WORKER = """
from atoll import Response

async def fetch(request, env, ctx):
    return Response("fetch ran")

async def scheduled(event, env, ctx):
    ctx.log(f"scheduled {event.cron!r}")
    if event.cron == "0 0 1 1 *":
        raise ValueError("new year job failed")
"""


def _folder(tmp_path: Path) -> Path:
    (tmp_path / "worker.py").write_text(WORKER)
    (tmp_path / "atoll.toml").write_text(
        'name = "cron-dev"\nmain = "worker.py"\n[triggers]\ncrons = ["*/10 * * * *"]\n'
    )
    return tmp_path


def _wait_for(server_log: Callable[[], str], text: str) -> str:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        log = server_log()
        if text in log:
            return log
        time.sleep(0.05)
    raise AssertionError(f"{text!r} not in the log:\n{server_log()}")


def test_test_scheduled_runs_the_handler(tmp_path: Path, dev_server: StartDev) -> None:
    server = dev_server(_folder(tmp_path), "--test-scheduled")
    assert "cron triggers (UTC): */10 * * * *" in server.log()
    response = httpx.get(server.url + "/__scheduled", params={"cron": "*/3 * * * *"})
    assert response.status_code == 200
    assert response.text == "Ran scheduled event\n"
    _wait_for(server.log, "scheduled '*/3 * * * *'")
    assert httpx.get(server.url + "/").text == "fetch ran"
    failed = httpx.get(server.url + "/__scheduled", params={"cron": "0 0 1 1 *"})
    assert failed.status_code == 500
    assert "new year job failed" in failed.text
    default = httpx.get(server.url + "/__scheduled")  # no cron: the first of [triggers]
    assert default.status_code == 200
    _wait_for(server.log, "scheduled '*/10 * * * *'")


def test_without_the_flag_the_path_goes_to_fetch(tmp_path: Path, dev_server: StartDev) -> None:
    server = dev_server(_folder(tmp_path))
    assert httpx.get(server.url + "/__scheduled?cron=*").text == "fetch ran"
