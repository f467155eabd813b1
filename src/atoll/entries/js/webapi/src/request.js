// Request (https://fetch.spec.whatwg.org/#request-class) as Workers has it
// (https://developers.cloudflare.com/workers/runtime-apis/request/): `cf` carries Cloudflare's
// request properties; mode/credentials/referrer have no effect in a worker and are not exposed,
// and a relative URL is an error (a worker has no base URL).
import { loader } from "./lazy.js";
import { BodyState, extractBody, installBodyMixin, USED_MESSAGE } from "./body.js";
import { streams, whatwgURL } from "./modules.js";
import { Headers, headerList, headersGuard, IMMUTABLE, trustedHeaders } from "./headers.js";

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const NORMALIZED_METHODS = new Set(["DELETE", "GET", "HEAD", "OPTIONS", "POST", "PUT"]);
const FORBIDDEN_METHODS = new Set(["CONNECT", "TRACE", "TRACK"]);
const REDIRECTS = new Set(["follow", "error", "manual"]);
const INTERNAL = Symbol("internal");
// AbortSignal (event-target-shim) loads with the first signal a request needs.
const abortModule = loader(() => require("./abort.js"));
const followingSignal = (parent) => abortModule().followingSignal(parent);

function parseURL(input) {
  const { URL } = whatwgURL();
  let url;
  try {
    url = new URL(input);
  } catch {
    throw new TypeError(`Failed to construct 'Request': Invalid URL ${JSON.stringify(input)} (a worker's Request needs an absolute URL).`);
  }
  // Fetch Request constructor: a URL with credentials is a TypeError (send an Authorization header).
  if (url.username !== "" || url.password !== "") {
    throw new TypeError(`Failed to construct 'Request': Request cannot be constructed from a URL that includes credentials: ${JSON.stringify(input)}`);
  }
  return url.href;
}

