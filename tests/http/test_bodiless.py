"""Responses without a body (304, 204, a response to HEAD) over a real socket.

A 304 or a response to HEAD may carry the ``Content-Length`` of the body a GET
would get (RFC 9110 §8.6), as a proxy of an origin's answer does; it goes out
as the worker wrote it, with no body, and the connection serves the next
request. A 204 never carries one (it is dropped). Each entry kind (Python,
whole-wasm CGI, JavaScript) is checked with a raw socket client reading the
exact bytes, on the app's one-write path (``atoll.respond``) and on the
two-message path (``send``, proxied from a spare loop once the route is marked
long). ``http/wire.py`` states the rules.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support import DevServer, WorkerFactory, start_dev, wat

PYTHON = """
import threading
import time
from atoll import Response

async def fetch(request, env, ctx):
    query = request.query
    if "spin_ms" in query:  # holds the serving loop: the route is marked long
        end = time.perf_counter() + int(query["spin_ms"]) / 1000
        while time.perf_counter() < end:
            pass
    if request.path == "/ok":
        return Response(f"fine {threading.current_thread().name}")
    headers = {"etag": '"v1"', "x-thread": threading.current_thread().name}
    if "length" in query:
        headers["content-length"] = query["length"]
    body = None if request.path != "/head" else "a body HEAD does not send"
    return Response(body, status=int(query.get("status", "304")), headers=headers)
"""


@pytest.fixture
def dev() -> Iterator[list[DevServer]]:
    started: list[DevServer] = []
    yield started
    for server in started:
        server.stop()


def _serve(folder: Path, started: list[DevServer]) -> DevServer:
    server = start_dev(folder, "--log-level", "info", "--no-reload")
    started.append(server)
    return server


class SentHome(Exception):
    """A spare that took the connection during a stall of the serving loop (a loaded
    machine can make one) closes it after the stall, with ``Connection: close``."""


class Client:
    """One keep-alive connection; reads responses byte for byte."""

    def __init__(self, server: DevServer) -> None:
        host, port = server.url.removeprefix("http://").rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=60)
        self.buffer = b""

    def close(self) -> None:
        self.sock.close()

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise AssertionError(f"the server closed the connection; unread: {self.buffer!r}")
        self.buffer += chunk

    def ask(self, method: str, target: str) -> tuple[int, dict[str, str], bytes]:
        """Send one request; return the next response (status, headers but date, body).

        The body is read by the response's framing as the client knows it: none
        for HEAD, 204 and 304, else ``content-length`` bytes.
        """
        self.sock.sendall(f"{method} {target} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
        while b"\r\n\r\n" not in self.buffer:
            self._fill()
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        assert lines[0].startswith("HTTP/1.1 "), lines[0]
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(": ")
            assert name not in headers, f"{name} sent twice: {lines}"
            headers[name] = value
        headers.pop("date")
        if headers.get("connection") == "close":
            raise SentHome(lines[0])
        size = 0 if method == "HEAD" or status in (204, 304) else int(headers["content-length"])
        while len(self.buffer) < size:
            self._fill()
        body, self.buffer = self.buffer[:size], self.buffer[size:]
        return status, headers, body

    def nothing_more(self) -> None:
        """The server sent nothing past the responses read (no stray body bytes)."""
        self.sock.settimeout(0.2)
        try:
            extra = self.sock.recv(65536)
        except TimeoutError:
            extra = b""
        assert self.buffer + extra == b""


def _exchange(server: DevServer, exchange: Callable[[Client], None]) -> None:
    """``exchange(client)`` on a new connection; again on another if it was sent home."""
    for _ in range(5):
        client = Client(server)
        try:
            exchange(client)
            return
        except SentHome:
            continue
        finally:
            client.close()
    raise AssertionError("5 connections were sent home")


def _client(server: DevServer) -> Client:
    """A connection the serving loop took. A spare accepts for a stall of the serving
    loop (a loaded machine can make one) and sends its connections home after it,
    with ``Connection: close``: such a connection is closed and another made."""
    for _ in range(5):
        client = Client(server)
        with contextlib.suppress(SentHome):
            if client.ask("GET", "/ok")[2] == b"fine atoll-http-0":
                return client
        client.close()
    raise AssertionError("the serving loop took none of 5 connections")


def _check_python(server: DevServer, client: Client, target: str, thread: str) -> None:
    """The bodiless answers of PYTHON on ``target`` (``?`` and more follow), then a 200."""
    sep = "&" if "?" in target else "?"
    status, headers, body = client.ask("GET", f"{target}{sep}length=1234")
    assert (status, body) == (304, b"")
    assert headers["x-thread"].startswith(thread), headers
    assert (headers["content-length"], headers["etag"]) == ("1234", '"v1"')
    status, headers, _ = client.ask("GET", f"{target}")
    assert (status, headers.get("content-length")) == (304, None)  # none made up
    status, headers, _ = client.ask("GET", f"{target}{sep}status=204&length=7")
    assert (status, headers.get("content-length")) == (204, None)  # RFC 9110 §8.6: dropped
    status, headers, _ = client.ask("HEAD", f"{target}{sep}status=200&length=99")
    assert (status, headers["content-length"]) == (200, "99")
    assert client.ask("GET", "/ok")[0] == 200  # the connection went on
    client.nothing_more()
    assert "sending the response failed" not in server.log()


def test_a_python_304_keeps_its_content_length_and_the_connection(
    make_worker: WorkerFactory, dev: list[DevServer]
) -> None:
    server = _serve(make_worker(PYTHON), dev)
    client = _client(server)
    try:
        _check_python(server, client, "/nm", "atoll-http-0")
        status, headers, body = client.ask("HEAD", "/head?status=200")
        assert (status, headers["content-length"], body) == (200, "25", b"")
        client.nothing_more()
    finally:
        client.close()


def _marked(server: DevServer, path: str) -> bool:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if any(f"{path} stalled the event loop" in line for line in server.lines):
            return True
        time.sleep(0.05)
    return False


def test_a_304_sent_from_a_spare_loop_through_send_is_the_same(
    make_worker: WorkerFactory, dev: list[DevServer]
) -> None:
    server = _serve(make_worker(PYTHON, limits="cpu_ms = 20000"), dev)
    client = _client(server)
    try:
        status, headers, _ = client.ask("GET", "/long?spin_ms=300&length=5")
        assert (status, headers["x-thread"]) == (304, "atoll-http-0")  # stalled it: marked
        assert _marked(server, "/long")
        # On a spare now: the app sends the two ASGI messages, proxied to the serving loop.
        _check_python(server, client, "/long", "atoll-http-spare-")
    finally:
        client.close()


# A whole-wasm (CGI) program that answers `Status: 304` with a Content-Length.
CGI_304 = r"""
(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 64) "Status: 304 Not Modified\nContent-Length: 1234\nETag: \"w\"\n\n")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 64))
    (i32.store (i32.const 4) (i32.const 57))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
