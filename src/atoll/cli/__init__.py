"""The ``atoll`` command: one module per command, wired here.

Only this package turns an :class:`~atoll.errors.AtollError` into a message
and an exit code; nothing below it calls ``sys.exit``.
"""

from __future__ import annotations

import click

from atoll import __version__
from atoll.cli.build import build
from atoll.cli.delete import delete
from atoll.cli.deploy import deploy
from atoll.cli.dev import dev
from atoll.cli.init import init
from atoll.cli.rollback import rollback
from atoll.cli.secret import secret
from atoll.cli.serve import serve
from atoll.cli.tail import tail
from atoll.cli.versions import versions
from atoll.cli.kv import kv

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="atoll")
def main() -> None:
    """Run WebAssembly workers the way Cloudflare Workers does, on machines you own."""


for command in (build, delete, deploy, dev, init, kv, rollback, secret, serve, tail, versions):
    main.add_command(command)

