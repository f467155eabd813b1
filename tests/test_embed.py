"""atoll as a library (src/atoll/embed.py): atoll.asgi, atoll.asgi_many, atoll.load.

Python, whole-wasm (CGI) and JavaScript workers are called in process and
through ASGI; the ASGI app is mounted in Starlette and served over real
sockets by uvicorn, granian and hypercorn, each running its lifespan.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

import atoll
from atoll.embed import EmbeddedApp, ManualClock
from atoll.errors import ConfigError, KVError
from atoll.worker import Runtime
from tests.support import WorkerFactory

REPO = Path(__file__).resolve().parents[1]
PROBE = REPO / "tests" / "runtime" / "guests" / "cgi_probe.wasm"
JS_TEMPLATE = REPO / "src" / "atoll" / "templates" / "js"

ECHO = """
from atoll import Response

async def fetch(request, env, ctx):
    ctx.log(f"{request.method} {request.path}")
    if request.path == "/env":
        return Response(f"{env.GREETING} {getattr(env, 'TOKEN', '-')}")
    if request.path == "/spin":
        env.G.instantiate().exports.spin()
    if request.path == "/later":
        async def write():
            await env.CACHE.put("later", "done")
        ctx.wait_until(write())
    if request.path.startswith("/kv/"):
        value = await env.CACHE.get(request.path[4:])
        return Response(str(value))
    return Response(f"{env.NAME_OF} saw {request.url}")
