"""``atoll deploy --env NAME`` / ``-c FILE`` of a wrangler project to a real node.

The node has no flags: the bundle records the file and environment, so the node
loads the same worker (``NAME-ENV``, the environment's vars and routes) the
client checked.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from atoll.cli import main
from tests.control.serving import TOKEN, Node, start_serve

WORKER = """\
from atoll import Response

async def fetch(request, env, ctx):
    return Response(env.STAGE)
"""

WRANGLER = """\
name = "shop"
main = "src/worker.py"
account_id = "0123456789abcdef0123456789abcdef"
route = { pattern = "shop.test", custom_domain = true }

[vars]
STAGE = "top"

[env.staging]
routes = [{ pattern = "staging.shop.test/*", zone_name = "shop.test" }]
vars = { STAGE = "staging" }
"""


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    started = start_serve(tmp_path / "state")
    yield started
    started.stop()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "shop"
    (root / "src").mkdir(parents=True)
    (root / "src" / "worker.py").write_text(WORKER)
    (root / "wrangler.toml").write_text(WRANGLER)
    return root


def run(node: Node, *args: str) -> str:
    env = {"ATOLL_ADMIN_URL": node.admin, "ATOLL_ADMIN_TOKEN": TOKEN, "NO_COLOR": "1"}
    result = CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_deploy_top_level_and_env_side_by_side(node: Node, project: Path) -> None:
    top = run(node, "deploy", str(project))
    assert "shop: new version" in top
    staging = run(node, "deploy", str(project), "--env", "staging")
    assert "shop-staging: new version" in staging
    assert "staging.shop.test/*" in staging
    assert node.get("shop.test", "/any/path").text == "top"  # a custom domain: every path
    assert node.get("staging.shop.test").text == "staging"


def test_deploy_with_config_file(node: Node, project: Path, tmp_path: Path) -> None:
    (project / "atoll.toml").write_text('name = "not-this"\nmain = "src/worker.py"\n')
    other = project / "wrangler.jsonc"
    other.write_text(
        '{\n  // staging only\n  "name": "shop-json",\n  "main": "src/worker.py",\n'
        '  "routes": ["json.shop.test/*"],\n  "vars": {"STAGE": "json"},\n}\n'
    )
    out = run(node, "deploy", "-c", str(other))
    assert "shop-json: new version" in out
    assert node.get("json.shop.test").text == "json"
