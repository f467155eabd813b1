/*
 * atoll.runtime._native: the hot paths into wasmtime's C API, compiled.
 *
 * ctypes costs about a microsecond per foreign call and several per callback;
 * a request that instantiates a module, calls an export and serves a WASI
 * program crosses that line dozens of times. This module makes those
 * crossings C-to-C:
 *
 *   Sig / Bound      call an export (wasmtime_func_call_unchecked) with Python
 *                    numbers; Bound also charges the request's CPU budget
 *   Meter            a store's epoch-deadline callback in C: keep running while
 *                    the *thread CPU time* of this call is under its allowance
 *   instantiate      wasmtime_instance_pre_instantiate under a Meter
 *   export_get       wasmtime_instance_export_get of one export
 *   define_host      a Python host function behind a C trampoline
 *   caller_memory    (address, length) of the calling instance's memory
 *   Ticker           the engine's epoch ticker as a native thread (no GIL)
 *
 * It links against nothing: atoll.runtime.capi passes the addresses of the C
 * functions it needs (from wasmtime-py's own libwasmtime) to init(). The
 * struct layouts below are those of wasmtime 50.0.1 (capi.WASMTIME_VERSION),
 * checked against wasmtime-py's ctypes definitions at import (capi.py).
 *
 * The GIL is released while wasm runs; host functions and finalizers take it
 * back with PyGILState_Ensure.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

/* ---- wasmtime 50.0.1 layouts ------------------------------------------- */

typedef struct { uint64_t store_id; void *priv; } wt_func_t;                 /* 16 */
typedef struct { uint64_t store_id; size_t priv; } wt_instance_t;           /* 16 */
typedef struct { uint64_t store_id; uint32_t priv1; uint32_t priv2; } wt_memory_t; /* 24 w/ pad */
typedef union {
    int32_t i32; int64_t i64; float f32; double f64; uint8_t v128[16];
} wt_val_raw_t;                                                              /* 16 */
typedef struct {
    uint8_t kind;
    union { wt_func_t func; wt_memory_t memory; uint8_t pad[24]; } of;
} wt_extern_t;                                                               /* 32 */

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
typedef void (*fn_store_limiter)(void *store, int64_t memory_size, int64_t table_elements,
                                 int64_t instances, int64_t tables, int64_t memories);
typedef wt_error_t *(*fn_linker_define_func_unchecked)(void *linker, const char *, size_t,
                                                        const char *, size_t, const void *functype,
                                                        host_cb, void *env, void (*)(void *));

static struct {
    fn_func_call_unchecked func_call_unchecked;
    fn_set_epoch_deadline set_epoch_deadline;
    fn_store_epoch_deadline_callback store_epoch_deadline_callback;
    fn_error_new error_new;
    fn_instance_pre_instantiate instance_pre_instantiate;
    fn_instance_export_get instance_export_get;
    fn_engine_increment_epoch engine_increment_epoch;
    fn_caller_export_get caller_export_get;
    fn_caller_context caller_context;
    fn_memory_data memory_data;
    fn_memory_data_size memory_data_size;
    fn_trap_new trap_new;
    fn_linker_define_func_unchecked linker_define_func_unchecked;
    fn_store_new store_new;
    fn_store_context store_context;
    fn_store_limiter store_limiter;
    fn_store_delete store_delete;
} W;

static int initialized = 0;

static const char *const W_NAMES[] = {
    "wasmtime_func_call_unchecked",
    "wasmtime_context_set_epoch_deadline",
    "wasmtime_store_epoch_deadline_callback",
    "wasmtime_error_new",
    "wasmtime_instance_pre_instantiate",
    "wasmtime_instance_export_get",
    "wasmtime_engine_increment_epoch",
    "wasmtime_caller_export_get",
    "wasmtime_caller_context",
    "wasmtime_memory_data",
    "wasmtime_memory_data_size",
    "wasmtime_trap_new",
    "wasmtime_linker_define_func_unchecked",
    "wasmtime_store_new",
    "wasmtime_store_context",
    "wasmtime_store_limiter",
    "wasmtime_store_delete",
};
#define W_COUNT (sizeof(W_NAMES) / sizeof(W_NAMES[0]))

#define INTERRUPT_MARKER "atoll: interrupted by epoch deadline callback"

static PyObject *CallFailed;   /* args: (error address, trap address) */
static PyObject *BudgetSpent;  /* the request's CPU budget is used up */
static PyObject *str_budget;   /* "cpu_budget_ns" */
static PyObject *str_used;     /* "cpu_used_ns" */

static inline int64_t thread_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static inline int64_t monotonic_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int need_init(void) {
    if (!initialized) {
        PyErr_SetString(PyExc_RuntimeError, "atoll.runtime._native.init() was not called");
        return -1;
    }
    return 0;
}

static void *addr_of(PyObject *o) { return PyLong_AsVoidPtr(o); }

/* ---- init --------------------------------------------------------------- */

static PyObject *native_init(PyObject *self, PyObject *addresses) {
    if (!PyDict_Check(addresses)) {
        PyErr_SetString(PyExc_TypeError, "init() takes a dict of C function addresses");
        return NULL;
    }
    void *table[W_COUNT];
    for (size_t i = 0; i < W_COUNT; i++) {
        PyObject *value = PyDict_GetItemString(addresses, W_NAMES[i]);
        if (value == NULL) {
            PyErr_Format(PyExc_KeyError, "init(): no address for %s", W_NAMES[i]);
            return NULL;
        }
        table[i] = PyLong_AsVoidPtr(value);
        if (table[i] == NULL) {
            if (!PyErr_Occurred())
                PyErr_Format(PyExc_ValueError, "init(): NULL address for %s", W_NAMES[i]);
            return NULL;
        }
    }
    memcpy(&W, table, sizeof(W));
    initialized = 1;
    Py_RETURN_NONE;
}

