/*
 * atoll.runtime._native: what its C files share (CPython's Modules/_sqlite layout).
 *
 *   module.h   wasmtime's struct layouts and the table of its C functions (W), the
 *              Meter's state, and what wasi.c offers the rest
 *   native.c   the module: Sig / Bound (export calls), Meter (CPU at epoch deadlines),
 *              stores, instantiate, host functions behind a C trampoline, Ticker
 *   wasi.c     Stdio and the WASI preview 1 calls of a CGI run served in C (no GIL)
 *   log.c      LogBook (a request's log counters) and atoll:log.write served in C (no GIL)
 *   watch.c    Watch: the http stall watch's periodic check on a native thread (no GIL)
 *   bodyread.c Budget, BodyRead, Reaper, Pool: request bodies read and freed on native threads
 *              (no GIL)
 *
 * It links against nothing: atoll.runtime.capi passes the addresses of the C
 * functions it needs (from wasmtime-py's own libwasmtime) to init(). The
 * struct layouts below are those of wasmtime 50.0.1 (capi.WASMTIME_VERSION),
 * checked against wasmtime-py's ctypes definitions at import (capi.py).
 * Symbols shared between the files are hidden (-fvisibility=hidden, setup.py).
 */
#ifndef ATOLL_NATIVE_MODULE_H
#define ATOLL_NATIVE_MODULE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

/* ---- wasmtime 50.0.1 layouts ------------------------------------------- */

typedef struct { uint64_t store_id; void *priv; } wt_func_t;                 /* 16 */
typedef struct { uint64_t store_id; size_t priv; } wt_instance_t;           /* 16 */
typedef struct {
    struct { uint64_t store_id; uint32_t priv1; } a; /* 16 with padding */
    uint32_t priv2;                                   /* at offset 16 */
} wt_memory_t;                                                               /* 24 */
typedef union {
    int32_t i32; int64_t i64; float f32; double f64; uint8_t v128[16];
} wt_val_raw_t;                                                              /* 16 */
typedef struct {
    uint8_t kind;
    union { wt_func_t func; wt_memory_t memory; uint8_t pad[24]; } of;
} wt_extern_t;                                                               /* 32 */

_Static_assert(sizeof(wt_memory_t) == 24, "wasmtime_memory_t is 24 bytes in wasmtime 50");
_Static_assert(sizeof(wt_extern_t) == 32, "wasmtime_extern_t is 32 bytes in wasmtime 50");
_Static_assert(sizeof(wt_val_raw_t) == 16, "wasmtime_val_raw_t is 16 bytes");

#define WT_EXTERN_FUNC 0
#define WT_EXTERN_MEMORY 3
#define WT_UPDATE_DEADLINE_CONTINUE 0

typedef void wt_context_t;
typedef void wt_error_t;
typedef void wt_trap_t;

typedef wt_error_t *(*fn_func_call_unchecked)(wt_context_t *, const wt_func_t *, wt_val_raw_t *,
                                               size_t, wt_trap_t **);
typedef void (*fn_set_epoch_deadline)(wt_context_t *, uint64_t);
typedef wt_error_t *(*deadline_cb)(wt_context_t *, void *, uint64_t *, uint8_t *);
typedef void (*fn_store_epoch_deadline_callback)(void *store, deadline_cb, void *data,
                                                  void (*finalizer)(void *));
typedef wt_error_t *(*fn_error_new)(const char *);
typedef wt_error_t *(*fn_instance_pre_instantiate)(const void *pre, wt_context_t *,
                                                    wt_instance_t *, wt_trap_t **);
typedef int (*fn_instance_export_get)(wt_context_t *, const wt_instance_t *, const char *, size_t,
                                      wt_extern_t *);
typedef void (*fn_engine_increment_epoch)(void *engine);
typedef int (*fn_caller_export_get)(void *caller, const char *, size_t, wt_extern_t *);
typedef wt_context_t *(*fn_caller_context)(void *caller);
typedef uint8_t *(*fn_memory_data)(wt_context_t *, const wt_memory_t *);
typedef size_t (*fn_memory_data_size)(wt_context_t *, const wt_memory_t *);
typedef wt_trap_t *(*fn_trap_new)(const char *, size_t);
typedef wt_trap_t *(*host_cb)(void *env, void *caller, wt_val_raw_t *, size_t);
typedef void *(*fn_store_new)(void *engine, void *data, void (*finalizer)(void *));
typedef wt_context_t *(*fn_store_context)(void *store);
typedef void (*fn_store_delete)(void *store);
typedef void *(*fn_context_get_data)(wt_context_t *);
typedef void (*fn_store_limiter)(void *store, int64_t memory_size, int64_t table_elements,
                                 int64_t instances, int64_t tables, int64_t memories);
