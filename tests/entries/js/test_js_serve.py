"""JavaScript workers under ``atoll serve``: deployed, routed, tailed like every worker."""

from __future__ import annotations

import shutil
import struct
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from atoll.cli.deploy import deploy as deploy_command
from tests.control.serving import Node, run_cli, start_serve
from tests.support import REPO


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    started = start_serve(tmp_path / "state", processes=2)
    try:
        yield started
    finally:
        started.stop()


TAILED_JS = """\
export default {
  async fetch(request, env) {
    console.log("about to fail", env.WHO);
    return inner();
  },
};
function inner() {
  throw new Error("js failure");
}
"""


def test_the_seed_js_example_deploys_and_answers(node: Node, tmp_path: Path) -> None:
    folder = tmp_path / "seed-js"
    shutil.copytree(REPO / "examples" / "seed-js", folder)
    result = run_cli(deploy_command, node, str(folder))
    assert result.exit_code == 0, result.output
    for _ in range(4):  # both processes, several loops: each makes its own isolate
        response = node.get("seed-js.localhost", "/")
        assert response.status_code == 200
        assert response.text == f"Result: {sum(i * i for i in range(42))}"


def test_tail_shows_a_js_workers_console_lines_and_stack(node: Node, tmp_path: Path) -> None:
    folder = tmp_path / "tailed"
    folder.mkdir()
    (folder / "atoll.toml").write_text(
        'name = "tailed"\nmain = "src/index.js"\n[vars]\nWHO = "me"\n'
    )
    (folder / "src").mkdir()
    (folder / "src" / "index.js").write_text(TAILED_JS)
    assert run_cli(deploy_command, node, str(folder)).exit_code == 0
    with node.client() as client:
        events = client.tail("tailed", statuses=["5xx"])
        kind, _ = next(events)
        assert kind == "open"
        response = node.get("tailed.localhost", "/")
        assert response.status_code == 500
        assert "js failure" not in response.text  # serve's page: no details, a request id
        kind, event = next(events)
    assert kind == "request"
    assert (event["status"], event["outcome"]) == (500, "exception")
    assert event["logs"] == ["about to fail me"]
    assert event["exception"]["type"] == "ScriptError"
    assert "js failure" in event["exception"]["message"]
    assert any("inner" in frame for frame in event["exception"]["frames"])


def test_a_worker_with_npm_dependencies_deploys(node: Node, tmp_path: Path) -> None:
    # atoll deploy packs the node_modules files the bundle reads (not the rest), so the
    # node, which bundles at load, finds @cf-wasm/photon and its .wasm.
    from tests.entries.js.test_js_wasm_bindgen import FIXTURE, _png

    folder = tmp_path / "photon"
    shutil.copytree(FIXTURE, folder, ignore=shutil.ignore_patterns(".atoll"))
    result = run_cli(deploy_command, node, str(folder))
    assert result.exit_code == 0, result.output
    response = httpx.post(
        f"{node.url}/?w=16&h=8", content=_png(32, 24), headers={"host": "photon.localhost"}
    )
    assert response.status_code == 200, response.text
    assert response.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", response.content[16:24]) == (16, 8)