/* ---- argument packing ---------------------------------------------------- */

/* kinds: 'i' i32, 'I' i64, 'f' f32, 'd' f64 */

static int kind_ok(char k) { return k == 'i' || k == 'I' || k == 'f' || k == 'd'; }

static const char *kind_name(char k) {
    switch (k) {
    case 'i': return "i32";
    case 'I': return "i64";
    case 'f': return "f32";
    default: return "f64";
    }
}

static int pack_one(PyObject *name, Py_ssize_t index, char kind, PyObject *v, wt_val_raw_t *slot) {
    if (kind == 'i' || kind == 'I') {
        PyObject *n = PyNumber_Index(v);
        if (n == NULL) {
            PyErr_Clear();
            PyErr_Format(PyExc_TypeError, "export %R argument %zd: expected int for %s, got %s",
                         name, index, kind_name(kind), Py_TYPE(v)->tp_name);
            return -1;
        }
        int overflow = 0;
        long long x = PyLong_AsLongLongAndOverflow(n, &overflow);
        if (overflow == 0 && x == -1 && PyErr_Occurred()) {
            Py_DECREF(n);
            return -1;
        }
        if (kind == 'i') {
            if (overflow != 0 || x < -2147483648LL || x > 4294967295LL) {
                PyErr_Format(PyExc_ValueError,
                             "export %R argument %zd: %S out of range for i32 [-2147483648, 4294967295]",
                             name, index, n);
                Py_DECREF(n);
                return -1;
            }
            slot->i64 = 0;
            slot->i32 = (int32_t)(uint32_t)(x & 0xFFFFFFFFLL);
        } else {
            if (overflow > 0) {
                unsigned long long u = PyLong_AsUnsignedLongLong(n);
                if (u == (unsigned long long)-1 && PyErr_Occurred()) {
                    PyErr_Clear();
                    PyErr_Format(PyExc_ValueError,
                                 "export %R argument %zd: %S out of range for i64 "
                                 "[-9223372036854775808, 18446744073709551615]",
                                 name, index, n);
                    Py_DECREF(n);
                    return -1;
                }
                slot->i64 = (int64_t)u;
            } else if (overflow < 0) {
                PyErr_Format(PyExc_ValueError,
                             "export %R argument %zd: %S out of range for i64 "
                             "[-9223372036854775808, 18446744073709551615]",
                             name, index, n);
                Py_DECREF(n);
                return -1;
            } else {
                slot->i64 = x;
            }
        }
        Py_DECREF(n);
        return 0;
    }
    /* f32 / f64: ints and floats (anything with __float__), not str/bytes */
    double d;
    if (PyFloat_CheckExact(v)) {
        d = PyFloat_AS_DOUBLE(v);
    } else {
        if (PyUnicode_Check(v) || PyBytes_Check(v) || PyByteArray_Check(v) ||
            (Py_TYPE(v)->tp_as_number == NULL) ||
            (Py_TYPE(v)->tp_as_number->nb_float == NULL && Py_TYPE(v)->tp_as_number->nb_index == NULL)) {
            PyErr_Format(PyExc_TypeError, "export %R argument %zd: expected float for %s, got %s",
                         name, index, kind_name(kind), Py_TYPE(v)->tp_name);
            return -1;
        }
        d = PyFloat_AsDouble(v);
        if (d == -1.0 && PyErr_Occurred()) {
            if (PyErr_ExceptionMatches(PyExc_OverflowError)) {
                PyErr_Clear();
                PyErr_Format(PyExc_ValueError, "export %R argument %zd: %S out of range for %s",
                             name, index, v, kind_name(kind));
            }
            return -1;
        }
    }
    memset(slot, 0, sizeof(*slot));
    if (kind == 'f')
        slot->f32 = (float)d;
    else
        slot->f64 = d;
    return 0;
}

static PyObject *unpack_one(char kind, const wt_val_raw_t *slot) {
    switch (kind) {
    case 'i': return PyLong_FromLong(slot->i32);
    case 'I': return PyLong_FromLongLong(slot->i64);
    case 'f': return PyFloat_FromDouble(slot->f32);
    default: return PyFloat_FromDouble(slot->f64);
    }
}

/* ---- Sig: one export signature ------------------------------------------ */

#define MAX_SLOTS 64

typedef struct {
    PyObject_HEAD
    PyObject *name;          /* str, for messages */
    char params[MAX_SLOTS];
    char results[MAX_SLOTS];
    Py_ssize_t nparams, nresults, nslots;
} SigObject;

static PyTypeObject SigType;

static int parse_kinds(PyObject *b, char *out, Py_ssize_t *n, const char *what) {
    char *s;
    Py_ssize_t len;
    if (PyBytes_AsStringAndSize(b, &s, &len) < 0)
        return -1;
    if (len > MAX_SLOTS) {
        PyErr_Format(PyExc_ValueError, "Sig: more than %d %s", MAX_SLOTS, what);
        return -1;
    }
    for (Py_ssize_t i = 0; i < len; i++) {
        if (!kind_ok(s[i])) {
            PyErr_Format(PyExc_ValueError, "Sig: bad kind %c in %s (use i I f d)", s[i], what);
            return -1;
        }
        out[i] = s[i];
    }
    *n = len;
    return 0;
}

