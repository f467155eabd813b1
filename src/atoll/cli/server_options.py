"""The HTTP server's limits as command-line options, shared by ``atoll dev`` and ``atoll serve``.

Each bound is per serving process; ``docs/limits.md`` says what a client sees past it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from atoll.http.bodies import DEFAULT_BODY_MEMORY, MIB
from atoll.http.server import ServerLimits

__all__ = ["server_limit_options", "server_limits"]

F = TypeVar("F", bound=Callable[..., Any])
_DEFAULTS = ServerLimits()


def server_limit_options(command: F) -> F:
    """Add the limit options; the command receives them as keyword arguments."""
    options = [
        click.option(
            "--max-connections",
            default=_DEFAULTS.max_connections,
            show_default=True,
            type=click.IntRange(1, 1_000_000),
            help="Open client connections per process; past it the longest-idle one is closed.",
        ),
        click.option(
            "--header-timeout",
            default=_DEFAULTS.header_timeout,
            show_default=True,
            type=click.FloatRange(0.1, 3600),
            help="Seconds a client has to send a request's headers (408 past it).",
        ),
        click.option(
            "--keep-alive-timeout",
            default=_DEFAULTS.keep_alive_timeout,
            show_default=True,
            type=click.IntRange(1, 3600),
            help="Seconds an idle keep-alive connection is kept.",
        ),
        click.option(
            "--max-header-kib",
            default=_DEFAULTS.max_head_bytes // 1024,
            show_default=True,
            type=click.IntRange(1, 16 * 1024),
            help="KiB of a request's line and headers together (431 past it).",
        ),
        click.option(
            "--max-headers",
            default=_DEFAULTS.max_headers,
            show_default=True,
            type=click.IntRange(1, 100_000),
            help="Header lines in a request (431 past it).",
        ),
        click.option(
            "--body-memory-mb",
            default=DEFAULT_BODY_MEMORY // MIB,
            show_default=True,
            type=click.IntRange(1, 1 << 20),
            help="MiB of request bodies a process holds at once (503 past it).",
        ),
        click.option(
            "--proxy-headers",
            is_flag=True,
            help="Believe X-Forwarded-For/-Proto from a proxy on 127.0.0.1 (client address, scheme).",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def server_limits(options: dict[str, Any]) -> tuple[ServerLimits, int]:
    """Take the limit options out of ``options``: the server's limits and the body budget in bytes."""
    limits = ServerLimits(
        header_timeout=options.pop("header_timeout"),
        keep_alive_timeout=options.pop("keep_alive_timeout"),
        max_connections=options.pop("max_connections"),
        max_head_bytes=options.pop("max_header_kib") * 1024,
        max_headers=options.pop("max_headers"),
        proxy_headers=options.pop("proxy_headers"),
    )
    return limits, options.pop("body_memory_mb") * MIB
