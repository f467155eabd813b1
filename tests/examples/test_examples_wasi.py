"""The whole-wasm examples, run as CGI programs with wasmtime-py's own WASI.

Each example's committed ``.wasm`` is checked against a reference
implementation in Python: bilinear resizing in pure Python, the CommonMark
renderer markdown-it-py, ``json`` and ``hashlib``. These tests use only
wasmtime's WASI (see ``cgi_wasi``), so they hold whatever atoll's runtime does;
atoll's own end-to-end tests run the same programs through the server.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
import tomllib
from pathlib import Path

import pytest
import wasmtime
from markdown_it import MarkdownIt

from tests.examples.cgi_wasi import CgiResponse, run_cgi

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
WASI_EXAMPLES = {
    "resize-rust": "rust",
    "markdown-c": "c",
    "json-zig": "zig",
    "sha256-assemblyscript": "assemblyscript",
}


def example_wasm(name: str) -> Path:
    manifest = tomllib.loads((EXAMPLES / name / "atoll.toml").read_text())
    return EXAMPLES / name / str(manifest["main"])


# -- every example ------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(WASI_EXAMPLES))
def test_example_is_complete(name: str) -> None:
    """atoll.toml names a committed, valid, small WASI command; build.sh declares its toolchain."""
    folder = EXAMPLES / name
    manifest = tomllib.loads((folder / "atoll.toml").read_text())
    assert manifest["name"] == name
    assert manifest["main"].endswith(".wasm")
    assert manifest["build"]["command"] == "./build.sh"
    wasm = example_wasm(name)
    data = wasm.read_bytes()
    assert len(data) < 500 * 1024, f"{wasm} is {len(data)} bytes"
    wasmtime.Module.validate(wasmtime.Engine(), data)
    module = wasmtime.Module(wasmtime.Engine(), data)
    assert "_start" in {e.name for e in module.exports}
    assert {i.module for i in module.imports} <= {"wasi_snapshot_preview1"}
    script = (folder / "build.sh").read_text()
    assert f"# atoll-toolchain: {WASI_EXAMPLES[name]}" in script.splitlines()[:10]
    assert (folder / "README.md").is_file()


# -- resize-rust ----------------------------------------------------------------


def ppm(width: int, height: int, pixels: bytes, comment: bool = False) -> bytes:
    header = f"P6\n{'# made by a test' + chr(10) if comment else ''}{width} {height}\n255\n"
    return header.encode() + pixels


def parse_ppm(data: bytes) -> tuple[int, int, bytes]:
    match = re.match(rb"P6\n(\d+) (\d+)\n255\n", data)
    assert match, data[:40]
    width, height = int(match.group(1)), int(match.group(2))
    pixels = data[match.end() :]
    assert len(pixels) == width * height * 3
    return width, height, pixels


def bilinear(width: int, height: int, pixels: bytes, out_w: int, out_h: int) -> bytes:
    """Reference: pixel centres aligned, clamped at the edges, rounded half up."""

    def axis(src: int, dst: int) -> list[tuple[int, int, float]]:
        scale = src / dst
        result = []
        for x in range(dst):
            s = min(max((x + 0.5) * scale - 0.5, 0.0), float(src - 1))
            i0 = math.floor(s)
            result.append((i0, min(i0 + 1, src - 1), s - i0))
        return result

    out = bytearray()
    for y0, y1, ty in axis(height, out_h):
        for x0, x1, tx in axis(width, out_w):
            for c in range(3):

                def at(x: int, y: int, c: int = c) -> int:
                    return pixels[(y * width + x) * 3 + c]

                top = at(x0, y0) * (1.0 - tx) + at(x1, y0) * tx
                bottom = at(x0, y1) * (1.0 - tx) + at(x1, y1) * tx
                value = top * (1.0 - ty) + bottom * ty
                out.append(int(min(max(math.floor(value + 0.5), 0), 255)))
    return bytes(out)


def random_image(width: int, height: int, seed: int) -> bytes:
    rng = random.Random(seed)
    return bytes(rng.randrange(256) for _ in range(width * height * 3))


def resize(body: bytes, query: str) -> CgiResponse:
    return run_cgi(example_wasm("resize-rust"), method="POST", query=query, body=body)


@pytest.mark.parametrize(
    ("size", "query", "expected"),
    [
        ((7, 5), "w=3&h=4", (3, 4)),
        ((13, 9), "w=20&h=11", (20, 11)),
        ((4, 3), "w=9&h=7", (9, 7)),
        ((7, 5), "w=4", (4, 3)),  # height from the aspect ratio: 5 * 4 / 7 = 2.86 -> 3
        ((7, 5), "h=10", (14, 10)),
        ((1, 1), "w=3&h=2", (3, 2)),
        ((6, 6), "w=6&h=6", (6, 6)),
    ],
)
def test_resize_matches_reference(
    size: tuple[int, int], query: str, expected: tuple[int, int]
) -> None:
    width, height = size
    pixels = random_image(width, height, seed=width * 100 + height)
    response = resize(ppm(width, height, pixels, comment=True), query)
    assert response.status == 200, response.body
    assert response.headers["content-type"] == "image/x-portable-pixmap"
    out_w, out_h, out = parse_ppm(response.body)
    assert (out_w, out_h) == expected
    assert out == bilinear(width, height, pixels, out_w, out_h)
    if size == expected:
        assert out == pixels  # same size: the image comes back unchanged


def test_resize_keeps_a_flat_colour() -> None:
    pixels = bytes([10, 200, 30]) * (8 * 8)
    _, _, out = parse_ppm(resize(ppm(8, 8, pixels), "w=5&h=13").body)
    assert out == bytes([10, 200, 30]) * (5 * 13)


@pytest.mark.parametrize(
    ("body", "query", "message"),
    [
        (ppm(2, 2, bytes(12)), "", "give the new size"),
        (ppm(2, 2, bytes(12)), "w=0", "w=0 must be a whole number from 1 to 4096"),
        (ppm(2, 2, bytes(12)), "w=4097", "from 1 to 4096"),
        (ppm(2, 2, bytes(12)), "h=abc", "h=abc"),
        (b"P5\n2 2\n255\n" + bytes(4), "w=1", "it does not start with 'P6'"),
        (ppm(2, 2, bytes(11)), "w=1", "needs 12 bytes of pixels, the body has 11"),
        (b"P6\n2 2\n65535\n" + bytes(24), "w=1", "only 255"),
        (b"P6\n2\n", "w=1", "the height is missing"),
        (b"garbage", "w=1", "not a P6 PPM image"),
    ],
)
def test_resize_rejects_bad_requests(body: bytes, query: str, message: str) -> None:
    response = resize(body, query)
    assert response.status == 400
    assert response.headers["content-type"].startswith("text/plain")
    assert message in response.text


def test_resize_get_shows_usage_and_post_needs_a_body() -> None:
    wasm = example_wasm("resize-rust")
    usage = run_cgi(wasm, method="GET")
    assert usage.status == 200
    assert "POST a binary PPM (P6) image" in usage.text
    assert run_cgi(wasm, method="POST").status == 400


# -- markdown-c -------------------------------------------------------------------

MARKDOWN_DOCS = [
    "# Title\n\nHello *world*, **strong** and `code`.\nA second line.\n",
    "## Sub ##\n\n- one\n- two\n- three\n",
    "1. first\n2. second\n\n3) other\n",
    "10. ten\n11. eleven\n",
    "- a\n\n- b\n",
    "- a\n  - b\n  - c\n- d\n",
    "- item\n\n  continued para\n- next\n",
    "* star\n- dash\n",
    "text\n- a list interrupts\n",
    "text\n2. this does not\n",
    '[link](http://example.com "Title") and <https://x.y/z?a=1&b=2>\n',
    "[nested *em* `code`](/u) and [brackets [x]](/v)\n",
    "```python\ndef f(x):\n    return x < 1 & 2\n```\n",
    "~~~\ntilde fence\n~~~~\n",
    "    indented code\n    more\n\npara\n",
    "> quote *here*\n> more\n",
    "> nested\n>> deeper\n",
    "Quote:\n> lazy\ncontinues\n",
    "***bold italic*** and *a **b** c* and __x__ _y_ snake_case_word\n",
    "*foo**bar**baz* and **unclosed *em\n",
    "a * not em * b and a*b*c and 2*3*4\n",
    "Setext\n======\n\nOther\n---\n",
    "***\n---\n_ _ _\n",
    "line with two spaces  \nnext\\\nlast\n",
    'escapes: \\*not em\\* \\[x\\] 5 < 6 "q" & amp\n',
    "`` a ` b `` and ` x `\n",
    "[bad](javascript:alert(1)) and [ok](/a/b%20c)\n",
    "<mail@example.com> and <notalink> and <a b>\n",
    "- ```\n  code in list\n  ```\n- # heading in list\n",
    "1. a\n\n   ```\n   code\n   ```\n2. b\n",
    "Raw <b>html</b> is escaped.\n",
    "",
]


@pytest.fixture(scope="module")
def commonmark() -> MarkdownIt:
    return MarkdownIt("commonmark", {"html": False})


@pytest.mark.parametrize("doc", MARKDOWN_DOCS)
def test_markdown_matches_commonmark(doc: str, commonmark: MarkdownIt) -> None:
    response = run_cgi(example_wasm("markdown-c"), method="POST", body=doc.encode())
    assert response.status == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.text == commonmark.render(doc)


def test_markdown_get_renders_its_help(commonmark: MarkdownIt) -> None:
    response = run_cgi(example_wasm("markdown-c"), method="GET")
    assert response.text.startswith("<h1>markdown-c</h1>\n")
    assert "<code>curl --data-binary @README.md" in response.text


def test_markdown_large_and_adversarial_documents() -> None:
    wasm = example_wasm("markdown-c")
    big = ("## Section\n\nSome *text* with `code` and [a link](/x).\n\n- a\n- b\n\n") * 5000
    response = run_cgi(wasm, method="POST", body=big.encode())
    assert response.text.count("<h2>Section</h2>") == 5000
    # Unmatched delimiters and deep nesting must neither hang nor overflow the stack.
    for doc in ("*a " * 20000, "[" * 20000, ">" * 5000 + " deep\n", "- " * 2000 + "x\n"):
        assert run_cgi(wasm, method="POST", body=doc.encode()).status == 200


# -- json-zig ----------------------------------------------------------------------

JSON_DOCS = [
    '{"a": [1, 2, {"b": null}], "c": "x\\n", "d": {}, "e": [], "f": -1.5, "g": true, "h": "\u00e9"}',
    "[]",
    "{}",
    "3",
    '"just a string"',
    "[[[]], [[1]]]",
    '{"k": {"k2": [false, 0, -0.25, 1e-07]}}',
]


def pretty(body: bytes, query: str = "") -> CgiResponse:
    return run_cgi(example_wasm("json-zig"), method="POST", query=query, body=body)


@pytest.mark.parametrize("doc", JSON_DOCS)
@pytest.mark.parametrize("indent", [0, 1, 2, 4, 16])
def test_json_layout_is_pythons(doc: str, indent: int) -> None:
    """For canonical input the output is json.dumps(indent=N); 0 is compact."""
    response = pretty(doc.encode(), f"indent={indent}")
    assert response.status == 200
    assert response.headers["content-type"] == "application/json"
    value = json.loads(doc)
    if indent == 0:
        expected = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    else:
        expected = json.dumps(value, indent=indent, ensure_ascii=False)
    assert response.text == expected + "\n"


def test_json_default_indent_and_tokens_kept() -> None:
    doc = b' {"n":1.0E+2 , "u":"\\u00e9\\/"}\n'
    response = pretty(doc)
    assert response.text == '{\n  "n": 1.0E+2,\n  "u": "\\u00e9\\/"\n}\n'
    assert json.loads(response.text) == json.loads(doc)


def test_json_large_document() -> None:
    value = {"items": [{"id": i, "name": f"item {i}", "tags": ["a", "b"]} for i in range(20000)]}
    body = json.dumps(value).encode()
    response = pretty(body, "indent=2")
    assert response.text == json.dumps(value, indent=2) + "\n"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"a":}', "line 1, column 6: expected a value"),
        (b"[1,]", "line 1, column 4: trailing comma"),
        (b'{"a":1,}', "trailing comma"),
        (b"tru", "expected a value"),
        (b'"unterminated', "unterminated string"),
        (b'{"a" 1}', "expected ':' after the key"),
        (b"", "found the end of the input"),
        (b"{} x", "unexpected data after the JSON value"),
        (b'"a\x01"', "control character in a string"),
        (b"01", "leading zero"),
        (b"-", "expected a digit"),
        (b"1.", "expected a digit after '.'"),
        (b"1e", "exponent"),
        (b"[1 2]", "expected ',' or ']'"),
        (b'"\\x"', "bad escape"),
        (b'"\\u12g4"', "bad \\u escape"),
        (b"NaN", "expected a value"),
        (b"{1: 2}", "expected a string key"),
        (b"[\n  1,\n  oops\n]", "line 3, column 3"),
        (b"\xff", "not valid UTF-8"),
    ],
)
def test_json_invalid_is_400_with_position(body: bytes, message: str) -> None:
    response = pretty(body)
    assert response.status == 400
    assert response.text.startswith("invalid JSON")
    assert message in response.text

    def no_constants(name: str) -> None:
        raise ValueError(f"{name} is not JSON")

    with pytest.raises(ValueError, match=r"."):
        json.loads(body, parse_constant=no_constants)  # Python agrees that it is invalid


def test_json_nesting_limit() -> None:
    assert pretty(b"[" * 512 + b"]" * 512, "indent=0").text == "[" * 512 + "]" * 512 + "\n"
    response = pretty(b"[" * 513 + b"]" * 513)
    assert response.status == 400
    assert "line 1, column 513: nested more than 512 deep" in response.text


@pytest.mark.parametrize("query", ["indent=17", "indent=-1", "indent=x", "indent="])
def test_json_bad_indent(query: str) -> None:
    response = pretty(b"1", query)
    assert response.status == 400
    assert "indent must be a whole number from 0 to 16" in response.text


def test_json_get_shows_usage() -> None:
    response = run_cgi(example_wasm("json-zig"), method="GET")
    assert response.status == 200
    assert "POST JSON" in response.text


# -- sha256-assemblyscript ----------------------------------------------------------


@pytest.mark.parametrize(
    "size", [0, 1, 3, 55, 56, 63, 64, 65, 119, 120, 128, 65535, 65536, 65537, 300_001]
)
def test_sha256_matches_hashlib(size: int) -> None:
    body = random.Random(size).randbytes(size)
    response = run_cgi(example_wasm("sha256-assemblyscript"), method="POST", body=body)
    assert response.status == 200
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.headers["x-body-length"] == str(size)
    assert response.text == hashlib.sha256(body).hexdigest() + "\n"
