"""The remaining globals: structuredClone, atob/btoa, queueMicrotask, DOMException, navigator
(HTML, Web IDL, Workers docs), and what HOST.md says the bundle defines, in V8."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.entries.js.webapi_harness import BUNDLE, WebApi


@pytest.fixture
def js() -> Iterator[WebApi]:
    with WebApi() as api:
        yield api


# HOST.md "What the bundle defines".
CONTRACT_GLOBALS = [
    "Request",
    "Response",
    "Headers",
    "URL",
    "URLSearchParams",
    "TextEncoder",
    "TextDecoder",
    "TextEncoderStream",
    "TextDecoderStream",
    "atob",
    "btoa",
    "console",
    "crypto",
    "queueMicrotask",
    "structuredClone",
    "AbortController",
    "AbortSignal",
    "ReadableStream",
    "WritableStream",
    "TransformStream",
    "FormData",
    "Blob",
    "File",
    "Event",
    "EventTarget",
    "DOMException",
    "navigator",
]


def test_every_contract_global_exists(js: WebApi) -> None:
    # HOST.md: the globals the bundle defines.
    types = js.eval(f"{CONTRACT_GLOBALS!r}.map((n) => typeof globalThis[n])")
    assert dict(zip(CONTRACT_GLOBALS, types, strict=True)) == {
        n: ("object" if n in ("console", "crypto", "navigator") else "function")
        for n in CONTRACT_GLOBALS
    }


def test_globals_are_not_enumerable_and_can_be_replaced(js: WebApi) -> None:
    # Web IDL: interface objects are writable, configurable, non-enumerable properties of the
    # global; a lazily defined one behaves the same before and after first use.
    assert (
        js.eval(
            "Object.keys(globalThis).filter((k) => ['URL', 'Response', 'console', 'crypto'].includes(k))"
        )
        == []
    )
    assert js.eval("(() => { globalThis.URL = 5; return URL; })()") == 5
    assert js.eval(
        "(() => { const d = Object.getOwnPropertyDescriptor(globalThis, 'Response'); Response; const e = Object.getOwnPropertyDescriptor(globalThis, 'Response'); return [e.writable, e.configurable, e.enumerable]; })()"
    ) == [True, True, False]


def test_not_defined_here(js: WebApi) -> None:
    # HOST.md: fetch, timers, caches, scheduler and global addEventListener belong to js-core.
    assert (
        js.eval(
            "['fetch', 'setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'caches', 'scheduler', 'addEventListener'].map((n) => typeof globalThis[n])"
        )
        == ["undefined"] * 8
    )


def test_navigator_user_agent(js: WebApi) -> None:
    # Workers: navigator.userAgent is "Cloudflare-Workers".
    assert js.eval("navigator.userAgent") == "Cloudflare-Workers"


def test_structured_clone(js: WebApi) -> None:
    # HTML StructuredSerialize: deep copies of objects, arrays, Date, RegExp, Map, Set, typed
    # arrays, errors; cycles kept.
    assert js.eval(
        "(() => { const src = {a: [1, {b: 2}], d: new Date(5), r: /x/gi, m: new Map([[1, 'one']]), s: new Set(['z']), u: new Uint8Array([1, 2]), e: new RangeError('m')};"
        " src.self = src; const c = structuredClone(src);"
        " return [c !== src, c.a[1] !== src.a[1], c.a[1].b, c.d instanceof Date && c.d.getTime(), c.r.source + c.r.flags,"
        " c.m.get(1), c.s.has('z'), Array.from(c.u), c.e instanceof RangeError && c.e.message, c.self === c]; })()"
    ) == [True, True, 2, 5, "xgi", "one", True, [1, 2], "m", True]


def test_structured_clone_rejects_functions_and_symbols(js: WebApi) -> None:
    # HTML: a function or symbol cannot be cloned: DataCloneError DOMException.
    err = js.fails("structuredClone({f() {}})")
    assert err.name == "DataCloneError"
    assert (
        js.eval(
            "(() => { try { structuredClone(Symbol()); } catch (e) { return e instanceof DOMException; } })()"
        )
        is True
    )


def test_structured_clone_transfer(js: WebApi) -> None:
    # HTML: a transferred ArrayBuffer is detached in the source.
    assert js.eval(
        "(() => { const b = new ArrayBuffer(4); const c = structuredClone(b, {transfer: [b]}); return [b.byteLength, c.byteLength]; })()"
    ) == [0, 4]


def test_atob_btoa(js: WebApi) -> None:
    # HTML forgiving-base64: btoa encodes Latin-1; atob ignores ASCII whitespace and missing
    # padding; invalid input or a code point above U+00FF is an InvalidCharacterError.
    assert js.eval("[btoa('hi\\u00ff'), atob(' aGk= '), atob('aGk'), atob('')]") == [
        "aGn/",
        "hi",
        "hi",
        "",
    ]
    err = js.fails("atob('a')")
    assert (
        err.name,
        js.eval("(() => { try { atob('*'); } catch (e) { return e instanceof DOMException; } })()"),
    ) == (
        "InvalidCharacterError",
        True,
    )
    assert js.fails("btoa('\\u0100')").name == "InvalidCharacterError"


def test_queue_microtask(js: WebApi) -> None:
    # HTML: queueMicrotask runs the callback after the current task, before promise continuations
    # queued later; a non-function is a TypeError.
    assert js.run(
        "const order = []; queueMicrotask(() => order.push('micro')); order.push('sync');"
        "await null; await null; return order;"
    ) == ["sync", "micro"]
    assert js.fails("queueMicrotask(1)").name == "TypeError"


def test_queue_microtask_reports_exceptions(js: WebApi) -> None:
    # HTML "report the exception": a throwing callback is logged, not swallowed, and later
    # microtasks still run.
    assert (
        js.run(
            "let after = false; queueMicrotask(() => { throw new Error('inside'); }); queueMicrotask(() => { after = true; });"
            "await null; await null; return after;"
        )
        is True
    )
    assert js.host.lines[0][0] == "error"
    assert js.host.lines[0][1].startswith("Uncaught Error: inside")


def test_dom_exception(js: WebApi) -> None:
    # Web IDL DOMException: name, message, legacy code, an Error subclass with a stack.
    assert js.eval(
        "(() => { const e = new DOMException('msg', 'NotFoundError'); return [e.name, e.message, e.code, e instanceof Error, DOMException.NOT_FOUND_ERR, String(e), typeof e.stack]; })()"
    ) == ["NotFoundError", "msg", 8, True, 8, "NotFoundError: msg", "string"]
    assert js.eval("new DOMException('m').name") == "Error"


def test_rt_binary_helpers(js: WebApi) -> None:
    # HOST.md toBinary/fromBinary: bytes as binary strings; a string is encoded as UTF-8.
    assert js.eval(
        "[__atoll_rt.toBinary(new Uint8Array([0, 255, 65])), __atoll_rt.toBinary(new Uint16Array([0x4142]).buffer), __atoll_rt.toBinary('é'),"
        " Array.from(__atoll_rt.fromBinary('\\u0000\\u00ffA')), __atoll_rt.fromBinary('') instanceof Uint8Array]"
    ) == ["\x00\xffA", "BA", "\xc3\xa9", [0, 255, 65], True]
    assert js.fails("__atoll_rt.toBinary({})").name == "TypeError"


def test_astral_characters_round_trip(js: WebApi) -> None:
    # Encoding: characters above U+FFFF survive body reads and writes (the harness escapes them:
    # STPyV8 cuts them when it passes Python strings to V8).
    assert js.run("return await new Response('😀').text();") == "😀"
    assert (
        js.run("return (await __atoll_rt.readResponse(new Response('😀')))[3];")
        == "\xf0\x9f\x98\x80"
    )


def test_bundle_is_an_ascii_classic_script() -> None:
    # HOST.md: a classic script (no import/export at top level). ASCII only, because STPyV8 cuts
    # code points above U+FFFF in the source it is given.
    text = BUNDLE.read_text(encoding="utf-8")
    code = text.split("\n", 2)[2]  # past the two banner comment lines
    assert all(ord(c) < 0x10000 for c in text)
    assert all(ord(c) < 0x80 for c in code.replace("Jimmy W\u00e4rting", ""))
    assert code.startswith("(()=>{")
    assert "\nexport " not in code
    assert "\nimport " not in code


def test_dom_exceptions_thrown_by_the_packages_are_the_global_class(js: WebApi) -> None:
    # Web IDL: DataCloneError (structuredClone) and InvalidCharacterError (atob) are instances of
    # the global DOMException, whose name is "DOMException".
    assert js.run(
        "const errs = [];"
        "try { structuredClone(() => 1); } catch (e) { errs.push(e); }"
        "try { atob('*'); } catch (e) { errs.push(e); }"
        "return errs.map((e) => [e.name, e instanceof DOMException, e.constructor === DOMException, e.constructor.name]);"
    ) == [
        ["DataCloneError", True, True, "DOMException"],
        ["InvalidCharacterError", True, True, "DOMException"],
    ]


def test_a_worker_redefining_a_lazy_global_keeps_its_definition(js: WebApi) -> None:
    # A global a worker redefines before first use stays the worker's, even after other globals
    # initialise (the bundle hides still-lazy globals while a package loads).
    assert (
        js.eval(
            "(() => { Object.defineProperty(globalThis, 'URL', {value: 'mine', configurable: true, writable: true});"
            " new Response('x'); structuredClone(1); new TextEncoder(); return globalThis.URL; })()"
        )
        == "mine"
    )


def test_self_and_performance(js: WebApi) -> None:
    # Workers: self is the global object; performance.now() is milliseconds since timeOrigin
    # (HR Time), non-decreasing.
    assert js.eval(
        "(() => { const a = performance.now(); const b = performance.now();"
        " return [self === globalThis, typeof performance.timeOrigin, a >= 0, b >= a, Math.abs(performance.timeOrigin + b - Date.now()) < 1000]; })()"
    ) == [True, "number", True, True, True]
