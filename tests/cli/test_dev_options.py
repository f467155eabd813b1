"""``atoll dev``'s wrangler-style options, end to end: a real process, real sockets."""

from __future__ import annotations

from pathlib import Path

import httpx
from click.testing import CliRunner

from atoll.cli.dev import dev
from tests.support import StartDev, WorkerFactory

ENV_WORKER = """
from atoll import Response

async def fetch(request, env, ctx):
    if request.path.startswith("/kv"):
        if request.method == "PUT":
            await env.CACHE.put("k", await request.text())
        return Response(str(await env.CACHE.get("k")))
    return Response(f"{env.GREETING}|{env.EXTRA}|{env.URL}")
"""


def test_vars_name_ip_and_build_output(dev_server: StartDev, make_worker: WorkerFactory) -> None:
    folder = make_worker(
        ENV_WORKER,
        extra='[vars]\nGREETING = "from-config"\nEXTRA = "kept"\nURL = "x"\n'
        '[build]\ncommand = "echo compiling-step-one && echo compiling-step-two >&2"\n',
    )
    server = dev_server(
        folder,
        "--ip",
        "127.0.0.1",
        "--var",
        "GREETING:from-cli",
        "--var",
        "URL:http://a:1/b",  # the value keeps its colons
        "--name",
        "renamed",
        "--compatibility-date",
        "2026-01-02",
        "--local",
    )
    assert server.url.startswith("http://127.0.0.1:")
    assert httpx.get(f"{server.url}/").text == "from-cli|kept|http://a:1/b"
    log = server.log()
    assert "  compiling-step-one" in log
    assert "  compiling-step-two" in log
    assert "worker renamed ready" in log.replace("\x1b", "")


def test_persist_to_holds_the_kv_state(
    dev_server: StartDev, make_worker: WorkerFactory, tmp_path: Path
) -> None:
    folder = make_worker(
        ENV_WORKER,
        extra='[vars]\nGREETING = "g"\nEXTRA = "e"\nURL = "u"\n'
        '[[kv_namespaces]]\nbinding = "CACHE"\nid = "cache"\n',
    )
    state = tmp_path / "elsewhere"
    server = dev_server(folder, "--persist-to", str(state))
    assert httpx.put(f"{server.url}/kv", content="kept").status_code == 200
    server.stop()
    assert (state / "kv.sqlite3").exists()
    assert not (folder / ".atoll").exists()
    again = dev_server(folder, "--persist-to", str(state))
    assert httpx.get(f"{again.url}/kv").text == "kept"


def test_a_bad_var_is_refused(make_worker: WorkerFactory) -> None:
    folder = make_worker(ENV_WORKER)
    result = CliRunner().invoke(dev, [str(folder), "--var", "NOCOLON"])
    assert result.exit_code == 1
    assert "--var 'NOCOLON' is not KEY:VALUE" in result.output


def test_help_says_local_has_no_effect() -> None:
    result = CliRunner().invoke(dev, ["--help"])
    assert "--ip" in result.output
    assert "--persist-to" in result.output
    assert "no effect" in result.output
