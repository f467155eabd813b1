"""``atoll dev [DIR]``: serve one worker folder locally."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from atoll.bindings.kv import DEFAULT_SPEC, KVBackend, KVHousekeeping, kv_bindings, open_backend
from atoll.cli.common import fail_on_errors, setup_logging, stderr
from atoll.cli.kv import STATE_DIR
from atoll.devtools.build import run_build
from atoll.devtools.reload import DevReloader
from atoll.http.app import AtollApp, SingleWorker
from atoll.http.server import DEFAULT_LOOPS, serve
from atoll.manifest import load_manifest
from atoll.worker import Runtime, load_worker

__all__ = ["dev"]


@click.command()
@click.argument("directory", default=".", type=click.Path(file_okay=False, path_type=Path))
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8787, show_default=True, type=int, help="Port (0: any free port).")
@click.option(
    "--loops",
    default=DEFAULT_LOOPS,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Event loops (threads) serving requests; a loop stuck in wasm leaves the others.",
)
@click.option(
    "--kv",
    "kv_spec",
    default=DEFAULT_SPEC,
    show_default=True,
    envvar="ATOLL_KV",
    metavar="SPEC",
    help="KV store: sqlite (DIR/.atoll/kv.sqlite3), sqlite:PATH, redis://HOST:PORT/DB, memory.",
)
@click.option("--no-build", is_flag=True, help="Do not run [build] command before serving.")
@click.option(
    "--no-reload",
    is_flag=True,
    help="Do not watch the folder (by default a change is rebuilt and swapped in).",
)
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
)
def dev(
    directory: Path,
    host: str,
    port: int,
    loops: int,
    kv_spec: str,
    no_build: bool,
    no_reload: bool,
    log_level: str,
) -> None:
    """Serve the worker in DIRECTORY (default: .) on http://HOST:PORT.

    KV namespaces live in DIRECTORY/.atoll/ (what `atoll kv` reads and
    writes) unless --kv names another store. A change to the manifest, the
    entry, a module or a source is rebuilt and swapped in within a second; a
    broken change is printed and the last good version keeps serving. Errors
    show as pages with tracebacks and wasm backtraces. Stop with Ctrl-C.
    """
    setup_logging(log_level)
    with fail_on_errors():
        if not no_build:
            raw = load_manifest(directory, check_files=False)
            if raw.build.command:
                stderr.print(f"building: {raw.build.command}")
                run_build(raw)
        # Once per process. The default store creates DIR/.atoll/ for its file;
        # a store elsewhere (--kv) leaves the folder alone.
        backend = open_backend(kv_spec, state_dir=directory / STATE_DIR)
        try:
            _serve(directory, host, port, loops, backend, build=not no_build, reload=not no_reload)
        finally:
            asyncio.run(backend.close())  # if the server did not get to (closing twice is a no-op)


def _serve(
    directory: Path,
    host: str,
    port: int,
    loops: int,
    backend: KVBackend,
    *,
    build: bool,
    reload: bool,
) -> None:
    runtime = Runtime()
    bindings = kv_bindings(backend)
    worker = load_worker(directory, runtime=runtime, dev=True, extra_bindings=bindings)
    housekeeping = KVHousekeeping(backend)
    router = SingleWorker(worker)
    reloader = DevReloader(
        directory,
        router,
        runtime,
        extra_bindings=bindings,
        build=build,
        report=lambda message: stderr.print(message, markup=False),
    )
    app = AtollApp(
        router,
        dev=True,
        on_startup=[housekeeping.start],
        on_shutdown=[housekeeping.stop],
    )

    def ready(bound_host: str, bound_port: int) -> None:
        namespaces = worker.manifest.kv_namespaces
        if namespaces:
            names = ", ".join(entry.binding for entry in namespaces)
            stderr.print(f"KV namespaces {names} in {_where(backend)}", markup=False)
        stderr.print(
            f"[bold]atoll dev[/]: worker [cyan]{worker.name}[/] ready on "
            f"http://{bound_host}:{bound_port}/  ({loops} loops; Ctrl-C to stop)",
            markup=True,
        )

    if reload:
        reloader.start()
    try:
        serve(app, host=host, port=port, loops=loops, ready=ready, log_level="warning")
    finally:
        reloader.stop()


def _where(backend: KVBackend) -> str:
    """The store, for people: a file, a URL without password, or the backend's name."""
    place = getattr(backend, "path", None) or getattr(backend, "url", None)
    return str(place) if place is not None else type(backend).__name__
