// atob/btoa (https://html.spec.whatwg.org/multipage/webappapis.html#atob): core-js's, which follow
// the forgiving-base64 algorithm and throw InvalidCharacterError DOMExceptions.
import "./dom-exception.js";

export { default as atob } from "core-js-pure/actual/atob.js";
export { default as btoa } from "core-js-pure/actual/btoa.js";
