//! The wasm module of my-worker, called from src/index.js.
//!
//! Built for `wasm32-unknown-unknown` with Debian's rustc and no crates
//! (../build.sh). It follows atoll's wasm ABI:
//! - `alloc(len) -> ptr` and `dealloc(ptr, len)` manage buffers in linear memory;
//! - a string argument arrives as `(ptr, len)`: UTF-8 bytes the caller put there;
//! - a string result is returned as `(ptr << 32) | len`; the caller copies it
//!   out and gives it back with `dealloc(ptr, len)`.
//!
//! src/index.js instantiates it once per isolate (the seed article's singleton) and
//! frees every buffer it gets back, so memory does not grow across requests.

use std::alloc::{alloc as allocate, dealloc as deallocate, Layout};

/// Reserves `len` bytes (alignment 1); 0 when memory cannot grow.
#[no_mangle]
pub extern "C" fn alloc(len: usize) -> *mut u8 {
    if len == 0 {
        return 1 as *mut u8; // a valid, empty buffer
    }
    match Layout::from_size_align(len, 1) {
        Ok(layout) => unsafe { allocate(layout) },
        Err(_) => std::ptr::null_mut(),
    }
}

/// Frees a buffer from `alloc(len)` (or one this module returned).
///
/// # Safety
/// `ptr` and `len` must come from `alloc` or from a returned buffer.
#[no_mangle]
pub unsafe extern "C" fn dealloc(ptr: *mut u8, len: usize) {
    if len != 0 && !ptr.is_null() {
        deallocate(ptr, Layout::from_size_align_unchecked(len, 1));
    }
}

/// `greet(name) -> "Hello, NAME! (from Rust)"`.
///
/// # Safety
/// `ptr` must point to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn greet(ptr: *const u8, len: usize) -> u64 {
    let name = String::from_utf8_lossy(std::slice::from_raw_parts(ptr, len));
    into_buffer(format!("Hello, {}! (from Rust)", name).into_bytes())
}

/// The number of vowels (a, e, i, o, u, either case) in the UTF-8 text at `ptr`.
///
/// # Safety
/// `ptr` must point to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn count_vowels(ptr: *const u8, len: usize) -> u32 {
    let text = std::slice::from_raw_parts(ptr, len);
    text.iter().filter(|c| b"aeiouAEIOU".contains(c)).count() as u32
}

/// Hands `bytes` to the caller as `(ptr << 32) | len`; freed by `dealloc(ptr, len)`.
fn into_buffer(bytes: Vec<u8>) -> u64 {
    let boxed = bytes.into_boxed_slice(); // capacity == len: dealloc(ptr, len) matches
    let len = boxed.len();
    let ptr = Box::into_raw(boxed) as *mut u8;
    ((ptr as u64) << 32) | len as u64
}
