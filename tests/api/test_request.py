"""Request and QueryParams (src/atoll/api/request.py)."""

from __future__ import annotations

import itertools
from urllib.parse import parse_qsl

import pytest

from atoll.api import Headers, QueryParams, Request
from atoll.errors import BodyTooLargeError


def test_url_parts() -> None:
    request = Request("https://Example.test:8443/a/b%20c?x=1&y=2#frag", method="post")
    assert request.method == "POST"
    assert request.path == "/a/b%20c"
    assert request.host == "Example.test:8443"
    assert request.url_parts.scheme == "https"
    assert request.query.get("y") == "2"
    assert repr(request) == "<Request POST https://Example.test:8443/a/b%20c?x=1&y=2#frag>"


def test_an_empty_path_is_root() -> None:
    assert Request("http://h").path == "/"


def test_headers_from_any_init_and_the_same_object_when_given_headers() -> None:
    headers = Headers({"x-a": "1"})
    assert Request("http://h/", headers=headers).headers is headers
    assert Request("http://h/", headers={"X-A": "1"}).headers.get("x-a") == "1"
    assert Request("http://h/", headers=[("x-a", "1"), ("x-a", "2")]).headers.get("x-a") == "1, 2"
    assert len(Request("http://h/").headers) == 0


def test_remote_addr() -> None:
    assert Request("http://h/").remote_addr is None
    assert Request("http://h/", remote_addr="10.0.0.1").remote_addr == "10.0.0.1"


async def test_body_given_as_str_or_bytes() -> None:
    assert await Request("http://h/", body="héllo").bytes() == "héllo".encode()
    assert await Request("http://h/", body=b"\xff").text() == "\ufffd"  # invalid UTF-8 replaced
    assert await Request("http://h/").bytes() == b""


async def test_the_reader_runs_once_and_the_body_is_kept() -> None:
    calls = 0

    async def reader() -> bytes:
        nonlocal calls
        calls += 1
        return b'{"a": [1, 2]}'

    request = Request("http://h/", method="POST", reader=reader)
    assert await request.json() == {"a": [1, 2]}
    assert await request.text() == '{"a": [1, 2]}'
    assert await request.bytes() == b'{"a": [1, 2]}'
    assert calls == 1


async def test_a_reader_over_the_limit_raises_body_too_large() -> None:
    async def reader() -> bytes:
        raise BodyTooLargeError("request body is over the limit of 1 MiB")

    request = Request("http://h/", reader=reader)
    with pytest.raises(BodyTooLargeError):
        await request.bytes()


async def test_json_of_a_body_that_is_not_json_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="Expecting value"):
        await Request("http://h/", body="not json").json()


def test_query_params() -> None:
    query = QueryParams("a=1&b=&a=2&c=%20x&d")
    assert query.get("a") == "1"
    assert query.get_all("a") == ["1", "2"]
    assert query["b"] == ""
    assert query.get("c") == " x"
    assert query.get("d") == ""  # blank values kept
    assert query.get("missing") is None
    assert query.get("missing", "fallback") == "fallback"
    assert "a" in query
    assert "missing" not in query
    assert len(query) == 5
    assert query.items() == [("a", "1"), ("b", ""), ("a", "2"), ("c", " x"), ("d", "")]
    with pytest.raises(KeyError):
        query["missing"]
    assert repr(QueryParams("a=1")) == "QueryParams([('a', '1')])"


def test_an_empty_query() -> None:
    query = Request("http://h/p").query
    assert len(query) == 0
    assert query.items() == []


@pytest.mark.parametrize(
    ("host", "target", "query"),
    [
        ("localhost:8787", "/compute", "n=1000"),
        ("example.test", "/", ""),
        ("example.test", "/a%20b//c", "x=1&x=2&y"),
        ("example.test", "//double", "q=a?b"),
        ("[::1]:8787", "/v6", "a=1"),  # not plain: split at once, as Request(url) does
        ("a, b", "/two-hosts", ""),
        ("user@host", "/at", ""),
        ("h/extra", "/path", "q"),  # a "/" in Host moves the path, as in Request(url)
        ("h", "/a#frag", "q"),
        ("h", "/tab\there", "q=\t"),
        ("h", "*", ""),
        ("ÿhost", "/latin-1", ""),
    ],
)
def test_from_parts_is_the_request_that_its_url_makes(host: str, target: str, query: str) -> None:
    url = f"http://{host}{target}" + (f"?{query}" if query else "")
    raw = [(b"host", host.encode("latin-1")), (b"X-Mixed", b"1"), (b"x-mixed", b"2")]
    made = Request.from_parts(
        "http", host, target, query, method="post", raw_headers=raw, remote_addr="10.0.0.2"
    )
    expected = Request(url, method="post", headers=Headers.from_raw(raw), remote_addr="10.0.0.2")
    assert made.url == expected.url == url
    assert made.path == expected.path
    assert made.host == expected.host
    assert made.url_parts == expected.url_parts
    assert made.query.items() == expected.query.items()
    assert made.headers == expected.headers
    assert made.headers.get("x-mixed") == "1, 2"
    assert (made.method, made.remote_addr, made.http_version) == ("POST", "10.0.0.2", "1.1")
    assert repr(made) == repr(expected)


def test_from_parts_refuses_a_host_as_urlsplit_does() -> None:
    with pytest.raises(ValueError, match="IPv6"):
        Request("http://[::1/x")
    with pytest.raises(ValueError, match="IPv6"):
        Request.from_parts("http", "[::1", "/x", "", method="GET", raw_headers=[])


async def test_from_parts_reads_its_body_from_the_reader() -> None:
    async def reader() -> bytes:
        return b"body"

    request = Request.from_parts("http", "h", "/", "", method="PUT", raw_headers=[], reader=reader)
    assert await request.text() == "body"
    assert len(request.headers) == 0


def test_query_params_parse_as_parse_qsl_does() -> None:
    alphabet = ["a", "=", "&", ";", "%41", "+", "é", "?", " ", ""]
    for size in range(5):
        for parts in itertools.product(alphabet, repeat=size):
            query = "".join(parts)
            expected = parse_qsl(query, keep_blank_values=True)
            assert QueryParams(query).items() == expected, query
