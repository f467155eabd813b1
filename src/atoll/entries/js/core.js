// atoll's JS core: evaluated once per isolate, after the Web API bundle (webapi.js) and
// before the worker. The expression below is a function; Python calls it once and keeps
// what it returns (post, and the object a request's dispatch is posted on: the door below). It takes `py` from
// globalThis (a plain JS object whose functions wrap the host's: primitives in, primitives
// out) and deletes it. Nothing here is left on globalThis but what Workers defines (fetch,
// timers, addEventListener) and the door's __atoll_run/__atoll_take: `py` and the returned
// functions live only in this closure and in Python. (Python never passes
// a JS object back into JS: STPyV8 crashes doing that in any isolate but the first.)
(function () {
  "use strict";
  const py = globalThis.__atoll_core_host;
  delete globalThis.__atoll_core_host;
  const rt = globalThis.__atoll_rt;
  const Reflect_apply = Reflect.apply;
  const JSON_parse = JSON.parse;
  const JSON_stringify = JSON.stringify;
  const WA = globalThis.WebAssembly;
  const OriginalInstance = WA.Instance;
  const originalInstantiate = WA.instantiate;
  const ModuleProto = WA.Module.prototype;

  // -- the request whose event runs now ------------------------------------------------
  // Python names it on every entry (dispatch, complete, fire); host calls made meanwhile
  // (console, fetch, KV, timers) belong to it.
  let current = 0;

  // -- async host operations: fetch, KV --------------------------------------------------
  const pending = new Map();
  let nextOp = 1;
  function hostOp(kind, args, body) {
    const id = nextOp++;
    return new Promise((resolve, reject) => {
      pending.set(id, { resolve, reject });
      py.op(current, id, kind, JSON_stringify(args), body === undefined ? null : body);
    });
  }
  function complete(slot, id, ok, json, body) {
    current = slot;
    const op = pending.get(id);
    if (op === undefined) return;
    pending.delete(id);
    if (ok) {
      op.resolve([json, body]);
    } else {
      const info = JSON_parse(json);
      const Ctor = { TypeError, RangeError }[info.name] || Error;
      op.reject(new Ctor(info.message));
    }
  }

  // -- fetch() ---------------------------------------------------------------------------
  async function fetch(input, init) {
    const request = new Request(input, init);
    let body;
    if (request.body !== null) body = rt.toBinary(await request.arrayBuffer());
    const [json, responseBody] = await hostOp(
      "fetch",
      { method: request.method, url: request.url, headers: [...request.headers], redirect: request.redirect },
      body,
    );
    const meta = JSON_parse(json);
    const nullBody = request.method === "HEAD" || [101, 204, 205, 304].includes(meta.status);
    return rt.makeResponse(
      meta.status, meta.statusText, JSON_stringify(meta.headers),
      nullBody ? undefined : responseBody, meta.url, meta.redirected,
    );
  }

  // -- timers ----------------------------------------------------------------------------
  const timers = new Map();
  let nextTimer = 1;
  function addTimer(callback, ms, args, repeat) {
    if (typeof callback !== "function") {
      throw new TypeError("setTimeout/setInterval: the callback must be a function (code strings are not run)");
    }
    const delay = Math.max(0, Math.min(Number(ms) || 0, 2147483647));
    const id = nextTimer++;
    timers.set(id, { callback, args, repeat, delay, slot: current });
    py.timer(current, id, delay);
    return id;
  }
  function clearTimer(id) {
    id = Number(id);
    if (timers.delete(id)) py.clearTimer(id);
  }
  function fire(slot, id) {
    current = slot;
    const timer = timers.get(id);
    if (timer === undefined) return;
    if (timer.repeat) py.timer(slot, id, timer.delay);
    else timers.delete(id);
    try {
      Reflect_apply(timer.callback, globalThis, timer.args);
    } catch (err) {
      console.error("Uncaught (in timer)", err);
    }
  }
  function dropTimers(slot) {
    for (const [id, timer] of timers) if (timer.slot === slot) timers.delete(id);
  }

  // -- WebAssembly: Workers-style module bindings ------------------------------------------
  // `import m from "./x.wasm"` gives a WebAssembly.Module. The seed article calls it
  // (`await m()`), so the binding is a function whose prototype is Module.prototype, and
  // instantiate / Instance / Module.exports unwrap it.
  const realModule = new WeakMap();
  function unwrap(m) {
    return realModule.get(m) || m;
  }
  function moduleBinding(module) {
    const binding = function (imports) {
      return new OriginalInstance(module, imports === undefined ? {} : imports);
    };
    Object.setPrototypeOf(binding, ModuleProto);
    realModule.set(binding, module);
    return binding;
  }
  function Instance(module, imports) {
    if (new.target === undefined) throw new TypeError("WebAssembly.Instance must be called with new");
    return Reflect.construct(OriginalInstance, [unwrap(module), imports], new.target === Instance ? OriginalInstance : new.target);
  }
  Instance.prototype = OriginalInstance.prototype;
  Object.defineProperty(Instance, "name", { value: "Instance" });
  const patched = {
    Instance,
    instantiate: function instantiate(source, imports) {
      return Reflect_apply(originalInstantiate, WA, [unwrap(source), imports]);
    },
  };
  for (const name of ["exports", "imports", "customSections"]) {
    const original = WA.Module[name];
    Object.defineProperty(WA.Module, name, {
      value: function (m, ...rest) { return Reflect_apply(original, WA.Module, [unwrap(m), ...rest]); },
      writable: true, configurable: true,
    });
  }
  for (const name of Object.keys(patched)) {
    Object.defineProperty(WA, name, { value: patched[name], writable: true, configurable: true });
  }
  Object.defineProperty(OriginalInstance.prototype, "constructor", { value: Instance, writable: true, configurable: true });

  // -- one allocation may not exceed the isolate's memory budget ------------------------------
  // The watchdog sees ArrayBuffers and wasm memories only between bytecodes: a single
  // `new Uint8Array(1 << 30).fill(1)` would commit a GiB inside one builtin first. So the
  // constructors that take a size refuse one past the budget up front, with the RangeError
  // V8 throws when an allocation fails.
  let maxBytes = Infinity;
  function refuse(bytes) {
    if (bytes > maxBytes) throw new RangeError("Array buffer allocation failed");
  }
  function guard(name, sizeOf) {
    const Original = globalThis[name];
    if (typeof Original !== "function") return;
    const proxy = new Proxy(Original, {
      construct(target, args, newTarget) {
        refuse(sizeOf(args));
        return Reflect.construct(target, args, newTarget === proxy ? target : newTarget);
      },
    });
    Object.defineProperty(Original.prototype, "constructor", { value: proxy, writable: true, configurable: true });
    Object.defineProperty(globalThis, name, { value: proxy, writable: true, configurable: true, enumerable: false });
  }
  const lengthOf = (args) => (typeof args[0] === "number" ? args[0] : 0);
  guard("ArrayBuffer", (args) => Math.max(lengthOf(args), Number(args[1] && args[1].maxByteLength) || 0));
  guard("SharedArrayBuffer", (args) => Math.max(lengthOf(args), Number(args[1] && args[1].maxByteLength) || 0));
  for (const name of ["Int8Array", "Uint8Array", "Uint8ClampedArray", "Int16Array", "Uint16Array",
      "Int32Array", "Uint32Array", "Float32Array", "Float64Array", "BigInt64Array", "BigUint64Array"]) {
    const size = globalThis[name] && globalThis[name].BYTES_PER_ELEMENT;
    guard(name, (args) => lengthOf(args) * size);
  }
  const OriginalMemory = WA.Memory;
  WA.Memory = new Proxy(OriginalMemory, {
    construct(target, args, newTarget) {
      refuse((Number(args[0] && args[0].initial) || 0) * 65536);
      return Reflect.construct(target, args, newTarget === WA.Memory ? target : newTarget);
    },
  });
  Object.defineProperty(OriginalMemory.prototype, "constructor", { value: WA.Memory, writable: true, configurable: true });
  const originalGrow = OriginalMemory.prototype.grow;
  Object.defineProperty(OriginalMemory.prototype, "grow", {
    value: function grow(delta) {
      refuse(this.buffer.byteLength + (Number(delta) || 0) * 65536);
      return Reflect_apply(originalGrow, this, [delta]);
    },
    writable: true, configurable: true,
  });

  // -- modules imported by the worker (wasm, text, data) --------------------------------------
  const imported = new Map();
  function addModule(path, kind, bytes) {
    let value;
    if (kind === "CompiledWasm") value = moduleBinding(new WA.Module(rt.fromBinary(bytes)));
    else if (kind === "Text") value = new TextDecoder().decode(rt.fromBinary(bytes));
    else value = rt.fromBinary(bytes).buffer;
    imported.set(path, value);
  }
  function importModule(path) {
    if (!imported.has(path)) throw new Error(`atoll: module ${path} was not loaded`);
    return imported.get(path);
  }

  // -- KV namespaces -------------------------------------------------------------------------
  function typeOf(options) {
    if (options === undefined || options === null) return ["text", undefined];
    if (typeof options === "string") return [options, undefined];
    return [options.type === undefined ? "text" : options.type, options.cacheTtl];
  }
  function decode(type, body) {
    if (body === null) return null;
    if (type === "text") return new TextDecoder().decode(rt.fromBinary(body));
    if (type === "json") return JSON_parse(new TextDecoder().decode(rt.fromBinary(body)));
    if (type === "arrayBuffer") return rt.fromBinary(body).buffer;
    if (type === "stream") return new Response(rt.fromBinary(body)).body;
    throw new TypeError(`KV get: unknown type ${JSON_stringify(type)} (text, json, arrayBuffer or stream)`);
  }
  function checkType(type) {
    if (!["text", "json", "arrayBuffer", "stream"].includes(type)) {
      throw new TypeError(`KV get: unknown type ${JSON_stringify(type)} (text, json, arrayBuffer or stream)`);
    }
  }
  class KVNamespace {
    #ns;
    constructor(ns) { this.#ns = ns; }
    async get(key, options) {
      const [type, cacheTtl] = typeOf(options);
      checkType(type);
      if (Array.isArray(key)) {
        const [json] = await hostOp("kv", { ns: this.#ns, method: "get_many", keys: key, cacheTtl });
        const found = JSON_parse(json);
        const out = new Map();
        for (const k of key) out.set(k, found[k] === null ? null : decode(type, found[k]));
        return out;
      }
      const [, body] = await hostOp("kv", { ns: this.#ns, method: "get", key, cacheTtl });
      return decode(type, body);
    }
    async getWithMetadata(key, options) {
      const [type, cacheTtl] = typeOf(options);
      checkType(type);
      const [json, body] = await hostOp("kv", { ns: this.#ns, method: "get_with_metadata", key, cacheTtl });
      return { value: decode(type, body), metadata: JSON_parse(json), cacheStatus: null };
    }
    async put(key, value, options) {
      options = options || {};
      let data;
      if (typeof value === "string") data = rt.toBinary(value);
      else if (value instanceof ArrayBuffer || ArrayBuffer.isView(value)) data = rt.toBinary(value);
      else if (value instanceof ReadableStream) data = rt.toBinary(await new Response(value).arrayBuffer());
      else throw new TypeError("KV put() accepts only strings, ArrayBuffers, ArrayBufferViews, and ReadableStreams as values.");
      await hostOp(
        "kv",
        { ns: this.#ns, method: "put", key, expiration: options.expiration, expirationTtl: options.expirationTtl, metadata: options.metadata },
        data,
      );
    }
    async delete(key) {
      await hostOp("kv", { ns: this.#ns, method: "delete", key });
    }
    async list(options) {
      options = options || {};
      const [json] = await hostOp("kv", { ns: this.#ns, method: "list", prefix: options.prefix, limit: options.limit, cursor: options.cursor });
      const page = JSON_parse(json);
      const out = { keys: page.keys, list_complete: page.list_complete, cacheStatus: null };
      if (!page.list_complete) out.cursor = page.cursor;
      return out;
    }
  }

  // -- Fetcher bindings: [[services]] (another worker of the node) and [assets] binding ---------
  // `env.NAME.fetch(input, init)` builds a Request as fetch() does; the host runs it on the
  // binding (in process, no socket) and the answer comes back as a Response.
  class Fetcher {
    #name;
    constructor(name) { this.#name = name; }
    async fetch(input, init) {
      const request = new Request(input, init);
      let body;
      if (request.body !== null) body = rt.toBinary(await request.arrayBuffer());
      const [json, responseBody] = await hostOp(
        "binding",
        { name: this.#name, method: request.method, url: request.url, headers: [...request.headers] },
        body,
      );
      const meta = JSON_parse(json);
      const nullBody = request.method === "HEAD" || [101, 204, 205, 304].includes(meta.status);
      return rt.makeResponse(
        meta.status, meta.statusText, JSON_stringify(meta.headers),
        nullBody ? undefined : responseBody, request.url, false,
      );
    }
  }

  // -- env and the worker ----------------------------------------------------------------------
  let env = {};
  function setEnv(json) {
    const spec = JSON_parse(json);
    maxBytes = spec.maxBytes;
    env = {};
    for (const [name, value] of Object.entries(spec.vars)) env[name] = value;
    for (const [name, path] of Object.entries(spec.wasm)) env[name] = importModule(path);
    for (const [name, ns] of Object.entries(spec.kv)) env[name] = new KVNamespace(ns);
    for (const name of spec.fetchers) env[name] = new Fetcher(name);
    Object.freeze(env);
  }
  function installGlobals() {
    // Service-worker syntax: bindings are globals.
    for (const [name, value] of Object.entries(env)) {
      Object.defineProperty(globalThis, name, { value, writable: true, configurable: true, enumerable: false });
    }
  }

  let handler = null;
  const listeners = [];
  const scheduledListeners = [];
  function addEventListener(type, listener) {
    if (type === "fetch" && typeof listener === "function") listeners.push(listener);
    if (type === "scheduled" && typeof listener === "function") scheduledListeners.push(listener);
  }
  function setHandler(exports) {
    const main = exports && exports.default;
    // A cron-only worker (scheduled() and no fetch()) loads, as on Workers.
    if (main === undefined || main === null || (typeof main.fetch !== "function" && typeof main.scheduled !== "function")) {
      throw new TypeError("the worker's default export has no fetch() method: write `export default { async fetch(request, env, ctx) { … } }`");
    }
    handler = main;
  }
  function hasHandler() {
    return handler !== null || listeners.length > 0 || scheduledListeners.length > 0;
  }
  // An ES module worker: its bundle, evaluated as `globalThis.__atoll_module = async
  // function (__atoll_import) { … }`, is run here. Returns "" when its top-level code has
  // finished (awaits included), else why not.
  let moduleState = "";
  function startModule() {
    const run = globalThis.__atoll_module;
    delete globalThis.__atoll_module;
    moduleState = "pending";
    run(importModule).then(
      (exports) => {
        try {
          setHandler(exports);
          moduleState = "";
        } catch (err) {
          moduleState = String(err && err.stack || err);
        }
      },
      (err) => { moduleState = String(err && err.stack || err); },
    );
  }
  function moduleResult() {
    return moduleState;
  }

  // -- one request ------------------------------------------------------------------------------
  const requests = new Map();
  function describe(err) {
    try {
      if (err instanceof Error) {
        return JSON_stringify({ name: String(err.name), message: String(err.message), stack: String(err.stack) });
      }
      return JSON_stringify({ name: "Error", message: "Uncaught " + String(err), stack: "" });
    } catch (e) {
      return JSON_stringify({ name: "Error", message: "Uncaught exception (not printable)", stack: "" });
    }
  }
  function serviceWorkerResponse(request, record) {
    let responded = null;
    const event = {
      type: "fetch",
      request,
      respondWith(p) {
        if (responded !== null) throw new Error("respondWith() was already called for this request");
        responded = Promise.resolve(p);
      },
      waitUntil(p) { record.waits.push(Promise.resolve(p)); },
      passThroughOnException() {},
    };
    for (const listener of listeners) listener(event);
    if (responded === null) throw new Error("No response: the fetch event listener did not call event.respondWith()");
    return responded;
  }
  // A request's head comes as one string: its slot, method, URL and header names and values,
  // separated by NUL (which none of them can hold: the host checks), and its body ("" for none).
  function dispatch(head, body) {
    const parts = head.split("\0");
    const slot = Number(parts[0]);
    current = slot;
    stashing = slot;
    const record = { waits: [], meta: null, body: null, error: null };
    requests.set(slot, record);
    const ctx = Object.freeze({
      waitUntil(p) { record.waits.push(Promise.resolve(p)); },
      passThroughOnException() {},
    });
    let result;
    try {
      const pairs = [];
      for (let i = 3; i < parts.length; i += 2) pairs.push([parts[i], parts[i + 1]]);
      const request = rt.makeRequestFrom(parts[1], parts[2], pairs, body === "" ? undefined : body);
      result = handler !== null ? handler.fetch(request, env, ctx) : serviceWorkerResponse(request, record);
    } catch (err) {
      result = Promise.reject(err);
    }
    const fail = (err) => {
      record.error = describe(err);
      settle(slot, collect(slot));
    };
    const answer = ([status, , headers, responseBody]) => {
      // The head as the host reads it: status, then header names and values, NUL-separated
      // (the Headers refuse NUL and newlines in both), then a newline.
      let meta = String(status);
      for (const [name, value] of headers) meta += "\0" + name + "\0" + value;
      record.meta = meta;
      record.body = responseBody;
      settle(slot, collect(slot));
    };
    // A body held as a string or bytes is read at once: no promise between the handler's
    // answer and the host (two microtask turns fewer); anything else through the promise.
    Promise.resolve(result).then((response) => {
      let parts;
      try {
        parts = rt.readResponseNow(response);
      } catch (err) {
        fail(err);
        return;
      }
      if (parts === null) rt.readResponsePairs(response).then(answer, fail);
      else answer(parts);
    }, fail);
  }
  // The response (or error) of a request goes to the host with its settle. One that settles while
  // the run that dispatched it drains its microtasks is kept for the host's __atoll_take() right
  // after that run (a return value, not a call out of the isolate).
  let stashing = 0;
  let stash = null;
  function settle(slot, text) {
    if (slot === stashing && text[0] !== "W") {
      stashing = 0;
      stash = text;
      return;
    }
    py.settle(slot, text[0] === "E" ? "error" : "response", text);
  }
  function takeSettled() {
    const text = stash;
    stash = null;
    stashing = 0;
    return text;
  }
  // A cron trigger's run (Workers' scheduled event): `scheduled(controller, env, ctx)` of the
  // default export, or the "scheduled" event listeners of a service worker. Settles like a
  // request, with an empty 200 response standing for a run that ended well.
  function dispatchScheduled(slot, cron, scheduledTime) {
    current = slot;
    const record = { waits: [], meta: null, body: null, error: null };
    requests.set(slot, record);
    const waitUntil = (p) => { record.waits.push(Promise.resolve(p)); };
    const controller = Object.freeze({ cron, scheduledTime, type: "scheduled", noRetry() {} });
    let result;
    try {
      if (handler !== null && typeof handler.scheduled === "function") {
        result = handler.scheduled(controller, env, Object.freeze({ waitUntil, passThroughOnException() {} }));
      } else if (handler === null && scheduledListeners.length > 0) {
        const event = Object.freeze({ type: "scheduled", cron, scheduledTime, noRetry() {}, waitUntil });
        for (const listener of scheduledListeners) listener(event);
      } else {
        throw new TypeError(handler !== null
          ? "the worker's default export has no scheduled() method: write `export default { async scheduled(controller, env, ctx) { … } }`"
          : "the worker has no \"scheduled\" event listener: add `addEventListener(\"scheduled\", (event) => event.waitUntil(…))`");
      }
    } catch (err) {
      result = Promise.reject(err);
    }
    Promise.resolve(result).then(
      () => {
        record.meta = "200";
        record.body = "";
        py.settle(slot, "response", collect(slot));
      },
      (err) => {
        record.error = describe(err);
        py.settle(slot, "error", collect(slot));
      },
    );
  }
  function take(slot) {
    const record = requests.get(slot);
    return record.error !== null ? record.error : record.meta;
  }
  function takeBody(slot) {
    const record = requests.get(slot);
    const body = record.body;
    record.body = null;
    return body;
  }
  // After the response: settle "waited" once every waitUntil promise (even ones added
  // meanwhile) has settled. Returns false when there was nothing to wait for.
  function waits(slot) {
    const record = requests.get(slot);
    if (record === undefined || record.waits.length === 0) return false;
    const drain = () => {
      const batch = record.waits.splice(0);
      if (batch.length === 0) {
        py.settle(slot, "waited");
        return;
      }
      Promise.allSettled(batch).then((results) => {
        for (const r of results) if (r.status === "rejected") console.error("Uncaught (in waitUntil)", r.reason);
        drain();
      });
    };
    drain();
    return true;
  }
  function finish(slot) {
    requests.delete(slot);
    dropTimers(slot);
  }
  // What the host needs once the response settled (passed with py.settle): "E" + the error's JSON, or
  // "R"/"W" + the response's head (status, then NUL-separated header names and values) + "\n" +
  // its body (binary string). "W": waitUntil work is pending (settles "waited" later); "R": the
  // request is finished here.
  function collect(slot) {
    const record = requests.get(slot);
    if (record.error !== null) {
      const error = record.error;
      finish(slot);
      return "E" + error;
    }
    const text = record.meta + "\n" + record.body;
    record.body = null;
    if (waits(slot)) return "W" + text;
    finish(slot);
    return "R" + text;
  }

  // -- globals Workers defines that the Web API bundle leaves to the core ------------------------
  const define = (name, value) =>
    Object.defineProperty(globalThis, name, { value, writable: true, configurable: true, enumerable: false });
  define("fetch", fetch);
  define("setTimeout", (cb, ms, ...args) => addTimer(cb, ms, args, false));
  define("setInterval", (cb, ms, ...args) => addTimer(cb, ms, args, true));
  define("clearTimeout", clearTimer);
  define("clearInterval", clearTimer);
  define("addEventListener", addEventListener);
  if (typeof globalThis.queueMicrotask !== "function") {
    define("queueMicrotask", (cb) => { Promise.resolve().then(() => cb()); });
  }

  // -- the door Python uses ----------------------------------------------------------------------
  // Python posts a call (a plain function call: stores its arguments, runs nothing) and then
  // runs the script `__atoll_run()`. Only a script run may be terminated by the watchdog:
  // STPyV8 aborts the process when a terminated *function call* returns. Calling
  // __atoll_run from the worker does nothing (the mailbox is empty outside Python's calls).
  const api = {
    addModule, setEnv, installGlobals, hasHandler, startModule, moduleResult,
    dispatch, collect, finish, complete, fire, dispatchScheduled,
  };
  let mailbox = null;
  function post(name, a, b, c, d, e) {
    mailbox = [name, [a, b, c, d, e]];
  }
  // A request's dispatch is posted by setting the head (and the body, when there is one) on
  // this object: a property store from Python does not enter JS (no call, no microtask
  // checkpoint) and keeps Python's GIL, where a posted call does neither. Null prototype:
  // nothing the worker does to Object.prototype changes what the stores do.
  const door = Object.create(null);
  door.head = null;
  door.body = "";
  function run() {
    stashing = 0;
    stash = null;
    const head = door.head;
    if (head !== null) {
      const body = door.body;
      door.head = null;
      door.body = "";
      mailbox = null;
      return dispatch(head, body);
    }
    const call = mailbox;
    mailbox = null;
    if (call === null) return undefined;
    return Reflect_apply(api[call[0]], undefined, call[1]);
  }
  Object.defineProperty(globalThis, "__atoll_run", { value: run, writable: false, configurable: false, enumerable: false });
  Object.defineProperty(globalThis, "__atoll_take", { value: takeSettled, writable: false, configurable: false, enumerable: false });
  return [post, door];
})
