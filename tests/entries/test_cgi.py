"""Whole-wasm workers: a WASI program served as CGI (src/atoll/entries/cgi.py)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from atoll.api import Headers, Request
from atoll.entries.cgi import (
    NOT_PASSED,
    CgiOutputError,
    cgi_environment,
    header_variable,
    parse_cgi_output,
)
from atoll.errors import ModuleLoadError
from atoll.runtime.outcome import Outcome
from atoll.worker import Result, Runtime, Worker, load_worker
from tests.support import python_steps, wat

PROBE = Path(__file__).parents[1] / "runtime" / "guests" / "cgi_probe.wasm"

MakeCgi = Callable[..., Worker]


@pytest.fixture
def make_cgi(tmp_path: Path, runtime: Runtime) -> MakeCgi:
    counter = iter(range(100))

    def make(
        extra: str = "", wasm: bytes | None = None, files: dict[str, str] | None = None
    ) -> Worker:
        root = tmp_path / f"cgi{next(counter)}"
        (root / "build").mkdir(parents=True)
        if wasm is None:
            shutil.copy(PROBE, root / "build" / "app.wasm")
        else:
            (root / "build" / "app.wasm").write_bytes(wasm)
        for name, text in (files or {}).items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_text(text)
        (root / "atoll.toml").write_text(f'name = "cgi"\nmain = "build/app.wasm"\n{extra}\n')
        return load_worker(root, runtime=runtime, dev=True)

    return make


async def call(worker: Worker, query: str, **kw: object) -> Result:
    url = f"http://example.test:8080/some/pa%20th?{query}"
    return await worker.handle(Request(url, remote_addr="10.1.2.3", **kw), "rid")  # type: ignore[arg-type]


async def test_hello(make_cgi: MakeCgi) -> None:
    result = await call(make_cgi(), "")
    assert result.response.status == 200
    assert result.response.body == b"hello from wasi\n"
    assert result.response.headers.get("content-type") == "text/plain"


async def test_cgi_environment(make_cgi: MakeCgi) -> None:
    worker = make_cgi('[vars]\nGREETING = "hi"\nLIMITS = { a = 1 }')
    result = await call(
        worker,
        "env",
        method="POST",
        headers=[
            ("Content-Type", "text/plain"),
            ("X-Thing", "one"),
            ("X-Thing", "two"),
            ("User-Agent", "probe/1"),
        ],
        body=b"abc",
    )
    env = dict(line.split("=", 1) for line in result.response.body.decode().splitlines())
    assert env == {
        "AUTH_TYPE": "",
        "CONTENT_LENGTH": "3",
        "CONTENT_TYPE": "text/plain",
        "GATEWAY_INTERFACE": "CGI/1.1",
        "GREETING": "hi",
        "HTTP_USER_AGENT": "probe/1",
        "HTTP_X_THING": "one, two",
        "LIMITS": '{"a": 1}',
        "PATH_INFO": "/some/pa th",
        "PATH_TRANSLATED": "/some/pa th",
        "QUERY_STRING": "env",
        "REMOTE_ADDR": "10.1.2.3",
        "REMOTE_HOST": "10.1.2.3",
        "REQUEST_METHOD": "POST",
        "SCRIPT_NAME": "",
        "SERVER_NAME": "example.test",
        "SERVER_PORT": "8080",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "SERVER_SOFTWARE": env["SERVER_SOFTWARE"],
        "X_FULL_URL": "http://example.test:8080/some/pa%20th?env",
        "X_MATCHED_ROUTE": "/...",
        "X_RAW_PATH_INFO": "/some/pa%20th",
        "X_RELATIVE_PATH": "some/pa th",
    }
    assert env["SERVER_SOFTWARE"].startswith("atoll/")


@pytest.mark.parametrize(
    ("url", "name", "port"),
    [
        ("http://Example.COM:8080/x", "example.com", "8080"),
        ("http://h/", "h", "80"),
        ("https://h/", "h", "443"),
        ("http://[::1]:9000/", "::1", "9000"),
        ("http://u:p@Host:81/", "host", "81"),
        ("http:///nohost", "localhost", "80"),
    ],
)
def test_server_name_and_port_as_urllib_reads_them(
    make_cgi: MakeCgi, url: str, name: str, port: str
) -> None:
    env = cgi_environment(Request(url), make_cgi().manifest, 0)
    assert (env["SERVER_NAME"], env["SERVER_PORT"]) == (name, port)


def test_path_info_is_decoded_and_the_raw_path_kept(make_cgi: MakeCgi) -> None:
    env = cgi_environment(Request("http://h/a%20b/c?q=1"), make_cgi().manifest, 0)
    assert env["PATH_INFO"] == env["PATH_TRANSLATED"] == "/a b/c"
    assert env["X_RAW_PATH_INFO"] == "/a%20b/c"
    assert env["QUERY_STRING"] == "q=1"


async def test_a_nul_in_the_path_reaches_the_guest_as_one_variable(make_cgi: MakeCgi) -> None:
    worker = make_cgi()
    result = await worker.handle(Request("http://h/a%00b?env"), "rid")
    lines = result.response.body.decode().splitlines()
    assert sum(line.startswith("PATH_INFO=") for line in lines) == 1
    assert "b" not in lines  # no stray entry from the bytes after the NUL


@pytest.mark.parametrize(
    ("output", "body"),
    [
        (b"A: b\r\n\r\nbody\n\nmore", b"body\n\nmore"),
        (b"A: b\n\nbody\r\n\r\nmore", b"body\r\n\r\nmore"),
        (b"A: b\nC: d\n\n", b""),
        (b"A: b\r\nC: d\r\n\r\n" + b"x" * 100_000, b"x" * 100_000),
    ],
)
def test_the_first_blank_line_ends_the_headers(output: bytes, body: bytes) -> None:
    response = parse_cgi_output(output, "p")
    assert response.body == body
    assert response.headers.get("a") == "b"


def test_a_known_header_name_without_a_colon_is_still_an_error() -> None:
    parse_cgi_output(b"Content-Type: text/plain\n\n", "p")  # the name is now known
    with pytest.raises(CgiOutputError, match="line 1 is not `Name: value`"):
        parse_cgi_output(b"Content-Type\n\nbody", "p")


async def test_host_environment_is_not_visible(
    make_cgi: MakeCgi, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ATOLL_SECRET_FROM_HOST", "leak")
    result = await call(make_cgi(), "env")
    assert b"ATOLL_SECRET_FROM_HOST" not in result.response.body
    assert not any(line.startswith(b"PATH=") for line in result.response.body.splitlines())


@pytest.mark.parametrize("body", [b"", b"\x00\x01\xff binary \x00", os.urandom(3 * 1024 * 1024)])
async def test_stdin_is_the_body_and_binary_safe(make_cgi: MakeCgi, body: bytes) -> None:
    result = await call(make_cgi(), "echo", method="POST", body=body)
    assert result.response.status == 200
    assert result.response.body == body
    assert result.response.headers.get("x-echo") == "yes"


async def test_status_and_repeated_headers(make_cgi: MakeCgi) -> None:
    result = await call(make_cgi(), "status")
    assert result.response.status == 404
    assert result.response.body == b"nope"
    assert result.response.headers.get_all("set-cookie") == ["a=1", "b=2"]
    assert not result.response.headers.has("status")


async def test_location_without_status_is_a_302(make_cgi: MakeCgi) -> None:
    result = await call(make_cgi(), "redirect")
    assert result.response.status == 302
    assert result.response.headers.get("location") == "/elsewhere"


async def test_crlf_output(make_cgi: MakeCgi) -> None:
    result = await call(make_cgi(), "crlf")
    assert (result.response.status, result.response.body) == (201, b"made")


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("bad", "CGI header line 1 is not `Name: value`: 'this is not a header'"),
        ("noblank", "no blank line after the CGI headers"),
        ("nothing", "wrote nothing to stdout"),
    ],
)
async def test_malformed_output_is_a_502(make_cgi: MakeCgi, query: str, message: str) -> None:
    result = await call(make_cgi(), query)
    assert result.response.status == 502
    assert message in result.response.body.decode()


async def test_nonzero_exit_is_a_500(make_cgi: MakeCgi) -> None:
    result = await call(make_cgi(), "exit3")
    assert result.response.status == 500
    assert result.outcome is Outcome.EXCEPTION
    assert "exited with code 3" in result.response.body.decode()


async def test_trap_is_a_500_with_backtrace(make_cgi: MakeCgi) -> None:
    result = await call(make_cgi(), "trap")
    assert result.response.status == 500
    assert "wasm backtrace" in result.response.body.decode()


async def test_infinite_loop_ends_at_cpu_ms(make_cgi: MakeCgi) -> None:
    result = await call(make_cgi("[limits]\ncpu_ms = 30"), "spin")
    assert result.response.status == 503
    assert result.outcome is Outcome.EXCEEDED_CPU


async def test_memory_bomb_is_refused(make_cgi: MakeCgi) -> None:
    worker = make_cgi("[limits]\nmemory_mb = 16\ncpu_ms = 2000")
    handled = await call(worker, "bomb")
    assert handled.response.status == 200
    refused_after = int(handled.response.body.split()[2])
    assert 8 <= refused_after < 16
    aborted = await call(worker, "bomb-abort")
    assert aborted.response.status == 503
    assert aborted.outcome is Outcome.EXCEEDED_MEMORY


async def test_output_flood_is_cut_at_the_limit(make_cgi: MakeCgi) -> None:
    result = await call(make_cgi("[limits]\nresponse_mb = 1"), "flood")
    assert result.response.status == 502
    assert "more than 1048576 bytes to stdout" in result.response.body.decode()


async def test_stderr_goes_to_the_request_log(make_cgi: MakeCgi) -> None:
    result = await call(make_cgi(), "stderr")
    assert result.logs == ["first line", "second line"]


async def test_argv_defaults_to_the_program_name_and_the_query(make_cgi: MakeCgi) -> None:
    assert (await call(make_cgi(), "argv")).response.body == b"app.wasm\nargv\n"
    custom = make_cgi('[wasi]\nargv = ["prog", "--flag"]')
    assert (await call(custom, "argv")).response.body == b"prog\n--flag\n"


async def test_no_files_without_a_grant(make_cgi: MakeCgi) -> None:
    worker = make_cgi(files={"static/a.txt": "secret"})
    for path in ("static/a.txt", "/static/a.txt", "/etc/passwd", "atoll.toml"):
        result = await call(worker, f"read={path}")
        assert result.response.body.startswith(b"error:"), path


async def test_granted_folder_is_readable_and_read_only(make_cgi: MakeCgi) -> None:
    worker = make_cgi(
        '[wasi]\ndirs = { "/static" = "static" }',
        files={"static/a.txt": "file a", "static/sub/b.txt": "file b", "outside.txt": "no"},
    )
    assert (await call(worker, "read=/static/a.txt")).response.body == b"file a"
    assert (await call(worker, "read=/static/sub/b.txt")).response.body == b"file b"
    escape = await call(worker, "read=/static/../outside.txt")
    assert escape.response.body.startswith(b"error:")
    listing = (await call(worker, "ls=/static")).response.body.decode().split()
    assert sorted(listing) == [".", "..", "a.txt", "sub"]
    write = await call(worker, "write=/static/new.txt")
    assert b"Read-only file system" in write.response.body
    assert not (worker.manifest.root / "static" / "new.txt").exists()


async def test_symlink_out_of_a_grant_is_refused(make_cgi: MakeCgi, tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_text("host secret")
    worker = make_cgi('[wasi]\ndirs = { "/static" = "static" }', files={"static/a.txt": "a"})
    (worker.manifest.root / "static" / "link.txt").symlink_to(tmp_path / "secret.txt")
    result = await call(worker, "read=/static/link.txt")
    assert result.response.body.startswith(b"error:")


def test_unknown_import_is_refused_at_load(make_cgi: MakeCgi) -> None:
    module = wat(
        '(module (import "wasi_snapshot_preview2" "fd_write" (func (param i32)))'
        ' (memory (export "memory") 1) (func (export "_start")))'
    )
    with pytest.raises(ModuleLoadError, match=r"imports wasi_snapshot_preview2\.fd_write"):
        make_cgi(wasm=module)


def test_a_library_without_start_is_refused(make_cgi: MakeCgi) -> None:
    with pytest.raises(ModuleLoadError, match="exports no _start"):
        make_cgi(wasm=wat('(module (memory (export "memory") 1))'))


def test_parse_cgi_output_unit() -> None:
    response = parse_cgi_output(b"Content-Type: text/html\nX-A: 1\n\n<p>", "p.wasm")
    assert (response.status, response.body) == (200, b"<p>")
    assert response.headers.get("x-a") == "1"
    with pytest.raises(CgiOutputError, match="bad Status"):
        parse_cgi_output(b"Status: abc\n\n", "p.wasm")
    with pytest.raises(CgiOutputError, match="starts with a blank line"):
        parse_cgi_output(b"\nbody", "p.wasm")


def test_headers_that_collide_with_cgi_variables_are_not_passed(make_cgi: MakeCgi) -> None:
    headers = [
        ("Proxy", "http://evil.test:3128"),  # httpoxy: HTTP_PROXY is read as the proxy to use
        ("Authorization", "Bearer secret"),
        ("Proxy-Authorization", "Basic x"),
        ("Connection", "keep-alive"),
        ("Keep-Alive", "timeout=5"),
        ("TE", "trailers"),
        ("Upgrade", "h2c"),
        ("Content-Type", "text/plain"),
        ("Content-Length", "3"),
        ("X-Real-IP", "10.0.0.1"),
        ("X_Real_IP", "6.6.6.6"),
        ("X.Dotted", "odd"),
        ("Accept", "*/*"),
    ]
    env = cgi_environment(Request("http://h/", headers=headers), make_cgi().manifest, 3)
    passed = {k: v for k, v in env.items() if k.startswith("HTTP_")}
    assert passed == {"HTTP_X_REAL_IP": "10.0.0.1", "HTTP_ACCEPT": "*/*"}
    assert env["CONTENT_TYPE"] == "text/plain"
    assert env["CONTENT_LENGTH"] == "3"


@pytest.mark.parametrize("order", [1, -1])
def test_an_underscore_header_never_shadows_a_dash_header(make_cgi: MakeCgi, order: int) -> None:
    headers = [("X-Forwarded-For", "10.0.0.1"), ("X_Forwarded_For", "6.6.6.6")][::order]
    env = cgi_environment(Request("http://h/", headers=headers), make_cgi().manifest, 0)
    assert env["HTTP_X_FORWARDED_FOR"] == "10.0.0.1"
    alone = cgi_environment(
        Request("http://h/", headers=[("X_Forwarded_For", "6.6.6.6")]), make_cgi().manifest, 0
    )
    assert "HTTP_X_FORWARDED_FOR" not in alone


def test_a_header_never_replaces_a_variable_of_the_worker(make_cgi: MakeCgi) -> None:
    manifest = make_cgi('[vars]\nHTTP_X_TRUSTED = "from the operator"').manifest
    request = Request("http://h/", headers=[("X-Trusted", "from the client")])
    assert cgi_environment(request, manifest, 0)["HTTP_X_TRUSTED"] == "from the operator"


def test_header_variable() -> None:
    assert header_variable("x-real-ip") == "HTTP_X_REAL_IP"
    assert header_variable("accept") == "HTTP_ACCEPT"
    for dropped in ("proxy", "x_real_ip", "a.b", "authorization", "transfer-encoding"):
        assert header_variable(dropped) is None, dropped
    assert {"proxy", "authorization", "connection", "content-length"} <= NOT_PASSED


def test_every_one_of_many_headers_becomes_a_variable(make_cgi: MakeCgi) -> None:
    count = 20_000
    raw = [(f"x-h{i}".encode(), str(i).encode()) for i in range(count)]
    request = Request("http://h/", headers=Headers.from_raw(raw))
    env = cgi_environment(request, make_cgi().manifest, 0)
    assert sum(k.startswith("HTTP_X_H") for k in env) == count
    assert env[f"HTTP_X_H{count - 1}"] == str(count - 1)


def test_the_environment_costs_in_proportion_to_the_header_count(make_cgi: MakeCgi) -> None:
    """Counted, not timed (a lookup per header made it quadratic): twice the headers,
    about twice the Python steps (quadratic: four times)."""
    manifest = make_cgi().manifest

    def environment(count: int) -> None:
        raw = [(f"x-h{i}".encode(), str(i).encode()) for i in range(count)]
        cgi_environment(Request("http://h/", headers=Headers.from_raw(raw)), manifest, 0)

    small, large = python_steps(lambda: environment(500)), python_steps(lambda: environment(1000))
    assert large < 3 * small, (small, large)


@pytest.mark.parametrize(
    ("output", "message"),
    [
        (b"X-A: a\x01b\n\n", "line 1 has a control character"),
        (b"Content-Type: text/plain\nX-A: a\rb\n\n", "line 2 has a control character"),
        (b"X-A: a\x7f\n\n", "line 1 has a control character"),
        (b"X-A: a\x00\n\n", "line 1 has a control character"),
        ("Status: \u00b2\n\n".encode("latin-1"), "bad Status"),
        ("Status: 2\u00b200\n\n".encode("latin-1"), "bad Status"),
        (b"Status: 100 Continue\n\n", "bad Status"),
        (b"Status: 600\n\n", "bad Status"),
        (b"Status: 20\n\n", "bad Status"),
    ],
)
def test_header_lines_that_http_cannot_carry_are_a_502(output: bytes, message: str) -> None:
    with pytest.raises(CgiOutputError, match=message) as caught:
        parse_cgi_output(output, "p")
    assert caught.value.status == 502


def test_tabs_and_latin_1_in_header_values_pass() -> None:
    response = parse_cgi_output(b"X-A: a\tb\nX-B: caf\xe9 \n\n", "p")
    assert response.headers.get("x-a") == "a\tb"
    assert response.headers.get("x-b") == "café"


# --- WAGI compatibility, with tests/entries/guests/wagi_probe.c ---------------------------

WAGI_PROBE = Path(__file__).parent / "guests" / "wagi_probe.wasm"


def probe_worker(make_cgi: MakeCgi, extra: str = "", **kw: object) -> Worker:
    return make_cgi(extra, wasm=WAGI_PROBE.read_bytes(), **kw)


async def probe_env(worker: Worker, url: str, **kw: object) -> dict[str, str]:
    result = await worker.handle(Request(url, **kw), "rid")  # type: ignore[arg-type]
    assert result.response.status == 200, result.response.body
    pairs = [line.split("=", 1) for line in result.response.body.decode().splitlines()]
    env = {k: v for k, v in pairs if k != "ARG"}
    env["ARGV"] = " ".join(v for k, v in pairs if k == "ARG")
    return env


async def test_content_length_is_0_without_a_body(make_cgi: MakeCgi) -> None:
    worker = probe_worker(make_cgi)
    assert (await probe_env(worker, "http://h/?env"))["CONTENT_LENGTH"] == "0"
    get = await worker.handle(Request("http://h/?post"), "rid")
    assert (get.response.status, get.response.body) == (200, b"read 0 of 0 bytes\n")
    post = await worker.handle(Request("http://h/?post", method="POST", body=b"hello"), "rid")
    assert post.response.body == b"read 5 of 5 bytes\n"


async def test_the_query_items_are_the_arguments_as_in_wagi(make_cgi: MakeCgi) -> None:
    env = await probe_env(probe_worker(make_cgi), "http://h/x?env&a=1&b%20c&&d")
    assert env["ARGV"] == "app.wasm env a=1 b%20c  d"  # as sent, one per & (an empty one too)
    fixed = probe_worker(make_cgi, '[wasi]\nargv = ["prog", "--flag"]')
    assert (await probe_env(fixed, "http://h/?env&a=1"))["ARGV"] == "prog --flag"


async def test_script_name_and_path_info_under_a_route(make_cgi: MakeCgi) -> None:
    worker = probe_worker(make_cgi, 'routes = ["site.test/assets/*", "site.test/hello"]')
    env = await probe_env(worker, "http://site.test/assets/css/a%20b.css?env")
    assert env["SCRIPT_NAME"] == "/assets"
    assert env["PATH_INFO"] == env["PATH_TRANSLATED"] == "/css/a b.css"
    assert env["X_RAW_PATH_INFO"] == "/css/a%20b.css"
    assert env["X_RELATIVE_PATH"] == "css/a b.css"
    assert env["X_MATCHED_ROUTE"] == "/assets/..."
    assert env["X_FULL_URL"] == "http://site.test/assets/css/a%20b.css?env"
    exact = await probe_env(worker, "http://site.test/hello?env")
    assert (exact["SCRIPT_NAME"], exact["PATH_INFO"], exact["X_MATCHED_ROUTE"]) == (
        "/hello",
        "",
        "/hello",
    )
    other_host = await probe_env(worker, "http://elsewhere.test/assets/x?env")  # atoll dev
    assert (other_host["SCRIPT_NAME"], other_host["PATH_INFO"]) == ("", "/assets/x")
    assert other_host["X_MATCHED_ROUTE"] == "/..."


async def test_a_static_file_program_serves_relative_to_its_route(make_cgi: MakeCgi) -> None:
    worker = probe_worker(
        make_cgi,
        'routes = ["site.test/assets/*"]\n[wasi]\ndirs = { "/static" = "files" }',
        files={"files/css/site.css": "body{}", "secret.txt": "no"},
    )
    served = await worker.handle(Request("http://site.test/assets/css/site.css?file"), "rid")
    assert (served.response.status, served.response.body) == (200, b"body{}")
    escape = await worker.handle(Request("http://site.test/assets/../../secret.txt?file"), "rid")
    assert escape.response.status == 404
    assert escape.response.body == b"no file /static/secret.txt\n"


@pytest.mark.parametrize(
    ("path", "script", "info"),
    [
        ("/assets/a/./b/../c", "/assets", "/a/c"),
        ("/assets/%2e%2e/x", "", "/x"),
        ("/assets/a/%2E/b", "/assets", "/a/b"),
        ("/../../etc/passwd", "", "/etc/passwd"),
        ("/assets/a/..", "/assets", "/"),
        ("/a/b/", "", "/a/b/"),
    ],
)
async def test_dot_segments_are_removed(
    make_cgi: MakeCgi, path: str, script: str, info: str
) -> None:
    worker = probe_worker(make_cgi, 'routes = ["site.test/assets/*"]')
    env = await probe_env(worker, f"http://site.test{path}?env")
    assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == (script, info)


@pytest.mark.parametrize("version", ["1.0", "1.1", "2"])
async def test_server_protocol_is_the_requests(make_cgi: MakeCgi, version: str) -> None:
    env = await probe_env(probe_worker(make_cgi), "http://h/?env", http_version=version)
    assert env["SERVER_PROTOCOL"] == f"HTTP/{version}"


async def test_server_protocol_comes_from_the_asgi_scope(make_cgi: MakeCgi) -> None:
    from atoll.http.app import AtollApp, SingleWorker

    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, object]) -> None:
        sent.append(dict(message))

    scope = {
        "type": "http",
        "http_version": "1.0",
        "method": "GET",
        "path": "/",
        "raw_path": b"/",
        "headers": [(b"host", b"h")],
        "query_string": b"env",
    }
    await AtollApp(SingleWorker(probe_worker(make_cgi)))(scope, receive, send)  # type: ignore[arg-type]
    assert b"SERVER_PROTOCOL=HTTP/1.0\n" in sent[1]["body"]  # type: ignore[operator]


async def test_headers_withheld_as_the_table_says(make_cgi: MakeCgi) -> None:
    headers = [
        ("Authorization", "Bearer s"),
        ("Content-Type", "text/plain"),
        ("Proxy", "http://evil"),
        ("X-Ok", "1"),
    ]
    env = await probe_env(
        probe_worker(make_cgi), "http://h/?env", method="POST", headers=headers, body=b"ab"
    )
    assert "HTTP_AUTHORIZATION" not in env
    assert "HTTP_PROXY" not in env
    assert "HTTP_CONTENT_TYPE" not in env
    assert "HTTP_CONTENT_LENGTH" not in env
    assert (env["CONTENT_TYPE"], env["CONTENT_LENGTH"], env["HTTP_X_OK"]) == (
        "text/plain",
        "2",
        "1",
    )
    assert "REMOTE_USER" not in env


@pytest.mark.parametrize("name", ["lf-then-crlf", "crlf-then-lf", "crlf-blank-after-lf"])
async def test_mixed_line_endings_are_accepted(make_cgi: MakeCgi, name: str) -> None:
    result = await probe_worker(make_cgi).handle(Request(f"http://h/?out={name}"), "rid")
    assert (result.response.status, result.response.body) == (200, b"body")
    assert result.response.headers.get("x-a") == "1"
    assert result.response.headers.get("content-type") == "text/plain"


@pytest.mark.parametrize(
    ("name", "status", "body"),
    [("nph", 201, b"nph body"), ("nph-10", 404, b"gone"), ("nph-status", 503, b"busy")],
)
async def test_a_status_line_first_sets_the_status(
    make_cgi: MakeCgi, name: str, status: int, body: bytes
) -> None:
    result = await probe_worker(make_cgi).handle(Request(f"http://h/?out={name}"), "rid")
    assert (result.response.status, result.response.body) == (status, body)
    assert result.response.headers.get("content-type") == "text/plain"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("nph-2", "line 1 is not a status line"),
        ("nph-bad", "line 1 is not a status line"),
        ("nph-late", "line 2 is not `Name: value`: 'HTTP/1.1 200 OK'"),
        ("plain", 'wants [wasi] mode = \\"stdout\\"'),
    ],
)
async def test_output_that_is_not_cgi_is_a_502(make_cgi: MakeCgi, name: str, message: str) -> None:
    result = await probe_worker(make_cgi).handle(Request(f"http://h/?out={name}"), "rid")
    assert result.response.status == 502
    assert message.replace("\\", "") in result.response.body.decode()


async def test_plain_stdout_mode_is_the_workers_wasi_contract(make_cgi: MakeCgi) -> None:
    worker = probe_worker(make_cgi, '[wasi]\nmode = "stdout"\nargv = ["probe"]')
    result = await worker.handle(Request("http://h/", method="POST", body=b"the body"), "rid")
    assert result.response.status == 200
    assert result.response.body == b"hello from stdout: the body"
    assert result.response.headers.get("content-type") is None
    failing = probe_worker(make_cgi, '[wasi]\nmode = "stdout"\nargv = ["probe", "exit", "4"]')
    failed = await failing.handle(Request("http://h/"), "rid")
    assert failed.response.status == 500
    assert "exited with code 4" in failed.response.body.decode()


def test_an_unknown_mode_is_refused(make_cgi: MakeCgi) -> None:
    from atoll.errors import ConfigError

    with pytest.raises(ConfigError, match=r"wasi\.mode"):
        probe_worker(make_cgi, '[wasi]\nmode = "fastcgi"')
