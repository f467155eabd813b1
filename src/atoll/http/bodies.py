"""Request bodies: read when the worker asks, bounded per request and per process.

A worker reads its request's body whole (``await request.body()``), so every
body being read or held costs its size in memory until the request ends. Two
bounds keep a node serving:

- per request, the worker's ``request_body_mb`` (413): checked on the declared
  ``Content-Length`` before the worker runs (``http/app.py``), and counted
  while a body without one is read;
- per process, :class:`BodyBudget` (503): the bytes of every body being read
  or held by a request in flight, summed over the process's event loops. A
  body that would take the sum over the budget is refused *before* its bytes
  are kept — at once when its ``Content-Length`` says it cannot fit, else at
  the chunk that crosses — and a refused request gives back what it held.
  Bytes are counted as they arrive, not as declared: a client that declares
  a large body and sends it slowly holds only what it sent.

A body must keep coming: :data:`BODY_TIMEOUT` seconds without a byte end the
request with 408 (a client that trickles a body cannot hold a request forever).

Memory is given back when the request ends (its response sent, its log line
written), not when the worker drops the bytes: the request object holds them
until then.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from atoll.errors import BodyTooLargeError, RequestError

__all__ = ["DEFAULT_BODY_MEMORY", "BodyBudget", "BodyReader"]

MIB = 1024 * 1024
#: Default bytes of request bodies one process holds at once.
DEFAULT_BODY_MEMORY = 256 * MIB
#: Seconds a request body may go without a byte before the request ends with 408.
BODY_TIMEOUT = 30.0

Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]


class BodyBudget:
    """Bytes of request bodies held by one process. Thread-safe: shared by its event loops.

    Created once per process (one per :class:`~atoll.http.app.AtollApp`).
    """

    def __init__(self, limit: int = DEFAULT_BODY_MEMORY) -> None:
        if limit < 1:
            raise ValueError(f"the body memory budget must be positive, got {limit}")
        self.limit = limit
        self.used = 0
        self.refused = 0
        self._lock = threading.Lock()

    def fits(self, size: int) -> bool:
        """Whether ``size`` more bytes would fit now (nothing is reserved)."""
        return self.used + size <= self.limit

    def take(self, size: int) -> bool:
        """Reserve ``size`` bytes; False (nothing reserved) if that would pass the budget."""
        with self._lock:
            if self.used + size > self.limit:
                return False
            self.used += size
            return True

    def give(self, size: int) -> None:
        """Return ``size`` bytes reserved by :meth:`take`."""
        with self._lock:
            self.used -= size


class BodyReader:
    """Reads one request's body from ASGI ``receive``, within ``limit`` and the ``budget``.

    One per request; :meth:`release` (idempotent) is called when the request ends.
    """

    __slots__ = ("budget", "declared", "held", "limit", "receive", "timeout")

    def __init__(
        self,
        receive: Receive,
        limit: int,
        budget: BodyBudget,
        declared: int | None,
        *,
        timeout: float = BODY_TIMEOUT,
    ) -> None:
        self.receive = receive
        self.limit = limit
        self.budget = budget
        self.declared = declared
        self.timeout = timeout
        self.held = 0

    def _refuse(self) -> RequestError:
        self.release()
        self.budget.refused += 1
        return RequestError(
            f"the node holds {self.budget.limit // MIB} MiB of request bodies, its limit; "
            "this body was refused before it was read",
            status=503,
            hint="retry later, or raise --body-memory-mb",
        )

    def _hold(self, size: int) -> None:
        if not self.budget.take(size):
            raise self._refuse()
        self.held += size

    async def __call__(self) -> bytes:
        """The whole body. Raises :class:`~atoll.errors.BodyTooLargeError` (413) past
        ``limit``, :class:`~atoll.errors.RequestError` 503 past the budget and 408
        when the body stops coming for ``timeout`` seconds."""
        if self.declared is not None and not self.budget.fits(self.declared):
            raise self._refuse()  # before a byte is read
        chunks: list[bytes] = []
        size = 0
        while True:
            try:
                async with asyncio.timeout(self.timeout):
                    message = await self.receive()
            except TimeoutError:
                self.release()
                raise RequestError(
                    f"the request body stopped coming ({self.timeout:g} s without a byte)",
                    status=408,
                    hint="send the body as fast as the network allows",
                ) from None
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                self.release()
                raise BodyTooLargeError(
                    f"request body is over the limit of {self.limit // MIB} MiB "
                    "(refused while reading)"
                )
            if size > self.held:
                self._hold(size - self.held)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    def release(self) -> None:
        """Give back what this body held (once the request is over)."""
        if self.held:
            self.budget.give(self.held)
            self.held = 0
