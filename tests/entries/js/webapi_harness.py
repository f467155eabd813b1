"""Runs ``src/atoll/entries/js/webapi.js`` in a real V8 (STPyV8) for the ``test_webapi_*`` tests.

A fresh context per test, with a small Python stand-in for ``__atoll_host`` installed before the
bundle runs (as js-core does, HOST.md); the bundle deletes it. Results come back as JSON through JS
globals, never through a Python callback, so no test leaves a Python object where JS can reach it.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any

import STPyV8

BUNDLE = Path(__file__).resolve().parents[3] / "src" / "atoll" / "entries" / "js" / "webapi.js"
_SOURCE = BUNDLE.read_text(encoding="utf-8")


_ASTRAL = re.compile("[\U00010000-\U0010ffff]")


def js_source(code: str) -> str:
    """``code`` with every code point above U+FFFF written as a surrogate-pair escape.

    STPyV8 hands a Python str to V8 with such code points cut to 16 bits (U+1F600 arrives as
    U+F600), in source code and in values alike; escapes survive (HOST.md).
    """

    def escape(m: re.Match[str]) -> str:
        units = m.group().encode("utf-16-le")
        return "".join(f"\\u{int.from_bytes(units[i : i + 2], 'little'):04x}" for i in (0, 2))

    return _ASTRAL.sub(escape, code)


class FakeHost(STPyV8.JSClass):  # type: ignore[misc]
    """The host functions of HOST.md, recording what the bundle logs."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []
        self.random_calls: list[int] = []

    def log(self, level: str, text: str) -> None:
        self.lines.append((str(level), str(text)))

    def randomBytes(self, n: int) -> str:
        self.random_calls.append(int(n))
        return os.urandom(int(n)).decode("latin-1")

    def now(self) -> float:
        return time.time() * 1000.0


class JSFailed(Exception):
    """JS code threw or a promise rejected: ``name`` and ``message`` of the JS error."""

    def __init__(self, name: str, message: str, stack: str) -> None:
        super().__init__(f"{name}: {message}\n{stack}")
        self.name = name
        self.message = message


# Every context stays alive until the process ends. STPyV8 13.1.201.22 segfaults later, in an
# unrelated eval, when a JSContext whose global object held a Python object is freed after it ran
# enough code to be garbage-collected (seen here after ~90 contexts with the bundle loaded).
_KEEP: list[object] = []


class WebApi:
    """One V8 context with the bundle evaluated. Use as a context manager."""

    def __init__(self) -> None:
        self.host = FakeHost()
        self.ctx = STPyV8.JSContext()
        _KEEP.append((self.ctx, self.host))

    def __enter__(self) -> WebApi:
        self.ctx.__enter__()
        # setattr: a dunder name written in a class body would be name-mangled.
        setattr(self.ctx.locals, "__atoll_host", self.host)
        self.ctx.eval(_SOURCE)
        return self

    def __exit__(self, *exc: object) -> None:
        self.ctx.__exit__(None, None, None)

    def eval(self, expr: str) -> Any:
        """Evaluates the expression ``expr`` synchronously and returns its value through JSON."""
        out = self.ctx.eval(
            "(() => { try { const v = (" + js_source(expr) + ");"
            " return JSON.stringify({ ok: true, value: v === undefined ? null : v }); }"
            " catch (e) { return JSON.stringify({ ok: false, name: e && e.name,"
            " message: e && e.message, stack: String(e && e.stack) }); } })()"
        )
        return _unwrap(str(out))

    def run(self, body: str) -> Any:
        """Runs ``body`` as the body of an async function and returns what it returns (awaited).

        Microtasks run when the eval returns, so any promise chain that needs no timer settles.
        """
        self.ctx.eval(
            "globalThis.__test_result = undefined;"
            "(async () => { " + js_source(body) + " })().then("
            "v => { globalThis.__test_result = JSON.stringify({ ok: true, value: v === undefined ? null : v }); },"
            "e => { globalThis.__test_result = JSON.stringify({ ok: false, name: e && e.name,"
            " message: e && e.message, stack: String(e && e.stack) }); });"
        )
        out = self.ctx.eval("globalThis.__test_result")
        if out is None or isinstance(out, STPyV8.JSNull) or str(out) == "undefined":
            raise AssertionError("the promise did not settle once microtasks ran")
        self.ctx.eval("delete globalThis.__test_result")
        return _unwrap(str(out))

    def fails(self, body: str) -> JSFailed:
        """Runs ``body`` (async) and returns the error it throws; fails the test if it does not."""
        try:
            value = self.run(body)
        except JSFailed as err:
            return err
        raise AssertionError(f"expected an error, got {value!r}")


def _unwrap(out: str) -> Any:
    result = json.loads(out)
    if not result["ok"]:
        raise JSFailed(str(result["name"]), str(result["message"]), str(result["stack"]))
    return result["value"]
