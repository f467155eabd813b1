"""``atoll delete NAME``: stop serving a worker and remove its versions and secrets."""

from __future__ import annotations

import click

from atoll.cli.admin import admin_client, admin_options, name_option, worker_name
from atoll.cli.common import fail_on_errors

__all__ = ["delete"]


@click.command()
@click.argument("name", required=False)
@name_option
@admin_options
@click.option("--version", "version", default=None, help="Delete only this (inactive) version.")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
def delete(
    name: str | None,
    name_option: str | None,
    url: str,
    token: str,
    version: str | None,
    yes: bool,
) -> None:
    """Delete worker NAME from the node: its routes stop matching at once (404),
    and its versions and secrets are removed. With --version, delete only that
    stored version (not the active one). NAME defaults to the worker of the
    config in the current folder."""
    with fail_on_errors():
        name = worker_name(name, name_option)
    what = f"version {version} of {name}" if version else f"worker {name}, its versions and secrets"
    if not yes:
        click.confirm(f"Delete {what}?", abort=True, err=True)
    with admin_client(url, token) as client:
        if version:
            answer = client.delete_version(name, version)
            click.echo(f"{name}: version {answer['deleted'][:12]} deleted")
        else:
            client.delete(name)
            click.echo(f"{name}: deleted")
