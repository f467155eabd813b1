"""WAGI apps: main = "modules.toml" (src/atoll/entries/wagi.py), with guests/wagi_probe.c."""

from __future__ import annotations

import re
import shutil
import socket
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from atoll.api import Request
from atoll.entries.mounts import Mount
from atoll.entries.wagi import parse_dynamic_routes
from atoll.errors import ConfigError, ModuleLoadError
from atoll.worker import Runtime, Worker, load_worker
from tests.support import StartDev, wat

PROBE = Path(__file__).parent / "guests" / "wagi_probe.wasm"

MakeApp = Callable[..., Worker]

MODULES = """
[[module]]
route = "/example"
module = "modules/probe.wasm"
environment = { GREETING = "hi" }

[[module]]
route = "/static/..."
module = "file://modules/probe.wasm"
volumes = { "/static" = "files" }

[[module]]
route = "/bye"
module = "modules/probe.wasm"
entrypoint = "goodbye"

[[module]]
route = "/args"
module = "modules/probe.wasm"
argv = "${SCRIPT_NAME} -x ${ARGS}"
"""


@pytest.fixture
def make_app(tmp_path: Path, runtime: Runtime) -> MakeApp:
    counter = iter(range(100))

    def make(
        modules: str = MODULES, atoll: str = "", extra: dict[str, bytes] | None = None
    ) -> Worker:
        root = tmp_path / f"app{next(counter)}"
        (root / "modules").mkdir(parents=True)
        (root / "files").mkdir()
        (root / "files" / "a.txt").write_text("file a")
        shutil.copy(PROBE, root / "modules" / "probe.wasm")
        for name, data in (extra or {}).items():
            (root / "modules" / name).write_bytes(data)
        (root / "modules.toml").write_text(textwrap.dedent(modules))
        (root / "atoll.toml").write_text(f'name = "app"\nmain = "modules.toml"\n{atoll}\n')
        return load_worker(root, runtime=runtime, dev=True)

    return make


async def get(worker: Worker, url: str) -> tuple[int, str]:
    result = await worker.handle(Request(url), "rid")
    return result.response.status, result.response.body.decode()


def env_of(body: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in body.splitlines() if "=" in line)


async def test_each_module_serves_its_route(make_app: MakeApp) -> None:
    app = make_app()
    status, body = await get(app, "http://h/example?env")
    env = env_of(body)
    assert status == 200
    assert (env["GREETING"], env["SCRIPT_NAME"], env["PATH_INFO"]) == ("hi", "/example", "")
    assert env["X_MATCHED_ROUTE"] == "/example"
    assert await get(app, "http://h/static/a.txt?file") == (200, "file a")
    status, body = await get(app, "http://h/static/a.txt?env")
    assert "GREETING" not in env_of(body)  # environment is per module
    assert env_of(body)["SCRIPT_NAME"] == "/static"
    assert (await get(app, "http://h/nowhere"))[0] == 404
    assert (await get(app, "http://h/example/other"))[0] == 404  # an exact route


async def test_entrypoint_runs_another_export(make_app: MakeApp) -> None:
    status, body = await get(make_app(), "http://h/bye")
    assert status == 200
    assert body == "goodbye from the goodbye export\nSCRIPT_NAME=/bye\n"


async def test_dynamic_routes_from_routes_export(make_app: MakeApp) -> None:
    app = make_app()
    status, body = await get(app, "http://h/example/hello")
    assert (status, body.splitlines()[0]) == (200, "hello from the hello export")
    assert "PATH_INFO=\n" in body
    status, body = await get(app, "http://h/example/goodbye/x/y")
    assert (status, body.splitlines()[-1]) == (200, "SCRIPT_NAME=/example/goodbye")
    assert await get(app, "http://h/example/main") == (200, "main\n")
    _, body = await get(app, "http://h/static/hello")  # every module's own _routes
    assert body.startswith("hello from the hello export")


async def test_argv_template(make_app: MakeApp) -> None:
    _, body = await get(make_app(), "http://h/args?env&k=v")
    args = [line[4:] for line in body.splitlines() if line.startswith("ARG=")]
    assert args == ["/args", "-x", "env", "k=v"]


async def test_the_app_mounts_below_the_workers_route(make_app: MakeApp) -> None:
    app = make_app(atoll='routes = ["site.test/app/*"]')
    status, body = await get(app, "http://site.test/app/example/goodbye/z")
    assert (status, body.splitlines()[-1]) == (200, "SCRIPT_NAME=/app/example/goodbye")
    env = env_of((await get(app, "http://site.test/app/static/d/e?env"))[1])
    assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("/app/static", "/d/e")
    assert env["X_MATCHED_ROUTE"] == "/app/static/..."


