"""What ``atoll dev`` imports on its way to serving a worker that needs none of it.

A cold start is mostly imports, so the modules a request of a plain worker never uses
are imported where they are used: the CLI's rich console (only for a line with markup),
uvicorn's command line (``uvicorn.main``, its reload supervisors, ``multiprocessing``),
the outbound HTTP client, static assets, cron parsing, the KV stores not chosen, the
build toolchains, the other commands, the cluster and the JavaScript engine. These tests
ask the served process itself (its worker answers with ``sys.modules``), so an import
that creeps back anywhere on the path fails here, whoever brings it.
"""

from __future__ import annotations

import gc
import subprocess
import sys
import time

import httpx
from click.testing import CliRunner

from atoll.cli import main
from atoll.runtime.backend.auto import BACKEND
from tests.support import StartDev, WorkerFactory

#: Imported by no part of the path from ``atoll dev`` to a plain worker's first response.
NOT_ON_THE_PATH = (
    "rich",  # cli/common.py: a plain line is written without it
    "uvicorn.main",  # http/__init__.py: uvicorn's package initialised on demand
    "uvicorn.supervisors",
    "multiprocessing",
    "watchfiles",  # the dev reloader, once serving (off here: --no-reload)
    "httpx",  # bindings/outbound: on a process's first subrequest
    "httpcore",
    "starlette",  # bindings/assets: with static assets only
    "anyio",
    "croniter",  # manifest/crons: with [triggers] crons only
    "dateutil",
    "difflib",  # manifest/loader: the nearest key, for an unknown key only
    "gzip",  # runtime/module: the compressed size, for a module over 10 MB only
    "sqlite3",  # the KV store is memory here; cron claims in dev are in memory
    "redis",
    "atoll.cli.kv",  # other commands
    "atoll.cli.build",
    "atoll.devtools.build",  # with a [build] command only
    "atoll.devtools.toolchains",
    "atoll.control.deployer",  # atoll serve
    "atoll.control.supervisor",
    "atoll.control.cluster",
    "atoll.entries.js",  # a JavaScript entry only
    "atoll.entries.cgi",  # a whole-wasm entry only
    "atoll.entries.mounts",
    "atoll.runtime.program",  # env.NAME.run() and whole-wasm entries only
    "STPyV8",
)
#: On the native backend also wasmtime-py (runtime/libwasmtime.py): only a failure, a
#: non-numeric export or the public API's objects import it.
NATIVE_NOT_ON_THE_PATH = ("wasmtime",)

MODULES_WORKER = """
import gc
import sys
from atoll import Response

async def fetch(request, env, ctx):
    env.M.instantiate().exports.one()  # the wasm path too
    if request.path == "/gc":
        return Response(f"{gc.isenabled()} {gc.get_freeze_count() > 0}")
    return Response("\\n".join(sorted(sys.modules)))
"""

ONE = '(module (func (export "one") (result i32) (i32.const 1)))'


def on_the_path(loaded: set[str]) -> list[str]:
    """The modules of :data:`NOT_ON_THE_PATH` (or their submodules) in ``loaded``, and
    on the native backend those of :data:`NATIVE_NOT_ON_THE_PATH`."""
    banned_here: tuple[str, ...] = NOT_ON_THE_PATH
    if BACKEND.name == "native":
        banned_here += NATIVE_NOT_ON_THE_PATH
    return sorted(
        name
        for name in loaded
        for banned in banned_here
        if name == banned or name.startswith(banned + ".")
    )


def test_a_served_worker_finds_none_of_the_lazy_modules_imported(
    dev_server: StartDev, make_worker: WorkerFactory
) -> None:
    folder = make_worker(MODULES_WORKER, modules={"M": ONE})
    server = dev_server(folder, "--kv", "memory", "--no-reload", "--log-level", "warning")
    response = httpx.get(f"{server.url}/", timeout=30)
    assert response.status_code == 200
    loaded = set(response.text.split("\n"))
    assert {"atoll.http.server", "uvicorn.server"} <= loaded  # it is the dev process
    assert on_the_path(loaded) == []
    # the collector, paused while the command imported, runs again once serving
    assert httpx.get(f"{server.url}/gc", timeout=30).text == "True True"


def test_a_change_made_before_the_watcher_starts_is_reloaded(
    dev_server: StartDev, make_worker: WorkerFactory
) -> None:
    # Reloading on (the default): watchfiles is imported half a second after the first
    # response (when the first request comes in time; the thread's wait is tested in
    # tests/devtools/test_reload.py). A change made before it watches is reloaded by
    # the walk it starts with.
    folder = make_worker(MODULES_WORKER, modules={"M": ONE})
    server = dev_server(folder, "--kv", "memory", "--log-level", "warning")
    assert httpx.get(f"{server.url}/", timeout=30).status_code == 200
    (folder / "src" / "worker.py").write_text(MODULES_WORKER.replace("/gc", "/collector"))
    deadline = time.monotonic() + 30
    while "reloaded" not in server.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "reloaded" in server.log()
    assert "watchfiles" in httpx.get(f"{server.url}/", timeout=30).text.split("\n")


def test_a_command_invoked_in_process_leaves_the_collector_alone() -> None:
    before = gc.get_freeze_count()
    result = CliRunner().invoke(main, ["dev", "--help"])
    assert result.exit_code == 0
    assert gc.isenabled()
    assert gc.get_freeze_count() == before


def test_the_checker_sees_a_submodule() -> None:
    assert on_the_path({"uvicorn", "rich.console", "atoll.entries.jsx"}) == ["rich.console"]


def test_importing_the_dev_command_imports_none_of_them() -> None:
    probe = "import sys, atoll.cli.dev; print('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert on_the_path(set(out.split("\n"))) == []
