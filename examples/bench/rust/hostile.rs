//! `hostile.wasm`: three guests that misbehave, for `python -m benchmarks.workerd`'s
//! limits section. The same module is served by atoll (`../hostile/src/worker.py`)
//! and by workerd (`benchmarks/workerd/hostile.mjs`). Built by `../build.sh`.
#![no_std]

use core::arch::wasm32;
use core::ptr::{read_volatile, write_volatile};

#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    wasm32::unreachable()
}

static mut SPINS: u32 = 0;

/// Never returns: counts forever (volatile, so the loop is not optimised away).
#[no_mangle]
pub unsafe extern "C" fn spin() -> u32 {
    loop {
        write_volatile(&mut SPINS, read_volatile(&SPINS).wrapping_add(1));
    }
}

/// Grows linear memory by 1 MiB at a time, writing to every page, until `mb` MiB
/// were added; returns `mb`. When a grow is refused it aborts, as Rust's allocator
/// does on allocation failure (the classic memory bomb).
#[no_mangle]
pub unsafe extern "C" fn bomb(mb: u32) -> u32 {
    const MIB_PAGES: usize = 16; // 64 KiB wasm pages
    let mut grown = 0;
    while grown < mb {
        let old = wasm32::memory_grow(0, MIB_PAGES);
        if old == usize::MAX {
            wasm32::unreachable()
        }
        let mut p = old * 65536;
        let end = p + MIB_PAGES * 65536;
        while p < end {
            write_volatile(p as *mut u8, 1);
            p += 4096;
        }
        grown += 1;
    }
    grown
}

/// Recurses without end (each frame does work after the call, so no tail call,
/// and no linear-memory stack): the engine's call stack overflows.
#[no_mangle]
pub extern "C" fn overflow(n: u32) -> u32 {
    deep(n)
}

#[inline(never)]
fn deep(n: u32) -> u32 {
    if n == 0 {
        return 1;
    }
    deep(n.wrapping_add(1)).wrapping_mul(31).wrapping_add(n)
}
