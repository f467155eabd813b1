// sha256-assemblyscript: a whole-wasm atoll worker that hashes the request body.
//
// A WASI command run once per request (CGI over WASI, as WAGI does):
//   stdin        the request body (any bytes)
//   environment  none read
//   stdout       a CGI response: "Content-Type: text/plain", a blank line,
//                then the SHA-256 digest of the body in lowercase hex and "\n"
//
// Built with AssemblyScript and @assemblyscript/wasi-shim (build.sh), which
// maps `process.stdin` / `process.stdout` to WASI's fd_read / fd_write and
// `abort` to a message on stderr and proc_exit. SHA-256 is implemented here
// (FIPS 180-4), streaming: the body is hashed in 64 KiB chunks as it is read.

const K: StaticArray<u32> = [
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

/** Streaming SHA-256: update() with any number of chunks, then digest(). */
class Sha256 {
  private h: StaticArray<u32> = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
  ];
  private w: StaticArray<u32> = new StaticArray<u32>(64);
  private block: StaticArray<u8> = new StaticArray<u8>(64);
  private filled: i32 = 0;
  private total: u64 = 0;

  /** Hashes `len` bytes at address `ptr`. */
  update(ptr: usize, len: i32): void {
    this.total += <u64>len;
    let i = 0;
    // Top up a partial block first, then hash whole blocks in place.
    if (this.filled > 0) {
      while (this.filled < 64 && i < len) {
        this.block[this.filled++] = load<u8>(ptr + <usize>i);
      i++;
      }
      if (this.filled < 64) return;
      this.compress(changetype<usize>(this.block));
      this.filled = 0;
    }
    while (len - i >= 64) {
      this.compress(ptr + <usize>i);
      i += 64;
    }
    while (i < len) {
      this.block[this.filled++] = load<u8>(ptr + <usize>i);
      i++;
    }
  }

  /** Pads, hashes the last block(s) and returns the digest as lowercase hex. */
  hex(): string {
    const bits = this.total * 8;
    const pad = new StaticArray<u8>(72);
    pad[0] = 0x80;
    // 0x80, zeros, then the length: ends the message on a 64-byte boundary.
    const zeros = (this.filled < 56 ? 56 : 120) - this.filled - 1;
    for (let k = 0; k < 8; k++) {
      pad[1 + zeros + k] = <u8>(bits >> (<u64>(56 - 8 * k)));
    }
    this.update(changetype<usize>(pad), 1 + zeros + 8);
    let out = "";
    for (let k = 0; k < 8; k++) {
      out += this.h[k].toString(16).padStart(8, "0");
    }
    return out;
  }

  private compress(p: usize): void {
    // unchecked(): the indices are in range by construction, so skip bounds checks.
    const w = this.w;
    for (let t = 0; t < 16; t++) {
      unchecked((w[t] = bswap<u32>(load<u32>(p + <usize>(t * 4)))));
    }
    for (let t = 16; t < 64; t++) {
      const a = unchecked(w[t - 15]);
      const b = unchecked(w[t - 2]);
      const s0 = rotr<u32>(a, 7) ^ rotr<u32>(a, 18) ^ (a >>> 3);
      const s1 = rotr<u32>(b, 17) ^ rotr<u32>(b, 19) ^ (b >>> 10);
      unchecked((w[t] = unchecked(w[t - 16]) + s0 + unchecked(w[t - 7]) + s1));
    }
    const h = this.h;
    let a = unchecked(h[0]), b = unchecked(h[1]), c = unchecked(h[2]), d = unchecked(h[3]);
    let e = unchecked(h[4]), f = unchecked(h[5]), g = unchecked(h[6]), hh = unchecked(h[7]);
    for (let t = 0; t < 64; t++) {
      const S1 = rotr<u32>(e, 6) ^ rotr<u32>(e, 11) ^ rotr<u32>(e, 25);
      const ch = (e & f) ^ (~e & g);
      const t1 = hh + S1 + ch + unchecked(K[t]) + unchecked(w[t]);
      const S0 = rotr<u32>(a, 2) ^ rotr<u32>(a, 13) ^ rotr<u32>(a, 22);
      const maj = (a & b) ^ (a & c) ^ (b & c);
      const t2 = S0 + maj;
      hh = g;
      g = f;
      f = e;
      e = d + t1;
      d = c;
      c = b;
      b = a;
      a = t1 + t2;
    }
    unchecked((h[0] += a));
    unchecked((h[1] += b));
    unchecked((h[2] += c));
    unchecked((h[3] += d));
    unchecked((h[4] += e));
    unchecked((h[5] += f));
    unchecked((h[6] += g));
    unchecked((h[7] += hh));
  }
}

const hasher = new Sha256();
const chunk = new ArrayBuffer(65536);
let length: u64 = 0;
while (true) {
  const got = process.stdin.read(chunk);
  if (got <= 0) break;
  hasher.update(changetype<usize>(chunk), got);
  length += <u64>got;
}
process.stdout.write("Content-Type: text/plain; charset=utf-8\n");
process.stdout.write("X-Body-Length: " + length.toString() + "\n\n");
process.stdout.write(hasher.hex() + "\n");
