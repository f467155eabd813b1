"""The ``atoll`` command: one module per command, wired here.

Commands are imported when they run (a lazy click group), so ``atoll dev``
does not pay for the imports of ``atoll deploy``: start-up time is part of a
cold start. Only this package turns an :class:`~atoll.errors.AtollError` into
a message and an exit code; nothing below it calls ``sys.exit``.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
from collections.abc import Iterator
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

    #: True once the group runs as the ``atoll`` program (:meth:`__call__`), not in a test's
    #: process through ``CliRunner`` (which calls :meth:`main`).
    program = False

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """The ``atoll`` program: the console script and ``python -m atoll.cli``."""
        LazyGroup.program = True
        return super().__call__(*args, **kwargs)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attribute = target.split(":")
        with _start_up_imports():
            module = importlib.import_module(module_name)
        command: Any = getattr(module, attribute)
        assert isinstance(command, click.Command)
        return command


@contextlib.contextmanager
def _start_up_imports() -> Iterator[None]:
    """While the ``atoll`` program imports a command's modules: the cyclic GC off, and
    what the imports made frozen after (``gc.freeze()``: never scanned again).

    Modules, classes and functions live as long as the process, so the collections an
    import triggers only scan them again and again, for a few hundred objects of import
    garbage (kept, frozen). Only in the program (:attr:`LazyGroup.program`): a test that
    invokes a command in its own process keeps its collector as it was.
    """
    if not LazyGroup.program or not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.enable()


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="atoll")
def main() -> None:
    """Run WebAssembly workers the way Cloudflare Workers does, on machines you own."""
