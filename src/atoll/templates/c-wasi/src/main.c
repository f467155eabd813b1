/*
 * my-worker: a whole-wasm atoll worker in C.
 *
 * atoll runs this WASI program once per request, the way a CGI server (or
 * WAGI) does:
 * - the request's CGI variables are the environment: REQUEST_METHOD,
 *   PATH_INFO, QUERY_STRING, CONTENT_TYPE, HTTP_* for headers...;
 * - the request body is stdin;
 * - the response goes to stdout: header lines ("Content-Type: ...", and
 *   "Status: 404 Not Found" for a status other than 200), a blank line, then
 *   the body. stderr goes to the worker's log.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Writes text escaped for HTML: the path and query come from the client. */
static void put_escaped(const char *text) {
    for (; *text; text++) {
        switch (*text) {
        case '&': fputs("&amp;", stdout); break;
        case '<': fputs("&lt;", stdout); break;
        case '>': fputs("&gt;", stdout); break;
        case '"': fputs("&quot;", stdout); break;
        case '\'': fputs("&#39;", stdout); break;
        default: putchar(*text);
        }
    }
}

static const char *env_or_empty(const char *name) {
    const char *value = getenv(name);
    return value ? value : "";
}

int main(void) {
    const char *method = env_or_empty("REQUEST_METHOD");
    const char *path = env_or_empty("PATH_INFO");
    const char *query = env_or_empty("QUERY_STRING");

    /* Read the whole body, counting its bytes. */
    static char chunk[16384];
    size_t length = 0, got;
    while ((got = fread(chunk, 1, sizeof chunk, stdin)) > 0) length += got;
    fprintf(stderr, "%s %s (%zu bytes)\n", method, path, length);

    if (strcmp(path, "/missing") == 0) {
        /* Any status: a "Status:" header line. */
        printf("Status: 404 Not Found\nContent-Type: text/plain\n\nnothing at %s\n", path);
        return 0;
    }

    fputs("Content-Type: text/html; charset=utf-8\n\n", stdout);
    fputs("<!doctype html>\n"
          "<html><head><meta charset=\"utf-8\"><title>Hello from C</title></head>\n"
          "<body>\n"
          "<h1>Hello from C</h1>\n"
          "<p>A WebAssembly (WASI) program answered this request.</p>\n"
          "<ul>\n",
          stdout);
    fputs("<li>method: <code>", stdout);
    put_escaped(method);
    fputs("</code></li>\n<li>path: <code>", stdout);
    put_escaped(path);
    fputs("</code></li>\n<li>query: <code>", stdout);
    put_escaped(query);
    printf("</code></li>\n<li>body: %zu bytes</li>\n</ul>\n</body></html>\n", length);
    return 0;
}