// A URL the host sends is usually already what the URL standard would serialize; checking that is
// cheaper than parsing it. Anything unusual (IDNA, dot segments, default port, odd characters)
// goes through the parser.
const PLAIN_URL = /^(https?):\/\/([a-z0-9-]+(?:\.[a-z0-9-]+)*)(?::([1-9][0-9]{0,4}))?(\/[A-Za-z0-9\-._~!$&'()*+,;=:@%/?]*)$/;
const DOT_SEGMENT = /\/\.\.?(?:[/?]|$)|%2e/i;

// The same few URLs come again and again: each one's answer is kept (bounded, per context).
const trustedURLs = new Map();

function trustedURL(url) {
  let out = trustedURLs.get(url);
  if (out === undefined) {
    out = checkedURL(url);
    if (trustedURLs.size >= 512) trustedURLs.clear();
    trustedURLs.set(url, out);
  }
  return out;
}

function checkedURL(url) {
  const m = PLAIN_URL.exec(url);
  if (m !== null && !DOT_SEGMENT.test(m[4].split("?")[0]) && !(m[3] === (m[1] === "http" ? "80" : "443")) && !/%(?![0-9A-Fa-f]{2})/.test(m[4])) {
    return url;
  }
  return parseURL(url);
}

function normalizeMethod(method) {
  method = String(method);
  if (!TOKEN.test(method)) throw new TypeError(`Failed to construct 'Request': '${method}' is not a valid HTTP method.`);
  const upper = method.toUpperCase();
  if (FORBIDDEN_METHODS.has(upper)) throw new TypeError(`Failed to construct 'Request': '${method}' HTTP method is unsupported.`);
  return NORMALIZED_METHODS.has(upper) ? upper : method;
}

let stateOf;
let headersOf;
let makeTrusted;

export class Request {
  #method = "GET";
  #url = "";
  #headers;
  #body = null;
  #redirect = "follow";
  // Made on first access: most requests never look at their signal.
  #signal = null;
  #parentSignal = null;
  #cf = undefined;
  #integrity = "";
  #keepalive = false;

  constructor(input, init = undefined) {
    if (input === INTERNAL) return;
    if (arguments.length < 1) throw new TypeError("Failed to construct 'Request': 1 argument required, but only 0 present.");
    if (init !== undefined && init !== null && typeof init !== "object") {
      throw new TypeError("Failed to construct 'Request': The provided value is not of type 'RequestInit'.");
    }
    init = init ?? {};
    let inputBody = null;
    let source = null;
    if (typeof input === "object" && input !== null && #url in input) {
      source = input;
      this.#url = input.#url;
      this.#method = input.#method;
      this.#redirect = input.#redirect;
      this.#cf = input.#cf;
      this.#integrity = input.#integrity;
      this.#keepalive = input.#keepalive;
      inputBody = input.#body;
    } else {
      this.#url = parseURL(String(input));
    }
    if (init.method !== undefined) this.#method = normalizeMethod(init.method);
    if (init.redirect !== undefined) {
      const redirect = String(init.redirect);
      if (!REDIRECTS.has(redirect)) throw new TypeError(`Failed to construct 'Request': The provided value '${redirect}' is not a valid enum value of type RequestRedirect.`);
      this.#redirect = redirect;
    }
    if (init.integrity !== undefined) this.#integrity = String(init.integrity);
    if (init.keepalive !== undefined) this.#keepalive = Boolean(init.keepalive);
    if (init.cf !== undefined) this.#cf = init.cf;
    let parentSignal = source === null ? null : source.signal;
    if (init.signal !== undefined) {
      if (init.signal !== null && (typeof init.signal !== "object" || typeof init.signal.aborted !== "boolean")) {
        throw new TypeError("Failed to construct 'Request': member signal is not of type AbortSignal.");
      }
      parentSignal = init.signal;
    }
    if (parentSignal !== null) this.#signal = followingSignal(parentSignal);
    this.#headers = new Headers(init.headers !== undefined ? init.headers : source === null ? undefined : source.#headers);

    // Fetch Request constructor: a GET/HEAD request may have neither an init body nor an input
    // body; an init body of null still lets the input's body through.
    const hasInitBody = init.body !== undefined && init.body !== null;
    if ((hasInitBody || inputBody !== null) && (this.#method === "GET" || this.#method === "HEAD")) {
      throw new TypeError("Request with a GET or HEAD method cannot have a body.");
    }
    if (hasInitBody) {
      const [body, contentType] = extractBody(init.body);
      this.#body = body;
      if (contentType !== null && !this.#headers.has("content-type")) this.#headers.append("content-type", contentType);
    } else if (inputBody !== null) {
      // Fetch: the new request takes the input's body, which becomes used.
      if (inputBody.unusable) throw new TypeError(USED_MESSAGE);
      if (inputBody.kind === "stream") {
        const { TransformStream } = streams();
        this.#body = new BodyState("stream", inputBody.value.pipeThrough(new TransformStream()));
      } else {
        this.#body = new BodyState(inputBody.kind, inputBody.value);
        inputBody.used = true;
      }
    }
  }

  get method() {
    return this.#method;
  }

  get url() {
    return this.#url;
  }

  get headers() {
    return this.#headers;
  }

  get redirect() {
    return this.#redirect;
  }

  get signal() {
    if (this.#signal === null) this.#signal = followingSignal(this.#parentSignal);
    return this.#signal;
  }

  /** Cloudflare's request properties (country, colo, ...): what the host passed, else undefined. */
  get cf() {
    return this.#cf;
  }

  get integrity() {
    return this.#integrity;
  }

  get keepalive() {
    return this.#keepalive;
  }

  clone() {
    if (!(#url in this)) throw new TypeError("Illegal invocation");
    if (this.#body !== null && this.#body.unusable) throw new TypeError(USED_MESSAGE);
    const copy = new Request(INTERNAL);
    copy.#method = this.#method;
    copy.#url = this.#url;
    copy.#headers = new Headers(this.#headers);
    headersGuard(copy.#headers, headersGuard(this.#headers));
    copy.#body = this.#body === null ? null : this.#body.clone();
    copy.#redirect = this.#redirect;
    copy.#parentSignal = this.#signal ?? this.#parentSignal;
    copy.#cf = this.#cf;
    copy.#integrity = this.#integrity;
    copy.#keepalive = this.#keepalive;
    return copy;
  }

  get [Symbol.toStringTag]() {
    return "Request";
  }

  [Symbol.for("nodejs.util.inspect.custom")](depth, options, inspect) {
    return `Request ${inspect({ method: this.#method, url: this.#url, headers: this.#headers, bodyUsed: this.bodyUsed }, options)}`;
  }

  static {
    stateOf = (self, method) => {
      if (typeof self !== "object" || self === null || !(#url in self)) {
        throw new TypeError(`Failed to execute '${method}' on 'Request': Illegal invocation`);
      }
      return self.#body;
    };
    headersOf = (self) => self.#headers;
    makeTrusted = (method, url, pairs, body, cf) => {
      const r = new Request(INTERNAL);
      r.#method = method;
      r.#url = trustedURL(url);
      r.#headers = trustedHeaders(pairs, IMMUTABLE);
      r.#body = body === undefined || body === null ? null : new BodyState("binary", body);
      r.#cf = cf;
      return r;
    };
  }
}

installBodyMixin(Request.prototype, "Request", (self, method) => stateOf(self, method), (self) => headersOf(self));
for (const key of ["method", "url", "headers", "redirect", "signal", "cf", "integrity", "keepalive", "clone"]) {
  Object.defineProperty(Request.prototype, key, { enumerable: true });
}

/**
 * __atoll_rt.makeRequest: an incoming request from the host. The host validated method, URL and
 * headers already; the headers are immutable, as on Workers.
 */
export function makeRequest(method, url, headersJson, body, cfJson) {
  const pairs = headersJson === undefined || headersJson === null || headersJson === "" ? [] : JSON.parse(headersJson);
  const cf = cfJson === undefined || cfJson === null || cfJson === "" ? undefined : JSON.parse(cfJson);
  return makeTrusted(String(method), String(url), pairs, body, cf);
}

/**
 * __atoll_rt.makeRequestFrom: makeRequest with the headers as an array of [name, value] pairs
 * (js-core's per-request path: no JSON between the host's string and the Headers).
 */
export function makeRequestFrom(method, url, pairs, body) {
  return makeTrusted(String(method), String(url), pairs, body, undefined);
}

export { headerList };
