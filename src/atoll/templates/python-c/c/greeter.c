/*
 * The wasm module of my-worker, called from src/worker.py.
 *
 * Built with clang-14 for wasm32-wasi as a "reactor" (a library: no main,
 * no _start) with Debian's wasi-libc for malloc and the string functions
 * (../build.sh). It imports nothing from WASI. It follows atoll's wasm ABI:
 * - alloc(len) -> ptr and dealloc(ptr, len) manage buffers in linear memory;
 * - a string argument arrives as (ptr, len): UTF-8 bytes the caller put there;
 * - a string result is returned as (ptr << 32) | len; the caller copies it
 *   out and gives it back with dealloc(ptr, len).
 *
 * Each request gets a fresh instance, so nothing here outlives a request.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define EXPORT(name) __attribute__((export_name(name)))

/* Reserves len bytes; 0 when memory cannot grow. */
EXPORT("alloc") void *wasm_alloc(size_t len) { return malloc(len ? len : 1); }

/* Frees a buffer from alloc (or one this module returned). */
EXPORT("dealloc") void wasm_dealloc(void *ptr, size_t len) {
    (void)len;
    free(ptr);
}

static uint64_t buffer(const char *ptr, size_t len) {
    return ((uint64_t)(uintptr_t)ptr << 32) | (uint64_t)len;
}

/* greet(name) -> "Hello, NAME! (from C)" */
EXPORT("greet") uint64_t greet(const char *name, size_t len) {
    static const char before[] = "Hello, ", after[] = "! (from C)";
    size_t total = sizeof before - 1 + len + sizeof after - 1;
    char *out = malloc(total ? total : 1);
    if (!out) return 0;
    memcpy(out, before, sizeof before - 1);
    memcpy(out + sizeof before - 1, name, len);
    memcpy(out + sizeof before - 1 + len, after, sizeof after - 1);
    return buffer(out, total);
}

/* The number of vowels (a, e, i, o, u, either case) in the text at ptr. */
EXPORT("count_vowels") uint32_t count_vowels(const char *text, size_t len) {
    uint32_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (text[i] != '\0' && strchr("aeiouAEIOU", text[i])) n++;
    }
    return n;
}