static int Sig_init(SigObject *self, PyObject *args, PyObject *kw) {
    PyObject *params, *results, *name;
    if (!PyArg_ParseTuple(args, "SSU:Sig", &params, &results, &name))
        return -1;
    if (parse_kinds(params, self->params, &self->nparams, "params") < 0 ||
        parse_kinds(results, self->results, &self->nresults, "results") < 0)
        return -1;
    self->nslots = self->nparams > self->nresults ? self->nparams : self->nresults;
    Py_INCREF(name);
    Py_XSETREF(self->name, name);
    return 0;
}

static void Sig_dealloc(SigObject *self) {
    Py_XDECREF(self->name);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int pack_args(SigObject *sig, PyObject *const *args, Py_ssize_t nargs, wt_val_raw_t *vals) {
    if (nargs != sig->nparams) {
        PyErr_Format(PyExc_TypeError, "export %R takes %zd argument(s), %zd given", sig->name,
                     sig->nparams, nargs);
        return -1;
    }
    for (Py_ssize_t i = 0; i < nargs; i++)
        if (pack_one(sig->name, i, sig->params[i], args[i], &vals[i]) < 0)
            return -1;
    return 0;
}

static PyObject *results_of(SigObject *sig, const wt_val_raw_t *vals) {
    if (sig->nresults == 0)
        Py_RETURN_NONE;
    if (sig->nresults == 1)
        return unpack_one(sig->results[0], &vals[0]);
    PyObject *t = PyTuple_New(sig->nresults);
    if (t == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < sig->nresults; i++) {
        PyObject *v = unpack_one(sig->results[i], &vals[i]);
        if (v == NULL) {
            Py_DECREF(t);
            return NULL;
        }
        PyTuple_SET_ITEM(t, i, v);
    }
    return t;
}

static PyObject *raise_failed(wt_error_t *err, wt_trap_t *trap) {
    PyObject *e = PyLong_FromVoidPtr(err), *t = PyLong_FromVoidPtr(trap);
    if (e && t) {
        PyObject *a = PyTuple_Pack(2, e, t);
        if (a) {
            PyErr_SetObject(CallFailed, a);
            Py_DECREF(a);
        }
    }
    Py_XDECREF(e);
    Py_XDECREF(t);
    return NULL;
}

/* Sig.call(ctx, store_id, func_private, *args): no budget, no deadline. */
static PyObject *Sig_call(SigObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (need_init() < 0)
        return NULL;
    if (nargs < 3) {
        PyErr_SetString(PyExc_TypeError, "Sig.call(ctx, store_id, func_private, *args)");
        return NULL;
    }
    wt_context_t *ctx = addr_of(args[0]);
    wt_func_t func;
    func.store_id = PyLong_AsUnsignedLongLong(args[1]);
    func.priv = addr_of(args[2]);
    if (PyErr_Occurred())
        return NULL;
    wt_val_raw_t vals[MAX_SLOTS];
    if (pack_args(self, args + 3, nargs - 3, vals) < 0)
        return NULL;
    wt_trap_t *trap = NULL;
    wt_error_t *err;
    Py_BEGIN_ALLOW_THREADS
    err = W.func_call_unchecked(ctx, &func, vals, (size_t)self->nslots, &trap);
    Py_END_ALLOW_THREADS
    if (err != NULL || trap != NULL)
        return raise_failed(err, trap);
    return results_of(self, vals);
}

static PyMethodDef Sig_methods[] = {
    {"call", (PyCFunction)(void (*)(void))Sig_call, METH_FASTCALL,
     "call(ctx, store_id, func_private, *args): call a function of this signature"},
    {NULL},
};

static PyMemberDef Sig_members[] = {
    {"name", T_OBJECT, offsetof(SigObject, name), READONLY, "the export's name"},
    {NULL},
};

static PyTypeObject SigType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "atoll.runtime._native.Sig",
    .tp_basicsize = sizeof(SigObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Sig(params: bytes, results: bytes, name: str): an export's signature (i I f d)",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Sig_init,
    .tp_dealloc = (destructor)Sig_dealloc,
    .tp_methods = Sig_methods,
    .tp_members = Sig_members,
};

/* ---- Meter: a store's CPU allowance, checked at each epoch deadline ----- */

typedef struct {
    PyObject_HEAD
    long long start_ns;   /* thread CPU time when the current call began */
    long long allow_ns;   /* CPU it may use */
    long long tick_ns;    /* epoch tick period */
    int installed;
} MeterObject;

static PyTypeObject MeterType;

static wt_error_t *meter_on_deadline(wt_context_t *ctx, void *data, uint64_t *delta, uint8_t *kind) {
    (void)ctx;
    MeterObject *m = (MeterObject *)data;
    int64_t left = m->allow_ns - (thread_ns() - m->start_ns);
    if (left <= 0)
        return W.error_new(INTERRUPT_MARKER);
    uint64_t ticks = (uint64_t)((left + m->tick_ns - 1) / m->tick_ns);
    *delta = ticks < 1 ? 1 : ticks;
    *kind = WT_UPDATE_DEADLINE_CONTINUE;
    return NULL;
}

static void meter_release(void *data) {
    /* wasmtime drops the callback with its store, possibly without the GIL. */
    if (!Py_IsInitialized())
        return;
    PyGILState_STATE g = PyGILState_Ensure();
    Py_DECREF((PyObject *)data);
    PyGILState_Release(g);
}

static int Meter_init(MeterObject *self, PyObject *args, PyObject *kw) {
    long long tick = 1000000;
    if (!PyArg_ParseTuple(args, "|L:Meter", &tick))
        return -1;
    if (tick <= 0) {
        PyErr_SetString(PyExc_ValueError, "Meter: tick_ns must be positive");
        return -1;
    }
    self->tick_ns = tick;
    return 0;
}

/* Meter.install(store_address): this meter decides at the store's deadlines. */
static PyObject *Meter_install(MeterObject *self, PyObject *store) {
    if (need_init() < 0)
        return NULL;
    void *ptr = addr_of(store);
    if (ptr == NULL) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "Meter.install: NULL store");
        return NULL;
    }
    Py_INCREF(self); /* released by meter_release when the store drops the callback */
    W.store_epoch_deadline_callback(ptr, meter_on_deadline, self, meter_release);
    self->installed = 1;
    Py_RETURN_NONE;
}

