// Web Crypto (https://w3c.github.io/webcrypto/) for what Workers code uses most: random values,
// UUIDs, SHA digests and HMAC keys. Hashes come from @noble/hashes (audited, pure JS); randomness
// from the host's CSPRNG. Other algorithms reject with NotSupportedError, as an unknown name does.
import { binaryToBytes, describe, viewOf } from "./bytes.js";
import { randomBytes } from "./host.js";
import { loader } from "./lazy.js";

// Loaded on first digest/HMAC (sha2 precomputes its round constants when it loads), so that
// getRandomValues and randomUUID cost a worker nothing more.
const noble = loader(() => ({
  hmac: require("@noble/hashes/hmac.js").hmac,
  "SHA-1": require("@noble/hashes/legacy.js").sha1,
  "SHA-256": require("@noble/hashes/sha2.js").sha256,
  "SHA-384": require("@noble/hashes/sha2.js").sha384,
  "SHA-512": require("@noble/hashes/sha2.js").sha512,
}));
const HASHES = { "SHA-1": true, "SHA-256": true, "SHA-384": true, "SHA-512": true };
const domException = loader(() => require("./dom-exception.js").DOMException);
const base64 = loader(() => require("./base64.js"));

function domError(message, name) {
  return new (domException())(message, name);
}
const INTEGER_ARRAYS = new Set([
  "Int8Array",
  "Uint8Array",
  "Uint8ClampedArray",
  "Int16Array",
  "Uint16Array",
  "Int32Array",
  "Uint32Array",
  "BigInt64Array",
  "BigUint64Array",
]);
const INTERNAL = Symbol("internal");

function typedArrayName(value) {
  if (!ArrayBuffer.isView(value) || value instanceof DataView) return null;
  return Object.prototype.toString.call(value).slice(8, -1);
}

export function getRandomValues(array) {
  const name = typedArrayName(array);
  if (name === null || !INTEGER_ARRAYS.has(name)) {
    throw domError(`Failed to execute 'getRandomValues' on 'Crypto': The provided ArrayBufferView is of type '${name ?? describe(array)}', which is not an integer array type.`, "TypeMismatchError");
  }
  if (array.byteLength > 65536) {
    throw domError(`Failed to execute 'getRandomValues' on 'Crypto': The ArrayBufferView's byte length (${array.byteLength}) exceeds the number of bytes of entropy available via this API (65536).`, "QuotaExceededError");
  }
  const bytes = binaryToBytes(randomBytes(array.byteLength));
  new Uint8Array(array.buffer, array.byteOffset, array.byteLength).set(bytes);
  return array;
}

