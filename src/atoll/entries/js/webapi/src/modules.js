// The packages (and heavy glue modules) that load on first use, each through lazy.js's `loader`
// so that it initialises with the lazy globals hidden.
import { loader } from "./lazy.js";

export const streams = loader(() => require("web-streams-polyfill"));
export const blobModule = loader(() => {
  const mod = require("fetch-blob");
  // File API: Blob.prototype.bytes() (added to the spec in 2024, after fetch-blob 4).
  Object.defineProperty(mod.Blob.prototype, "bytes", {
    async value() {
      return new Uint8Array(await this.arrayBuffer());
    },
    writable: true,
    enumerable: true,
    configurable: true,
  });
  return mod;
});
export const fileModule = loader(() => (blobModule(), require("fetch-blob/file.js")));
export const formDataModule = loader(() => (blobModule(), require("formdata-polyfill/esm.min.js")));
export const whatwgURL = loader(() => require("whatwg-url"));
export const encoding = loader(() => require("@exodus/bytes/encoding-lite.js"));
export const inspectModule = loader(() => require("node-inspect-extracted"));
export const requestModule = loader(() => require("./request.js"));
export const responseModule = loader(() => require("./response.js"));
