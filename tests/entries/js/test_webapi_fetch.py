"""Headers, Request, Response and the host's makeRequest/makeResponse/readResponse, in V8.

Each test cites the Fetch standard (https://fetch.spec.whatwg.org/) or the Workers docs
(https://developers.cloudflare.com/workers/runtime-apis/request/ and .../response/).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.entries.js.webapi_harness import WebApi


@pytest.fixture
def js() -> Iterator[WebApi]:
    with WebApi() as api:
        yield api


# --- Headers -------------------------------------------------------------------------------


def test_headers_get_is_case_insensitive_and_combines(js: WebApi) -> None:
    # Fetch: "get" returns the values of all headers named name, joined by ", ".
    assert js.eval("new Headers([['Accept', 'a'], ['accept', 'b']]).get('ACCEPT')") == "a, b"
    assert js.eval("new Headers().get('x')") is None


def test_headers_iteration_is_sorted_lowercased_and_combined(js: WebApi) -> None:
    # Fetch "sort and combine": names lower-cased and sorted, values of a name combined.
    assert js.eval("[...new Headers({B: '1', a: '2', b: '3'})]") == [["a", "2"], ["b", "1, 3"]]


def test_headers_set_cookie_stays_separate(js: WebApi) -> None:
    # Fetch: set-cookie is never combined when iterating; getSetCookie() lists every value.
    h = "const h = new Headers(); h.append('Set-Cookie', 'a=1'); h.append('set-cookie', 'b=2');"
    assert js.eval(f"(() => {{ {h} return [...h]; }})()") == [
        ["set-cookie", "a=1"],
        ["set-cookie", "b=2"],
    ]
    assert js.eval(f"(() => {{ {h} return h.getSetCookie(); }})()") == ["a=1", "b=2"]
    assert js.eval(f"(() => {{ {h} return h.get('set-cookie'); }})()") == "a=1, b=2"


def test_headers_values_are_normalized_and_validated(js: WebApi) -> None:
    # Fetch "normalize": leading/trailing HTTP whitespace removed; a name must be a token and a
    # value must not contain NUL, CR or LF (TypeError).
    assert js.eval("new Headers({a: '  x y \\t'}).get('a')") == "x y"
    err = js.fails("new Headers({'bad name': 'x'})")
    assert err.name == "TypeError"
    err = js.fails("new Headers({a: 'x\\r\\ny: z'})")
    assert err.name == "TypeError"


def test_headers_set_replaces_and_delete_removes(js: WebApi) -> None:
    # Fetch: "set" replaces the first header of that name and removes the others.
    code = "const h = new Headers([['a','1'],['b','2'],['a','3']]); h.set('A','9'); const s = [...h]; h.delete('b'); return [s, [...h], h.has('b')];"
    assert js.run(code) == [[["a", "9"], ["b", "2"]], [["a", "9"]], False]


def test_headers_init_forms(js: WebApi) -> None:
    # Fetch HeadersInit: a Headers, a sequence of pairs or a record; a pair must have 2 items.
    assert js.eval("[...new Headers(new Headers({x: '1'}))]") == [["x", "1"]]
    assert js.fails("new Headers([['a']])").name == "TypeError"
    assert js.fails("new Headers(null)").name == "TypeError"


def test_headers_foreach_and_iterators(js: WebApi) -> None:
    # Web IDL iterable: forEach(value, key, parent), keys(), values(), entries().
    code = "const h = new Headers({b: '2', a: '1'}); const seen = []; h.forEach((v, k, p) => seen.push([k, v, p === h])); return [seen, [...h.keys()], [...h.values()], Object.prototype.toString.call(h.entries())];"
    assert js.run(code) == [
        [["a", "1", True], ["b", "2", True]],
        ["a", "b"],
        ["1", "2"],
        "[object Headers Iterator]",
    ]


# --- Request -------------------------------------------------------------------------------


def test_request_defaults(js: WebApi) -> None:
    # Fetch: method GET, redirect "follow", an AbortSignal, no body; url serialized by the URL parser.
    assert js.run(
        "const r = new Request('HTTPS://Example.COM/a/../b?q=1');"
        "return [r.method, r.url, r.redirect, r.signal.aborted, r.body, r.bodyUsed, r.cf];"
    ) == ["GET", "https://example.com/b?q=1", "follow", False, None, False, None]


def test_request_relative_url_is_a_type_error(js: WebApi) -> None:
    # Workers has no base URL: new Request('/path') throws TypeError.
    assert js.fails("new Request('/relative')").name == "TypeError"


def test_request_method_is_normalized(js: WebApi) -> None:
    # Fetch "normalize a method": DELETE GET HEAD OPTIONS POST PUT upper-cased, others kept;
    # CONNECT, TRACE, TRACK are forbidden (TypeError).
    assert js.eval("new Request('http://a/', {method: 'post'}).method") == "POST"
    assert js.eval("new Request('http://a/', {method: 'patch'}).method") == "patch"
    assert js.fails("new Request('http://a/', {method: 'TRACE'})").name == "TypeError"
    assert js.fails("new Request('http://a/', {method: 'bad method'})").name == "TypeError"


def test_request_get_with_body_is_a_type_error(js: WebApi) -> None:
    # Fetch Request constructor step: a GET or HEAD request with a body throws TypeError.
    assert js.fails("new Request('http://a/', {body: 'x'})").name == "TypeError"
    assert js.fails("new Request('http://a/', {method: 'HEAD', body: 'x'})").name == "TypeError"


def test_request_body_and_content_type(js: WebApi) -> None:
    # Fetch "extract a body": a string body gets text/plain;charset=UTF-8 unless set.
    assert js.run(
        "const r = new Request('http://a/', {method: 'POST', body: 'héllo'});"
        "return [await r.text(), r.headers.get('content-type'), r.bodyUsed];"
    ) == ["héllo", "text/plain;charset=UTF-8", True]


def test_request_body_used_once(js: WebApi) -> None:
    # Fetch "consume body": a second read rejects with TypeError (body already used).
    err = js.fails(
        "const r = new Request('http://a/', {method: 'POST', body: 'x'}); await r.text(); await r.text();"
    )
    assert err.name == "TypeError"
    assert "already been used" in err.message


def test_request_from_request_takes_the_body(js: WebApi) -> None:
    # Fetch: new Request(input) without init.body moves input's body; input becomes used.
    assert js.run(
        "const a = new Request('http://a/', {method: 'PUT', body: 'data', headers: {x: '1'}});"
        "const b = new Request(a, {headers: {y: '2'}});"
        "return [b.method, b.url, [...b.headers], await b.text(), a.bodyUsed];"
    ) == ["PUT", "http://a/", [["y", "2"]], "data", True]


def test_request_clone_tees_a_stream_body(js: WebApi) -> None:
    # Fetch "clone a body": the stream is teed; both copies read the same bytes.
    assert js.run(
        "const s = new ReadableStream({start(c) { c.enqueue(new TextEncoder().encode('ab')); c.enqueue(new TextEncoder().encode('c')); c.close(); }});"
        "const r = new Request('http://a/', {method: 'POST', body: s});"
        "const c = r.clone();"
        "return [await r.text(), await c.text()];"
    ) == ["abc", "abc"]


def test_request_cf_and_signal_from_init(js: WebApi) -> None:
    # Workers: init.cf is kept on the request; Fetch: request.signal follows init.signal.
    assert js.run(
        "const ac = new AbortController();"
        "const r = new Request('http://a/', {cf: {cacheTtl: 5}, signal: ac.signal});"
        "ac.abort('why');"
        "return [r.cf.cacheTtl, r.signal.aborted, r.signal.reason];"
    ) == [5, True, "why"]


def test_request_redirect_must_be_an_enum_value(js: WebApi) -> None:
    # Fetch RequestRedirect: "follow", "error" or "manual".
    assert js.eval("new Request('http://a/', {redirect: 'manual'}).redirect") == "manual"
    assert js.fails("new Request('http://a/', {redirect: 'nope'})").name == "TypeError"


def test_request_form_data_urlencoded(js: WebApi) -> None:
    # Fetch body.formData(): application/x-www-form-urlencoded is parsed as URLSearchParams.
    assert js.run(
        "const r = new Request('http://a/', {method: 'POST', body: 'a=1&b=x+y&a=%C3%A9', headers: {'content-type': 'application/x-www-form-urlencoded'}});"
        "const f = await r.formData(); return [f.getAll('a'), f.get('b')];"
    ) == [["1", "é"], "x y"]


def test_request_form_data_multipart_round_trip(js: WebApi) -> None:
    # Fetch: a FormData body is sent as multipart/form-data with a boundary; formData() reads it
    # back, a file entry as a File with name and type.
    assert js.run(
        "const f = new FormData(); f.append('name', 'Zoë'); f.append('up', new File(['bytes'], 'a.txt', {type: 'text/plain'}));"
        "const r = new Request('http://a/', {method: 'POST', body: f});"
        "const ct = r.headers.get('content-type');"
        "const g = await r.formData(); const file = g.get('up');"
        "return [ct.startsWith('multipart/form-data; boundary='), g.get('name'), file instanceof File, file.name, file.type, await file.text()];"
    ) == [True, "Zoë", True, "a.txt", "text/plain", "bytes"]


def test_request_form_data_of_other_types_is_a_type_error(js: WebApi) -> None:
    # Fetch: formData() on a body that is neither multipart nor urlencoded rejects with TypeError.
    err = js.fails("await new Request('http://a/', {method: 'POST', body: 'x'}).formData();")
    assert err.name == "TypeError"


# --- Response ------------------------------------------------------------------------------


def test_response_defaults(js: WebApi) -> None:
    # Fetch: status 200, ok, statusText "", type "default", url "", redirected false.
    assert js.run(
        "const r = new Response();"
        "return [r.status, r.ok, r.statusText, r.type, r.url, r.redirected, r.body, await r.text()];"
    ) == [200, True, "", "default", "", False, None, ""]


def test_response_status_range(js: WebApi) -> None:
    # Fetch: a status outside 200-599 throws RangeError.
    assert js.fails("new Response('x', {status: 199})").name == "RangeError"
    assert js.fails("new Response('x', {status: 600})").name == "RangeError"
    assert js.eval("new Response('x', {status: 404}).ok") is False


def test_response_null_body_status_with_body(js: WebApi) -> None:
    # Fetch: 204, 205, 304 (null body statuses) with a body throw TypeError.
    assert js.fails("new Response('x', {status: 204})").name == "TypeError"
    assert js.eval("new Response(null, {status: 204}).status") == 204


def test_response_status_text_must_be_a_reason_phrase(js: WebApi) -> None:
    # Fetch: statusText must match the reason-phrase production (TypeError otherwise).
    assert js.fails("new Response('x', {statusText: 'a\\nb'})").name == "TypeError"


def test_response_body_kinds(js: WebApi) -> None:
    # Fetch BodyInit: string, ArrayBuffer, typed array, DataView, Blob, URLSearchParams, stream.
    assert js.run(
        "const enc = new TextEncoder();"
        "const s = new ReadableStream({start(c) { c.enqueue(enc.encode('st')); c.enqueue(enc.encode('ream')); c.close(); }});"
        "return await Promise.all(["
        "  new Response('text').text(),"
        "  new Response(enc.encode('typed')).text(),"
        "  new Response(enc.encode('buffer').buffer).text(),"
        "  new Response(new DataView(enc.encode('view').buffer)).text(),"
        "  new Response(new Blob(['bl', 'ob'])).text(),"
        "  new Response(new URLSearchParams({a: '1 2'})).text(),"
        "  new Response(s).text(),"
        "]);"
    ) == ["text", "typed", "buffer", "view", "blob", "a=1+2", "stream"]


def test_response_content_type_from_body(js: WebApi) -> None:
    # Fetch "extract a body": Content-Type from the body kind, unless the init set one.
    assert js.eval(
        "[new Response('x').headers.get('content-type'),"
        " new Response(new URLSearchParams('a=1')).headers.get('content-type'),"
        " new Response(new Blob([], {type: 'image/PNG'})).headers.get('content-type'),"
        " new Response(new Uint8Array(1)).headers.get('content-type'),"
        " new Response('x', {headers: {'content-type': 'text/html'}}).headers.get('content-type')]"
    ) == [
        "text/plain;charset=UTF-8",
        "application/x-www-form-urlencoded;charset=UTF-8",
        "image/png",
        None,
        "text/html",
    ]


def test_response_copies_buffer_bodies(js: WebApi) -> None:
    # Fetch "extract a body": a BufferSource's bytes are copied when the body is made.
    assert (
        js.run(
            "const b = new TextEncoder().encode('abc'); const r = new Response(b); b[0] = 122; return await r.text();"
        )
        == "abc"
    )


def test_response_json_and_array_buffer_and_bytes_and_blob(js: WebApi) -> None:
    # Fetch body methods: json() parses, arrayBuffer() gives an ArrayBuffer, bytes() a Uint8Array,
    # blob() a Blob typed by Content-Type.
    assert js.run(
        "const j = await new Response('{\"a\":[1,2]}').json();"
        "const ab = await new Response('xyz').arrayBuffer();"
        "const u8 = await new Response('xyz').bytes();"
        "const b = await new Response('hi', {headers: {'content-type': 'text/x-a'}}).blob();"
        "return [j, ab instanceof ArrayBuffer, ab.byteLength, u8 instanceof Uint8Array, Array.from(u8), b.type, b.size, await b.text()];"
    ) == [{"a": [1, 2]}, True, 3, True, [120, 121, 122], "text/x-a", 2, "hi"]


def test_response_json_syntax_error(js: WebApi) -> None:
    # Fetch: json() rejects with the SyntaxError of JSON.parse.
    assert js.fails("await new Response('{nope').json();").name == "SyntaxError"


def test_response_text_decodes_utf8_with_replacement_and_bom(js: WebApi) -> None:
    # Fetch text(): "UTF-8 decode" drops a leading BOM and replaces malformed bytes with U+FFFD.
    assert js.run(
        "return await new Response(new Uint8Array([0xEF, 0xBB, 0xBF, 0x61, 0xFF, 0x62])).text();"
    ) == ("a\ufffdb")


def test_response_body_is_a_byte_stream(js: WebApi) -> None:
    # Workers/Fetch: response.body is a ReadableStream of Uint8Array chunks; reading it disturbs
    # the body (bodyUsed) and a later text() rejects.
    assert js.run(
        "const r = new Response('hello'); const body = r.body;"
        "const same = body === r.body;"
        "const reader = body.getReader(); const {value} = await reader.read();"
        "const used = r.bodyUsed; reader.releaseLock();"
        "let err = null; try { await r.text(); } catch (e) { err = e.name; }"
        "return [body instanceof ReadableStream, same, value instanceof Uint8Array, new TextDecoder().decode(value), used, err];"
    ) == [True, True, True, "hello", True, "TypeError"]


def test_response_body_byob_reader(js: WebApi) -> None:
    # Streams: a body stream is a byte stream, so getReader({mode: 'byob'}) works.
    assert (
        js.run(
            "const reader = new Response('abcdef').body.getReader({mode: 'byob'});"
            "const {value} = await reader.read(new Uint8Array(4)); return new TextDecoder().decode(value);"
        )
        == "abcd"
    )


def test_response_clone(js: WebApi) -> None:
    # Fetch clone(): same status/headers/body; a used body cannot be cloned (TypeError).
    assert js.run(
        "const r = new Response('data', {status: 201, headers: {a: 'b'}}); const c = r.clone();"
        "return [c.status, c.headers.get('a'), await r.text(), await c.text()];"
    ) == [201, "b", "data", "data"]
    err = js.fails("const r = new Response('x'); await r.text(); r.clone();")
    assert err.name == "TypeError"


def test_response_clone_of_a_read_stream(js: WebApi) -> None:
    # Fetch: clone() after .body was made tees the stream; both branches see all bytes.
    assert js.run(
        "const r = new Response('streamed'); r.body; const c = r.clone();"
        "return [await c.text(), await r.text()];"
    ) == ["streamed", "streamed"]


def test_response_json_static(js: WebApi) -> None:
    # Fetch Response.json(data, init): JSON body, Content-Type application/json, init applied.
    assert js.run(
        "const r = Response.json({a: 1}, {status: 202, headers: {x: 'y'}});"
        "return [r.status, r.headers.get('content-type'), r.headers.get('x'), await r.text()];"
    ) == [202, "application/json", "y", '{"a":1}']
    assert js.fails("Response.json(undefined)").name == "TypeError"


def test_response_redirect_static(js: WebApi) -> None:
    # Fetch Response.redirect(url, status): Location is the parsed URL, status must be a redirect
    # status (RangeError), headers immutable.
    assert js.run(
        "const r = Response.redirect('https://example.com/a b', 301);"
        "let err = null; try { r.headers.set('x', 'y'); } catch (e) { err = e.name; }"
        "return [r.status, r.headers.get('location'), err];"
    ) == [301, "https://example.com/a%20b", "TypeError"]
    assert js.eval("Response.redirect('https://example.com/').status") == 302
    assert js.fails("Response.redirect('https://example.com/', 200)").name == "RangeError"


def test_response_error_static(js: WebApi) -> None:
    # Fetch Response.error(): type "error", status 0, immutable headers.
    assert js.eval(
        "(() => { const r = Response.error(); return [r.type, r.status, r.ok]; })()"
    ) == [
        "error",
        0,
        False,
    ]


def test_response_stream_chunks_must_be_bytes(js: WebApi) -> None:
    # Fetch "fully read body": a chunk that is not a Uint8Array rejects with TypeError.
    err = js.fails(
        "const s = new ReadableStream({start(c) { c.enqueue('text'); c.close(); }}); await new Response(s).text();"
    )
    assert err.name == "TypeError"


def test_locked_stream_cannot_be_a_body(js: WebApi) -> None:
    # Fetch "extract a body": a locked or disturbed stream throws TypeError.
    err = js.fails("const s = new ReadableStream(); s.getReader(); new Response(s);")
    assert err.name == "TypeError"


def test_brand_checks(js: WebApi) -> None:
    # Web IDL: calling a method on the wrong object rejects (promise methods) with TypeError.
    err = js.fails("await Response.prototype.text.call({});")
    assert err.name == "TypeError"
    assert js.eval("Object.prototype.toString.call(new Response())") == "[object Response]"


# --- what js-core calls (__atoll_rt) -------------------------------------------------------


def test_make_request_from_host(js: WebApi) -> None:
    # HOST.md makeRequest: headers from JSON pairs, body as a binary string; the incoming request's
    # headers are immutable, as on Workers ("Can't modify immutable headers.").
    headers = json.dumps(
        [["Content-Type", "text/plain; charset=utf-8"], ["X-A", "1"], ["x-a", "2"]]
    )
    body = "héllo".encode().decode("latin-1")
    js.ctx.locals.hj = headers
    js.ctx.locals.bd = body
    assert js.run(
        "const r = __atoll_rt.makeRequest('POST', 'http://localhost:8787/p?q=1', hj, bd);"
        "let err = null; try { r.headers.set('a', 'b'); } catch (e) { err = e.message; }"
        "return [r.method, r.url, r.headers.get('x-a'), err, await r.text()];"
    ) == ["POST", "http://localhost:8787/p?q=1", "1, 2", "Can't modify immutable headers.", "héllo"]
    js.ctx.eval("delete globalThis.hj; delete globalThis.bd;")


def test_make_request_with_cf_and_unusual_url(js: WebApi) -> None:
    # HOST.md makeRequest: an optional cf JSON; a URL the parser would change is serialized.
    assert js.run(
        "const r = __atoll_rt.makeRequest('GET', 'http://h:80/a/./b', '[]', undefined, '{\"colo\":\"LHR\"}');"
        "return [r.url, r.cf.colo, r.body];"
    ) == ["http://h/a/b", "LHR", None]


def test_read_response_gives_status_headers_and_binary_body(js: WebApi) -> None:
    # HOST.md readResponse: [status, statusText, headersJson, binary body]; Set-Cookie kept apart.
    out = js.run(
        "const h = new Headers({'content-type': 'text/plain'}); h.append('set-cookie', 'a=1'); h.append('set-cookie', 'b=2');"
        "return await __atoll_rt.readResponse(new Response('é', {status: 201, statusText: 'Made', headers: h}));"
    )
    status, text, headers_json, body = out
    assert (status, text) == (201, "Made")
    assert json.loads(headers_json) == [
        ["content-type", "text/plain"],
        ["set-cookie", "a=1"],
        ["set-cookie", "b=2"],
    ]
    assert body.encode("latin-1").decode() == "é"


def test_read_response_of_a_stream_body(js: WebApi) -> None:
    # HOST.md readResponse reads a stream body whole.
    out = js.run(
        "const s = new ReadableStream({pull(c) { c.enqueue(new Uint8Array([0, 255])); c.close(); }});"
        "return await __atoll_rt.readResponse(new Response(s));"
    )
    assert out[3] == "\x00\xff"


def test_read_response_rejects_what_is_not_a_response(js: WebApi) -> None:
    # HOST.md: readResponse rejects with a TypeError naming what it got.
    err = js.fails("await __atoll_rt.readResponse({status: 200});")
    assert err.name == "TypeError"
    assert "Object" in err.message
    err = js.fails("await __atoll_rt.readResponse('text');")
    assert "string" in err.message


def test_read_response_rejects_a_used_body(js: WebApi) -> None:
    # Fetch: a used body cannot be read again.
    err = js.fails("const r = new Response('x'); await r.text(); await __atoll_rt.readResponse(r);")
    assert err.name == "TypeError"


def test_make_response_for_subrequests(js: WebApi) -> None:
    # HOST.md makeResponse: a received response with any status, its url and redirected flag.
    assert js.run(
        "const r = __atoll_rt.makeResponse(304, 'Not Modified', '[[\"etag\",\"x\"]]', undefined, 'https://a/', true);"
        "return [r.status, r.statusText, r.headers.get('etag'), r.url, r.redirected, r.body];"
    ) == [304, "Not Modified", "x", "https://a/", True, None]


def test_request_signal_follows_input_and_clone(js: WebApi) -> None:
    # Fetch: new Request(input) and input.clone() get signals that follow input's signal.
    assert js.run(
        "const ac = new AbortController(); const a = new Request('http://a/', {signal: ac.signal});"
        "const b = new Request(a); const c = a.clone(); const d = new Request('http://a/');"
        "ac.abort('stop'); return [b.signal.aborted, b.signal.reason, c.signal.aborted, d.signal.aborted, b.signal !== a.signal];"
    ) == [True, "stop", True, False, True]


def test_request_from_request_with_null_init_body_keeps_input_body(js: WebApi) -> None:
    # Fetch Request constructor: "inputOrInitBody" is the input's body when init.body is null, and
    # a GET/HEAD method with an input body throws TypeError.
    assert (
        js.run(
            "const a = new Request('http://a/', {method: 'POST', body: 'kept'});"
            "return await new Request(a, {body: null}).text();"
        )
        == "kept"
    )
    err = js.fails(
        "const a = new Request('http://a/', {method: 'POST', body: 'x'}); new Request(a, {method: 'GET', body: null});"
    )
    assert err.name == "TypeError"


def test_headers_get_all_is_set_cookie_only(js: WebApi) -> None:
    # Workers (non-standard, legacy): headers.getAll('Set-Cookie') lists the values; any other
    # name throws TypeError.
    assert js.eval(
        "(() => { const h = new Headers(); h.append('set-cookie', 'a=1'); h.append('Set-Cookie', 'b=2'); return h.getAll('Set-Cookie'); })()"
    ) == ["a=1", "b=2"]
    assert js.fails("new Headers().getAll('x')").name == "TypeError"


def test_blob_type_is_the_serialized_mime_type(js: WebApi) -> None:
    # Fetch blob(): the Blob's type is the body's MIME type, serialized (MIME Sniffing: no spaces,
    # names lower-cased) and lower-cased by the Blob constructor.
    assert (
        js.run(
            "return (await new Response('x', {headers: {'content-type': 'Text/Plain; Charset=UTF-8'}}).blob()).type;"
        )
        == "text/plain;charset=utf-8"
    )


def test_request_url_with_credentials_is_a_type_error(js: WebApi) -> None:
    # Fetch Request constructor: a URL that includes credentials throws TypeError.
    assert js.fails("new Request('http://user:pw@a/')").name == "TypeError"


def test_second_read_started_before_the_first_settles_rejects(js: WebApi) -> None:
    # Fetch "consume body": the body is marked used when the method is called, so two reads
    # started together get one result and one TypeError, for every kind of body.
    assert (
        js.run(
            "const kinds = [() => new Response('x'), () => new Response(new Uint8Array([1])), () => new Response(new Blob(['b'])),"
            " () => new Response(ReadableStream.from([new Uint8Array([2])])), () => __atoll_rt.makeRequest('POST', 'http://a/', '[]', 'z')];"
            "const out = [];"
            "for (const make of kinds) { const r = make(); const results = await Promise.allSettled([r.arrayBuffer(), r.text()]);"
            " out.push(results.map((x) => x.status === 'fulfilled' ? 'ok' : x.reason.name)); }"
            "return out;"
        )
        == [["ok", "TypeError"]] * 5
    )


def test_interface_members_are_enumerable(js: WebApi) -> None:
    # Web IDL: regular operations and attributes are enumerable on the prototype.
    assert js.eval(
        "(() => { const has = (o, k) => Object.getOwnPropertyDescriptor(o, k).enumerable;"
        " return [has(Headers.prototype, 'append'), has(Request.prototype, 'url'), has(Response.prototype, 'text'), has(Response.prototype, 'status')]; })()"
    ) == [True, True, True, True]
