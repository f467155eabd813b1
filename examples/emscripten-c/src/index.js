// Emscripten's glue (MODULARIZE + EXPORT_ES6) would fetch() its .wasm; on Workers (and in
// atoll) the module is imported instead and handed over with the glue's instantiateWasm hook,
// as Cloudflare's Emscripten examples do.
import createModule from "../build/greet.mjs";
import wasm from "../build/greet.wasm";

const module = await createModule({
  instantiateWasm(imports, receive) {
    const instance = new WebAssembly.Instance(wasm, imports);
    receive(instance, wasm);
    return instance.exports;
  },
});
const greet = module.cwrap("greet", "number", ["string"]);

export default {
  async fetch(request) {
    const name = new URL(request.url).searchParams.get("name") || "world";
    const pointer = greet(name);
    const text = module.UTF8ToString(pointer);
    module._free(pointer);
    return new Response(`${text}\n2 + 3 = ${module._add(2, 3)}\n`);
  },
};
