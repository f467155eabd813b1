//! The "native" column: `kernels.rs` built for the host and timed here.
//!
//! `bench_native KERNEL [ARGS]` runs one kernel once on inputs read from files
//! (not timed) and prints one JSON line: `{"result": "...", "ms": 1.23, "wall_ms": 1.25}`,
//! where `ms` is the CPU time of the computing thread (`CLOCK_THREAD_CPUTIME_ID`),
//! as in the other columns: on a shared machine it leaves out time lost to others.
//!
//! ```text
//! bench_native sha256 FILE                  result: the digest in hex
//! bench_native resize FILE SW SH DW DH      result: SHA-256 of the output image, hex
//! bench_native fib N                        result: fib(N)
//! bench_native json FILE                    result: the number of values (-1: invalid)
//! ```
//!
//! Built by `benchmarks/seed_table` with `/usr/bin/rustc -C opt-level=3` (see `../build.sh --native`).

#[allow(dead_code)] // heavy_compute is for the wasm module only
mod kernels;

use std::time::Instant;

#[repr(C)]
struct Timespec {
    sec: i64,
    nsec: i64,
}

extern "C" {
    // From the C library (x86_64 Linux): no crates needed.
    fn clock_gettime(clock: i32, ts: *mut Timespec) -> i32;
}

const CLOCK_THREAD_CPUTIME_ID: i32 = 3;

/// This thread's CPU time, in milliseconds.
fn cpu_ms() -> f64 {
    let mut ts = Timespec { sec: 0, nsec: 0 };
    unsafe { clock_gettime(CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.sec as f64 * 1e3 + ts.nsec as f64 / 1e6
}

/// Run `f` once: its result, its CPU time and its wall time (ms).
fn timed<T>(f: impl FnOnce() -> T) -> (T, f64, f64) {
    let (wall, cpu) = (Instant::now(), cpu_ms());
    let value = f();
    let cpu = cpu_ms() - cpu;
    (value, cpu, wall.elapsed().as_secs_f64() * 1e3)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{:02x}", b)).collect()
}

fn arg(args: &[String], i: usize) -> &str {
    args.get(i).map(String::as_str).unwrap_or_else(|| {
        eprintln!("usage: bench_native sha256|resize|fib|json ARGS (see native.rs)");
        std::process::exit(2)
    })
}

fn num(args: &[String], i: usize) -> usize {
    arg(args, i).parse().unwrap_or_else(|_| {
        eprintln!("bench_native: argument {} is not a number", i);
        std::process::exit(2)
    })
}

fn read(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| {
        eprintln!("bench_native: cannot read {}: {}", path, e);
        std::process::exit(1)
    })
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (result, ms, wall_ms) = match arg(&args, 1) {
        "sha256" => {
            let data = read(arg(&args, 2));
            let (digest, ms, wall) = timed(|| kernels::sha256(&data));
            (hex(&digest), ms, wall)
        }
        "resize" => {
            let data = read(arg(&args, 2));
            let (sw, sh, dw, dh) = (num(&args, 3), num(&args, 4), num(&args, 5), num(&args, 6));
            let mut out = vec![0u8; dw * dh * 4];
            let (ok, ms, wall) = timed(|| kernels::resize(&data, sw, sh, &mut out, dw, dh));
            if !ok {
                eprintln!("bench_native: resize: wrong sizes");
                std::process::exit(1)
            }
            (hex(&kernels::sha256(&out)), ms, wall)
        }
        "fib" => {
            let n = num(&args, 2) as u32;
            let (value, ms, wall) = timed(|| kernels::fib(n));
            (value.to_string(), ms, wall)
        }
        "json" => {
            let data = read(arg(&args, 2));
            let (count, ms, wall) = timed(|| kernels::json_count(&data));
            (count.to_string(), ms, wall)
        }
        other => {
            eprintln!("bench_native: unknown kernel {}", other);
            std::process::exit(2)
        }
    };
    println!("{{\"result\": \"{}\", \"ms\": {:.4}, \"wall_ms\": {:.4}}}", result, ms, wall_ms);
}
