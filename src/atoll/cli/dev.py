"""``atoll dev [DIR]``: serve one worker folder locally."""

from __future__ import annotations

from pathlib import Path

import click

from atoll.build import run_build
from atoll.cli.common import fail_on_errors, setup_logging, stderr
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
@click.option("--no-build", is_flag=True, help="Do not run [build] command before serving.")
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
)
def dev(directory: Path, host: str, port: int, loops: int, no_build: bool, log_level: str) -> None:
    """Serve the worker in DIRECTORY (default: .) on http://HOST:PORT.

    Errors show as pages with tracebacks and wasm backtraces. Stop with Ctrl-C.
    """
    setup_logging(log_level)
    with fail_on_errors():
        if not no_build:
            raw = load_manifest(directory, check_files=False)
            if raw.build.command:
                stderr.print(f"building: {raw.build.command}")
                run_build(raw)
        worker = load_worker(directory, runtime=Runtime(), dev=True)
        app = AtollApp(SingleWorker(worker), dev=True)

        def ready(bound_host: str, bound_port: int) -> None:
            stderr.print(
                f"[bold]atoll dev[/]: worker [cyan]{worker.name}[/] ready on "
                f"http://{bound_host}:{bound_port}/  ({loops} loops; Ctrl-C to stop)",
                markup=True,
            )

        serve(app, host=host, port=port, loops=loops, ready=ready, log_level="warning")
