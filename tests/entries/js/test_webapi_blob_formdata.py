"""Blob, File (https://w3c.github.io/FileAPI/, fetch-blob) and FormData
(https://xhr.spec.whatwg.org/#interface-formdata, formdata-polyfill), in V8."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.entries.js.webapi_harness import WebApi


@pytest.fixture
def js() -> Iterator[WebApi]:
    with WebApi() as api:
        yield api


def test_blob_parts_size_type_and_text(js: WebApi) -> None:
    # File API: parts (strings as UTF-8, buffers, blobs) are concatenated; type is lower-cased.
    assert js.run(
        "const b = new Blob(['é', new Uint8Array([33]), new Blob(['?'])], {type: 'Text/Plain'});"
        "return [b.size, b.type, await b.text()];"
    ) == [4, "text/plain", "é!?"]


def test_blob_slice(js: WebApi) -> None:
    # File API slice(start, end, type): negative offsets count from the end.
    assert js.run(
        "const b = new Blob(['abcdef']);"
        "return [await b.slice(1, 3).text(), await b.slice(-2).text(), b.slice(0, 1, 'x/y').type];"
    ) == ["bc", "ef", "x/y"]


def test_blob_array_buffer_and_stream(js: WebApi) -> None:
    # File API: arrayBuffer() gives the bytes; stream() a ReadableStream of Uint8Array.
    assert js.run(
        "const b = new Blob([new Uint8Array([1, 2, 3])]);"
        "const ab = await b.arrayBuffer(); const chunks = [];"
        "for await (const c of b.stream()) chunks.push(...c);"
        "return [Array.from(new Uint8Array(ab)), chunks];"
    ) == [[1, 2, 3], [1, 2, 3]]


def test_file_name_and_last_modified(js: WebApi) -> None:
    # File API: File has name and lastModified (given, else now) and is a Blob.
    assert js.eval(
        "(() => { const f = new File(['x'], 'a.txt', {type: 'text/plain', lastModified: 42}); return [f.name, f.lastModified, f.type, f instanceof Blob, f.size]; })()"
    ) == ["a.txt", 42, "text/plain", True, 1]
    assert js.fails("new File(['x'])").name == "TypeError"


def test_form_data_methods(js: WebApi) -> None:
    # XHR FormData: append keeps duplicates, set replaces, get/getAll/has/delete, iteration order.
    assert js.eval(
        "(() => { const f = new FormData(); f.append('a', '1'); f.append('a', '2'); f.append('b', '3');"
        " const r = [f.get('a'), f.getAll('a'), f.has('b')]; f.set('a', '9'); f.delete('b');"
        " r.push([...f]); r.push(f.get('missing')); return r; })()"
    ) == ["1", ["1", "2"], True, [["a", "9"]], None]


def test_form_data_blob_becomes_file(js: WebApi) -> None:
    # XHR FormData "create an entry": a Blob value becomes a File named "blob" (or the filename).
    assert js.eval(
        "(() => { const f = new FormData(); f.append('x', new Blob(['q'])); f.append('y', new Blob(['q']), 'n.bin');"
        " return [f.get('x') instanceof File, f.get('x').name, f.get('y').name]; })()"
    ) == [True, "blob", "n.bin"]


def test_form_data_values_are_strings(js: WebApi) -> None:
    # XHR FormData: a non-Blob value is converted to a string.
    assert (
        js.eval(
            "(() => { const f = new FormData(); f.append('n', 12); return typeof f.get('n'); })()"
        )
        == "string"
    )


def test_form_data_multipart_serialization(js: WebApi) -> None:
    # HTML multipart/form-data encoding: each entry is a part with Content-Disposition; a file
    # part has a filename and Content-Type; the body ends with --boundary--.
    out = js.run(
        "const f = new FormData(); f.append('k', 'v'); f.append('up', new File(['data'], 'f.txt', {type: 'text/plain'}));"
        "const r = new Response(f); return [r.headers.get('content-type'), await r.text()];"
    )
    content_type, body = out
    boundary = content_type.split("boundary=")[1]
    assert body.startswith(f"--{boundary}\r\n")
    assert 'Content-Disposition: form-data; name="k"\r\n\r\nv\r\n' in body
    assert (
        'Content-Disposition: form-data; name="up"; filename="f.txt"\r\nContent-Type: text/plain\r\n\r\ndata\r\n'
        in body
    )
    assert body.endswith(f"--{boundary}--\r\n") or body.endswith(f"--{boundary}--")


def test_multipart_parsing_of_a_browser_body(js: WebApi) -> None:
    # Fetch formData() on multipart/form-data as a browser sends it (RFC 7578): quoted names,
    # a file part, UTF-8 text, a part without Content-Type.
    js.ctx.locals.mp = (
        "--XyZ\r\n"
        'Content-Disposition: form-data; name="title"\r\n\r\n'
        "h\u00c3\u00a9llo\r\n"
        "--XyZ\r\n"
        'Content-Disposition: form-data; name="doc"; filename="r\u00c3\u00a9sum\u00c3\u00a9.txt"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
        "\x00\x01\xff\r\n"
        "--XyZ--\r\n"
    )
    assert js.run(
        "const r = __atoll_rt.makeRequest('POST', 'http://a/', JSON.stringify([['content-type', 'multipart/form-data; boundary=XyZ']]), mp);"
        "const f = await r.formData(); const doc = f.get('doc');"
        "return [f.get('title'), doc.name, doc.type, Array.from(new Uint8Array(await doc.arrayBuffer()))];"
    ) == ["héllo", "résumé.txt", "application/octet-stream", [0, 1, 255]]
    js.ctx.eval("delete globalThis.mp")


def test_multipart_without_boundary_is_a_type_error(js: WebApi) -> None:
    # Fetch formData(): a multipart body that cannot be parsed rejects with TypeError.
    err = js.fails(
        "await new Response('x', {headers: {'content-type': 'multipart/form-data'}}).formData();"
    )
    assert err.name == "TypeError"
    err = js.fails(
        "await new Response('garbage', {headers: {'content-type': 'multipart/form-data; boundary=b'}}).formData();"
    )
    assert err.name == "TypeError"


def test_blob_bytes(js: WebApi) -> None:
    # File API: Blob.bytes() resolves to a Uint8Array of the contents (also on a body's blob()).
    assert js.run(
        "const b = await new Response('ab').blob(); const u = await b.bytes();"
        "return [u instanceof Uint8Array, Array.from(u), Array.from(await new File(['c'], 'f').bytes())];"
    ) == [True, [97, 98], [99]]
