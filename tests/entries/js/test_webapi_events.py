"""Event, EventTarget (event-target-shim), AbortController and AbortSignal
(https://dom.spec.whatwg.org/), in V8."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.entries.js.webapi_harness import WebApi


@pytest.fixture
def js() -> Iterator[WebApi]:
    with WebApi() as api:
        yield api


def test_event_target_dispatch(js: WebApi) -> None:
    # DOM: listeners run in order with the event; once: true removes after one call;
    # removeEventListener removes.
    assert js.eval(
        "(() => { const t = new EventTarget(); const seen = [];"
        " const a = (e) => seen.push(['a', e.type, e.target === t]);"
        " t.addEventListener('ping', a); t.addEventListener('ping', () => seen.push(['once']), {once: true});"
        " t.dispatchEvent(new Event('ping')); t.dispatchEvent(new Event('ping'));"
        " t.removeEventListener('ping', a); t.dispatchEvent(new Event('ping')); return seen; })()"
    ) == [["a", "ping", True], ["once"], ["a", "ping", True]]


def test_event_prevent_default(js: WebApi) -> None:
    # DOM: dispatchEvent returns false when a cancelable event's default was prevented.
    assert js.eval(
        "(() => { const t = new EventTarget(); t.addEventListener('x', (e) => e.preventDefault());"
        " return [t.dispatchEvent(new Event('x', {cancelable: true})), t.dispatchEvent(new Event('x'))]; })()"
    ) == [False, True]


def test_event_properties(js: WebApi) -> None:
    # DOM Event: type, bubbles/cancelable from init, timeStamp is a number, isTrusted false.
    assert js.eval(
        "(() => { const e = new Event('t', {bubbles: true}); return [e.type, e.bubbles, e.cancelable, typeof e.timeStamp, e.isTrusted, e.defaultPrevented]; })()"
    ) == ["t", True, False, "number", False, False]


def test_event_target_subclass(js: WebApi) -> None:
    # DOM: EventTarget can be subclassed (Workers code does this for its own emitters).
    assert (
        js.eval(
            "(() => { class Bus extends EventTarget {} const b = new Bus(); let got = 0; b.addEventListener('e', () => got++); b.dispatchEvent(new Event('e')); return got; })()"
        )
        == 1
    )


def test_abort_controller(js: WebApi) -> None:
    # DOM: abort() sets aborted, the reason (an AbortError DOMException by default), fires
    # "abort" once and calls onabort.
    assert js.eval(
        "(() => { const ac = new AbortController(); const s = ac.signal; const seen = [];"
        " s.addEventListener('abort', (e) => seen.push(e.type)); s.onabort = () => seen.push('on');"
        " ac.abort(); ac.abort();"
        " return [s.aborted, s.reason instanceof DOMException, s.reason.name, seen]; })()"
    ) == [True, True, "AbortError", ["abort", "on"]]


def test_abort_with_reason_and_throw_if_aborted(js: WebApi) -> None:
    # DOM: abort(reason) keeps the reason; throwIfAborted() throws it.
    err = js.fails(
        "const ac = new AbortController(); ac.abort(new RangeError('why')); ac.signal.throwIfAborted();"
    )
    assert (err.name, err.message) == ("RangeError", "why")
    assert (
        js.eval("(() => { new AbortController().signal.throwIfAborted(); return 'ok'; })()") == "ok"
    )


def test_abort_signal_abort(js: WebApi) -> None:
    # DOM: AbortSignal.abort(reason) is already aborted.
    assert js.eval(
        "[AbortSignal.abort().aborted, AbortSignal.abort().reason.name, AbortSignal.abort('r').reason]"
    ) == [True, "AbortError", "r"]


def test_abort_signal_any(js: WebApi) -> None:
    # DOM: AbortSignal.any follows the first of its signals to abort, with its reason.
    assert js.eval(
        "(() => { const a = new AbortController(); const b = new AbortController(); const s = AbortSignal.any([a.signal, b.signal]);"
        " const before = s.aborted; b.abort('b'); return [before, s.aborted, s.reason]; })()"
    ) == [False, True, "b"]


def test_abort_signal_timeout_uses_set_timeout(js: WebApi) -> None:
    # DOM AbortSignal.timeout(ms): aborts with a TimeoutError DOMException when the timer fires.
    # The bundle has no timers (js-core provides setTimeout): a stand-in runs the callback now.
    assert js.eval(
        "(() => { const calls = []; globalThis.setTimeout = (fn, ms) => { calls.push(ms); fn(); return 1; };"
        " const s = AbortSignal.timeout(25); delete globalThis.setTimeout; return [calls, s.aborted, s.reason.name]; })()"
    ) == [[25], True, "TimeoutError"]


def test_abort_signal_timeout_without_timers_says_so(js: WebApi) -> None:
    # Without a global setTimeout the bundle cannot time out: a TypeError saying why.
    err = js.fails("AbortSignal.timeout(5)")
    assert err.name == "TypeError"
    assert "setTimeout" in err.message


def test_abort_signal_is_not_constructible(js: WebApi) -> None:
    # DOM: new AbortSignal() throws TypeError (Illegal constructor).
    assert js.fails("new AbortSignal()").name == "TypeError"


def test_custom_event_detail(js: WebApi) -> None:
    # DOM CustomEvent: an Event whose detail is init.detail (null by default).
    assert js.run(
        "const t = new EventTarget(); let got; t.addEventListener('x', (e) => { got = e.detail; });"
        "t.dispatchEvent(new CustomEvent('x', {detail: {a: 1}}));"
        "return [got, new CustomEvent('y') instanceof Event, new CustomEvent('y').detail];"
    ) == [{"a": 1}, True, None]
