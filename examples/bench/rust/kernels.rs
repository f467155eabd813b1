//! The four kernels of the seed article's table, in plain Rust with `core` only.
//!
//! Built three ways from this one file: into `bench.wasm` (`bench.rs`, for
//! atoll and for V8), natively for the host (`native.rs`, the "native" column),
//! and mirrored line for line in Python (`benchmarks/seed_table/pure.py`) and
//! JavaScript (`benchmarks/seed_table/kernels.mjs`), so every column computes
//! the same thing and the outputs can be compared.

/// Naive recursive Fibonacci: `fib(0) = 0`, `fib(1) = 1`. `fib(45)` still fits an i32.
pub fn fib(n: u32) -> u32 {
    if n < 2 {
        n
    } else {
        fib(n - 1).wrapping_add(fib(n - 2))
    }
}

/// The seed worker's `heavy_compute`: the sum of `i * i` for `i` in `0..n`, wrapping u32.
pub fn heavy_compute(n: u32) -> u32 {
    (0..n).fold(0u32, |acc, i| acc.wrapping_add(i.wrapping_mul(i)))
}

// --------------------------------------------------------------------------- SHA-256

const K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

fn compress(state: &mut [u32; 8], block: &[u8]) {
    let mut w = [0u32; 64];
    for i in 0..16 {
        w[i] = u32::from_be_bytes([block[4 * i], block[4 * i + 1], block[4 * i + 2], block[4 * i + 3]]);
    }
    for i in 16..64 {
        let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
        let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16].wrapping_add(s0).wrapping_add(w[i - 7]).wrapping_add(s1);
    }
    let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] = *state;
    for i in 0..64 {
        let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
        let ch = (e & f) ^ (!e & g);
        let t1 = h.wrapping_add(s1).wrapping_add(ch).wrapping_add(K[i]).wrapping_add(w[i]);
        let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
        let maj = (a & b) ^ (a & c) ^ (b & c);
        let t2 = s0.wrapping_add(maj);
        h = g;
        g = f;
        f = e;
        e = d.wrapping_add(t1);
        d = c;
        c = b;
        b = a;
        a = t1.wrapping_add(t2);
    }
    for (s, v) in state.iter_mut().zip([a, b, c, d, e, f, g, h]) {
        *s = s.wrapping_add(v);
    }
}

/// SHA-256 (FIPS 180-4) of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let mut state: [u32; 8] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
    ];
    let full = data.len() / 64 * 64;
    let mut i = 0;
    while i < full {
        compress(&mut state, &data[i..i + 64]);
        i += 64;
    }
    // Padding: the tail, 0x80, zeros, then the length in bits (big-endian u64).
    let rest = &data[full..];
    let mut tail = [0u8; 128];
    tail[..rest.len()].copy_from_slice(rest);
    tail[rest.len()] = 0x80;
    let blocks = if rest.len() < 56 { 1 } else { 2 };
    let bits = (data.len() as u64).wrapping_mul(8);
    tail[blocks * 64 - 8..blocks * 64].copy_from_slice(&bits.to_be_bytes());
    for b in 0..blocks {
        compress(&mut state, &tail[b * 64..b * 64 + 64]);
    }
    let mut out = [0u8; 32];
    for (i, s) in state.iter().enumerate() {
        out[4 * i..4 * i + 4].copy_from_slice(&s.to_be_bytes());
    }
    out
}

// --------------------------------------------------------------------------- resize

/// Where destination index `x` samples the source, in 1/256 of a source pixel,
/// with pixel centres aligned: `(x + 0.5) * src / dst - 0.5`, clamped at 0.
fn sample_pos(x: usize, src: usize, dst: usize) -> usize {
    let p = (2 * x + 1) * src * 128 / dst;
    if p < 128 {
        0
    } else {
        p - 128
    }
}

