"""``atoll rollback NAME [VERSION]``: serve an earlier version again."""

from __future__ import annotations

import click

from atoll.cli.admin import (
    admin_client,
    admin_options,
    name_option,
    print_nodes,
    worker_name,
)
from atoll.cli.common import fail_on_errors

__all__ = ["rollback"]


@click.command()
@click.argument("args", nargs=-1, metavar="[NAME] [VERSION]")
@name_option
@admin_options
def rollback(args: tuple[str, ...], name_option: str | None, url: str, token: str) -> None:
    """Activate VERSION (an id or its first digits) of worker NAME.

    Without VERSION, go back to the version that was active before the
    current one (twice in a row goes back and forth). Requests in flight
    finish on the version they started on.

    NAME defaults to the worker of the config in the current folder. With
    --name (wrangler's form), the only argument is VERSION:
    `atoll rollback 3f2a9c --name W`.
    """
    if len(args) > 2 or (name_option is not None and len(args) > 1):
        raise click.UsageError("give [NAME] [VERSION], or [VERSION] --name NAME")
    with fail_on_errors():
        if name_option is not None:
            name, version = name_option, (args[0] if args else None)
        else:
            name = worker_name(args[0] if args else None)
            version = args[1] if len(args) > 1 else None
    with admin_client(url, token) as client:
        answer = client.activate(name, version)
    processes = answer["processes"]
    click.echo(
        f"{name}: version {answer['version'][:12]} active on "
        f"{processes['synced']}/{processes['total']} processes"
        + (f" (was {answer['previous'][:12]})" if answer.get("previous") else "")
    )
    print_nodes(answer)
