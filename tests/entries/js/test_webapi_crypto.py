"""crypto.getRandomValues, randomUUID and crypto.subtle (https://w3c.github.io/webcrypto/;
Workers: https://developers.cloudflare.com/workers/runtime-apis/web-crypto/), in V8. Digests and
HMACs are checked against Python's hashlib/hmac."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterator

import pytest

from tests.entries.js.webapi_harness import WebApi


@pytest.fixture
def js() -> Iterator[WebApi]:
    with WebApi() as api:
        yield api


HEX = "const hex = (b) => Array.from(new Uint8Array(b), (x) => x.toString(16).padStart(2, '0')).join('');"


def test_get_random_values_fills_from_the_host(js: WebApi) -> None:
    # WebCrypto: getRandomValues fills an integer typed array in place and returns it; the bytes
    # come from the host's randomBytes (HOST.md).
    assert js.eval(
        "(() => { const a = new Uint32Array(4); const r = crypto.getRandomValues(a); return [r === a, a.some((x) => x !== 0)]; })()"
    ) == [True, True]
    assert js.host.random_calls[-1] == 16


def test_get_random_values_rejects_float_arrays_and_big_requests(js: WebApi) -> None:
    # WebCrypto: a non-integer array is a TypeMismatchError, more than 65536 bytes a
    # QuotaExceededError (both DOMExceptions).
    err = js.fails("crypto.getRandomValues(new Float64Array(1))")
    assert err.name == "TypeMismatchError"
    err = js.fails("crypto.getRandomValues(new Uint8Array(65537))")
    assert err.name == "QuotaExceededError"
    assert js.eval("crypto.getRandomValues(new Uint8Array(65536)).length") == 65536


def test_random_uuid_is_version_4(js: WebApi) -> None:
    # WebCrypto randomUUID: an RFC 4122 version 4 UUID, lower-case.
    uuids = js.eval("Array.from({length: 20}, () => crypto.randomUUID())")
    assert len(set(uuids)) == 20
    for u in uuids:
        assert re.fullmatch(
            r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", u
        )


@pytest.mark.parametrize(
    ("name", "py"),
    [("SHA-1", "sha1"), ("SHA-256", "sha256"), ("SHA-384", "sha384"), ("SHA-512", "sha512")],
)
def test_digest(js: WebApi, name: str, py: str) -> None:
    # WebCrypto digest(algorithm, data) resolves to an ArrayBuffer with the hash.
    data = "The quick brown fox jumps over the lazy dog é"
    out = js.run(
        f"{HEX} const d = await crypto.subtle.digest('{name}', new TextEncoder().encode({data!r}));"
        "return [d instanceof ArrayBuffer, hex(d)];"
    )
    assert out == [True, hashlib.new(py, data.encode()).hexdigest()]


def test_digest_algorithm_forms(js: WebApi) -> None:
    # WebCrypto "normalize an algorithm": a name string or {name}, case-insensitive; any
    # BufferSource as data.
    assert (
        js.run(
            f"{HEX} const a = hex(await crypto.subtle.digest({{name: 'sha-256'}}, new Uint8Array([97]).buffer));"
            "const b = hex(await crypto.subtle.digest('SHA-256', new DataView(new Uint8Array([97]).buffer)));"
            "return a === b ? a : [a, b];"
        )
        == hashlib.sha256(b"a").hexdigest()
    )


def test_digest_unknown_algorithm_and_bad_data(js: WebApi) -> None:
    # WebCrypto: an unknown algorithm rejects with NotSupportedError; non-buffer data with TypeError.
    assert (
        js.fails("await crypto.subtle.digest('MD5', new Uint8Array(1));").name
        == "NotSupportedError"
    )
    assert js.fails("await crypto.subtle.digest('SHA-256', 'text');").name == "TypeError"


@pytest.mark.parametrize(
    ("hash_name", "py"), [("SHA-256", "sha256"), ("SHA-1", "sha1"), ("SHA-512", "sha512")]
)
def test_hmac_sign_and_verify(js: WebApi, hash_name: str, py: str) -> None:
    # WebCrypto HMAC: importKey('raw', ...) then sign gives the MAC; verify accepts it and rejects
    # a changed one.
    out = js.run(
        f"{HEX} const enc = new TextEncoder();"
        f"const key = await crypto.subtle.importKey('raw', enc.encode('secret'), {{name: 'HMAC', hash: '{hash_name}'}}, false, ['sign', 'verify']);"
        "const sig = await crypto.subtle.sign('HMAC', key, enc.encode('message'));"
        "const ok = await crypto.subtle.verify('HMAC', key, sig, enc.encode('message'));"
        "const bad = new Uint8Array(sig).slice(); bad[0] ^= 1;"
        "const nok = await crypto.subtle.verify({name: 'HMAC'}, key, bad, enc.encode('message'));"
        "return [hex(sig), ok, nok, key.type, key.extractable, key.algorithm, key.usages];"
    )
    expected = hmac.new(b"secret", b"message", py).hexdigest()
    assert out == [
        expected,
        True,
        False,
        "secret",
        False,
        {"name": "HMAC", "hash": {"name": hash_name}, "length": 48},
        ["sign", "verify"],
    ]


def test_hmac_key_usages_are_enforced(js: WebApi) -> None:
    # WebCrypto: sign with a verify-only key is an InvalidAccessError; an HMAC key with an
    # encrypt usage is a SyntaxError.
    err = js.fails(
        "const key = await crypto.subtle.importKey('raw', new Uint8Array(8), {name: 'HMAC', hash: 'SHA-256'}, false, ['verify']);"
        "await crypto.subtle.sign('HMAC', key, new Uint8Array(1));"
    )
    assert err.name == "InvalidAccessError"
    err = js.fails(
        "await crypto.subtle.importKey('raw', new Uint8Array(8), {name: 'HMAC', hash: 'SHA-256'}, false, ['encrypt']);"
    )
    assert err.name == "SyntaxError"


def test_hmac_jwk_round_trip_and_export(js: WebApi) -> None:
    # WebCrypto: an extractable key exports as raw bytes and as a JWK (kty oct, k base64url,
    # alg HS256) that imports back to the same key.
    assert js.run(
        f"{HEX} const raw = new Uint8Array([251, 255, 0, 1]);"
        "const k1 = await crypto.subtle.importKey('raw', raw, {name: 'HMAC', hash: 'SHA-256'}, true, ['sign']);"
        "const jwk = await crypto.subtle.exportKey('jwk', k1);"
        "const k2 = await crypto.subtle.importKey('jwk', jwk, {name: 'HMAC', hash: 'SHA-256'}, true, ['sign']);"
        "const m = new Uint8Array([1]);"
        "return [jwk.kty, jwk.k, jwk.alg, hex(await crypto.subtle.exportKey('raw', k2)),"
        " hex(await crypto.subtle.sign('HMAC', k1, m)) === hex(await crypto.subtle.sign('HMAC', k2, m))];"
    ) == ["oct", "-_8AAQ", "HS256", "fbff0001", True]


def test_non_extractable_key_cannot_be_exported(js: WebApi) -> None:
    # WebCrypto exportKey: a non-extractable key is an InvalidAccessError.
    err = js.fails(
        "const k = await crypto.subtle.importKey('raw', new Uint8Array(4), {name: 'HMAC', hash: 'SHA-256'}, false, ['sign']);"
        "await crypto.subtle.exportKey('raw', k);"
    )
    assert err.name == "InvalidAccessError"


def test_generate_hmac_key(js: WebApi) -> None:
    # WebCrypto generateKey HMAC: the default length is the hash's block size.
    assert js.run(
        "const k = await crypto.subtle.generateKey({name: 'HMAC', hash: 'SHA-512'}, true, ['sign']);"
        "return [k.algorithm.length, (await crypto.subtle.exportKey('raw', k)).byteLength];"
    ) == [1024, 128]


def test_unsupported_operations_reject_with_not_supported(js: WebApi) -> None:
    # WebCrypto: an algorithm the implementation lacks rejects with NotSupportedError.
    err = js.fails(
        "await crypto.subtle.importKey('raw', new Uint8Array(16), 'AES-GCM', false, ['encrypt']);"
    )
    assert err.name == "NotSupportedError"
    assert js.fails(
        "await crypto.subtle.encrypt({name: 'AES-GCM'}, null, new Uint8Array(1));"
    ).name == ("NotSupportedError")


def test_timing_safe_equal(js: WebApi) -> None:
    # Workers extension: crypto.subtle.timingSafeEqual(a, b) compares equal-length buffers; a
    # length mismatch throws TypeError.
    assert js.eval(
        "[crypto.subtle.timingSafeEqual(new Uint8Array([1, 2]), new Uint8Array([1, 2])), crypto.subtle.timingSafeEqual(new Uint8Array([1, 2]), new Uint8Array([1, 3]))]"
    ) == [True, False]
    assert (
        js.fails("crypto.subtle.timingSafeEqual(new Uint8Array(1), new Uint8Array(2))").name
        == "TypeError"
    )


def test_crypto_objects_are_not_constructible(js: WebApi) -> None:
    # WebCrypto: Crypto, SubtleCrypto and CryptoKey have no public constructor (TypeError).
    for cls in ("Crypto", "SubtleCrypto", "CryptoKey"):
        assert js.fails(f"new {cls}()").name == "TypeError"
    assert js.eval("[crypto instanceof Crypto, crypto.subtle instanceof SubtleCrypto]") == [
        True,
        True,
    ]


def test_pbkdf2_derive_bits(js: WebApi) -> None:
    # WebCrypto PBKDF2: importKey('raw', password, 'PBKDF2', false, ['deriveBits']) then deriveBits
    # gives PBKDF2-HMAC(hash, password, salt, iterations) of length bits.
    out = js.run(
        f"{HEX} const enc = new TextEncoder();"
        "const key = await crypto.subtle.importKey('raw', enc.encode('password'), 'PBKDF2', false, ['deriveBits']);"
        "const bits = await crypto.subtle.deriveBits({name: 'PBKDF2', hash: 'SHA-256', salt: enc.encode('salt'), iterations: 1000}, key, 256);"
        "return [hex(bits), key.algorithm, key.extractable];"
    )
    assert out == [
        hashlib.pbkdf2_hmac("sha256", b"password", b"salt", 1000, 32).hex(),
        {"name": "PBKDF2"},
        False,
    ]


def test_pbkdf2_limits(js: WebApi) -> None:
    # WebCrypto: a PBKDF2 key cannot be extractable (SyntaxError). Workers: more than 100,000
    # iterations is NotSupportedError.
    err = js.fails(
        "await crypto.subtle.importKey('raw', new Uint8Array(4), 'PBKDF2', true, ['deriveBits']);"
    )
    assert err.name == "SyntaxError"
    err = js.fails(
        "const key = await crypto.subtle.importKey('raw', new Uint8Array(4), 'PBKDF2', false, ['deriveBits']);"
        "await crypto.subtle.deriveBits({name: 'PBKDF2', hash: 'SHA-256', salt: new Uint8Array(4), iterations: 100001}, key, 256);"
    )
    assert err.name == "NotSupportedError"


def test_hkdf_derive_bits(js: WebApi) -> None:
    # WebCrypto HKDF (RFC 5869): extract with salt, expand with info, to length bits.
    ikm, salt, info = b"input key", b"salty", b"context"
    prk = hmac.new(salt, ikm, "sha256").digest()
    okm = hmac.new(prk, info + b"\x01", "sha256").digest()[:20]
    out = js.run(
        f"{HEX} const enc = new TextEncoder();"
        "const key = await crypto.subtle.importKey('raw', enc.encode('input key'), 'HKDF', false, ['deriveBits']);"
        "return hex(await crypto.subtle.deriveBits({name: 'HKDF', hash: 'SHA-256', salt: enc.encode('salty'), info: enc.encode('context')}, key, 160));"
    )
    assert out == okm.hex()


def test_derive_key_to_hmac(js: WebApi) -> None:
    # WebCrypto deriveKey: PBKDF2 bits become an HMAC key of the requested hash and length.
    out = js.run(
        f"{HEX} const enc = new TextEncoder();"
        "const base = await crypto.subtle.importKey('raw', enc.encode('pw'), 'PBKDF2', false, ['deriveKey']);"
        "const key = await crypto.subtle.deriveKey({name: 'PBKDF2', hash: 'SHA-256', salt: enc.encode('s'), iterations: 10}, base, {name: 'HMAC', hash: 'SHA-256', length: 256}, true, ['sign']);"
        "return [key.algorithm, hex(await crypto.subtle.exportKey('raw', key))];"
    )
    assert out == [
        {"name": "HMAC", "hash": {"name": "SHA-256"}, "length": 256},
        hashlib.pbkdf2_hmac("sha256", b"pw", b"s", 10, 32).hex(),
    ]
