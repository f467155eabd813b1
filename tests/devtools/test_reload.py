"""Hot reload in dev: each kind of file, broken changes, sibling modules, the watcher thread."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from atoll.api import Request
from atoll.devtools.reload import DevReloader
from atoll.http.app import SingleWorker
from atoll.worker import Runtime, load_worker
from tests.support import WorkerFactory, wat

WORKER = """
from atoll import Response
import helper

async def fetch(request, env, ctx):
    return Response(f"{helper.WORD} {env.M.instantiate().exports.n()} {env.V}")
"""


def module(n: int) -> bytes:
    return wat(f'(module (func (export "n") (result i32) (i32.const {n})))')


async def body(router: SingleWorker) -> str:
    result = await router.worker.handle(Request("http://t/"), "rid")
    return result.response.body.decode()


def setup(
    make_worker: WorkerFactory, runtime: Runtime
) -> tuple[Path, SingleWorker, DevReloader, list[str]]:
    root = make_worker(WORKER, modules={"M": module(1)})
    (root / "src" / "helper.py").write_text('WORD = "one"\n')
    (root / "atoll.toml").write_text(
        'name = "reload"\nmain = "src/worker.py"\n[vars]\nV = "v1"\n[wasm_modules]\nM = "pkg/M.wasm"\n'
    )
    router = SingleWorker(load_worker(root, runtime=runtime, dev=True))
    messages: list[str] = []
    return root, router, DevReloader(root, router, runtime, report=messages.append), messages


async def test_each_kind_of_file_reloads(make_worker: WorkerFactory, runtime: Runtime) -> None:
    root, router, reloader, _ = setup(make_worker, runtime)
    assert await body(router) == "one 1 v1"

    (root / "pkg" / "M.wasm").write_bytes(module(2))
    assert reloader.apply([root / "pkg" / "M.wasm"])
    assert await body(router) == "one 2 v1"

    (root / "atoll.toml").write_text((root / "atoll.toml").read_text().replace("v1", "v2"))
    assert reloader.apply([root / "atoll.toml"])
    assert await body(router) == "one 2 v2"

    (root / "src" / "helper.py").write_text('WORD = "two"\n')  # a sibling of the entry
    assert reloader.apply([root / "src" / "helper.py"])
    assert await body(router) == "two 2 v2"

    entry = root / "src" / "worker.py"
    entry.write_text(entry.read_text().replace('f"{helper.WORD}', 'f"new {helper.WORD}'))
    assert reloader.apply([entry])
    assert await body(router) == "new two 2 v2"


async def test_a_broken_change_keeps_the_last_good_version(
    make_worker: WorkerFactory, runtime: Runtime
) -> None:
    root, router, reloader, messages = setup(make_worker, runtime)
    (root / "atoll.toml").write_text("bogus = 1\n" + (root / "atoll.toml").read_text())
    assert not reloader.apply([root / "atoll.toml"])
    assert "unknown key" in messages[-1]
    (root / "pkg" / "M.wasm").write_bytes(b"not wasm")
    (root / "atoll.toml").write_text((root / "atoll.toml").read_text().replace("bogus = 1\n", ""))
    assert not reloader.apply([root / "pkg" / "M.wasm"])
    assert "not a WebAssembly binary" in messages[-1]
    (root / "pkg" / "M.wasm").write_bytes(module(3))
    (root / "src" / "worker.py").write_text("this is not python(")
    assert not reloader.apply([root / "src" / "worker.py"])
    assert "importing the entry failed" in messages[-1]
    assert await body(router) == "one 1 v1"  # still the first version


async def test_build_runs_when_sources_change(make_worker: WorkerFactory, runtime: Runtime) -> None:
    root, router, reloader, messages = setup(make_worker, runtime)
    (root / "build.sh").write_text("#!/bin/sh\ncp src/next.wasm pkg/M.wasm\n")
    (root / "build.sh").chmod(0o755)
    (root / "src" / "next.wasm").write_bytes(module(7))
    (root / "atoll.toml").write_text(
        (root / "atoll.toml").read_text() + '[build]\ncommand = "./build.sh"\n'
    )
    assert reloader.apply([root / "src" / "next.wasm"])
    assert any("building" in m for m in messages)
    assert await body(router) == "one 7 v1"


def test_the_watcher_thread_reloads_within_a_second(
    make_worker: WorkerFactory, runtime: Runtime
) -> None:
    root, router, reloader, _ = setup(make_worker, runtime)
    reloader.start()
    try:
        time.sleep(0.3)  # let the watcher start
        (root / "pkg" / "M.wasm").write_bytes(module(5))
        deadline = time.monotonic() + 10
        while reloader.reloads == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert reloader.reloads >= 1
        assert asyncio.run(body(router)) == "one 5 v1"
    finally:
        reloader.stop()
