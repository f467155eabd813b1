"""Hot reload in dev: each kind of file, broken changes, sibling modules, the watcher thread."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from pathlib import Path

import pytest

from atoll.api import Request
from atoll.cli.init import TEMPLATES, copy_template
from atoll.devtools.build import run_build
from atoll.devtools.reload import DevReloader, ignored
from atoll.http.app import SingleWorker
from atoll.manifest import load_manifest
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


#: Longer than the tick of the clock the kernel stamps files with (a file written within
#: one tick of ``since`` may carry a time before it).
TICK = 0.03


def test_a_change_before_the_watcher_starts_is_reloaded_when_it_starts(
    make_worker: WorkerFactory, runtime: Runtime
) -> None:
    # atoll dev starts watching after its first response: a change made before that
    # (here while the thread waits for its signal) is found by the walk it starts with.
    root, router, reloader, _ = setup(make_worker, runtime)
    signal = threading.Event()
    reloader.start(after=signal, wait=60)
    try:
        time.sleep(TICK)
        (root / "pkg" / "M.wasm").write_bytes(module(6))
        (root / "src" / "helper.py").write_text('WORD = "two"\n')
        time.sleep(0.3)
        assert reloader.reloads == 0  # still waiting for the signal
        signal.set()
        deadline = time.monotonic() + 10
        while reloader.reloads == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert reloader.reloads == 1
        assert asyncio.run(body(router)) == "two 6 v1"
    finally:
        reloader.stop()


async def test_the_walk_skips_what_is_never_a_change(
    make_worker: WorkerFactory, runtime: Runtime
) -> None:
    root, _router, reloader, _ = setup(make_worker, runtime)
    since = time.time_ns()
    await asyncio.sleep(TICK)
    (root / "target").mkdir()
    (root / "target" / "lib.rs").write_text("")
    (root / "src" / "worker.py.swp").write_text("")
    assert reloader.modified_since(since) == set()
    await asyncio.sleep(TICK)
    (root / "src" / "helper.py").write_text('WORD = "three"\n')
    assert reloader.modified_since(since) == {root / "src" / "helper.py"}
    assert reloader.catch_up()
    assert reloader.reloads == 1
    assert reloader.since > since  # the watcher takes it from here
    assert await body(_router) == "three 1 v1"


# -- no rebuild loop: the build's own files are not changes --------------------------


@pytest.mark.parametrize(
    "name",
    [
        "x.rcgu.o",
        "greeter.lib.3b8772f4-cgu.0.rcgu.o",
        "app.wasm.tmp4ec0e40",
        "worker.py.swp",
        "notes~",
        ".#worker.py",
        "4913",
    ],
)
def test_temporary_files_are_ignored(name: str) -> None:
    assert ignored(Path("build") / name)


@pytest.mark.parametrize("folder", ["target", "node_modules", ".atoll", ".zig-cache", ".git"])
def test_tool_folders_are_ignored(folder: str) -> None:
    assert ignored(Path(folder) / "debug" / "lib.rs")
    assert not ignored(Path("src") / "lib.rs")


async def test_an_output_as_loaded_is_not_a_change(
    make_worker: WorkerFactory, runtime: Runtime
) -> None:
    root, router, reloader, _ = setup(make_worker, runtime)
    reloader.start()
    reloader.stop()
    assert not reloader.apply([root / "pkg" / "M.wasm"])  # the file the worker loaded
    (root / "pkg" / "M.wasm").write_bytes(module(12))
    assert reloader.apply([root / "pkg" / "M.wasm"])
    assert not reloader.apply([root / "pkg" / "M.wasm"])  # the same event, delivered twice
    assert await body(router) == "one 12 v1"


async def test_static_files_do_not_reload(make_worker: WorkerFactory, runtime: Runtime) -> None:
    root, _router, reloader, _ = setup(make_worker, runtime)
    (root / "public").mkdir()
    (root / "atoll.toml").write_text(
        (root / "atoll.toml").read_text() + '[assets]\ndirectory = "public"\n'
    )
    assert reloader.apply([root / "atoll.toml"])
    (root / "public" / "index.html").write_text("hi")
    assert not reloader.apply([root / "public" / "index.html"])


def test_watch_dir_limits_what_rebuilds(make_worker: WorkerFactory, runtime: Runtime) -> None:
    root, _router, reloader, _messages = setup(make_worker, runtime)
    (root / "build.sh").write_text("#!/bin/sh\ncp rust/next.wasm pkg/M.wasm\n")
    (root / "build.sh").chmod(0o755)
    (root / "rust").mkdir()
    (root / "rust" / "next.wasm").write_bytes(module(8))
    (root / "atoll.toml").write_text(
        (root / "atoll.toml").read_text()
        + '[build]\ncommand = "./build.sh"\nwatch_dir = ["rust"]\n'
    )
    assert reloader.apply([root / "src" / "helper.py"])  # not watched: reload, no build
    assert reloader.builds == 0
    assert reloader.apply([root / "rust" / "next.wasm"])
    assert reloader.builds == 1


#: Per template, the source file an edit goes to and how a comment is written in it.
SOURCES = {
    "python": ("src/worker.py", "# edited\n"),
    "python-rust": ("rust/lib.rs", "// edited\n"),
    "python-c": ("c/greeter.c", "// edited\n"),
    "python-assemblyscript": ("assembly/index.ts", "// edited\n"),
    "rust-wasi": ("src/main.rs", "// edited\n"),
    "c-wasi": ("src/main.c", "// edited\n"),
    "zig-wasi": ("src/main.zig", "// edited\n"),
    "assemblyscript-wasi": ("assembly/index.ts", "// edited\n"),
    "js": ("src/index.js", "// edited\n"),
    "js-rust": ("rust/lib.rs", "// edited\n"),
}

#: A build and a reload per edit must come well within this; a loop would be seen long before.
FIRST_RELOAD_S = 180
#: After the reload, how long the watcher is left alone to show a loop (builds take ~1 s).
QUIET_S = 3.0


def test_every_template_has_a_source_to_edit() -> None:
    assert set(SOURCES) == set(TEMPLATES)


@pytest.mark.parametrize("template", list(TEMPLATES))
def test_one_edit_is_one_build_and_one_reload(
    template: str, tmp_path: Path, runtime: Runtime
) -> None:
    """A fresh template, built, watched: one edit of a source → exactly one build, one reload.

    Before the rules of :func:`ignored`, the build's temporary files (rustc's ``.rcgu.o``,
    wasm-opt's ``.wasm.tmp*``) counted as changes and a template rebuilt forever.
    """
    root = tmp_path / template
    copy_template(template, root, "loop-check")
    run_build(load_manifest(root, check_files=False))
    router = SingleWorker(load_worker(root, runtime=runtime, dev=True))
    messages: list[str] = []
    reloader = DevReloader(root, router, runtime, report=messages.append)
    reloader.start()
    try:
        time.sleep(0.5)  # let the watcher start
        source, comment = SOURCES[template]
        with (root / source).open("a") as file:
            file.write(comment)
        deadline = time.monotonic() + FIRST_RELOAD_S
        while reloader.reloads == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert reloader.reloads == 1, messages
        time.sleep(QUIET_S)  # a loop would build again here
        assert (reloader.builds, reloader.reloads) == (1, 1), messages
    finally:
        reloader.stop()


async def test_command_line_overrides_survive_a_reload(
    make_worker: WorkerFactory, runtime: Runtime
) -> None:
    """`atoll dev --var V:cli` applies to every load, not just the first."""
    root, router, _, messages = setup(make_worker, runtime)
    reloader = DevReloader(
        root,
        router,
        runtime,
        adjust=lambda m: dataclasses.replace(m, vars={**m.vars, "V": "cli"}),
        report=messages.append,
    )
    (root / "src" / "helper.py").write_text('WORD = "two"\n')
    assert reloader.apply([root / "src" / "helper.py"])
    assert await body(router) == "two 1 cli"


async def test_reload_keeps_the_config_and_env_it_started_with(
    make_worker: WorkerFactory, runtime: Runtime
) -> None:
    """``atoll dev -c FILE --env NAME``: each reload reads that file and environment again."""
    root = make_worker(WORKER, modules={"M": module(1)})
    (root / "src" / "helper.py").write_text('WORD = "one"\n')
    config = root / "wrangler.toml"
    config.write_text(
        'name = "reload"\nmain = "src/worker.py"\n[wasm_modules]\nM = "pkg/M.wasm"\n'
        '[vars]\nV = "top"\n[env.staging.vars]\nV = "staging"\n'
    )
    (root / "atoll.toml").write_text('name = "other"\nmain = "src/worker.py"\n')
    manifest = load_manifest(root, config=config, env="staging")
    router = SingleWorker(load_worker(manifest, runtime=runtime, dev=True))
    reloader = DevReloader(root, router, runtime, config=config, env="staging")
    assert await body(router) == "one 1 staging"
    config.write_text(config.read_text().replace('"staging"\n', '"staging-2"\n'))
    assert reloader.apply([config])
    assert router.worker.name == "reload-staging"
    assert await body(router) == "one 1 staging-2"