/* Meter.begin(allow_ns) -> start: record the start of a call allowed allow_ns of CPU. */
static PyObject *Meter_begin(MeterObject *self, PyObject *allow) {
    long long a = PyLong_AsLongLong(allow);
    if (a == -1 && PyErr_Occurred())
        return NULL;
    self->allow_ns = a;
    self->start_ns = thread_ns();
    return PyLong_FromLongLong(self->start_ns);
}

static PyMethodDef Meter_methods[] = {
    {"install", (PyCFunction)Meter_install, METH_O,
     "install(store_address): check this meter at each epoch deadline of that store"},
    {"begin", (PyCFunction)Meter_begin, METH_O,
     "begin(allow_ns) -> start_ns: a call starts now, allowed allow_ns of thread CPU"},
    {NULL},
};

static PyMemberDef Meter_members[] = {
    {"start_ns", T_LONGLONG, offsetof(MeterObject, start_ns), 0, "thread CPU ns at call start"},
    {"allow_ns", T_LONGLONG, offsetof(MeterObject, allow_ns), 0, "thread CPU ns the call may use"},
    {"tick_ns", T_LONGLONG, offsetof(MeterObject, tick_ns), READONLY, "epoch tick period"},
    {NULL},
};

static PyTypeObject MeterType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "atoll.runtime._native.Meter",
    .tp_basicsize = sizeof(MeterObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Meter(tick_ns=1_000_000): a store's CPU allowance, enforced at epoch deadlines",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Meter_init,
    .tp_methods = Meter_methods,
    .tp_members = Meter_members,
};

/* ---- budget: read and charge an invocation's cpu_budget_ns / cpu_used_ns ---- */

static int budget_left(PyObject *inv, long long *left) {
    PyObject *b = PyObject_GetAttr(inv, str_budget);
    if (b == NULL)
        return -1;
    PyObject *u = PyObject_GetAttr(inv, str_used);
    if (u == NULL) {
        Py_DECREF(b);
        return -1;
    }
    long long budget = PyLong_AsLongLong(b), used = PyLong_AsLongLong(u);
    Py_DECREF(b);
    Py_DECREF(u);
    if (PyErr_Occurred())
        return -1;
    *left = budget - used;
    if (*left <= 0) {
        PyErr_SetNone(BudgetSpent);
        return -1;
    }
    return 0;
}

static int charge(PyObject *inv, int64_t ns) {
    /* re-read: a host function may have charged nested calls meanwhile */
    PyObject *et, *ev, *etb;
    PyErr_Fetch(&et, &ev, &etb);
    PyObject *u = PyObject_GetAttr(inv, str_used);
    int rc = -1;
    if (u != NULL) {
        long long used = PyLong_AsLongLong(u);
        Py_DECREF(u);
        if (!(used == -1 && PyErr_Occurred())) {
            PyObject *n = PyLong_FromLongLong(used + ns);
            if (n != NULL) {
                rc = PyObject_SetAttr(inv, str_used, n);
                Py_DECREF(n);
            }
        }
    }
    if (et != NULL) {
        if (rc < 0)
            PyErr_Clear();
        PyErr_Restore(et, ev, etb);
    }
    return rc;
}

static void arm(MeterObject *m, wt_context_t *ctx, long long left) {
    W.set_epoch_deadline(ctx, (uint64_t)((left + m->tick_ns - 1) / m->tick_ns) + 1);
    m->allow_ns = left;
}

/* ---- Bound: one export of one instance, charged to a request ------------ */

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    SigObject *sig;
    MeterObject *meter;
    wt_context_t *ctx;
    wt_func_t func;
} BoundObject;

static PyTypeObject BoundType;

/* bound(invocation, *args): budget check, deadline, call, CPU charged. */
static PyObject *Bound_vectorcall(BoundObject *self, PyObject *const *args, size_t nargsf,
                                  PyObject *kwnames) {
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (kwnames != NULL && PyTuple_GET_SIZE(kwnames) > 0) {
        PyErr_SetString(PyExc_TypeError, "wasm exports take positional arguments only");
        return NULL;
    }
    if (nargs < 1) {
        PyErr_SetString(PyExc_TypeError, "Bound(invocation, *args)");
        return NULL;
    }
    SigObject *sig = self->sig;
    wt_val_raw_t vals[MAX_SLOTS];
    if (pack_args(sig, args + 1, nargs - 1, vals) < 0)
        return NULL;
    PyObject *inv = args[0];
    long long left;
    if (budget_left(inv, &left) < 0)
        return NULL;
    MeterObject *m = self->meter;
    arm(m, self->ctx, left);
    int64_t start = thread_ns();
    m->start_ns = start;
    wt_trap_t *trap = NULL;
    wt_error_t *err;
    Py_BEGIN_ALLOW_THREADS
    err = W.func_call_unchecked(self->ctx, &self->func, vals, (size_t)sig->nslots, &trap);
    Py_END_ALLOW_THREADS
    if (charge(inv, thread_ns() - start) < 0) {
        if (err == NULL && trap == NULL)
            return NULL;
        PyErr_Clear();
    }
    if (err != NULL || trap != NULL)
        return raise_failed(err, trap);
    return results_of(sig, vals);
}

