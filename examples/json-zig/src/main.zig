//! json-zig: a whole-wasm atoll worker that pretty-prints JSON.
//!
//! A WASI command run once per request (CGI over WASI, as WAGI does):
//!   stdin        the request body: one JSON value (UTF-8)
//!   environment  QUERY_STRING: `indent=N` (0 to 16, default 2; 0 minifies)
//!   stdout       a CGI response: `Content-Type: application/json`, a blank
//!                line, the value re-indented and a final newline; invalid
//!                JSON gives `Status: 400 Bad Request` with the line, column
//!                and what was expected
//!
//! The layout is Python's `json.dumps(value, indent=N)` (`", "`/`": "` become
//! `","`/`":"` when minifying); strings and numbers are kept exactly as
//! written. The parser is strict RFC 8259: no comments, no trailing commas,
//! no NaN, valid UTF-8 only, nesting at most 512 deep.
//!
//! Only the WASI preview-1 calls of `std.os.wasi` are used (no `std.Io`), so
//! the source builds with any recent Zig: see build.sh for the pinned one.

const std = @import("std");
const wasi = std.os.wasi;

const max_depth = 512;
const max_indent = 16;

/// A growable byte buffer on the wasm page allocator.
const Buf = struct {
    bytes: []u8 = &[_]u8{},
    len: usize = 0,

    fn ensure(self: *Buf, extra: usize) void {
        if (self.len + extra <= self.bytes.len) return;
        var cap: usize = if (self.bytes.len == 0) 4096 else self.bytes.len;
        while (cap < self.len + extra) cap *= 2;
        const alloc = std.heap.wasm_allocator;
        const grown = if (self.bytes.len == 0) alloc.alloc(u8, cap) else alloc.realloc(self.bytes, cap);
        self.bytes = grown catch outOfMemory();
    }

    fn append(self: *Buf, data: []const u8) void {
        self.ensure(data.len);
        @memcpy(self.bytes[self.len..][0..data.len], data);
        self.len += data.len;
    }

    fn byte(self: *Buf, c: u8) void {
        self.ensure(1);
        self.bytes[self.len] = c;
        self.len += 1;
    }

    fn repeat(self: *Buf, c: u8, n: usize) void {
        self.ensure(n);
        @memset(self.bytes[self.len..][0..n], c);
        self.len += n;
    }

    fn slice(self: *const Buf) []const u8 {
        return self.bytes[0..self.len];
    }
};

fn outOfMemory() noreturn {
    writeAll(2, "json-zig: out of memory\n");
    wasi.proc_exit(1);
}

fn writeAll(fd: wasi.fd_t, data: []const u8) void {
    var rest = data;
    while (rest.len > 0) {
        const iov = [_]wasi.ciovec_t{.{ .base = rest.ptr, .len = rest.len }};
        var written: usize = 0;
        switch (wasi.fd_write(fd, &iov, 1, &written)) {
            .SUCCESS => rest = rest[written..],
            .INTR, .AGAIN => {},
            else => return,
        }
    }
}

fn readAll(fd: wasi.fd_t, buf: *Buf) bool {
    while (true) {
        buf.ensure(65536);
        const free = buf.bytes[buf.len..];
        const iov = [_]wasi.iovec_t{.{ .base = free.ptr, .len = free.len }};
        var got: usize = 0;
        switch (wasi.fd_read(fd, &iov, 1, &got)) {
            .SUCCESS => {
                if (got == 0) return true;
                buf.len += got;
            },
            .INTR, .AGAIN => {},
            else => return false,
        }
    }
}

/// The value of environment variable `name`, or null.
fn getEnv(name: []const u8) ?[]const u8 {
    var count: usize = 0;
    var size: usize = 0;
    if (wasi.environ_sizes_get(&count, &size) != .SUCCESS) return null;
    const alloc = std.heap.wasm_allocator;
    const ptrs = alloc.alloc([*:0]u8, count) catch outOfMemory();
    const data = alloc.alloc(u8, size) catch outOfMemory();
    if (wasi.environ_get(ptrs.ptr, data.ptr) != .SUCCESS) return null;
    for (ptrs) |p| {
        const entry = std.mem.sliceTo(p, 0);
        if (entry.len > name.len and entry[name.len] == '=' and std.mem.eql(u8, entry[0..name.len], name))
            return entry[name.len + 1 ..];
    }
    return null;
}

