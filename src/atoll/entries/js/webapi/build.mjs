// Bundles src/index.js and the pinned npm packages into ../webapi.js: one classic script (IIFE,
// ES2022) that atoll evaluates once per V8 context, before any worker code (see ../HOST.md).
// Run through scripts/build-webapi.sh (npm ci first); `node build.mjs --out FILE` writes elsewhere.
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const here = path.dirname(fileURLToPath(import.meta.url));
const outIndex = process.argv.indexOf("--out");
const outfile = outIndex > 0 ? process.argv[outIndex + 1] : path.join(here, "..", "webapi.js");
const require = createRequire(import.meta.url);
const lock = require("./package-lock.json");
const pkg = (name) => lock.packages[`node_modules/${name}`].version;

// Source patches to pinned packages. Each must match exactly once, so that a version bump that
// changes the patched text fails the build instead of silently shipping unpatched code.
const patches = {
  // fetch-blob 4 imports Node's stream module with a top-level await when there is no global
  // ReadableStream: a classic script cannot await, and the global exists here at call time.
  "fetch-blob/index.js": [
    [/^if \(!globalThis\.ReadableStream\) \{[\s\S]*?\n\}\n/m, ""],
    // File API: a Blob's type is lower-cased (https://w3c.github.io/FileAPI/#constructorBlob, 3.3).
    [
      "this.#type = /^[\\x20-\\x7E]*$/.test(type) ? type : ''",
      "this.#type = /^[\\x20-\\x7E]*$/.test(type) ? type.toLowerCase() : ''",
    ],
  ],
  // A worker parses the same few URLs again and again (`new URL(request.url)` on every request):
  // the parse of an input without base or state override is a pure function of the string, so
  // its URL record is kept (a bounded map per isolate) and each caller gets its own copy.
  "whatwg-url/lib/url-state-machine.js": [
    [
      `module.exports.basicURLParse = function (input, options = {}) {
  return basicURLParse(input, options);
};`,
      `const parsedURLs = new Map();
function copyURLRecord(url) {
  return {
    scheme: url.scheme,
    username: url.username,
    password: url.password,
    host: Array.isArray(url.host) ? url.host.slice() : url.host,
    port: url.port,
    path: Array.isArray(url.path) ? url.path.slice() : url.path,
    query: url.query,
    fragment: url.fragment
  };
}
module.exports.basicURLParse = function (input, options = {}) {
  if (typeof input !== "string" || input.length > 2048 || options.baseURL || options.url !== undefined ||
      options.stateOverride !== undefined || options.encoding !== undefined) {
    return basicURLParse(input, options);
  }
  const known = parsedURLs.get(input);
  if (known !== undefined) return known === null ? null : copyURLRecord(known);
  const parsed = basicURLParse(input, options);
  if (parsedURLs.size >= 512) parsedURLs.clear();
  parsedURLs.set(input, parsed === null ? null : copyURLRecord(parsed));
  return parsed;
};`,
    ],
  ],
  // whatwg-url lower-cases an ASCII domain itself and calls tr46 only for non-ASCII ones: load
  // tr46 (its IDNA table and Unicode regexes) then, not with the URL parser.
  "whatwg-url/lib/url-miscellaneous.js": [
    [
      'const tr46 = require("tr46");',
      'const tr46 = { toASCII: (domain, options) => require("tr46").toASCII(domain, options) };',
    ],
  ],
};

// tr46's Unicode property classes are regex literals tens of KB long, which V8 validates when it
// parses the bundle, in every new context; built from strings, they cost that only when tr46 loads.
const regexStringsPlugin = {
  name: "atoll-regex-strings",
  setup(build) {
    build.onLoad({ filter: /[\\/]tr46[\\/]lib[\\/]regexes\.js$/ }, async (args) => {
      const text = await readFile(args.path, "utf8");
      let count = 0;
      const contents = text.replace(/^const (\w+) = \/(.*)\/([a-z]*);$/gm, (line, name, body, flags) => {
        count++;
        return `const ${name} = new RegExp(${JSON.stringify(body)}, ${JSON.stringify(flags)});`;
      });
      if (count < 10) throw new Error(`tr46 regexes: expected at least 10 regex lines, found ${count}`);
      return { contents, loader: "js" };
    });
  },
};

