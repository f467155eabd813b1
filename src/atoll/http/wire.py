"""A worker's response as it goes on the wire: checked once, in one place.

Every response the app sends (from a Python, whole-wasm or JavaScript entry,
or a page of atoll's own) goes through :func:`wire_headers` once, just before
it is sent. What a worker wrote either goes out as written or is refused
with a :class:`~atoll.errors.ResponseError` naming the field at fault, which
the app turns into an error page with the reason in the log, tail and
metrics. Nothing a worker returns can make the server raise mid-send.

The rules (see ``docs/limits.md``, "Responses"):

* the status is an ``int`` from 200 to 599 (a 1xx is not a final response);
* header names are HTTP tokens; values are latin-1 text without control
  characters but tab (no CR, LF, NUL, DEL…);
* hop-by-hop headers (``Connection``, ``Keep-Alive``, ``Proxy-Connection``,
  ``TE``, ``Trailer``, ``Transfer-Encoding``, ``Upgrade``) are dropped: the
  server frames the message, not the worker;
* a ``Content-Length`` the worker sets is one number equal to the body's
  length (to a HEAD request, or on a 304, it may describe the body a GET would
  get when the body is empty, RFC 9110 §8.6); exactly one ``Content-Length`` is
  sent;
* a 204 or 304 has no body. A 204 is sent without ``Content-Length`` (RFC 9110
  §8.6 forbids one), whatever the worker wrote there; a 304 (and a response to
  HEAD) keeps the one the worker wrote, and none is made up for it.

atoll's own server (``http/protocol.py``) sends a 304 or HEAD response with its
``Content-Length`` and no body, and keeps the connection alive. Under another
ASGI server (``atoll.asgi``) the app drops the ``Content-Length`` of a 304
(:func:`drop_length`): uvicorn's httptools protocol, for one, would wait for that
many body bytes and fail the response.
"""

from __future__ import annotations

from atoll.api import Headers, Response
from atoll.api.headers import BAD_VALUE, TOKEN
from atoll.errors import ResponseError

__all__ = ["HOP_BY_HOP", "drop_length", "wire_headers"]

#: Headers that describe one connection, not the message (RFC 9110 §7.6.1), plus
#: ``Proxy-Connection``, which some clients still send.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)

#: Names seen valid (names repeat from response to response); bounded.
_GOOD_NAMES: dict[str, bytes] = {}
_MAX_GOOD_NAMES = 1024
#: A Content-Length past this many digits is not a length any body has.
_MAX_LENGTH_DIGITS = 18


def wire_headers(
    response: Response, *, head: bool = False, error_status: int = 500
) -> list[tuple[bytes, bytes]]:
    """The ASGI header list to send for ``response``, ``content-length`` included; names
    lowercase (as ASGI has them).

    ``head``: the request was HEAD (the body is not sent). Raises
    :class:`~atoll.errors.ResponseError` with ``status=error_status`` when the
    response cannot be sent as written; the message names the field at fault.
    Called once per request, by the app, just before sending.
    """

    try:
        return _wire_headers(response, head)
    except ResponseError as exc:
        exc.status = error_status
        raise


def _wire_headers(response: Response, head: bool) -> list[tuple[bytes, bytes]]:
    status = response.status
    if type(status) is not int or not 200 <= status <= 599:
        raise refuse(
            f"the response status {status!r} is not a final HTTP status",
            "a response status is an int from 200 to 599",
        )
    body = response.body
    if type(body) is not bytes:
        raise refuse(
            f"the response body is {type(body).__name__}, not bytes",
            "set the body through Response(body): str, bytes or None",
        )
    headers = response.headers
    if not isinstance(headers, Headers):
        raise refuse(
            f"the response headers are {type(headers).__name__}, not atoll.Headers",
            "change response.headers in place (set, append, delete)",
        )
    out: list[tuple[bytes, bytes]] = []
    declared: list[str] | None = None
    for name, values in headers._map.items():
        raw_name = _GOOD_NAMES.get(name)
        if raw_name is None:
            if not isinstance(name, str) or not TOKEN.fullmatch(name):
                raise refuse(
                    f"response header name {name!r} is not an HTTP token",
                    "header names are letters, digits and !#$%&'*+.^_`|~-",
                )
            raw_name = name.lower().encode("ascii")  # (Headers keeps names lowercase)
            if len(_GOOD_NAMES) < _MAX_GOOD_NAMES:
                _GOOD_NAMES[name] = raw_name
        if name in HOP_BY_HOP:
            continue
        if name == "content-length":
            declared = values
            continue
        for value in values:
            if type(value) is str and value.isascii() and value.isprintable():
                out.append((raw_name, value.encode("ascii")))  # the common case
            else:
                out.append((raw_name, _encode_value(name, value)))
    length = len(body)
    if status in (204, 304) and length:
        raise refuse(
            f"a {status} response has no body, but this one has {length} bytes",
            f"send an empty body with status {status}",
        )
    if status == 204:
        return out  # never a Content-Length on a 204 (RFC 9110 §8.6), even one the worker set
    sent = _declared_length(declared) if declared is not None else None
    if sent is not None and sent != length and not (length == 0 and (head or status == 304)):
        raise refuse(
            f"the response's Content-Length is {sent} but its body has {length} bytes",
            "leave Content-Length out (atoll sets it), or make it the body's length in bytes",
        )
    if status == 304 and sent is None:
        return out  # no guessed Content-Length on a 304: it would describe the 200's body
    out.append((b"content-length", str(length if sent is None else sent).encode("ascii")))
    return out


def drop_length(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """``headers`` (from :func:`wire_headers`) without ``content-length``: a 304 sent
    through an ASGI server other than atoll's own, by the app, once per such response."""
    return [(name, value) for name, value in headers if name != b"content-length"]


def _encode_value(name: str, value: object) -> bytes:
    if not isinstance(value, str):
        raise refuse(
            f"response header {name!r} has a {type(value).__name__} value, not str",
            "header values are text",
        )
    if BAD_VALUE.search(value):
        raise refuse(
            f"response header {name!r} has a control character in its value: {value[:200]!r}",
            "header values are printable text on one line (no CR, LF, NUL or DEL)",
        )
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        raise refuse(
            f"response header {name!r} has a character past U+00FF in its value: {value[:200]!r}",
            "encode non-latin-1 text in a header, e.g. percent-encoding (RFC 8187)",
        ) from None


def _declared_length(values: list[str]) -> int:
    numbers = {part.strip() for value in values for part in str(value).split(",")}
    number = numbers.pop() if len(numbers) == 1 else ""
    if not (number.isascii() and number.isdigit() and len(number) <= _MAX_LENGTH_DIGITS):
        shown = ", ".join(str(v) for v in values)
        raise refuse(
            f"the response's Content-Length {shown[:200]!r} is not one number of bytes",
            "leave Content-Length out (atoll sets it), or make it the body's length in bytes",
        )
    return int(number)


def refuse(message: str, hint: str) -> ResponseError:
    """The error for a response that cannot be sent (its status set by :func:`wire_headers`)."""
    return ResponseError(message, hint=hint)
