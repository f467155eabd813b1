// DOMException (https://webidl.spec.whatwg.org/#idl-DOMException): core-js's implementation, with
// its legacy codes, name/message/code getters and stack. atob/btoa and structuredClone from
// core-js throw this same class.
export { default as DOMException } from "core-js-pure/actual/dom-exception/index.js";