"""

SPIN = '(module (func (export "spin") (loop br 0)))'


@pytest.fixture
def echo(make_worker: WorkerFactory) -> Path:
    return make_worker(
        ECHO,
        name="echo",
        modules={"G": SPIN},
        limits="cpu_ms = 30",
        extra='[vars]\nGREETING = "hello"\nNAME_OF = "echo"\n'
        '[[kv_namespaces]]\nbinding = "CACHE"\nid = "cache"\n',
    )


@pytest.fixture
def cgi(tmp_path: Path) -> Path:
    root = tmp_path / "cgi"
    (root / "build").mkdir(parents=True)
    shutil.copy(PROBE, root / "build" / "app.wasm")
    (root / "atoll.toml").write_text(
        'name = "cgi"\nmain = "build/app.wasm"\n[limits]\ncpu_ms = 30\n'
    )
    return root


@pytest.fixture
def js(tmp_path: Path) -> Path:
    root = tmp_path / "js"
    shutil.copytree(JS_TEMPLATE, root)
    return root


# -- atoll.load: in process ------------------------------------------------------------


def test_import_atoll_stays_cheap() -> None:
    code = (
        "import sys, atoll\n"
        "heavy = [m for m in ('atoll.embed', 'atoll.worker', 'wasmtime') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "assert atoll.load.__module__ == 'atoll.embed'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr


async def test_fetch_a_python_worker(echo: Path, runtime: Runtime) -> None:
    async with await atoll.load(echo, runtime=runtime) as worker:
        result = await worker.fetch("/hi?x=1", method="POST", body="abc")
        assert result.status == 200
        assert result.text == "echo saw http://echo.localhost/hi?x=1"
        assert result.outcome == "ok"
        assert result.logs == ["POST /hi"]
        event = result.tail_event
        assert event["worker"] == "echo"
        assert event["outcome"] == "ok"
        assert event["logs"] == ["POST /hi"]
        assert event["url"] == "http://echo.localhost/hi?x=1"
        assert event["subrequests"] == []
        request = atoll.Request("https://example.com/a", headers={"x": "y"})
        result = await worker.fetch(request)
        assert result.text == "echo saw https://example.com/a"


async def test_fetch_reports_exceeded_cpu(echo: Path, runtime: Runtime) -> None:
    worker = await atoll.load(echo, runtime=runtime)
    result = await worker.fetch("/spin")
    assert result.outcome == "exceeded_cpu"
    assert result.status == 503
    assert result.error is not None
    assert result.tail_event["outcome"] == "exceeded_cpu"
    assert result.tail_event["exception"]["type"] == "CpuLimitError"
    await worker.close()


async def test_vars_and_secrets(echo: Path, runtime: Runtime) -> None:
    worker = await atoll.load(
        echo, vars={"GREETING": "bonjour"}, secrets={"TOKEN": "s3"}, runtime=runtime
    )
    assert (await worker.fetch("/env")).text == "bonjour s3"
    await worker.close()
    with pytest.raises(ConfigError, match="secret 'GREETING' has the name of a binding"):
        await atoll.load(echo, secrets={"GREETING": "x"}, runtime=runtime)


async def test_kv_seeded_and_read_back(echo: Path, runtime: Runtime) -> None:
    clock = ManualClock(1_800_000_000)
    worker = await atoll.load(echo, clock=clock, runtime=runtime)
    await worker.kv("CACHE").put("k", "v", expiration_ttl=60)
    assert (await worker.fetch("/kv/k")).text == "v"
    clock.advance(61)
    assert (await worker.fetch("/kv/k")).text == "None"
    assert (await worker.fetch("/later")).status == 200  # wait_until awaited by default
    assert await worker.kv("CACHE").get("later") == "done"
    with pytest.raises(ConfigError, match=r"no KV namespace bound as 'OTHER' \(declared: CACHE\)"):
        worker.kv("OTHER")
    await worker.close()
    with pytest.raises(KVError):
        await worker.kv("CACHE").get("k")  # the store is closed with the worker


async def test_fetch_a_whole_wasm_worker(cgi: Path, runtime: Runtime) -> None:
    worker = await atoll.load(cgi, runtime=runtime)
    result = await worker.fetch("/?echo", method="POST", body=b"ping")
    assert result.status == 200
    assert result.outcome == "ok"
    spun = await worker.fetch("/?spin")
    assert spun.outcome == "exceeded_cpu"
    assert spun.status == 503
    await worker.close()


async def test_fetch_a_js_worker(js: Path, runtime: Runtime) -> None:
    worker = await atoll.load(js, vars={"GREETING": "Hi"}, runtime=runtime)
    result = await worker.fetch("/x?name=ada", method="POST", body=b"abc")
    assert result.status == 200
    assert result.text.startswith("Hi, ada!\n")
    assert result.logs == ["POST /x"]
    assert result.cpu_ms > 0
    assert (await worker.fetch("/json")).json()["path"] == "/json"
    await worker.close()


# -- atoll.asgi ------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def client(app: Any, base: str = "http://echo.localhost") -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base) as c:
        yield c


async def test_asgi_serves_and_records(echo: Path, runtime: Runtime) -> None:
    app = atoll.asgi(echo, record=True, runtime=runtime)
    assert isinstance(app, EmbeddedApp)
    async with app, client(app) as c:
        response = await c.get("/spin")
        assert response.status_code == 503
        assert "CpuLimitError" not in response.text  # not dev: a plain page
        assert app.results.outcomes == ["exceeded_cpu"]
        assert app.results.logs == ["GET /spin"]


async def test_asgi_mounted_in_starlette_sees_below_the_mount(
    echo: Path, js: Path, runtime: Runtime
) -> None:
    edge = atoll.asgi(echo, runtime=runtime)
    front = atoll.asgi(js, runtime=runtime)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        async with edge, front:  # Mount does not forward the lifespan
            yield

    def home(_request: Any) -> PlainTextResponse:
        return PlainTextResponse("starlette")

    parent = Starlette(
        routes=[Route("/", home), Mount("/edge", app=edge), Mount("/js", app=front)],
        lifespan=lifespan,
    )
    async with lifespan(parent), client(parent, "http://testserver") as c:
        assert (await c.get("/")).text == "starlette"
        assert (await c.get("/edge/a/b?q=1")).text == "echo saw http://testserver/a/b?q=1"
        assert (await c.get("/edge/")).text == "echo saw http://testserver/"
        assert (await c.get("/js/json")).json()["path"] == "/json"


async def test_asgi_lifespan_starts_and_closes_the_store(echo: Path, runtime: Runtime) -> None:
    app = atoll.asgi(echo, runtime=runtime)
    sent: list[str] = []
    messages = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])

    async def receive() -> dict[str, Any]:
        await asyncio.sleep(0)
        return next(messages)

    async def send(message: Any) -> None:
        sent.append(message["type"])
        if message["type"] == "lifespan.startup.complete":
            assert app._housekeeping is not None
            assert app._housekeeping._task is not None  # purging while it serves

    await app({"type": "lifespan"}, receive, send)
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    with pytest.raises(KVError):
        await app.backend.get("cache", "k")


async def test_asgi_reload_swaps_a_change_in(make_worker: WorkerFactory, runtime: Runtime) -> None:
    root = make_worker(
        "from atoll import Response\nasync def fetch(r, e, c):\n    return Response('one')\n"
    )
    app = atoll.asgi(root, reload=True, runtime=runtime)
    async with app, client(app) as c:
        assert (await c.get("/")).text == "one"
        await asyncio.sleep(0.3)  # the watcher is up
        (root / "src" / "worker.py").write_text(
            "from atoll import Response\nasync def fetch(r, e, c):\n    return Response('two')\n"
        )
        for _ in range(200):
            if (await c.get("/")).text == "two":
                break
            await asyncio.sleep(0.05)
        assert (await c.get("/")).text == "two"


# -- atoll.asgi_many -------------------------------------------------------------------


def _named(make_worker: WorkerFactory, name: str, routes: str) -> Path:
    return make_worker(
        f"from atoll import Response\nasync def fetch(r, env, c):\n"
        f"    return Response('{name} ' + env.WHO + ' ' + r.path)\n",
        name=name,
        extra=f'{routes}\n[vars]\nWHO = "{name}"\n',
    )


async def test_asgi_many_routes_by_routes(make_worker: WorkerFactory, runtime: Runtime) -> None:
    api = _named(make_worker, "api", 'routes = ["/api/*", "api.example.com/*"]')
    site = _named(make_worker, "site", 'routes = ["example.com/*"]')
    plain = _named(make_worker, "plain", "")
    app = atoll.asgi_many(
        [api, site, plain], vars={"site": {"WHO": "www"}}, runtime=runtime, record=True
    )
    async with app, client(app, "http://example.com") as c:
        assert (await c.get("http://other.test/api/x")).text == "api api /api/x"
        assert (await c.get("/api/x")).text == "site www /api/x"  # an exact host wins
        assert (await c.get("/about")).text == "site www /about"
        assert (await c.get("http://api.example.com/y")).text == "api api /y"
        assert (await c.get("http://plain.localhost:8787/z")).text == "plain plain /z"
        missing = await c.get("http://other.test/")
        assert missing.status_code == 404
        assert app.results.outcomes == ["ok", "ok", "ok", "ok", "ok", "refused"]
    assert sorted(app.workers) == ["api", "plain", "site"]


async def test_asgi_many_refuses_clashes(make_worker: WorkerFactory, runtime: Runtime) -> None:
    one = _named(make_worker, "one", 'routes = ["/x/*"]')
    two = _named(make_worker, "two", 'routes = ["/x/*"]')
    with pytest.raises(ConfigError, match=r"route '/x/\*' is claimed by both 'one' and 'two'"):
        atoll.asgi_many([one, two], runtime=runtime)
    again = _named(make_worker, "one", "")
    with pytest.raises(ConfigError, match="two workers are named 'one'"):
        atoll.asgi_many([one, again], runtime=runtime)
    with pytest.raises(ConfigError, match="'nobody', which is none of the workers"):
        atoll.asgi_many([one], vars={"nobody": {}}, runtime=runtime)


# -- served over sockets by ASGI servers, with their lifespan --------------------------

SERVED_APP = """
import os
from pathlib import Path