static PyObject *Bound_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
    SigObject *sig;
    MeterObject *meter;
    PyObject *ctx, *store_id, *priv;
    if (!PyArg_ParseTuple(args, "O!O!OOO:Bound", &SigType, &sig, &MeterType, &meter, &ctx, &store_id,
                          &priv))
        return NULL;
    BoundObject *self = (BoundObject *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->vectorcall = (vectorcallfunc)Bound_vectorcall;
    self->ctx = addr_of(ctx);
    self->func.store_id = PyLong_AsUnsignedLongLong(store_id);
    self->func.priv = addr_of(priv);
    if (PyErr_Occurred()) {
        Py_DECREF(self);
        return NULL;
    }
    Py_INCREF(sig);
    self->sig = sig;
    Py_INCREF(meter);
    self->meter = meter;
    return (PyObject *)self;
}

static void Bound_dealloc(BoundObject *self) {
    Py_XDECREF(self->sig);
    Py_XDECREF(self->meter);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMemberDef Bound_members[] = {
    {"sig", T_OBJECT, offsetof(BoundObject, sig), READONLY, "the export's signature"},
    {NULL},
};

static PyTypeObject BoundType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "atoll.runtime._native.Bound",
    .tp_basicsize = sizeof(BoundObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = "Bound(sig, meter, ctx, store_id, func_private): call as bound(invocation, *args)",
    .tp_new = Bound_new,
    .tp_dealloc = (destructor)Bound_dealloc,
    .tp_vectorcall_offset = offsetof(BoundObject, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_members = Bound_members,
};

/* ---- stores ---------------------------------------------------------------- */

/* new_store(engine, memory_size, instances, tables, memories, meter) -> (store, ctx)
 * wasmtime_store_new + its limits + the meter as its epoch-deadline callback. */
static PyObject *native_new_store(PyObject *mod, PyObject *const *args, Py_ssize_t nargs) {
    if (need_init() < 0)
        return NULL;
    if (nargs != 6 || !PyObject_TypeCheck(args[5], &MeterType)) {
        PyErr_SetString(PyExc_TypeError,
                        "new_store(engine, memory_size, instances, tables, memories, meter)");
        return NULL;
    }
    void *engine = addr_of(args[0]);
    long long limits[4];
    for (int i = 0; i < 4; i++) {
        limits[i] = PyLong_AsLongLong(args[1 + i]);
        if (limits[i] == -1 && PyErr_Occurred())
            return NULL;
    }
    if (engine == NULL) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "new_store: NULL engine");
        return NULL;
    }
    MeterObject *meter = (MeterObject *)args[5];
    void *store = W.store_new(engine, NULL, NULL);
    if (store == NULL)
        return PyErr_NoMemory();
    W.store_limiter(store, limits[0], -1, limits[1], limits[2], limits[3]);
    Py_INCREF(meter); /* released by meter_release when the store drops the callback */
    W.store_epoch_deadline_callback(store, meter_on_deadline, meter, meter_release);
    meter->installed = 1;
    wt_context_t *ctx = W.store_context(store);
    return Py_BuildValue("(KK)", (unsigned long long)(uintptr_t)store,
                         (unsigned long long)(uintptr_t)ctx);
}

/* store_delete(store): wasmtime_store_delete (instances, memories back to the pool) */
static PyObject *native_store_delete(PyObject *mod, PyObject *store) {
    if (need_init() < 0)
        return NULL;
    void *ptr = addr_of(store);
    if (ptr == NULL) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "store_delete: NULL store");
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    W.store_delete(ptr);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

/* ---- instantiate and exports ------------------------------------------- */

/* instantiate(meter, invocation, pre, ctx) -> (store_id, index) */
static PyObject *native_instantiate(PyObject *mod, PyObject *const *args, Py_ssize_t nargs) {
    if (need_init() < 0)
        return NULL;
    if (nargs != 4 || !PyObject_TypeCheck(args[0], &MeterType)) {
        PyErr_SetString(PyExc_TypeError, "instantiate(meter, invocation, pre, ctx)");
        return NULL;
    }
    MeterObject *m = (MeterObject *)args[0];
    PyObject *inv = args[1];
    void *pre = addr_of(args[2]);
    wt_context_t *ctx = addr_of(args[3]);
    if (PyErr_Occurred())
        return NULL;
    long long left;
    if (budget_left(inv, &left) < 0)
        return NULL;
    arm(m, ctx, left);
    int64_t start = thread_ns();
    m->start_ns = start;
    wt_instance_t inst = {0, 0};
    wt_trap_t *trap = NULL;
    wt_error_t *err;
    Py_BEGIN_ALLOW_THREADS
    err = W.instance_pre_instantiate(pre, ctx, &inst, &trap);
    Py_END_ALLOW_THREADS
    if (charge(inv, thread_ns() - start) < 0) {
        if (err == NULL && trap == NULL)
            return NULL;
        PyErr_Clear();
    }
    if (err != NULL || trap != NULL)
        return raise_failed(err, trap);
    return Py_BuildValue("(KK)", (unsigned long long)inst.store_id, (unsigned long long)inst.priv);
}

static PyObject *extern_tuple(const wt_extern_t *item) {
    if (item->kind == WT_EXTERN_FUNC)
        return Py_BuildValue("(iKK)", (int)item->kind, (unsigned long long)item->of.func.store_id,
                             (unsigned long long)(uintptr_t)item->of.func.priv);
    if (item->kind == WT_EXTERN_MEMORY)
        return Py_BuildValue("(iKII)", (int)item->kind, (unsigned long long)item->of.memory.store_id,
                             item->of.memory.priv1, item->of.memory.priv2);
    return Py_BuildValue("(i)", (int)item->kind);
}

