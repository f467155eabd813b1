// The Body mixin of Request and Response (https://fetch.spec.whatwg.org/#body-mixin).
//
// A body keeps its source (a string, the host's binary string, bytes, a Blob) until someone asks
// for `.body`: only then is a ReadableStream made, so a worker that answers `new Response("hi")`
// or reads `await request.text()` never builds a stream. Once made, the stream is the body, and
// "used" means what the spec says: the stream is disturbed (read from or cancelled) or locked.
import {
  binaryToBytes,
  bytesToBinary,
  concatBytes,
  describe,
  stringToUtf8Binary,
  utf8BinaryToString,
  viewOf,
} from "./bytes.js";
import { headerList } from "./headers.js";

import { blobModule, fileModule, formDataModule, streams, whatwgURL } from "./modules.js";

export const USED_MESSAGE = "Body has already been used. It can only be used once. Use tee() first if you need to read it twice.";

function tagOf(value) {
  return Object.prototype.toString.call(value).slice(8, -1);
}

export function isReadableStream(value) {
  return tagOf(value) === "ReadableStream" && value instanceof streams().ReadableStream;
}

function isURLSearchParams(value) {
  return tagOf(value) === "URLSearchParams" && value instanceof whatwgURL().URLSearchParams;
}

// Blob and FormData here are fetch-blob's and formdata-polyfill's, whose instanceof checks the
// shape (Symbol.toStringTag plus methods), so only those tags need a look.
function isBlob(value) {
  const tag = tagOf(value);
  return (tag === "Blob" || tag === "File") && value instanceof blobModule().Blob;
}

function isFormData(value) {
  return tagOf(value) === "FormData" && value instanceof formDataModule().FormData;
}

/**
 * A body: `kind` is "text" (a JS string), "binary" (bytes as a binary string), "bytes" (a
 * Uint8Array nobody else holds), "blob", or "stream" (a ReadableStream). `used` marks a non-stream
 * body as consumed; a stream body is used when its stream is disturbed or locked.
 */
export class BodyState {
  constructor(kind, value) {
    this.kind = kind;
    this.value = value;
    this.used = false;
  }

  get unusable() {
    if (this.kind === "stream") return this.value._disturbed === true || this.value.locked;
    return this.used;
  }

  get disturbed() {
    return this.kind === "stream" ? this.value._disturbed === true : this.used;
  }

  /** The body as a ReadableStream (made now if the body was still its source). */
  stream() {
    if (this.kind === "stream") return this.value;
    let stream;
    if (this.kind === "blob" && !this.used) {
      // A Blob's own stream, as the spec's "extract" does for a Blob.
      stream = this.value.stream();
    } else {
      const bytes = this.used ? null : this.#bytesNow();
      stream = new (streams().ReadableStream)({
        type: "bytes",
        start(controller) {
          if (bytes !== null && bytes.length > 0) controller.enqueue(bytes);
          controller.close();
        },
      });
      // Already consumed through text()/json()/...: the stream reads as disturbed, as it would
      // had it existed all along.
      if (this.used) stream.cancel();
    }
    this.kind = "stream";
    this.value = stream;
    return stream;
  }

