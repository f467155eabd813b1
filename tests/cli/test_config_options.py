"""``-c/--config`` and ``--env`` across the commands, on a wrangler project as it is.

``atoll dev`` runs as a real process over a real socket; the other commands
run in-process (click's runner) where no node is needed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from atoll.cli import main
from atoll.control.client import AdminClient
from tests.support import StartDev

WORKER = """\
from atoll import Response

async def fetch(request, env, ctx):
    return Response(f"{env.STAGE} {','.join(sorted(k for k in ('CACHE',) if hasattr(env, k)))}")
"""

WRANGLER = """\
name = "shop"
main = "src/worker.py"
account_id = "0123456789abcdef0123456789abcdef"

[vars]
STAGE = "top"

[[kv_namespaces]]
binding = "CACHE"
id = "cache-top"

[env.staging]
vars = { STAGE = "staging" }
kv_namespaces = [{ binding = "CACHE", id = "cache-staging" }]
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "shop"
    (root / "src").mkdir(parents=True)
    (root / "src" / "worker.py").write_text(WORKER)
    (root / "wrangler.toml").write_text(WRANGLER)
    return root


def test_dev_reads_wrangler_toml_with_env(dev_server: StartDev, project: Path) -> None:
    server = dev_server(project, "--env", "staging", "--no-reload")
    assert httpx.get(server.url + "/").text == "staging CACHE"
    log = "\n".join(server.lines)
    assert "worker shop-staging ready" in log
    assert "CPU limit 30,000 ms" in log  # the limit in force is said at start
    assert "key 'account_id' ignored: atoll has no Cloudflare accounts" in log


def test_dev_reads_the_file_given_with_c(
    dev_server: StartDev, project: Path, tmp_path: Path
) -> None:
    other = project / "atoll.local.toml"
    other.write_text('name = "local"\nmain = "src/worker.py"\n[vars]\nSTAGE = "local"\n')
    server = dev_server(tmp_path, "-c", str(other), "--no-reload")
    assert httpx.get(server.url + "/").text == "local "
    assert "worker local ready" in "\n".join(server.lines)


def test_kv_uses_the_env_namespace(project: Path) -> None:
    runner = CliRunner()
    d = str(project)
    put = runner.invoke(main, ["kv", "put", "k", "v-staging", d, "-b", "CACHE", "--env", "staging"])
    assert put.exit_code == 0, put.output
    top = runner.invoke(main, ["kv", "get", "k", d, "-b", "CACHE"])
    assert top.exit_code == 1  # not in cache-top
    got = runner.invoke(
        main, ["kv", "get", "k", d, "--binding", "CACHE", "--namespace-id", "cache-staging"]
    )
    assert "not both" in got.output
    got = runner.invoke(main, ["kv", "get", "k", d, "--namespace-id", "cache-staging"])
    assert got.stdout == "v-staging"


def test_unknown_env_is_an_error(project: Path) -> None:
    result = CliRunner().invoke(main, ["build", str(project), "--env", "prod"])
    assert result.exit_code == 1
    assert "no environment 'prod'" in result.output
    assert "environments defined: staging" in result.output


def test_client_commands_take_the_name_from_the_config(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without NAME, `versions list` (as `tail`, `delete`, `secret list`) asks for the config's worker."""
    asked: list[str] = []

    def versions(self: AdminClient, name: str) -> dict[str, Any]:
        asked.append(name)
        return {"active": None, "previous": None, "versions": []}

    monkeypatch.setattr(AdminClient, "versions", versions)
    monkeypatch.chdir(project)
    args = ["versions", "list", "--token", "t"]
    assert CliRunner().invoke(main, [*args, "--env", "staging"]).exit_code == 0
    assert CliRunner().invoke(main, args).exit_code == 0
    assert CliRunner().invoke(main, [*args[:2], "given", *args[2:]]).exit_code == 0
    assert asked == ["shop-staging", "shop", "given"]
    monkeypatch.chdir(project.parent)
    result = CliRunner().invoke(main, ["tail", "--token", "t"])
    assert result.exit_code == 1
    assert "no worker NAME given" in result.output


def test_dev_takes_host_and_port_from_dev_table_unless_given(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``[dev] ip``/``port`` are the defaults of `atoll dev`; --ip/--port win."""
    import atoll.cli.dev as dev_module

    served: list[tuple[str, int]] = []

    def fake_serve(app: object, *, host: str, port: int, **_: object) -> None:
        served.append((host, port))

    monkeypatch.setattr(dev_module, "serve", fake_serve)
    config = project / "wrangler.toml"
    config.write_text(config.read_text() + '\n[dev]\nip = "0.0.0.0"\nport = 9999\n')
    args = ["dev", str(project), "--no-reload", "--no-build", "--kv", "memory"]
    assert CliRunner().invoke(main, args).exit_code == 0
    assert CliRunner().invoke(main, [*args, "--ip", "127.0.0.2", "--port", "0"]).exit_code == 0
    assert served == [("0.0.0.0", 9999), ("127.0.0.2", 0)]
