"""``ExecutionContext``: the ``ctx`` argument of ``fetch``."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["ExecutionContext"]


class ExecutionContext:
    """Per-request context, as Workers' ``ctx``.

    Created once per request by the runtime. ``wait_until`` work runs after
    the response has been sent; its failures are logged with the request id
    and never change the response.
    """

    __slots__ = ("_log", "_pending", "request_id")

    def __init__(self, request_id: str, log: Callable[[str], None]) -> None:
        self.request_id = request_id
        self._log = log
        self._pending: list[Awaitable[Any]] = []

    def wait_until(self, awaitable: Awaitable[Any]) -> None:
        """Run ``awaitable`` to completion after the response is sent."""
        if not inspect.isawaitable(awaitable):
            raise TypeError(
                f"wait_until() takes a coroutine or other awaitable, got {type(awaitable).__name__}"
            )
        self._pending.append(awaitable)

    def log(self, *parts: object) -> None:
        """A line in this request's log (shown with its request id, and in tail)."""
        self._log(" ".join(str(p) for p in parts))

    def take_pending(self) -> list[Awaitable[Any]]:
        """Hand the ``wait_until`` work to the runtime (called once, after the response)."""
        pending, self._pending = self._pending, []
        return pending
