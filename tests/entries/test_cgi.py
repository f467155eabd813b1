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
from tests.support import wat

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
    assert b"PATH=" not in result.response.body.replace(b"PATH_", b"")


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


async def test_argv_defaults_to_the_program_name(make_cgi: MakeCgi) -> None:
    assert (await call(make_cgi(), "argv")).response.body == b"app.wasm\n"
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
