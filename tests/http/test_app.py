"""The ASGI app in process (src/atoll/http/app.py, src/atoll/http/wire.py).

Requests go through httpx's ``ASGITransport`` (or straight ASGI calls where the
transport hides what is tested); one test at the end serves a CGI worker over a
real socket, where uvicorn's own checks would have refused what the app sent.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from atoll.control.tail import event
from atoll.errors import ResponseError
from atoll.http.app import AtollApp, Router, SingleWorker
from atoll.http.wire import HOP_BY_HOP
from atoll.runtime.outcome import Outcome
from atoll.worker import Result, Runtime, Worker, load_worker
from tests.support import StartDev, WorkerFactory, wat

# --- fixtures -------------------------------------------------------------------------


@dataclass
class Seen:
    """What the app's result hook saw (the metrics and tail hooks of a node are such hooks)."""

    results: list[tuple[Worker | None, str, str, Result, float]] = field(default_factory=list)

    def __call__(
        self, worker: Worker | None, method: str, url: str, result: Result, wall_ms: float
    ) -> None:
        self.results.append((worker, method, url, result, wall_ms))

    @property
    def last(self) -> Result:
        return self.results[-1][3]


@dataclass
class Served:
    client: httpx.AsyncClient
    app: AtollApp
    seen: Seen
    worker: Worker


Serve = Callable[..., "Served"]


@pytest.fixture
async def clients() -> AsyncIterator[list[httpx.AsyncClient]]:
    opened: list[httpx.AsyncClient] = []
    yield opened
    for client in opened:
        await client.aclose()


@pytest.fixture
def serve(clients: list[httpx.AsyncClient]) -> Callable[..., Served]:
    def make(worker: Worker, *, dev: bool = False, router: Router | None = None) -> Served:
        seen = Seen()
        app = AtollApp(router or SingleWorker(worker), dev=dev, on_result=[seen])
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, client=("10.9.8.7", 5555)),
            base_url="http://app.test",
        )
        clients.append(client)
        return Served(client, app, seen, worker)

    return make


PythonWorker = Callable[..., Worker]
CgiWorker = Callable[[bytes], Worker]


@pytest.fixture
def python_worker(make_worker: WorkerFactory, runtime: Runtime) -> PythonWorker:
    """A Python worker whose ``fetch`` body is ``source`` (``request`` and ``Response`` in scope)."""

    def make(source: str, *, limits: str = "", dev: bool = False) -> Worker:
        body = "\n".join("    " + line for line in source.strip().splitlines())
        code = f"from atoll import Response\n\nasync def fetch(request, env, ctx):\n{body}\n"
        return load_worker(make_worker(code, limits=limits), runtime=runtime, dev=dev)

    return make


def cgi_program(output: bytes) -> bytes:
    """A WASI program that writes ``output`` to stdout and exits 0."""
    data = "".join(f"\\{b:02x}" for b in output)
    return wat(
        f"""
        (module
          (import "wasi_snapshot_preview1" "fd_write"
            (func $fd_write (param i32 i32 i32 i32) (result i32)))
          (memory (export "memory") 1)
          (data (i32.const 64) "{data}")
          (func (export "_start")
            (i32.store (i32.const 0) (i32.const 64))
            (i32.store (i32.const 4) (i32.const {len(output)}))
            (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
        """
    )


@pytest.fixture
def cgi_worker(tmp_path: Path, runtime: Runtime) -> CgiWorker:
    counter = iter(range(1000))

    def make(output: bytes) -> Worker:
        root = tmp_path / f"cgi{next(counter)}"
        (root / "build").mkdir(parents=True)
        (root / "build" / "app.wasm").write_bytes(cgi_program(output))
        (root / "atoll.toml").write_text('name = "cgi"\nmain = "build/app.wasm"\n')
        return load_worker(root, runtime=runtime)

    return make


def lines_of(caplog: pytest.LogCaptureFixture, request_id: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if request_id in r.getMessage()]


# --- serving ---------------------------------------------------------------------------


