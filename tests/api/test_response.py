"""Response (src/atoll/api/response.py)."""

from __future__ import annotations

import pytest

from atoll.api import Headers, Response


async def test_a_str_body_is_utf8_text() -> None:
    response = Response("héllo")
    assert response.body == "héllo".encode()
    assert response.headers.get("content-type") == "text/plain;charset=UTF-8"
    assert await response.text() == "héllo"
    assert await response.bytes() == "héllo".encode()
    assert response.status == 200
    assert response.ok


def test_a_str_body_keeps_a_content_type_that_is_set() -> None:
    response = Response("<p>", headers={"Content-Type": "text/html"})
    assert response.headers.get_all("content-type") == ["text/html"]


@pytest.mark.parametrize("body", [b"\x00\xff", bytearray(b"\x00\xff"), memoryview(b"\x00\xff")])
def test_bytes_like_bodies_become_bytes_without_a_content_type(body: bytes) -> None:
    response = Response(body)
    assert response.body == b"\x00\xff"
    assert type(response.body) is bytes
    assert not response.headers.has("content-type")


def test_no_body() -> None:
    response = Response(status=204)
    assert response.body == b""
    assert len(response.headers) == 0
    assert not Response(status=404).ok
    assert repr(Response("ab", status=201)) == "<Response 201 2 bytes>"


def test_a_body_of_another_type_is_refused_with_a_hint() -> None:
    with pytest.raises(TypeError, match=r"got dict; use Response.json"):
        Response({"a": 1})  # type: ignore[arg-type]


@pytest.mark.parametrize("status", [99, 600, 0, -1, "200", 200.0, None])
def test_a_status_outside_100_to_599_is_refused(status: object) -> None:
    with pytest.raises(ValueError, match="status must be an int from 100 to 599"):
        Response(status=status)  # type: ignore[arg-type]


def test_headers_are_copied_from_the_init() -> None:
    headers = Headers({"x-a": "1"})
    response = Response(headers=headers)
    response.headers.append("x-a", "2")
    assert headers.get_all("x-a") == ["1"]
    assert Response(headers=[("Set-Cookie", "a"), ("Set-Cookie", "b")]).headers.get_all(
        "set-cookie"
    ) == ["a", "b"]


def test_invalid_headers_are_refused_when_the_response_is_made() -> None:
    with pytest.raises(ValueError, match="invalid header value"):
        Response("x", headers={"x-a": "a\r\nInjected: 1"})
    with pytest.raises(ValueError, match="invalid header name"):
        Response("x", headers={"bad name": "v"})


async def test_json() -> None:
    response = Response.json({"a": [1, "é"]}, status=201, headers={"x-a": "1"})
    assert response.status == 201
    assert response.body == b'{"a":[1,"\\u00e9"]}'
    assert response.headers.get_all("content-type") == ["application/json"]
    assert response.headers.get("x-a") == "1"


def test_json_of_what_json_cannot_encode_raises() -> None:
    with pytest.raises(TypeError, match="not JSON serializable"):
        Response.json({1, 2})


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirect(status: int) -> None:
    response = Response.redirect("/there", status)
    assert (response.status, response.headers.get("location"), response.body) == (
        status,
        "/there",
        b"",
    )


def test_redirect_defaults_to_302_and_refuses_other_statuses() -> None:
    assert Response.redirect("/x").status == 302
    with pytest.raises(ValueError, match="redirect status must be"):
        Response.redirect("/x", 200)