typedef wt_error_t *(*fn_linker_define_func_unchecked)(void *linker, const char *, size_t,
                                                        const char *, size_t, const void *functype,
                                                        host_cb, void *env, void (*)(void *));

/* The wasmtime C functions atoll calls: X(type, name) for wasmtime_<name>. The table W
 * (one field per line) and the names init() asks capi for are both made from this list. */
#define WASMTIME_FUNCTIONS(X)                                  \
    X(fn_func_call_unchecked, func_call_unchecked)             \
    X(fn_set_epoch_deadline, context_set_epoch_deadline)       \
    X(fn_store_epoch_deadline_callback, store_epoch_deadline_callback) \
    X(fn_error_new, error_new)                                 \
    X(fn_instance_pre_instantiate, instance_pre_instantiate)   \
    X(fn_instance_export_get, instance_export_get)             \
    X(fn_engine_increment_epoch, engine_increment_epoch)       \
    X(fn_caller_export_get, caller_export_get)                 \
    X(fn_caller_context, caller_context)                       \
    X(fn_memory_data, memory_data)                             \
    X(fn_memory_data_size, memory_data_size)                   \
    X(fn_trap_new, trap_new)                                   \
    X(fn_linker_define_func_unchecked, linker_define_func_unchecked) \
    X(fn_store_new, store_new)                                 \
    X(fn_store_context, store_context)                         \
    X(fn_store_limiter, store_limiter)                         \
    X(fn_store_delete, store_delete)                           \
    X(fn_context_get_data, context_get_data)

typedef struct {
#define WT_FIELD(type, name) type name;
    WASMTIME_FUNCTIONS(WT_FIELD)
#undef WT_FIELD
} wasmtime_functions;

/* set once by init() (native.c) */
extern wasmtime_functions W;

#define INTERRUPT_MARKER "atoll: interrupted by epoch deadline callback"

static inline int64_t thread_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* ---- the meter's state (its Python type, Meter, is in native.c) --------------- */

typedef struct StdioObject StdioObject;     /* defined in wasi.c */
typedef struct LogBookObject LogBookObject; /* defined in log.c */

typedef struct {
    PyObject_HEAD
    /* The thread CPU of the current outermost call into this store: wasm, and the
     * host functions it calls (their work is done for the guest, so a guest that
     * loops over a host call is bounded too). Calls made into the store from inside
     * a host function are nested: they count within the outermost call, which
     * alone is charged to the request. */
    long long allow_ns;   /* CPU the outermost call may use */
    long long used_ns;    /* CPU the last outermost call used */
    long long seg_ns;     /* thread CPU clock when the outermost call began */
    long long tick_ns;    /* epoch tick period */
    int depth;            /* calls into the store in flight (0: none) */
    PyThreadState *released; /* the thread state given up with the GIL at a deadline */
    int releases;            /* GIL give-ups not yet taken back (one per call at most) */
    int installed;
    StdioObject *stdio;   /* the store's WASI stdio served in C, or NULL (see Stdio) */
    /* The invocation the outermost call runs for (borrowed: the caller holds it for
     * the call), set by the calls that take one (Bound, instantiate, run_export); NULL
     * otherwise. atoll:log.write finds the request's LogBook through it. */
    PyObject *invocation;
    LogBookObject *log;   /* that request's LogBook, once the guest logged (owned) */
    /* Without a Stdio (a module called from Python): the Stdio of that request's default
     * WASI context, whose stdout and stderr go to its log, once the guest wrote (owned) */
    StdioObject *out;
} MeterObject;

/* The outermost call returned: the lines logged in C (atoll:log.write, a Stdio's stderr)
 * go to the request (log.c). GIL held. */
void atoll_log_detach(MeterObject *m);

/* Outermost metered calls in wasm now, in every store of the process, and tickers
 * that tick slowly for want of one (native.c, Ticker): the first call to enter wakes
 * them, so that its deadlines come a tick apart as ever. */
extern int atoll_guests_running;
extern int atoll_tickers_idle;
void atoll_wake_tickers(void);

static inline void guests_enter(void) {
    __atomic_add_fetch(&atoll_guests_running, 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&atoll_tickers_idle, __ATOMIC_SEQ_CST) > 0)
        atoll_wake_tickers();
}

