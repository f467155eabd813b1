// CompressionStream and DecompressionStream (https://compression.spec.whatwg.org/) for "gzip",
// "deflate" (zlib) and "deflate-raw", on fflate's streaming (de)compressors.
import { Deflate, Gunzip, Gzip, Inflate, Unzlib, Zlib } from "fflate";
import { describe, viewOf } from "./bytes.js";
import { streams } from "./modules.js";

const COMPRESSORS = { gzip: Gzip, deflate: Zlib, "deflate-raw": Deflate };
const DECOMPRESSORS = { gzip: Gunzip, deflate: Unzlib, "deflate-raw": Inflate };

function checkFormat(kind, format) {
  format = String(format);
  if (!Object.hasOwn(COMPRESSORS, format)) {
    throw new TypeError(`Failed to construct '${kind}': Unsupported compression format: '${format}'`);
  }
  return format;
}

function chunkBytes(chunk) {
  const view = viewOf(chunk);
  if (view === null) throw new TypeError(`The chunk must be an ArrayBuffer or an ArrayBufferView, got ${describe(chunk)}.`);
  return view.slice();
}

// fflate's inflate state (pinned 0.8.3): `s.f` is set once the final block has begun and `s.l`
// is cleared when a block is complete, so both together mean the compressed data ended. Its Gunzip
// resets that state at the end of each member and sets `v` while it waits for the next one.
const ended = (engine, format) =>
  (format === "gzip" && engine.v > 0) || Boolean(engine.s && engine.s.f && !engine.s.l);

// One TransformStream around an fflate stream: its output callback enqueues.
function transform(make, decompressing, format) {
  let engine;
  const fail = (err) => new TypeError(`Decompression failed: ${err && err.message}`);
  return new (streams().TransformStream)({
    start(controller) {
      engine = make((data) => {
        if (data.length > 0) controller.enqueue(data);
      });
    },
    transform(chunk) {
      const bytes = chunkBytes(chunk);
      try {
        engine.push(bytes, false);
      } catch (err) {
        throw fail(err);
      }
    },
    flush() {
      const complete = !decompressing || ended(engine, format);
      try {
        engine.push(new Uint8Array(0), true);
      } catch (err) {
        throw fail(err);
      }
      if (!complete && !ended(engine, format)) throw new TypeError("Decompression failed: the compressed data is truncated.");
    },
  });
}

export class CompressionStream {
  #stream;

  constructor(format) {
    format = checkFormat("CompressionStream", format);
    const Engine = COMPRESSORS[format];
    this.#stream = transform((ondata) => new Engine(ondata), false, format);
  }

  get readable() {
    return this.#stream.readable;
  }

  get writable() {
    return this.#stream.writable;
  }

  get [Symbol.toStringTag]() {
    return "CompressionStream";
  }
}

export class DecompressionStream {
  #stream;

  constructor(format) {
    format = checkFormat("DecompressionStream", format);
    const Engine = DECOMPRESSORS[format];
    this.#stream = transform((ondata) => new Engine(ondata), true, format);
  }

  get readable() {
    return this.#stream.readable;
  }

  get writable() {
    return this.#stream.writable;
  }

  get [Symbol.toStringTag]() {
    return "DecompressionStream";
  }
}
