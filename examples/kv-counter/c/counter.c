/* The kv-counter guest: increment(key) adds one to a decimal counter in KV.
 *
 * No libc: built with clang-14 --target=wasm32 (see ../build.sh). It reads
 * and writes the namespace bound as COUNTS in ../atoll.toml through the
 * atoll:kv host imports (../include/atoll_kv.h), and logs each increment
 * through atoll:log.
 */
#include "atoll_kv.h"

__attribute__((import_module("atoll:log"), import_name("write")))
void atoll_log(const char *text, size_t len);

static const char BINDING[] = "COUNTS";
#define BINDING_LEN (sizeof BINDING - 1)

/* -- memory: a bump allocator, enough for a fresh instance per request ---------------- */

extern unsigned char __heap_base;
static uintptr_t next_free;

__attribute__((export_name("alloc")))
void *alloc(size_t len) {
    if (next_free == 0) next_free = (uintptr_t)&__heap_base;
    uintptr_t p = (next_free + 7) & ~(uintptr_t)7;
    uintptr_t end = p + len;
    uintptr_t have = __builtin_wasm_memory_size(0) * 65536;
    if (end > have) {
        size_t pages = (end - have + 65535) / 65536;
        if (__builtin_wasm_memory_grow(0, pages) == (size_t)-1) return 0;
    }
    next_free = end;
    return (void *)p;
}

__attribute__((export_name("dealloc")))
void dealloc(void *ptr, size_t len) {
    if ((uintptr_t)ptr + len == next_free) next_free = (uintptr_t)ptr; /* the last block only */
}

/* -- decimal text ----------------------------------------------------------------------- */

static int64_t parse(const uint8_t *p, size_t n) {
    int64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') return 0; /* not a counter: start again */
        v = v * 10 + (p[i] - '0');
    }
    return v;
}

static size_t format(int64_t v, char *out) { /* out: 20 bytes at least; v >= 0 */
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++) out[i] = tmp[n - 1 - i];
    return n;
}

static size_t append(char *out, size_t at, const char *text, size_t len) {
    for (size_t i = 0; i < len; i++) out[at + i] = text[i];
    return at + len;
}

/* -- the export -------------------------------------------------------------------------- */

/* increment(key) -> the new count, or a negative atoll:kv code (see atoll_kv.h). */
__attribute__((export_name("increment")))
int64_t increment(const char *key, size_t key_len) {
    int64_t count = 0;
    uint8_t *value;
    size_t value_len;
    int64_t got = atoll_kv_get(BINDING, BINDING_LEN, key, key_len);
    if (atoll_kv_buffer(got, &value, &value_len)) {
        count = parse(value, value_len);
        dealloc(value, value_len);
    } else if (got != ATOLL_KV_NOT_FOUND) {
        return got;
    }
    count += 1;
    char text[20];
    size_t text_len = format(count, text);
    int32_t put = atoll_kv_put(BINDING, BINDING_LEN, key, key_len, text, text_len, 0);
    if (put != ATOLL_KV_OK) return put;

    char line[600]; /* "counter KEY = N": keys are at most 512 bytes */
    size_t n = append(line, 0, "counter ", 8);
    n = append(line, n, key, key_len < 512 ? key_len : 512);
    n = append(line, n, " = ", 3);
    n = append(line, n, text, text_len);
    atoll_log(line, n);
    return count;
}