export function randomUUID() {
  const b = binaryToBytes(randomBytes(16));
  b[6] = (b[6] & 0x0f) | 0x40; // version 4
  b[8] = (b[8] & 0x3f) | 0x80; // RFC 4122 variant
  const hex = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

function notSupported(what) {
  return domError(`${what} is not supported by atoll's crypto.subtle (it has SHA-1/256/384/512 digests, HMAC, PBKDF2 and HKDF).`, "NotSupportedError");
}

// WebCrypto "normalize an algorithm": a string or an object with a name, matched case-insensitively.
function algorithmName(algorithm) {
  const name = typeof algorithm === "string" ? algorithm : algorithm !== null && typeof algorithm === "object" ? algorithm.name : undefined;
  if (name === undefined) throw new TypeError("Algorithm: name is missing.");
  return String(name).toUpperCase();
}

function hashName(hash) {
  const name = algorithmName(hash);
  if (!(name in HASHES)) throw notSupported(`Hash ${JSON.stringify(typeof hash === "string" ? hash : hash.name)}`);
  return name;
}

function bufferSource(value, what) {
  const view = viewOf(value);
  if (view === null) throw new TypeError(`${what} must be an ArrayBuffer or an ArrayBufferView, got ${describe(value)}.`);
  return view.slice();
}

function toArrayBuffer(bytes) {
  return bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength ? bytes.buffer : bytes.slice().buffer;
}

const BLOCK_BITS = { "SHA-1": 512, "SHA-256": 512, "SHA-384": 1024, "SHA-512": 1024 };
const USAGES = new Set(["encrypt", "decrypt", "sign", "verify", "deriveKey", "deriveBits", "wrapKey", "unwrapKey"]);

let keyBytes;
let newKey;

export class CryptoKey {
  #type;
  #extractable;
  #algorithm;
  #usages;
  #bytes;

  constructor(token = undefined) {
    if (token !== INTERNAL) throw new TypeError("Illegal constructor");
  }

  get type() {
    return this.#type;
  }

  get extractable() {
    return this.#extractable;
  }

  get algorithm() {
    return this.#algorithm;
  }

  get usages() {
    return this.#usages;
  }

  get [Symbol.toStringTag]() {
    return "CryptoKey";
  }

  static {
    keyBytes = (key) => {
      if (typeof key !== "object" || key === null || !(#bytes in key)) {
        throw new TypeError(`Expected a CryptoKey, got ${describe(key)}.`);
      }
      return key.#bytes;
    };
    newKey = (bytes, hash, extractable, usages, algorithm = undefined) => {
      const key = new CryptoKey(INTERNAL);
      key.#type = "secret";
      key.#extractable = Boolean(extractable);
      key.#algorithm = algorithm ?? { name: "HMAC", hash: { name: hash }, length: bytes.length * 8 };
      key.#usages = usages;
      key.#bytes = bytes;
      return key;
    };
  }
}

function hmacUsages(usages) {
  const list = [...usages].map(String);
  for (const u of list) {
    if (!USAGES.has(u)) throw new TypeError(`'${u}' is not a valid KeyUsage.`);
    if (u !== "sign" && u !== "verify") throw domError(`An HMAC key cannot be used to ${u}.`, "SyntaxError");
  }
  if (list.length === 0) throw domError("A secret key needs at least one usage.", "SyntaxError");
  return [...new Set(list)];
}

function hmacKey(key, usage) {
  const bytes = keyBytes(key);
  if (key.algorithm.name !== "HMAC") throw domError(`The key is for ${key.algorithm.name}, not HMAC.`, "InvalidAccessError");
  if (!key.usages.includes(usage)) throw domError(`The key's usages do not include '${usage}'.`, "InvalidAccessError");
  return bytes;
}

function base64url(bytes) {
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return base64().btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function fromBase64url(s) {
  return binaryToBytes(base64().atob(String(s).replace(/-/g, "+").replace(/_/g, "/")));
}

// PBKDF2 and HKDF base keys (WebCrypto sections 31 and 30): raw secrets, never extractable, usable
// only to derive. Workers caps PBKDF2 at 100,000 iterations; so does atoll.
const DERIVE = new Set(["PBKDF2", "HKDF"]);
const MAX_PBKDF2_ITERATIONS = 100000;

function deriveUsages(name, usages) {
  const list = [...usages].map(String);
  for (const u of list) {
    if (!USAGES.has(u)) throw new TypeError(`'${u}' is not a valid KeyUsage.`);
    if (u !== "deriveKey" && u !== "deriveBits") throw domError(`A ${name} key cannot be used to ${u}.`, "SyntaxError");
  }
  return [...new Set(list)];
}

function derive(algorithm, baseKey, length) {
  const name = algorithmName(algorithm);
  if (!DERIVE.has(name)) throw notSupported(`deriveBits with ${JSON.stringify(typeof algorithm === "string" ? algorithm : algorithm.name)}`);
  const secret = keyBytes(baseKey);
  if (baseKey.algorithm.name !== name) throw domError(`The key is for ${baseKey.algorithm.name}, not ${name}.`, "InvalidAccessError");
  if (length === null || length === undefined || !Number.isInteger(Number(length)) || Number(length) % 8 !== 0 || Number(length) <= 0) {
    throw domError(`${name} deriveBits needs a length that is a positive multiple of 8, got ${length}.`, "OperationError");
  }
  const bytes = Number(length) / 8;
  const hash = noble()[hashName(algorithm.hash)];
  const salt = bufferSource(algorithm.salt, `${name} salt`);
  if (name === "PBKDF2") {
    const iterations = Number(algorithm.iterations);
    if (!Number.isInteger(iterations) || iterations <= 0) throw domError("PBKDF2 iterations must be a positive integer.", "OperationError");
    if (iterations > MAX_PBKDF2_ITERATIONS) {
      throw notSupported(`PBKDF2 with ${iterations} iterations (Workers and atoll allow at most ${MAX_PBKDF2_ITERATIONS})`);
    }
    return require("@noble/hashes/pbkdf2.js").pbkdf2(hash, secret, salt, { c: iterations, dkLen: bytes });
  }
  const info = bufferSource(algorithm.info, "HKDF info");
  return require("@noble/hashes/hkdf.js").hkdf(hash, secret, salt, info, bytes);
}

const subtleMethods = {
  async digest(algorithm, data) {
    const name = algorithmName(algorithm);
    if (!(name in HASHES)) throw notSupported(`Digest algorithm ${JSON.stringify(typeof algorithm === "string" ? algorithm : algorithm.name)}`);
    return toArrayBuffer(noble()[name](bufferSource(data, "digest data")));
  },

  async importKey(format, keyData, algorithm, extractable, usages) {
    const name = algorithmName(algorithm);
    if (DERIVE.has(name)) {
      if (format !== "raw") throw notSupported(`Key format ${JSON.stringify(format)} for ${name}`);
      if (extractable) throw domError(`A ${name} key cannot be extractable.`, "SyntaxError");
      return newKey(bufferSource(keyData, "keyData"), null, false, deriveUsages(name, usages), { name });
    }
    if (name !== "HMAC") throw notSupported(`importKey for ${JSON.stringify(typeof algorithm === "string" ? algorithm : algorithm.name)}`);
    if (typeof algorithm !== "object" || algorithm.hash === undefined) throw new TypeError("HMAC importKey needs algorithm.hash.");
    const hash = hashName(algorithm.hash);
    const list = hmacUsages(usages);
    let bytes;
    if (format === "raw") {
      bytes = bufferSource(keyData, "keyData");
    } else if (format === "jwk") {
      if (keyData === null || typeof keyData !== "object" || keyData.kty !== "oct" || typeof keyData.k !== "string") {
        throw domError("An HMAC JWK needs kty 'oct' and a 'k'.", "DataError");
      }
      bytes = fromBase64url(keyData.k);
      if (keyData.alg !== undefined && keyData.alg !== `HS${hash.slice(4)}`) {
        throw domError(`The JWK's alg ${keyData.alg} does not match hash ${hash}.`, "DataError");
      }
    } else {
      throw notSupported(`Key format ${JSON.stringify(format)} for HMAC`);
    }
    if (bytes.length === 0) throw domError("An HMAC key cannot be empty.", "DataError");
    if (algorithm.length !== undefined) {
      const length = Number(algorithm.length);
      if (length > bytes.length * 8 || length <= (bytes.length - 1) * 8) {
        throw domError(`The key data is ${bytes.length * 8} bits, not ${length}.`, "DataError");
      }
    }
    return newKey(bytes, hash, extractable, list);
  },

  async generateKey(algorithm, extractable, usages) {
    const name = algorithmName(algorithm);
    if (name !== "HMAC") throw notSupported(`generateKey for ${JSON.stringify(typeof algorithm === "string" ? algorithm : algorithm.name)}`);
    const hash = hashName(algorithm.hash);
    const bits = algorithm.length === undefined ? BLOCK_BITS[hash] : Number(algorithm.length);
    if (!Number.isInteger(bits) || bits <= 0 || bits % 8 !== 0) throw domError(`HMAC key length ${algorithm.length} is not a positive multiple of 8.`, "OperationError");
    return newKey(binaryToBytes(randomBytes(bits / 8)), hash, extractable, hmacUsages(usages));
  },

  async exportKey(format, key) {
    const bytes = keyBytes(key);
    if (!key.extractable) throw domError("The key is not extractable.", "InvalidAccessError");
    if (format === "raw") return toArrayBuffer(bytes.slice());
    if (format === "jwk") {
      const hash = key.algorithm.hash.name;
      return { kty: "oct", k: base64url(bytes), alg: `HS${hash.slice(4)}`, key_ops: [...key.usages], ext: key.extractable };
    }
    throw notSupported(`Key format ${JSON.stringify(format)} for HMAC`);
  },

  async sign(algorithm, key, data) {
    const name = algorithmName(algorithm);
    if (name !== "HMAC") throw notSupported(`sign with ${JSON.stringify(typeof algorithm === "string" ? algorithm : algorithm.name)}`);
    const secret = hmacKey(key, "sign");
    return toArrayBuffer(noble().hmac(noble()[key.algorithm.hash.name], secret, bufferSource(data, "sign data")));
  },

  async verify(algorithm, key, signature, data) {
    const name = algorithmName(algorithm);
    if (name !== "HMAC") throw notSupported(`verify with ${JSON.stringify(typeof algorithm === "string" ? algorithm : algorithm.name)}`);
    const secret = hmacKey(key, "verify");
    const expected = noble().hmac(noble()[key.algorithm.hash.name], secret, bufferSource(data, "verify data"));
    return equalBytes(expected, bufferSource(signature, "signature"));
  },

  /** Workers' extension: compares two equal-length buffers in constant time. */
  timingSafeEqual(a, b) {
    const x = bufferSource(a, "timingSafeEqual a");
    const y = bufferSource(b, "timingSafeEqual b");
    if (x.length !== y.length) throw new TypeError("Input buffers must have the same byte length");
    return equalBytes(x, y);
  },
};

subtleMethods.deriveBits = async function deriveBits(algorithm, baseKey, length) {
  if (!keyBytes(baseKey) || !baseKey.usages.includes("deriveBits")) throw domError("The key's usages do not include 'deriveBits'.", "InvalidAccessError");
  return toArrayBuffer(derive(algorithm, baseKey, length));
};

/** deriveKey to an HMAC key (the only key type atoll's crypto.subtle can use). */
subtleMethods.deriveKey = async function deriveKey(algorithm, baseKey, derivedKeyType, extractable, usages) {
  if (!keyBytes(baseKey) || !baseKey.usages.includes("deriveKey")) throw domError("The key's usages do not include 'deriveKey'.", "InvalidAccessError");
  if (algorithmName(derivedKeyType) !== "HMAC") throw notSupported(`deriveKey to ${JSON.stringify(typeof derivedKeyType === "string" ? derivedKeyType : derivedKeyType.name)}`);
  const hash = hashName(derivedKeyType.hash);
  const bits = derivedKeyType.length === undefined ? BLOCK_BITS[hash] : Number(derivedKeyType.length);
  return newKey(derive(algorithm, baseKey, bits), hash, extractable, hmacUsages(usages));
};

for (const name of ["encrypt", "decrypt", "wrapKey", "unwrapKey"]) {
  subtleMethods[name] = {
    async [name]() {
      throw notSupported(`crypto.subtle.${name}`);
    },
  }[name];
}

function equalBytes(a, b) {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

export class SubtleCrypto {
  constructor(token = undefined) {
    if (token !== INTERNAL) throw new TypeError("Illegal constructor");
  }

  get [Symbol.toStringTag]() {
    return "SubtleCrypto";
  }
}
for (const [name, fn] of Object.entries(subtleMethods)) {
  Object.defineProperty(SubtleCrypto.prototype, name, { value: fn, writable: true, enumerable: true, configurable: true });
}

export class Crypto {
  #subtle = new SubtleCrypto(INTERNAL);

  constructor(token = undefined) {
    if (token !== INTERNAL) throw new TypeError("Illegal constructor");
  }

  get subtle() {
    return this.#subtle;
  }

  getRandomValues(array) {
    return getRandomValues(array);
  }

  randomUUID() {
    return randomUUID();
  }

  get [Symbol.toStringTag]() {
    return "Crypto";
  }
}

export const crypto = new Crypto(INTERNAL);