async def test_a_request_is_served_and_logged_once(
    serve: Serve, python_worker: PythonWorker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "atoll.request")
    served = serve(
        python_worker(
            'ctx.log("hi from", request.method)\n'
            "return Response(f\"{request.url} {request.remote_addr} {request.headers.get('x-a')}\")"
        )
    )
    response = await served.client.get("/p/a?q=1", headers={"X-A": "b"})
    assert response.status_code == 200
    assert response.text == "http://app.test/p/a?q=1 10.9.8.7 b"
    assert response.headers.get_list("content-length") == [str(len(response.content))]
    result = served.seen.last
    assert result.outcome is Outcome.OK
    assert result.error is None
    log = lines_of(caplog, result.request_id)
    assert log[0].startswith("GET /p/a?q=1 200 ok ")
    assert log[0].endswith(f"id={result.request_id}")
    assert log[1] == f"  [{result.request_id}] hi from GET"
    worker, method, url, _, wall_ms = served.seen.results[-1]
    assert (worker, method, url) == (served.worker, "GET", "http://app.test/p/a?q=1")
    assert wall_ms > 0


async def test_head_gets_the_headers_without_the_body(
    serve: Serve, python_worker: PythonWorker
) -> None:
    served = serve(python_worker('return Response("twelve bytes")'))
    response = await served.client.head("/")
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["content-length"] == "12"


async def test_no_route_is_a_404(serve: Serve, python_worker: PythonWorker) -> None:
    class Nowhere:
        def match(self, host: str, path: str) -> Worker | None:
            return None

    served = serve(python_worker('return Response("x")'), router=Nowhere())
    response = await served.client.get("/missing")
    assert response.status_code == 404
    assert "no route matched http://app.test/missing" in response.text
    assert served.seen.last.outcome is Outcome.REFUSED
    assert served.seen.results[-1][0] is None


async def test_a_declared_body_over_the_limit_is_a_413_before_the_worker_runs(
    serve: Serve, python_worker: PythonWorker
) -> None:
    served = serve(python_worker('raise AssertionError("ran")', limits="request_body_mb = 1"))
    response = await served.client.post("/", content=b"x" * (1024 * 1024 + 1))
    assert response.status_code == 413
    assert "over the limit of 1 MiB" in response.text
    assert served.seen.last.outcome is Outcome.REFUSED


async def test_a_streamed_body_over_the_limit_is_a_413_while_read(
    python_worker: PythonWorker,
) -> None:
    worker = python_worker(
        "await request.bytes()\nreturn Response('read')", limits="request_body_mb = 1"
    )
    chunks = [b"x" * 600_000, b"x" * 600_000, b""]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        chunk = chunks.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(dict(message))

    scope = {"type": "http", "method": "POST", "path": "/", "headers": [], "query_string": b""}
    await AtollApp(SingleWorker(worker))(scope, receive, send)
    assert sent[0]["status"] == 413
    assert b"refused while reading" in sent[1]["body"]
    assert chunks == [b""]  # the rest was never read


async def test_a_get_framed_without_a_body_reads_nothing(python_worker: PythonWorker) -> None:
    """RFC 9112 §6.3: an HTTP/1 request with neither Content-Length nor Transfer-Encoding has
    no body. A GET or HEAD like that gets ``b""`` without a reader (receive() is not called);
    one that declares a body, or a POST, is read as before."""
    worker = python_worker("return Response(repr(await request.bytes()))")
    received: list[str] = []

    async def receive() -> dict[str, Any]:
        received.append("receive")
        return {"type": "http.request", "body": b"abc", "more_body": False}

    async def serve(method: str, headers: list[tuple[bytes, bytes]], version: str) -> bytes:
        sent: list[dict[str, Any]] = []

        async def send(message: MutableMapping[str, Any]) -> None:
            sent.append(dict(message))

        scope = {
            "type": "http",
            "method": method,
            "path": "/",
            "headers": [(b"host", b"app.test"), *headers],
            "query_string": b"",
            "http_version": version,
        }
        await AtollApp(SingleWorker(worker))(scope, receive, send)
        assert sent[0]["status"] == 200
        return bytes(sent[1]["body"])

    assert await serve("GET", [], "1.1") == b"b''"
    assert await serve("GET", [], "1.0") == b"b''"
    assert received == []
    assert await serve("GET", [(b"content-length", b"3")], "1.1") == b"b'abc'"
    assert await serve("GET", [(b"Transfer-Encoding", b"chunked")], "1.1") == b"b'abc'"
    assert await serve("POST", [], "1.1") == b"b'abc'"
    assert await serve("GET", [], "2") == b"b'abc'"  # HTTP/2 frames bodies itself
    assert len(received) == 4


