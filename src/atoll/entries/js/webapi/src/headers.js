// Headers, as the Fetch standard defines it (https://fetch.spec.whatwg.org/#headers-class), with
// Workers' differences: no forbidden header names (a worker may set any header, e.g. Set-Cookie on
// a Response or Host on a Request), and the headers of an incoming request are immutable
// ("Can't modify immutable headers.", as workerd says). Names are stored lower-cased: every way
// to read them (get, iteration) is case-insensitive or lower-cases them anyway.

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// HTTP whitespace at either end is removed (Fetch "normalize"); NUL, CR and LF are never allowed.
const EDGE_WHITESPACE = /^[\t\n\r ]+|[\t\n\r ]+$/g;
const BAD_VALUE = /[\0\r\n]/;

export const IMMUTABLE = "immutable";

export function normalizeValue(value) {
  return String(value).replace(EDGE_WHITESPACE, "");
}

function checkName(name) {
  if (!TOKEN.test(name)) throw new TypeError(`Invalid header name: ${JSON.stringify(name)}`);
}

function checkValue(name, value) {
  if (BAD_VALUE.test(value)) throw new TypeError(`Invalid header value for ${JSON.stringify(name)}: it contains NUL, CR or LF`);
}

class HeadersIterator {
  static pairsOf;
  #headers;
  #kind;
  #index = 0;

  constructor(headers, kind) {
    this.#headers = headers;
    this.#kind = kind;
  }

