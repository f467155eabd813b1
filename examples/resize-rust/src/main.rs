//! resize-rust: a whole-wasm atoll worker that resizes PPM images.
//!
//! A WASI command run once per request (CGI over WASI, as WAGI does):
//! - stdin: the request body, a binary PPM image (`P6`, maxval 255);
//! - environment: `QUERY_STRING` (`w=` and/or `h=`, the new size; given one,
//!   the other keeps the aspect ratio) and `REQUEST_METHOD`;
//! - stdout: a CGI response, `Content-Type: image/x-portable-pixmap`, a blank
//!   line, then the resized image as P6. Errors are `Status: 400`.
//!
//! Resampling is bilinear with pixel centres aligned (the convention of
//! OpenCV's `INTER_LINEAR` and PIL without antialiasing): output pixel `x`
//! samples the source at `(x + 0.5) * src_w / dst_w - 0.5`, clamped to the
//! image, and each channel is rounded to the nearest integer.
//!
//! No crates: Debian's rustc 1.63 with its wasm32-wasi standard library.

use std::env;
use std::io::{self, Read, Write};

/// Largest output side, so a request cannot ask for gigabytes.
const MAX_SIDE: usize = 4096;

struct Image {
    width: usize,
    height: usize,
    /// RGB triples, row by row.
    pixels: Vec<u8>,
}

fn main() {
    let method = env::var("REQUEST_METHOD").unwrap_or_default();
    let query = env::var("QUERY_STRING").unwrap_or_default();
    let mut body = Vec::new();
    if let Err(e) = io::stdin().read_to_end(&mut body) {
        return fail("500 Internal Server Error", &format!("cannot read the request body: {}", e));
    }
    if body.is_empty() {
        if method == "GET" || method == "HEAD" {
            return usage();
        }
        return fail("400 Bad Request", "send a binary PPM (P6) image as the request body");
    }
    let image = match parse_ppm(&body) {
        Ok(image) => image,
        Err(msg) => return fail("400 Bad Request", &format!("not a P6 PPM image: {}", msg)),
    };
    let (w, h) = match target_size(&query, image.width, image.height) {
        Ok(size) => size,
        Err(msg) => return fail("400 Bad Request", &msg),
    };
    let resized = resize(&image, w, h);
    let mut out = Vec::with_capacity(resized.pixels.len() + 64);
    out.extend_from_slice(b"Content-Type: image/x-portable-pixmap\n\n");
    out.extend_from_slice(format!("P6\n{} {}\n255\n", resized.width, resized.height).as_bytes());
    out.extend_from_slice(&resized.pixels);
    write_all(&out);
}

fn usage() {
    write_all(
        b"Content-Type: text/plain; charset=utf-8\n\n\
          POST a binary PPM (P6) image; get it back resized (bilinear).\n\
          Query: ?w=WIDTH&h=HEIGHT (one of them keeps the aspect ratio), at most 4096 each.\n\
          Example: curl --data-binary @in.ppm 'http://127.0.0.1:8787/?w=64' -o out.ppm\n",
    );
}

fn fail(status: &str, message: &str) {
    let text = format!(
        "Status: {}\nContent-Type: text/plain; charset=utf-8\n\n{}\n",
        status, message
    );
    write_all(text.as_bytes());
}

fn write_all(bytes: &[u8]) {
    let stdout = io::stdout();
    let mut lock = stdout.lock();
    // A closed stdout leaves nothing to report to.
    let _ = lock.write_all(bytes);
    let _ = lock.flush();
}

