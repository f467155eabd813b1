"""What every command shares: error reporting, logging setup, and how a worker's config is chosen.

:func:`config_options` adds ``-c/--config FILE`` and ``-e/--env NAME`` to a
command that reads a worker; :func:`load_config` then loads the manifest the
user chose (the folder's own file, or ``FILE``; ``[env.NAME]`` applied) and
prints its notices once.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from atoll.errors import AtollError
from atoll.manifest import Manifest, load_manifest
from atoll.manifest.routes import manifest_routes
from atoll.runtime.logs import LineHandler

if TYPE_CHECKING:
    from rich.console import Console

__all__ = [
    "Stderr",
    "config_options",
    "emphasis",
    "fail_on_errors",
    "load_config",
    "selected_config",
    "setup_logging",
    "stderr",
]

_CONFIG = "atoll.config"
_ENV = "atoll.env"

F = TypeVar("F", bound=Callable[..., object])

#: What a terminal would act on in a plain line and rich drops (bell, backspace, VT, FF, CR).
_CONTROL = dict.fromkeys((7, 8, 11, 12, 13))


class Stderr:
    """The commands' messages on stderr, one line per :meth:`print`.

    A line with rich markup goes through a rich ``Console`` made (and rich imported)
    on its first use; a plain line (``markup=False``) is written as it is, so a command
    that prints only plain lines, as ``atoll dev`` does on its way to serving, never
    imports rich: its import is a good part of a cold start.
    """

    def __init__(self) -> None:
        self._console: Console | None = None

    @property
    def console(self) -> Console:
        """The rich console (made on first use): ``stderr``, no highlighting, no wrapping."""
        if self._console is None:
            from rich.console import Console

            self._console = Console(stderr=True, highlight=False, soft_wrap=True)
        return self._console

    def print(self, text: str, *, markup: bool = True) -> None:
        """Write ``text`` and a newline; ``markup``: ``text`` is rich markup (``[bold]…[/]``)."""
        if markup:
            self.console.print(text, markup=True)
            return
        stream = sys.stderr  # looked up per line: a test may have replaced it
        stream.write(text.translate(_CONTROL) + "\n")
        stream.flush()


stderr = Stderr()


def emphasis(text: str, sgr: str = "1") -> str:
    """``text`` in an ANSI style (``sgr``: "1" bold, "36" cyan) when stderr is a colour
    terminal (not with ``NO_COLOR``, or ``TERM=dumb``), else as it is: styling for a
    plain line that rich is not imported to print."""
    if os.environ.get("FORCE_COLOR"):
        colour = True
    else:
        colour = (
            sys.stderr.isatty()
            and "NO_COLOR" not in os.environ
            and os.environ.get("TERM") != "dumb"
        )
    return f"\x1b[{sgr}m{text}\x1b[0m" if colour else text


def _escape(text: str) -> str:
    from rich.markup import escape  # only with markup: see Stderr

    return escape(text)


@contextmanager
def fail_on_errors() -> Iterator[None]:
    """Print an :class:`AtollError` as ``error: …`` (no traceback) and exit 1."""
    try:
        yield
    except AtollError as exc:
        stderr.print(f"[bold red]error:[/] {_escape(exc.message)}", markup=True)
        if exc.hint:
            stderr.print(f"  [dim]hint:[/] {_escape(exc.hint)}", markup=True)
        raise click.exceptions.Exit(1) from None


def setup_logging(level: str) -> None:
    """One line per event on stderr: ``HH:MM:SS message``."""
    handler = LineHandler(sys.stderr)  # a request's lines in one write (runtime/logs.py)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", datefmt="%H:%M:%S"))
    root = logging.getLogger("atoll")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False


def _remember(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    ctx.meta[_CONFIG if param.name == "config" else _ENV] = value
    return value


def config_options(command: F) -> F:
    """``-c/--config FILE`` and ``-e/--env NAME``, as wrangler spells them.

    Their values are kept on the click context (not passed to the command):
    :func:`load_config` and :func:`selected_config` read them.
    """
    command = click.option(
        "-e",
        "--env",
        "env",
        metavar="NAME",
        expose_value=False,
        callback=_remember,
        help="Use [env.NAME] of the config (the worker is then NAME-ENV unless it sets name).",
    )(command)
    command = click.option(
        "-c",
        "--config",
        "config",
        metavar="FILE",
        type=click.Path(dir_okay=False, path_type=Path),
        expose_value=False,
        callback=_remember,
        help="Config file to read instead of DIR/atoll.toml (or wrangler.json[c]/.toml).",
    )(command)
    return command


def selected_config() -> tuple[Path | None, str | None]:
    """``(--config, --env)`` of the running command (``(None, None)`` outside one)."""
    ctx = click.get_current_context(silent=True)
    if ctx is None:
        return None, None
    return ctx.meta.get(_CONFIG), ctx.meta.get(_ENV)


def load_config(directory: Path, *, check_files: bool = False, notices: bool = True) -> Manifest:
    """The manifest the command's ``-c``/``--env`` select in ``directory``; notices printed once."""
    config, env = selected_config()
    manifest = load_manifest(directory, check_files=check_files, config=config, env=env)
    manifest_routes(manifest)  # a bad route is a problem here too, not only on the node
    ctx = click.get_current_context(silent=True)
    if notices and manifest.notices and ctx is not None and not ctx.meta.get("atoll.noticed"):
        ctx.meta["atoll.noticed"] = True
        for line in manifest.notices:
            stderr.print(f"[yellow]notice:[/] {_escape(line)}", markup=True)
    return manifest
