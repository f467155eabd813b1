"""TextEncoder/TextDecoder and their streams (https://encoding.spec.whatwg.org/), from @exodus/bytes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.entries.js.webapi_harness import WebApi


@pytest.fixture
def js() -> Iterator[WebApi]:
    with WebApi() as api:
        yield api


def test_encode_utf8(js: WebApi) -> None:
    # Encoding: TextEncoder is UTF-8 only; encoding is "utf-8".
    assert js.eval(
        "[new TextEncoder().encoding, Array.from(new TextEncoder().encode('é€😀'))]"
    ) == [
        "utf-8",
        [0xC3, 0xA9, 0xE2, 0x82, 0xAC, 0xF0, 0x9F, 0x98, 0x80],
    ]


def test_encode_replaces_lone_surrogates(js: WebApi) -> None:
    # Encoding/Web IDL USVString: a lone surrogate is encoded as U+FFFD (EF BF BD).
    assert js.eval("Array.from(new TextEncoder().encode('a\\uD800b'))") == [
        0x61,
        0xEF,
        0xBF,
        0xBD,
        0x62,
    ]


def test_encode_into(js: WebApi) -> None:
    # Encoding: encodeInto reports read (UTF-16 code units) and written (bytes); never splits a
    # character.
    assert js.eval(
        "(() => { const b = new Uint8Array(4); const r = new TextEncoder().encodeInto('aé€', b); return [r.read, r.written, Array.from(b)]; })()"
    ) == [2, 3, [0x61, 0xC3, 0xA9, 0]]


def test_decode_default_replaces_and_strips_bom(js: WebApi) -> None:
    # Encoding: the default decoder strips a UTF-8 BOM and replaces malformed bytes with U+FFFD.
    assert js.eval(
        "new TextDecoder().decode(new Uint8Array([0xEF, 0xBB, 0xBF, 0x68, 0xFF, 0x69]))"
    ) == ("h\ufffdi")


def test_decode_fatal_throws_type_error(js: WebApi) -> None:
    # Encoding: fatal: true makes malformed input a TypeError.
    assert js.eval("new TextDecoder('utf-8', {fatal: true}).fatal") is True
    err = js.fails("new TextDecoder('utf-8', {fatal: true}).decode(new Uint8Array([0xC3]))")
    assert err.name == "TypeError"


def test_decode_ignore_bom_keeps_it(js: WebApi) -> None:
    # Encoding: ignoreBOM: true keeps the BOM in the output.
    assert js.eval(
        "new TextDecoder('utf-8', {ignoreBOM: true}).decode(new Uint8Array([0xEF, 0xBB, 0xBF, 0x61]))"
    ) == ("\ufeffa")


def test_decode_streaming_joins_split_characters(js: WebApi) -> None:
    # Encoding: {stream: true} keeps an incomplete sequence for the next call.
    assert (
        js.eval(
            "(() => { const d = new TextDecoder(); return d.decode(new Uint8Array([0xE2, 0x82]), {stream: true}) + '|' + d.decode(new Uint8Array([0xAC])); })()"
        )
        == "|€"
    )


def test_decode_end_of_stream_with_partial_sequence(js: WebApi) -> None:
    # Encoding: a partial sequence at the end (no stream) becomes U+FFFD.
    assert js.eval("new TextDecoder().decode(new Uint8Array([0x61, 0xE2, 0x82]))") == "a\ufffd"


def test_decoder_labels_and_other_encodings(js: WebApi) -> None:
    # Encoding: labels are case-insensitive and trimmed; utf-16le and windows-1252 decode;
    # an unknown label is a RangeError.
    assert js.eval("new TextDecoder(' UTF8 ').encoding") == "utf-8"
    assert (
        js.eval("new TextDecoder('utf-16le').decode(new Uint8Array([0x61, 0, 0x3A, 0x04]))") == "aк"
    )
    assert js.eval("new TextDecoder('latin1').decode(new Uint8Array([0x80, 0xE9]))") == "€é"
    assert js.fails("new TextDecoder('nope')").name == "RangeError"


def test_decode_accepts_buffer_sources(js: WebApi) -> None:
    # Encoding: decode(input) takes an ArrayBuffer or any ArrayBufferView.
    assert js.eval(
        "[new TextDecoder().decode(new Uint8Array([104, 105]).buffer), new TextDecoder().decode(new DataView(new Uint8Array([104]).buffer)), new TextDecoder().decode()]"
    ) == ["hi", "h", ""]


def test_text_encoder_and_decoder_streams(js: WebApi) -> None:
    # Encoding: TextEncoderStream and TextDecoderStream transform strings <-> UTF-8 chunks,
    # decoding characters split across chunks.
    assert js.run(
        "const bytes = new TextEncoder().encode('héllo €');"
        "const src = new ReadableStream({start(c) { c.enqueue(bytes.slice(0, 2)); c.enqueue(bytes.slice(2, 8)); c.enqueue(bytes.slice(8)); c.close(); }});"
        "let out = ''; for await (const s of src.pipeThrough(new TextDecoderStream())) out += s;"
        "const enc = new ReadableStream({start(c) { c.enqueue('a€'); c.close(); }}).pipeThrough(new TextEncoderStream());"
        "const chunks = []; for await (const c of enc) chunks.push(...c);"
        "return [out, chunks];"
    ) == ["héllo €", [0x61, 0xE2, 0x82, 0xAC]]
