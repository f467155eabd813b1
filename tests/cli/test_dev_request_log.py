"""``atoll dev`` writes a request's log lines to its stderr (a pipe) after the request's line.

The CLI's handler writes all of a request's lines at once (runtime/logs.py,
``LineHandler``; in C when the stream is a UTF-8 file or pipe): the lines
must come out whole, in order, after the request's own line, with the note
saying what the request's budget dropped.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx

from atoll.runtime.logs import MAX_LOG_BYTES, MAX_LOG_LINES
from tests.support import StartDev

WORKER = """
from atoll import Response

async def fetch(request, env, ctx):
    ctx.log("caf\\u00e9 \\u2026 \\U0001f600")
    for n in range(1, 1200):
        ctx.log(f"line {n}")
    return Response("logged")
"""


def test_a_requests_lines_follow_its_line_whole_and_in_order(
    tmp_path: Path, dev_server: StartDev
) -> None:
    (tmp_path / "worker.py").write_text(WORKER)
    (tmp_path / "atoll.toml").write_text('name = "logs"\nmain = "worker.py"\n')
    server = dev_server(tmp_path)
    response = httpx.get(server.url + "/flood")
    assert response.text == "logged"
    deadline = time.monotonic() + 10
    while "dropped" not in server.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    lines = server.log().splitlines()
    first = next(i for i, line in enumerate(lines) if "GET /flood 200 ok" in line)
    request_id = re.search(r"id=(\S+)", lines[first]).group(1)  # type: ignore[union-attr]
    logged = lines[first + 1 : first + 2 + MAX_LOG_LINES]
    prefix = f"   [{request_id}] "
    assert all(re.match(r"\d\d:\d\d:\d\d ", line) for line in logged)
    dropped = [f"line {n}" for n in range(MAX_LOG_LINES, 1200)]
    assert [line[8:] for line in logged] == [
        f"{prefix}caf\u00e9 \u2026 \U0001f600",
        *(f"{prefix}line {n}" for n in range(1, MAX_LOG_LINES)),
        f"{prefix}… {len(dropped)} lines / {len(''.join(dropped))} bytes dropped (a request"
        f" logs at most {MAX_LOG_LINES} lines and {MAX_LOG_BYTES} bytes)",
    ]
