/*
 * atoll.runtime._native: the hot paths into wasmtime's C API, compiled.
 *
 * Each ctypes crossing converts its arguments and builds Python objects, a
 * callback more; a request that instantiates a module, calls an export and
 * serves a WASI program crosses that line dozens of times. This module makes
 * those crossings C-to-C (docs/benchmarks.md has what it saves):
 *
 *   Sig / Bound      call an export (wasmtime_func_call_unchecked) with Python
 *                    numbers; Bound also charges the request's CPU budget
 *   Meter            a store's epoch-deadline callback in C: keep running while
 *                    the *thread CPU time* of this call is under its allowance
 *   instantiate      wasmtime_instance_pre_instantiate under a Meter
 *   export_get       wasmtime_instance_export_get of one export
 *   define_host      a Python host function behind a C trampoline (or a C one first:
 *                    the WASI calls of wasi.c, atoll:log.write of log.c)
 *   caller_memory    (address, length) of the calling instance's memory
 *   caller_cpu_left  the CPU a host function's caller may still use (long host loops)
 *   Ticker           the engine's epoch ticker as a native thread (no GIL)
 *   Budget, BodyRead request bodies read from a socket on a native thread (bodyread.c),
 *   Reaper           and their pages freed on one
 *
 * The WASI calls served in C are in wasi.c, the request log's in log.c; what the files share (wasmtime's
 * layouts, the table W of its functions, the Meter's state) is in module.h.
 *
 * The GIL is released while wasm runs; host functions and finalizers take it
 * back with PyGILState_Ensure.
 */
#include "module.h"

wasmtime_functions W;

static int initialized = 0;

/* init() wants an address for each of these, in the order of W's fields */
static const char *const W_NAMES[] = {
#define WT_NAME(type, name) "wasmtime_" #name,
    WASMTIME_FUNCTIONS(WT_NAME)
#undef WT_NAME
};
#define W_COUNT (sizeof(W_NAMES) / sizeof(W_NAMES[0]))
_Static_assert(sizeof(W) == W_COUNT * sizeof(void *), "W has one function pointer per name");

static PyObject *CallFailed;   /* args: (error address, trap address) */
static PyObject *BudgetSpent;  /* the request's CPU budget is used up */
static PyObject *str_budget;   /* "cpu_budget_ns" */
static PyObject *str_used;     /* "cpu_used_ns" */

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
    size_t i = 0;
#define WT_SET(type, name) W.name = (type)table[i++];
    WASMTIME_FUNCTIONS(WT_SET)
#undef WT_SET
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
    /* inside a metered call (a host function calling back into its guest): the
     * guest's CPU counts; no meter, or none active: a plain call */
    MeterObject *m = meter_of_context(ctx);
    if (m != NULL && m->depth == 0)
        m = NULL;
    if (m != NULL)
        meter_enter(m, 0);
    else
        guests_enter(); /* a deadline its caller set comes a tick apart, as ever */
    wt_trap_t *trap = NULL;
    wt_error_t *err;
    Py_BEGIN_ALLOW_THREADS
    err = W.func_call_unchecked(ctx, &func, vals, (size_t)self->nslots, &trap);
    Py_END_ALLOW_THREADS
    if (m != NULL)
        meter_exit(m);
    else
        guests_exit();
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




