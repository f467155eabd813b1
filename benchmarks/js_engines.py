"""STPyV8 against mini-racer on a Workers-style fetch handler, driven from Python.

Run from the repository root (needs the ``bench`` extra's ``mini-racer``)::

    python -m benchmarks.js_engines            # ~10 s
    python -m benchmarks.js_engines --quick

Each engine gets the same JS: a tiny ``Response`` class and a module-style
handler ``async fetch(request) { return new Response("hello " + request.url) }``.
One "request" is what atoll does per request: call the handler with a URL, let
its promise settle (microtasks), and read status and body back into Python.
Timed with ``time.process_time_ns`` (CPU of the whole process: mini-racer
hops to its own thread), median of rounds, µs per request. A sync call of a
trivial function and a wasm export call are timed the same way.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

PRELUDE = """
class Response { constructor(body, init) { this.body = String(body); this.status = (init && init.status) || 200; } }
const worker = { async fetch(request) { return new Response("hello " + request.url); } };
globalThis.__state = { done: false, status: 0, body: "" };
globalThis.handle = function (url) {
  const st = globalThis.__state;
  st.done = false;
  worker.fetch({ url }).then((r) => { st.done = true; st.status = r.status; st.body = r.body; });
  return 0;
};
globalThis.add = (a, b) => a + b;
// (module (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add))
const wasm = new Uint8Array([0,97,115,109,1,0,0,0,1,7,1,96,2,127,127,1,127,3,2,1,0,7,7,1,3,97,100,100,0,0,10,9,1,7,0,32,0,32,1,106,11]);
globalThis.wadd = new WebAssembly.Instance(new WebAssembly.Module(wasm)).exports.add;
"""


def _time(fn: Callable[[], object], n: int, rounds: int) -> float:
    samples = []
    for _ in range(rounds):
        t0 = time.process_time_ns()
        for _ in range(n):
            fn()
        samples.append((time.process_time_ns() - t0) / n / 1000)
    return statistics.median(samples)


def bench_stpyv8(n: int, rounds: int) -> dict[str, float]:
    import STPyV8

    isolate = STPyV8.JSIsolate()
    isolate.enter()
    ctx = STPyV8.JSContext()
    ctx.enter()
    ctx.eval(PRELUDE)
    g = ctx.locals
    handle, state, add, wadd = g.handle, g.__state, g.add, g.wadd

    def request() -> object:
        handle("http://localhost/")  # microtasks run when the outermost call returns
        assert state.done
        return (state.status, state.body)

    out = {
        "fetch handler (call + settle + read)": _time(request, n, rounds),
        "sync JS call": _time(lambda: add(1, 2), n, rounds),
        "wasm export call": _time(lambda: wadd(1, 2), n, rounds),
    }
    ctx.leave()
    return out


def bench_mini_racer(n: int, rounds: int) -> dict[str, float]:
    from py_mini_racer import MiniRacer

    ctx = MiniRacer()
    ctx.eval(PRELUDE)

    def request() -> object:
        ctx.call("handle", "http://localhost/")
        return ctx.eval("[__state.done, __state.status, __state.body]")

    out = {
        "fetch handler (call + settle + read)": _time(request, max(n // 20, 50), rounds),
        "sync JS call": _time(lambda: ctx.call("add", 1, 2), max(n // 20, 50), rounds),
        "wasm export call": _time(lambda: ctx.call("wadd", 1, 2), max(n // 20, 50), rounds),
    }
    ctx.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    n, rounds = (2_000, 3) if args.quick else (20_000, 7)
    results = {"STPyV8": bench_stpyv8(n, rounds), "mini-racer": bench_mini_racer(n, rounds)}
    rows = list(results["STPyV8"])
    print(f"| µs CPU per call (median of {rounds}) | STPyV8 | mini-racer | ratio |")
    print("|---|---|---|---|")
    for row in rows:
        a, b = results["STPyV8"][row], results["mini-racer"][row]
        print(f"| {row} | {a:.1f} | {b:.1f} | {b / a:.0f}x |")


if __name__ == "__main__":
    main()