  #bytesNow() {
    switch (this.kind) {
      case "text":
        return binaryToBytes(stringToUtf8Binary(this.value));
      case "binary":
        return binaryToBytes(this.value);
      case "bytes":
        return this.value;
      default:
        throw new Error(`body kind ${this.kind} has no bytes at hand`);
    }
  }

  /** A second body with the same content; a stream body is teed (spec "clone a body"). */
  clone() {
    if (this.kind === "blob") {
      return new BodyState("blob", this.value);
    }
    if (this.kind === "bytes") return new BodyState("bytes", this.value.slice());
    if (this.kind !== "stream") return new BodyState(this.kind, this.value);
    const [a, b] = this.value.tee();
    this.value = a;
    return new BodyState("stream", b);
  }

  /** readBinary for a body held as text, a binary string or bytes (no stream, no Blob). */
  readBinarySync() {
    this.used = true;
    if (this.kind === "text") return stringToUtf8Binary(this.value);
    if (this.kind === "binary") return this.value;
    return bytesToBinary(this.value);
  }

  /** Marks the body used and returns its content as a binary string. */
  async readBinary() {
    switch (this.kind) {
      case "text":
        this.used = true;
        return stringToUtf8Binary(this.value);
      case "binary":
        this.used = true;
        return this.value;
      case "bytes":
        this.used = true;
        return bytesToBinary(this.value);
      default:
        return bytesToBinary(await this.readBytes());
    }
  }

  /** Marks the body used and returns its content as a Uint8Array the caller owns. */
  async readBytes() {
    switch (this.kind) {
      case "text":
      case "binary":
        return binaryToBytes(await this.readBinary());
      case "bytes":
        this.used = true;
        return this.value.slice();
      case "blob":
        this.used = true;
        return new Uint8Array(await this.value.arrayBuffer());
      default:
        return readAll(this.value);
    }
  }

  /** Marks the body used and returns it decoded as UTF-8 ("UTF-8 decode": BOM dropped). */
  async readText() {
    if (this.kind === "text") {
      this.used = true;
      const s = this.value;
      return s.isWellFormed() ? s : s.toWellFormed();
    }
    return utf8BinaryToString(await this.readBinary());
  }
}

/** Reads a whole ReadableStream of byte chunks. */
async function readAll(stream) {
  const reader = stream.getReader();
  const chunks = [];
  let total = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      const view = viewOf(value);
      if (view === null) {
        throw new TypeError(`This ReadableStream did not return bytes: a body's chunks must be ArrayBuffers or ArrayBufferViews, got ${describe(value)}`);
      }
      if (view.length === 0) continue;
      chunks.push(view);
      total += view.length;
    }
  } catch (err) {
    reader.releaseLock();
    throw err;
  }
  reader.releaseLock();
  if (chunks.length === 0) return new Uint8Array(0);
  return chunks.length === 1 ? chunks[0].slice() : concatBytes(chunks, total);
}

/**
 * Fetch "extract a body": returns [BodyState, Content-Type or null] for a BodyInit, or
 * [null, null] for null/undefined.
 */
export function extractBody(init) {
  if (init === null || init === undefined) return [null, null];
  if (typeof init === "string") return [new BodyState("text", init), "text/plain;charset=UTF-8"];
  const view = viewOf(init);
  if (view !== null) return [new BodyState("bytes", view.slice()), null];
  if (isReadableStream(init)) {
    if (init._disturbed === true || init.locked) {
      throw new TypeError("This ReadableStream is disturbed (has already been read from) or locked, and cannot be used as a body.");
    }
    return [new BodyState("stream", init), null];
  }
  if (isBlob(init)) return [new BodyState("blob", init), init.type === "" ? null : init.type];
  if (isURLSearchParams(init)) {
    return [new BodyState("text", init.toString()), "application/x-www-form-urlencoded;charset=UTF-8"];
  }
  if (isFormData(init)) {
    const blob = formDataModule().formDataToBlob(init, blobModule().Blob);
    return [new BodyState("blob", blob), blob.type];
  }
  // Web IDL: anything else in a BodyInit union converts to a USVString.
  return [new BodyState("text", String(init)), "text/plain;charset=UTF-8"];
}

/** The MIME type of a body (from its Content-Type header), lower-cased essence + params. */
function contentTypeOf(headers) {
  let value = null;
  for (const [name, v] of headerList(headers)) if (name === "content-type") value = v;
  return value;
}

