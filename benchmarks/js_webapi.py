"""What the Web API bundle (``src/atoll/entries/js/webapi.js``) costs a JS worker, in STPyV8.

Run from the repository root::

    python -m benchmarks.js_webapi            # ~15 s
    python -m benchmarks.js_webapi --rounds 5

Per round, a fresh isolate: the process CPU (``time.process_time``) to evaluate the bundle in its
first context, then in a second context of the same isolate (V8's per-isolate compilation cache
keeps the parsed script), then the first use of each group of APIs (the bundle initialises a
package when a worker first touches one of its globals), then a request made and read back the
way the host does it (``__atoll_rt.makeRequest`` → ``new Response`` → ``readResponse``), per call.
Medians over rounds, in ms (µs for the request).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path
from typing import Any

import STPyV8

BUNDLE = Path(__file__).resolve().parents[1] / "src" / "atoll" / "entries" / "js" / "webapi.js"

# As js-core installs it: a JS object over Python callables, never a Python object in `locals`.
MAKE_HOST = """(function (log, randomBytes, now) {
  globalThis.__atoll_host = Object.freeze({
    log: (level, text) => { log(String(level), String(text)); },
    randomBytes: (n) => randomBytes(Number(n)),
    now: () => now(),
  });
})"""

FIRST_USE = {
    "Response + text()": "new Response('x').text()",
    "URL": "new URL('https://example.com/a?b=c').searchParams.get('b')",
    "console.log of an object": "console.log('x', {a: [1, 2]})",
    "TextEncoder/TextDecoder": "new TextDecoder().decode(new TextEncoder().encode('h\u00e9'))",
    "ReadableStream body": "new Response('x').body.getReader()",
    "crypto.subtle.digest": "crypto.subtle.digest('SHA-256', new Uint8Array(8))",
    "FormData + Blob": "new FormData().append('a', new Blob(['b']))",
    "structuredClone": "structuredClone({a: [1]})",
    "URL with an IDNA host (tr46)": "new URL('http://b\u00fccher.example/').host",
}

REQUEST = """(() => {
  const req = __atoll_rt.makeRequest('GET', 'http://localhost:8787/hello', '[["accept","*/*"]]', undefined);
  __atoll_rt.readResponse(new Response('hello ' + req.url, {headers: {'x-a': '1'}})).then((r) => { globalThis.__out = r[3]; });
})"""


def _log(level: str, text: str) -> None:
    pass


def _random_bytes(n: int) -> str:
    return os.urandom(int(n)).decode("latin-1")


def _now() -> float:
    return time.time() * 1000.0


def _cpu_ms(fn: Any, *args: Any) -> float:
    t0 = time.process_time()
    fn(*args)
    return (time.process_time() - t0) * 1000.0


def one_round(source: str, keep: list[Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    isolate = STPyV8.JSIsolate()
    isolate.enter()
    try:
        contexts = [STPyV8.JSContext(), STPyV8.JSContext()]
        keep.extend(contexts)
        for label, ctx in zip(
            ("evaluate (first context of an isolate)", "evaluate (second context)"),
            contexts,
            strict=True,
        ):
            with ctx:
                ctx.eval(MAKE_HOST)(_log, _random_bytes, _now)
                out[label] = _cpu_ms(ctx.eval, source)
        with contexts[1] as ctx:
            for label, code in FIRST_USE.items():
                out[f"first use: {label}"] = _cpu_ms(ctx.eval, code)
            request = ctx.eval(REQUEST)
            keep.append(request)
            for _ in range(200):
                request()
            n = 2000
            t0 = time.process_time()
            for _ in range(n):
                request()
            out["request: makeRequest + Response + readResponse (µs)"] = (
                (time.process_time() - t0) * 1e6 / n
            )
            assert str(ctx.eval("globalThis.__out")) == "hello http://localhost:8787/hello"
    finally:
        isolate.leave()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    source = BUNDLE.read_text(encoding="utf-8")
    # STPyV8 disposes isolates and contexts badly when their Python wrappers die late: keep all.
    keep: list[Any] = []
    rounds = [one_round(source, keep) for _ in range(args.rounds)]
    print(f"webapi.js: {len(source.encode()):,} bytes; median of {args.rounds} rounds, process CPU")
    for key in rounds[0]:
        unit = "" if key.endswith("(µs)") else " ms"
        print(f"  {key:<58} {statistics.median(r[key] for r in rounds):8.2f}{unit}")


if __name__ == "__main__":
    main()