static wt_error_t *meter_on_deadline(wt_context_t *ctx, void *data, uint64_t *delta, uint8_t *kind) {
    (void)ctx;
    MeterObject *m = (MeterObject *)data;
    /* A Bound call keeps the GIL (handing it over costs more than a short call) and
     * stops at its first deadline, a tick in: a call still running gives it up here,
     * so other threads run meanwhile; the call takes it back when it returns. */
    if (PyGILState_Check()) {
        m->released = PyEval_SaveThread();
        m->releases++;
    }
    int64_t left = m->allow_ns - meter_used(m);
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

/* Meter.begin(allow_ns): a call into the store starts (outermost: allowed allow_ns). */
static PyObject *Meter_begin(MeterObject *self, PyObject *allow) {
    long long a = PyLong_AsLongLong(allow);
    if (a == -1 && PyErr_Occurred())
        return NULL;
    meter_enter(self, a);
    Py_RETURN_NONE;
}

/* Meter.end() -> thread CPU ns of the outermost call (0 for a nested one). */
static PyObject *Meter_end(MeterObject *self, PyObject *unused) {
    if (self->depth <= 0) {
        PyErr_SetString(PyExc_RuntimeError, "Meter.end() without begin()");
        return NULL;
    }
    return PyLong_FromLongLong(meter_exit(self));
}

static PyMethodDef Meter_methods[] = {
    {"install", (PyCFunction)Meter_install, METH_O,
     "install(store_address): check this meter at each epoch deadline of that store"},
    {"begin", (PyCFunction)Meter_begin, METH_O,
     "begin(allow_ns): a call into the store starts; the outermost may use allow_ns of CPU"},
    {"end", (PyCFunction)Meter_end, METH_NOARGS,
     "end() -> the thread CPU ns of the outermost call (0 when nested)"},
    {NULL},
};

static PyMemberDef Meter_members[] = {
    {"allow_ns", T_LONGLONG, offsetof(MeterObject, allow_ns), READONLY,
     "guest CPU ns the outermost call may use"},
    {"used_ns", T_LONGLONG, offsetof(MeterObject, used_ns), READONLY,
     "thread CPU ns the last outermost call used"},
    {"depth", T_INT, offsetof(MeterObject, depth), READONLY, "calls into the store in flight"},
    {"tick_ns", T_LONGLONG, offsetof(MeterObject, tick_ns), READONLY, "epoch tick period"},
    {NULL},
};

static void Meter_dealloc(MeterObject *self) {
    Py_CLEAR(self->stdio);
    Py_CLEAR(self->log);
    Py_CLEAR(self->out);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Meter_get_stdio(MeterObject *self, void *closure) {
    if (self->stdio == NULL)
        Py_RETURN_NONE;
    Py_INCREF(self->stdio);
    return (PyObject *)self->stdio;
}


static int Meter_set_stdio(MeterObject *self, PyObject *value, void *closure) {
    if (value != NULL && value != Py_None && !PyObject_TypeCheck(value, &StdioType)) {
        PyErr_SetString(PyExc_TypeError, "Meter.stdio must be a Stdio or None");
        return -1;
    }
    StdioObject *old = self->stdio;
    if (value == NULL || value == Py_None) {
        self->stdio = NULL;
    } else {
        Py_INCREF(value);
        self->stdio = (StdioObject *)value;
    }
    Py_XDECREF(old);
    return 0;
}

static PyGetSetDef Meter_getset[] = {
    {"stdio", (getter)Meter_get_stdio, (setter)Meter_set_stdio,
     "the Stdio whose WASI calls this store's guests make in C (None: all in Python)", NULL},
    {NULL},
};

PyTypeObject MeterType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "atoll.runtime._native.Meter",
    .tp_basicsize = sizeof(MeterObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Meter(tick_ns=1_000_000): a store's CPU allowance, enforced at epoch deadlines",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Meter_init,
    .tp_dealloc = (destructor)Meter_dealloc,
    .tp_methods = Meter_methods,
    .tp_members = Meter_members,
    .tp_getset = Meter_getset,
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

/* Bound and instantiate calls keep the GIL and stop at a deadline this many ticks
 * in, where the meter gives the GIL up if they still run (see meter_on_deadline)
 * and sets the deadline the budget allows. */
#define YIELD_TICKS 1

/* After a call that kept the GIL: take it back if the meter gave it up during this
 * very call (``before``: the count at its start; a call nested in a host function
 * may see an outer call's give-up, which that outer call takes back). */
static inline void gil_back(MeterObject *m, int before) {
    if (m->releases != before) {
        m->releases = before;
        PyEval_RestoreThread(m->released);
    }
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
    MeterObject *m = self->meter;
    long long left = 0;
    int outermost = m->depth == 0;
    if (outermost) { /* a nested call runs under the outermost call's deadline */
        if (budget_left(inv, &left) < 0)
            return NULL;
        W.context_set_epoch_deadline(self->ctx, YIELD_TICKS);
    }
    meter_enter(m, left);
    if (outermost)
        m->invocation = inv;
    wt_trap_t *trap = NULL;
    int before = m->releases;
    wt_error_t *err = W.func_call_unchecked(self->ctx, &self->func, vals, (size_t)sig->nslots, &trap);
    gil_back(m, before);
    long long used = meter_exit(m);
    if (outermost && charge(inv, used) < 0) {
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
    /* the meter is the store's data (borrowed: the deadline callback holds a reference
     * for as long as the store lives), so host functions find it from their caller */
    void *store = W.store_new(engine, meter, NULL);
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
    long long left = 0;
    int outermost = m->depth == 0;
    if (outermost) { /* a nested call runs under the outermost call's deadline */
        if (budget_left(inv, &left) < 0)
            return NULL;
        W.context_set_epoch_deadline(ctx, YIELD_TICKS);
    }
    meter_enter(m, left);
    if (outermost)
        m->invocation = inv;
    wt_instance_t inst = {0, 0};
    wt_trap_t *trap = NULL;
    int before = m->releases;
    wt_error_t *err = W.instance_pre_instantiate(pre, ctx, &inst, &trap);
    gil_back(m, before);
    long long used = meter_exit(m);
    if (outermost && charge(inv, used) < 0) {
        if (err == NULL && trap == NULL)
            return NULL;
        PyErr_Clear();
    }
    if (err != NULL || trap != NULL)
        return raise_failed(err, trap);
    return Py_BuildValue("(KK)", (unsigned long long)inst.store_id, (unsigned long long)inst.priv);
}

/* run_export(meter, invocation, ctx, store_id, index, name) -> True, or False if the
 * instance has no such () -> () function: look it up and call it as Bound would
 * (budget, deadline, GIL kept until the first deadline, CPU charged). A WASI
 * command's _start in one C call. */
static PyObject *native_run_export(PyObject *mod, PyObject *const *args, Py_ssize_t nargs) {
    if (need_init() < 0)
        return NULL;
    if (nargs != 6 || !PyObject_TypeCheck(args[0], &MeterType) || !PyBytes_Check(args[5])) {
        PyErr_SetString(PyExc_TypeError,
                        "run_export(meter, invocation, ctx, store_id, index, name: bytes)");
        return NULL;
    }
    MeterObject *m = (MeterObject *)args[0];
    PyObject *inv = args[1];
    wt_context_t *ctx = addr_of(args[2]);
    wt_instance_t inst;
    inst.store_id = PyLong_AsUnsignedLongLong(args[3]);
    inst.priv = (size_t)PyLong_AsSize_t(args[4]);
    if (PyErr_Occurred())
        return NULL;
    wt_extern_t item;
    memset(&item, 0, sizeof(item));
    if (!W.instance_export_get(ctx, &inst, PyBytes_AS_STRING(args[5]),
                               (size_t)PyBytes_GET_SIZE(args[5]), &item) ||
        item.kind != WT_EXTERN_FUNC)
        Py_RETURN_FALSE;
    long long left = 0;
    int outermost = m->depth == 0;
    if (outermost) { /* a nested call runs under the outermost call's deadline */
        if (budget_left(inv, &left) < 0)
            return NULL;
        W.context_set_epoch_deadline(ctx, YIELD_TICKS);
    }
    meter_enter(m, left);
    if (outermost)
        m->invocation = inv;
    wt_val_raw_t vals[1];
    memset(vals, 0, sizeof(vals));
    wt_trap_t *trap = NULL;
    int before = m->releases;
    wt_error_t *err = W.func_call_unchecked(ctx, &item.of.func, vals, 0, &trap);
    gil_back(m, before);
    long long used = meter_exit(m);
    if (outermost && charge(inv, used) < 0) {
        if (err == NULL && trap == NULL)
            return NULL;
        PyErr_Clear();
    }
    if (err != NULL || trap != NULL)
        return raise_failed(err, trap);
    Py_RETURN_TRUE;
}

static PyObject *extern_tuple(const wt_extern_t *item) {
    if (item->kind == WT_EXTERN_FUNC)
        return Py_BuildValue("(iKK)", (int)item->kind, (unsigned long long)item->of.func.store_id,
                             (unsigned long long)(uintptr_t)item->of.func.priv);
    if (item->kind == WT_EXTERN_MEMORY)
        return Py_BuildValue("(iKII)", (int)item->kind,
                             (unsigned long long)item->of.memory.a.store_id,
                             item->of.memory.a.priv1, item->of.memory.priv2);
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


/* caller_cpu_left(caller) -> CPU ns the outermost call into the caller's store may still
 * use, or None when no meter counts it */
static PyObject *native_caller_cpu_left(PyObject *mod, PyObject *arg) {
    if (need_init() < 0)
        return NULL;
    void *caller = addr_of(arg);
    if (caller == NULL) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "caller_cpu_left: NULL caller");
        return NULL;
    }
    MeterObject *m = meter_of_context(W.caller_context(caller));
    if (m == NULL || m->depth == 0)
        Py_RETURN_NONE;
    return PyLong_FromLongLong(m->allow_ns - meter_used(m));
}

/* ---- host functions ------------------------------------------------------ */

typedef struct {
    PyObject *impl;        /* impl(caller, *params) */
    PyObject *make_caller; /* make_caller(address) -> the object impl gets */
    PyObject *on_error;    /* on_error(exc) -> bytes: the trap message */
    Py_ssize_t nparams;
    char params[MAX_SLOTS];
    char result;           /* 0 for none */
    native_host_fn native; /* served in C first when the store has a Meter (NULL: never) */
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
    MeterObject *meter =
        spec->native != NULL ? meter_of_context(W.caller_context(caller)) : NULL;
    if (meter != NULL) {
        wt_trap_t *r = spec->native(meter, caller, vals);
        if (r != FALLBACK)
            return r;
    }
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

/* The host functions served in C: wasi_names() (1 .. atoll_wasi_count()), then these. */
#define LOG_WRITE_NATIVE (atoll_wasi_count() + 1)

static native_host_fn native_fn(long index) {
    if (index == LOG_WRITE_NATIVE)
        return atoll_log_write;
    return atoll_wasi_fn((int)index);
}

/* define_host(linker, module: bytes, name: bytes, functype, impl, params: bytes,
 *             result: bytes, make_caller, on_error, native=0) -> error address (0: ok)
 * native: 1-based index into wasi_names(), or LOG_WRITE_NATIVE: served in C first when
 * the calling store has a Meter (impl serves what the C function leaves) */
static PyObject *native_define_host(PyObject *mod, PyObject *const *args, Py_ssize_t nargs) {
    if (need_init() < 0)
        return NULL;
    if ((nargs != 9 && nargs != 10) || !PyBytes_Check(args[1]) || !PyBytes_Check(args[2]) || !PyBytes_Check(args[5]) ||
        !PyBytes_Check(args[6])) {
        PyErr_SetString(PyExc_TypeError,
                        "define_host(linker, module, name, functype, impl, params, result, "
                        "make_caller, on_error, native=0)");
        return NULL;
    }
    long native = 0;
    if (nargs == 10) {
        native = PyLong_AsLong(args[9]);
        if (native == -1 && PyErr_Occurred())
            return NULL;
        if (native < 0 || native > LOG_WRITE_NATIVE) {
            PyErr_SetString(PyExc_ValueError, "define_host: no such native function");
            return NULL;
        }
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
    spec->native = native ? native_fn(native) : NULL;
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
    /* on failure wasmtime has already dropped the closure, running host_spec_free:
     * spec is gone either way */
    return PyLong_FromVoidPtr(err);
}

/* ---- Ticker: the epoch clock, off the GIL ------------------------------- */

/* The ticker wakes every tick only while some guest may need a deadline: once no
 * metered call has been in wasm for IDLE_TICKS ticks it ticks every IDLE_PERIOD_NS
 * (an idle node's thread then wakes ten times a second, not a thousand), and the next
 * call to enter wakes it at once (meter_enter: a load of atoll_tickers_idle, and a
 * broadcast only when a ticker is slow), so a guest's deadlines still come one tick
 * apart from its start. A call made without a meter (Sig.call: no deadline of its
 * own) counts as one too (guests_enter). Only wasm entered another way (wasmtime-py's
 * own calls) may see a deadline come a slow period late. */
#define IDLE_TICKS 100
#define IDLE_PERIOD_NS 100000000LL

int atoll_guests_running;
int atoll_tickers_idle;
static pthread_mutex_t tick_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t tick_cond;
static pthread_once_t tick_once = PTHREAD_ONCE_INIT;

static void tick_cond_init(void) {
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&tick_cond, &attr);
    pthread_condattr_destroy(&attr);
}

void atoll_wake_tickers(void) {
    pthread_mutex_lock(&tick_lock);
    pthread_cond_broadcast(&tick_cond);
    pthread_mutex_unlock(&tick_lock);
}

typedef struct {
    PyObject_HEAD
    void *engine;
    PyObject *keepalive; /* the Python object owning the engine: freed only after stop */
    long long tick_ns;
    pthread_t thread;
    int running;
    int stop;            /* under tick_lock */
    int slow;            /* atomic: ticking every IDLE_PERIOD_NS for want of a guest */
    unsigned long long ticks;
} TickerObject;

static void *ticker_main(void *arg) {
    TickerObject *t = (TickerObject *)arg;
    int64_t start = monotonic_ns();
    uint64_t done = 0; /* ticks since start (reset when a slow ticker speeds up) */
    int idle = 0;      /* ticks in a row with no metered call in wasm */
    pthread_mutex_lock(&tick_lock);
    while (!t->stop) {
        int slow = idle >= IDLE_TICKS;
        int64_t next = slow ? monotonic_ns() + IDLE_PERIOD_NS
                            : start + (int64_t)(done + 1) * t->tick_ns;
        struct timespec ts = {next / 1000000000LL, next % 1000000000LL};
        int rc = 0;
        __atomic_store_n(&t->slow, slow, __ATOMIC_RELAXED);
        if (slow) {
            /* seen by meter_enter before or after its guest counts: it wakes this one */
            __atomic_add_fetch(&atoll_tickers_idle, 1, __ATOMIC_SEQ_CST);
            if (__atomic_load_n(&atoll_guests_running, __ATOMIC_SEQ_CST) == 0)
                rc = pthread_cond_timedwait(&tick_cond, &tick_lock, &ts);
            __atomic_sub_fetch(&atoll_tickers_idle, 1, __ATOMIC_SEQ_CST);
        } else {
            rc = pthread_cond_timedwait(&tick_cond, &tick_lock, &ts);
        }
        if (t->stop)
            break;
        if (slow) {
            if (__atomic_load_n(&atoll_guests_running, __ATOMIC_SEQ_CST) != 0) {
                idle = 0; /* a guest entered: ticks one tick apart from now */
                start = monotonic_ns();
                done = 0;
            } else if (rc == ETIMEDOUT) {
                W.engine_increment_epoch(t->engine);
                __atomic_add_fetch(&t->ticks, 1, __ATOMIC_RELAXED);
            }
            continue;
        }
        if (rc != ETIMEDOUT && rc != 0)
            continue;
        uint64_t due = (uint64_t)((monotonic_ns() - start) / t->tick_ns);
        while (done < due) {
            W.engine_increment_epoch(t->engine);
            done++;
            __atomic_add_fetch(&t->ticks, 1, __ATOMIC_RELAXED);
        }
        idle = __atomic_load_n(&atoll_guests_running, __ATOMIC_SEQ_CST) != 0 ? 0 : idle + 1;
    }
    pthread_mutex_unlock(&tick_lock);
    return NULL;
}

static void ticker_stop(TickerObject *t) {
    if (!t->running)
        return;
    pthread_mutex_lock(&tick_lock);
    t->stop = 1;
    pthread_cond_broadcast(&tick_cond);
    pthread_mutex_unlock(&tick_lock);
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
    pthread_once(&tick_once, tick_cond_init);
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
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Ticker_get_slow(TickerObject *self, void *closure) {
    return PyBool_FromLong(__atomic_load_n(&self->slow, __ATOMIC_RELAXED));
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
    {"slow", (getter)Ticker_get_slow, NULL,
     "ticking slowly: no guest in wasm for a while (the next one wakes it)", NULL},
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

/* needed() -> the names of the C functions init() wants addresses for */
static PyObject *native_needed(PyObject *mod, PyObject *unused) {
    PyObject *t = PyTuple_New((Py_ssize_t)W_COUNT);
    if (t == NULL)
        return NULL;
    for (size_t i = 0; i < W_COUNT; i++) {
        PyObject *n = PyUnicode_FromString(W_NAMES[i]);
        if (n == NULL) {
            Py_DECREF(t);
            return NULL;
        }
        PyTuple_SET_ITEM(t, (Py_ssize_t)i, n);
    }
    return t;
}

static PyObject *native_thread_ns(PyObject *mod, PyObject *unused) {
    return PyLong_FromLongLong(thread_ns());
}

static PyMethodDef module_methods[] = {
    {"init", native_init, METH_O, "init(addresses: dict[str, int]): the C functions to call"},
    {"needed", native_needed, METH_NOARGS, "needed() -> the names init() wants addresses for"},
    {"new_store", (PyCFunction)(void (*)(void))native_new_store, METH_FASTCALL,
     "new_store(engine, memory_size, instances, tables, memories, meter) -> (store, ctx)"},
    {"store_delete", native_store_delete, METH_O, "store_delete(store): free a store"},
    {"instantiate", (PyCFunction)(void (*)(void))native_instantiate, METH_FASTCALL,
     "instantiate(meter, invocation, pre, ctx) -> (store_id, index)"},
    {"run_export", (PyCFunction)(void (*)(void))native_run_export, METH_FASTCALL,
     "run_export(meter, invocation, ctx, store_id, index, name) -> found: call a () -> ()"},
    {"export_get", (PyCFunction)(void (*)(void))native_export_get, METH_FASTCALL,
     "export_get(ctx, store_id, index, name) -> (kind, ...) or None"},
    {"caller_memory", (PyCFunction)(void (*)(void))native_caller_memory, METH_FASTCALL,
     "caller_memory(caller, name) -> (address, length)"},
    {"caller_cpu_left", native_caller_cpu_left, METH_O,
     "caller_cpu_left(caller) -> CPU ns the caller's outermost call may still use, or None"},
    {"define_host", (PyCFunction)(void (*)(void))native_define_host, METH_FASTCALL,
     "define_host(linker, module, name, functype, impl, params, result, make_caller, on_error)"},
    {"thread_ns", native_thread_ns, METH_NOARGS, "this thread's CPU time in ns"},
    {"write_lines", (PyCFunction)(void (*)(void))atoll_write_lines, METH_FASTCALL,
     "write_lines(fd, head, end, lines[, carry, limit, socket]) -> bool | (carry, dropped_lines, "
     "dropped_bytes): head + line + end for each line, as UTF-8, to fd without the GIL; False "
     "(nothing written) for a non-str or a lone surrogate; with carry, never waits for the "
     "reader (log.c)"},
    {"wasi_names", atoll_wasi_names, METH_NOARGS,
     "the WASI preview 1 functions served in C (index + 1 is define_host's native)"},
    {NULL},
};

static struct PyModuleDef native_module = {
    PyModuleDef_HEAD_INIT, "_native", "atoll's compiled hot paths into wasmtime's C API", -1,
    module_methods,
};

PyMODINIT_FUNC PyInit__native(void) {
    if (PyType_Ready(&SigType) < 0 || PyType_Ready(&MeterType) < 0 || PyType_Ready(&BoundType) < 0 ||
        PyType_Ready(&TickerType) < 0 || PyType_Ready(&StdioType) < 0 ||
        PyType_Ready(&LogBookType) < 0 || PyType_Ready(&WatchType) < 0 ||
        PyType_Ready(&BudgetType) < 0 || PyType_Ready(&BodyReadType) < 0 ||
        PyType_Ready(&ReaperType) < 0 || PyType_Ready(&PoolType) < 0)
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
        PyModule_AddObjectRef(m, "Stdio", (PyObject *)&StdioType) < 0 ||
        PyModule_AddObjectRef(m, "LogBook", (PyObject *)&LogBookType) < 0 ||
        PyModule_AddObjectRef(m, "Watch", (PyObject *)&WatchType) < 0 ||
        PyModule_AddObjectRef(m, "Budget", (PyObject *)&BudgetType) < 0 ||
        PyModule_AddObjectRef(m, "BodyRead", (PyObject *)&BodyReadType) < 0 ||
        PyModule_AddObjectRef(m, "Reaper", (PyObject *)&ReaperType) < 0 ||
        PyModule_AddObjectRef(m, "Pool", (PyObject *)&PoolType) < 0 ||
        PyModule_AddIntConstant(m, "LOG_WRITE_NATIVE", LOG_WRITE_NATIVE) < 0 ||
        PyModule_AddStringConstant(m, "INTERRUPT_MARKER", INTERRUPT_MARKER) < 0 ||
        PyModule_AddIntConstant(m, "MAX_SLOTS", MAX_SLOTS) < 0)
        goto error;
    return m;
error:
    Py_DECREF(m);
    return NULL;
}
