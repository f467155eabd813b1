"""``atoll dev [DIR]``: serve one worker folder locally."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from atoll.api import ScheduledEvent
from atoll.bindings.kv import (
    DEFAULT_SPEC,
    STATE_DIR,
    KVBackend,
    KVHousekeeping,
    kv_bindings,
    open_backend,
)
from atoll.cli.common import (
    config_options,
    emphasis,
    fail_on_errors,
    load_config,
    selected_config,
    setup_logging,
    stderr,
)
from atoll.cli.server_options import server_limit_options, server_limits
from atoll.control.cron import MemoryClaims, Scheduler
from atoll.control.services import LocalServices
from atoll.devtools.reload import DevReloader
from atoll.errors import ConfigError
from atoll.http.app import AtollApp, SingleWorker
from atoll.http.bodies import BodyBudget
from atoll.http.server import DEFAULT_LOOPS, ServerLimits, serve
from atoll.manifest import Manifest
from atoll.worker import Result, Runtime, Worker, load_worker

__all__ = ["dev"]


@click.command()
@click.argument("directories", nargs=-1, type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--host",
    "--ip",
    "host",
    default=None,
    help="Address to listen on (default: [dev] ip of the config, else 127.0.0.1).",
)
@click.option(
    "--port",
    default=None,
    type=int,
    help="Port, 0 for any free one (default: [dev] port of the config, else 8787).",
)
@click.option(
    "--loops",
    default=DEFAULT_LOOPS,
    show_default=True,
    type=click.IntRange(1, 64),
    help=(
        "Event loops (threads): one serves, the rest are spares that take over new"
        " connections while it is stuck in wasm and run the routes found slow."
    ),
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
@click.option(
    "--persist-to",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    metavar="DIR",
    help="Folder of local state (KV) instead of DIRECTORY/.atoll/ (as wrangler's --persist-to).",
)
@click.option(
    "--var",
    "var_items",
    multiple=True,
    metavar="KEY:VALUE",
    help="Set env.KEY to the string VALUE, over [vars] (repeatable).",
)
@click.option("--name", default=None, help="Serve the worker under this name instead of `name`.")
@click.option(
    "--compatibility-date",
    default=None,
    metavar="YYYY-MM-DD",
    help="Use this compatibility date instead of the config's.",
)
@click.option(
    "--local",
    is_flag=True,
    help="Accepted for wrangler's sake; has no effect (atoll dev is always local).",
)
@click.option("--no-build", is_flag=True, help="Do not run [build] command before serving.")
@click.option(
    "--test-scheduled",
    is_flag=True,
    help="Serve /__scheduled?cron=… : each call runs the worker's scheduled() (as wrangler).",
)
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
@config_options
@server_limit_options
def dev(
    directories: tuple[Path, ...],
    host: str | None,
    port: int | None,
    loops: int,
    kv_spec: str,
    persist_to: Path | None,
    var_items: tuple[str, ...],
    name: str | None,
    compatibility_date: str | None,
    local: bool,
    no_build: bool,
    test_scheduled: bool,
    no_reload: bool,
    log_level: str,
    **limit_options: Any,
) -> None:
    """Serve the worker in DIRECTORY (default: .) on http://HOST:PORT.

    More folders after the first (atoll dev a/ b/) are loaded too, so that
    service bindings ([[services]]) between them work; the first is the one
    served (the others are not reloaded on change).

    KV namespaces live in DIRECTORY/.atoll/ (what `atoll kv` reads and
    writes), or in --persist-to DIR, unless --kv names another store. The
    build's output is shown as it runs. A change to the manifest, the
    entry, a module or a source is rebuilt and swapped in within a second; a
    broken change is printed and the last good version keeps serving. Errors
    show as pages with tracebacks and wasm backtraces. Stop with Ctrl-C.
    """
    setup_logging(log_level)
    directory = directories[0] if directories else Path(".")
    limits, body_memory = server_limits(limit_options)
    with fail_on_errors():
        adjust = _overrides(_parse_vars(var_items), name, compatibility_date)
        # What is modified after this, the reloader reloads (even before it watches).
        since = time.time_ns()
        # Prints the config's notices, once. Its files are checked now unless a build
        # may make them (then once more after the build, in _serve).
        raw = load_config(directory, check_files=no_build)
        if not no_build and raw.build.command:
            from atoll.devtools.build import run_build  # toolchains: only to build

            stderr.print(f"building: {raw.build.command}", markup=False)
            run_build(raw, on_output=lambda line: stderr.print(f"  {line}", markup=False))
            since = time.time_ns()  # what the build wrote is what _serve loads
        host = host or raw.dev.ip or "127.0.0.1"
        port = port if port is not None else (raw.dev.port if raw.dev.port is not None else 8787)
        if selected_config()[0] is not None:  # -c FILE: the worker folder is the file's
            directory = raw.root
        # Once per process. The default store creates its folder (DIR/.atoll/ or
        # --persist-to) for its file; a store elsewhere (--kv) leaves the folder alone.
        state_dir = persist_to if persist_to is not None else directory / STATE_DIR
        backend = open_backend(kv_spec, state_dir=state_dir)
        try:
            _serve(
                directory,
                host,
                port,
                loops,
                backend,
                adjust,
                build=not no_build,
                reload=not no_reload,
                limits=limits,
                body_memory=body_memory,
                test_scheduled=test_scheduled,
                others=directories[1:],
                loaded=raw if no_build else None,
                since=since,
            )
        finally:
            asyncio.run(backend.close())  # if the server did not get to (closing twice is a no-op)


#: Seconds after listening the dev watcher starts when no request comes; and after the
#: first response (the requests a page makes as it loads come first).
_WATCH_AFTER = 1.0
_WATCH_SETTLE = 0.5

_VAR = r"([A-Za-z_][A-Za-z0-9_]*):(.*)"


def _parse_vars(items: tuple[str, ...]) -> dict[str, str]:
    """``--var KEY:VALUE`` items as a dict (the value may hold colons)."""
    out: dict[str, str] = {}
    for item in items:
        match = re.fullmatch(_VAR, item, re.DOTALL)  # compiled on the first --var only
        if match is None:
            raise ConfigError(
                f"--var {item!r} is not KEY:VALUE",
                hint="for example --var GREETING:hello (KEY is a Python identifier)",
            )
        out[match.group(1)] = match.group(2)
    return out


def _overrides(
    variables: dict[str, str], name: str | None, compatibility_date: str | None
) -> Callable[[Manifest], Manifest] | None:
    """What the command line changes in the manifest (every load, reloads too)."""
    if not variables and name is None and compatibility_date is None:
        return None
    if compatibility_date is not None and not re.fullmatch(
        r"\d{4}-\d{2}-\d{2}", compatibility_date
    ):
        raise ConfigError(
            f"--compatibility-date {compatibility_date!r} is not a date",
            hint="write it as YYYY-MM-DD, for example 2026-11-01",
        )

    def adjust(manifest: Manifest) -> Manifest:
        changes: dict[str, object] = {}
        if variables:
            changes["vars"] = {**manifest.vars, **variables}
        if name is not None:
            changes["name"] = name
        if compatibility_date is not None:
            changes["compatibility_date"] = compatibility_date
        return dataclasses.replace(manifest, **changes)  # type: ignore[arg-type]

    return adjust


def _serve(
    directory: Path,
    host: str,
    port: int,
    loops: int,
    backend: KVBackend,
    adjust: Callable[[Manifest], Manifest] | None,
    *,
    build: bool,
    reload: bool,
    limits: ServerLimits,
    body_memory: int,
    test_scheduled: bool = False,
    others: tuple[Path, ...] = (),
    loaded: Manifest | None = None,
    since: int | None = None,
) -> None:
    runtime = Runtime()
    bindings = kv_bindings(backend)
    # ``loaded``: the config as dev() read it, files checked (no build ran since)
    manifest = loaded or load_config(directory, check_files=True, notices=False)
    if adjust is not None:
        manifest = adjust(manifest)
    siblings: dict[str, Worker] = {}

    def workers() -> dict[str, Worker]:  # the entry as it is now (reloads swap it)
        return {**siblings, router.worker.name: router.worker}

    services = LocalServices(workers)
    for folder in others:  # loaded once, for the entry's [[services]] to call
        other = load_worker(
            load_config(folder, check_files=True),
            runtime=runtime,
            dev=True,
            extra_bindings=bindings,
            services=services,
        )
        siblings[other.name] = other
        stderr.print(f"service {other.name} loaded from {folder}", markup=False)
    worker = load_worker(
        manifest, runtime=runtime, dev=True, extra_bindings=bindings, services=services
    )
    for entry in worker.manifest.services:
        if entry.service not in siblings and entry.service != worker.name:
            raise ConfigError(
                f"[[services]] binding {entry.binding!r} names worker {entry.service!r}, "
                "which atoll dev was not given",
                path=str(worker.manifest.path),
                hint=f"pass its folder after this one: atoll dev {directory} path/to/{entry.service}/",
            )
    housekeeping = KVHousekeeping(backend)
    router = SingleWorker(worker)
    reloader = DevReloader(
        directory,
        router,
        runtime,
        extra_bindings=bindings,
        adjust=adjust,
        build=build,
        report=lambda message: stderr.print(message, markup=False),
        config=manifest.path if selected_config()[0] is not None else None,
        env=selected_config()[1],
        services=services,
        since=since,
    )
    # The watcher starts after the first responses: importing watchfiles is off their path.
    first_response = threading.Event()

    def on_first_result(*_: object) -> None:
        app.on_result = ()  # once: later requests pay for no hook
        first_response.set()

    # The worker's [triggers] crons run for real, each run printed (a reload keeps the times).
    scheduler = Scheduler(workers, MemoryClaims(), on_run=(_print_run,))
    app = AtollApp(
        router,
        dev=True,
        on_startup=[housekeeping.start, scheduler.start],
        on_shutdown=[scheduler.stop, housekeeping.stop],
        on_result=[on_first_result] if reload else (),
        body_budget=BodyBudget(body_memory),
        test_scheduled=test_scheduled,
    )

    def ready(bound_host: str, bound_port: int) -> None:
        if reload:  # watching (and importing watchfiles) is off the path to the first response
            reloader.start(after=first_response, wait=_WATCH_AFTER, settle=_WATCH_SETTLE)
        namespaces = worker.manifest.kv_namespaces
        if namespaces:
            names = ", ".join(entry.binding for entry in namespaces)
            stderr.print(f"KV namespaces {names} in {_where(backend)}", markup=False)
        limits = worker.manifest.limits
        stderr.print(
            f"CPU limit {limits.cpu_ms:,} ms, memory {limits.memory_mb} MiB per request "
            f"([limits] of {worker.manifest.path.name})",
            markup=False,
        )
        crons = router.worker.manifest.triggers.crons
        if crons:
            stderr.print(f"cron triggers (UTC): {', '.join(crons)}", markup=False)
        if test_scheduled:
            stderr.print(
                f"test a run: curl 'http://{bound_host}:{bound_port}/__scheduled?cron=*+*+*+*+*'",
                markup=False,
            )
        stderr.print(  # plain, with ANSI emphasis: rich stays off the start-up path
            f"{emphasis('atoll dev')}: worker {emphasis(worker.name, '36')} ready on "
            f"http://{bound_host}:{bound_port}/  ({loops} loops; Ctrl-C to stop)",
            markup=False,
        )

    try:
        serve(
            app,
            host=host,
            port=port,
            loops=loops,
            ready=ready,
            log_level="warning",
            limits=limits,
        )
    finally:
        reloader.stop()


def _print_run(worker: Worker, event: ScheduledEvent, result: Result, wall_ms: float) -> None:
    """One line per cron run (and its log lines), as a request gets."""
    stamp = event.scheduled_time.strftime("%H:%M:%S")
    stderr.print(
        f"cron {event.cron!r} at {stamp} UTC: {worker.name} {result.outcome.value} "
        f"{wall_ms:.1f}ms id={result.request_id}",
        markup=False,
    )
    if result.logs:  # one write for the run's lines (up to runtime/logs.py's budget)
        prefix = f"  [{result.request_id}] "
        stderr.print(prefix + f"\n{prefix}".join(result.logs), markup=False)
    if result.error is not None:
        stderr.print(f"  {type(result.error).__name__}: {result.error}", markup=False)


def _where(backend: KVBackend) -> str:
    """The store, for people: a file, a URL without password, or the backend's name."""
    place = getattr(backend, "path", None) or getattr(backend, "url", None)
    return str(place) if place is not None else type(backend).__name__
