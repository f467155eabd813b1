//! The "native" column: `kernels.rs` built for the host and timed here.
//!
//! `bench_native KERNEL [ARGS]` runs one kernel once on inputs read from files
//! (not timed) and prints one JSON line: `{"result": "...", "ms": 1.23}`.
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
    let (result, ms) = match arg(&args, 1) {
        "sha256" => {
            let data = read(arg(&args, 2));
            let t = Instant::now();
            let digest = kernels::sha256(&data);
            let ms = t.elapsed().as_secs_f64() * 1e3;
            (hex(&digest), ms)
        }
        "resize" => {
            let data = read(arg(&args, 2));
            let (sw, sh, dw, dh) = (num(&args, 3), num(&args, 4), num(&args, 5), num(&args, 6));
            let mut out = vec![0u8; dw * dh * 4];
            let t = Instant::now();
            let ok = kernels::resize(&data, sw, sh, &mut out, dw, dh);
            let ms = t.elapsed().as_secs_f64() * 1e3;
            if !ok {
                eprintln!("bench_native: resize: wrong sizes");
                std::process::exit(1)
            }
            (hex(&kernels::sha256(&out)), ms)
        }
        "fib" => {
            let n = num(&args, 2) as u32;
            let t = Instant::now();
            let value = kernels::fib(n);
            let ms = t.elapsed().as_secs_f64() * 1e3;
            (value.to_string(), ms)
        }
        "json" => {
            let data = read(arg(&args, 2));
            let t = Instant::now();
            let count = kernels::json_count(&data);
            let ms = t.elapsed().as_secs_f64() * 1e3;
            (count.to_string(), ms)
        }
        other => {
            eprintln!("bench_native: unknown kernel {}", other);
            std::process::exit(2)
        }
    };
    println!("{{\"result\": \"{}\", \"ms\": {:.4}}}", result, ms);
}