/* export_get(ctx, store_id, index, name: bytes) -> (kind, ...) or None */
static PyObject *native_export_get(PyObject *mod, PyObject *const *args, Py_ssize_t nargs) {
    if (need_init() < 0)
        return NULL;
    if (nargs != 4 || !PyBytes_Check(args[3])) {
        PyErr_SetString(PyExc_TypeError, "export_get(ctx, store_id, index, name: bytes)");
        return NULL;
    }
    wt_context_t *ctx = addr_of(args[0]);
    wt_instance_t inst;
    inst.store_id = PyLong_AsUnsignedLongLong(args[1]);
    inst.priv = (size_t)PyLong_AsSize_t(args[2]);
    if (PyErr_Occurred())
        return NULL;
    wt_extern_t item;
    memset(&item, 0, sizeof(item));
    if (!W.instance_export_get(ctx, &inst, PyBytes_AS_STRING(args[3]),
                               (size_t)PyBytes_GET_SIZE(args[3]), &item))
        Py_RETURN_NONE;
    return extern_tuple(&item);
}

/* caller_memory(caller, name: bytes) -> (address, length); (0, 0) without that memory */
static PyObject *native_caller_memory(PyObject *mod, PyObject *const *args, Py_ssize_t nargs) {
    if (need_init() < 0)
        return NULL;
    if (nargs != 2 || !PyBytes_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "caller_memory(caller, name: bytes)");
        return NULL;
    }
    void *caller = addr_of(args[0]);
    if (caller == NULL) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "caller_memory: NULL caller");
        return NULL;
    }
    wt_extern_t item;
    memset(&item, 0, sizeof(item));
    if (!W.caller_export_get(caller, PyBytes_AS_STRING(args[1]), (size_t)PyBytes_GET_SIZE(args[1]),
                             &item) ||
        item.kind != WT_EXTERN_MEMORY)
        return Py_BuildValue("(ii)", 0, 0);
    wt_context_t *ctx = W.caller_context(caller);
    uint8_t *data = W.memory_data(ctx, &item.of.memory);
    size_t size = W.memory_data_size(ctx, &item.of.memory);
    return Py_BuildValue("(Kn)", (unsigned long long)(uintptr_t)data, (Py_ssize_t)size);
}

/* ---- host functions ------------------------------------------------------ */

typedef struct {
    PyObject *impl;        /* impl(caller, *params) */
    PyObject *make_caller; /* make_caller(address) -> the object impl gets */
    PyObject *on_error;    /* on_error(exc) -> bytes: the trap message */
    Py_ssize_t nparams;
    char params[MAX_SLOTS];
    char result;           /* 0 for none */
} HostSpec;

static wt_trap_t *host_trap(const char *msg, size_t len) { return W.trap_new(msg, len); }

static wt_trap_t *host_trap_from_exception(HostSpec *spec) {
    PyObject *et, *ev, *etb;
    PyErr_Fetch(&et, &ev, &etb);
    PyErr_NormalizeException(&et, &ev, &etb);
    if (ev != NULL && etb != NULL)
        PyException_SetTraceback(ev, etb);
    PyObject *msg = ev ? PyObject_CallOneArg(spec->on_error, ev) : NULL;
    Py_XDECREF(et);
    Py_XDECREF(ev);
    Py_XDECREF(etb);
    wt_trap_t *trap;
    if (msg != NULL && PyBytes_Check(msg)) {
        trap = host_trap(PyBytes_AS_STRING(msg), (size_t)PyBytes_GET_SIZE(msg));
    } else {
        PyErr_Clear();
        static const char fallback[] = "host function failed";
        trap = host_trap(fallback, sizeof(fallback) - 1);
    }
    Py_XDECREF(msg);
    return trap;
}

static wt_trap_t *host_trampoline(void *env, void *caller, wt_val_raw_t *vals, size_t nvals) {
    HostSpec *spec = (HostSpec *)env;
    PyGILState_STATE g = PyGILState_Ensure();
    wt_trap_t *trap = NULL;
    PyObject *argv[MAX_SLOTS + 1];
    Py_ssize_t made = 0;
    PyObject *out = NULL;
    (void)nvals;
    PyObject *address = PyLong_FromVoidPtr(caller);
    if (address == NULL)
        goto fail;
    argv[0] = PyObject_CallOneArg(spec->make_caller, address);
    Py_DECREF(address);
    if (argv[0] == NULL)
        goto fail;
    made = 1;
    for (Py_ssize_t i = 0; i < spec->nparams; i++) {
        PyObject *v;
        switch (spec->params[i]) {
        case 'i': v = PyLong_FromUnsignedLong((uint32_t)vals[i].i32); break;
        case 'I': v = PyLong_FromLongLong(vals[i].i64); break;
        case 'f': v = PyFloat_FromDouble(vals[i].f32); break;
        default: v = PyFloat_FromDouble(vals[i].f64); break;
        }
        if (v == NULL)
            goto fail;
        argv[made++] = v;
    }
    out = PyObject_Vectorcall(spec->impl, argv, (size_t)made, NULL);
    if (out == NULL)
        goto fail;
    if (spec->result) {
        if (spec->result == 'i' || spec->result == 'I') {
            PyObject *n = PyNumber_Index(out);
            if (n == NULL)
                goto fail;
            unsigned long long bits = PyLong_AsUnsignedLongLongMask(n);
            Py_DECREF(n);
            if (bits == (unsigned long long)-1 && PyErr_Occurred())
                goto fail;
            memset(&vals[0], 0, sizeof(vals[0]));
            if (spec->result == 'i')
                vals[0].i32 = (int32_t)(uint32_t)bits;
            else
                vals[0].i64 = (int64_t)bits;
        } else {
            double d = PyFloat_AsDouble(out);
            if (d == -1.0 && PyErr_Occurred())
                goto fail;
            memset(&vals[0], 0, sizeof(vals[0]));
            if (spec->result == 'f')
                vals[0].f32 = (float)d;
            else
                vals[0].f64 = d;
        }
    }
    goto done;
fail:
    trap = host_trap_from_exception(spec);
done:
    Py_XDECREF(out);
    for (Py_ssize_t i = 0; i < made; i++)
        Py_DECREF(argv[i]);
    PyGILState_Release(g);
    return trap;
}

