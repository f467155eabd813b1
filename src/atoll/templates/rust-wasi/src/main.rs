//! my-worker: a whole-wasm atoll worker in Rust.
//!
//! atoll runs this WASI program once per request, the way a CGI server (or
//! WAGI) does:
//! - the request's CGI variables are the environment: `REQUEST_METHOD`,
//!   `PATH_INFO`, `QUERY_STRING`, `CONTENT_TYPE`, `HTTP_*` for headers…;
//! - the request body is stdin;
//! - the response goes to stdout: header lines (`Content-Type: …`, and
//!   `Status: 404 Not Found` for a status other than 200), a blank line, then
//!   the body. stderr goes to the worker's log.

use std::env;
use std::io::{self, Read, Write};

fn main() {
    let method = env::var("REQUEST_METHOD").unwrap_or_default();
    let path = env::var("PATH_INFO").unwrap_or_default();
    let query = env::var("QUERY_STRING").unwrap_or_default();

    let mut body = Vec::new();
    io::stdin().read_to_end(&mut body).expect("read the request body");
    eprintln!("{} {} ({} bytes)", method, path, body.len());

    if path == "/missing" {
        // Any status: a `Status:` header line.
        print!("Status: 404 Not Found\nContent-Type: text/plain\n\nnothing at {}\n", path);
        return;
    }

    let page = format!(
        "<!doctype html>\n\
         <html><head><meta charset=\"utf-8\"><title>Hello from Rust</title></head>\n\
         <body>\n\
         <h1>Hello from Rust</h1>\n\
         <p>A WebAssembly (WASI) program answered this request.</p>\n\
         <ul>\n\
         <li>method: <code>{}</code></li>\n\
         <li>path: <code>{}</code></li>\n\
         <li>query: <code>{}</code></li>\n\
         <li>body: {} bytes</li>\n\
         </ul>\n\
         </body></html>\n",
        escape(&method),
        escape(&path),
        escape(&query),
        body.len()
    );
    let stdout = io::stdout();
    let mut out = stdout.lock();
    out.write_all(b"Content-Type: text/html; charset=utf-8\n\n").unwrap();
    out.write_all(page.as_bytes()).unwrap();
}

/// Escapes text for HTML: the path and query come from the client.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}
