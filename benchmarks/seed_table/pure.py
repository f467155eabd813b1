"""The kernels of ``examples/bench/rust/kernels.rs`` in pure Python (the "pure Python" column).

Each follows the Rust source step for step, so outputs can be compared byte for
byte; they use Python idioms where those are faster and compute the same thing
(the resize precomputes its column table, for instance).
"""

from __future__ import annotations

import struct

__all__ = ["fib", "json_count", "resize", "sha256"]


def fib(n: int) -> int:
    """Naive recursive Fibonacci."""
    return n if n < 2 else fib(n - 1) + fib(n - 2)


# --------------------------------------------------------------------------- SHA-256

_K = (
    0x428A2F98, 0x71374491, 0xB5C0FBCF, 0xE9B5DBA5, 0x3956C25B, 0x59F111F1, 0x923F82A4, 0xAB1C5ED5,
    0xD807AA98, 0x12835B01, 0x243185BE, 0x550C7DC3, 0x72BE5D74, 0x80DEB1FE, 0x9BDC06A7, 0xC19BF174,
    0xE49B69C1, 0xEFBE4786, 0x0FC19DC6, 0x240CA1CC, 0x2DE92C6F, 0x4A7484AA, 0x5CB0A9DC, 0x76F988DA,
    0x983E5152, 0xA831C66D, 0xB00327C8, 0xBF597FC7, 0xC6E00BF3, 0xD5A79147, 0x06CA6351, 0x14292967,
    0x27B70A85, 0x2E1B2138, 0x4D2C6DFC, 0x53380D13, 0x650A7354, 0x766A0ABB, 0x81C2C92E, 0x92722C85,
    0xA2BFE8A1, 0xA81A664B, 0xC24B8B70, 0xC76C51A3, 0xD192E819, 0xD6990624, 0xF40E3585, 0x106AA070,
    0x19A4C116, 0x1E376C08, 0x2748774C, 0x34B0BCB5, 0x391C0CB3, 0x4ED8AA4A, 0x5B9CCA4F, 0x682E6FF3,
    0x748F82EE, 0x78A5636F, 0x84C87814, 0x8CC70208, 0x90BEFFFA, 0xA4506CEB, 0xBEF9A3F7, 0xC67178F2,
)  # fmt: skip
_MASK = 0xFFFFFFFF
_WORDS = struct.Struct(">16I")


def _compress(state: list[int], block: bytes) -> None:
    w = list(_WORDS.unpack(block))
    for i in range(16, 64):
        a, b = w[i - 15], w[i - 2]
        s0 = ((a >> 7 | a << 25) ^ (a >> 18 | a << 14) ^ (a >> 3)) & _MASK
        s1 = ((b >> 17 | b << 15) ^ (b >> 19 | b << 13) ^ (b >> 10)) & _MASK
        w.append((w[i - 16] + s0 + w[i - 7] + s1) & _MASK)
    a, b, c, d, e, f, g, h = state
    for i in range(64):
        s1 = ((e >> 6 | e << 26) ^ (e >> 11 | e << 21) ^ (e >> 25 | e << 7)) & _MASK
        ch = (e & f) ^ (~e & g)
        t1 = (h + s1 + ch + _K[i] + w[i]) & _MASK
        s0 = ((a >> 2 | a << 30) ^ (a >> 13 | a << 19) ^ (a >> 22 | a << 10)) & _MASK
        maj = (a & b) ^ (a & c) ^ (b & c)
        h, g, f, e, d, c, b, a = g, f, e, (d + t1) & _MASK, c, b, a, (t1 + s0 + maj) & _MASK
    for i, v in enumerate((a, b, c, d, e, f, g, h)):
        state[i] = (state[i] + v) & _MASK


def sha256(data: bytes) -> bytes:
    """SHA-256 (FIPS 180-4) of ``data``."""
    state = [
        0x6A09E667,
        0xBB67AE85,
        0x3C6EF372,
        0xA54FF53A,
        0x510E527F,
        0x9B05688C,
        0x1F83D9AB,
        0x5BE0CD19,
    ]
    full = len(data) // 64 * 64
    view = memoryview(data)
    for i in range(0, full, 64):
        _compress(state, bytes(view[i : i + 64]))
    rest = bytes(view[full:])
    blocks = 1 if len(rest) < 56 else 2
    tail = rest + b"\x80" + bytes(blocks * 64 - len(rest) - 9) + struct.pack(">Q", len(data) * 8)
    for b in range(blocks):
        _compress(state, tail[b * 64 : b * 64 + 64])
    return struct.pack(">8I", *state)


# --------------------------------------------------------------------------- resize


def _sample_pos(x: int, src: int, dst: int) -> int:
    p = (2 * x + 1) * src * 128 // dst
    return 0 if p < 128 else p - 128


