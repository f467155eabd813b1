// The benchmark worker for workerd: the routes of examples/bench/src/worker.py,
// on the same examples/bench/pkg/bench.wasm (compiled by workerd at load).
import bench from "bench.wasm";

// The seed's singleton: one instance for the isolate's life.
const warm = new WebAssembly.Instance(bench, {});

function number(url, name, fallback) {
  return Number(url.searchParams.get(name) ?? fallback);
}

// Copy `body` into a fresh instance (alloc + set), call `fn(ptr, len, ...rest)`.
function withInput(instance, body, call) {
  const bytes = new Uint8Array(body);
  const ptr = instance.exports.alloc(bytes.length) >>> 0;
  new Uint8Array(instance.exports.memory.buffer, ptr, bytes.length).set(bytes);
  return call(ptr, bytes.length);
}

// A buffer returned as (ptr << 32) | len (an i64: a BigInt here), copied out.
function output(instance, packed) {
  const ptr = Number(BigInt.asUintN(64, packed) >> 32n);
  const len = Number(BigInt.asUintN(64, packed) & 0xffffffffn);
  return new Uint8Array(instance.exports.memory.buffer, ptr, len).slice();
}

export default {
  async fetch(request) {
    const url = new URL(request.url);
    switch (url.pathname) {
      case "/hello":
        return new Response("Hello, world!");
      case "/compute":
        return new Response(`Result: ${warm.exports.heavy_compute(number(url, "n", 1000)) >>> 0}`);
      case "/fresh": {
        const instance = new WebAssembly.Instance(bench, {});
        return new Response(`Result: ${instance.exports.heavy_compute(number(url, "n", 1000)) >>> 0}`);
      }
      case "/fib":
        return new Response(`Result: ${warm.exports.fib(number(url, "n", 30))}`);
      case "/sha256": {
        const instance = new WebAssembly.Instance(bench, {});
        const packed = withInput(instance, await request.arrayBuffer(), (p, n) => instance.exports.sha256(p, n));
        const hex = Array.from(output(instance, packed), (b) => b.toString(16).padStart(2, "0")).join("");
        return new Response(hex);
      }
      case "/resize": {
        const [w, h, dw, dh] = ["w", "h", "dw", "dh"].map((k) => number(url, k, 0));
        const instance = new WebAssembly.Instance(bench, {});
        const packed = withInput(instance, await request.arrayBuffer(), (p, n) =>
          instance.exports.resize(p, n, w, h, dw, dh));
        if (packed === 0n) return new Response("wrong sizes\n", { status: 400 });
        return new Response(output(instance, packed), {
          headers: { "content-type": "application/octet-stream" },
        });
      }
      case "/json": {
        const instance = new WebAssembly.Instance(bench, {});
        const count = withInput(instance, await request.arrayBuffer(), (p, n) => instance.exports.json_count(p, n));
        return new Response(String(count));
      }
      default:
        return new Response("not found\n", { status: 404 });
    }
  },
};
