"""What a worker's Python code sees: Request, Response, Headers, ExecutionContext.

These types know nothing of ASGI or wasm; ``http/`` builds them from the
wire and ``runtime/`` hands them to ``fetch``.
"""

from atoll.api.context import ExecutionContext
from atoll.api.headers import Headers
from atoll.api.request import QueryParams, Request
from atoll.api.response import Response
from atoll.api.scheduled import ScheduledEvent

__all__ = ["ExecutionContext", "Headers", "QueryParams", "Request", "Response", "ScheduledEvent"]
