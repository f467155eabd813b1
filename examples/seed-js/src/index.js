import wasmModule from '../path/to/module.wasm';
export default {
async fetch(request) {
const instance = await wasmModule();
const result = instance.exports.heavy_compute(42);
return new Response(`Result: ${result}`);
},
};
