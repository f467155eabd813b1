"""``atoll secret put|list|delete``: values a worker reads as ``env.KEY``, kept apart from its code."""

from __future__ import annotations

import sys

import click

from atoll.cli.deploy import admin_client, admin_options

__all__ = ["secret"]


@click.group()
def secret() -> None:
    """Secrets of a worker (env.KEY): stored on the node apart from the code, never shown."""


@secret.command("put")
@click.argument("name")
@click.argument("key")
@admin_options
def put(name: str, key: str, url: str, token: str) -> None:
    """Set secret KEY of worker NAME to a value read from stdin.

    At a terminal the value is asked for without echo; otherwise stdin is read
    to its end (one trailing newline dropped): `printf %s "$VALUE" | atoll
    secret put NAME KEY`. The worker's processes reload with it at once.
    """
    if sys.stdin.isatty():
        value = click.prompt(f"Value of {key}", hide_input=True, err=True)
    else:
        value = sys.stdin.read()
        if value.endswith("\n"):
            value = value[:-1]
            if value.endswith("\r"):
                value = value[:-1]
    with admin_client(url, token) as client:
        client.put_secret(name, key, value)
    click.echo(f"{name}: secret {key} set")


@secret.command("list")
@click.argument("name")
@admin_options
def list_secrets(name: str, url: str, token: str) -> None:
    """List the names of worker NAME's secrets (values are never sent back)."""
    with admin_client(url, token) as client:
        names = client.secrets(name)["secrets"]
    for key in names:
        click.echo(key)
    if not names:
        click.echo(f"{name} has no secrets", err=True)


@secret.command("delete")
@click.argument("name")
@click.argument("key")
@admin_options
def delete_secret(name: str, key: str, url: str, token: str) -> None:
    """Remove secret KEY of worker NAME."""
    with admin_client(url, token) as client:
        client.delete_secret(name, key)
    click.echo(f"{name}: secret {key} deleted")
