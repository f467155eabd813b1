"""``Request``: what a worker's ``fetch`` receives, close to the Fetch API's."""

from __future__ import annotations

import json
import re
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
            query = self._query
            if "%" in query or "+" in query:
                pairs = parse_qsl(query, keep_blank_values=True)
            else:  # nothing to unquote: parse_qsl's pairs, without its per-field calls
                pairs = [(n, v) for f in query.split("&") if f for n, _, v in (f.partition("="),)]
            self._parsed = pairs
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

    A request the server made (:meth:`from_parts`) builds its ``url``,
    ``headers`` and ``query`` when the worker first reads them: a worker that
    reads only ``path`` pays for nothing else.
    """

    __slots__ = (
        "_body",
        "_headers",
        "_host",
        "_path",
        "_query",
        "_query_string",
        "_raw_headers",
        "_reader",
        "_scheme",
        "_split",
        "_target",
        "_url",
        "http_version",
        "method",
        "remote_addr",
    )

    _scheme: str
    _host: str
    _target: str

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
        self._url: str | None = url
        #: The HTTP version the client spoke (``"1.0"``, ``"1.1"``, ``"2"``), as ASGI gives it.
        self.http_version = http_version
        #: The client's address, when the server knows it.
        self.remote_addr = remote_addr
        self.method = method.upper()
        self._headers: Headers | None = (
            headers if isinstance(headers, Headers) else Headers(headers)
        )
        self._raw_headers: list[tuple[bytes, bytes]] | None = None
        self._split: SplitResult | None = urlsplit(url)
        self._path: str | None = None
        self._query: QueryParams | None = None
        self._query_string: str | None = None
        self._body: bytes | None = body.encode() if isinstance(body, str) else body
        self._reader = reader

    @classmethod
    def from_parts(
        cls,
        scheme: str,
        host: str,
        target: str,
        query: str,
        *,
        method: str,
        raw_headers: list[tuple[bytes, bytes]],
        reader: BodyReader | None = None,
        remote_addr: str | None = None,
        http_version: str = "1.1",
    ) -> Request:
        """The request the server received: ``url`` is ``scheme://host`` + ``target`` +
        ``?query`` (when ``query`` is not empty), ``headers`` come from ASGI's
        ``raw_headers`` (names lowercased when built). Once per request, by the app.

        The same request as ``Request(url, ...)`` would make, field for field; only
        its ``url``, ``headers`` and ``query`` are built on first use. Raises
        ``ValueError`` as ``urllib.parse.urlsplit`` does for a host it refuses."""
        request = cls.__new__(cls)
        request.http_version = http_version
        request.remote_addr = remote_addr
        request.method = method.upper()
        request._headers = None
        request._raw_headers = raw_headers
        request._query = None
        request._body = None
        request._reader = reader
        request._scheme = scheme
        request._host = host
        request._target = target
        request._query_string = query
        if (
            _PLAIN_HOST.fullmatch(host)
            and _PLAIN_TARGET.fullmatch(target)
            and not (query and _BAD_QUERY.search(query))
        ):
            # urlsplit would give exactly these parts: split only if url_parts is read.
            request._url = None
            request._split = None
            request._path = target
        else:
            url = request._url = _join(scheme, host, target, query)
            request._split = urlsplit(url)
            request._path = None
            request._query_string = None
        return request

    @property
    def url(self) -> str:
        url = self._url
        if url is None:
            url = self._url = _join(
                self._scheme, self._host, self._target, self._query_string or ""
            )
        return url

    @property
    def headers(self) -> Headers:
        headers = self._headers
        if headers is None:
            headers = self._headers = Headers.from_raw(self._raw_headers or ())
        return headers

    @property
    def query(self) -> QueryParams:
        query = self._query
        if query is None:
            string = self._query_string
            query = self._query = QueryParams(self.url_parts.query if string is None else string)
        return query

    @property
    def path(self) -> str:
        path = self._path
        if path is None:
            path = self._path = self.url_parts.path or "/"
        return path

    @property
    def host(self) -> str:
        return self.url_parts.netloc

    @property
    def url_parts(self) -> SplitResult:
        """``urllib.parse.urlsplit(url)``, computed once."""
        split = self._split
        if split is None:
            split = self._split = urlsplit(self.url)
        return split

    def _body_is(self, body: bytes) -> bool:
        """Whether ``body`` is the body this request read (``http/bodies.py``)."""
        return self._body is body

    def _forget_body(self, reader: BodyReader) -> None:
        """Drop the body read; ``reader`` answers a later read (``http/bodies.py``:
        a large body is freed when its request ends)."""
        self._body = None
        self._reader = reader

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


#: A host ``urlsplit`` takes whole as the netloc, unchanged (no port check: urlsplit
#: checks a port only when ``.port`` is read).
_PLAIN_HOST = re.compile(r"[A-Za-z0-9._:-]+")
#: A target ``urlsplit`` gives back whole as the path: no query, fragment, or the
#: tab, CR and LF it strips.
_PLAIN_TARGET = re.compile(r"/[^?#\t\r\n]*")
#: What would make ``urlsplit`` change a query: a fragment, or a character it strips.
_BAD_QUERY = re.compile(r"[#\t\r\n]")


def _join(scheme: str, host: str, target: str, query: str) -> str:
    url = f"{scheme}://{host}{target}"
    return url + "?" + query if query else url
