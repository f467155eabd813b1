"""``atoll dev a/ b/``: the first folder is served, the others are its services (real socket)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx

from tests.support import StartDev

FRONT = """
from atoll import Response

async def fetch(request, env, ctx):
    reply = await env.AUTH.fetch("/check?user=" + request.query.get("user", ""))
    return Response(f"front<{reply.status}:{await reply.text()}>")
"""

AUTH = """
from atoll import Response

async def fetch(request, env, ctx):
    ctx.log("auth checked " + request.path)
    ok = request.query.get("user") == "ada"
    return Response("yes" if ok else "no", status=200 if ok else 403)
"""


def _folders(tmp_path: Path) -> tuple[Path, Path]:
    front, auth = tmp_path / "front", tmp_path / "auth"
    front.mkdir()
    auth.mkdir()
    (front / "worker.py").write_text(FRONT)
    (front / "atoll.toml").write_text(
        'name = "front"\nmain = "worker.py"\n[[services]]\nbinding = "AUTH"\nservice = "auth"\n'
    )
    (auth / "worker.py").write_text(AUTH)
    (auth / "atoll.toml").write_text('name = "auth"\nmain = "worker.py"\n')
    return front, auth


def test_dev_serves_the_first_folder_with_the_others_as_services(
    tmp_path: Path, dev_server: StartDev
) -> None:
    front, auth = _folders(tmp_path)
    server = dev_server(front, str(auth))
    assert httpx.get(server.url + "/?user=ada").text == "front<200:yes>"
    assert httpx.get(server.url + "/?user=bob").text == "front<403:no>"
    assert "service auth loaded from" in server.log()


def test_a_service_dev_was_not_given_stops_it(tmp_path: Path) -> None:
    front, _ = _folders(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "atoll.cli", "dev", str(front), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "names worker 'auth', which atoll dev was not given" in done.stderr
