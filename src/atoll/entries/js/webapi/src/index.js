// Entry of webapi.js. host.js runs first (it is the first import): it captures
// globalThis.__atoll_host and deletes it. Then every Web API global is defined, most of them
// lazily (lazy.js): a package is initialised when a worker first touches one of its globals.
import { formatLog, console } from "./console.js";
import { log, now } from "./host.js";
import { defineLazy, defineValue } from "./lazy.js";
import { binaryToBytes, toBinary } from "./bytes.js";
import { blobModule, fileModule, formDataModule, requestModule, responseModule } from "./modules.js";

const g = globalThis;

const lazy = (name, init) => defineLazy(g, name, init);

// Fetch (hand-written on the packages below; see HOST.md for why).
lazy("Headers", () => require("./headers.js").Headers);
lazy("Request", () => require("./request.js").Request);
lazy("Response", () => require("./response.js").Response);

// URL Standard: whatwg-url, the reference implementation.
lazy("URL", () => require("whatwg-url").URL);
lazy("URLSearchParams", () => require("whatwg-url").URLSearchParams);

// Encoding Standard: @exodus/bytes (WPT-tested, pure JS).
for (const name of ["TextEncoder", "TextDecoder", "TextEncoderStream", "TextDecoderStream"]) {
  lazy(name, () => require("@exodus/bytes/encoding-lite.js")[name]);
}

// Streams Standard: web-streams-polyfill (derived from the reference implementation).
for (const name of [
  "ReadableStream",
  "ReadableStreamDefaultReader",
  "ReadableStreamBYOBReader",
  "ReadableStreamBYOBRequest",
  "ReadableByteStreamController",
  "ReadableStreamDefaultController",
  "WritableStream",
  "WritableStreamDefaultWriter",
  "WritableStreamDefaultController",
  "TransformStream",
  "TransformStreamDefaultController",
  "ByteLengthQueuingStrategy",
  "CountQueuingStrategy",
]) {
  lazy(name, () => require("web-streams-polyfill")[name]);
}

// Compression Standard: fflate (streaming gzip/zlib/raw deflate) under compression.js.
lazy("CompressionStream", () => require("./compression.js").CompressionStream);
lazy("DecompressionStream", () => require("./compression.js").DecompressionStream);

// URLPattern: urlpattern-polyfill (canonicalizes through the global URL).
lazy("URLPattern", () => require("urlpattern-polyfill/urlpattern").URLPattern);

// File API and XHR's FormData: fetch-blob and formdata-polyfill.
lazy("Blob", () => blobModule().Blob);
lazy("File", () => fileModule().File);
lazy("FormData", () => formDataModule().FormData);

// DOM: events (event-target-shim) and aborting (abort.js).
lazy("Event", () => require("event-target-shim").Event);
lazy("CustomEvent", () => require("./abort.js").CustomEvent);
lazy("EventTarget", () => require("event-target-shim").EventTarget);
lazy("AbortController", () => require("./abort.js").AbortController);
lazy("AbortSignal", () => require("./abort.js").AbortSignal);

// Web IDL / HTML: core-js.
lazy("DOMException", () => require("./dom-exception.js").DOMException);
// The DOMException glue first: structuredClone throws core-js's DOMException, renamed there.
lazy("structuredClone", () => (require("./dom-exception.js"), require("core-js-pure/actual/structured-clone.js")));
lazy("atob", () => require("./base64.js").atob);
lazy("btoa", () => require("./base64.js").btoa);

// Web Crypto: @noble/hashes under crypto.js.
lazy("crypto", () => require("./crypto.js").crypto);
lazy("Crypto", () => require("./crypto.js").Crypto);
lazy("CryptoKey", () => require("./crypto.js").CryptoKey);
lazy("SubtleCrypto", () => require("./crypto.js").SubtleCrypto);

defineValue(g, "console", console);

// HTML "queue a microtask". An exception thrown by the callback is reported, as the spec's
// "report the exception" does, instead of becoming an unhandled rejection.
defineValue(g, "queueMicrotask", function queueMicrotask(callback) {
  if (typeof callback !== "function") {
    throw new TypeError("Failed to execute 'queueMicrotask': parameter 1 is not of type 'Function'.");
  }
  Promise.resolve().then(() => {
    try {
      callback();
    } catch (err) {
      log("error", `Uncaught ${formatLog([err])}`);
    }
  });
});

// Workers: navigator.userAgent is "Cloudflare-Workers"
// (https://developers.cloudflare.com/workers/runtime-apis/web-standards/#navigatoruseragent).
class Navigator {
  get userAgent() {
    return "Cloudflare-Workers";
  }

  get hardwareConcurrency() {
    return 1;
  }

  get [Symbol.toStringTag]() {
    return "Navigator";
  }
}
defineValue(g, "navigator", new Navigator());

// Workers: `self` is the global object, and `performance` has now() and timeOrigin
// (https://developers.cloudflare.com/workers/runtime-apis/performance/). Workers advances the clock
// only across I/O; here it is the host's clock, read when asked.
defineValue(g, "self", g);
const timeOrigin = now();
class Performance {
  get timeOrigin() {
    return timeOrigin;
  }

  now() {
    return now() - timeOrigin;
  }

  toJSON() {
    return { timeOrigin };
  }

  get [Symbol.toStringTag]() {
    return "Performance";
  }
}
defineValue(g, "performance", new Performance());

// For Python (through js-core) only: see HOST.md.
const rt = Object.freeze({
  makeRequest: (method, url, headersJson, body, cfJson) => requestModule().makeRequest(method, url, headersJson, body, cfJson),
  makeResponse: (status, statusText, headersJson, body, url, redirected) =>
    responseModule().makeResponse(status, statusText, headersJson, body, url, redirected),
  readResponse: (value) => responseModule().readResponse(value),
  makeRequestFrom: (method, url, pairs, body) => requestModule().makeRequestFrom(method, url, pairs, body),
  readResponsePairs: (value) => responseModule().readResponsePairs(value),
  readResponseNow: (value) => responseModule().readResponseNow(value),
  toBinary,
  fromBinary: (s) => binaryToBytes(String(s)),
  formatLog: (args) => formatLog(args),
});
Object.defineProperty(g, "__atoll_rt", { value: rt, writable: false, enumerable: false, configurable: true });
