// my-worker: a whole-wasm atoll worker in AssemblyScript.
//
// atoll runs this WASI program once per request, the way a CGI server (or
// WAGI) does:
// - the request's CGI variables are the environment (`process.env`):
//   REQUEST_METHOD, PATH_INFO, QUERY_STRING, CONTENT_TYPE, HTTP_* for headers…;
// - the request body is stdin (`process.stdin`);
// - the response goes to stdout (`process.stdout`): header lines
//   ("Content-Type: …", and "Status: 404 Not Found" for a status other than
//   200), a blank line, then the body. stderr goes to the worker's log.
//
// @assemblyscript/wasi-shim (see build.sh) maps `process` and `console` to WASI.

function env(name: string): string {
  return process.env.has(name) ? process.env.get(name) : "";
}

/** Text escaped for HTML: the path and query come from the client. */
function escape(text: string): string {
  return text
    .replaceAll("&", "&amp;")
    .replaceAll("<", "&lt;")
    .replaceAll(">", "&gt;")
    .replaceAll('"', "&quot;")
    .replaceAll("'", "&#39;");
}

const method = env("REQUEST_METHOD");
const path = env("PATH_INFO");
const query = env("QUERY_STRING");

// Read the whole body, counting its bytes.
const chunk = new ArrayBuffer(16384);
let length: i64 = 0;
while (true) {
  const got = process.stdin.read(chunk);
  if (got <= 0) break;
  length += got;
}
process.stderr.write(method + " " + path + " (" + length.toString() + " bytes)\n");

if (path == "/missing") {
  // Any status: a "Status:" header line.
  process.stdout.write("Status: 404 Not Found\nContent-Type: text/plain\n\nnothing at " + path + "\n");
} else {
  process.stdout.write(
    "Content-Type: text/html; charset=utf-8\n\n" +
      "<!doctype html>\n" +
      '<html><head><meta charset="utf-8"><title>Hello from AssemblyScript</title></head>\n' +
      "<body>\n" +
      "<h1>Hello from AssemblyScript</h1>\n" +
      "<p>A WebAssembly (WASI) program answered this request.</p>\n" +
      "<ul>\n" +
      "<li>method: <code>" + escape(method) + "</code></li>\n" +
      "<li>path: <code>" + escape(path) + "</code></li>\n" +
      "<li>query: <code>" + escape(query) + "</code></li>\n" +
      "<li>body: " + length.toString() + " bytes</li>\n" +
      "</ul>\n" +
      "</body></html>\n",
  );
}