async def test_error_pages_dev_and_serve(python_worker: PythonWorker, serve: Serve) -> None:
    source = 'raise RuntimeError("boom in fetch")'
    plain = await serve(python_worker(source)).client.get("/")
    assert plain.status_code == 500
    assert "boom" not in plain.text  # serve: no details to the client
    assert plain.text.startswith("500 Internal Server Error\nrequest id: ")
    assert plain.headers["atoll-request-id"] in plain.text
    dev = await serve(python_worker(source, dev=True), dev=True).client.get("/")
    assert dev.status_code == 500
    assert "RuntimeError: boom in fetch" in dev.text
    assert "Traceback" in dev.text


async def test_a_failing_result_hook_does_not_fail_the_request(
    python_worker: PythonWorker, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: object) -> None:
        raise RuntimeError("hook broke")

    seen = Seen()
    app = AtollApp(SingleWorker(python_worker('return Response("ok")')), on_result=[broken, seen])
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://a"
    ) as client:
        assert (await client.get("/")).text == "ok"
    assert len(seen.results) == 1  # the next hook still ran
    assert "on_result hook failed" in caplog.text


async def test_wait_until_runs_after_the_response(
    make_worker: WorkerFactory, runtime: Runtime
) -> None:
    code = """
from atoll import Response
DONE = []

async def later():
    DONE.append("later")

async def fetch(request, env, ctx):
    ctx.wait_until(later())
    return Response(str(len(DONE)))
"""
    worker = load_worker(make_worker(code), runtime=runtime)
    app = AtollApp(SingleWorker(worker))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://a"
    ) as client:
        assert (await client.get("/")).text == "0"
        assert (await client.get("/")).text == "1"


async def test_lifespan_runs_the_hooks_in_order() -> None:
    calls: list[str] = []

    async def hook(name: str) -> None:
        calls.append(name)

    async def up() -> None:
        await hook("up")

    async def down() -> None:
        await hook("down")

    app = AtollApp(SingleWorker(None), on_startup=[up], on_shutdown=[down])  # type: ignore[arg-type]
    incoming = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[str] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0)

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message["type"])

    await app({"type": "lifespan"}, receive, send)
    assert calls == ["up", "down"]
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


# --- responses a worker cannot have sent as written -------------------------------------


async def test_a_content_length_the_worker_sets_right_is_sent_once(
    serve: Serve, python_worker: PythonWorker
) -> None:
    served = serve(python_worker('return Response("hello", headers={"Content-Length": "5"})'))
    response = await served.client.get("/")
    assert (response.status_code, response.text) == (200, "hello")
    assert response.headers.get_list("content-length") == ["5"]


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({"Content-Length": "99"}, "Content-Length is 99 but its body has 5 bytes"),
        ({"Content-Length": "abc"}, "Content-Length 'abc' is not one number"),
        ({"Content-Length": "\u00b2"}, "is not one number"),
        ({"Content-Length": "5, 6"}, "is not one number"),
        ({"Content-Length": "9" * 40}, "is not one number"),
    ],
)
async def test_a_wrong_content_length_from_python_is_a_500_with_the_reason(
    serve: Serve,
    python_worker: PythonWorker,
    caplog: pytest.LogCaptureFixture,
    headers: dict[str, str],
    reason: str,
) -> None:
    caplog.set_level(logging.INFO, "atoll.request")
    served = serve(python_worker(f'return Response("hello", headers={headers!r})'))
    response = await served.client.get("/")
    assert response.status_code == 500
    result = served.seen.last
    assert result.response.status == 500
    assert result.outcome is Outcome.EXCEPTION
    assert isinstance(result.error, ResponseError)
    assert reason in str(result.error)
    log = lines_of(caplog, result.request_id)
    assert log[0].startswith("GET / 500 exception ")
    assert any("ResponseError" in line and reason in line for line in log)