static inline void guests_exit(void) {
    __atomic_sub_fetch(&atoll_guests_running, 1, __ATOMIC_SEQ_CST);
}

/* A call into the store begins: the outermost one starts the clock. */
static inline void meter_enter(MeterObject *m, long long allow) {
    if (m->depth++ == 0) {
        m->allow_ns = allow;
        m->used_ns = 0;
        m->seg_ns = thread_ns();
        guests_enter();
    }
}

/* It ended: the outermost one returns the CPU it used (a nested one 0), and hands the
 * lines it logged in C to the request. Called with the GIL. */
static inline long long meter_exit(MeterObject *m) {
    if (--m->depth > 0)
        return 0;
    m->depth = 0;
    guests_exit();
    m->used_ns = thread_ns() - m->seg_ns;
    m->invocation = NULL;
    if (m->log != NULL || m->stdio != NULL || m->out != NULL)
        atoll_log_detach(m);
    return m->used_ns;
}

static inline long long meter_used(MeterObject *m) { return thread_ns() - m->seg_ns; }

/* Host work for a guest stops where the outermost call's allowance ends (m may be NULL:
 * no meter, nothing to stop). */
static inline int meter_spent(MeterObject *m) {
    return m != NULL && m->depth > 0 && m->allow_ns - meter_used(m) <= 0;
}

extern PyTypeObject MeterType;

/* The Meter of a store (its data, set by new_store), or NULL. */
static inline MeterObject *meter_of_context(wt_context_t *ctx) {
    void *data = W.context_get_data(ctx);
    /* only stores made by new_store carry a Meter; wasmtime-py keeps small slab
     * indices there, never real pointers */
    if ((uintptr_t)data < 65536 || ((uintptr_t)data & 7) != 0)
        return NULL;
    if (Py_TYPE((PyObject *)data) != &MeterType)
        return NULL;
    return (MeterObject *)data;
}

/* ---- what wasi.c and log.c offer (see there) -------------------------------- */

extern PyTypeObject StdioType;
extern PyTypeObject LogBookType;
extern PyTypeObject WatchType; /* watch.c */
extern PyTypeObject BudgetType; /* bodyread.c */
extern PyTypeObject BodyReadType; /* bodyread.c */
extern PyTypeObject ReaperType; /* bodyread.c */
extern PyTypeObject PoolType;   /* bodyread.c */

/* A host function served in C, for a store with a Meter: NULL when it answered (vals[0]
 * holds the result, if any), a trap, or FALLBACK when the Python implementation must
 * run instead (what the C one does not serve). */
#define FALLBACK ((wt_trap_t *)1)
typedef wt_trap_t *(*native_host_fn)(MeterObject *, void *caller, wt_val_raw_t *);

/* The C function of wasi_names()[index - 1] (index 1 .. atoll_wasi_count()). */
native_host_fn atoll_wasi_fn(int index);
int atoll_wasi_count(void);
/* wasi_names() -> the WASI preview 1 functions served in C */
PyObject *atoll_wasi_names(PyObject *mod, PyObject *unused);

/* The LogBook a Stdio writes stderr to, or NULL (wasi.c) */
LogBookObject *atoll_stdio_log(StdioObject *o);

/* atoll:log.write(ptr, len) (define_host's native index LOG_WRITE_NATIVE) */
wt_trap_t *atoll_log_write(MeterObject *m, void *caller, wt_val_raw_t *vals);

/* A LogBook's budget, for the other writers in C (wasi.c: a CGI run's stderr); no GIL. */
int atoll_book_full(const LogBookObject *b);
Py_ssize_t atoll_book_max_line(const LogBookObject *b);
void atoll_book_drop(LogBookObject *b, long long lines, long long nbytes);
/* RequestLog.add(raw.decode("utf-8", "replace") + note, cut=False) */
void atoll_book_add_line(LogBookObject *b, const char *raw, uint32_t raw_len, const char *note,
                         uint32_t note_len);
/* LogBook.collect(): the pending lines into the request's list. With the GIL; -1: error */
int atoll_book_collect(LogBookObject *b);
/* write_lines(fd, head, end, lines[, carry]): a request's log lines to fd, without the GIL */
PyObject *atoll_write_lines(PyObject *mod, PyObject *const *args, Py_ssize_t nargs);

#endif /* ATOLL_NATIVE_MODULE_H */