/// `indent=N` from a query string: N, the default 2, or null when invalid.
fn indentFromQuery(query: []const u8) ?usize {
    var indent: usize = 2;
    var pairs = std.mem.splitScalar(u8, query, '&');
    while (pairs.next()) |pair| {
        const eq = std.mem.indexOfScalar(u8, pair, '=') orelse pair.len;
        if (!std.mem.eql(u8, pair[0..eq], "indent")) continue;
        const value = if (eq < pair.len) pair[eq + 1 ..] else "";
        if (value.len == 0 or value.len > 2) return null;
        var n: usize = 0;
        for (value) |c| {
            if (c < '0' or c > '9') return null;
            n = n * 10 + (c - '0');
        }
        if (n > max_indent) return null;
        indent = n;
    }
    return indent;
}

const ParseError = error{Invalid};

/// A strict JSON parser that writes the re-indented value as it goes.
const Printer = struct {
    src: []const u8,
    pos: usize = 0,
    out: *Buf,
    indent: usize,
    /// What was wrong, set with the position when parsing fails.
    problem: []const u8 = "",

    fn fail(self: *Printer, problem: []const u8) ParseError {
        self.problem = problem;
        return error.Invalid;
    }

    fn skipSpace(self: *Printer) void {
        while (self.pos < self.src.len) : (self.pos += 1) {
            switch (self.src[self.pos]) {
                ' ', '\t', '\n', '\r' => {},
                else => return,
            }
        }
    }

    fn peek(self: *Printer) ?u8 {
        return if (self.pos < self.src.len) self.src[self.pos] else null;
    }

    fn newline(self: *Printer, depth: usize) void {
        if (self.indent == 0) return;
        self.out.byte('\n');
        self.out.repeat(' ', self.indent * depth);
    }

    fn document(self: *Printer) ParseError!void {
        self.skipSpace();
        try self.value(0);
        self.skipSpace();
        if (self.pos < self.src.len) return self.fail("unexpected data after the JSON value");
        self.out.byte('\n');
    }

    fn value(self: *Printer, depth: usize) ParseError!void {
        const c = self.peek() orelse return self.fail("expected a value, found the end of the input");
        switch (c) {
            '{' => try self.container(depth, '{', '}'),
            '[' => try self.container(depth, '[', ']'),
            '"' => try self.string(),
            '-', '0'...'9' => try self.number(),
            't' => try self.literal("true"),
            'f' => try self.literal("false"),
            'n' => try self.literal("null"),
            else => return self.fail("expected a value"),
        }
    }

    fn container(self: *Printer, depth: usize, open: u8, close: u8) ParseError!void {
        if (depth >= max_depth) return self.fail("nested more than 512 deep");
        self.pos += 1;
        self.out.byte(open);
        self.skipSpace();
        if (self.peek() == close) {
            self.pos += 1;
            self.out.byte(close);
            return;
        }
        while (true) {
            self.newline(depth + 1);
            if (open == '{') {
                if (self.peek() != '"') return self.fail("expected a string key");
                try self.string();
                self.skipSpace();
                if (self.peek() != ':') return self.fail("expected ':' after the key");
                self.pos += 1;
                self.out.append(if (self.indent == 0) ":" else ": ");
                self.skipSpace();
            }
            try self.value(depth + 1);
            self.skipSpace();
            const next = self.peek() orelse return self.fail(if (open == '{') "expected ',' or '}'" else "expected ',' or ']'");
            if (next == close) {
                self.pos += 1;
                self.newline(depth);
                self.out.byte(close);
                return;
            }
            if (next != ',') return self.fail(if (open == '{') "expected ',' or '}'" else "expected ',' or ']'");
            self.pos += 1;
            self.out.byte(',');
            self.skipSpace();
            if (self.peek() == close) return self.fail("trailing comma");
        }
    }

    fn string(self: *Printer) ParseError!void {
        const start = self.pos;
        self.pos += 1;
        while (true) {
            const c = self.peek() orelse return self.fail("unterminated string");
            switch (c) {
                '"' => break,
                '\\' => {
                    self.pos += 1;
                    const e = self.peek() orelse return self.fail("unterminated string");
                    switch (e) {
                        '"', '\\', '/', 'b', 'f', 'n', 'r', 't' => self.pos += 1,
                        'u' => {
                            self.pos += 1;
                            var k: usize = 0;
                            while (k < 4) : (k += 1) {
                                const h = self.peek() orelse return self.fail("unterminated string");
                                if (!std.ascii.isHex(h)) return self.fail("bad \\u escape: expected 4 hex digits");
                                self.pos += 1;
                            }
                        },
                        else => return self.fail("bad escape in a string"),
                    }
                },
                0...0x1f => return self.fail("control character in a string (escape it)"),
                else => self.pos += 1,
            }
        }
        self.pos += 1;
        self.out.append(self.src[start..self.pos]);
    }

    fn digits(self: *Printer) usize {
        const start = self.pos;
        while (self.peek()) |d| {
            if (d < '0' or d > '9') break;
            self.pos += 1;
        }
        return self.pos - start;
    }

    fn number(self: *Printer) ParseError!void {
        const start = self.pos;
        if (self.peek() == '-') self.pos += 1;
        const first = self.peek() orelse return self.fail("expected a digit");
        if (first == '0') {
            self.pos += 1;
            if (self.peek()) |d| if (d >= '0' and d <= '9') return self.fail("leading zero in a number");
        } else if (self.digits() == 0) {
            return self.fail("expected a digit");
        }
        if (self.peek() == '.') {
            self.pos += 1;
            if (self.digits() == 0) return self.fail("expected a digit after '.'");
        }
        if (self.peek()) |e| if (e == 'e' or e == 'E') {
            self.pos += 1;
            if (self.peek()) |s| if (s == '+' or s == '-') {
                self.pos += 1;
            };
            if (self.digits() == 0) return self.fail("expected a digit in the exponent");
        };
        self.out.append(self.src[start..self.pos]);
    }

    fn literal(self: *Printer, word: []const u8) ParseError!void {
        if (!std.mem.startsWith(u8, self.src[self.pos..], word)) return self.fail("expected a value");
        self.pos += word.len;
        self.out.append(word);
    }

    /// 1-based line and column (in bytes) of the current position.
    fn where(self: *Printer) struct { line: usize, column: usize } {
        var line: usize = 1;
        var line_start: usize = 0;
        const end = @min(self.pos, self.src.len);
        for (self.src[0..end], 0..) |c, i| {
            if (c == '\n') {
                line += 1;
                line_start = i + 1;
            }
        }
        return .{ .line = line, .column = end - line_start + 1 };
    }
};