static void host_spec_free(void *env) {
    HostSpec *spec = (HostSpec *)env;
    if (spec == NULL)
        return;
    if (Py_IsInitialized()) {
        PyGILState_STATE g = PyGILState_Ensure();
        Py_XDECREF(spec->impl);
        Py_XDECREF(spec->make_caller);
        Py_XDECREF(spec->on_error);
        PyGILState_Release(g);
    }
    PyMem_RawFree(spec);
}

/* define_host(linker, module: bytes, name: bytes, functype, impl, params: bytes,
 *             result: bytes, make_caller, on_error) -> error address (0: ok) */
static PyObject *native_define_host(PyObject *mod, PyObject *const *args, Py_ssize_t nargs) {
    if (need_init() < 0)
        return NULL;
    if (nargs != 9 || !PyBytes_Check(args[1]) || !PyBytes_Check(args[2]) || !PyBytes_Check(args[5]) ||
        !PyBytes_Check(args[6])) {
        PyErr_SetString(PyExc_TypeError,
                        "define_host(linker, module, name, functype, impl, params, result, "
                        "make_caller, on_error)");
        return NULL;
    }
    void *linker = addr_of(args[0]);
    void *functype = addr_of(args[3]);
    if (PyErr_Occurred())
        return NULL;
    if (PyBytes_GET_SIZE(args[6]) > 1) {
        PyErr_SetString(PyExc_ValueError, "define_host: at most one result");
        return NULL;
    }
    HostSpec *spec = PyMem_RawCalloc(1, sizeof(HostSpec));
    if (spec == NULL)
        return PyErr_NoMemory();
    if (parse_kinds(args[5], spec->params, &spec->nparams, "params") < 0) {
        PyMem_RawFree(spec);
        return NULL;
    }
    if (PyBytes_GET_SIZE(args[6]) == 1) {
        spec->result = PyBytes_AS_STRING(args[6])[0];
        if (!kind_ok(spec->result)) {
            PyMem_RawFree(spec);
            PyErr_SetString(PyExc_ValueError, "define_host: bad result kind");
            return NULL;
        }
    }
    Py_INCREF(args[4]);
    spec->impl = args[4];
    Py_INCREF(args[7]);
    spec->make_caller = args[7];
    Py_INCREF(args[8]);
    spec->on_error = args[8];
    wt_error_t *err = W.linker_define_func_unchecked(
        linker, PyBytes_AS_STRING(args[1]), (size_t)PyBytes_GET_SIZE(args[1]),
        PyBytes_AS_STRING(args[2]), (size_t)PyBytes_GET_SIZE(args[2]), functype, host_trampoline,
        spec, host_spec_free);
    if (err != NULL) {
        /* wasmtime did not take the env: free it ourselves */
        Py_DECREF(spec->impl);
        Py_DECREF(spec->make_caller);
        Py_DECREF(spec->on_error);
        PyMem_RawFree(spec);
    }
    return PyLong_FromVoidPtr(err);
}

/* ---- Ticker: the epoch clock, off the GIL ------------------------------- */

typedef struct {
    PyObject_HEAD
    void *engine;
    PyObject *keepalive; /* the Python object owning the engine: freed only after stop */
    long long tick_ns;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int running;
    int stop;
    unsigned long long ticks;
} TickerObject;

static void *ticker_main(void *arg) {
    TickerObject *t = (TickerObject *)arg;
    int64_t start = monotonic_ns();
    uint64_t done = 0;
    pthread_mutex_lock(&t->lock);
    while (!t->stop) {
        int64_t next = start + (int64_t)(done + 1) * t->tick_ns;
        struct timespec ts = {next / 1000000000LL, next % 1000000000LL};
        int rc = pthread_cond_timedwait(&t->cond, &t->lock, &ts);
        if (t->stop)
            break;
        if (rc != ETIMEDOUT && rc != 0)
            continue;
        uint64_t due = (uint64_t)((monotonic_ns() - start) / t->tick_ns);
        while (done < due) {
            W.engine_increment_epoch(t->engine);
            done++;
        }
        t->ticks = done;
    }
    pthread_mutex_unlock(&t->lock);
    return NULL;
}

static void ticker_stop(TickerObject *t) {
    if (!t->running)
        return;
    pthread_mutex_lock(&t->lock);
    t->stop = 1;
    pthread_cond_signal(&t->cond);
    pthread_mutex_unlock(&t->lock);
    Py_BEGIN_ALLOW_THREADS
    pthread_join(t->thread, NULL);
    Py_END_ALLOW_THREADS
    t->running = 0;
}

