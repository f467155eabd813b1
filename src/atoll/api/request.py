"""``Request``: what a worker's ``fetch`` receives, close to the Fetch API's."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import SplitResult, parse_qsl, urlsplit

from atoll.api.headers import Headers, HeadersInit

__all__ = ["QueryParams", "Request"]

#: Reads the whole body; raises ``BodyTooLargeError`` past the limit. Called at most once.
BodyReader = Callable[[], Awaitable[bytes]]


class QueryParams:
    """The query string: ``get`` gives the first value, ``get_all`` every value."""

    __slots__ = ("_parsed", "_query")

    def __init__(self, query: str) -> None:
        self._query = query
        self._parsed: list[tuple[str, str]] | None = None  # parsed on first use

    @property
    def _pairs(self) -> list[tuple[str, str]]:
        pairs = self._parsed
        if pairs is None:
            pairs = self._parsed = parse_qsl(self._query, keep_blank_values=True)
        return pairs

    def get(self, name: str, default: str | None = None) -> str | None:
        for key, value in self._pairs:
            if key == name:
                return value
        return default

    def get_all(self, name: str) -> list[str]:
        return [v for k, v in self._pairs if k == name]

    def items(self) -> list[tuple[str, str]]:
        return list(self._pairs)

    def __contains__(self, name: object) -> bool:
        return any(k == name for k, _ in self._pairs)

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __len__(self) -> int:
        return len(self._pairs)

    def __repr__(self) -> str:
        return f"QueryParams({self._pairs!r})"


class Request:
    """An incoming HTTP request.

    ``url`` is the full URL (scheme, host, path, query); ``path`` and ``query``
    are parsed from it. The body is read on the first ``await bytes()`` /
    ``text()`` / ``json()`` and kept, so each may be called more than once.
    """

    __slots__ = (
        "_body",
        "_reader",
        "_split",
        "headers",
        "http_version",
        "method",
        "query",
        "remote_addr",
        "url",
    )

    def __init__(
        self,
        url: str,
        *,
        method: str = "GET",
        headers: HeadersInit = None,
        body: bytes | str | None = None,
        reader: BodyReader | None = None,
        remote_addr: str | None = None,
        http_version: str = "1.1",
    ) -> None:
        self.url = url
        #: The HTTP version the client spoke (``"1.0"``, ``"1.1"``, ``"2"``), as ASGI gives it.
        self.http_version = http_version
        #: The client's address, when the server knows it.
        self.remote_addr = remote_addr
        self.method = method.upper()
        self.headers = headers if isinstance(headers, Headers) else Headers(headers)
        self._split = urlsplit(url)
        self.query = QueryParams(self._split.query)
        self._body: bytes | None = body.encode() if isinstance(body, str) else body
        self._reader = reader

    @property
    def path(self) -> str:
        return self._split.path or "/"

    @property
    def host(self) -> str:
        return self._split.netloc

    @property
    def url_parts(self) -> SplitResult:
        """``urllib.parse.urlsplit(url)``, computed once."""
        return self._split

    async def bytes(self) -> bytes:
        """The whole body. Raises :class:`~atoll.errors.BodyTooLargeError` past the limit."""
        if self._body is None:
            if self._reader is None:
                self._body = b""
            else:
                reader, self._reader = self._reader, None
                self._body = await reader()
        return self._body

    async def text(self) -> str:
        """The body decoded as UTF-8 (invalid bytes replaced)."""
        return (await self.bytes()).decode("utf-8", errors="replace")

    async def json(self) -> Any:
        """The body parsed as JSON; raises ``ValueError`` if it is not JSON."""
        return json.loads(await self.bytes())

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.url}>"