fn respondError(status: []const u8, message: []const u8) void {
    var out = Buf{};
    out.append("Status: ");
    out.append(status);
    out.append("\nContent-Type: text/plain; charset=utf-8\n\n");
    out.append(message);
    out.byte('\n');
    writeAll(1, out.slice());
}

fn appendNumber(out: *Buf, n: usize) void {
    var tmp: [20]u8 = undefined;
    var i: usize = tmp.len;
    var v = n;
    while (true) {
        i -= 1;
        tmp[i] = @intCast('0' + v % 10);
        v /= 10;
        if (v == 0) break;
    }
    out.append(tmp[i..]);
}

const help =
    \\Content-Type: text/plain; charset=utf-8
    \\
    \\POST JSON; get it back pretty-printed.
    \\Query: ?indent=N (0 to 16, default 2; 0 minifies).
    \\Example: curl --data '{"a":[1,2]}' 'http://127.0.0.1:8787/?indent=4'
    \\
;

pub fn main() void {
    const method = getEnv("REQUEST_METHOD") orelse "";
    const indent = indentFromQuery(getEnv("QUERY_STRING") orelse "") orelse
        return respondError("400 Bad Request", "indent must be a whole number from 0 to 16");

    var body = Buf{};
    if (!readAll(0, &body)) return respondError("500 Internal Server Error", "cannot read the request body");
    if (body.len == 0 and (std.mem.eql(u8, method, "GET") or std.mem.eql(u8, method, "HEAD")))
        return writeAll(1, help);
    if (!std.unicode.utf8ValidateSlice(body.slice()))
        return respondError("400 Bad Request", "invalid JSON: the body is not valid UTF-8");

    var out = Buf{};
    out.append("Content-Type: application/json\n\n");
    var printer = Printer{ .src = body.slice(), .out = &out, .indent = indent };
    printer.document() catch {
        const at = printer.where();
        var msg = Buf{};
        msg.append("invalid JSON at line ");
        appendNumber(&msg, at.line);
        msg.append(", column ");
        appendNumber(&msg, at.column);
        msg.append(": ");
        msg.append(printer.problem);
        return respondError("400 Bad Request", msg.slice());
    };
    writeAll(1, out.slice());
}