static PyObject *Ticker_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
    PyObject *engine, *keepalive = Py_None;
    long long tick = 1000000;
    if (need_init() < 0)
        return NULL;
    if (!PyArg_ParseTuple(args, "O|LO:Ticker", &engine, &tick, &keepalive))
        return NULL;
    if (tick <= 0) {
        PyErr_SetString(PyExc_ValueError, "Ticker: tick_ns must be positive");
        return NULL;
    }
    void *ptr = addr_of(engine);
    if (ptr == NULL) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "Ticker: NULL engine");
        return NULL;
    }
    TickerObject *self = (TickerObject *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->engine = ptr;
    Py_INCREF(keepalive);
    self->keepalive = keepalive;
    self->tick_ns = tick;
    pthread_mutex_init(&self->lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&self->cond, &attr);
    pthread_condattr_destroy(&attr);
    int rc = pthread_create(&self->thread, NULL, ticker_main, self);
    if (rc != 0) {
        Py_DECREF(self);
        errno = rc;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    self->running = 1;
    return (PyObject *)self;
}

static PyObject *Ticker_stop(TickerObject *self, PyObject *unused) {
    ticker_stop(self);
    Py_RETURN_NONE;
}

static void Ticker_dealloc(TickerObject *self) {
    ticker_stop(self);
    Py_CLEAR(self->keepalive); /* only now may the engine go */
    pthread_mutex_destroy(&self->lock);
    pthread_cond_destroy(&self->cond);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Ticker_get_ticks(TickerObject *self, void *closure) {
    return PyLong_FromUnsignedLongLong(__atomic_load_n(&self->ticks, __ATOMIC_RELAXED));
}

static PyObject *Ticker_get_running(TickerObject *self, void *closure) {
    return PyBool_FromLong(self->running);
}

static PyMethodDef Ticker_methods[] = {
    {"stop", (PyCFunction)Ticker_stop, METH_NOARGS, "stop the thread and wait for it"},
    {NULL},
};

static PyGetSetDef Ticker_getset[] = {
    {"ticks", (getter)Ticker_get_ticks, NULL, "epoch increments made so far", NULL},
    {"running", (getter)Ticker_get_running, NULL, "True until stop()", NULL},
    {NULL},
};

static PyTypeObject TickerType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "atoll.runtime._native.Ticker",
    .tp_basicsize = sizeof(TickerObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Ticker(engine_address, tick_ns=1_000_000, keepalive=None): increments the "
              "engine's epoch once per tick of the monotonic clock, on a native thread; "
              "keepalive (the engine's owner) is held until the thread has stopped",
    .tp_new = Ticker_new,
    .tp_dealloc = (destructor)Ticker_dealloc,
    .tp_methods = Ticker_methods,
    .tp_getset = Ticker_getset,
};

/* ---- module ---------------------------------------------------------------- */

static PyObject *native_thread_ns(PyObject *mod, PyObject *unused) {
    return PyLong_FromLongLong(thread_ns());
}

static PyMethodDef module_methods[] = {
    {"init", native_init, METH_O, "init(addresses: dict[str, int]): the C functions to call"},
    {"new_store", (PyCFunction)(void (*)(void))native_new_store, METH_FASTCALL,
     "new_store(engine, memory_size, instances, tables, memories, meter) -> (store, ctx)"},
    {"store_delete", native_store_delete, METH_O, "store_delete(store): free a store"},
    {"instantiate", (PyCFunction)(void (*)(void))native_instantiate, METH_FASTCALL,
     "instantiate(meter, invocation, pre, ctx) -> (store_id, index)"},
    {"export_get", (PyCFunction)(void (*)(void))native_export_get, METH_FASTCALL,
     "export_get(ctx, store_id, index, name) -> (kind, ...) or None"},
    {"caller_memory", (PyCFunction)(void (*)(void))native_caller_memory, METH_FASTCALL,
     "caller_memory(caller, name) -> (address, length)"},
    {"define_host", (PyCFunction)(void (*)(void))native_define_host, METH_FASTCALL,
     "define_host(linker, module, name, functype, impl, params, result, make_caller, on_error)"},
    {"thread_ns", native_thread_ns, METH_NOARGS, "this thread's CPU time in ns"},
    {NULL},
};

static struct PyModuleDef native_module = {
    PyModuleDef_HEAD_INIT, "_native", "atoll's compiled hot paths into wasmtime's C API", -1,
    module_methods,
};

PyMODINIT_FUNC PyInit__native(void) {
    if (PyType_Ready(&SigType) < 0 || PyType_Ready(&MeterType) < 0 || PyType_Ready(&BoundType) < 0 ||
        PyType_Ready(&TickerType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&native_module);
    if (m == NULL)
        return NULL;
    CallFailed = PyErr_NewException("atoll.runtime._native.CallFailed", NULL, NULL);
    BudgetSpent = PyErr_NewException("atoll.runtime._native.BudgetSpent", NULL, NULL);
    str_budget = PyUnicode_InternFromString("cpu_budget_ns");
    str_used = PyUnicode_InternFromString("cpu_used_ns");
    if (!CallFailed || !BudgetSpent || !str_budget || !str_used)
        goto error;
    if (PyModule_AddObjectRef(m, "CallFailed", CallFailed) < 0 ||
        PyModule_AddObjectRef(m, "BudgetSpent", BudgetSpent) < 0 ||
        PyModule_AddObjectRef(m, "Sig", (PyObject *)&SigType) < 0 ||
        PyModule_AddObjectRef(m, "Meter", (PyObject *)&MeterType) < 0 ||
        PyModule_AddObjectRef(m, "Bound", (PyObject *)&BoundType) < 0 ||
        PyModule_AddObjectRef(m, "Ticker", (PyObject *)&TickerType) < 0 ||
        PyModule_AddStringConstant(m, "INTERRUPT_MARKER", INTERRUPT_MARKER) < 0 ||
        PyModule_AddIntConstant(m, "MAX_SLOTS", MAX_SLOTS) < 0)
        goto error;
    return m;
error:
    Py_DECREF(m);
    return NULL;
}