def resize(src: bytes, sw: int, sh: int, dw: int, dh: int) -> bytes:
    """Bilinear resize of RGBA ``src`` (``sw`` x ``sh``) to ``dw`` x ``dh``, 8-bit weights."""
    if len(src) != sw * sh * 4:
        raise ValueError("wrong image size")
    columns = []
    for x in range(dw):
        fx = _sample_pos(x, sw, dw)
        x0 = min(fx >> 8, sw - 1)
        columns.append((x0 * 4, min(x0 + 1, sw - 1) * 4, fx & 255))
    out = bytearray(dw * dh * 4)
    o = 0
    for y in range(dh):
        fy = _sample_pos(y, sh, dh)
        y0 = min(fy >> 8, sh - 1)
        row0 = y0 * sw * 4
        row1 = min(y0 + 1, sh - 1) * sw * 4
        wy = fy & 255
        for c0, c1, wx in columns:
            for c in range(4):
                top = src[row0 + c0 + c] * (256 - wx) + src[row0 + c1 + c] * wx
                bottom = src[row1 + c0 + c] * (256 - wx) + src[row1 + c1 + c] * wx
                out[o] = (top * (256 - wy) + bottom * wy + 32768) >> 16
                o += 1
    return bytes(out)


# --------------------------------------------------------------------------- JSON

_WS = b" \t\n\r"
_HEX = frozenset(b"0123456789abcdefABCDEF")
_DIGITS = frozenset(b"0123456789")


class _Invalid(Exception):
    pass


class _Parser:
    __slots__ = ("count", "i", "n", "s")

    def __init__(self, s: bytes) -> None:
        self.s = s
        self.n = len(s)
        self.i = 0
        self.count = 0

    def peek(self) -> int:
        return self.s[self.i] if self.i < self.n else 0

    def ws(self) -> None:
        s, i, n = self.s, self.i, self.n
        while i < n and s[i] in _WS:
            i += 1
        self.i = i

    def value(self, depth: int) -> None:
        if depth > 512:
            raise _Invalid
        self.count += 1
        c = self.peek()
        if c == 0x7B:  # {
            self.i += 1
            self.ws()
            if self.peek() == 0x7D:
                self.i += 1
                return
            while True:
                self.ws()
                if self.peek() != 0x22:
                    raise _Invalid
                self.string()
                self.ws()
                if self.peek() != 0x3A:
                    raise _Invalid
                self.i += 1
                self.ws()
                self.value(depth + 1)
                self.ws()
                c = self.peek()
                self.i += 1
                if c == 0x7D:
                    return
                if c != 0x2C:
                    raise _Invalid
        elif c == 0x5B:  # [
            self.i += 1
            self.ws()
            if self.peek() == 0x5D:
                self.i += 1
                return
            while True:
                self.ws()
                self.value(depth + 1)
                self.ws()
                c = self.peek()
                self.i += 1
                if c == 0x5D:
                    return
                if c != 0x2C:
                    raise _Invalid
        elif c == 0x22:
            self.string()
        elif c == 0x74:
            self.literal(b"true")
        elif c == 0x66:
            self.literal(b"false")
        elif c == 0x6E:
            self.literal(b"null")
        else:
            self.number()

    def literal(self, word: bytes) -> None:
        if self.s[self.i : self.i + len(word)] != word:
            raise _Invalid
        self.i += len(word)

    def string(self) -> None:
        s, i, n = self.s, self.i + 1, self.n
        while True:
            if i >= n:
                raise _Invalid
            c = s[i]
            i += 1
            if c == 0x22:
                self.i = i
                return
            if c == 0x5C:
                e = s[i] if i < n else 0
                if e in b'"\\/bfnrt':
                    i += 1
                elif e == 0x75:
                    if len(s[i + 1 : i + 5]) != 4 or not all(h in _HEX for h in s[i + 1 : i + 5]):
                        raise _Invalid
                    i += 5
                else:
                    raise _Invalid
            elif c < 0x20:
                raise _Invalid

    def digits(self) -> int:
        s, i, n = self.s, self.i, self.n
        start = i
        while i < n and s[i] in _DIGITS:
            i += 1
        self.i = i
        return i - start

    def number(self) -> None:
        if self.peek() == 0x2D:
            self.i += 1
        if self.peek() == 0x30:
            self.i += 1
        elif self.digits() == 0:
            raise _Invalid
        if self.peek() == 0x2E:
            self.i += 1
            if self.digits() == 0:
                raise _Invalid
        if self.peek() in (0x65, 0x45):
            self.i += 1
            if self.peek() in (0x2B, 0x2D):
                self.i += 1
            if self.digits() == 0:
                raise _Invalid


def json_count(data: bytes) -> int:
    """The number of values in the JSON text ``data`` (keys not counted); -1 if invalid."""
    parser = _Parser(data)
    try:
        parser.ws()
        parser.value(0)
        parser.ws()
    except _Invalid:
        return -1
    return parser.count if parser.i == parser.n else -1
