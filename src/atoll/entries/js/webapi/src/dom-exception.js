// DOMException (https://webidl.spec.whatwg.org/#idl-DOMException): core-js's implementation, with
// its legacy codes, name/message/code getters and stack. atob/btoa and structuredClone from
// core-js throw this same class.
import DOMException from "core-js-pure/actual/dom-exception/index.js";

// core-js names its constructor function `$DOMException`; Web IDL's interface object is named
// "DOMException" (what `e.constructor.name` and console output show).
if (DOMException.name !== "DOMException") {
  Object.defineProperty(DOMException, "name", { value: "DOMException", configurable: true });
}

export { DOMException };
