"""URL and URLSearchParams (https://url.spec.whatwg.org/), from whatwg-url, in V8."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.entries.js.webapi_harness import WebApi


@pytest.fixture
def js() -> Iterator[WebApi]:
    with WebApi() as api:
        yield api


def test_url_components(js: WebApi) -> None:
    # URL Standard: the URL class's getters.
    assert js.eval(
        "(() => { const u = new URL('https://user:pw@Example.com:8080/p/a?x=1#frag');"
        " return [u.protocol, u.username, u.password, u.host, u.hostname, u.port, u.pathname, u.search, u.hash, u.origin]; })()"
    ) == [
        "https:",
        "user",
        "pw",
        "example.com:8080",
        "example.com",
        "8080",
        "/p/a",
        "?x=1",
        "#frag",
        "https://example.com:8080",
    ]


def test_url_parsing_normalizes(js: WebApi) -> None:
    # URL Standard: default port dropped, dot segments resolved, spaces percent-encoded.
    assert js.eval("new URL('HTTP://a.com:80/x/../y z').href") == "http://a.com/y%20z"


def test_url_relative_to_base(js: WebApi) -> None:
    # URL Standard: new URL(url, base) resolves a relative reference.
    assert js.eval("new URL('../c?d', 'https://h/a/b/').href") == "https://h/a/c?d"


def test_invalid_url_throws_type_error(js: WebApi) -> None:
    # URL Standard: the constructor throws a TypeError on failure; URL.canParse/parse do not throw.
    assert js.fails("new URL('not a url')").name == "TypeError"
    assert js.eval("[URL.canParse('nope'), URL.canParse('http://x/'), URL.parse('nope')]") == [
        False,
        True,
        None,
    ]


def test_idna_host_is_punycoded(js: WebApi) -> None:
    # URL Standard host parser: domain to ASCII (UTS #46) for a non-ASCII host.
    assert js.eval("new URL('http://Bücher.example/').hostname") == "xn--bcher-kva.example"


def test_ipv4_and_ipv6_hosts(js: WebApi) -> None:
    # URL Standard: IPv4 numbers in other forms are normalized; IPv6 is compressed.
    assert js.eval("new URL('http://0x7f.1/').hostname") == "127.0.0.1"
    assert js.eval("new URL('http://[0:0:0:0:0:0:0:1]/').host") == "[::1]"


def test_setters(js: WebApi) -> None:
    # URL Standard: setters re-run the parser for their component.
    assert (
        js.eval(
            "(() => { const u = new URL('http://a/b'); u.pathname = '/c d'; u.search = 'q=1'; u.hash = 'h'; u.port = '81'; return u.href; })()"
        )
        == "http://a:81/c%20d?q=1#h"
    )


def test_search_params_live_with_url(js: WebApi) -> None:
    # URL Standard: url.searchParams is live both ways.
    assert js.eval(
        "(() => { const u = new URL('http://a/?x=1&y=2'); u.searchParams.append('z', 'a b'); u.searchParams.delete('x'); return [u.search, u.searchParams.get('y')]; })()"
    ) == ["?y=2&z=a+b", "2"]


def test_search_params_parsing_and_serializing(js: WebApi) -> None:
    # URL Standard application/x-www-form-urlencoded: '+' is a space, percent-decoding is UTF-8.
    assert js.eval("[...new URLSearchParams('?a=1+2&b=%C3%A9&a=3')]") == [
        ["a", "1 2"],
        ["b", "é"],
        ["a", "3"],
    ]
    assert js.eval("new URLSearchParams({a: 'x y', 'b&': '=/'}).toString()") == "a=x+y&b%26=%3D%2F"


def test_search_params_methods(js: WebApi) -> None:
    # URL Standard: getAll, has(name, value), set, sort (stable, by code units), size.
    assert js.eval(
        "(() => { const p = new URLSearchParams('b=2&a=1&b=3'); const r = [p.getAll('b'), p.has('b', '3'), p.size];"
        " p.set('b', '9'); p.sort(); r.push(p.toString()); return r; })()"
    ) == [["2", "3"], True, 3, "a=1&b=9"]


def test_to_json_and_string(js: WebApi) -> None:
    # URL Standard: toJSON() and stringification give href.
    assert js.eval(
        "JSON.stringify({u: new URL('http://a/b')}) + String(new URL('http://a/c'))"
    ) == ('{"u":"http://a/b"}http://a/c')


def test_url_pattern(js: WebApi) -> None:
    # URL Pattern Standard: named groups, wildcards, test() and exec() over URLs and components.
    assert js.eval(
        "(() => { const p = new URLPattern({pathname: '/books/:id'}); const m = p.exec('https://example.com/books/42?x=1');"
        " return [p.test('https://example.com/books/42'), p.test('https://example.com/films/1'), m.pathname.groups.id, m.search.input,"
        " new URLPattern('https://*.example.com/*').test('https://api.example.com/v1/x'), new URLPattern({pathname: '/a/:rest*'}).exec({pathname: '/a/b/c'}).pathname.groups.rest]; })()"
    ) == [True, False, "42", "x=1", True, "b/c"]


def test_url_pattern_rejects_bad_patterns(js: WebApi) -> None:
    # URL Pattern Standard: an invalid pattern throws TypeError.
    assert js.fails("new URLPattern({pathname: '/(unclosed'})").name == "TypeError"


def test_a_url_parsed_again_is_its_own_copy(js: WebApi) -> None:
    # The bundle keeps the parse of each input string: a URL changed through its setters (path,
    # host, search) leaves the next parse of the same string as the parser gives it.
    assert js.eval(
        "(() => { const s = 'http://[::1]:81/a/b?x=1#f';"
        " const a = new URL(s); a.pathname = '/c'; a.hostname = 'h'; a.searchParams.set('x', '2');"
        " a.hash = ''; const b = new URL(s); b.pathname = b.pathname + '/d';"
        " return [a.href, b.href, new URL(s).href, URL.canParse(s)]; })()"
    ) == ["http://h:81/c?x=2", "http://[::1]:81/a/b/d?x=1#f", "http://[::1]:81/a/b?x=1#f", True]
    # A string that does not parse fails every time.
    assert js.eval(
        "[0, 1].map(() => { try { return new URL('http://a b/').href; } catch (e) { return e.name; } })"
    ) == ["TypeError", "TypeError"]
    assert js.eval("[URL.canParse('http://a b/'), URL.canParse('http://a b/')]") == [False, False]
