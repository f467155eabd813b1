"""Every example worker answers over a real socket, served by `atoll dev` from its committed wasm."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import httpx
import pytest

from tests.support import REPO, StartDev

EXAMPLES = REPO / "examples"


def ppm(width: int, height: int) -> bytes:
    pixels = bytes(
        (x * 7 + y * 13) % 256 for y in range(height) for x in range(width) for _ in range(3)
    )
    return f"P6\n{width} {height}\n255\n".encode() + pixels


@pytest.mark.parametrize(
    ("example", "method", "target", "body", "check"),
    [
        ("seed", "GET", "/?n=1000", b"", lambda r: r.text == "Result: 332833500"),
        ("seed-assemblyscript", "GET", "/?n=1000", b"", lambda r: r.text == "Result: 332833500"),
        ("seed-js", "GET", "/", b"", lambda r: r.text == "Result: 23821"),
        (
            "emscripten-c",
            "GET",
            "/?name=Ada",
            b"",
            lambda r: r.text.startswith("Hello, Ada! (from C, built by Emscripten)"),
        ),
        (
            "sha256-assemblyscript",
            "POST",
            "/",
            b"abc" * 1000,
            lambda r: r.text.strip() == hashlib.sha256(b"abc" * 1000).hexdigest(),
        ),
        (
            "json-zig",
            "POST",
            "/?indent=2",
            b'{"a":[1,2,{"b":null}]}',
            lambda r: r.text.strip() == json.dumps({"a": [1, 2, {"b": None}]}, indent=2),
        ),
        ("json-zig", "POST", "/", b'{"a": }', lambda r: r.status_code == 400),
        (
            "markdown-c",
            "POST",
            "/",
            b"# Title\n\nSome *emphasis* and `code`.\n",
            lambda r: "<h1>Title</h1>" in r.text and "<em>emphasis</em>" in r.text,
        ),
        (
            "resize-rust",
            "POST",
            "/?w=4&h=3",
            ppm(8, 6),
            lambda r: r.content.startswith(b"P6\n4 3\n255\n") and len(r.content) == 11 + 4 * 3 * 3,
        ),
    ],
)
def test_example_over_http(
    dev_server: StartDev,
    example: str,
    method: str,
    target: str,
    body: bytes,
    check: object,
) -> None:
    folder: Path = EXAMPLES / example
    server = dev_server(folder, "--no-build")
    response = httpx.request(method, f"{server.url}{target}", content=body, timeout=30)
    assert callable(check)
    assert check(response), (response.status_code, response.text[:500], server.log())
