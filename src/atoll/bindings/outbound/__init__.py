"""Outbound HTTP (subrequests): ``from atoll import fetch`` and the egress policy.

One host path (:mod:`.client`) serves Python entries (:func:`fetch` here),
JavaScript entries (their global ``fetch``) and wasm guests (the ``atoll:http``
import, :mod:`.host`); :mod:`.policy` decides where a worker may connect.
See docs/outbound.md.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from atoll.api import Headers, Request, Response
from atoll.api.headers import HeadersInit
from atoll.bindings.outbound.client import (
    OUTBOUND,
    UPSTREAM,
    SubrequestRecord,
    Subrequests,
    begin,
    current,
    policy_of,
)
from atoll.bindings.outbound.policy import EgressPolicy, address_class

if TYPE_CHECKING:  # imported on the first subrequest (see client.py)
    import httpx

__all__ = [
    "OUTBOUND",
    "UPSTREAM",
    "EgressPolicy",
    "FetchResponse",
    "SubrequestRecord",
    "Subrequests",
    "address_class",
    "begin",
    "current",
    "fetch",
    "policy_of",
]

#: Response headers that describe the wire encoding, not the body a worker reads.
_WIRE_HEADERS = frozenset({"content-encoding", "content-length", "transfer-encoding"})


class FetchResponse(Response):
    """The response of :func:`fetch`: an atoll :class:`Response` plus ``url`` and
    ``redirected``. With ``stream=True`` its body is read on demand (:meth:`iter_bytes`,
    or ``await bytes()`` / ``text()``); otherwise it is already in ``body``."""

    __slots__ = ("_book", "_upstream", "redirected", "url")

    def __init__(
        self,
        status: int,
        headers: HeadersInit,
        url: str,
        redirected: bool,
        body: bytes = b"",
        upstream: tuple[Subrequests, httpx.Response] | None = None,
    ) -> None:
        super().__init__(body, status=status, headers=headers)
        self.url = url
        self.redirected = redirected
        self._upstream = upstream

    async def iter_bytes(self) -> AsyncIterator[bytes]:
        """The body in chunks as they arrive (once; then ``body`` is empty)."""
        if self._upstream is None:
            if self.body:
                yield self.body
            return
        (book, response), self._upstream = self._upstream, None
        async for chunk in book.iter_body(response):
            yield chunk

    async def bytes(self) -> bytes:
        if self._upstream is not None:
            book, response = self._upstream
            self._upstream = None
            self.body = await book.read(response)
        return self.body

    async def text(self) -> str:
        return (await self.bytes()).decode("utf-8", errors="replace")


async def fetch(
    resource: str | Request,
    *,
    method: str | None = None,
    headers: HeadersInit = None,
    body: str | bytes | None = None,
    redirect: str = "follow",
    stream: bool = False,
) -> FetchResponse:
    """Make a subrequest, as Workers' ``fetch(url_or_request, init)``.

    ``resource`` is a URL or an atoll :class:`Request` (its method, headers and
    body are the defaults of the keyword arguments). ``redirect``: ``"follow"``
    (up to 20), ``"manual"`` (return the redirect) or ``"error"``. ``stream=True``
    returns as soon as the headers arrived; read the body with
    ``response.iter_bytes()`` (or ``await response.bytes()``).

    Call it while serving a request (or a scheduled run, or in its
    ``ctx.wait_until`` work). Raises :class:`~atoll.errors.EgressRefusedError`
    when ``[outbound]`` refuses the URL or an address it resolves to,
    :class:`~atoll.errors.SubrequestLimitError` past ``[limits] subrequests``
    and :class:`~atoll.errors.SubrequestError` on network failures, timeouts and
    bodies over ``[limits] subrequest_response_mb``.
    """
    book = current()
    if isinstance(resource, Request):
        url = resource.url
        method = method or resource.method
        if headers is None:
            headers = resource.headers
        if body is None and resource.method not in ("GET", "HEAD"):
            body = await resource.bytes()
    else:
        url = str(resource)
    pairs = Headers(headers).items()
    data = body.encode() if isinstance(body, str) else body
    response, redirected = await book.send(method or "GET", url, pairs, data, redirect=redirect)
    kept = [(k, v) for k, v in response.headers.multi_items() if k.lower() not in _WIRE_HEADERS]
    final = str(response.url)
    if stream:
        return FetchResponse(
            response.status_code, kept, final, redirected, upstream=(book, response)
        )
    content = await book.read(response)
    return FetchResponse(response.status_code, kept, final, redirected, body=content)
