// my-worker: JavaScript calling a Rust WebAssembly module (rust/lib.rs → build/greeter.wasm).
import greeterModule from "../build/greeter.wasm"; // a WebAssembly.Module

// Instantiated once per isolate, at load (top-level await, as in the seed article),
// and reused by every request this isolate serves.
const greeter = await greeterModule();
const { memory, alloc, dealloc, greet, count_vowels } = greeter.exports;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

// A string crosses as UTF-8 bytes copied into the module's memory, passed as (ptr, len).
function withString(text, fn) {
  const bytes = encoder.encode(text);
  const ptr = alloc(bytes.length);
  new Uint8Array(memory.buffer, ptr, bytes.length).set(bytes);
  try {
    return fn(ptr, bytes.length);
  } finally {
    dealloc(ptr, bytes.length);
  }
}

// A string result comes back as (ptr << 32) | len (a BigInt: the export returns an i64).
function takeString(packed) {
  const ptr = Number(packed >> 32n);
  const len = Number(packed & 0xffffffffn);
  const text = decoder.decode(new Uint8Array(memory.buffer, ptr, len));
  dealloc(ptr, len);
  return text;
}

export default {
  async fetch(request) {
    const name = new URL(request.url).searchParams.get("name") || "world";
    const greeting = takeString(withString(name, greet));
    const vowels = withString(name, count_vowels);
    return new Response(`${greeting}\nThere are ${vowels} vowels in '${name}'.\n`);
  },
};