import atoll

app = atoll.asgi(os.environ["ATOLL_TEST_WORKER"])
mark = Path(os.environ["ATOLL_TEST_LIFESPAN_LOG"])


async def started() -> None:
    with mark.open("a") as f:
        f.write("startup\\n")


async def stopped() -> None:
    with mark.open("a") as f:
        f.write("shutdown closed=%s\\n" % app.backend._closed)


app.on_startup = (*app.on_startup, started)
app.on_shutdown = (*app.on_shutdown, stopped)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def served(tmp_path: Path, echo: Path) -> tuple[Path, dict[str, str]]:
    module = tmp_path / "served_app.py"
    module.write_text(textwrap.dedent(SERVED_APP))
    env = {
        **os.environ,
        "ATOLL_TEST_WORKER": str(echo),
        "ATOLL_TEST_LIFESPAN_LOG": str(tmp_path / "lifespan.log"),
        "PYTHONPATH": f"{tmp_path}{os.pathsep}{REPO}",
    }
    return tmp_path, env


SERVERS = {
    "uvicorn": ["-m", "uvicorn", "served_app:app", "--host", "127.0.0.1", "--port", "{port}"],
    "granian": [
        "-m", "granian", "--interface", "asgi", "--host", "127.0.0.1", "--port", "{port}",
        "served_app:app",
    ],
    "hypercorn": ["-m", "hypercorn", "--bind", "127.0.0.1:{port}", "served_app:app"],
}  # fmt: skip


