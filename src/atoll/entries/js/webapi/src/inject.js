// esbuild injects these where a bundled package names the global without defining it (whatwg-url
// builds a TextEncoder when it loads): such references bind to these implementations directly,
// whatever state the lazy globals are in.
export { TextDecoder, TextEncoder } from "@exodus/bytes/encoding-lite.js";
