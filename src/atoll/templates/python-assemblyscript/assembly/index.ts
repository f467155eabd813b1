// The wasm module of my-worker, called from src/worker.py.
//
// Built with AssemblyScript (../build.sh) and `--runtime stub`: a bump
// allocator and no garbage collector, which suits a fresh instance per
// request. It imports only `env.abort` (called on a failed assertion or an
// out-of-bounds access), which atoll provides. It follows atoll's wasm ABI:
// - alloc(len) -> ptr and dealloc(ptr, len) manage buffers in linear memory;
// - a string argument arrives as (ptr, len): UTF-8 bytes the caller put there;
// - a string result is returned as (ptr << 32) | len; the caller copies it
//   out and gives it back with dealloc(ptr, len).

/** Reserves `len` bytes of linear memory. */
export function alloc(len: u32): usize {
  return heap.alloc(<usize>max<u32>(len, 1));
}

/** Frees a buffer from alloc (or one this module returned). */
export function dealloc(ptr: usize, len: u32): void {
  if (ptr != 0) heap.free(ptr);
}

/** greet(name) -> "Hello, NAME! (from AssemblyScript)" */
export function greet(ptr: usize, len: u32): u64 {
  const name = String.UTF8.decodeUnsafe(ptr, <usize>len);
  return buffer("Hello, " + name + "! (from AssemblyScript)");
}

/** The number of vowels (a, e, i, o, u, either case) in the UTF-8 text at ptr. */
export function count_vowels(ptr: usize, len: u32): u32 {
  let n: u32 = 0;
  for (let i: usize = 0; i < <usize>len; i++) {
    const c = load<u8>(ptr + i) | 0x20; // lower-case ASCII letters
    if (c == 0x61 || c == 0x65 || c == 0x69 || c == 0x6f || c == 0x75) n++;
  }
  return n;
}

/** `text` as UTF-8 in a buffer from alloc, returned as (ptr << 32) | len. */
function buffer(text: string): u64 {
  const len = <u32>String.UTF8.byteLength(text);
  const out = alloc(len);
  String.UTF8.encodeUnsafe(changetype<usize>(text), text.length, out);
  return (<u64>out << 32) | <u64>len;
}
