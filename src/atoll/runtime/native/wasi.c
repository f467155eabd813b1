/*
 * atoll.runtime._native, WASI: a CGI guest's stdin, stdout, argv and environment (Stdio),
 * and the WASI preview 1 calls a CGI run makes most, served in C without the GIL.
 * Everything they do not serve falls back to runtime/wasi/preview1.py, which keeps the
 * same state through the Stdio. Shared declarations are in module.h.
 */
#include "module.h"

/* ---- Stdio: a CGI guest's stdin, stdout, argv and environment, served in C ---- */
/*
 * A whole-wasm (CGI) request makes a handful of WASI calls before it has
 * written its answer (wasi-libc's start-up reads argv and environ, checks fds,
 * writes stdout). Served in Python each takes the GIL and builds Python objects;
 * served here none takes the GIL. The Stdio is attached to the request's
 * store through its Meter (Meter.stdio); a call this code does not serve
 * (stderr, files, a write past the stdout limit...) goes to the Python
 * implementation, which reads and writes the same state through this object.
 */

struct StdioObject {
    PyObject_HEAD
    PyObject *args;       /* bytes: each argument NUL-terminated */
    PyObject *env;        /* bytes: each KEY=value NUL-terminated */
    PyObject *stdin_data; /* bytes */
    Py_ssize_t argc, envc;
    Py_ssize_t stdin_pos;
    char *out;
    size_t out_len, out_cap, out_limit;
    int has_dirs;         /* folders granted: fd_prestat_get goes to Python */
    int exited;
    unsigned int exit_code;
    /* stderr to the request's log, line by line (WasiContext.log_output's rules), when
     * a LogBook was given; NULL: Python serves stderr */
    LogBookObject *log;
    char *err;               /* the line being written (at most the log's max_line bytes) */
    size_t err_len;
    unsigned long long err_cut; /* bytes of that line dropped past max_line */
};

static Py_ssize_t count_nuls(PyObject *b) {
    Py_ssize_t n = 0, len = PyBytes_GET_SIZE(b);
    const char *p = PyBytes_AS_STRING(b);
    for (Py_ssize_t i = 0; i < len; i++)
        n += p[i] == 0;
    return n;
}

static int Stdio_init(StdioObject *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"args", "env", "stdin", "stdout_limit", "has_dirs", "log", NULL};
    PyObject *a, *e, *in, *log = Py_None;
    Py_ssize_t limit;
    int has_dirs = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "SSSn|pO:Stdio", kwlist, &a, &e, &in, &limit,
                                     &has_dirs, &log))
        return -1;
    if (log != Py_None && Py_TYPE(log) != &LogBookType) {
        PyErr_SetString(PyExc_TypeError, "Stdio: log must be a LogBook or None");
        return -1;
    }
    if (log != Py_None) {
        char *err = PyMem_RawMalloc((size_t)atoll_book_max_line((LogBookObject *)log) + 1);
        if (err == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        PyMem_RawFree(self->err);
        self->err = err;
        self->err_len = 0;
        self->err_cut = 0;
        Py_INCREF(log);
    }
    Py_XSETREF(self->log, log == Py_None ? NULL : (LogBookObject *)log);
    if (limit < 0) {
        PyErr_SetString(PyExc_ValueError, "Stdio: stdout_limit must be >= 0");
        return -1;
    }
    Py_INCREF(a);
    Py_XSETREF(self->args, a);
    Py_INCREF(e);
    Py_XSETREF(self->env, e);
    Py_INCREF(in);
    Py_XSETREF(self->stdin_data, in);
    self->argc = count_nuls(a);
    self->envc = count_nuls(e);
    self->out_limit = (size_t)limit;
    self->has_dirs = has_dirs;
    return 0;
}

