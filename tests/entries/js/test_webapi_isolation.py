"""The bundle leaves no way from worker code to a Python object (HOST.md, SECURITY).

STPyV8 shows a Python object to JS with its ``__class__``, ``__dict__``... : a path to the whole
interpreter. The host object is the only Python object the bundle ever sees; it must be gone from
``globalThis`` and from everything reachable from it once the bundle has run.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import STPyV8

from tests.entries.js.webapi_harness import WebApi

# Walks every object reachable from globalThis: own properties (string and symbol keys, data
# values and accessor functions), values returned by getters on the object itself, and
# prototypes. Collects them in globalThis.__found (an array), with their paths.
WALK = r"""
(() => {
  const seen = new Set();
  const found = [];
  const paths = [];
  const queue = [[globalThis, "globalThis"]];
  const visit = (value, path) => {
    if ((typeof value === "object" && value !== null) || typeof value === "function") {
      if (!seen.has(value)) {
        seen.add(value);
        found.push(value);
        paths.push(path);
        queue.push([value, path]);
      }
    }
  };
  while (queue.length > 0) {
    const [obj, path] = queue.shift();
    let keys = [];
    try { keys = Reflect.ownKeys(obj); } catch { continue; }
    for (const key of keys) {
      const name = `${path}.${String(key)}`;
      let desc;
      try { desc = Reflect.getOwnPropertyDescriptor(obj, key); } catch { continue; }
      if (desc === undefined) continue;
      if ("value" in desc) visit(desc.value, name);
      if (desc.get) {
        visit(desc.get, `${name}<get>`);
        try { visit(Reflect.get(obj, key), name); } catch {}
      }
      if (desc.set) visit(desc.set, `${name}<set>`);
    }
    try { visit(Object.getPrototypeOf(obj), `${path}.__proto__`); } catch {}
  }
  globalThis.__found = found;
  globalThis.__paths = paths;
  return found.length;
})()
"""

# Touches every lazy global and makes the objects a worker meets on a request, so that whatever
# the packages create on first use exists before the walk.
WARM = r"""
(async () => {
  for (const name of Object.getOwnPropertyNames(globalThis)) { try { globalThis[name]; } catch {} }
  const req = __atoll_rt.makeRequest("POST", "http://localhost/x", '[["a","b"]]', "body");
  globalThis.__keep = [
    req, req.signal, await req.clone().formData().catch((e) => e), new Response("x").body,
    await __atoll_rt.readResponse(new Response("y")), new AbortController(), AbortSignal.abort(),
    new FormData(), new Blob(["x"]), new File(["x"], "f"), new URL("http://a/?b=c"),
    new TextDecoderStream(), new TextEncoderStream(), new Event("e"), new EventTarget(),
    await crypto.subtle.digest("SHA-256", new Uint8Array(1)),
    await crypto.subtle.importKey("raw", new Uint8Array(8), {name: "HMAC", hash: "SHA-256"}, false, ["sign"]),
    structuredClone({a: [1]}), new DOMException("m", "AbortError"), atob("YQ=="),
  ];
  console.log("warm", globalThis.__keep[0]);
  try { null.x; } catch (e) { globalThis.__keep.push(e); }
})()
"""


@pytest.fixture
def js() -> Iterator[WebApi]:
    with WebApi() as api:
        yield api


def test_host_object_is_deleted(js: WebApi) -> None:
    # HOST.md: the bundle deletes __atoll_host before any worker code runs.
    assert js.eval("typeof globalThis.__atoll_host") == "undefined"
    assert js.eval("'__atoll_host' in globalThis") is False
    assert js.eval("Object.getOwnPropertyNames(globalThis).filter((n) => n.includes('atoll'))") == [
        "__atoll_rt"
    ]


def test_no_python_object_is_reachable_from_global_this(js: WebApi) -> None:
    # HOST.md SECURITY: everything the worker sees is plain JS. STPyV8 hands a JS value back to
    # Python as a JSObject/JSFunction wrapper, but a Python object as itself: so any element of
    # the walk that comes back as something else is a Python object reachable from JS. (The
    # prototypes of Number, String and Boolean are wrapper objects STPyV8 returns as primitives.)
    js.ctx.eval(WARM)
    count = int(js.ctx.eval(WALK))
    assert count > 500  # the walk reached the bundle's classes, not just a few globals
    found = js.ctx.eval("globalThis.__found")
    paths = js.ctx.eval("globalThis.__paths")
    leaks = []
    for i in range(count):
        value = found[i]
        if not isinstance(value, STPyV8.JSObject | str | int | float | bool):
            leaks.append((str(paths[i]), type(value).__name__))
    assert leaks == []
    # No value anywhere exposes the attributes STPyV8 gives a Python object.
    assert (
        js.eval(
            "globalThis.__found.filter((v) => { try { return '__class__' in v || '__dict__' in v; } catch { return false; } }).length"
        )
        == 0
    )


def test_the_walk_would_see_a_python_object(js: WebApi) -> None:
    # The check above can fail: a Python object put where JS can reach it is found.
    js.ctx.locals.leaked = {"a": 1}
    js.ctx.eval("globalThis.__box = { inner: globalThis.leaked }; delete globalThis.leaked;")
    count = int(js.ctx.eval(WALK))
    found = js.ctx.eval("globalThis.__found")
    paths = js.ctx.eval("globalThis.__paths")
    leaked = [
        str(paths[i])
        for i in range(count)
        if not isinstance(found[i], STPyV8.JSObject | str | int | float | bool)
    ]
    assert "globalThis.__box.inner" in leaked


def test_errors_thrown_by_the_bundle_are_plain_js(js: WebApi) -> None:
    # An error made by the bundle (from a host call path too) is a JS Error, with a JS prototype.
    assert js.run(
        "const errs = [];"
        "try { crypto.getRandomValues(new Float32Array(1)); } catch (e) { errs.push(e); }"
        "try { new Headers({'a b': 1}); } catch (e) { errs.push(e); }"
        "try { await __atoll_rt.readResponse(1); } catch (e) { errs.push(e); }"
        "return errs.map((e) => [e instanceof Error, Object.getPrototypeOf(Object.getPrototypeOf(e)) === Error.prototype || Object.getPrototypeOf(e) === Error.prototype || e instanceof DOMException]);"
    ) == [[True, True], [True, True], [True, True]]
