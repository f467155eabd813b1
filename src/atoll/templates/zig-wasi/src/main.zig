//! my-worker: a whole-wasm atoll worker in Zig.
//!
//! atoll runs this WASI program once per request, the way a CGI server (or
//! WAGI) does:
//! - the request's CGI variables are the environment: `REQUEST_METHOD`,
//!   `PATH_INFO`, `QUERY_STRING`, `CONTENT_TYPE`, `HTTP_*` for headers…;
//! - the request body is stdin;
//! - the response goes to stdout: header lines (`Content-Type: …`, and
//!   `Status: 404 Not Found` for a status other than 200), a blank line, then
//!   the body. stderr goes to the worker's log.
//!
//! It calls WASI preview 1 directly through `std.os.wasi` (fd_read,
//! fd_write, environ_get), which stays the same across Zig releases.

const std = @import("std");
const wasi = std.os.wasi;

/// Output is gathered here and written at the end (a page is small).
var out_buf: [64 * 1024]u8 = undefined;
var out_len: usize = 0;

fn put(text: []const u8) void {
    const n = @min(text.len, out_buf.len - out_len);
    @memcpy(out_buf[out_len..][0..n], text[0..n]);
    out_len += n;
}

/// Text escaped for HTML: the path and query come from the client.
fn putEscaped(text: []const u8) void {
    for (text) |c| {
        switch (c) {
            '&' => put("&amp;"),
            '<' => put("&lt;"),
            '>' => put("&gt;"),
            '"' => put("&quot;"),
            '\'' => put("&#39;"),
            else => put(&[_]u8{c}),
        }
    }
}

fn putNumber(n: usize) void {
    var digits: [20]u8 = undefined;
    var i: usize = digits.len;
    var v = n;
    while (true) {
        i -= 1;
        digits[i] = @intCast('0' + v % 10);
        v /= 10;
        if (v == 0) break;
    }
    put(digits[i..]);
}

fn writeAll(fd: wasi.fd_t, data: []const u8) void {
    var rest = data;
    while (rest.len > 0) {
        const iov = [_]wasi.ciovec_t{.{ .base = rest.ptr, .len = rest.len }};
        var written: usize = 0;
        if (wasi.fd_write(fd, &iov, 1, &written) != .SUCCESS) return;
        rest = rest[written..];
    }
}

/// Reads stdin to the end; returns how many bytes it had.
fn bodyLength() usize {
    var chunk: [16 * 1024]u8 = undefined;
    var total: usize = 0;
    while (true) {
        const iov = [_]wasi.iovec_t{.{ .base = &chunk, .len = chunk.len }};
        var got: usize = 0;
        if (wasi.fd_read(0, &iov, 1, &got) != .SUCCESS or got == 0) return total;
        total += got;
    }
}

/// Environment: copied once into these buffers by environ_get.
var env_ptrs: [256][*:0]u8 = undefined;
var env_data: [64 * 1024]u8 = undefined;
var env_count: usize = 0;

fn loadEnv() void {
    var count: usize = 0;
    var size: usize = 0;
    if (wasi.environ_sizes_get(&count, &size) != .SUCCESS) return;
    if (count > env_ptrs.len or size > env_data.len) return; // too large for this example
    if (wasi.environ_get(&env_ptrs, &env_data) != .SUCCESS) return;
    env_count = count;
}

fn getEnv(name: []const u8) []const u8 {
    for (env_ptrs[0..env_count]) |p| {
        const entry = std.mem.sliceTo(p, 0);
        if (entry.len > name.len and entry[name.len] == '=' and std.mem.eql(u8, entry[0..name.len], name))
            return entry[name.len + 1 ..];
    }
    return "";
}

pub fn main() void {
    loadEnv();
    const method = getEnv("REQUEST_METHOD");
    const path = getEnv("PATH_INFO");
    const query = getEnv("QUERY_STRING");
    const length = bodyLength();

    if (std.mem.eql(u8, path, "/missing")) {
        // Any status: a `Status:` header line.
        put("Status: 404 Not Found\nContent-Type: text/plain\n\nnothing at ");
        put(path);
        put("\n");
        return writeAll(1, out_buf[0..out_len]);
    }

    put("Content-Type: text/html; charset=utf-8\n\n");
    put(
        \\<!doctype html>
        \\<html><head><meta charset="utf-8"><title>Hello from Zig</title></head>
        \\<body>
        \\<h1>Hello from Zig</h1>
        \\<p>A WebAssembly (WASI) program answered this request.</p>
        \\<ul>
        \\<li>method: <code>
    );
    putEscaped(method);
    put("</code></li>\n<li>path: <code>");
    putEscaped(path);
    put("</code></li>\n<li>query: <code>");
    putEscaped(query);
    put("</code></li>\n<li>body: ");
    putNumber(length);
    put(" bytes</li>\n</ul>\n</body></html>\n");
    writeAll(1, out_buf[0..out_len]);
    writeAll(2, "served a request\n");
}