  next() {
    const pairs = HeadersIterator.pairsOf(this.#headers);
    if (this.#index >= pairs.length) return { value: undefined, done: true };
    const [name, value] = pairs[this.#index++];
    return { value: this.#kind === "key" ? name : this.#kind === "value" ? value : [name, value], done: false };
  }

  [Symbol.iterator]() {
    return this;
  }

  get [Symbol.toStringTag]() {
    return "Headers Iterator";
  }
}

let listOf;
let guardOf;
let fromTrustedPairs;

export class Headers {
  // [[name, value], ...] in insertion order, names lower-cased.
  #list = [];
  #guard = "none";
  // Sorted-and-combined view for iteration, rebuilt after a change.
  #sorted = null;

  constructor(init = undefined) {
    if (init === undefined || init === null) {
      if (init === null) throw new TypeError("Failed to construct 'Headers': The provided value is not of type '(record<ByteString, ByteString> or sequence<sequence<ByteString>>)'.");
      return;
    }
    this.#fill(init);
  }

  #fill(init) {
    if (typeof init !== "object" && typeof init !== "function") {
      throw new TypeError("Failed to construct 'Headers': The provided value is not of type '(record<ByteString, ByteString> or sequence<sequence<ByteString>>)'.");
    }
    if (#list in init) {
      for (const [name, value] of init.#list) this.#list.push([name, value]);
      return;
    }
    if (typeof init[Symbol.iterator] === "function") {
      for (const pair of init) {
        if (typeof pair === "string" || typeof pair?.[Symbol.iterator] !== "function") {
          throw new TypeError("Failed to construct 'Headers': The provided value cannot be converted to a sequence.");
        }
        const items = [...pair];
        if (items.length !== 2) {
          throw new TypeError("Failed to construct 'Headers': Invalid value: a header init pair must have exactly two items (name and value).");
        }
        this.append(items[0], items[1]);
      }
      return;
    }
    for (const key of Reflect.ownKeys(init)) {
      const desc = Reflect.getOwnPropertyDescriptor(init, key);
      if (desc === undefined || !desc.enumerable) continue;
      if (typeof key === "symbol") throw new TypeError("Failed to construct 'Headers': a header name cannot be a Symbol");
      this.append(key, init[key]);
    }
  }

  #mutable() {
    if (this.#guard === IMMUTABLE) throw new TypeError("Can't modify immutable headers.");
    this.#sorted = null;
  }

  append(name, value) {
    if (arguments.length < 2) throw new TypeError(`Failed to execute 'append' on 'Headers': 2 arguments required, but only ${arguments.length} present.`);
    name = String(name);
    value = normalizeValue(value);
    checkName(name);
    checkValue(name, value);
    this.#mutable();
    this.#list.push([name.toLowerCase(), value]);
  }

  delete(name) {
    if (arguments.length < 1) throw new TypeError("Failed to execute 'delete' on 'Headers': 1 argument required, but only 0 present.");
    name = String(name);
    checkName(name);
    this.#mutable();
    const lower = name.toLowerCase();
    this.#list = this.#list.filter((pair) => pair[0] !== lower);
  }

  get(name) {
    if (arguments.length < 1) throw new TypeError("Failed to execute 'get' on 'Headers': 1 argument required, but only 0 present.");
    name = String(name);
    checkName(name);
    const lower = name.toLowerCase();
    let out = null;
    for (const pair of this.#list) {
      if (pair[0] === lower) out = out === null ? pair[1] : `${out}, ${pair[1]}`;
    }
    return out;
  }

  getSetCookie() {
    const out = [];
    for (const pair of this.#list) if (pair[0] === "set-cookie") out.push(pair[1]);
    return out;
  }

  /** Workers' legacy getAll, for Set-Cookie only (workerd throws for any other name). */
  getAll(name) {
    if (String(name).toLowerCase() !== "set-cookie") {
      throw new TypeError('getAll() can only be used with the header name "Set-Cookie".');
    }
    return this.getSetCookie();
  }

  has(name) {
    if (arguments.length < 1) throw new TypeError("Failed to execute 'has' on 'Headers': 1 argument required, but only 0 present.");
    name = String(name);
    checkName(name);
    const lower = name.toLowerCase();
    return this.#list.some((pair) => pair[0] === lower);
  }

  set(name, value) {
    if (arguments.length < 2) throw new TypeError(`Failed to execute 'set' on 'Headers': 2 arguments required, but only ${arguments.length} present.`);
    name = String(name);
    value = normalizeValue(value);
    checkName(name);
    checkValue(name, value);
    this.#mutable();
    const lower = name.toLowerCase();
    // Fetch "set": replace the first, drop the others, keep the position.
    const index = this.#list.findIndex((pair) => pair[0] === lower);
    if (index === -1) {
      this.#list.push([lower, value]);
      return;
    }
    this.#list[index] = [lower, value];
    this.#list = this.#list.filter((pair, i) => i <= index || pair[0] !== lower);
  }

  // Fetch "sort and combine": sorted by name, values of one name joined by ", ", except
  // Set-Cookie whose values stay separate.
  #pairs() {
    if (this.#sorted !== null) return this.#sorted;
    // A stable sort by name keeps each name's values in insertion order; then adjacent values of
    // one name are joined.
    const sorted = this.#list.slice().sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    const out = [];
    for (const [name, value] of sorted) {
      const last = out[out.length - 1];
      if (last !== undefined && last[0] === name && name !== "set-cookie") last[1] = `${last[1]}, ${value}`;
      else out.push([name, value]);
    }
    this.#sorted = out;
    return out;
  }

  forEach(callback, thisArg = undefined) {
    if (typeof callback !== "function") throw new TypeError("Failed to execute 'forEach' on 'Headers': parameter 1 is not of type 'Function'.");
    for (let i = 0; i < this.#pairs().length; i++) {
      const [name, value] = this.#pairs()[i];
      callback.call(thisArg, value, name, this);
    }
  }

  keys() {
    return new HeadersIterator(this, "key");
  }

  values() {
    return new HeadersIterator(this, "value");
  }

  entries() {
    return new HeadersIterator(this, "key+value");
  }

  [Symbol.iterator]() {
    return this.entries();
  }

  get [Symbol.toStringTag]() {
    return "Headers";
  }

  // Node's util.inspect (console.log) shows the pairs, as Node and workerd do.
  [Symbol.for("nodejs.util.inspect.custom")](depth, options, inspect) {
    const obj = {};
    for (const [name, value] of this.#pairs()) obj[name] = name in obj ? [].concat(obj[name], value) : value;
    return `Headers ${inspect(obj, options)}`;
  }

  static {
    listOf = (headers) => headers.#list;
    guardOf = (headers, guard) => {
      if (guard !== undefined) headers.#guard = guard;
      return headers.#guard;
    };
    fromTrustedPairs = (pairs, guard) => {
      const h = new Headers();
      for (const [name, value] of pairs) h.#list.push([String(name).toLowerCase(), String(value)]);
      h.#guard = guard;
      return h;
    };
    HeadersIterator.pairsOf = (headers) => headers.#pairs();
  }
}

/** The header list (live) of `headers`. */
export function headerList(headers) {
  return listOf(headers);
}

/** Reads, and when `guard` is given sets, the guard of `headers`. */
export function headersGuard(headers, guard) {
  return guardOf(headers, guard);
}

/** Headers from pairs the host already validated (an incoming request's), no checks. */
export function trustedHeaders(pairs, guard = "none") {
  return fromTrustedPairs(pairs, guard);
}

/** Sorted-and-combined pairs, as iteration yields them (Set-Cookie kept apart). */
export function headerPairs(headers) {
  return HeadersIterator.pairsOf(headers);
}

// Web IDL: operations and attributes are enumerable properties of the prototype.
for (const key of ["append", "delete", "get", "getAll", "getSetCookie", "has", "set", "forEach", "keys", "values", "entries"]) {
  Object.defineProperty(Headers.prototype, key, { enumerable: true });
}