/// Parses `P6 <width> <height> <maxval>` (whitespace and `#` comments
/// between fields), one whitespace byte, then `width * height` RGB triples.
fn parse_ppm(data: &[u8]) -> Result<Image, String> {
    if data.len() < 2 || &data[..2] != b"P6" {
        return Err("it does not start with 'P6'".to_string());
    }
    let mut pos = 2;
    let mut fields = [0usize; 3];
    for (i, name) in ["width", "height", "maxval"].iter().enumerate() {
        // Whitespace and comments before each field.
        loop {
            match data.get(pos) {
                Some(b' ') | Some(b'\t') | Some(b'\n') | Some(b'\r') => pos += 1,
                Some(b'#') => {
                    while pos < data.len() && data[pos] != b'\n' {
                        pos += 1;
                    }
                }
                _ => break,
            }
        }
        let start = pos;
        let mut value: usize = 0;
        while let Some(&c) = data.get(pos) {
            if !c.is_ascii_digit() {
                break;
            }
            value = value
                .checked_mul(10)
                .and_then(|v| v.checked_add((c - b'0') as usize))
                .ok_or_else(|| format!("the {} is too large", name))?;
            pos += 1;
        }
        if pos == start {
            return Err(format!("the {} is missing", name));
        }
        fields[i] = value;
    }
    let [width, height, maxval] = fields;
    if width == 0 || height == 0 {
        return Err("the width and height must be at least 1".to_string());
    }
    if maxval != 255 {
        return Err(format!("maxval is {}; only 255 (8 bits a channel) is supported", maxval));
    }
    match data.get(pos) {
        Some(b' ') | Some(b'\t') | Some(b'\n') | Some(b'\r') => pos += 1,
        _ => return Err("no whitespace after maxval".to_string()),
    }
    let size = width
        .checked_mul(height)
        .and_then(|n| n.checked_mul(3))
        .ok_or_else(|| "the image is too large".to_string())?;
    if data.len() - pos < size {
        return Err(format!(
            "{}x{} needs {} bytes of pixels, the body has {}",
            width,
            height,
            size,
            data.len() - pos
        ));
    }
    Ok(Image { width, height, pixels: data[pos..pos + size].to_vec() })
}

/// The output size from `w=` and `h=` in the query string.
fn target_size(query: &str, src_w: usize, src_h: usize) -> Result<(usize, usize), String> {
    let mut w: Option<usize> = None;
    let mut h: Option<usize> = None;
    for pair in query.split('&') {
        let (key, value) = match pair.find('=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, ""),
        };
        let slot = match key {
            "w" => &mut w,
            "h" => &mut h,
            _ => continue,
        };
        match value.parse::<usize>() {
            Ok(n) if (1..=MAX_SIDE).contains(&n) => *slot = Some(n),
            _ => return Err(format!("{}={} must be a whole number from 1 to {}", key, value, MAX_SIDE)),
        }
    }
    // One side given: scale the other by the same ratio (rounded, at least 1).
    let scaled = |n: usize, num: usize, den: usize| ((n * num + den / 2) / den).clamp(1, MAX_SIDE);
    match (w, h) {
        (Some(w), Some(h)) => Ok((w, h)),
        (Some(w), None) => Ok((w, scaled(src_h, w, src_w))),
        (None, Some(h)) => Ok((scaled(src_w, h, src_h), h)),
        (None, None) => Err("give the new size as ?w=WIDTH and/or &h=HEIGHT".to_string()),
    }
}

/// Source coordinate and weights for every output position along one axis:
/// `(i0, i1, t)` where the sample is `(1 - t) * src[i0] + t * src[i1]`.
fn axis(src: usize, dst: usize) -> Vec<(usize, usize, f64)> {
    let scale = src as f64 / dst as f64;
    (0..dst)
        .map(|x| {
            let s = ((x as f64 + 0.5) * scale - 0.5).max(0.0).min((src - 1) as f64);
            let i0 = s.floor() as usize;
            let i1 = (i0 + 1).min(src - 1);
            (i0, i1, s - i0 as f64)
        })
        .collect()
}

fn resize(image: &Image, dst_w: usize, dst_h: usize) -> Image {
    let xs = axis(image.width, dst_w);
    let ys = axis(image.height, dst_h);
    let stride = image.width * 3;
    let src = &image.pixels;
    let mut pixels = Vec::with_capacity(dst_w * dst_h * 3);
    for &(y0, y1, ty) in &ys {
        let row0 = &src[y0 * stride..y0 * stride + stride];
        let row1 = &src[y1 * stride..y1 * stride + stride];
        for &(x0, x1, tx) in &xs {
            for c in 0..3 {
                let top = row0[x0 * 3 + c] as f64 * (1.0 - tx) + row0[x1 * 3 + c] as f64 * tx;
                let bottom = row1[x0 * 3 + c] as f64 * (1.0 - tx) + row1[x1 * 3 + c] as f64 * tx;
                let v = top * (1.0 - ty) + bottom * ty;
                pixels.push((v + 0.5).floor().max(0.0).min(255.0) as u8);
            }
        }
    }
    Image { width: dst_w, height: dst_h, pixels }
}