/// Bilinear resize of an RGBA image `src` (`sw` x `sh`) into `dst` (`dw` x `dh`),
/// in integer arithmetic with 8-bit weights (so every language gets the same bytes).
/// Returns false when a buffer has the wrong size.
pub fn resize(src: &[u8], sw: usize, sh: usize, dst: &mut [u8], dw: usize, dh: usize) -> bool {
    if sw == 0 || sh == 0 || dw == 0 || dh == 0 || src.len() != sw * sh * 4 || dst.len() != dw * dh * 4 {
        return false;
    }
    for y in 0..dh {
        let fy = sample_pos(y, sh, dh);
        let y0 = (fy >> 8).min(sh - 1);
        let y1 = (y0 + 1).min(sh - 1);
        let wy = (fy & 255) as u32;
        let row0 = y0 * sw * 4;
        let row1 = y1 * sw * 4;
        for x in 0..dw {
            let fx = sample_pos(x, sw, dw);
            let x0 = (fx >> 8).min(sw - 1);
            let x1 = (x0 + 1).min(sw - 1);
            let wx = (fx & 255) as u32;
            let out = (y * dw + x) * 4;
            for c in 0..4 {
                let p00 = src[row0 + x0 * 4 + c] as u32;
                let p10 = src[row0 + x1 * 4 + c] as u32;
                let p01 = src[row1 + x0 * 4 + c] as u32;
                let p11 = src[row1 + x1 * 4 + c] as u32;
                let top = p00 * (256 - wx) + p10 * wx;
                let bottom = p01 * (256 - wx) + p11 * wx;
                dst[out + c] = ((top * (256 - wy) + bottom * wy + 32768) >> 16) as u8;
            }
        }
    }
    true
}

// --------------------------------------------------------------------------- JSON

/// Parse the JSON text `data` (RFC 8259; no tree is built) and count its values:
/// every object, array, string (not keys), number, `true`, `false` and `null`.
/// Returns -1 if the text is not valid JSON or nests deeper than 512.
pub fn json_count(data: &[u8]) -> i64 {
    let mut p = Parser { s: data, i: 0, count: 0 };
    p.ws();
    if p.value(0).is_none() {
        return -1;
    }
    p.ws();
    if p.i != data.len() {
        return -1;
    }
    p.count as i64
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
    count: u64,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> u8 {
        if self.i < self.s.len() {
            self.s[self.i]
        } else {
            0
        }
    }

    fn ws(&mut self) {
        while matches!(self.peek(), b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }

    fn value(&mut self, depth: u32) -> Option<()> {
        if depth > 512 {
            return None;
        }
        self.count += 1;
        match self.peek() {
            b'{' => {
                self.i += 1;
                self.ws();
                if self.peek() == b'}' {
                    self.i += 1;
                    return Some(());
                }
                loop {
                    self.ws();
                    if self.peek() != b'"' {
                        return None;
                    }
                    self.string()?;
                    self.ws();
                    if self.peek() != b':' {
                        return None;
                    }
                    self.i += 1;
                    self.ws();
                    self.value(depth + 1)?;
                    self.ws();
                    match self.peek() {
                        b',' => self.i += 1,
                        b'}' => {
                            self.i += 1;
                            return Some(());
                        }
                        _ => return None,
                    }
                }
            }
            b'[' => {
                self.i += 1;
                self.ws();
                if self.peek() == b']' {
                    self.i += 1;
                    return Some(());
                }
                loop {
                    self.ws();
                    self.value(depth + 1)?;
                    self.ws();
                    match self.peek() {
                        b',' => self.i += 1,
                        b']' => {
                            self.i += 1;
                            return Some(());
                        }
                        _ => return None,
                    }
                }
            }
            b'"' => self.string(),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            _ => self.number(),
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        if self.s.len() - self.i >= word.len() && &self.s[self.i..self.i + word.len()] == word {
            self.i += word.len();
            Some(())
        } else {
            None
        }
    }

    fn string(&mut self) -> Option<()> {
        self.i += 1; // the opening quote
        loop {
            if self.i >= self.s.len() {
                return None;
            }
            let c = self.s[self.i];
            self.i += 1;
            match c {
                b'"' => return Some(()),
                b'\\' => {
                    match self.peek() {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.i += 1,
                        b'u' => {
                            self.i += 1;
                            for _ in 0..4 {
                                if !self.peek().is_ascii_hexdigit() {
                                    return None;
                                }
                                self.i += 1;
                            }
                        }
                        _ => return None,
                    }
                }
                0..=0x1f => return None,
                _ => {}
            }
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.i;
        while self.peek().is_ascii_digit() {
            self.i += 1;
        }
        self.i - start
    }

    fn number(&mut self) -> Option<()> {
        if self.peek() == b'-' {
            self.i += 1;
        }
        if self.peek() == b'0' {
            self.i += 1;
        } else if self.digits() == 0 {
            return None;
        }
        if self.peek() == b'.' {
            self.i += 1;
            if self.digits() == 0 {
                return None;
            }
        }
        if matches!(self.peek(), b'e' | b'E') {
            self.i += 1;
            if matches!(self.peek(), b'+' | b'-') {
                self.i += 1;
            }
            if self.digits() == 0 {
                return None;
            }
        }
        Some(())
    }
}
