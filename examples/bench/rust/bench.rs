//! `bench.wasm`: the kernels of `kernels.rs` behind atoll's buffer ABI.
//!
//! The same module is served by atoll (`../src/worker.py`) and by workerd
//! (`benchmarks/workerd/bench.mjs`), and timed by `python -m benchmarks.seed_table`
//! through atoll's binding and in node's V8. Built with no crates for
//! `wasm32-unknown-unknown` by `../build.sh`.
//!
//! Buffer convention (docs/wasm-abi.md): `alloc(len) -> ptr` / `dealloc(ptr, len)`;
//! a function that returns a buffer returns `(ptr << 32) | len` as a u64 (0 if
//! memory could not grow or the input was wrong); the caller frees it.
#![no_std]

use core::arch::wasm32;

mod kernels;

#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    wasm32::unreachable()
}

/// The seed worker's `heavy_compute(n)`: the sum of `i * i` for `i` in `0..n`, wrapping.
#[no_mangle]
pub extern "C" fn heavy_compute(n: u32) -> u32 {
    kernels::heavy_compute(n)
}

/// Naive recursive `fib(n)`.
#[no_mangle]
pub extern "C" fn fib(n: u32) -> u32 {
    kernels::fib(n)
}

unsafe fn input<'a>(ptr: u32, len: u32) -> &'a [u8] {
    if len == 0 {
        &[]
    } else {
        core::slice::from_raw_parts(ptr as *const u8, len as usize)
    }
}

/// SHA-256 of the `len` bytes at `ptr`: a new 32-byte buffer, `(ptr << 32) | 32`.
#[no_mangle]
pub unsafe extern "C" fn sha256(ptr: u32, len: u32) -> u64 {
    let digest = kernels::sha256(input(ptr, len));
    let out = alloc(32);
    if out == 0 {
        return 0;
    }
    core::slice::from_raw_parts_mut(out as *mut u8, 32).copy_from_slice(&digest);
    ((out as u64) << 32) | 32
}

/// Bilinear resize of the RGBA image at `ptr` (`sw` x `sh`, `len` = sw*sh*4 bytes)
/// to `dw` x `dh`: a new buffer of dw*dh*4 bytes. 0 if sizes are wrong or memory is short.
#[no_mangle]
pub unsafe extern "C" fn resize(ptr: u32, len: u32, sw: u32, sh: u32, dw: u32, dh: u32) -> u64 {
    let size = match (dw as usize).checked_mul(dh as usize).and_then(|n| n.checked_mul(4)) {
        Some(n) if n > 0 && n <= u32::MAX as usize => n,
        _ => return 0,
    };
    let out = alloc(size as u32);
    if out == 0 {
        return 0;
    }
    let dst = core::slice::from_raw_parts_mut(out as *mut u8, size);
    if !kernels::resize(input(ptr, len), sw as usize, sh as usize, dst, dw as usize, dh as usize) {
        dealloc(out, size as u32);
        return 0;
    }
    ((out as u64) << 32) | size as u64
}

/// The number of values in the JSON text at `ptr`, or -1 if it is not valid JSON.
#[no_mangle]
pub unsafe extern "C" fn json_count(ptr: u32, len: u32) -> i32 {
    kernels::json_count(input(ptr, len)) as i32
}

// ---------------------------------------------------------------------------
// Allocator: blocks are 8-byte aligned; every free block starts with a header
// { size: u32, next: u32 } and is kept in an address-ordered singly linked list.
// Adjacent free blocks are merged on `dealloc`.

const PAGE: usize = 65536;
const ALIGN: usize = 8;

static mut FREE_HEAD: usize = 0; // address of the first free block, 0 = none
static mut HEAP_READY: bool = false;

extern "C" {
    // Set by the linker (wasm-ld): the first byte past static data and stack.
    static __heap_base: u8;
}

/// On first use, hand the initial memory past `__heap_base` to the free list.
unsafe fn init_heap() {
    HEAP_READY = true;
    let start = round_up(&__heap_base as *const u8 as usize);
    let end = wasm32::memory_size(0) * PAGE;
    if end > start + ALIGN {
        free_block(start, end - start);
    }
}

#[inline]
fn round_up(len: usize) -> usize {
    // Minimum block size is 8 so a freed block can hold its header.
    let n = if len < ALIGN { ALIGN } else { len };
    (n + ALIGN - 1) & !(ALIGN - 1)
}

#[inline]
unsafe fn block_size(addr: usize) -> usize {
    *(addr as *const u32) as usize
}
#[inline]
unsafe fn block_next(addr: usize) -> usize {
    *((addr + 4) as *const u32) as usize
}
#[inline]
unsafe fn set_block(addr: usize, size: usize, next: usize) {
    *(addr as *mut u32) = size as u32;
    *((addr + 4) as *mut u32) = next as u32;
}

/// Insert the block [addr, addr+size) into the free list, merging neighbours.
unsafe fn free_block(addr: usize, size: usize) {
    let mut prev = 0usize;
    let mut cur = FREE_HEAD;
    while cur != 0 && cur < addr {
        prev = cur;
        cur = block_next(cur);
    }
    let (mut start, mut len) = (addr, size);
    let mut next = cur;
    if next != 0 && start + len == next {
        len += block_size(next);
        next = block_next(next);
    }
    if prev != 0 && prev + block_size(prev) == start {
        start = prev;
        len += block_size(prev);
        set_block(start, len, next);
    } else {
        set_block(start, len, next);
        if prev == 0 {
            FREE_HEAD = start;
        } else {
            set_block(prev, block_size(prev), start);
        }
    }
}

/// Reserve `len` bytes of linear memory; returns the pointer, or 0 if memory
/// cannot grow. `alloc(0)` returns a valid (8-byte) block.
#[no_mangle]
pub unsafe extern "C" fn alloc(len: u32) -> u32 {
    let want = match (len as usize).checked_add(ALIGN) {
        Some(_) => round_up(len as usize),
        None => return 0,
    };
    if !HEAP_READY {
        init_heap();
    }
    loop {
        let mut prev = 0usize;
        let mut cur = FREE_HEAD;
        while cur != 0 {
            let size = block_size(cur);
            let next = block_next(cur);
            if size >= want {
                let rest = size - want;
                let after = if rest >= ALIGN {
                    let tail = cur + want;
                    set_block(tail, rest, next);
                    tail
                } else {
                    next
                };
                if prev == 0 {
                    FREE_HEAD = after;
                } else {
                    set_block(prev, block_size(prev), after);
                }
                return cur as u32;
            }
            prev = cur;
            cur = next;
        }
        // Nothing fits: grow memory and add the new pages to the free list.
        let pages = (want + PAGE - 1) / PAGE;
        let old = wasm32::memory_grow(0, pages);
        if old == usize::MAX {
            return 0;
        }
        free_block(old * PAGE, pages * PAGE);
    }
}

/// Give back `len` bytes at `ptr` obtained from `alloc(len)`. `ptr == 0` is ignored.
#[no_mangle]
pub unsafe extern "C" fn dealloc(ptr: u32, len: u32) {
    if ptr != 0 {
        free_block(ptr as usize, round_up(len as usize));
    }
}
