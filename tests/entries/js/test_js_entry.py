"""JavaScript workers end to end: ``atoll dev`` serving them over a real socket.

The seed article's worker runs verbatim (modules syntax, ``await wasmModule()``,
its top-level-await "singleton" form), the service-worker syntax with bindings
as globals, env (vars, wasm, KV), console into the request log, timers,
waitUntil, relative and text imports, and uncaught exceptions as 500 pages with
the JS stack.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from atoll.errors import WorkerLoadError
from atoll.worker import Runtime, load_worker
from tests.support import REPO, DevServer, start_dev, wat

#: The module the article's code calls: `myFunction(x) = x * x`, `process(x) = 7`.
ARTICLE_WAT = """
(module
  (func (export "myFunction") (param i32) (result i32) local.get 0 local.get 0 i32.mul)
  (func (export "process") (param i32) (result i32) i32.const 7))
"""

#: The article's src/index.js, character for character.
ARTICLE_INDEX_JS = """\
import wasmModule from '../path/to/module.wasm';
export default {
async fetch(request) {
const instance = await wasmModule();
const result = instance.exports.myFunction(42);
return new Response(`Result: ${result}`);
},
};
"""

#: The article's "pre-instantiate at top level" snippet, with the import it needs.
ARTICLE_SINGLETON_JS = """\
import wasmModule from '../path/to/module.wasm';
const instance = await wasmModule(); // Instantiate once at top level
export default {
async fetch(request) {
return new Response(instance.exports.process(request.url));
},
};
"""


def _write(folder: Path, files: dict[str, str | bytes]) -> Path:
    for name, content in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(textwrap.dedent(content) if name.endswith(".toml") else content)
    return folder


def _serve(tmp: Path, files: dict[str, str | bytes]) -> Iterator[DevServer]:
    server = start_dev(_write(tmp, files), "--loops", "2")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def article(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    yield from _serve(
        tmp_path_factory.mktemp("article"),
        {
            "atoll.toml": """
                name = "my-worker"
                main = "src/index.js"
                [wasm_modules]
                MODULE = "path/to/module.wasm"
            """,
            "src/index.js": ARTICLE_INDEX_JS,
            "path/to/module.wasm": wat(ARTICLE_WAT),
        },
    )


def test_the_articles_worker_runs_verbatim(article: DevServer) -> None:
    for _ in range(3):  # first request on each loop makes its isolate; then warm
        response = httpx.get(article.url + "/")
        assert response.status_code == 200
        assert response.text == "Result: 1764"
        assert response.headers["content-type"] == "text/plain;charset=UTF-8"


def test_the_articles_top_level_await_singleton(tmp_path: Path) -> None:
    files: dict[str, str | bytes] = {
        "atoll.toml": 'name = "singleton"\nmain = "src/index.js"\n',
        "src/index.js": ARTICLE_SINGLETON_JS,
        "path/to/module.wasm": wat(ARTICLE_WAT),
    }
    for server in _serve(tmp_path, files):
        assert httpx.get(server.url + "/").text == "7"


def test_the_seed_js_example_answers_with_the_seeds_rust_module() -> None:
    server = start_dev(REPO / "examples" / "seed-js")
    try:
        response = httpx.get(server.url + "/")
        assert response.status_code == 200
        # heavy_compute(42) = sum of i*i for i < 42
        assert response.text == f"Result: {sum(i * i for i in range(42))}"
    finally:
        server.stop()


SERVICE_WORKER_JS = """\
addEventListener("fetch", (event) => {
  event.respondWith(handle(event.request));
});
async function handle(request) {
  const instance = await WebAssembly.instantiate(MODULE, {});
  const direct = new WebAssembly.Instance(MODULE, {});
  const called = await MODULE();
  return new Response(
    `sw ${GREETING} ${instance.exports.myFunction(3)} ${direct.exports.myFunction(4)} ` +
    `${called.exports.myFunction(5)} ${MODULE instanceof WebAssembly.Module}`);
}
"""


def test_service_worker_syntax_with_bindings_as_globals(tmp_path: Path) -> None:
    files: dict[str, str | bytes] = {
        "atoll.toml": """
            name = "sw"
            main = "worker.js"
            [wasm_modules]
            MODULE = "module.wasm"
            [vars]
            GREETING = "hi"
        """,
        "worker.js": SERVICE_WORKER_JS,
        "module.wasm": wat(ARTICLE_WAT),
    }
    for server in _serve(tmp_path, files):
        assert httpx.get(server.url + "/").text == "sw hi 9 16 25 true"


MODULE_WORKER_JS = """\
import { greet } from "./lib/greet.js";
import page from "./page.html";
import raw from "./data.bin";
import wasm from "./module.wasm";

