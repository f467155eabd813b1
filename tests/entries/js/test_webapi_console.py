"""console.* into the host's log (HOST.md), formatted as Node's util.format/inspect (which workerd
also follows; https://developers.cloudflare.com/workers/runtime-apis/console/), in V8."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.entries.js.webapi_harness import WebApi


@pytest.fixture
def js() -> Iterator[WebApi]:
    with WebApi() as api:
        yield api


def test_levels_reach_the_host(js: WebApi) -> None:
    # Workers console: log/info/warn/error/debug each keep their level (one host.log line each).
    js.eval(
        "(console.log('l'), console.info('i'), console.warn('w'), console.error('e'), console.debug('d'))"
    )
    assert js.host.lines == [
        ("log", "l"),
        ("info", "i"),
        ("warn", "w"),
        ("error", "e"),
        ("debug", "d"),
    ]


@pytest.mark.parametrize(
    ("args", "text"),
    [
        # Node util.format: arguments joined by spaces, strings printed raw at top level.
        ("'a', 'b', 1", "a b 1"),
        # Objects and arrays as util.inspect shows them (strings quoted inside).
        ("'a', {b: 1, c: 'x'}", "a { b: 1, c: 'x' }"),
        ("[1, 'a', null, undefined]", "[ 1, 'a', null, undefined ]"),
        # printf-style substitutions when the first argument is a string.
        ("'%s is %d%%', 'x', 5.5", "x is 5.5%"),
        ("'%i|%f|%j', 4.9, '1.5', {a: 1}", '4|1.5|{"a":1}'),
        ("'%c styled', 'color: red'", " styled"),
        # Depth 2 by default, deeper objects elided.
        ("{a: {b: {c: {d: 1}}}}", "{ a: { b: { c: [Object] } } }"),
        ("new Map([['k', 1]]), new Set([2])", "Map(1) { 'k' => 1 } Set(1) { 2 }"),
        ("1n, Symbol('s'), () => 1", "1n Symbol(s) [Function (anonymous)]"),
        ("new Uint8Array(3)", "Uint8Array(3) [ 0, 0, 0 ]"),
        # The bundle's own classes show their state (as Node and workerd show theirs).
        ("new Headers({a: '1'})", "Headers { a: '1' }"),
    ],
)
def test_formatting(js: WebApi, args: str, text: str) -> None:
    assert js.eval(f"__atoll_rt.formatLog([{args}])") == text
    js.eval(f"console.log({args})")
    assert js.host.lines == [("log", text)]


def test_errors_print_their_stack(js: WebApi) -> None:
    # Node inspect: an Error prints as its stack (name: message and frames).
    js.eval("console.error(new TypeError('bad thing'))")
    level, text = js.host.lines[0]
    assert level == "error"
    assert text.startswith("TypeError: bad thing\n    at ")


def test_cyclic_objects(js: WebApi) -> None:
    # Node inspect: a cycle is shown as [Circular *1] instead of recursing.
    assert js.eval("(() => { const a = {}; a.self = a; return __atoll_rt.formatLog([a]); })()") == (
        "<ref *1> { self: [Circular *1] }"
    )


def test_assert_count_group_time(js: WebApi) -> None:
    # WHATWG Console: assert logs "Assertion failed" only when false; count counts per label;
    # group indents; timeEnd reports "label: <ms>ms".
    js.eval(
        "(console.assert(true, 'no'), console.assert(false, 'yes %d', 1), console.count(), console.count(), console.count('x'),"
        " console.group('g'), console.log('inner'), console.groupEnd(), console.log('outer'),"
        " console.time('t'), console.timeEnd('t'))"
    )
    lines = js.host.lines
    assert lines[:7] == [
        ("error", "Assertion failed: yes 1"),
        ("info", "default: 1"),
        ("info", "default: 2"),
        ("info", "x: 1"),
        ("log", "g"),
        ("log", "  inner"),
        ("log", "outer"),
    ]
    level, text = lines[7]
    assert level == "info"
    assert text.startswith("t: ")
    assert text.endswith("ms")


def test_trace_and_dir(js: WebApi) -> None:
    # WHATWG Console: trace logs "Trace: msg" with a stack; dir inspects its argument.
    js.eval("(console.trace('here'), console.dir({a: [1]}))")
    assert js.host.lines[0][1].startswith("Trace: here\n    at ")
    assert js.host.lines[1] == ("log", "{ a: [ 1 ] }")


@pytest.mark.parametrize(
    "make",
    [
        "new Error('boom')",
        "new Error('')",
        "new RangeError('two\\nlines')",
        "(() => { const e = new Error('x'); e.code = 'E1'; return e; })()",
        "new Error('c', {cause: new Error('inner')})",
        "(() => { class MyErr extends Error { constructor(m) { super(m); this.name = 'MyErr'; } } return new MyErr('q'); })()",
    ],
)
def test_errors_print_as_util_inspect_does(js: WebApi, make: str) -> None:
    # Node util.inspect: an Error prints as its stack, with own properties and cause appended.
    # Plain errors skip util.inspect; a format string forces it: both must agree.
    direct, through_inspect = js.eval(
        f"(() => {{ const e = {make}; return [__atoll_rt.formatLog(['x', e]), __atoll_rt.formatLog(['x%s', '', e])]; }})()"
    )
    assert direct == through_inspect
    assert direct.startswith("x ")
