"""atoll's pytest plugin (src/atoll/pytest_plugin.py), run by pytest itself through ``pytester``.

Each test writes a worker folder and a test file into a fresh directory and
runs pytest there, as a user of atoll would: the plugin is found through its
``pytest11`` entry point, not a conftest.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from importlib.metadata import entry_points

import pytest

from tests.support import wat

pytest_plugins = ["pytester"]

WORKER = """
from atoll import Response

async def fetch(request, env, ctx):
    print("printed", request.path)  # not a log line: Python's own stdout
    ctx.log(f"{request.method} {request.path}")
    if request.path == "/spin":
        env.G.instantiate().exports.spin()
    if request.path.startswith("/kv/"):
        return Response(str(await env.CACHE.get(request.path[4:])))
    if request.path == "/put":
        await env.CACHE.put("seen", "yes", expiration_ttl=60)
    return Response(f"{env.GREETING} {getattr(env, 'TOKEN', '-')}")
"""

CONFIG = """
name = "plugged"
main = "src/worker.py"

[vars]
GREETING = "hello"

[wasm_modules]
G = "spin.wasm"

[[kv_namespaces]]
binding = "CACHE"
id = "cache"

[limits]
cpu_ms = 30
"""


@pytest.fixture
def folder(pytester: pytest.Pytester) -> pytest.Pytester:
    """A worker folder with the test files of a user's project in ``tests/``."""
    (pytester.path / "src").mkdir()
    (pytester.path / "src" / "worker.py").write_text(textwrap.dedent(WORKER))
    (pytester.path / "spin.wasm").write_bytes(wat('(module (func (export "spin") (loop br 0)))'))
    (pytester.path / "atoll.toml").write_text(textwrap.dedent(CONFIG))
    (pytester.path / "tests").mkdir()
    return pytester


def run(folder: pytest.Pytester, tests: str) -> pytest.RunResult:
    path = folder.path / "tests" / "test_worker.py"
    path.write_text("import pytest\n\npytestmark = pytest.mark.anyio\n\n" + textwrap.dedent(tests))
    return folder.runpytest_subprocess("-p", "no:asyncio", "-W", "error", str(path))


def test_registered_as_a_pytest11_entry_point() -> None:
    (plugin,) = [e for e in entry_points(group="pytest11") if e.name == "atoll"]
    assert plugin.value == "atoll.pytest_plugin"


def test_importing_the_plugin_stays_cheap() -> None:
    code = (
        "import sys, atoll.pytest_plugin\n"
        "heavy = [m for m in ('atoll.embed', 'atoll.worker', 'wasmtime', 'httpx') "
        "if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr


def test_client_results_and_logs(folder: pytest.Pytester) -> None:
    result = run(
        folder,
        """
        async def test_client(atoll_client, atoll_results):
            response = await atoll_client.get("/a")
            assert response.text == "hello -"
            assert (await atoll_client.get("/spin")).status_code == 503
            assert atoll_results.outcomes == ["ok", "exceeded_cpu"]
            assert atoll_results.logs == ["GET /a", "GET /spin"]
            assert atoll_results.last.tail_event["outcome"] == "exceeded_cpu"

        async def test_fetch(atoll_worker, atoll_results):
            assert atoll_worker.name == "plugged"
            result = await atoll_worker.fetch("/b", method="POST")
            assert result.logs == ["POST /b"]
            assert atoll_results.logs == ["POST /b"]  # a fresh worker per test
        """,
    )
    result.assert_outcomes(passed=2)


def test_vars_and_secrets(folder: pytest.Pytester) -> None:
    result = run(
        folder,
        """
        @pytest.fixture
        def atoll_secrets():
            return {"TOKEN": "t0k"}

        async def test_fixture_override(atoll_client):
            assert (await atoll_client.get("/")).text == "hello t0k"

        @pytest.mark.atoll(vars={"GREETING": "salut"}, secrets={"TOKEN": "other"})
        async def test_marker(atoll_client):
            assert (await atoll_client.get("/")).text == "salut other"
        """,
    )
    result.assert_outcomes(passed=2)


def test_kv_seeded_and_expired_by_the_clock(folder: pytest.Pytester) -> None:
    result = run(
        folder,
        """
        async def test_seed(atoll_client, atoll_kv):
            assert list(atoll_kv) == ["CACHE"]
            await atoll_kv["CACHE"].put("k", "v")
            assert (await atoll_client.get("/kv/k")).text == "v"

        async def test_store_is_fresh(atoll_client):
            assert (await atoll_client.get("/kv/k")).text == "None"

        async def test_expiry(atoll_client, atoll_kv, atoll_clock):
            await atoll_client.get("/put")
            assert await atoll_kv["CACHE"].get("seen") == "yes"
            atoll_clock.advance(59)
            assert await atoll_kv["CACHE"].get("seen") == "yes"
            atoll_clock.advance(2)
            assert await atoll_kv["CACHE"].get("seen") is None
        """,
    )
    result.assert_outcomes(passed=3)


def test_worker_folder_from_marker_and_ini(folder: pytest.Pytester) -> None:
    other = folder.path / "elsewhere"
    other.mkdir()
    (other / "atoll.toml").write_text('name = "other"\nmain = "w.py"\n')
    (other / "w.py").write_text(
        "from atoll import Response\nasync def fetch(r, e, c):\n    return Response('other')\n"
    )
    folder.makeini("[pytest]\natoll_worker = elsewhere\n")
    result = run(
        folder,
        """
        async def test_ini(atoll_worker):
            assert atoll_worker.name == "other"

        @pytest.mark.atoll(path="..")
        async def test_marker(atoll_worker):
            assert atoll_worker.name == "plugged"
        """,
    )
    result.assert_outcomes(passed=2)


def test_no_worker_folder_says_what_to_do(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_alone="""
        def test_needs_a_worker(atoll_worker):
            pass
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:asyncio")
    result.stdout.fnmatch_lines(["*atoll: no atoll.toml or wrangler config in*@pytest.mark.atoll*"])
    assert result.ret != 0


def test_marker_is_registered(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.atoll(path=None, vars=None,*"])