let hits = 0;  // globals persist across requests in one isolate

export default {
  async fetch(request, env, ctx) {
    const url = new URL(request.url);
    hits += 1;
    if (url.pathname === "/env") {
      return Response.json({ greeting: env.GREETING, n: env.COUNT, nested: env.NESTED,
                             wasm: env.MODULE instanceof WebAssembly.Module,
                             kv: typeof env.CACHE.get });
    }
    if (url.pathname === "/imports") {
      const inst = new WebAssembly.Instance(wasm, {});
      return new Response(`${greet("js")} ${page.trim()} ${raw.byteLength} ${inst.exports.myFunction(6)}`);
    }
    if (url.pathname === "/hits") return new Response(String(hits));
    if (url.pathname === "/echo") {
      // Every byte of the body back, the request's head as JSON in a header, and headers the
      // host must keep apart (two Set-Cookie), join (x-many) and pass through (tab, latin-1).
      const body = new Uint8Array(await request.arrayBuffer());
      const headers = new Headers({ "x-head": JSON.stringify([request.method, request.url, [...request.headers]]) });
      headers.append("set-cookie", "a=1");
      headers.append("set-cookie", "b=2");
      headers.append("x-many", "one");
      headers.append("x-many", "two");
      headers.append("x-odd", "tab\tand \u00e9");
      return new Response(body, { status: 207, headers });
    }
    if (url.pathname === "/later") {
      await new Promise((resolve) => setTimeout(resolve, 1));
      return new Response("later", { headers: { "x-later": "1" } });
    }
    if (url.pathname === "/log") {
      console.log("hello from", "js", { a: 1 });
      console.warn("careful");
      return new Response("logged");
    }
    if (url.pathname === "/timer") {
      const t0 = Date.now();
      await new Promise((resolve) => setTimeout(resolve, 30));
      let n = 0;
      await new Promise((resolve) => {
        const id = setInterval(() => { n += 1; if (n === 3) { clearInterval(id); resolve(); } }, 1);
      });
      const cancelled = setTimeout(() => { throw new Error("must not run"); }, 1);
      clearTimeout(cancelled);
      return new Response(`waited ${Date.now() - t0 >= 29} ${n}`);
    }
    if (url.pathname === "/kv") {
      await env.CACHE.put("k", "v1", { metadata: { m: 1 } });
      const text = await env.CACHE.get("k");
      const meta = await env.CACHE.getWithMetadata("k");
      const notJson = await env.CACHE.get("k", "json").catch((e) => e.name);
      const buf = await env.CACHE.get("k", { type: "arrayBuffer" });
      await env.CACHE.put("j", JSON.stringify({ x: [1, 2] }));
      const json = await env.CACHE.get("j", "json");
      const list = await env.CACHE.list({ prefix: "" });
      const many = await env.CACHE.get(["k", "nope"]);
      await env.CACHE.delete("k");
      const gone = await env.CACHE.get("k");
      let bad;
      try { await env.CACHE.put("", "x"); } catch (e) { bad = e.message; }
      return Response.json({ text, meta, notJson, buf: buf.byteLength, json,
                             names: list.keys.map((k) => k.name), complete: list.list_complete,
                             md: list.keys[1].metadata, many: [...many], gone, bad });
    }
    if (url.pathname === "/wait") {
      ctx.waitUntil(new Promise((resolve) => setTimeout(resolve, 20)).then(
        () => env.CACHE.put("waited", "yes")));
      return new Response("sent");
    }
    if (url.pathname === "/waited") return new Response(String(await env.CACHE.get("waited")));
    if (url.pathname === "/wait-settled") {
      ctx.waitUntil(Promise.resolve("already"));
      ctx.waitUntil(new Promise(() => {}));  // never settles, nothing pending
      return new Response("sent");
    }
    if (url.pathname === "/post") {
      const body = await request.text();
      return new Response(`${request.method} ${body} ${request.headers.get("x-test")}`);
    }
    if (url.pathname === "/throw") return thrower();
    if (url.pathname === "/never") return new Promise(() => {});
    if (url.pathname === "/notresponse") return "text";
    if (url.pathname === "/fetch") {
      try { await fetch("http://127.0.0.1:1/"); return new Response("fetched"); }
      catch (e) { return new Response("refused: " + e.message); }
    }
    return new Response("not found", { status: 404 });
  },
};