@pytest.mark.parametrize(
    ("mutation", "reason"),
    [
        ("r.status = 42", "status 42 is not a final HTTP status"),
        ("r.status = 101", "status 101 is not a final HTTP status"),
        ("r.status = '200'", "status '200' is not a final HTTP status"),
        ("r.body = 'text'", "body is str, not bytes"),
        ("r.headers = {'a': 'b'}", "headers are dict, not atoll.Headers"),
        ("r.headers._map['x-bad'] = ['a\\x7fb']", "'x-bad' has a control character"),
        ("r.headers._map['x-bad'] = ['a\\r\\nInjected: 1']", "'x-bad' has a control character"),
        ("r.headers._map['x-bad'] = ['\u20ac']", "'x-bad' has a character past U+00FF"),
        ("r.headers._map['x-bad'] = [7]", "'x-bad' has a int value"),
        ("r.headers._map['bad name'] = ['v']", "name 'bad name' is not an HTTP token"),
    ],
)
async def test_a_response_changed_past_its_checks_is_a_500(
    serve: Serve, python_worker: PythonWorker, mutation: str, reason: str
) -> None:
    served = serve(python_worker(f'r = Response("body")\n{mutation}\nreturn r'))
    response = await served.client.get("/")
    assert response.status_code == 500
    assert "Injected" not in response.headers
    assert reason in str(served.seen.last.error)


async def test_the_reason_is_on_the_dev_page_and_in_the_tail_event(
    serve: Serve, python_worker: PythonWorker
) -> None:
    served = serve(
        python_worker('return Response("hello", headers={"Content-Length": "2"})', dev=True),
        dev=True,
    )
    response = await served.client.get("/x")
    assert response.status_code == 500
    assert "ResponseError: the response's Content-Length is 2" in response.text
    _, method, url, result, wall_ms = served.seen.results[-1]
    item = event(
        worker="w", version="v", method=method, url=url, result=result, wall_ms=wall_ms,
        process=0, rate=1.0,
    )  # fmt: skip
    assert (item["status"], item["outcome"]) == (500, "exception")
    assert item["exception"]["type"] == "ResponseError"
    assert "Content-Length is 2 but its body has 5 bytes" in item["exception"]["message"]


async def test_hop_by_hop_headers_are_dropped(serve: Serve, python_worker: PythonWorker) -> None:
    hop = {name: "x" for name in HOP_BY_HOP} | {"transfer-encoding": "chunked", "x-kept": "1"}
    served = serve(python_worker(f'return Response("hello", headers={hop!r})'))
    response = await served.client.get("/")
    assert (response.status_code, response.text) == (200, "hello")
    assert not HOP_BY_HOP & set(response.headers)
    assert response.headers["x-kept"] == "1"
    assert response.headers["content-length"] == "5"


async def test_head_may_declare_the_length_of_the_get_body(
    serve: Serve, python_worker: PythonWorker
) -> None:
    served = serve(
        python_worker(
            'if request.method == "HEAD":\n'
            '    return Response(None, headers={"Content-Length": "1234"})\n'
            'return Response("x" * 1234)'
        )
    )
    response = await served.client.head("/")
    assert (response.status_code, response.headers["content-length"]) == (200, "1234")
    # A GET declaring 1234 with an empty body is a lie.
    served = serve(python_worker('return Response(None, headers={"Content-Length": "1234"})'))
    assert (await served.client.get("/")).status_code == 500


@pytest.mark.parametrize(
    ("source", "status", "length"),
    [
        ("return Response(None, status=204)", 204, None),
        ('return Response(None, status=204, headers={"Content-Length": "0"})', 204, None),
        ("return Response(None, status=304)", 304, None),
        # Not atoll's server (no ``atoll.respond``): a 304's length is dropped, as some
        # servers would wait for its body (test_bodiless.py: atoll's server keeps it).
        ('return Response(None, status=304, headers={"Content-Length": "80"})', 304, None),
        ('return Response("body", status=204)', 500, "page"),
        ('return Response("body", status=304)', 500, "page"),
        # RFC 9110 §8.6: a 204 has no Content-Length; whatever the worker wrote is dropped.
        ('return Response(None, status=204, headers={"Content-Length": "3"})', 204, None),
    ],
)
async def test_204_and_304_have_no_body(
    serve: Serve, python_worker: PythonWorker, source: str, status: int, length: str | None
) -> None:
    served = serve(python_worker(source))
    response = await served.client.get("/")
    assert response.status_code == status
    if length == "page":  # the error page, framed by its own length
        assert isinstance(served.seen.last.error, ResponseError)
        length = str(len(response.content))
    assert response.headers.get("content-length") == length


