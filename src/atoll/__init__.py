"""atoll: run WebAssembly workers the way Cloudflare Workers does, on machines you own.

The public API a worker imports::

    from atoll import Response

    async def fetch(request, env, ctx):
        return Response("hello")
"""

from atoll.api import ExecutionContext, Headers, QueryParams, Request, Response
from atoll.errors import AtollError

__version__ = "0.1.0"

__all__ = [
    "AtollError",
    "ExecutionContext",
    "Headers",
    "QueryParams",
    "Request",
    "Response",
    "__version__",
]