@pytest.mark.parametrize("server", sorted(SERVERS))
def test_served_by_an_asgi_server(server: str, served: tuple[Path, dict[str, str]]) -> None:
    folder, env = served
    port = _free_port()
    args = [a.replace("{port}", str(port)) for a in SERVERS[server]]
    proc = subprocess.Popen(
        [sys.executable, *args],
        cwd=folder,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        body = ""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                body = httpx.get(f"http://127.0.0.1:{port}/hello", timeout=5).text
                break
            except httpx.TransportError:
                time.sleep(0.1)
        assert body == f"echo saw http://127.0.0.1:{port}/hello"
        spun = httpx.get(f"http://127.0.0.1:{port}/spin", timeout=30)
        assert spun.status_code == 503
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            output = proc.communicate(timeout=30)[0].decode(errors="replace")
        except subprocess.TimeoutExpired:
            proc.kill()
            output = proc.communicate()[0].decode(errors="replace")
    lines = (folder / "lifespan.log").read_text().splitlines()
    assert lines == ["startup", "shutdown closed=True"], output[-3000:]


async def test_whole_wasm_mounted_sees_path_info_below_the_mount(
    cgi: Path, runtime: Runtime
) -> None:
    app = atoll.asgi(cgi, runtime=runtime)
    parent = Starlette(routes=[Mount("/cgi", app=app)])
    async with app, client(parent, "http://testserver") as c:
        response = await c.get("/cgi/some/where?env")
        assert response.status_code == 200
        env = dict(line.split("=", 1) for line in response.text.splitlines())
        assert env["PATH_INFO"] == "/some/where"
        assert env["X_FULL_URL"] == "http://testserver/some/where?env"


async def test_scheduled_runs_the_cron_handler_in_process(tmp_path: Path) -> None:
    folder = tmp_path / "cron-report"
    shutil.copytree(Path(__file__).parents[1] / "examples" / "cron-report", folder)
    async with await atoll.load(folder, kv="memory", record=True) as worker:
        first = await worker.scheduled()
        daily = await worker.scheduled("0 3 * * *")
        assert (first.status, first.outcome.value) == (200, "ok")
        assert any("recorded run 1 (*/5 * * * *)" in line for line in first.logs)
        assert daily.status == 200
        runs = (await worker.fetch("/")).json()["runs"]
        assert [run["cron"] for run in runs] == ["*/5 * * * *", "0 3 * * *"]
        assert [r.method for r in worker.results][:2] == ["SCHEDULED", "SCHEDULED"]


async def test_scheduled_without_a_handler_is_a_500_naming_it(echo: Path, runtime: Runtime) -> None:
    async with await atoll.load(echo, runtime=runtime) as worker:
        result = await worker.scheduled("* * * * *")
    assert result.status == 500
    assert result.outcome.value == "exception"
    assert "defines no scheduled handler" in str(result.error)
