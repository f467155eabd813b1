// Bytes as they cross the host boundary: binary strings (one char per byte, HOST.md), plus the
// UTF-8 conversions bodies need. escape/unescape + encodeURIComponent/decodeURIComponent are V8
// builtins that convert UTF-8 <-> binary strings natively; they throw on lone surrogates and on
// malformed UTF-8, and only then do we take the spec's replacing path through TextEncoder/Decoder.
// Loaded on first need: most bodies are ASCII or well-formed UTF-8 and never get here.
import { encoding } from "./modules.js";

const CHUNK = 0x8000;

/** Uint8Array -> binary string. */
export function bytesToBinary(bytes) {
  if (bytes.length <= CHUNK) return String.fromCharCode.apply(null, bytes);
  let out = "";
  for (let i = 0; i < bytes.length; i += CHUNK) {
    out += String.fromCharCode.apply(null, bytes.subarray(i, i + CHUNK));
  }
  return out;
}

/** Binary string -> new Uint8Array. Code points above 0xFF keep their low byte. */
export function binaryToBytes(s) {
  const n = s.length;
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = s.charCodeAt(i);
  return out;
}

/** A JS string -> its UTF-8 bytes as a binary string (lone surrogates become U+FFFD). */
export function stringToUtf8Binary(s) {
  // Pure ASCII needs no work: the common case for headers and small bodies.
  if (/^[\x00-\x7f]*$/.test(s)) return s;
  try {
    return unescape(encodeURIComponent(s));
  } catch {
    return bytesToBinary(new (encoding().TextEncoder)().encode(s));
  }
}

/** UTF-8 bytes held in a binary string -> text, as Encoding's "UTF-8 decode" (BOM dropped,
 * malformed sequences replaced by U+FFFD). */
export function utf8BinaryToString(s) {
  if (/^[\x00-\x7f]*$/.test(s)) return s;
  let text;
  try {
    text = decodeURIComponent(escape(s));
  } catch {
    return new (encoding().TextDecoder)().decode(binaryToBytes(s));
  }
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

/** A BufferSource (ArrayBuffer, typed array, DataView) -> a Uint8Array view of its bytes, or
 * null for anything else. */
export function viewOf(value) {
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  if (ArrayBuffer.isView(value)) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  if (typeof SharedArrayBuffer !== "undefined" && value instanceof SharedArrayBuffer) return new Uint8Array(value);
  return null;
}

/** __atoll_rt.toBinary: a BufferSource -> binary string; a string -> its UTF-8 bytes. */
export function toBinary(value) {
  if (typeof value === "string") return stringToUtf8Binary(value);
  const view = viewOf(value);
  if (view === null) {
    throw new TypeError(`toBinary: expected a string, ArrayBuffer, typed array or DataView, got ${describe(value)}`);
  }
  return bytesToBinary(view);
}

/** Names a value for an error message ("a Promise", "null", "a string"). */
export function describe(value) {
  if (value === null) return "null";
  if (value === undefined) return "undefined";
  if (typeof value === "object" || typeof value === "function") {
    const name = value.constructor && typeof value.constructor.name === "string" ? value.constructor.name : "";
    return name ? `an object of type ${name}` : "an object";
  }
  return `a ${typeof value} (${String(value).slice(0, 40)})`;
}

export function concatBytes(chunks, total) {
  if (chunks.length === 1) return chunks[0];
  const out = new Uint8Array(total);
  let offset = 0;
  for (const c of chunks) {
    out.set(c, offset);
    offset += c.length;
  }
  return out;
}
