"""What every entry kind becomes: ``await fetch(request, env, ctx)`` → a Response."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from atoll.api import ExecutionContext, Request, Response

if TYPE_CHECKING:
    from atoll.bindings import Env

__all__ = ["FetchHandler"]

#: What every entry kind becomes: ``await fetch(request, env, ctx)`` → a Response.
FetchHandler = Callable[[Request, "Env", ExecutionContext], Awaitable[Response]]
