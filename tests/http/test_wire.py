"""wire_headers: a response checked once before it is sent (src/atoll/http/wire.py).

The app's use of it (error pages, log, tail, metrics) is tested in test_app.py.
"""

from __future__ import annotations

import pytest

from atoll.api import Headers, Response
from atoll.errors import ResponseError
from atoll.http.wire import HOP_BY_HOP, wire_headers


def test_a_plain_response() -> None:
    response = Response("hé", headers=[("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")])
    assert wire_headers(response) == [
        (b"set-cookie", b"a=1"),
        (b"set-cookie", b"b=2"),  # never joined
        (b"content-type", b"text/plain;charset=UTF-8"),
        (b"content-length", b"3"),
    ]


def test_latin_1_and_tab_values_are_sent_as_latin_1() -> None:
    response = Response(b"", headers={"x-a": "caf\xe9\tb"})
    assert wire_headers(response)[0] == (b"x-a", b"caf\xe9\tb")


def test_the_error_status_is_the_callers_and_the_error_has_a_hint() -> None:
    response = Response("x", headers={"content-length": "2"})
    with pytest.raises(ResponseError) as caught:
        wire_headers(response, error_status=502)
    assert caught.value.status == 502
    assert "hint: leave Content-Length out" in str(caught.value)
    with pytest.raises(ResponseError) as again:
        wire_headers(response)
    assert again.value.status == 500


@pytest.mark.parametrize(
    "values",
    [["3", "3"], ["3, 3"], [" 3 "], ["003"]],
    ids=["repeated", "listed", "spaces", "zeros"],
)
def test_one_content_length_however_the_worker_wrote_the_same_number(values: list[str]) -> None:
    response = Response("abc")
    response.headers._map["content-length"] = values
    assert wire_headers(response)[-1] == (b"content-length", b"3")
    assert sum(name == b"content-length" for name, _ in wire_headers(response)) == 1


@pytest.mark.parametrize("value", ["", "-3", "+3", "3.0", "0x3", "3 4", "\u0663", "1" * 19])
def test_a_content_length_that_is_not_one_number_is_refused(value: str) -> None:
    response = Response("abc")
    response.headers._map["content-length"] = [value]
    with pytest.raises(ResponseError, match="is not one number of bytes"):
        wire_headers(response)


def test_hop_by_hop_headers_are_never_sent() -> None:
    response = Response("abc", headers={name: "x" for name in HOP_BY_HOP})
    assert [name for name, _ in wire_headers(response)] == [b"content-type", b"content-length"]


def test_head_and_304_may_describe_a_body_they_do_not_carry() -> None:
    declared = Response(None, headers={"content-length": "1000"})
    assert wire_headers(declared, head=True)[-1] == (b"content-length", b"1000")
    with pytest.raises(ResponseError, match="Content-Length is 1000 but its body has 0 bytes"):
        wire_headers(declared)
    # HEAD with the whole body: the length must still be its length.
    assert wire_headers(Response("abc"), head=True)[-1] == (b"content-length", b"3")
    with pytest.raises(ResponseError):
        wire_headers(Response("abc", headers={"content-length": "9"}), head=True)
    not_modified = Response(None, status=304, headers={"content-length": "1000"})
    assert wire_headers(not_modified)[-1] == (b"content-length", b"1000")
    assert wire_headers(Response(None, status=304)) == []


def test_a_204_has_neither_body_nor_content_length() -> None:
    assert wire_headers(Response(None, status=204)) == []
    assert wire_headers(Response(None, status=204, headers={"content-length": "0"})) == []
    # RFC 9110 §8.6: a 204 never carries one, whatever the worker wrote there.
    for value in ("3", "not a number"):
        assert wire_headers(Response(None, status=204, headers={"content-length": value})) == []
    with pytest.raises(ResponseError, match="a 204 response has no body, but this one has 1 bytes"):
        wire_headers(Response(b"x", status=204))


@pytest.mark.parametrize("status", [100, 101, 199, 600, True])
def test_a_status_that_is_not_final_is_refused(status: int) -> None:
    response = Response()
    response.status = status
    with pytest.raises(ResponseError, match="is not a final HTTP status"):
        wire_headers(response)


def test_headers_replaced_by_a_mapping_are_refused() -> None:
    response = Response()
    response.headers = {"a": "b"}  # type: ignore[assignment]
    with pytest.raises(ResponseError, match=r"not atoll\.Headers"):
        wire_headers(response)


def test_a_name_that_is_not_a_token_is_refused_even_after_a_valid_one_was_cached() -> None:
    assert wire_headers(Response(headers=Headers({"x-ok": "1"})))[0] == (b"x-ok", b"1")
    response = Response()
    response.headers._map["x ok"] = ["1"]
    with pytest.raises(ResponseError, match="'x ok' is not an HTTP token"):
        wire_headers(response)