# --- whole-wasm (CGI) responses ---------------------------------------------------------


async def test_a_cgi_content_length_that_matches_is_sent_once(
    serve: Serve, cgi_worker: CgiWorker
) -> None:
    served = serve(cgi_worker(b"Content-Type: text/plain\nContent-Length: 5\n\nhello"))
    response = await served.client.get("/")
    assert (response.status_code, response.text) == (200, "hello")
    assert response.headers.get_list("content-length") == ["5"]


async def test_a_cgi_transfer_encoding_is_dropped_and_the_body_framed_by_length(
    serve: Serve, cgi_worker: CgiWorker
) -> None:
    output = b"Transfer-Encoding: chunked\nConnection: close\nKeep-Alive: 5\nUpgrade: h2c\n\nhello"
    response = await serve(cgi_worker(output)).client.get("/")
    assert (response.status_code, response.text) == (200, "hello")
    assert not {"transfer-encoding", "connection", "keep-alive", "upgrade"} & set(response.headers)
    assert response.headers["content-length"] == "5"


@pytest.mark.parametrize(
    ("output", "reason"),
    [
        (b"Content-Length: 3\n\nhello", "Content-Length is 3 but its body has 5 bytes"),
        (b"Content-Length: 50\n\nhello", "Content-Length is 50 but its body has 5 bytes"),
        (b"Content-Length: five\n\nhello", "Content-Length 'five' is not one number"),
        (b"X-A: a\x01b\n\nhello", "line 1 has a control character"),
        (b"X-A: a\x7f\n\nhello", "line 1 has a control character"),
        (b"X-A: a\rb\n\nhello", "line 1 has a control character"),
        ("Status: \u00b2\n\nhello".encode("latin-1"), "bad Status"),
        (b"Status: 204\n\nhello", "a 204 response has no body"),
    ],
)
async def test_cgi_output_that_cannot_be_sent_is_a_502_logged_and_counted(
    serve: Serve,
    cgi_worker: CgiWorker,
    caplog: pytest.LogCaptureFixture,
    output: bytes,
    reason: str,
) -> None:
    caplog.set_level(logging.INFO, "atoll.request")
    served = serve(cgi_worker(output))
    response = await served.client.get("/")
    assert response.status_code == 502
    assert response.text.startswith("502 Bad Gateway\n")
    result = served.seen.last
    assert (result.response.status, result.outcome) == (502, Outcome.EXCEPTION)
    assert reason in str(result.error)
    log = lines_of(caplog, result.request_id)
    assert log[0].startswith("GET / 502 exception ")
    assert any(reason in line for line in log)


# --- over a real socket ------------------------------------------------------------------


def test_bad_cgi_responses_over_a_real_socket(dev_server: StartDev, tmp_path: Path) -> None:
    """uvicorn raised on these before (0 bytes to the client, no log line)."""
    cases = {
        "length": b"Content-Type: text/plain\nContent-Length: 3\n\nhello",
        "control": b"Content-Type: text/plain\nX-A: a\x01b\n\nhello",
        "chunked": b"Transfer-Encoding: chunked\nContent-Length: 5\n\nhello",
    }
    expected = {"length": 502, "control": 502, "chunked": 200}
    for name, output in cases.items():
        root = tmp_path / name
        (root / "build").mkdir(parents=True)
        (root / "build" / "app.wasm").write_bytes(cgi_program(output))
        (root / "atoll.toml").write_text(f'name = "{name}"\nmain = "build/app.wasm"\n')
        server = dev_server(root)
        response = httpx.get(server.url + "/", timeout=10)
        assert response.status_code == expected[name], name
        if name == "chunked":
            assert response.text == "hello"
            assert "transfer-encoding" not in response.headers
        else:
            assert response.text.startswith("502 Bad Gateway")
        # The log line is written just after the response is sent: wait for it.
        deadline = time.monotonic() + 10
        while f"GET / {expected[name]} " not in server.log() and time.monotonic() < deadline:
            time.sleep(0.02)
        server.stop()
        assert f"GET / {expected[name]} " in server.log(), server.log()
