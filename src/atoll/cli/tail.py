"""``atoll tail NAME``: a live stream of a worker's requests from an ``atoll serve`` node."""

from __future__ import annotations

import json
import time
from typing import Any

import click

from atoll.cli.admin import admin_client, admin_options, name_option, worker_name
from atoll.cli.common import fail_on_errors

__all__ = ["tail"]


@click.command()
@click.argument("name", required=False)
@name_option
@admin_options
@click.option(
    "--status", "statuses", multiple=True, metavar="CODE", help="Only these statuses: 500, 5xx."
)
@click.option(
    "--outcome", "outcomes", multiple=True, help="Only these outcomes: exception, exceeded_cpu…"
)
@click.option(
    "--sample",
    default=1.0,
    show_default=True,
    type=click.FloatRange(0, 1, min_open=True),
    help="Share of matching requests to show.",
)
@click.option(
    "--format",
    "fmt",
    default="pretty",
    show_default=True,
    type=click.Choice(["pretty", "json"]),
    help="json: one event per line.",
)
def tail(
    name: str | None,
    name_option: str | None,
    url: str,
    token: str,
    statuses: tuple[str, ...],
    outcomes: tuple[str, ...],
    sample: float,
    fmt: str,
) -> None:
    """Show worker NAME's requests as they finish: method, URL, status, outcome,
    wall and CPU time, log lines, exception and wasm backtrace. Ctrl-C to stop.

    When events come faster than they can be shown, the node drops some
    (requests never wait for this stream) and says how many. NAME defaults
    to the worker of the config in the current folder.
    """
    with fail_on_errors():
        name = worker_name(name, name_option)
    with admin_client(url, token) as client:
        try:
            for kind, data in client.tail(
                name, statuses=statuses, outcomes=outcomes, sample=sample
            ):
                _show(kind, data, fmt)
        except KeyboardInterrupt:
            return


def _show(kind: str, data: dict[str, Any], fmt: str) -> None:
    if fmt == "json":
        click.echo(json.dumps({"type": kind, **data}), nl=True)
        return
    if kind == "open":
        click.echo(f"tailing {data['worker']} (Ctrl-C to stop)", err=True)
    elif kind == "dropped":
        click.echo(f"… {data['dropped']} events dropped (the stream could not keep up)", err=True)
    elif kind == "request":
        click.echo(_pretty(data))


def _pretty(event: dict[str, Any]) -> str:
    when = time.strftime("%H:%M:%S", time.localtime(event["time"]))
    head = (
        f"{when} {event['method']} {event['url']} {event['status']} {event['outcome']} "
        f"{event['wall_ms']:.1f}ms cpu={event['cpu_ms']:.1f}ms "
        f"[{event['version'][:12]} p{event['process']}] id={event['request_id']}"
    )
    lines = [head]
    lines += [f"  log: {line}" for line in event["logs"]]
    for sub in event.get("subrequests", ()):
        status = sub["status"] if sub["status"] is not None else sub.get("reason", "-")
        lines.append(
            f"  fetch: {sub['method']} {sub['url']} {status} {sub['outcome']} {sub['ms']:.1f}ms"
        )
    error = event.get("exception")
    if error:
        lines.append(f"  {error['type']}: {error['message']}")
        lines += [f"    {i}: {frame}" for i, frame in enumerate(error.get("frames", []))]
        if error.get("traceback"):
            lines += ["    " + line for line in error["traceback"].rstrip().splitlines()]
    return "\n".join(lines)
