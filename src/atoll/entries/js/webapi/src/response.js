// Response (https://fetch.spec.whatwg.org/#response-class) as Workers has it
// (https://developers.cloudflare.com/workers/runtime-apis/response/): Response.json, .redirect,
// .error, `webSocket` (always null here), and the status range 200-599 for constructed responses.
import { BodyState, extractBody, installBodyMixin, USED_MESSAGE } from "./body.js";
import { describe } from "./bytes.js";
import { whatwgURL } from "./modules.js";
import { Headers, headerPairs, headersGuard, IMMUTABLE, trustedHeaders } from "./headers.js";

const NULL_BODY_STATUSES = new Set([101, 103, 204, 205, 304]);
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);
// HTTP reason-phrase: HTAB, SP, VCHAR, obs-text.
const REASON_PHRASE = /^[\t\x20-\x7e\x80-\xff]*$/;
const INTERNAL = Symbol("internal");

let stateOf;
let headersOf;
let makeTrusted;
let readParts;

export class Response {
  #type = "default";
  #status = 200;
  #statusText = "";
  #headers;
  #body = null;
  #url = "";
  #redirected = false;

  constructor(body = null, init = undefined) {
    if (body === INTERNAL) return;
    if (init !== undefined && init !== null && typeof init !== "object") {
      throw new TypeError("Failed to construct 'Response': The provided value is not of type 'ResponseInit'.");
    }
    init = init ?? {};
    const status = init.status === undefined ? 200 : Number(init.status);
    if (!Number.isInteger(status) || status < 200 || status > 599) {
      throw new RangeError(`Failed to construct 'Response': The status provided (${init.status}) is outside the range [200, 599].`);
    }
    const statusText = init.statusText === undefined ? "" : String(init.statusText);
    if (!REASON_PHRASE.test(statusText)) {
      throw new TypeError("Failed to construct 'Response': Invalid statusText.");
    }
    this.#status = status;
    this.#statusText = statusText;
    this.#headers = new Headers(init.headers);
    if (body !== null && body !== undefined) {
      if (NULL_BODY_STATUSES.has(status)) {
        throw new TypeError(`Failed to construct 'Response': Response with null body status (${status}) cannot have body.`);
      }
      const [state, contentType] = extractBody(body);
      this.#body = state;
      if (contentType !== null && !this.#headers.has("content-type")) this.#headers.append("content-type", contentType);
    }
  }

  static error() {
    const r = new Response(INTERNAL);
    r.#type = "error";
    r.#status = 0;
    r.#headers = trustedHeaders([], IMMUTABLE);
    return r;
  }

  static redirect(url, status = 302) {
    const { URL } = whatwgURL();
    let parsed;
    try {
      parsed = new URL(String(url)).href;
    } catch {
      throw new TypeError(`Failed to execute 'redirect' on 'Response': Invalid URL ${JSON.stringify(String(url))}.`);
    }
    status = Number(status);
    if (!REDIRECT_STATUSES.has(status)) {
      throw new RangeError(`Failed to execute 'redirect' on 'Response': Invalid status code ${status} (must be 301, 302, 303, 307 or 308).`);
    }
    const r = new Response(INTERNAL);
    r.#status = status;
    r.#headers = trustedHeaders([["location", parsed]], IMMUTABLE);
    return r;
  }

  static json(data, init = undefined) {
    const text = JSON.stringify(data);
    if (text === undefined) throw new TypeError("Failed to execute 'json' on 'Response': The data is not JSON serializable.");
    const response = new Response(text, init);
    // Fetch "initialize a response": the JSON MIME type replaces the text one extract set.
    const list = response.#headers;
    if (init === undefined || init === null || init.headers === undefined || !new Headers(init.headers).has("content-type")) {
      list.set("content-type", "application/json");
    }
    return response;
  }

  get type() {
    return this.#type;
  }

  get url() {
    return this.#url;
  }

  get redirected() {
    return this.#redirected;
  }

  get status() {
    return this.#status;
  }

  get ok() {
    return this.#status >= 200 && this.#status <= 299;
  }

  get statusText() {
    return this.#statusText;
  }

  get headers() {
    return this.#headers;
  }

  /** Workers: the WebSocket of a 101 response; atoll has none yet. */
  get webSocket() {
    return null;
  }

  clone() {
    if (!(#status in this)) throw new TypeError("Illegal invocation");
    if (this.#body !== null && this.#body.unusable) throw new TypeError(USED_MESSAGE);
    const copy = new Response(INTERNAL);
    copy.#type = this.#type;
    copy.#status = this.#status;
    copy.#statusText = this.#statusText;
    copy.#headers = new Headers(this.#headers);
    headersGuard(copy.#headers, headersGuard(this.#headers));
    copy.#body = this.#body === null ? null : this.#body.clone();
    copy.#url = this.#url;
    copy.#redirected = this.#redirected;
    return copy;
  }

  get [Symbol.toStringTag]() {
    return "Response";
  }

  [Symbol.for("nodejs.util.inspect.custom")](depth, options, inspect) {
    return `Response ${inspect({ status: this.#status, statusText: this.#statusText, headers: this.#headers, ok: this.ok, bodyUsed: this.bodyUsed }, options)}`;
  }

  static {
    stateOf = (self, method) => {
      if (typeof self !== "object" || self === null || !(#status in self)) {
        throw new TypeError(`Failed to execute '${method}' on 'Response': Illegal invocation`);
      }
      return self.#body;
    };
    headersOf = (self) => self.#headers;
    makeTrusted = (status, statusText, pairs, body, url, redirected) => {
      const r = new Response(INTERNAL);
      r.#status = status;
      r.#statusText = statusText;
      r.#headers = trustedHeaders(pairs, "none");
      r.#body = body === undefined || body === null ? null : new BodyState("binary", body);
      r.#url = url;
      r.#redirected = redirected;
      return r;
    };
    readParts = (value) => {
      if (typeof value !== "object" || value === null || !(#status in value)) return null;
      return [value.#status, value.#statusText, value.#headers, value.#body];
    };
  }
}

installBodyMixin(Response.prototype, "Response", (self, method) => stateOf(self, method), (self) => headersOf(self));
for (const key of ["type", "url", "redirected", "status", "ok", "statusText", "headers", "webSocket", "clone"]) {
  Object.defineProperty(Response.prototype, key, { enumerable: true });
}

/**
 * __atoll_rt.makeResponse: a response the host received (a subrequest's, for js-core's fetch).
 * Status and headers are taken as they came, without the constructor's range checks.
 */
export function makeResponse(status, statusText, headersJson, body, url, redirected) {
  const pairs = headersJson === undefined || headersJson === null || headersJson === "" ? [] : JSON.parse(headersJson);
  return makeTrusted(Number(status), String(statusText ?? ""), pairs, body, url === undefined || url === null ? "" : String(url), Boolean(redirected));
}

/**
 * __atoll_rt.readResponse: what a worker returned, read whole, as
 * [status, statusText, headersJson, binary body]. Rejects with a TypeError naming the value when it
 * is not a Response, and when its body was already used.
 */
export function readResponse(value) {
  return readAs(value, (headers) => JSON.stringify(headerPairs(headers)));
}

/**
 * __atoll_rt.readResponsePairs: readResponse with the headers as an array of [name, value] pairs
 * (js-core's per-request path: no JSON between the Headers and the host's string).
 */
export function readResponsePairs(value) {
  return readAs(value, headerPairs);
}

/**
 * __atoll_rt.readResponseNow: readResponsePairs without a promise, for a Response whose body is
 * held as a string or bytes (or is null): [status, statusText, pairs, binary body]; null for
 * anything else (then readResponsePairs reads it, or rejects naming what it got).
 */
export function readResponseNow(value) {
  const parts = readParts(value);
  if (parts === null) return null;
  const [status, statusText, headers, body] = parts;
  if (body === null) return [status, statusText, headerPairs(headers), ""];
  if (body.unusable || !(body.kind === "text" || body.kind === "binary" || body.kind === "bytes")) return null;
  return [status, statusText, headerPairs(headers), body.readBinarySync()];
}

function readAs(value, encode) {
  const parts = readParts(value);
  if (parts === null) return readAwaited(value, encode);
  const [status, statusText, headers, body] = parts;
  // Bodies held as a string or bytes are read without a promise per step: the common case.
  if (body === null || (!body.unusable && (body.kind === "text" || body.kind === "binary" || body.kind === "bytes"))) {
    let binary = "";
    try {
      if (body !== null) binary = body.readBinarySync();
    } catch (err) {
      return Promise.reject(err);
    }
    return Promise.resolve([status, statusText, encode(headers), binary]);
  }
  return readWhole(parts, encode);
}

async function readAwaited(value, encode) {
  if (value !== null && typeof value === "object" && typeof value.then === "function") value = await value;
  const parts = readParts(value);
  if (parts === null) {
    throw new TypeError(`The worker's fetch handler must return a Response (or a Promise of one), but it returned ${describe(value)}.`);
  }
  return readWhole(parts, encode);
}

async function readWhole([status, statusText, headers, body], encode) {
  if (body !== null && body.unusable) throw new TypeError(`The Response the worker returned has a body that was already used. ${USED_MESSAGE}`);
  const binary = body === null ? "" : await body.readBinary();
  return [status, statusText, encode(headers), binary];
}
