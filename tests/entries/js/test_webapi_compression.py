"""CompressionStream and DecompressionStream (https://compression.spec.whatwg.org/), from fflate,
checked against Python's gzip/zlib."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Callable, Iterator

import pytest

from tests.entries.js.webapi_harness import WebApi


@pytest.fixture
def js() -> Iterator[WebApi]:
    with WebApi() as api:
        yield api


DATA = b"Workers compress responses: " + bytes(range(256)) * 20

PY_DECOMPRESS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": gzip.decompress,
    "deflate": zlib.decompress,
    "deflate-raw": lambda b: zlib.decompress(b, -15),
}


def _raw_deflate(data: bytes) -> bytes:
    c = zlib.compressobj(wbits=-15)
    return c.compress(data) + c.flush()


PY_COMPRESS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": gzip.compress,
    "deflate": zlib.compress,
    "deflate-raw": _raw_deflate,
}


@pytest.mark.parametrize("fmt", ["gzip", "deflate", "deflate-raw"])
def test_compress_is_readable_by_zlib(js: WebApi, fmt: str) -> None:
    # Compression Standard: CompressionStream(format) produces that format (RFC 1952 / 1950 / 1951).
    js.ctx.locals.data = DATA.decode("latin-1")
    out = js.run(
        "const s = new Response(__atoll_rt.fromBinary(data)).body.pipeThrough(new CompressionStream("
        f"'{fmt}'));"
        "return __atoll_rt.toBinary(await new Response(s).arrayBuffer());"
    )
    assert PY_DECOMPRESS[fmt](out.encode("latin-1")) == DATA


@pytest.mark.parametrize("fmt", ["gzip", "deflate", "deflate-raw"])
def test_decompress_what_zlib_made_in_small_chunks(js: WebApi, fmt: str) -> None:
    # Compression Standard: DecompressionStream accepts the compressed bytes in any chunking.
    js.ctx.locals.packed = PY_COMPRESS[fmt](DATA).decode("latin-1")
    out = js.run(
        "const bytes = __atoll_rt.fromBinary(packed);"
        "const src = new ReadableStream({start(c) { for (let i = 0; i < bytes.length; i += 7) c.enqueue(bytes.slice(i, i + 7)); c.close(); }});"
        f"return __atoll_rt.toBinary(await new Response(src.pipeThrough(new DecompressionStream('{fmt}'))).arrayBuffer());"
    )
    assert out.encode("latin-1") == DATA


def test_unknown_format_is_a_type_error(js: WebApi) -> None:
    # Compression Standard: a format other than gzip, deflate, deflate-raw throws TypeError.
    assert js.fails("new CompressionStream('br')").name == "TypeError"
    assert js.fails("new DecompressionStream('zip')").name == "TypeError"


def test_corrupt_and_truncated_input_error_the_stream(js: WebApi) -> None:
    # Compression Standard: invalid or truncated compressed data errors the stream with TypeError.
    js.ctx.locals.packed = gzip.compress(DATA).decode("latin-1")
    err = js.fails(
        "const bytes = __atoll_rt.fromBinary(packed).slice(0, 40);"
        "await new Response(new Response(bytes).body.pipeThrough(new DecompressionStream('gzip'))).arrayBuffer();"
    )
    assert err.name == "TypeError"
    err = js.fails(
        "await new Response(new Response('not gzip at all').body.pipeThrough(new DecompressionStream('gzip'))).arrayBuffer();"
    )
    assert err.name == "TypeError"


def test_chunks_must_be_bytes(js: WebApi) -> None:
    # Compression Standard: a chunk that is not a BufferSource is a TypeError.
    err = js.fails(
        "const w = new CompressionStream('gzip'); w.readable.getReader().read().catch(() => {});"
        "await w.writable.getWriter().write('text');"
    )
    assert err.name == "TypeError"


def test_gzip_with_two_members(js: WebApi) -> None:
    # RFC 1952: a gzip file may hold several members; their data is concatenated.
    js.ctx.locals.packed = (gzip.compress(b"first ") + gzip.compress(b"second")).decode("latin-1")
    assert (
        js.run(
            "return await new Response(new Response(__atoll_rt.fromBinary(packed)).body.pipeThrough(new DecompressionStream('gzip'))).text();"
        )
        == "first second"
    )
