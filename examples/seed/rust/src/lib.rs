//! The seed worker's wasm module: `heavy_compute` plus a tiny byte-buffer ABI.
//!
//! Built with no crates for `wasm32-unknown-unknown` (see ../../build.sh).
//! `#![no_std]` keeps the module small; the allocator is a first-fit free list
//! over the memory past `__heap_base` (growing it with `memory.grow` when
//! needed), so no `alloc` crate or std is needed.
//!
//! Buffer convention (shared by every atoll example module):
//! - `alloc(len) -> ptr`: reserve `len` bytes in linear memory (0 on failure);
//! - `dealloc(ptr, len)`: give them back (`len` must be the length passed to `alloc`);
//! - a function returning a buffer returns `(ptr << 32) | len` as a u64; the caller
//!   reads it, then frees it with `dealloc(ptr, len)`.
#![no_std]

use core::arch::wasm32;

#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    wasm32::unreachable()
}

/// Sum of `i * i` for `i` in `0..n`, with wrapping u32 arithmetic.
#[no_mangle]
pub extern "C" fn heavy_compute(n: u32) -> u32 {
    (0..n).fold(0u32, |acc, i| acc.wrapping_add(i.wrapping_mul(i)))
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

/// Sum of the `len` bytes at `ptr` (wrapping u32).
#[no_mangle]
pub unsafe extern "C" fn byte_sum(ptr: u32, len: u32) -> u32 {
    let mut acc = 0u32;
    let mut p = ptr as usize;
    let end = p + len as usize;
    while p < end {
        acc = acc.wrapping_add(*(p as *const u8) as u32);
        p += 1;
    }
    acc
}

/// A new buffer holding the `len` bytes at `ptr` reversed, returned as
/// `(new_ptr << 32) | len`; the caller frees it with `dealloc(new_ptr, len)`.
/// Returns 0 if memory cannot grow.
#[no_mangle]
pub unsafe extern "C" fn reverse(ptr: u32, len: u32) -> u64 {
    let out = alloc(len);
    if out == 0 {
        return 0;
    }
    let n = len as usize;
    let (src, dst) = (ptr as usize, out as usize);
    let mut i = 0usize;
    while i < n {
        *((dst + i) as *mut u8) = *((src + n - 1 - i) as *const u8);
        i += 1;
    }
    ((out as u64) << 32) | len as u64
}
