"""``atoll serve`` end to end: the server limits reach every serving process and the
admin API, and the state folder is private. Real node, raw sockets, loopback only."""

from __future__ import annotations

import contextlib
import socket
import stat
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.control.serving import Node, deploy, start_serve, write_worker


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    running = start_serve(
        tmp_path / "state", "--max-header-kib", "8", "--max-headers", "20", processes=2
    )
    yield running
    running.stop()


def _ask(url: str, head: bytes) -> int:
    """Send ``head`` on a new connection; the status of the answer (0: none)."""
    parts = urlsplit(url)
    assert parts.hostname is not None
    with socket.create_connection((parts.hostname, parts.port or 80), timeout=20) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(head)
        raw = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(65536):
                raw += chunk
    return int(raw.split(b" ", 2)[1]) if raw.startswith(b"HTTP/") else 0


def test_head_limits_hold_on_the_serving_port_and_the_admin_api(node: Node, tmp_path: Path) -> None:
    deploy(node, write_worker(tmp_path / "w", "w", 1))
    big = b"X-Big: " + b"a" * (8 << 20) + b"\r\n"
    many = b"X-A: b\r\n" * 100_000
    for _ in range(4):  # new connections spread over both processes
        assert _ask(node.url, b"GET / HTTP/1.1\r\nHost: w.localhost\r\n" + big + b"\r\n") == 431
        assert _ask(node.url, b"GET / HTTP/1.1\r\nHost: w.localhost\r\n" + many + b"\r\n") == 431
        ok = b"GET / HTTP/1.1\r\nHost: w.localhost\r\nX-Fine: " + b"a" * 4096 + b"\r\n"
        assert _ask(node.url, ok + b"Connection: close\r\n\r\n") == 200
    assert _ask(node.admin, b"GET /workers HTTP/1.1\r\nHost: a\r\n" + big + b"\r\n") == 431
    assert node.get("w.localhost").status_code == 200


def test_the_state_folder_is_private(node: Node) -> None:
    for path in (node.state, node.state / "cache", node.state / "secrets"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o700
