// The node columns of the seed table: the kernels of examples/bench/rust/kernels.rs
// in JavaScript ("node JS"), and the same bench.wasm in V8 ("V8 wasm").
//
//   node kernels.mjs '{"kernel": "sha256", "input": "FILE", "params": [], "wasm": "bench.wasm"}'
//
// Warms both up on small inputs (so V8's optimising tiers have run), then times one
// run of each and prints {"js": {"result", "ms", "wall_ms"}, "wasm": {..., "copy_ms"}}.
// "ms" is CPU time (process.cpuUsage: user + system, all of node's threads; after the
// warm-up V8's background threads are idle), as in the other columns. "result" is what
// the Python columns print: hex digests, numbers as strings.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";

// ------------------------------------------------------------------ JS kernels

function fib(n) {
  return n < 2 ? n : fib(n - 1) + fib(n - 2);
}

const K = new Uint32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);

const rotr = (x, n) => (x >>> n) | (x << (32 - n));

function compress(state, view, offset, w) {
  for (let i = 0; i < 16; i++) w[i] = view.getUint32(offset + 4 * i);
  for (let i = 16; i < 64; i++) {
    const a = w[i - 15], b = w[i - 2];
    const s0 = rotr(a, 7) ^ rotr(a, 18) ^ (a >>> 3);
    const s1 = rotr(b, 17) ^ rotr(b, 19) ^ (b >>> 10);
    w[i] = (w[i - 16] + s0 + w[i - 7] + s1) | 0;
  }
  let [a, b, c, d, e, f, g, h] = state;
  for (let i = 0; i < 64; i++) {
    const s1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25);
    const ch = (e & f) ^ (~e & g);
    const t1 = (h + s1 + ch + K[i] + w[i]) | 0;
    const s0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22);
    const maj = (a & b) ^ (a & c) ^ (b & c);
    h = g; g = f; f = e; e = (d + t1) | 0; d = c; c = b; b = a; a = (t1 + s0 + maj) | 0;
  }
  const v = [a, b, c, d, e, f, g, h];
  for (let i = 0; i < 8; i++) state[i] = (state[i] + v[i]) | 0;
}

function sha256(data) {
  const state = new Int32Array([
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
  ]);
  const w = new Int32Array(64);
  const full = Math.floor(data.length / 64) * 64;
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  for (let i = 0; i < full; i += 64) compress(state, view, i, w);
  const rest = data.length - full;
  const blocks = rest < 56 ? 1 : 2;
  const tail = new Uint8Array(128);
  tail.set(data.subarray(full));
  tail[rest] = 0x80;
  const tailView = new DataView(tail.buffer);
  const bits = data.length * 8;
  tailView.setUint32(blocks * 64 - 8, Math.floor(bits / 2 ** 32));
  tailView.setUint32(blocks * 64 - 4, bits >>> 0);
  for (let b = 0; b < blocks; b++) compress(state, tailView, b * 64, w);
  const out = new Uint8Array(32);
  const outView = new DataView(out.buffer);
  for (let i = 0; i < 8; i++) outView.setInt32(4 * i, state[i]);
  return out;
}

function samplePos(x, src, dst) {
  const p = Math.floor(((2 * x + 1) * src * 128) / dst);
  return p < 128 ? 0 : p - 128;
}

function resize(src, sw, sh, dw, dh) {
  const dst = new Uint8Array(dw * dh * 4);
  for (let y = 0; y < dh; y++) {
    const fy = samplePos(y, sh, dh);
    const y0 = Math.min(fy >> 8, sh - 1);
    const y1 = Math.min(y0 + 1, sh - 1);
    const wy = fy & 255;
    const row0 = y0 * sw * 4, row1 = y1 * sw * 4;
    for (let x = 0; x < dw; x++) {
      const fx = samplePos(x, sw, dw);
      const x0 = Math.min(fx >> 8, sw - 1);
      const x1 = Math.min(x0 + 1, sw - 1);
      const wx = fx & 255;
      const out = (y * dw + x) * 4;
      for (let c = 0; c < 4; c++) {
        const top = src[row0 + x0 * 4 + c] * (256 - wx) + src[row0 + x1 * 4 + c] * wx;
        const bottom = src[row1 + x0 * 4 + c] * (256 - wx) + src[row1 + x1 * 4 + c] * wx;
        dst[out + c] = (top * (256 - wy) + bottom * wy + 32768) >>> 16;
      }
    }
  }
  return dst;
}

