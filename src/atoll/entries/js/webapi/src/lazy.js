// Globals and packages initialised on first use. Evaluating every package in every new context
// would cost each isolate the whole bundle; a getter that replaces itself with a plain value keeps
// that cost to what a worker touches.
//
// While a package initialises, every global that is still lazy is absent: packages probe the
// global object for native implementations (core-js checks `hasOwn(globalThis, "DOMException")`,
// @exodus/bytes reads globalThis.atob, event-target-shim sets Event.prototype's prototype to
// globalThis.Event.prototype) and must find nothing, as on a bare engine, rather than start
// initialising another package, or their own, half-way through. So every first `require` of a
// package goes through `hidden` (by `defineLazy` or `loader`).
const pending = new Map();
let target = null;
let depth = 0;

/** Runs `fn` with every still-lazy global removed from the global object. */
export function hidden(fn) {
  if (depth > 0 || pending.size === 0) return fn();
  for (const [name, descriptor] of pending) {
    // A worker may have redefined the global (Object.defineProperty): then it is no longer ours.
    if (Object.getOwnPropertyDescriptor(target, name)?.get !== descriptor.get) pending.delete(name);
    else delete target[name];
  }
  depth++;
  try {
    return fn();
  } finally {
    depth--;
    for (const [name, descriptor] of pending) Object.defineProperty(target, name, descriptor);
  }
}

/** A function returning `load()`'s result, computed once, with the lazy globals hidden. */
export function loader(load) {
  let value;
  let done = false;
  return () => {
    if (!done) {
      value = hidden(load);
      done = true;
    }
    return value;
  };
}

export function defineLazy(on, name, init) {
  target = on;
  const descriptor = {
    configurable: true,
    enumerable: false,
    get() {
      const value = hidden(init);
      if (value !== undefined) {
        pending.delete(name);
        defineValue(target, name, value);
      }
      return value;
    },
    set(value) {
      pending.delete(name);
      defineValue(target, name, value);
    },
  };
  pending.set(name, descriptor);
  Object.defineProperty(target, name, descriptor);
}

/** Defines plain, non-enumerable values (like the Web IDL globals of a browser or workerd). */
export function defineValue(on, name, value) {
  Object.defineProperty(on, name, { value, writable: true, configurable: true, enumerable: false });
}
