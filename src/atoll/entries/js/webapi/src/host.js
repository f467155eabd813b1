// The host functions Python installed as globalThis.__atoll_host (HOST.md). They are captured here
// and the global is deleted before any other module runs, so worker code can never reach a Python
// object: everything below wraps them in plain JS functions taking and returning primitives.
const host = globalThis.__atoll_host;
if (host === undefined || host === null) {
  throw new Error("webapi.js: globalThis.__atoll_host must be set before the bundle runs (see HOST.md)");
}
const hostLog = host.log;
const hostRandomBytes = host.randomBytes;
const hostNow = host.now;
delete globalThis.__atoll_host;

/** One console line for the current request. */
export function log(level, text) {
  hostLog(level, text);
}

/** `n` random bytes from the host, as a binary string (0 <= n <= 65536). */
export function randomBytes(n) {
  const s = hostRandomBytes(n);
  if (typeof s !== "string" || s.length !== n) {
    throw new Error(`__atoll_host.randomBytes(${n}) returned ${typeof s} of length ${s && s.length}`);
  }
  return s;
}

/** Milliseconds since the epoch. */
export function now() {
  return Number(hostNow());
}
