"""atoll: run WebAssembly workers the way Cloudflare Workers does, on machines you own.

The public API a worker imports::

    from atoll import Response

    async def fetch(request, env, ctx):
        return Response("hello")

and ``from atoll import fetch`` for subrequests (docs/outbound.md).

And atoll as a library (``docs/embedding.md``): ``atoll.asgi(folder)`` is an
ASGI app serving a worker, ``atoll.asgi_many([...])`` several routed by their
``routes``, ``await atoll.load(folder)`` a worker to call from Python. They
are imported on first use, so that ``import atoll`` (every worker does it)
stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from atoll.api import ExecutionContext, Headers, QueryParams, Request, Response, ScheduledEvent
from atoll.errors import AtollError
from atoll.version import __version__

if TYPE_CHECKING:
    from atoll.bindings.outbound import fetch
    from atoll.embed import (
        EmbeddedApp,
        EmbeddedWorker,
        FetchResult,
        ManualClock,
        asgi,
        asgi_many,
        load,
    )

__all__ = [
    "AtollError",
    "EmbeddedApp",
    "EmbeddedWorker",
    "ExecutionContext",
    "FetchResult",
    "Headers",
    "ManualClock",
    "QueryParams",
    "Request",
    "Response",
    "ScheduledEvent",
    "__version__",
    "asgi",
    "asgi_many",
    "fetch",
    "load",
]

_EMBED = frozenset(
    {"EmbeddedApp", "EmbeddedWorker", "FetchResult", "ManualClock", "asgi", "asgi_many", "load"}
)


def __getattr__(name: str) -> Any:
    """The library API (:mod:`atoll.embed`) and ``fetch`` (httpx and the bindings),
    imported when first named."""
    if name in _EMBED:
        from atoll import embed

        return getattr(embed, name)
    if name == "fetch":
        from atoll.bindings.outbound import fetch

        return fetch
    raise AttributeError(f"module 'atoll' has no attribute {name!r}")
