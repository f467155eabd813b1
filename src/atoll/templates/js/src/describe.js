// A module of the worker's own: bundled with src/index.js when atoll loads the worker.
export function describe(request, url, bytes) {
  return { method: request.method, path: url.pathname, query: url.search, bytes };
}
