"""Under ``atoll serve``: a worker never reaches the node's admin API, even with loopback
allowed; a service binding calls another deployed worker (real sockets, one node)."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from atoll.cli.deploy import deploy as deploy_command
from tests.control.serving import Node, run_cli, start_serve

PROBE = """
from atoll import Response
from atoll import fetch as subrequest

async def fetch(request, env, ctx):
    try:
        reply = await subrequest(request.query.get("url"))
        return Response(f"reached {reply.status}")
    except Exception as exc:
        return Response(f"{type(exc).__name__}: {exc}", status=502)
"""

FRONT = """
from atoll import Response

async def fetch(request, env, ctx):
    reply = await env.BACK.fetch("/hi")
    return Response(f"front<{await reply.text()}>")
"""

BACK = """
from atoll import Response

async def fetch(request, env, ctx):
    return Response("back " + request.path)
"""


def _write(folder: Path, name: str, source: str, toml: str) -> Path:
    folder.mkdir(parents=True)
    (folder / "worker.py").write_text(textwrap.dedent(source))
    (folder / "atoll.toml").write_text(
        f'name = "{name}"\nmain = "worker.py"\nroutes = ["{name}.test/*"]\n{toml}'
    )
    return folder


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    started = start_serve(tmp_path / "state")
    yield started
    started.stop()


def test_the_admin_api_is_refused_and_other_loopback_ports_are_not(
    node: Node, tmp_path: Path
) -> None:
    probe = _write(
        tmp_path / "probe", "probe", PROBE, '[outbound]\nallowed_hosts = ["http://127.0.0.1:*"]\n'
    )
    assert run_cli(deploy_command, node, str(probe)).exit_code == 0
    admin_port = node.admin.rsplit(":", 1)[1]
    refused = node.get("probe.test", f"/?url=http://127.0.0.1:{admin_port}/v1/workers")
    assert refused.status_code == 502
    assert "this node's admin API" in refused.text
    reached = node.get("probe.test", f"/?url={node.url}/")  # the node's HTTP port: a 404 page
    assert reached.text == "reached 404"


def test_a_service_binding_under_serve(node: Node, tmp_path: Path) -> None:
    back = _write(tmp_path / "back", "back", BACK, "")
    front = _write(
        tmp_path / "front", "front", FRONT, '[[services]]\nbinding = "BACK"\nservice = "back"\n'
    )
    refused = run_cli(deploy_command, node, str(front))
    assert refused.exit_code != 0
    assert "names worker 'back', which is not deployed" in refused.output
    assert run_cli(deploy_command, node, str(back)).exit_code == 0
    assert run_cli(deploy_command, node, str(front)).exit_code == 0
    assert node.get("front.test", "/").text == "front<back /hi>"
