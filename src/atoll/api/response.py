"""``Response``: what a worker's ``fetch`` returns, close to the Fetch API's."""

from __future__ import annotations

import json
from typing import Any

from atoll.api.headers import Headers, HeadersInit

__all__ = ["Response"]

BodyInit = str | bytes | bytearray | memoryview | None


class Response:
    """An HTTP response.

    ``body`` may be ``str`` (sent as UTF-8, ``content-type: text/plain;
    charset=utf-8`` unless set), bytes-like, or ``None``. ``status`` is
    100 to 599.
    """

    __slots__ = ("body", "headers", "status")

    def __init__(
        self, body: BodyInit = None, status: int = 200, headers: HeadersInit = None
    ) -> None:
        if not isinstance(status, int) or not 100 <= status <= 599:
            raise ValueError(f"status must be an int from 100 to 599, got {status!r}")
        self.status = status
        self.headers = Headers(headers)
        if body is None:
            self.body = b""
        elif isinstance(body, str):
            self.body = body.encode("utf-8")
            fields = self.headers._map
            if "content-type" not in fields:  # a valid name and value: set without the checks
                fields["content-type"] = ["text/plain;charset=UTF-8"]
        elif isinstance(body, bytes | bytearray | memoryview):
            self.body = bytes(body)
        else:
            raise TypeError(
                f"Response body must be str, bytes or None, got {type(body).__name__}; "
                "use Response.json(...) for data"
            )

    @classmethod
    def json(cls, data: Any, status: int = 200, headers: HeadersInit = None) -> Response:
        """A JSON response (``content-type: application/json``)."""
        response = cls(json.dumps(data, separators=(",", ":")), status=status, headers=headers)
        response.headers.set("content-type", "application/json")
        return response

    @classmethod
    def redirect(cls, url: str, status: int = 302) -> Response:
        """A redirect to ``url`` (301, 302, 303, 307 or 308)."""
        if status not in (301, 302, 303, 307, 308):
            raise ValueError(f"redirect status must be 301, 302, 303, 307 or 308, got {status}")
        return cls(None, status=status, headers={"location": url})

    @property
    def ok(self) -> bool:
        return 200 <= self.status <= 299

    async def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    async def bytes(self) -> bytes:
        return self.body

    def __repr__(self) -> str:
        return f"<Response {self.status} {len(self.body)} bytes>"