static void Stdio_dealloc(StdioObject *self) {
    Py_XDECREF(self->log);
    PyMem_RawFree(self->err);
    Py_XDECREF(self->args);
    Py_XDECREF(self->env);
    Py_XDECREF(self->stdin_data);
    PyMem_RawFree(self->out);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* append to stdout; no GIL needed. 0 ok, -1 out of memory */
static int out_append(StdioObject *o, const char *data, size_t n) {
    if (o->out_len + n > o->out_cap) {
        size_t cap = o->out_cap ? o->out_cap : 4096;
        while (cap < o->out_len + n)
            cap *= 2;
        char *grown = PyMem_RawRealloc(o->out, cap);
        if (grown == NULL)
            return -1;
        o->out = grown;
        o->out_cap = cap;
    }
    memcpy(o->out + o->out_len, data, n);
    o->out_len += n;
    return 0;
}

static PyObject *Stdio_stdout(StdioObject *self, PyObject *unused) {
    return PyBytes_FromStringAndSize(self->out ? self->out : "", (Py_ssize_t)self->out_len);
}

static PyObject *Stdio_write_stdout(StdioObject *self, PyObject *data) {
    Py_buffer view;
    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    int rc = out_append(self, view.buf, (size_t)view.len);
    PyBuffer_Release(&view);
    if (rc < 0)
        return PyErr_NoMemory();
    Py_RETURN_NONE;
}

/* ---- stderr to the log: WasiContext.log_output / flush_log, in C (no GIL) ---------- */

LogBookObject *atoll_stdio_log(StdioObject *o) { return o->log; }

/* Log the line written so far (at a newline, and when the run ends). */
static void err_flush(StdioObject *o) {
    char note[96];
    int note_len = 0;
    if (o->err_cut) {
        note_len = snprintf(note, sizeof note, "\xe2\x80\xa6 (cut at %zd bytes; %llu more dropped)",
                            atoll_book_max_line(o->log), o->err_cut);
        atoll_book_drop(o->log, 0, (long long)o->err_cut);
    }
    atoll_book_add_line(o->log, o->err, (uint32_t)o->err_len, note, (uint32_t)note_len);
    o->err_len = 0;
    o->err_cut = 0;
}

/* Add data to the log line by line: a line is kept up to max_line bytes, the rest of it
 * counted as dropped; once the log is full, lines are only counted. */
static void err_output(StdioObject *o, const uint8_t *data, size_t n) {
    LogBookObject *b = o->log;
    if (atoll_book_full(b)) {
        long long lines = 0;
        for (const uint8_t *p = data, *end = data + n; (p = memchr(p, '\n', (size_t)(end - p)));
             p++)
            lines++;
        atoll_book_drop(b, lines, (long long)(n + o->err_len + o->err_cut));
        o->err_len = 0;
        o->err_cut = 0;
        return;
    }
    size_t max_line = (size_t)atoll_book_max_line(b), start = 0;
    for (;;) {
        const uint8_t *nl = memchr(data + start, '\n', n - start);
        size_t end = nl != NULL ? (size_t)(nl - data) : n;
        size_t room = max_line - o->err_len, len = end - start;
        size_t take = len <= room ? len : room;
        memcpy(o->err + o->err_len, data + start, take);
        o->err_len += take;
        o->err_cut += len - take;
        if (nl == NULL)
            return;
        err_flush(o);
        start = end + 1;
    }
}

static PyObject *Stdio_log_output(StdioObject *self, PyObject *data) {
    Py_buffer view;
    if (self->log == NULL) {
        PyErr_SetString(PyExc_ValueError, "Stdio.log_output: this Stdio has no log");
        return NULL;
    }
    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    err_output(self, view.buf, (size_t)view.len);
    PyBuffer_Release(&view);
    if (atoll_book_collect(self->log) < 0) /* from Python: the list is up to date at once */
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *Stdio_flush_log(StdioObject *self, PyObject *unused) {
    if (self->log == NULL) {
        PyErr_SetString(PyExc_ValueError, "Stdio.flush_log: this Stdio has no log");
        return NULL;
    }
    err_flush(self);
    if (atoll_book_collect(self->log) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *Stdio_stderr_line(StdioObject *self, PyObject *unused) {
    return PyBytes_FromStringAndSize(self->err ? self->err : "", (Py_ssize_t)self->err_len);
}

static PyObject *Stdio_get_log(StdioObject *self, void *closure) {
    if (self->log == NULL)
        Py_RETURN_NONE;
    Py_INCREF(self->log);
    return (PyObject *)self->log;
}

static PyGetSetDef Stdio_getset[] = {
    {"log", (getter)Stdio_get_log, NULL,
     "the LogBook stderr goes to, line by line, in C (None: Python serves stderr)", NULL},
    {NULL},
};

static PyObject *Stdio_read_stdin(StdioObject *self, PyObject *arg) {
    Py_ssize_t n = PyLong_AsSsize_t(arg);
    if (n == -1 && PyErr_Occurred())
        return NULL;
    Py_ssize_t left = PyBytes_GET_SIZE(self->stdin_data) - self->stdin_pos;
    if (n < 0 || n > left)
        n = left < 0 ? 0 : left;
    PyObject *chunk =
        PyBytes_FromStringAndSize(PyBytes_AS_STRING(self->stdin_data) + self->stdin_pos, n);
    if (chunk != NULL)
        self->stdin_pos += n;
    return chunk;
}

static PyMethodDef Stdio_methods[] = {
    {"stdout", (PyCFunction)Stdio_stdout, METH_NOARGS, "the bytes written to stdout so far"},
    {"write_stdout", (PyCFunction)Stdio_write_stdout, METH_O, "append bytes to stdout"},
    {"read_stdin", (PyCFunction)Stdio_read_stdin, METH_O, "read up to n bytes of stdin"},
    {"log_output", (PyCFunction)Stdio_log_output, METH_O,
     "add bytes of stderr to the log (WasiContext.log_output's rules)"},
    {"flush_log", (PyCFunction)Stdio_flush_log, METH_NOARGS,
     "log the stderr line written so far (WasiContext.flush_log)"},
    {"stderr_line", (PyCFunction)Stdio_stderr_line, METH_NOARGS,
     "the stderr line written so far and not yet logged"},
    {NULL},
};

static PyMemberDef Stdio_members[] = {
    {"stdin_pos", T_PYSSIZET, offsetof(StdioObject, stdin_pos), 0, "bytes of stdin read"},
    {"stdout_size", T_PYSSIZET, offsetof(StdioObject, out_len), READONLY, "bytes of stdout"},
    {"exited", T_INT, offsetof(StdioObject, exited), 0,
     "proc_exit was called (cleared by whoever reports it)"},
    {"exit_code", T_UINT, offsetof(StdioObject, exit_code), READONLY, "proc_exit's code"},
    {"stderr_cut", T_ULONGLONG, offsetof(StdioObject, err_cut), READONLY,
     "bytes of the stderr line being written dropped past the line limit"},
    {NULL},
};

PyTypeObject StdioType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "atoll.runtime._native.Stdio",
    .tp_basicsize = sizeof(StdioObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Stdio(args, env, stdin, stdout_limit, has_dirs=False, log=None): WASI stdio "
              "served in C (stderr too, into the LogBook log, when one is given)",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Stdio_init,
    .tp_dealloc = (destructor)Stdio_dealloc,
    .tp_methods = Stdio_methods,
    .tp_members = Stdio_members,
    .tp_getset = Stdio_getset,
};

/* ---- WASI preview 1 functions served in C (no GIL) -------------------------- */

enum { E_SUCCESS = 0, E_BADF = 8, E_FAULT = 21, E_INVAL = 28, E_SPIPE = 70 };

/* What one call may ask of the host, as in preview1.py (docs/limits.md). */
#define WASI_IOV_MAX 1024          /* iovecs per fd_read/fd_write: more is EINVAL */
#define WASI_RANDOM_CHUNK 65536    /* random_get checks the CPU budget between chunks */
#define WASI_LOG_WRITE_MAX 65536   /* bytes one fd_write to the log takes (LOG_WRITE_MAX) */

typedef struct {
    uint8_t *base;
    size_t size;
} guest_mem;

static int guest_memory(void *caller, guest_mem *m) {
    wt_extern_t item;
    memset(&item, 0, sizeof(item));
    if (!W.caller_export_get(caller, "memory", 6, &item) || item.kind != WT_EXTERN_MEMORY)
        return -1;
    wt_context_t *ctx = W.caller_context(caller);
    m->base = W.memory_data(ctx, &item.of.memory);
    m->size = W.memory_data_size(ctx, &item.of.memory);
    return 0;
}

static inline int in_bounds(const guest_mem *m, uint64_t ptr, uint64_t len) {
    return ptr <= m->size && len <= m->size - ptr;
}

static inline void put_u32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); } /* little-endian host */
static inline void put_u64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }
static inline uint32_t get_u32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* A module called from Python (no Stdio on the meter): the Stdio of the request's default
 * WASI context (invocation.wasi_context(), made if need be, as preview1.context_for does),
 * when its stdout and stderr go to the log in C; else NULL (Python serves). Takes the GIL
 * once per outermost call that writes. */
static StdioObject *log_out(MeterObject *mt) {
    if (mt->out != NULL)
        return mt->out;
    if (mt->depth == 0 || mt->invocation == NULL)
        return NULL;
    PyGILState_STATE g = PyGILState_Ensure();
    PyObject *context = PyObject_CallMethod(mt->invocation, "wasi_context", NULL);
    PyObject *to_log = context ? PyObject_GetAttrString(context, "stdout_to_log") : NULL;
    PyObject *native = context ? PyObject_GetAttrString(context, "native") : NULL;
    if (to_log == Py_True && native != NULL && Py_TYPE(native) == &StdioType &&
        ((StdioObject *)native)->log != NULL) {
        Py_INCREF(native);
        mt->out = (StdioObject *)native;
    }
    if (PyErr_Occurred())
        PyErr_Clear(); /* Python serves the call, and says what is wrong */
    Py_XDECREF(native);
    Py_XDECREF(to_log);
    Py_XDECREF(context);
    PyGILState_Release(g);
    return mt->out;
}

/* The functions below get the Meter of the caller's store, and serve a CGI run (a Stdio
 * on the meter): without one, Python serves the call, except an iovec count over
 * WASI_IOV_MAX, refused first (a guest asking for millions of iovecs in a loop would
 * otherwise take the GIL per call for an EINVAL), and, for a module called from Python
 * (its request's default context, whose Stdio log_out finds), all but proc_exit: stdout
 * and stderr to the log, argv, environ, stdin, prestat, and the calls that need no state
 * of the run (clocks, random, sched_yield, stdio's fdstat, seek and close): a guest
 * looping on any of them takes no GIL per call. */
#define STDIO_OR_FALLBACK(o, mt)                                                               \
    StdioObject *o = (mt)->stdio;                                                             \
    if (o == NULL)                                                                             \
        return FALLBACK
/* for the calls that need no state of the run */
#define STDIO_OR_LOG_OUT(mt)                                                                   \
    if ((mt)->stdio == NULL && log_out(mt) == NULL)                                            \
        return FALLBACK
/* for those that read the run's argv, environment, stdin or grants: the default context's
 * Stdio holds them too (Invocation.wasi_context) */
#define STDIO_OR_LOG_OUT_STATE(o, mt)                                                          \
    StdioObject *o = (mt)->stdio != NULL ? (mt)->stdio : log_out(mt);                          \
    if (o == NULL)                                                                             \
        return FALLBACK

static inline void ret_i32(wt_val_raw_t *vals, int32_t v) {
    memset(&vals[0], 0, sizeof(vals[0]));
    vals[0].i32 = v;
}

static wt_trap_t *sizes(void *caller, wt_val_raw_t *vals, Py_ssize_t count, PyObject *blob) {
    guest_mem m;
    if (guest_memory(caller, &m) < 0)
        return FALLBACK;
    uint32_t count_ptr = (uint32_t)vals[0].i32, size_ptr = (uint32_t)vals[1].i32;
    if (!in_bounds(&m, count_ptr, 4) || !in_bounds(&m, size_ptr, 4)) {
        ret_i32(vals, E_FAULT);
        return NULL;
    }
    put_u32(m.base + count_ptr, (uint32_t)count);
    put_u32(m.base + size_ptr, (uint32_t)PyBytes_GET_SIZE(blob));
    ret_i32(vals, E_SUCCESS);
    return NULL;
}

static wt_trap_t *fill(void *caller, wt_val_raw_t *vals, Py_ssize_t count, PyObject *blob) {
    guest_mem m;
    if (guest_memory(caller, &m) < 0)
        return FALLBACK;
    uint32_t ptrs = (uint32_t)vals[0].i32, buf = (uint32_t)vals[1].i32;
    size_t len = (size_t)PyBytes_GET_SIZE(blob);
    if (!in_bounds(&m, ptrs, 4 * (uint64_t)count) || !in_bounds(&m, buf, len)) {
        ret_i32(vals, E_FAULT);
        return NULL;
    }
    const char *p = PyBytes_AS_STRING(blob);
    uint32_t at = buf; /* the pointers, then the strings (as the Python version) */
    for (Py_ssize_t i = 0; i < count; i++) {
        put_u32(m.base + ptrs + 4 * i, at);
        at += (uint32_t)strlen(p + (at - buf)) + 1;
    }
    memcpy(m.base + buf, p, len);
    ret_i32(vals, E_SUCCESS);
    return NULL;
}

static wt_trap_t *w_args_sizes_get(MeterObject *mt, void *c, wt_val_raw_t *v) {
    STDIO_OR_LOG_OUT_STATE(o, mt);
    return sizes(c, v, o->argc, o->args);
}
static wt_trap_t *w_args_get(MeterObject *mt, void *c, wt_val_raw_t *v) {
    STDIO_OR_LOG_OUT_STATE(o, mt);
    return fill(c, v, o->argc, o->args);
}
static wt_trap_t *w_environ_sizes_get(MeterObject *mt, void *c, wt_val_raw_t *v) {
    STDIO_OR_LOG_OUT_STATE(o, mt);
    return sizes(c, v, o->envc, o->env);
}
static wt_trap_t *w_environ_get(MeterObject *mt, void *c, wt_val_raw_t *v) {
    STDIO_OR_LOG_OUT_STATE(o, mt);
    return fill(c, v, o->envc, o->env);
}

/* fd_write(fd, iovs, count, nwritten): stdout within its limit, stderr to the log (with a
 * LogBook); without a Stdio, stdout and stderr to the log (log_out); else Python */
static wt_trap_t *w_fd_write(MeterObject *mt, void *caller, wt_val_raw_t *vals) {
    if ((uint32_t)vals[2].i32 > WASI_IOV_MAX) { /* first, for any fd (as preview1.py) */
        ret_i32(vals, E_INVAL);
        return NULL;
    }
    StdioObject *o = mt->stdio;
    int fd = vals[0].i32, to_log = fd == 2;
    if (o == NULL && (fd == 1 || fd == 2)) {
        o = log_out(mt);
        to_log = 1;
    }
    if (o == NULL || !(fd == 1 || (fd == 2 && o->log != NULL)))
        return FALLBACK;
    guest_mem m;
    if (guest_memory(caller, &m) < 0)
        return FALLBACK;
    uint32_t iovs = (uint32_t)vals[1].i32, count = (uint32_t)vals[2].i32;
    uint32_t nwritten = (uint32_t)vals[3].i32;
    if (!in_bounds(&m, iovs, 8 * (uint64_t)count) || !in_bounds(&m, nwritten, 4)) {
        ret_i32(vals, E_FAULT);
        return NULL;
    }
    uint64_t total = 0;
    for (uint32_t i = 0; i < count; i++) {
        uint32_t ptr = get_u32(m.base + iovs + 8 * i), len = get_u32(m.base + iovs + 8 * i + 4);
        if (!in_bounds(&m, ptr, len)) {
            ret_i32(vals, E_FAULT);
            return NULL;
        }
        total += len;
    }
    if (to_log) { /* at most WASI_LOG_WRITE_MAX bytes, a short write past it */
        uint32_t taken = 0;
        for (uint32_t i = 0; i < count && taken < WASI_LOG_WRITE_MAX; i++) {
            uint32_t ptr = get_u32(m.base + iovs + 8 * i), len = get_u32(m.base + iovs + 8 * i + 4);
            uint32_t n = len < WASI_LOG_WRITE_MAX - taken ? len : WASI_LOG_WRITE_MAX - taken;
            if (n)
                err_output(o, m.base + ptr, n);
            taken += n;
        }
        put_u32(m.base + nwritten, taken);
        ret_i32(vals, E_SUCCESS);
        return NULL;
    }
    if (o->out_len + total > o->out_limit)
        return FALLBACK; /* Python fails the request with the limit's message */
    for (uint32_t i = 0; i < count; i++) {
        uint32_t ptr = get_u32(m.base + iovs + 8 * i), len = get_u32(m.base + iovs + 8 * i + 4);
        if (out_append(o, (const char *)m.base + ptr, len) < 0)
            return FALLBACK;
    }
    put_u32(m.base + nwritten, (uint32_t)total);
    ret_i32(vals, E_SUCCESS);
    return NULL;
}

/* fd_read(0, iovs, count, nread): stdin */
static wt_trap_t *w_fd_read(MeterObject *mt, void *caller, wt_val_raw_t *vals) {
    if ((uint32_t)vals[2].i32 > WASI_IOV_MAX) { /* first, for any fd (as preview1.py) */
        ret_i32(vals, E_INVAL);
        return NULL;
    }
    if (vals[0].i32 != 0)
        return FALLBACK;
    StdioObject *o = mt->stdio != NULL ? mt->stdio : log_out(mt);
    if (o == NULL)
        return FALLBACK;
    guest_mem m;
    if (guest_memory(caller, &m) < 0)
        return FALLBACK;
    uint32_t iovs = (uint32_t)vals[1].i32, count = (uint32_t)vals[2].i32;
    uint32_t nread = (uint32_t)vals[3].i32;
    if (!in_bounds(&m, iovs, 8 * (uint64_t)count) || !in_bounds(&m, nread, 4)) {
        ret_i32(vals, E_FAULT);
        return NULL;
    }
    const char *src = PyBytes_AS_STRING(o->stdin_data);
    Py_ssize_t avail = PyBytes_GET_SIZE(o->stdin_data) - o->stdin_pos;
    uint64_t total = 0;
    for (uint32_t i = 0; i < count; i++) {
        uint32_t ptr = get_u32(m.base + iovs + 8 * i), len = get_u32(m.base + iovs + 8 * i + 4);
        if (!in_bounds(&m, ptr, len)) {
            ret_i32(vals, E_FAULT);
            return NULL;
        }
        size_t n = avail < 0 ? 0 : ((size_t)avail < len ? (size_t)avail : len);
        memcpy(m.base + ptr, src + o->stdin_pos, n);
        o->stdin_pos += (Py_ssize_t)n;
        avail -= (Py_ssize_t)n;
        total += n;
        if (n < len)
            break;
    }
    put_u32(m.base + nread, (uint32_t)total);
    ret_i32(vals, E_SUCCESS);
    return NULL;
}

#define ALL_RIGHTS ((1ULL << 30) - 1)
#define READ_RIGHTS                                                                              \
    (ALL_RIGHTS & ~((1ULL << 6) | (1ULL << 8) | (1ULL << 9) | (1ULL << 10) | (1ULL << 19) |      \
                    (1ULL << 22) | (1ULL << 26) | (1ULL << 25)))

/* fd_fdstat_get(fd, out) for stdio: character devices, as the Python version */
static wt_trap_t *w_fd_fdstat_get(MeterObject *mt, void *caller, wt_val_raw_t *vals) {
    STDIO_OR_LOG_OUT(mt);
    int32_t fd = vals[0].i32;
    if (fd < 0 || fd > 2)
        return FALLBACK;
    guest_mem m;
    if (guest_memory(caller, &m) < 0)
        return FALLBACK;
    uint32_t out = (uint32_t)vals[1].i32;
    if (!in_bounds(&m, out, 24)) {
        ret_i32(vals, E_FAULT);
        return NULL;
    }
    uint8_t *p = m.base + out;
    memset(p, 0, 24);
    p[0] = 2; /* FT_CHAR */
    uint16_t flags = fd ? 1 : 0; /* FD_APPEND for stdout/stderr */
    memcpy(p + 2, &flags, 2);
    put_u64(p + 8, fd ? ALL_RIGHTS : READ_RIGHTS);
    put_u64(p + 16, READ_RIGHTS);
    ret_i32(vals, E_SUCCESS);
    return NULL;
}

/* fd_prestat_get(fd, out): no folders granted -> no preopens */
static wt_trap_t *w_fd_prestat_get(MeterObject *mt, void *caller, wt_val_raw_t *vals) {
    STDIO_OR_LOG_OUT_STATE(o, mt);
    if (o->has_dirs)
        return FALLBACK;
    ret_i32(vals, E_BADF);
    return NULL;
}

/* clock_time_get(id, precision: i64, out) */
static wt_trap_t *w_clock_time_get(MeterObject *mt, void *caller, wt_val_raw_t *vals) {
    STDIO_OR_LOG_OUT(mt);
    static const clockid_t ids[] = {CLOCK_REALTIME, CLOCK_MONOTONIC, CLOCK_PROCESS_CPUTIME_ID,
                                    CLOCK_THREAD_CPUTIME_ID};
    int32_t id = vals[0].i32;
    if (id < 0 || id > 3) {
        ret_i32(vals, E_INVAL);
        return NULL;
    }
    guest_mem m;
    if (guest_memory(caller, &m) < 0)
        return FALLBACK;
    uint32_t out = (uint32_t)vals[2].i32;
    if (!in_bounds(&m, out, 8)) {
        ret_i32(vals, E_FAULT);
        return NULL;
    }
    struct timespec ts;
    clock_gettime(ids[id], &ts);
    put_u64(m.base + out, (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec);
    ret_i32(vals, E_SUCCESS);
    return NULL;
}

/* random_get(buf, len) */
static wt_trap_t *w_random_get(MeterObject *mt, void *caller, wt_val_raw_t *vals) {
    STDIO_OR_LOG_OUT(mt);
    guest_mem m;
    if (guest_memory(caller, &m) < 0)
        return FALLBACK;
    uint32_t buf = (uint32_t)vals[0].i32, len = (uint32_t)vals[1].i32;
    if (!in_bounds(&m, buf, len)) {
        ret_i32(vals, E_FAULT);
        return NULL;
    }
    MeterObject *meter = mt;
    size_t done = 0;
    while (done < len) {
        if (done % WASI_RANDOM_CHUNK == 0 && done != 0 && meter_spent(meter))
            return W.trap_new(INTERRUPT_MARKER, sizeof(INTERRUPT_MARKER) - 1);
        size_t want = len - done;
        size_t step = WASI_RANDOM_CHUNK - done % WASI_RANDOM_CHUNK;
        ssize_t n = getrandom(m.base + buf + done, want < step ? want : step, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return FALLBACK;
        }
        done += (size_t)n;
    }
    ret_i32(vals, E_SUCCESS);
    return NULL;
}

/* proc_exit(code): the run is over; the caller turns the trap into ProcExit */
static wt_trap_t *w_proc_exit(MeterObject *mt, void *caller, wt_val_raw_t *vals) {
    STDIO_OR_FALLBACK(o, mt);
    char msg[48];
    o->exited = 1;
    o->exit_code = (uint32_t)vals[0].i32; /* WASI's exitcode is a u32 */
    int n = snprintf(msg, sizeof msg, "proc_exit(%u)", o->exit_code);
    return W.trap_new(msg, (size_t)n);
}

/* fd_close(fd) on stdio: nothing to do (as the Python version) */
static wt_trap_t *w_fd_close(MeterObject *mt, void *caller, wt_val_raw_t *vals) {
    STDIO_OR_LOG_OUT(mt);
    if (vals[0].i32 < 0 || vals[0].i32 > 2)
        return FALLBACK;
    ret_i32(vals, E_SUCCESS);
    return NULL;
}

/* fd_seek(fd, offset, whence, out) on stdio: not seekable */
static wt_trap_t *w_fd_seek(MeterObject *mt, void *caller, wt_val_raw_t *vals) {
    STDIO_OR_LOG_OUT(mt);
    if (vals[0].i32 < 0 || vals[0].i32 > 2)
        return FALLBACK;
    ret_i32(vals, E_SPIPE);
    return NULL;
}

static wt_trap_t *w_sched_yield(MeterObject *mt, void *caller, wt_val_raw_t *vals) {
    STDIO_OR_LOG_OUT(mt);
    ret_i32(vals, E_SUCCESS);
    return NULL;
}

/* The functions served here, in the order of wasi_names(): X(name) for w_<name>. */
#define NATIVE_WASI(X)                                                                          \
    X(args_sizes_get) X(args_get) X(environ_sizes_get) X(environ_get) X(fd_write) X(fd_read)    \
    X(fd_fdstat_get) X(fd_prestat_get) X(clock_time_get) X(random_get) X(proc_exit)           \
    X(sched_yield) X(fd_close) X(fd_seek)

static const native_host_fn WASI_FNS[] = {
#define WASI_FN(name) w_##name,
    NATIVE_WASI(WASI_FN)
#undef WASI_FN
};
static const char *const WASI_NAMES[] = {
#define WASI_NAME(name) #name,
    NATIVE_WASI(WASI_NAME)
#undef WASI_NAME
};
#define WASI_COUNT ((int)(sizeof(WASI_FNS) / sizeof(WASI_FNS[0])))
_Static_assert(sizeof(WASI_FNS) / sizeof(WASI_FNS[0]) == sizeof(WASI_NAMES) / sizeof(WASI_NAMES[0]),
               "one name per WASI function served in C");

int atoll_wasi_count(void) { return WASI_COUNT; }

native_host_fn atoll_wasi_fn(int index) {
    return index >= 1 && index <= WASI_COUNT ? WASI_FNS[index - 1] : NULL;
}

PyObject *atoll_wasi_names(PyObject *mod, PyObject *unused) {
    PyObject *t = PyTuple_New(WASI_COUNT);
    if (t == NULL)
        return NULL;
    for (int i = 0; i < WASI_COUNT; i++) {
        PyObject *n = PyUnicode_FromString(WASI_NAMES[i]);
        if (n == NULL) {
            Py_DECREF(t);
            return NULL;
        }
        PyTuple_SET_ITEM(t, i, n);
    }
    return t;
}
