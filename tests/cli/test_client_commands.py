"""The client commands as a wrangler user types them: NAME from the folder's config,
``secret put KEY --name W``, ``secret bulk FILE``, and the admin token found in the
node's state folder. A real node, real sockets; the commands run in-process."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from atoll.cli.delete import delete
from atoll.cli.rollback import rollback
from atoll.cli.secret import secret
from atoll.cli.tail import tail
from atoll.cli.versions import versions
from tests.control.serving import Node, deploy, start_serve, write_worker


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    """A node started without a token: it writes STATE/admin-token."""
    started = start_serve(tmp_path / "state", token=None)
    yield started
    started.stop()


def cli(command: click.Command, node: Node, *args: str, input: str | None = None) -> Result:
    """``command`` with the node's URL, and no token in the environment."""
    env = {"ATOLL_ADMIN_URL": node.admin, "ATOLL_ADMIN_TOKEN": None, "ATOLL_STATE": None}
    env["NO_COLOR"] = "1"
    return CliRunner().invoke(command, list(args), input=input, env=env, catch_exceptions=False)


def test_the_token_is_read_from_the_state_folder(node: Node, tmp_path: Path) -> None:
    folder = write_worker(tmp_path / "w", "w", 1)
    node.token = (node.state / "admin-token").read_text().strip()
    deploy(node, folder)
    listed = cli(versions, node, "list", "w", "--state", str(node.state))
    assert listed.exit_code == 0, listed.output
    assert "* " in listed.output


def test_a_missing_token_says_where_it_is_and_how_to_pass_it(node: Node, tmp_path: Path) -> None:
    missing = cli(versions, node, "list", "w")
    assert missing.exit_code == 1
    assert "Missing option" not in missing.output
    assert "STATE/admin-token" in missing.output
    assert "--token" in missing.output
    assert "--state" in missing.output
    elsewhere = cli(versions, node, "list", "w", "--state", str(tmp_path))
    assert elsewhere.exit_code == 1
    assert f"no admin token in {tmp_path / 'admin-token'}" in elsewhere.output


def test_name_defaults_to_the_config_in_the_current_folder(
    node: Node, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    node.token = (node.state / "admin-token").read_text().strip()
    folder = write_worker(tmp_path / "w", "w", 1)
    deploy(node, folder)
    write_worker(folder, "w", 2)
    deploy(node, folder)
    monkeypatch.chdir(folder)
    state = ("--state", str(node.state))

    put = cli(secret, node, "put", "API_KEY", *state, input="one\n")  # wrangler: KEY only
    assert put.exit_code == 0, put.output
    assert node.get("w.localhost", "/secret").text == "one"
    named = cli(secret, node, "put", "API_KEY", "--name", "w", *state, input="two")
    assert named.exit_code == 0, named.output
    assert node.get("w.localhost", "/secret").text == "two"
    classic = cli(secret, node, "put", "w", "API_KEY", *state, input="three")  # atoll's order
    assert classic.exit_code == 0, classic.output
    assert node.get("w.localhost", "/secret").text == "three"

    (tmp_path / "secrets.json").write_text(json.dumps({"API_KEY": "bulk", "OTHER": "x"}))
    bulk = cli(secret, node, "bulk", str(tmp_path / "secrets.json"), *state)
    assert bulk.exit_code == 0, bulk.output
    assert "2 secrets set" in bulk.output
    assert node.get("w.localhost", "/secret").text == "bulk"
    assert cli(secret, node, "list", *state).output.split() == ["API_KEY", "OTHER"]
    assert cli(secret, node, "delete", "OTHER", *state).exit_code == 0
    assert cli(secret, node, "list", "--name", "w", *state).output.split() == ["API_KEY"]

    listed = cli(versions, node, "list", *state)
    assert listed.exit_code == 0
    assert listed.output.count("files") == 2
    back = cli(rollback, node, *state)
    assert back.exit_code == 0, back.output
    assert node.get("w.localhost").text.startswith("v1")
    active = json.loads(cli(versions, node, "list", "--json", *state).output)
    forth = cli(rollback, node, active["versions"][1]["id"][:8], "--name", "w", *state)
    assert forth.exit_code == 0, forth.output
    assert node.get("w.localhost").text.startswith("v2")
    gone = cli(delete, node, "-y", *state)
    assert gone.exit_code == 0, gone.output
    assert node.get("w.localhost").status_code == 404


def test_no_name_and_no_config_is_an_error(
    node: Node, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for command, args in [
        (tail, ()),
        (versions, ("list",)),
        (delete, ("-y",)),
        (secret, ("list",)),
        (secret, ("put", "KEY")),
    ]:
        result = cli(command, node, *args, "--token", "t", input="v")
        assert result.exit_code == 1, (command.name, result.output)
        assert "no worker NAME given" in result.output, result.output


def test_bulk_refuses_what_is_not_an_object_of_strings(node: Node, tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text('["A", "B"]')
    result = cli(secret, node, "bulk", str(tmp_path / "bad.json"), "--name", "w", "--token", "t")
    assert result.exit_code == 1
    assert "expected a JSON object of strings" in result.output
