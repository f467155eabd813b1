// console: each call becomes one line of the request's log through the host (HOST.md). Arguments
// are formatted by Node's util.format/inspect (node-inspect-extracted), which is also how workerd
// prints them: printf-style %s %d %i %f %j %o %O %c when the first argument is a string, objects
// shown as `{ a: 1 }`, errors with their stack.
import { log, now } from "./host.js";

import { inspectModule } from "./modules.js";

// util.format of primitives, without loading util.inspect: most log lines are strings and
// numbers. Node prints -0 as "-0" and a bigint with its "n".
function formatPrimitive(value) {
  switch (typeof value) {
    case "string":
      return value;
    case "number":
      return Object.is(value, -0) ? "-0" : String(value);
    case "bigint":
      return `${value}n`;
    default:
      return String(value);
  }
}

// util.inspect prints an Error as its stack when the stack starts with "Name: message" and the
// error has no own enumerable properties and no cause (then it appends them): the usual
// `console.error(err)` needs no util.inspect either.
function isPlainError(value) {
  if (!(value instanceof Error) || typeof value.stack !== "string" || "cause" in value) return false;
  if (Object.keys(value).length > 0) return false;
  const head = String(value);
  return value.stack === head || value.stack.startsWith(`${head}\n`);
}

/** __atoll_rt.formatLog: how console.* renders its arguments. */
export function formatLog(args) {
  args = Array.from(args);
  let simple = !(typeof args[0] === "string" && args[0].includes("%"));
  for (let i = 0; simple && i < args.length; i++) {
    const t = typeof args[i];
    simple = (t !== "object" && t !== "function") || isPlainError(args[i]);
  }
  if (simple) return args.map((a) => (typeof a === "object" ? a.stack : formatPrimitive(a))).join(" ");
  return inspectModule().format(...args);
}

let groupIndent = "";
const counts = new Map();
const timers = new Map();

function emit(level, args) {
  let text = formatLog(args);
  if (groupIndent) text = groupIndent + text.replace(/\n/g, `\n${groupIndent}`);
  log(level, text);
}

function method(level) {
  return function (...args) {
    emit(level, args);
  };
}

export const console = {
  debug: method("debug"),
  info: method("info"),
  log: method("log"),
  warn: method("warn"),
  error: method("error"),
  trace(...args) {
    const err = new Error(formatLog(args));
    err.name = "Trace";
    emit("log", [String(err.stack)]);
  },
  dir(value, options = undefined) {
    emit("log", [inspectModule().inspect(value, options ?? {})]);
  },
  dirxml(...args) {
    emit("log", args);
  },
  table(...args) {
    emit("log", args);
  },
  assert(condition = false, ...args) {
    if (condition) return;
    if (args.length > 0 && typeof args[0] === "string") args[0] = `Assertion failed: ${args[0]}`;
    else args.unshift("Assertion failed");
    emit("error", args);
  },
  count(label = "default") {
    label = String(label);
    const n = (counts.get(label) ?? 0) + 1;
    counts.set(label, n);
    emit("info", [`${label}: ${n}`]);
  },
  countReset(label = "default") {
    counts.delete(String(label));
  },
  group(...args) {
    if (args.length > 0) emit("log", args);
    groupIndent += "  ";
  },
  groupCollapsed(...args) {
    if (args.length > 0) emit("log", args);
    groupIndent += "  ";
  },
  groupEnd() {
    groupIndent = groupIndent.slice(0, -2);
  },
  time(label = "default") {
    label = String(label);
    if (timers.has(label)) {
      emit("warn", [`Label '${label}' already exists for console.time()`]);
      return;
    }
    timers.set(label, now());
  },
  timeLog(label = "default", ...args) {
    label = String(label);
    if (!timers.has(label)) {
      emit("warn", [`No such label '${label}' for console.timeLog()`]);
      return;
    }
    emit("info", [`${label}: ${now() - timers.get(label)}ms`, ...args]);
  },
  timeEnd(label = "default") {
    label = String(label);
    if (!timers.has(label)) {
      emit("warn", [`No such label '${label}' for console.timeEnd()`]);
      return;
    }
    emit("info", [`${label}: ${now() - timers.get(label)}ms`]);
    timers.delete(label);
  },
};
