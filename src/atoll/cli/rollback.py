"""``atoll rollback NAME [VERSION]``: serve an earlier version again."""

from __future__ import annotations

import click

from atoll.cli.deploy import admin_client, admin_options

__all__ = ["rollback"]


@click.command()
@click.argument("name")
@click.argument("version", required=False)
@admin_options
def rollback(name: str, version: str | None, url: str, token: str) -> None:
    """Activate VERSION (an id or its first digits) of worker NAME.

    Without VERSION, go back to the version that was active before the
    current one (twice in a row goes back and forth). Requests in flight
    finish on the version they started on.
    """
    with admin_client(url, token) as client:
        answer = client.activate(name, version)
    processes = answer["processes"]
    click.echo(
        f"{name}: version {answer['version'][:12]} active on "
        f"{processes['synced']}/{processes['total']} processes"
        + (f" (was {answer['previous'][:12]})" if answer.get("previous") else "")
    )