def test_dynamic_routes_text() -> None:
    routes = parse_dynamic_routes("/a one\n\n  /b/... two  \n", "m.wasm")
    assert routes == [(Mount("/a", "/a", False), "one"), (Mount("/b/...", "/b", True), "two")]
    for bad in ("/a", "/a b c", "a b"):
        with pytest.raises(ModuleLoadError, match="not `/path entrypoint`"):
            parse_dynamic_routes(bad, "m.wasm")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('allowed_hosts = ["https://api.example.com"]', "no outbound HTTP for WASI guests"),
        ("http_max_concurrency = 4", "no outbound HTTP"),
        ('bindle_server = "http://b"', "from files only"),
        ('colour = "blue"', "module[0].colour': unknown key"),
        ('entrypoint = ""', "expected an export name"),
        ('volumes = { "/etc" = "../../etc" }', "not a folder inside the worker folder"),
        ("environment = { A = 1 }", "expected a table of strings"),
    ],
)
def test_keys_atoll_does_not_offer_are_refused(make_app: MakeApp, extra: str, message: str) -> None:
    modules = f'[[module]]\nroute = "/"\nmodule = "modules/probe.wasm"\n{extra}\n'
    with pytest.raises(ConfigError, match=re.escape(message)) as caught:
        make_app(modules)
    assert "modules.toml" in str(caught.value)


@pytest.mark.parametrize(
    ("module", "message"),
    [
        ("oci:foo/bar:1.2.3", "from files only"),
        ("bindle:example.com/x/1.0.0", "from files only"),
        ("modules/missing.wasm", "not found"),
        ("../outside.wasm", "outside the worker folder"),
        ("modules/hello.wat", "WebAssembly text"),
    ],
)
def test_module_references(make_app: MakeApp, module: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make_app(f'[[module]]\nroute = "/"\nmodule = "{module}"\n')


def test_an_entrypoint_that_is_not_exported_is_refused_at_load(make_app: MakeApp) -> None:
    modules = '[[module]]\nroute = "/"\nmodule = "modules/probe.wasm"\nentrypoint = "nope"\n'
    with pytest.raises(ModuleLoadError, match="names entrypoint 'nope'"):
        make_app(modules)


def test_routes_output_that_is_not_routes_fails_the_load(make_app: MakeApp) -> None:
    printer = wat(
        '(module (import "wasi_snapshot_preview1" "fd_write"'
        " (func $w (param i32 i32 i32 i32) (result i32)))"
        ' (memory (export "memory") 1) (data (i32.const 16) "not a route\\n")'
        ' (func (export "_start"))'
        ' (func (export "_routes") (i32.store (i32.const 0) (i32.const 16))'
        " (i32.store (i32.const 4) (i32.const 12))"
        " (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"
    )
    modules = '[[module]]\nroute = "/"\nmodule = "modules/printer.wasm"\n'
    with pytest.raises(ModuleLoadError, match="_routes printed 'not a route'"):
        make_app(modules, extra={"printer.wasm": printer})


def test_a_module_map_without_modules_is_refused(make_app: MakeApp) -> None:
    with pytest.raises(ConfigError, match="no \\[\\[module\\]\\] entries"):
        make_app("")


def test_a_wagi_app_over_a_real_socket(tmp_path: Path, dev_server: StartDev) -> None:
    root = tmp_path / "site"
    (root / "modules").mkdir(parents=True)
    (root / "files").mkdir()
    (root / "files" / "a.txt").write_text("file a")
    shutil.copy(PROBE, root / "modules" / "probe.wasm")
    (root / "modules.toml").write_text(textwrap.dedent(MODULES))
    (root / "atoll.toml").write_text('name = "site"\nmain = "modules.toml"\n')
    server = dev_server(root)
    host, port = server.url.removeprefix("http://").rsplit(":", 1)

    def ask(target: str) -> bytes:
        with socket.create_connection((host, int(port)), timeout=10) as conn:
            conn.sendall(f"GET {target} HTTP/1.0\r\nHost: site.test\r\n\r\n".encode())
            chunks = []
            while chunk := conn.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks)

    env = ask("/x/../example?env")
    assert env.startswith(b"HTTP/1.1 200"), env
    assert b"\r\n\r\n" in env
    body = env.split(b"\r\n\r\n", 1)[1].decode()
    assert "SERVER_PROTOCOL=HTTP/1.0\n" in body
    assert "SCRIPT_NAME=/example\n" in body
    assert "CONTENT_LENGTH=0\n" in body
    assert "ARG=env\n" in body
    assert ask("/static/a.txt?file").endswith(b"\r\n\r\nfile a")
    assert ask("/example/hello").split(b"\r\n\r\n", 1)[1].startswith(b"hello from the hello")
    assert ask("/nowhere").startswith(b"HTTP/1.1 404")


@pytest.mark.parametrize(
    ("wasi", "key"),
    [
        ('dirs = { "/f" = "files" }', "wasi.dirs"),
        ('argv = ["x"]', "wasi.argv"),
        ('mode = "stdout"', "wasi.mode"),
    ],
)
def test_wasi_keys_of_atoll_toml_are_per_module_in_an_app(
    make_app: MakeApp, wasi: str, key: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(f"key '{key}'")):
        make_app(atoll=f"[wasi]\n{wasi}")