// JS's JSON parser is its builtin: JSON.parse, then count the values of the tree.
function countValues(value) {
  let count = 1;
  if (Array.isArray(value)) {
    for (const item of value) count += countValues(item);
  } else if (value !== null && typeof value === "object") {
    for (const key in value) count += countValues(value[key]);
  }
  return count;
}

const decoder = new TextDecoder();
function jsonCount(data) {
  return countValues(JSON.parse(decoder.decode(data)));
}

// CPU milliseconds of this process so far.
const cpuMs = () => {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
};

// Run `f` once: [its value, CPU ms, wall ms].
function timed(f) {
  const wall = performance.now();
  const cpu = cpuMs();
  const value = f();
  return [value, cpuMs() - cpu, performance.now() - wall];
}

const hex = (bytes) => Buffer.from(bytes).toString("hex");
const sha = (bytes) => createHash("sha256").update(bytes).digest("hex");

const js = {
  sha256: (data) => hex(sha256(data)),
  resize: (data, [sw, sh, dw, dh]) => resize(data, sw, sh, dw, dh),
  fib: (_, [n]) => String(fib(n)),
  json: (data) => String(jsonCount(data)),
};
const jsResult = { resize: sha };

// ------------------------------------------------------------------ the same .wasm in V8

function wasmRunner(module) {
  // A fresh instance per run, like atoll's column; the copy in and out is timed apart.
  return (kernel, data, params) => {
    const e = new WebAssembly.Instance(module, {}).exports;
    let copyMs = 0;
    let ptr = 0;
    if (data.length) {
      const [p, ms] = timed(() => {
        const p = e.alloc(data.length) >>> 0;
        new Uint8Array(e.memory.buffer, p, data.length).set(data);
        return p;
      });
      ptr = p;
      copyMs += ms;
    }
    const out = (packed) => {
      const [bytes, ms] = timed(() => {
        const p = Number(BigInt.asUintN(64, packed) >> 32n);
        const n = Number(BigInt.asUintN(64, packed) & 0xffffffffn);
        return new Uint8Array(e.memory.buffer, p, n).slice();
      });
      copyMs += ms;
      return bytes;
    };
    const [raw, ms, wallMs] = timed(() => {
      if (kernel === "sha256") return e.sha256(ptr, data.length);
      if (kernel === "resize") return e.resize(ptr, data.length, ...params);
      if (kernel === "fib") return e.fib(params[0]);
      return e.json_count(ptr, data.length);
    });
    let result;
    if (kernel === "sha256") result = hex(out(raw));
    else if (kernel === "resize") result = sha(out(raw));
    else result = String(raw);
    return { result, ms, wall_ms: wallMs, copy_ms: copyMs };
  };
}

// ------------------------------------------------------------------ warm-up and one timed run

function smallInput(kernel) {
  if (kernel === "resize") return [new Uint8Array(64 * 36 * 4).fill(7), [64, 36, 32, 18]];
  if (kernel === "fib") return [new Uint8Array(0), [18]];
  if (kernel === "json") {
    const text = "[" + Array(500).fill('{"a": [1, -2.5e3, "x\\n"], "b": null, "c": true}').join(",") + "]";
    return [new TextEncoder().encode(text), []];
  }
  return [new Uint8Array(16 * 1024).fill(1), []];
}

const spec = JSON.parse(process.argv[2]);
const data = spec.input ? new Uint8Array(readFileSync(spec.input)) : new Uint8Array(0);
const params = spec.params;
const runWasm = wasmRunner(new WebAssembly.Module(readFileSync(spec.wasm)));
const [small, smallParams] = smallInput(spec.kernel);
for (let i = 0; i < 30; i++) {
  js[spec.kernel](small, smallParams);
  runWasm(spec.kernel, small, smallParams);
}
await sleep(50); // let background (TurboFan) compilation finish

const [raw, jsMs, jsWallMs] = timed(() => js[spec.kernel](data, params));
const jsOut = (jsResult[spec.kernel] ?? ((x) => x))(raw);
const wasm = runWasm(spec.kernel, data, params);
console.log(JSON.stringify({ js: { result: jsOut, ms: jsMs, wall_ms: jsWallMs }, wasm }));
