"""What every command shares: error reporting and logging setup."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import click
from rich.console import Console
from rich.markup import escape

from atoll.errors import AtollError

__all__ = ["fail_on_errors", "setup_logging"]

F = TypeVar("F", bound=Callable[..., object])
stderr = Console(stderr=True, highlight=False, soft_wrap=True)


@contextmanager
def fail_on_errors() -> Iterator[None]:
    """Print an :class:`AtollError` as ``error: …`` (no traceback) and exit 1."""
    try:
        yield
    except AtollError as exc:
        stderr.print(f"[bold red]error:[/] {escape(exc.message)}", markup=True)
        if exc.hint:
            stderr.print(f"  [dim]hint:[/] {escape(exc.hint)}", markup=True)
        raise click.exceptions.Exit(1) from None


def setup_logging(level: str) -> None:
    """One line per event on stderr: ``HH:MM:SS message``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", datefmt="%H:%M:%S"))
    root = logging.getLogger("atoll")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
