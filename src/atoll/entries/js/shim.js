// A stand-in for webapi.js (the Web API bundle) while it is not there: just enough
// Request/Response/Headers/TextEncoder/console for atoll's own tests. Same contract
// (HOST.md): takes __atoll_host, deletes it, defines __atoll_rt. Used only when
// src/atoll/entries/js/webapi.js does not exist.
(function () {
  "use strict";
  const host = globalThis.__atoll_host;
  delete globalThis.__atoll_host;
  const utf8encode = (s) => {
    const bin = unescape(encodeURIComponent(String(s)));
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  };
  const fromBinary = (s) => {
    const out = new Uint8Array(s.length);
    for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
    return out;
  };
  const binary = (u8) => {
    let s = "";
    for (let i = 0; i < u8.length; i += 8192) s += String.fromCharCode.apply(null, u8.subarray(i, i + 8192));
    return s;
  };
  const toBinary = (x) => {
    if (typeof x === "string") return binary(utf8encode(x));
    if (x instanceof ArrayBuffer) return binary(new Uint8Array(x));
    return binary(new Uint8Array(x.buffer, x.byteOffset, x.byteLength));
  };
  class TextEncoder { encode(s) { return utf8encode(s === undefined ? "" : s); } get encoding() { return "utf-8"; } }
  class TextDecoder {
    decode(b) {
      if (b === undefined) return "";
      const u8 = b instanceof ArrayBuffer ? new Uint8Array(b) : new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
      return decodeURIComponent(escape(binary(u8)));
    }
  }
  class Headers {
    constructor(init) {
      this._m = new Map();
      if (init instanceof Headers) init = [...init];
      if (Array.isArray(init)) for (const [k, v] of init) this.append(k, v);
      else if (init) for (const k of Object.keys(init)) this.append(k, init[k]);
    }
    append(k, v) { k = String(k).toLowerCase(); const p = this._m.get(k); this._m.set(k, p === undefined ? String(v) : p + ", " + v); }
    set(k, v) { this._m.set(String(k).toLowerCase(), String(v)); }
    get(k) { const v = this._m.get(String(k).toLowerCase()); return v === undefined ? null : v; }
    has(k) { return this._m.has(String(k).toLowerCase()); }
    delete(k) { this._m.delete(String(k).toLowerCase()); }
    *[Symbol.iterator]() { yield* [...this._m.entries()].sort(); }
    entries() { return this[Symbol.iterator](); }
  }
  const bytesOf = (body) => {
    if (body === null || body === undefined) return null;
    if (typeof body === "string") return utf8encode(body);
    if (body instanceof ArrayBuffer) return new Uint8Array(body);
    if (ArrayBuffer.isView(body)) return new Uint8Array(body.buffer, body.byteOffset, body.byteLength);
    return utf8encode(String(body));
  };
  class Body {
    async arrayBuffer() { this.bodyUsed = true; return this._b === null ? new ArrayBuffer(0) : this._b.slice().buffer; }
    async text() { return new TextDecoder().decode(await this.arrayBuffer()); }
    async json() { return JSON.parse(await this.text()); }
    get body() { return this._b; }
  }
  class Request extends Body {
    constructor(input, init) {
      super();
      init = init || {};
      this.url = input instanceof Request ? input.url : String(input);
      this.method = (init.method || (input instanceof Request ? input.method : "GET")).toUpperCase();
      this.headers = new Headers(init.headers || (input instanceof Request ? input.headers : undefined));
      this._b = bytesOf(init.body === undefined && input instanceof Request ? input._b : init.body);
      this.redirect = init.redirect || "follow";
    }
  }
  class Response extends Body {
    constructor(body, init) {
      super();
      init = init || {};
      this.status = init.status === undefined ? 200 : init.status;
      this.statusText = init.statusText || "";
      this.headers = new Headers(init.headers);
      this._b = bytesOf(body);
      if (typeof body === "string" && !this.headers.has("content-type")) this.headers.set("content-type", "text/plain;charset=UTF-8");
    }
    get ok() { return this.status >= 200 && this.status < 300; }
    static json(data, init) { const r = new Response(JSON.stringify(data), init); r.headers.set("content-type", "application/json"); return r; }
  }
  const formatLog = (args) => args.map((a) => (typeof a === "string" ? a : a instanceof Error ? String(a.stack) : JSON.stringify(a))).join(" ");
  const console = {};
  for (const level of ["debug", "info", "log", "warn", "error"]) console[level] = (...args) => host.log(level, formatLog(args));
  class ReadableStream {}
  class URL {
    constructor(u) {
      const m = /^([a-z][a-z0-9+.-]*:)\/\/([^/?#]*)([^?#]*)(\?[^#]*)?(#.*)?$/i.exec(String(u));
      if (!m) throw new TypeError("Invalid URL: " + u);
      [this.protocol, this.host, this.pathname, this.search, this.hash] = [m[1], m[2], m[3] || "/", m[4] || "", m[5] || ""];
      this.hostname = this.host.split(":")[0];
      this.href = String(u);
    }
    toString() { return this.href; }
  }
  Object.assign(globalThis, { TextEncoder, TextDecoder, Headers, Request, Response, console, ReadableStream, URL });
  Object.defineProperty(globalThis, "__atoll_rt", {
    value: {
      makeRequest: (method, url, headersJson, body) =>
        new Request(url, { method, headers: JSON.parse(headersJson), body: body === undefined ? null : fromBinary(body) }),
      readResponse: async (r) => {
        if (!(r instanceof Response)) throw new TypeError("fetch() must return a Response, got " + (r === null ? "null" : typeof r));
        const b = await r.arrayBuffer();
        return [r.status, r.statusText, JSON.stringify([...r.headers]), binary(new Uint8Array(b))];
      },
      toBinary,
      fromBinary,
      formatLog,
    },
  });
})();
