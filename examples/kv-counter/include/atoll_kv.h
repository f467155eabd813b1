/* atoll_kv.h: the KV namespaces of an atoll worker, from C (the atoll:kv host imports).
 *
 * The contract is docs/wasm-abi.md, "KV from wasm: atoll:kv". Header only, no libc:
 * needs clang's <stdint.h> and <stddef.h> (built for --target=wasm32).
 *
 * Every function names the namespace by its binding (`binding = "COUNTS"` in
 * atoll.toml) and passes strings as pointer + length, UTF-8, no NUL needed.
 * get and list return a buffer that atoll allocated IN your module through
 * its exported `alloc(len) -> ptr`; it is yours (free it as your alloc wants).
 * The module must also export its memory as "memory".
 */
#ifndef ATOLL_KV_H
#define ATOLL_KV_H

#include <stddef.h>
#include <stdint.h>

#define ATOLL_KV_OK 0
#define ATOLL_KV_NOT_FOUND (-1)   /* get: the key is missing or expired */
#define ATOLL_KV_INVALID (-2)     /* a key, value, ttl or limit outside Workers' limits */
#define ATOLL_KV_STORE_ERROR (-3) /* the store failed (unreachable, locked) */
#define ATOLL_KV_NO_MEMORY (-4)   /* get/list: your alloc returned 0 */
/* The reason of INVALID and STORE_ERROR is written to the request's log. */

#define ATOLL_KV_IMPORT(name) __attribute__((import_module("atoll:kv"), import_name(name)))

/* Value of `key`: a buffer (see atoll_kv_buffer), 0 for an empty value, or a negative code. */
ATOLL_KV_IMPORT("get")
int64_t atoll_kv_get(const char *binding, size_t binding_len, const char *key, size_t key_len);

/* Create or replace `key`. ttl_seconds: 0 = never expires, else >= 60. 0 or a negative code. */
ATOLL_KV_IMPORT("put")
int32_t atoll_kv_put(const char *binding, size_t binding_len, const char *key, size_t key_len,
                     const void *value, size_t value_len, int64_t ttl_seconds);

/* Remove `key` (a missing key is not an error). 0 or a negative code. */
ATOLL_KV_IMPORT("delete")
int32_t atoll_kv_delete(const char *binding, size_t binding_len, const char *key, size_t key_len);

/* Up to `limit` (1..1000) keys starting with `prefix` (len 0: all), after `cursor` (len 0:
 * from the start), as a JSON buffer:
 * {"keys":[{"name":"a","expiration":1700000000,"metadata":{...}}],"list_complete":true,"cursor":null}
 * ("expiration" and "metadata" only when the key has them), or a negative code. */
ATOLL_KV_IMPORT("list")
int64_t atoll_kv_list(const char *binding, size_t binding_len, const char *prefix,
                      size_t prefix_len, const char *cursor, size_t cursor_len, int32_t limit);

/* Split a result of get or list: 1 with *ptr and *len set for a buffer (len may be 0), 0 for a
 * negative code (the result itself). */
static inline int atoll_kv_buffer(int64_t result, uint8_t **ptr, size_t *len) {
    if (result < 0) return 0;
    *ptr = (uint8_t *)(uintptr_t)((uint64_t)result >> 32);
    *len = (size_t)((uint64_t)result & 0xFFFFFFFFu);
    return 1;
}

#endif /* ATOLL_KV_H */
