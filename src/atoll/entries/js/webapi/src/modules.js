// The packages (and heavy glue modules) that load on first use, each through lazy.js's `loader`
// so that it initialises with the lazy globals hidden.
import { loader } from "./lazy.js";

export const streams = loader(() => require("web-streams-polyfill"));
export const blobModule = loader(() => require("fetch-blob"));
export const fileModule = loader(() => require("fetch-blob/file.js"));
export const formDataModule = loader(() => require("formdata-polyfill/esm.min.js"));
export const whatwgURL = loader(() => require("whatwg-url"));
export const encoding = loader(() => require("@exodus/bytes/encoding-lite.js"));
export const inspectModule = loader(() => require("node-inspect-extracted"));
export const requestModule = loader(() => require("./request.js"));
export const responseModule = loader(() => require("./response.js"));