// MIME Sniffing "parse a MIME type" then "serialize", simplified: essence and parameter names
// lower-cased, whitespace around ";" and "=" dropped, the first of a repeated parameter kept; an
// unparsable type is "".
function serializeMime(contentType) {
  if (contentType === null) return "";
  const [essence, ...params] = contentType.split(";");
  const type = essence.trim().toLowerCase();
  if (!/^[!#$%&'*+\-.^_`|~0-9a-z]+\/[!#$%&'*+\-.^_`|~0-9a-z]+$/.test(type)) return "";
  const seen = new Set();
  let out = type;
  for (const param of params) {
    const eq = param.indexOf("=");
    if (eq === -1) continue;
    const name = param.slice(0, eq).trim().toLowerCase();
    const value = param.slice(eq + 1).trim();
    if (name === "" || seen.has(name) || value === "") continue;
    seen.add(name);
    out += `;${name}=${value}`;
  }
  return out;
}

function mimeEssence(contentType) {
  return contentType === null ? "" : contentType.split(";")[0].trim().toLowerCase();
}

function mimeParam(contentType, key) {
  for (const part of contentType.split(";").slice(1)) {
    const eq = part.indexOf("=");
    if (eq === -1) continue;
    if (part.slice(0, eq).trim().toLowerCase() !== key) continue;
    let v = part.slice(eq + 1).trim();
    if (v.startsWith('"')) v = v.slice(1, v.indexOf('"', 1) === -1 ? undefined : v.indexOf('"', 1));
    return v;
  }
  return null;
}

/**
 * The Body mixin's methods, installed on Request.prototype and Response.prototype.
 * `stateOf(obj)` returns the object's BodyState (null for no body) and throws a TypeError when
 * `obj` is not of the class: `headersOf(obj)` its Headers.
 */
export function installBodyMixin(proto, className, stateOf, headersOf) {
  // Fetch "consume body": the checks and the start of the read happen when the method is called,
  // so a second call made before the first settles finds the body used. `read` starts reading
  // synchronously (a stream is locked, a source marked used) and returns a promise; null stands
  // for no body.
  function consume(self, method, read) {
    let state;
    try {
      state = stateOf(self, method);
    } catch (err) {
      return Promise.reject(err);
    }
    if (state === null) return Promise.resolve(null);
    if (state.unusable) return Promise.reject(new TypeError(USED_MESSAGE));
    return read(state);
  }
  // The Content-Type when the method is called (null if `self` is not of the class: consume
  // rejects then).
  function contentTypeAtCall(self, method) {
    try {
      stateOf(self, method);
      return contentTypeOf(headersOf(self));
    } catch {
      return null;
    }
  }
  const readBytes = (state) => state.readBytes();
  const readText = (state) => state.readText();
  const methods = {
    get body() {
      const state = stateOf(this, "body");
      return state === null ? null : state.stream();
    },
    get bodyUsed() {
      const state = stateOf(this, "bodyUsed");
      return state !== null && state.disturbed;
    },
    arrayBuffer() {
      return consume(this, "arrayBuffer", readBytes).then((bytes) => (bytes === null ? new ArrayBuffer(0) : bytes.buffer));
    },
    bytes() {
      return consume(this, "bytes", readBytes).then((bytes) => bytes ?? new Uint8Array(0));
    },
    text() {
      return consume(this, "text", readText).then((text) => text ?? "");
    },
    json() {
      return consume(this, "json", readText).then((text) => JSON.parse(text ?? ""));
    },
    blob() {
      const type = serializeMime(contentTypeAtCall(this, "blob"));
      return consume(this, "blob", readBytes).then((bytes) => {
        const { Blob } = blobModule();
        return new Blob(bytes === null || bytes.length === 0 ? [] : [bytes], { type: /^[\x20-\x7e]*$/.test(type) ? type : "" });
      });
    },
    formData() {
      const contentType = contentTypeAtCall(this, "formData");
      const essence = mimeEssence(contentType);
      if (essence === "multipart/form-data") {
        return consume(this, "formData", (state) => state.readBinary()).then((binary) => {
          const boundary = mimeParam(contentType, "boundary");
          if (!boundary) throw new TypeError(`Failed to parse body as FormData: Content-Type ${JSON.stringify(contentType)} has no boundary.`);
          const { FormData } = formDataModule();
          const { File } = fileModule();
          const form = new FormData();
          for (const part of parseMultipart(binary ?? "", boundary)) {
            if (part.filename === null) form.append(part.name, utf8BinaryToString(part.data));
            else form.append(part.name, new File([binaryToBytes(part.data)], part.filename, { type: part.type }));
          }
          return form;
        });
      }
      if (essence === "application/x-www-form-urlencoded") {
        return consume(this, "formData", readText).then((text) => {
          const { FormData } = formDataModule();
          const form = new FormData();
          for (const [name, value] of new (whatwgURL().URLSearchParams)(text ?? "")) form.append(name, value);
          return form;
        });
      }
      return consume(this, "formData", (state) => state.readBinary()).then(() => {
        throw new TypeError(`Failed to parse body as FormData: Content-Type must be multipart/form-data or application/x-www-form-urlencoded, got ${JSON.stringify(contentType)}.`);
      });
    },
  };
  for (const key of Object.keys(methods)) {
    const desc = Object.getOwnPropertyDescriptor(methods, key);
    desc.enumerable = true;
    if (typeof desc.value === "function") Object.defineProperty(desc.value, "name", { value: key });
    Object.defineProperty(proto, key, desc);
  }
}

// multipart/form-data (RFC 7578) over a binary string. Names and filenames are UTF-8 and were
// escaped by the sender the way HTML's form encoding does (", CR, LF as %22, %0D, %0A).
function parseMultipart(binary, boundary) {
  const delimiter = `--${boundary}`;
  const parts = [];
  let pos = binary.indexOf(delimiter);
  if (pos === -1) throw new TypeError("Failed to parse body as FormData: no multipart boundary found.");
  pos += delimiter.length;
  for (;;) {
    if (binary.startsWith("--", pos)) return parts;
    if (!binary.startsWith("\r\n", pos)) throw new TypeError("Failed to parse body as FormData: malformed multipart boundary line.");
    pos += 2;
    const headerEnd = binary.indexOf("\r\n\r\n", pos);
    if (headerEnd === -1) throw new TypeError("Failed to parse body as FormData: a part has no end of headers.");
    let name = null;
    let filename = null;
    let type = "text/plain";
    for (const line of binary.slice(pos, headerEnd).split("\r\n")) {
      const colon = line.indexOf(":");
      if (colon === -1) continue;
      const key = line.slice(0, colon).trim().toLowerCase();
      const value = line.slice(colon + 1).trim();
      if (key === "content-disposition") {
        name = dispositionParam(value, "name");
        filename = dispositionParam(value, "filename");
      } else if (key === "content-type") {
        type = value;
      }
    }
    if (name === null) throw new TypeError("Failed to parse body as FormData: a part has no Content-Disposition name.");
    const dataStart = headerEnd + 4;
    const next = binary.indexOf(`\r\n${delimiter}`, dataStart);
    if (next === -1) throw new TypeError("Failed to parse body as FormData: the last part is not terminated by its boundary.");
    parts.push({
      name: unescapeName(name),
      filename: filename === null ? null : unescapeName(filename),
      type,
      data: binary.slice(dataStart, next),
    });
    pos = next + 2 + delimiter.length;
  }
}

function dispositionParam(value, key) {
  const re = new RegExp(`;\\s*${key}="((?:[^"\\\\]|\\\\.)*)"|;\\s*${key}=([^;\\s]*)`, "i");
  const m = re.exec(value);
  if (m === null) return null;
  return m[1] !== undefined ? m[1].replace(/\\(.)/g, "$1") : m[2];
}

function unescapeName(binary) {
  return utf8BinaryToString(binary).replace(/%22/g, '"').replace(/%0D/gi, "\r").replace(/%0A/gi, "\n");
}
