"""wasm-bindgen output with its JS glue untouched: ``@cf-wasm/photon`` resizes a PNG.

The worker (``fixtures/photon``) imports the npm package exactly as its README
shows; esbuild bundles it from ``node_modules`` (installed by ``scripts/test.sh``
with ``npm ci``), its ``.wasm`` import becomes a ``WebAssembly.Module`` and the
glue's ``initSync`` instantiates it.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import httpx

from tests.support import start_dev

FIXTURE = Path(__file__).parent / "fixtures" / "photon"


def _png(width: int, height: int) -> bytes:
    rows = b"".join(
        b"\x00"
        + b"".join(bytes((x * 7 % 256, y * 5 % 256, (x + y) % 256, 255)) for x in range(width))
        for y in range(height)
    )

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def test_photon_resizes_an_image() -> None:
    assert (FIXTURE / "node_modules" / "@cf-wasm" / "photon").is_dir(), (
        "run scripts/test.sh (it runs `npm ci` in tests/entries/js/fixtures/photon)"
    )
    server = start_dev(FIXTURE, "--loops", "1", "--no-reload")
    try:
        for width, height in ((20, 10), (128, 96)):
            response = httpx.post(
                f"{server.url}/?w={width}&h={height}", content=_png(64, 48), timeout=60
            )
            assert response.status_code == 200, response.text
            assert response.headers["content-type"] == "image/png"
            body = response.content
            assert body[:8] == b"\x89PNG\r\n\x1a\n"
            assert body[12:16] == b"IHDR"
            assert struct.unpack(">II", body[16:24]) == (width, height)
    finally:
        server.stop()
