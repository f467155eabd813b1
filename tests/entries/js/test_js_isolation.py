"""What JavaScript can reach: nothing of Python, and nothing of another worker.

The SECURITY rule of HOST.md, proved from inside a worker: a walk over
everything reachable from ``globalThis``, the handler's arguments (request,
env with every kind of binding, ctx), prototypes, property values and
getters, error objects and stack-trace call sites finds no object that
answers Python's attributes (``__class__``, ``__dict__``…) and no Python
repr; the host objects installed before the bundle are gone. Two workers in
one process (one thread) never see each other's globals.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from atoll.api import Request
from atoll.bindings.kv import kv_bindings
from atoll.bindings.kv.memory import MemoryBackend
from atoll.worker import Runtime, Worker, load_worker
from tests.support import wat

WALK_JS = r"""
const PY_NAMES = ["__class__", "__dict__", "__init__", "__globals__", "__self__", "__module__",
                  "__builtins__", "__subclasses__", "__getattribute__", "__reduce__", "func_globals"];
const REPR = /<(bound method|built-in|function \w+ at|module |class '|[\w.]+ object at 0x)/;

function walk(roots) {
  const seen = new Set();
  const queue = [...roots];
  const found = [];
  let count = 0;
  const visit = (value, path) => {
    if ((typeof value !== "object" && typeof value !== "function") || value === null) return;
    if (seen.has(value)) return;
    seen.add(value);
    queue.push([value, path]);
  };
  while (queue.length && count < 50000) {
    const [obj, path] = queue.shift();
    count += 1;
    let python = false;
    for (const name of PY_NAMES) {
      let got;
      try { got = obj[name]; } catch (e) { continue; }
      if (got !== undefined) { found.push(`${path}.${name}`); python = true; }
    }
    if (python) continue;  // every attribute of a Python object is a new wrapper: stop here
    try {
      const text = typeof obj === "function" ? Function.prototype.toString.call(obj) : String(obj);
      if (REPR.test(text)) found.push(`${path} prints as ${text.slice(0, 60)}`);
    } catch (e) {}
    let keys = [];
    try { keys = Reflect.ownKeys(obj); } catch (e) {}
    for (const key of keys) {
      let desc;
      try { desc = Object.getOwnPropertyDescriptor(obj, key); } catch (e) { continue; }
      if (!desc) continue;
      const sub = `${path}.${String(key)}`;
      if ("value" in desc) visit(desc.value, sub);
      if (desc.get) {
        visit(desc.get, sub + "<get>");
        try { visit(Reflect.apply(desc.get, obj, []), sub); } catch (e) {}
      }
      if (desc.set) visit(desc.set, sub + "<set>");
    }
    try { visit(Object.getPrototypeOf(obj), path + ".__proto__"); } catch (e) {}
  }
  return { found, count };
}

function callSites(fn) {
  // Every frame's function and receiver while JS runs inside console.log and KV calls.
  const out = [];
  const original = Error.prepareStackTrace;
  Error.prepareStackTrace = (err, sites) => {
    for (const s of sites) { out.push(s.getFunction(), s.getThis()); }
    return "";
  };
  try { fn(); } finally { Error.prepareStackTrace = original; }
  return out.filter((x) => x !== undefined && x !== null);
}

export default {
  async fetch(request, env, ctx) {
    const hostGone = ["__atoll_host", "__atoll_core_host", "__atoll_module"].filter((n) => n in globalThis);
    const probe = { toString() { new Error("x").stack; return "probe"; } };
    const sites = callSites(() => { console.log(probe); new Error("y").stack; });
    let thrown;
    try { await env.CACHE.put("", "x"); } catch (e) { thrown = e; }
    const roots = [[globalThis, "globalThis"], [request, "request"], [env, "env"], [ctx, "ctx"],
                   [thrown, "kvError"], [new Error("e"), "error"], [sites, "callSites"],
                   [(function () {}).constructor("return this")(), "Function('return this')"],
                   [env.MODULE, "env.MODULE"], [await env.MODULE(), "instance"]];
    const { found, count } = walk(roots);
    const run = typeof globalThis.__atoll_run === "function" ? globalThis.__atoll_run() : "absent";
    return Response.json({ hostGone, found, count, run: String(run) });
  },
};
"""


def _worker(folder: Path, source: str, name: str, runtime: Runtime) -> Worker:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "atoll.toml").write_text(
        f'name = "{name}"\nmain = "index.js"\n[wasm_modules]\nMODULE = "m.wasm"\n'
        '[[kv_namespaces]]\nbinding = "CACHE"\nid = "c"\n[vars]\nV = { a = 1 }\n'
    )
    (folder / "index.js").write_text(source)
    (folder / "m.wasm").write_bytes(wat('(module (func (export "f") (result i32) i32.const 1))'))
    return load_worker(
        folder, runtime=runtime, extra_bindings=kv_bindings(MemoryBackend(), default_cache_ttl=None)
    )


def test_no_python_object_is_reachable_from_a_worker(tmp_path: Path) -> None:
    worker = _worker(tmp_path / "walk", WALK_JS, "walk", Runtime(cache_dir=False))

    async def run() -> dict[str, object]:
        result = await worker.handle(Request("http://w/"), "walk")
        assert result.response.status == 200, result.response.body.decode()
        data: dict[str, object] = json.loads(result.response.body)
        return data

    got = asyncio.run(run())
    assert got["hostGone"] == []
    assert got["found"] == []
    assert isinstance(got["count"], int)
    assert 1000 < got["count"] < 50000  # it covered the globals, and finished
    assert got["run"] == "undefined"  # the core's door does nothing when called from the worker


SETTER_JS = """
export default {
  async fetch(request) {
    const before = typeof globalThis.shared;
    globalThis.shared = "from " + new URL(request.url).host;
    Object.prototype.polluted = "yes";
    return new Response(`${before} ${globalThis.shared} ${({}).polluted}`);
  },
};
"""

READER_JS = """
export default {
  async fetch(request) {
    return new Response(`${typeof globalThis.shared} ${({}).polluted}`);
  },
};
"""


def test_one_workers_globals_are_invisible_to_another(tmp_path: Path) -> None:
    runtime = Runtime(cache_dir=False)
    setter = _worker(tmp_path / "a", SETTER_JS, "a", runtime)
    reader = _worker(tmp_path / "b", READER_JS, "b", runtime)

    async def run() -> list[str]:
        out = []
        for worker in (setter, reader, setter, reader):  # same thread, same event loop
            result = await worker.handle(Request("http://a/"), "x")
            out.append(result.response.body.decode())
        return out

    # The setter's own isolate keeps its globals (a warm isolate); the reader never sees them.
    assert asyncio.run(run()) == [
        "undefined from a yes",
        "undefined undefined",
        "string from a yes",
        "undefined undefined",
    ]


NEGATIVE_CONTROL = """
import json, sys
import atoll.entries.js.v8  # flags first
import STPyV8

walk_js = sys.stdin.read()
class Leaky:
    pass
isolate = STPyV8.JSIsolate()
isolate.enter()
context = STPyV8.JSContext()
context.enter()
context.eval(walk_js.split("export default")[0])
context.eval("(function (o) { globalThis.leak = { inner: o }; })")(Leaky())
print(json.dumps(context.eval("JSON.stringify(walk([[globalThis, 'globalThis']]).found)")))
"""


def test_the_walk_finds_a_python_object_when_one_is_there() -> None:
    # Negative control, in a process of its own: a Python object put on purpose into an
    # isolate is found by the same walk (so an empty result above means something).
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-c", NEGATIVE_CONTROL],
        input=WALK_JS,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    found = json.loads(json.loads(proc.stdout.strip().splitlines()[-1]))
    assert "globalThis.leak.inner.__class__" in found
