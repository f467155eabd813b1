// AbortController and AbortSignal (https://dom.spec.whatwg.org/#aborting-ongoing-activities), on
// event-target-shim's EventTarget, and CustomEvent on its Event. Hand-written: the npm `abort-controller` package predates
// `reason`, `throwIfAborted`, `AbortSignal.abort/timeout/any`.
import { Event, EventTarget, getEventAttributeValue, setEventAttributeValue } from "event-target-shim";
import { loader } from "./lazy.js";

const domException = loader(() => require("./dom-exception.js").DOMException);

const INTERNAL = Symbol("internal");
let abortSignal;
let addAlgorithm;
let createSignal;

export class AbortSignal extends EventTarget {
  #aborted = false;
  #reason = undefined;
  #algorithms = new Set();

  constructor(token = undefined) {
    if (token !== INTERNAL) throw new TypeError("Illegal constructor");
    super();
  }

  get aborted() {
    return this.#aborted;
  }

  get reason() {
    return this.#reason;
  }

  throwIfAborted() {
    if (this.#aborted) throw this.#reason;
  }

  get onabort() {
    return getEventAttributeValue(this, "abort");
  }

  set onabort(value) {
    setEventAttributeValue(this, "abort", value);
  }

  get [Symbol.toStringTag]() {
    return "AbortSignal";
  }

  static abort(reason = undefined) {
    const signal = createSignal();
    signal.#aborted = true;
    signal.#reason = reason === undefined ? new (domException())("This operation was aborted", "AbortError") : reason;
    return signal;
  }

  /** Needs the host's timers (globalThis.setTimeout, looked up when called). */
  static timeout(milliseconds) {
    const ms = Number(milliseconds);
    if (!Number.isFinite(ms) || ms < 0 || ms > Number.MAX_SAFE_INTEGER) {
      throw new TypeError(`Failed to execute 'timeout' on 'AbortSignal': Value ${milliseconds} is outside the range [0, ${Number.MAX_SAFE_INTEGER}].`);
    }
    const setTimeout = globalThis.setTimeout;
    if (typeof setTimeout !== "function") {
      throw new TypeError("AbortSignal.timeout() needs setTimeout, which this context does not have.");
    }
    const signal = createSignal();
    setTimeout(() => abortSignal(signal, new (domException())("The operation was aborted due to timeout", "TimeoutError")), Math.trunc(ms));
    return signal;
  }

  static any(signals) {
    const list = [...signals];
    const result = createSignal();
    for (const s of list) {
      if (typeof s !== "object" || s === null || !(#aborted in s)) throw new TypeError("Failed to execute 'any' on 'AbortSignal': an item is not an AbortSignal.");
      if (s.#aborted) {
        result.#aborted = true;
        result.#reason = s.#reason;
        return result;
      }
    }
    for (const s of list) s.#algorithms.add(() => abortSignal(result, s.#reason));
    return result;
  }

  static {
    createSignal = () => new AbortSignal(INTERNAL);
    // DOM "signal abort": set the reason, run the algorithms, fire "abort".
    abortSignal = (signal, reason) => {
      if (signal.#aborted) return;
      signal.#aborted = true;
      signal.#reason = reason === undefined ? new (domException())("This operation was aborted", "AbortError") : reason;
      const algorithms = [...signal.#algorithms];
      signal.#algorithms.clear();
      for (const run of algorithms) run();
      signal.dispatchEvent(new Event("abort"));
    };
    addAlgorithm = (signal, run) => signal.#algorithms.add(run);
  }
}

export class AbortController {
  #signal = createSignal();

  get signal() {
    return this.#signal;
  }

  abort(reason = undefined) {
    abortSignal(this.#signal, reason);
  }

  get [Symbol.toStringTag]() {
    return "AbortController";
  }
}

/** A signal that aborts when `parent` does (a Request's own signal follows its init's). */
export function followingSignal(parent) {
  const signal = createSignal();
  if (parent === null || parent === undefined) return signal;
  if (parent.aborted) {
    abortSignal(signal, parent.reason);
  } else {
    addAlgorithm(parent, () => abortSignal(signal, parent.reason));
  }
  return signal;
}

/** DOM CustomEvent: an Event with a `detail` (null unless given). */
export class CustomEvent extends Event {
  #detail;

  constructor(type, init = undefined) {
    if (arguments.length < 1) throw new TypeError("Failed to construct 'CustomEvent': 1 argument required, but only 0 present.");
    super(type, init);
    this.#detail = init?.detail ?? null;
  }

  get detail() {
    return this.#detail;
  }

  get [Symbol.toStringTag]() {
    return "CustomEvent";
  }
}

for (const cls of [AbortSignal, AbortController, CustomEvent]) {
  for (const key of Object.getOwnPropertyNames(cls.prototype)) {
    if (key !== "constructor") Object.defineProperty(cls.prototype, key, { enumerable: true });
  }
}
