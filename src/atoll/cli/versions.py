"""``atoll versions list NAME``: the versions a node stores for a worker."""

from __future__ import annotations

import json
import time

import click

from atoll.cli.admin import admin_client, admin_options, name_option, worker_name
from atoll.cli.common import fail_on_errors

__all__ = ["versions"]


@click.group()
def versions() -> None:
    """Versions of a deployed worker."""


@versions.command("list")
@click.argument("name", required=False)
@name_option
@admin_options
@click.option("--json", "as_json", is_flag=True, help="Print the node's answer as JSON.")
def list_versions(
    name: str | None, name_option: str | None, url: str, token: str, as_json: bool
) -> None:
    """List the stored versions of worker NAME, oldest first; * marks the active one.

    NAME defaults to the worker of the config in the current folder.
    """
    with fail_on_errors():
        name = worker_name(name, name_option)
    with admin_client(url, token) as client:
        answer = client.versions(name)
    if as_json:
        click.echo(json.dumps(answer, indent=2))
        return
    active, previous = answer["active"], answer["previous"]
    for info in answer["versions"]:
        mark = "*" if info["id"] == active else ("<" if info["id"] == previous else " ")
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info["uploaded_at"]))
        routes = ", ".join(info["routes"]) or f"{name}.localhost/*"
        click.echo(f"{mark} {info['id'][:12]}  {when}  {info['files']:>4} files  {routes}")
    if not answer["versions"]:
        click.echo(f"{name} has no versions")
    elif previous:
        click.echo("* active   < previous (what `atoll rollback` goes back to)")
    else:
        click.echo("* active")
