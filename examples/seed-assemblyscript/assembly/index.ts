// The seed worker's wasm module in AssemblyScript: the same exports as the
// Rust module in ../seed (heavy_compute plus the byte-buffer convention).
//
// Built with `--runtime stub` (a bump allocator, no GC): each request gets a
// fresh instance, so memory is never reclaimed for long. The module imports
// `env.abort(msg_ptr, file_ptr, line, col)`, which atoll provides.
//
// Buffer convention (shared by every atoll example module):
// - alloc(len) -> ptr: reserve `len` bytes in linear memory;
// - dealloc(ptr, len): give them back (`len` is accepted for the convention;
//   the stub runtime only reclaims the most recent block);
// - a function returning a buffer returns (ptr << 32) | len as a u64; the
//   caller reads it, then frees it with dealloc(ptr, len).

/** Sum of i * i for i in 0..n, with wrapping u32 arithmetic. */
export function heavy_compute(n: u32): u32 {
  let acc: u32 = 0;
  for (let i: u32 = 0; i < n; i++) {
    acc += i * i; // u32 arithmetic wraps in AssemblyScript
  }
  return acc;
}

/** Reserve `len` bytes of linear memory; returns the pointer. */
export function alloc(len: u32): u32 {
  return <u32>heap.alloc(<usize>len);
}

/** Give back the `len` bytes at `ptr` obtained from alloc(len); 0 is ignored. */
export function dealloc(ptr: u32, len: u32): void {
  if (ptr != 0) heap.free(<usize>ptr);
}

/** Sum of the `len` bytes at `ptr` (wrapping u32). */
export function byte_sum(ptr: u32, len: u32): u32 {
  let acc: u32 = 0;
  for (let i: u32 = 0; i < len; i++) {
    acc += <u32>load<u8>(<usize>(ptr + i));
  }
  return acc;
}

/**
 * A new buffer holding the `len` bytes at `ptr` reversed, returned as
 * (new_ptr << 32) | len; the caller frees it with dealloc(new_ptr, len).
 */
export function reverse(ptr: u32, len: u32): u64 {
  const out = alloc(len);
  for (let i: u32 = 0; i < len; i++) {
    store<u8>(<usize>(out + i), load<u8>(<usize>(ptr + len - 1 - i)));
  }
  return (<u64>out << 32) | <u64>len;
}
