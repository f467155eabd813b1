"""The ``atoll`` command: one module per command, wired here.

Commands are imported when they run (a lazy click group), so ``atoll dev``
does not pay for the imports of ``atoll deploy``: start-up time is part of a
cold start. Only this package turns an :class:`~atoll.errors.AtollError` into
a message and an exit code; nothing below it calls ``sys.exit``.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

from atoll import __version__

__all__ = ["COMMANDS", "main"]

#: command name → "module:attribute"; imported on first use.
COMMANDS: dict[str, str] = {
    "build": "atoll.cli.build:build",
    "cluster": "atoll.cli.cluster:cluster",
    "delete": "atoll.cli.delete:delete",
    "deploy": "atoll.cli.deploy:deploy",
    "dev": "atoll.cli.dev:dev",
    "init": "atoll.cli.init:init",
    "kv": "atoll.cli.kv:kv",
    "rollback": "atoll.cli.rollback:rollback",
    "secret": "atoll.cli.secret:secret",
    "serve": "atoll.cli.serve:serve",
    "tail": "atoll.cli.tail:tail",
    "versions": "atoll.cli.versions:versions",
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported when looked up."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attribute = target.split(":")
        command: Any = getattr(importlib.import_module(module_name), attribute)
        assert isinstance(command, click.Command)
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="atoll")
def main() -> None:
    """Run WebAssembly workers the way Cloudflare Workers does, on machines you own."""