"""


def test_a_cgi_status_304_keeps_its_content_length_and_the_connection(
    tmp_path: Path, dev: list[DevServer]
) -> None:
    (tmp_path / "build").mkdir()
    (tmp_path / "build" / "app.wasm").write_bytes(wat(CGI_304))
    (tmp_path / "atoll.toml").write_text('name = "cgi"\nmain = "build/app.wasm"\n')
    server = _serve(tmp_path, dev)

    def exchange(client: Client) -> None:
        for method in ("GET", "GET", "HEAD"):
            status, headers, body = client.ask(method, "/")
            assert (status, headers["content-length"], headers["etag"], body) == (
                304,
                "1234",
                '"w"',
                b"",
            )
        client.nothing_more()

    _exchange(server, exchange)
    assert "sending the response failed" not in server.log()


JS = """\
export default {
  async fetch(request) {
    const url = new URL(request.url);
    if (url.pathname === "/ok") return new Response("fine");
    const status = Number(url.searchParams.get("status") || "304");
    return new Response(null, { status, headers: { "content-length": "1234", etag: '"j"' } });
  },
};
"""


def test_a_javascript_304_keeps_its_content_length_and_the_connection(
    tmp_path: Path, dev: list[DevServer]
) -> None:
    (tmp_path / "atoll.toml").write_text('name = "js"\nmain = "index.js"\n')
    (tmp_path / "index.js").write_text(JS)
    server = _serve(tmp_path, dev)

    def exchange(client: Client) -> None:
        status, headers, body = client.ask("GET", "/")
        assert (status, headers["content-length"], headers["etag"], body) == (
            304,
            "1234",
            '"j"',
            b"",
        )
        status, headers, _ = client.ask("GET", "/?status=204")
        assert (status, headers.get("content-length")) == (204, None)
        assert client.ask("GET", "/ok")[::2] == (200, b"fine")
        client.nothing_more()

    _exchange(server, exchange)
    assert "sending the response failed" not in server.log()
