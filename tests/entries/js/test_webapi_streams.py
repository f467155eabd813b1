"""ReadableStream, WritableStream, TransformStream (https://streams.spec.whatwg.org/), from
web-streams-polyfill, in V8."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.entries.js.webapi_harness import WebApi


@pytest.fixture
def js() -> Iterator[WebApi]:
    with WebApi() as api:
        yield api


def test_readable_stream_reader(js: WebApi) -> None:
    # Streams: read() yields {value, done} in order, then done: true after close.
    assert js.run(
        "const s = new ReadableStream({start(c) { c.enqueue(1); c.enqueue(2); c.close(); }});"
        "const r = s.getReader(); const out = [];"
        "for (;;) { const {value, done} = await r.read(); if (done) break; out.push(value); }"
        "return [out, s.locked];"
    ) == [[1, 2], True]


def test_readable_stream_pull_and_backpressure(js: WebApi) -> None:
    # Streams: pull() runs after start() settles, until the queue holds highWaterMark chunks, and
    # again as chunks are read.
    assert js.run(
        "let n = 0; const s = new ReadableStream({pull(c) { n++; c.enqueue(n); if (n === 5) c.close(); }}, {highWaterMark: 2});"
        "const sync = n; for (let i = 0; i < 10; i++) await null; const filled = n;"
        "const out = []; for await (const v of s) out.push(v);"
        "return [sync, filled, out];"
    ) == [0, 2, [1, 2, 3, 4, 5]]


def test_async_iteration_and_from(js: WebApi) -> None:
    # Streams: ReadableStream is async iterable; ReadableStream.from wraps an (async) iterable.
    assert js.run(
        "const out = []; for await (const v of ReadableStream.from([1, 2, 3])) out.push(v); return out;"
    ) == [1, 2, 3]


def test_error_propagates_to_reader(js: WebApi) -> None:
    # Streams: controller.error(e) rejects pending and later reads with e.
    err = js.fails(
        "const s = new ReadableStream({start(c) { c.error(new RangeError('boom')); }}); await s.getReader().read();"
    )
    assert (err.name, err.message) == ("RangeError", "boom")


def test_cancel_reaches_the_source(js: WebApi) -> None:
    # Streams: cancel(reason) calls the underlying source's cancel with the reason.
    assert (
        js.run(
            "let why = null; const s = new ReadableStream({cancel(r) { why = r; }}); await s.cancel('enough'); return why;"
        )
        == "enough"
    )


def test_tee(js: WebApi) -> None:
    # Streams: tee() gives two branches with the same chunks.
    assert js.run(
        "const [a, b] = ReadableStream.from(['x', 'y']).tee();"
        "const read = async (s) => { const o = []; for await (const v of s) o.push(v); return o; };"
        "return [await read(a), await read(b)];"
    ) == [["x", "y"], ["x", "y"]]


def test_writable_stream(js: WebApi) -> None:
    # Streams: a writer's write() calls the sink's write in order; close() calls close.
    assert js.run(
        "const got = []; const w = new WritableStream({write(c) { got.push(c); }, close() { got.push('closed'); }});"
        "const writer = w.getWriter(); await writer.write('a'); await writer.write('b'); await writer.close();"
        "return got;"
    ) == ["a", "b", "closed"]


def test_transform_stream_and_pipe_through(js: WebApi) -> None:
    # Streams: pipeThrough a TransformStream applies transform() to each chunk; flush() runs last.
    assert js.run(
        "const t = new TransformStream({transform(c, ctl) { ctl.enqueue(c.toUpperCase()); }, flush(ctl) { ctl.enqueue('!'); }});"
        "const out = []; for await (const v of ReadableStream.from(['a', 'b']).pipeThrough(t)) out.push(v);"
        "return out;"
    ) == ["A", "B", "!"]


def test_identity_transform_stream(js: WebApi) -> None:
    # Streams: new TransformStream() with no transformer passes chunks through (Workers uses this
    # to stream a response body from a writer).
    assert (
        js.run(
            "const {readable, writable} = new TransformStream();"
            "const w = writable.getWriter(); w.write(new TextEncoder().encode('hi ')); w.write(new TextEncoder().encode('there')); w.close();"
            "return await new Response(readable).text();"
        )
        == "hi there"
    )


def test_pipe_to_with_abort_signal(js: WebApi) -> None:
    # Streams: pipeTo({signal}) stops when the signal aborts and rejects with its reason.
    err = js.fails(
        "const ac = new AbortController();"
        "const src = new ReadableStream({pull(c) { c.enqueue('x'); }});"
        "const dst = new WritableStream({write() { ac.abort(new TypeError('stopped')); }});"
        "await src.pipeTo(dst, {signal: ac.signal});"
    )
    assert (err.name, err.message) == ("TypeError", "stopped")


def test_byte_stream_byob(js: WebApi) -> None:
    # Streams: a type: 'bytes' stream serves a BYOB reader into the caller's buffer.
    assert js.run(
        "const s = new ReadableStream({type: 'bytes', pull(c) { const v = c.byobRequest.view; v[0] = 7; v[1] = 8; c.byobRequest.respond(2); c.close(); }});"
        "const r = s.getReader({mode: 'byob'}); const {value} = await r.read(new Uint8Array(4)); return Array.from(value);"
    ) == [7, 8]


def test_queuing_strategies(js: WebApi) -> None:
    # Streams: CountQueuingStrategy and ByteLengthQueuingStrategy size chunks.
    assert js.eval(
        "[new CountQueuingStrategy({highWaterMark: 3}).size('abc'), new ByteLengthQueuingStrategy({highWaterMark: 3}).size(new Uint8Array(5))]"
    ) == [1, 5]


def test_locked_stream_cannot_get_second_reader(js: WebApi) -> None:
    # Streams: getReader() on a locked stream throws TypeError.
    assert (
        js.fails("const s = new ReadableStream(); s.getReader(); s.getReader();").name
        == "TypeError"
    )