function thrower() {
  throw new TypeError("boom from js");
}
"""


@pytest.fixture(scope="module")
def module_worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    yield from _serve(
        tmp_path_factory.mktemp("module"),
        {
            "atoll.toml": """
                name = "modules"
                main = "src/index.mjs"
                [wasm_modules]
                MODULE = "src/module.wasm"
                [[kv_namespaces]]
                binding = "CACHE"
                id = "cache"
                [vars]
                GREETING = "hello"
                COUNT = 3
                NESTED = { a = [1, 2] }
            """,
            "src/index.mjs": MODULE_WORKER_JS,
            "src/lib/greet.js": "export function greet(name) { return `hi ${name}`; }\n",
            "src/page.html": "<p>page</p>\n",
            "src/data.bin": b"\x00\x01\x02\x03\xff",
            "src/module.wasm": wat(ARTICLE_WAT),
        },
    )


def test_env_holds_vars_wasm_and_kv(module_worker: DevServer) -> None:
    assert httpx.get(module_worker.url + "/env").json() == {
        "greeting": "hello",
        "n": 3,
        "nested": {"a": [1, 2]},
        "wasm": True,
        "kv": "function",
    }


def test_relative_text_data_and_wasm_imports(module_worker: DevServer) -> None:
    assert httpx.get(module_worker.url + "/imports").text == "hi js <p>page</p> 5 36"


def test_globals_persist_in_a_warm_isolate(module_worker: DevServer) -> None:
    with httpx.Client() as client:  # one keep-alive connection: one loop, one isolate
        first = int(client.get(module_worker.url + "/hits").text)
        second = int(client.get(module_worker.url + "/hits").text)
    assert second == first + 1


def test_console_lines_go_to_the_request_log(module_worker: DevServer) -> None:
    response = httpx.get(module_worker.url + "/log")
    assert response.text == "logged"
    _wait_for(module_worker, "warn: careful")
    assert "hello from js { a: 1 }" in module_worker.log()  # Node's formatting


def test_timers(module_worker: DevServer) -> None:
    assert httpx.get(module_worker.url + "/timer").text == "waited true 3"


def test_kv_api(module_worker: DevServer) -> None:
    got = httpx.get(module_worker.url + "/kv").json()
    assert got["text"] == "v1"
    assert got["meta"] == {"value": "v1", "metadata": {"m": 1}, "cacheStatus": None}
    assert got["notJson"] == "SyntaxError"
    assert got["buf"] == 2
    assert got["json"] == {"x": [1, 2]}
    assert got["names"] == ["j", "k"]
    assert got["complete"] is True
    assert got["md"] == {"m": 1}
    assert got["many"] == [["k", "v1"], ["nope", None]]
    assert got["gone"] is None
    assert "key" in got["bad"].lower()


def test_wait_until_runs_after_the_response(module_worker: DevServer) -> None:
    assert httpx.get(module_worker.url + "/wait").text == "sent"
    for _ in range(100):
        if httpx.get(module_worker.url + "/waited").text == "yes":
            return
        import time

        time.sleep(0.02)
    pytest.fail("waitUntil work never ran")


def test_wait_until_promises_already_settled_or_never_settling(module_worker: DevServer) -> None:
    assert httpx.get(module_worker.url + "/wait-settled").text == "sent"
    _wait_for(module_worker, "a ctx.waitUntil() promise will never settle")


def test_request_method_body_and_headers(module_worker: DevServer) -> None:
    response = httpx.post(module_worker.url + "/post", content=b"payload", headers={"x-test": "t"})
    assert response.text == "POST payload t"


def test_request_and_response_heads_and_bodies_cross_whole(module_worker: DevServer) -> None:
    # Bytes that frame the host's strings (NUL, newline) and every other byte, in both bodies.
    body = bytes(range(256)) + b"\n\x00\r\n"
    response = httpx.post(
        module_worker.url + "/echo?q=a%00b",
        content=body,
        headers=[(b"x-test", b"one\ttwo"), (b"x-empty", b""), (b"x-latin", b"caf\xe9")],
    )
    assert response.status_code == 207
    assert response.content == body
    method, url, headers = json.loads(response.headers["x-head"])
    assert (method, url) == ("POST", module_worker.url + "/echo?q=a%00b")
    sent = dict(headers)
    assert (sent["x-test"], sent["x-empty"], sent["x-latin"]) == ("one\ttwo", "", "caf\xe9")
    assert response.headers.get_list("set-cookie") == ["a=1", "b=2"]
    assert response.headers["x-many"] == "one, two"
    assert response.headers["x-odd"].encode("latin-1") == "tab\tand \u00e9".encode("latin-1")
    assert response.headers["content-length"] == str(len(body))


def test_a_response_that_settles_after_the_dispatch(module_worker: DevServer) -> None:
    # Settled from a timer's run (after the run that dispatched the request), then at once again.
    with httpx.Client() as client:
        for _ in range(3):
            later = client.get(module_worker.url + "/later")
            assert (later.text, later.headers["x-later"]) == ("later", "1")
            assert client.get(module_worker.url + "/hits").status_code == 200


def test_uncaught_exception_is_a_500_with_the_js_stack(module_worker: DevServer) -> None:
    response = httpx.get(module_worker.url + "/throw")
    assert response.status_code == 500
    assert "TypeError: boom from js" in response.text
    assert "thrower" in response.text  # the JS stack, in dev's error page
    assert "index.mjs" in response.text
    assert httpx.get(module_worker.url + "/hits").status_code == 200


def test_a_promise_that_never_settles_ends_the_request(module_worker: DevServer) -> None:
    response = httpx.get(module_worker.url + "/never")
    assert response.status_code == 500
    assert "will never generate a response" in response.text


def test_returning_something_else_than_a_response_is_a_500(module_worker: DevServer) -> None:
    response = httpx.get(module_worker.url + "/notresponse")
    assert response.status_code == 500
    assert "Response" in response.text


def test_fetch_to_a_loopback_address_is_refused(module_worker: DevServer) -> None:
    response = httpx.get(module_worker.url + "/fetch")
    assert response.text.startswith("refused: ")
    assert "a loopback address" in response.text


def test_a_syntax_error_stops_the_load_with_file_and_line(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "atoll.toml": 'name = "bad"\nmain = "index.js"\n',
            "index.js": "export default {\n  fetch( {\n};\n",
        },
    )
    with pytest.raises(WorkerLoadError, match=r"index\.js:\d+"):
        load_worker(tmp_path, runtime=Runtime(cache_dir=False))


def test_throwing_at_top_level_stops_the_load(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "atoll.toml": 'name = "bad"\nmain = "index.js"\n',
            "index.js": 'throw new Error("no config");\nexport default { fetch() {} };\n',
        },
    )
    with pytest.raises(WorkerLoadError, match="no config"):
        load_worker(tmp_path, runtime=Runtime(cache_dir=False))


def test_no_fetch_handler_stops_the_load(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {"atoll.toml": 'name = "bad"\nmain = "index.js"\n', "index.js": "export default {};\n"},
    )
    with pytest.raises(WorkerLoadError, match="fetch"):
        load_worker(tmp_path, runtime=Runtime(cache_dir=False))


def _wait_for(server: DevServer, text: str) -> None:
    import time

    for _ in range(100):
        if text in server.log():
            return
        time.sleep(0.02)
    pytest.fail(f"{text!r} never appeared in the log:\n{server.log()}")


def test_atoll_dev_reloads_a_changed_js_file(tmp_path: Path) -> None:
    import time

    files: dict[str, str | bytes] = {
        "atoll.toml": 'name = "reload"\nmain = "src/index.js"\n',
        "src/index.js": 'import { v } from "./v.js";\nexport default { fetch() { return new Response(v); } };\n',
        "src/v.js": 'export const v = "one";\n',
    }
    for server in _serve(tmp_path, files):
        assert httpx.get(server.url + "/").text == "one"
        (tmp_path / "src" / "v.js").write_text('export const v = "two";\n')  # an imported file
        for _ in range(100):
            if httpx.get(server.url + "/").text == "two":
                break
            time.sleep(0.05)
        else:
            pytest.fail(f"never reloaded:\n{server.log()}")
        for _ in range(6):  # every loop serves the new version
            assert httpx.get(server.url + "/").text == "two"


def test_module_rules_from_the_config(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "atoll.toml": """
                name = "rules"
                main = "src/index.js"
                [[rules]]
                type = "Text"
                globs = ["**/*.md"]
                [[rules]]
                type = "Data"
                globs = ["**/*.txt"]
            """,
            "src/index.js": (
                'import doc from "./doc.md";\nimport raw from "./raw.txt";\n'
                "export default { fetch() { return new Response(`${doc.trim()} "
                "${raw instanceof ArrayBuffer} ${raw.byteLength}`); } };\n"
            ),
            "src/doc.md": "# doc\n",
            "src/raw.txt": "abc",
        },
    )
    worker = load_worker(tmp_path, runtime=Runtime(cache_dir=False))

    async def run() -> str:
        from atoll.api import Request

        result = await worker.handle(Request("http://r/"), "r")
        return result.response.body.decode()

    import asyncio

    # .md is Text by the config's rule; .txt is Data: the config's Data rule comes first
    assert asyncio.run(run()) == "# doc true 3"


def test_text_and_data_blobs_are_globals_of_a_service_worker(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "atoll.toml": """
                name = "blobs"
                main = "worker.js"
                [text_blobs]
                NOTICE = "notice.txt"
                [data_blobs]
                LOGO = "logo.bin"
            """,
            "worker.js": (
                'addEventListener("fetch", (e) => e.respondWith(new Response('
                "`${NOTICE.trim()} ${LOGO instanceof ArrayBuffer} ${new Uint8Array(LOGO)[1]}`)));\n"
            ),
            "notice.txt": "hello blob\n",
            "logo.bin": b"\x00\x07\x09",
        },
    )
    worker = load_worker(tmp_path, runtime=Runtime(cache_dir=False))

    async def run() -> str:
        from atoll.api import Request

        result = await worker.handle(Request("http://b/"), "b")
        return result.response.body.decode()

    import asyncio

    assert asyncio.run(run()) == "hello blob true 7"


def test_js_stacks_name_the_original_files_and_lines(tmp_path: Path) -> None:
    # The bundle runs as one script; esbuild's source map puts frames back in their files.
    _write(
        tmp_path,
        {
            "atoll.toml": 'name = "stack"\nmain = "src/index.js"\n',
            "src/index.js": (
                'import { boom } from "./lib/util.js";\n\nexport default {\n'
                "  async fetch() {\n    return boom();\n  },\n};\n"
            ),
            "src/lib/util.js": '// a comment\nexport function boom() {\n  throw new Error("deep");\n}\n',
        },
    )
    worker = load_worker(tmp_path, runtime=Runtime(cache_dir=False), dev=True)

    async def run() -> tuple[str, list[str]]:
        from atoll.api import Request
        from atoll.errors import ScriptError

        result = await worker.handle(Request("http://s/"), "s")
        assert isinstance(result.error, ScriptError)
        return result.response.body.decode(), list(result.error.frames)

    import asyncio

    page, frames = asyncio.run(run())
    assert frames == ["at boom (src/lib/util.js:3:9)", "at Object.fetch (src/index.js:5:12)"]
    assert "JavaScript stack (innermost first):" in page


def test_a_worker_over_10_mb_compressed_does_not_load(tmp_path: Path) -> None:
    import os

    _write(
        tmp_path,
        {
            "atoll.toml": 'name = "big"\nmain = "index.js"\n',
            "index.js": 'import blob from "./blob.bin";\nexport default { fetch() { return new Response(String(blob.byteLength)); } };\n',
            "blob.bin": os.urandom(11 * 1024 * 1024),  # random: gzip cannot shrink it
        },
    )
    with pytest.raises(WorkerLoadError, match="over the 10 MB limit"):
        load_worker(tmp_path, runtime=Runtime(cache_dir=False))


def test_a_js_response_sets_every_field_a_response_has(tmp_path: Path) -> None:
    """The isolate builds the Response field by field (no __init__): a field added to
    Response must be set there too, or every JS response would lack it."""
    from atoll.api import Request, Response

    _write(
        tmp_path,
        {
            "atoll.toml": 'name = "fields"\nmain = "index.js"\n',
            "index.js": (
                "export default { fetch() { return new Response('made in js', "
                "{ status: 201, headers: { 'x-from': 'js' } }); } };\n"
            ),
        },
    )
    worker = load_worker(tmp_path, runtime=Runtime(cache_dir=False))

    async def run() -> Response:
        result = await worker.handle(Request("http://r/"), "r")
        return result.response

    import asyncio

    response = asyncio.run(run())
    made = Response("made in js", status=201, headers={"x-from": "js"})
    for name in Response.__slots__:
        assert hasattr(response, name), f"a JS response has no {name!r}"
    assert (response.status, response.body) == (made.status, made.body)
    assert response.headers.get("x-from") == "js"