const patchPlugin = {
  name: "atoll-patches",
  setup(build) {
    for (const [spec, edits] of Object.entries(patches)) {
      const file = path.join(here, "node_modules", spec);
      build.onLoad({ filter: new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")}$`) }, async () => {
        let text = await readFile(file, "utf8");
        for (const [from, to] of edits) {
          const count = typeof from === "string" ? text.split(from).length - 1 : (text.match(new RegExp(from, "gm")) || []).length;
          if (count !== 1) throw new Error(`patch for ${spec} matched ${count} times: ${from}`);
          text = text.replace(from, to);
        }
        return { contents: text, loader: "js" };
      });
    }
  },
};

// Large JSON tables (tr46's IDNA mapping) become one JSON.parse of a string literal: V8 scans a
// string far faster than it parses the same data as an object literal, and only when first used.
const jsonPlugin = {
  name: "atoll-json-as-string",
  setup(build) {
    build.onLoad({ filter: /\.json$/ }, async (args) => {
      const text = JSON.stringify(JSON.parse(await readFile(args.path, "utf8")));
      return { contents: `module.exports = JSON.parse(${JSON.stringify(text)});`, loader: "js" };
    });
  },
};

// formdata-polyfill pins fetch-blob 3 (which brings a second copy of web-streams-polyfill) and
// imports its default exports; it only needs Blob and File, so it gets fetch-blob 4's, shared with
// the rest of the bundle.
const formDataBlobPlugin = {
  name: "atoll-formdata-blob",
  setup(build) {
    build.onResolve({ filter: /^fetch-blob(\/file\.js)?$/ }, (args) => {
      if (!args.importer.includes(`${path.sep}formdata-polyfill${path.sep}`)) return undefined;
      return { path: args.path, namespace: "atoll-fetch-blob-default" };
    });
    build.onLoad({ filter: /.*/, namespace: "atoll-fetch-blob-default" }, (args) => ({
      contents: args.path === "fetch-blob" ? 'export { Blob as default } from "fetch-blob";' : 'export { File as default } from "fetch-blob/file.js";',
      resolveDir: here,
      loader: "js",
    }));
  },
};

const versions = Object.keys(require("./package.json").dependencies)
  .map((name) => `${name}@${pkg(name)}`)
  .join(", ");

const result = await esbuild.build({
  absWorkingDir: here,
  entryPoints: [path.join(here, "src", "index.js")],
  outfile,
  bundle: true,
  format: "iife",
  target: "es2022",
  platform: "neutral",
  mainFields: ["module", "main"],
  conditions: ["import", "default"],
  // ASCII only: STPyV8 passes a Python str to V8 with every code point above U+FFFF cut to 16
  // bits, so the bundle must not contain one literally (esbuild writes escapes instead).
  charset: "ascii",
  legalComments: "inline",
  // Whitespace and syntax minified: V8 parses the whole bundle in every new isolate, and a
  // smaller text parses faster. Identifiers are kept, so class names and stack traces read as in
  // the sources.
  minifySyntax: true,
  minifyWhitespace: true,
  // whatwg-url loads the legacy multi-byte encoders for non-UTF-8 documents; a worker's URLs are
  // always UTF-8, and encoding-lite is the same API without those tables.
  alias: {
    "@exodus/bytes/encoding.js": "@exodus/bytes/encoding-lite.js",
  },
  inject: [path.join(here, "src", "inject.js")],
  plugins: [formDataBlobPlugin, patchPlugin, regexStringsPlugin, jsonPlugin],
  banner: {
    js: `// atoll Web API bundle: GENERATED by scripts/build-webapi.sh from src/atoll/entries/js/webapi/
// (do not edit; edit the sources and rebuild). Packages: ${versions}.`,
  },
  logLevel: "warning",
  metafile: process.argv.includes("--meta"),
});
if (result.metafile) {
  const inputs = Object.entries(result.metafile.outputs[path.relative(process.cwd(), outfile)]?.inputs ?? {});
  inputs.sort((a, b) => b[1].bytesInOutput - a[1].bytesInOutput);
  const groups = {};
  for (const [name, info] of inputs) { const m = name.match(/node_modules\/((?:@[^/]+\/)?[^/]+)/); const g = m ? m[1] : name.split("/")[0]; groups[g] = (groups[g] ?? 0) + info.bytesInOutput; }
  for (const [g, b] of Object.entries(groups).sort((a, b) => b[1] - a[1])) console.log(String(b).padStart(8), g);
}
