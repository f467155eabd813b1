"""``atoll secret put|list|delete|bulk``: values a worker reads as ``env.KEY``, kept apart from its code.

Both orders work: atoll's ``secret put NAME KEY`` and wrangler's ``secret put
KEY [--name NAME]``; without a name, the worker is the one of the config in
the current folder.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from atoll.cli.admin import admin_client, admin_options, name_option, worker_name
from atoll.cli.common import fail_on_errors
from atoll.errors import ControlError

__all__ = ["secret"]


@click.group()
def secret() -> None:
    """Secrets of a worker (env.KEY): stored on the node apart from the code, never shown."""


def _name_and_key(args: tuple[str, ...], name_option: str | None) -> tuple[str, str]:
    """``NAME KEY`` (atoll) or ``KEY`` with ``--name`` / the folder's config (wrangler)."""
    if len(args) == 2:
        if name_option is not None:
            raise click.UsageError("give NAME KEY, or KEY --name NAME, not both")
        return args[0], args[1]
    if len(args) != 1:
        raise click.UsageError("give KEY (worker from --name or ./atoll.toml), or NAME KEY")
    with fail_on_errors():
        return worker_name(name_option), args[0]


def _read_value(key: str) -> str:
    if sys.stdin.isatty():
        value: str = click.prompt(f"Value of {key}", hide_input=True, err=True)
        return value
    value = sys.stdin.read()
    if value.endswith("\n"):
        value = value[:-1]
        if value.endswith("\r"):
            value = value[:-1]
    return value


@secret.command("put")
@click.argument("args", nargs=-1, required=True, metavar="[NAME] KEY")
@name_option
@admin_options
def put(args: tuple[str, ...], name_option: str | None, url: str, token: str) -> None:
    """Set secret KEY of worker NAME to a value read from stdin.

    At a terminal the value is asked for without echo; otherwise stdin is read
    to its end (one trailing newline dropped): `printf %s "$VALUE" | atoll
    secret put KEY --name NAME` (or `atoll secret put NAME KEY`). The worker's
    processes reload with it at once.
    """
    name, key = _name_and_key(args, name_option)
    value = _read_value(key)
    with admin_client(url, token) as client:
        client.put_secret(name, key, value)
    click.echo(f"{name}: secret {key} set")


@secret.command("bulk")
@click.argument("file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@name_option
@admin_options
def bulk(file: Path | None, name_option: str | None, url: str, token: str) -> None:
    """Set every secret of FILE (or stdin): a JSON object {"KEY": "value", …}, as wrangler's."""
    with fail_on_errors():
        name = worker_name(name_option)
        where = str(file) if file is not None else "stdin"
        try:
            text = file.read_text(encoding="utf-8") if file is not None else sys.stdin.read()
            data = json.loads(text)
        except OSError as exc:
            raise ControlError(f"cannot read {where}: {exc.strerror or exc}") from None
        except ValueError as exc:
            raise ControlError(f"{where} is not valid JSON: {exc}") from None
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            raise ControlError(
                f"{where}: expected a JSON object of strings",
                hint='{"API_KEY": "…", "DB_PASSWORD": "…"}',
            )
    with admin_client(url, token) as client:
        for key, value in data.items():
            client.put_secret(name, key, value)
    click.echo(f"{name}: {len(data)} secrets set")


@secret.command("list")
@click.argument("name", required=False)
@name_option
@admin_options
def list_secrets(name: str | None, name_option: str | None, url: str, token: str) -> None:
    """List the names of worker NAME's secrets (values are never sent back)."""
    with fail_on_errors():
        worker = worker_name(name, name_option)
    with admin_client(url, token) as client:
        names = client.secrets(worker)["secrets"]
    for key in names:
        click.echo(key)
    if not names:
        click.echo(f"{worker} has no secrets", err=True)


@secret.command("delete")
@click.argument("args", nargs=-1, required=True, metavar="[NAME] KEY")
@name_option
@admin_options
def delete_secret(args: tuple[str, ...], name_option: str | None, url: str, token: str) -> None:
    """Remove secret KEY of worker NAME (`delete NAME KEY` or `delete KEY --name NAME`)."""
    name, key = _name_and_key(args, name_option)
    with admin_client(url, token) as client:
        client.delete_secret(name, key)
    click.echo(f"{name}: secret {key} deleted")
