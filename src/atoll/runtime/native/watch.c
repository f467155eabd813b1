/*
 * Watch: the http layer's stall watch (atoll.http.stalls), its periodic check off the GIL.
 *
 * The serving loop's heartbeat calls Watch.beat() (a counter and a monotonic
 * timestamp, written with atomics). A native thread wakes every interval and
 * reads them; only when the serving loop has not beaten for stall_after, and
 * its thread was busy on a CPU for half of that (else for `starved` times as
 * long), does it take the GIL and call on_late(beats). After a check that
 * called on_late, the next beat is reported once with on_beat(). So a healthy
 * serving loop never shares the GIL with the watch.
 *
 * stop() sets the stop flag while holding the GIL and joins the thread with the
 * GIL released; the thread re-checks the flag once it holds the GIL, so no
 * callback runs after stop() has returned. stop() then drops the callbacks.
 */
#include "module.h"

typedef struct {
    PyObject_HEAD
    PyObject *on_late;
    PyObject *on_beat;
    long long interval_ns;
    long long stall_ns;
    long long starved;
    clockid_t cpu_clock;
    int has_clock;
    pthread_t thread;
    int running; /* a thread was started and not joined (changed under the GIL only) */
    int stop;    /* atomic */
    unsigned long long beats;   /* atomic: written by beat() */
    long long last_beat_ns;     /* atomic: written by beat() */
    unsigned long long calls;   /* atomic: callbacks made (on_late and on_beat) */
} WatchObject;

static inline long long watch_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* The serving thread's CPU time in ns; 0 if unknown or the thread ended (as cpu_time()). */
static long long watch_cpu_ns(WatchObject *w) {
    struct timespec ts;
    if (!w->has_clock || clock_gettime(w->cpu_clock, &ts) != 0)
        return 0;
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Call a callback under the GIL unless stop() came first; 0 if stopped. */
static int watch_call(WatchObject *w, PyObject *fn, unsigned long long beats, int with_beats) {
    PyGILState_STATE g = PyGILState_Ensure();
    if (__atomic_load_n(&w->stop, __ATOMIC_ACQUIRE)) {
        PyGILState_Release(g);
        return 0;
    }
    __atomic_add_fetch(&w->calls, 1, __ATOMIC_RELAXED);
    PyObject *r = with_beats ? PyObject_CallFunction(fn, "K", beats) : PyObject_CallNoArgs(fn);
    if (r == NULL)
        PyErr_WriteUnraisable(fn);
    else
        Py_DECREF(r);
    PyGILState_Release(g);
    return 1;
}

static void *watch_main(void *arg) {
    WatchObject *w = (WatchObject *)arg;
    unsigned long long seen = ~0ULL; /* as the Python watch: its first check counts as a beat */
    int have_cpu0 = 0, dirty = 0;
    long long cpu0 = 0;
    struct timespec pause = {w->interval_ns / 1000000000LL, w->interval_ns % 1000000000LL};
    while (!__atomic_load_n(&w->stop, __ATOMIC_ACQUIRE)) {
        while (clock_nanosleep(CLOCK_MONOTONIC, 0, &pause, NULL) == EINTR)
            ;
        if (__atomic_load_n(&w->stop, __ATOMIC_ACQUIRE))
            break;
        unsigned long long beats = __atomic_load_n(&w->beats, __ATOMIC_ACQUIRE);
        if (beats != seen) { /* it beat since the last check */
            seen = beats;
            have_cpu0 = 0;
            if (dirty) {
                dirty = 0;
                if (!watch_call(w, w->on_beat, 0, 0))
                    break;
            }
            continue;
        }
        if (!have_cpu0) {
            cpu0 = watch_cpu_ns(w);
            have_cpu0 = 1;
        }
        long long silent = watch_now_ns() - __atomic_load_n(&w->last_beat_ns, __ATOMIC_ACQUIRE);
        if (silent < w->stall_ns)
            continue;
        /* busy on a CPU (in wasm, in Python) stalls; only waiting for a CPU must wait longer */
        long long busy = watch_cpu_ns(w) - cpu0;
        if (busy < w->stall_ns / 2 && silent < w->starved * w->stall_ns)
            continue;
        dirty = 1;
        if (!watch_call(w, w->on_late, beats, 1))
            break;
    }
    return NULL;
}

static void watch_stop(WatchObject *w) {
    if (!w->running)
        return;
    __atomic_store_n(&w->stop, 1, __ATOMIC_RELEASE);
    w->running = 0;
    Py_BEGIN_ALLOW_THREADS
    pthread_join(w->thread, NULL);
    Py_END_ALLOW_THREADS
}

static PyObject *Watch_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
    static char *names[] = {"interval_ns", "stall_after_ns", "starved", "on_late", "on_beat", NULL};
    long long interval, stall, starved;
    PyObject *on_late, *on_beat;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "LLLOO:Watch", names, &interval, &stall, &starved,
                                     &on_late, &on_beat))
        return NULL;
    if (interval <= 0 || stall <= 0 || starved <= 0) {
        PyErr_SetString(PyExc_ValueError, "Watch: interval_ns, stall_after_ns and starved must be positive");
        return NULL;
    }
    if (!PyCallable_Check(on_late) || !PyCallable_Check(on_beat)) {
        PyErr_SetString(PyExc_TypeError, "Watch: on_late and on_beat must be callable");
        return NULL;
    }
    WatchObject *self = (WatchObject *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->interval_ns = interval;
    self->stall_ns = stall;
    self->starved = starved;
    Py_INCREF(on_late);
    self->on_late = on_late;
    Py_INCREF(on_beat);
    self->on_beat = on_beat;
    self->last_beat_ns = watch_now_ns();
    return (PyObject *)self;
}

/* beat(): the serving loop's heartbeat (its own thread, holding the GIL; no allocation) */
static PyObject *Watch_beat(WatchObject *self, PyObject *unused) {
    __atomic_store_n(&self->last_beat_ns, watch_now_ns(), __ATOMIC_RELEASE);
    __atomic_add_fetch(&self->beats, 1, __ATOMIC_RELEASE);
    Py_RETURN_NONE;
}

/* start(cpu_clock): start the thread; cpu_clock is the serving thread's CPU clock id, or -1 */
static PyObject *Watch_start(WatchObject *self, PyObject *arg) {
    long clock = PyLong_AsLong(arg);
    if (clock == -1 && PyErr_Occurred())
        return NULL;
    if (self->running || __atomic_load_n(&self->stop, __ATOMIC_ACQUIRE)) {
        PyErr_SetString(PyExc_RuntimeError, "Watch: start() once, before stop()");
        return NULL;
    }
    self->has_clock = clock != -1;
    self->cpu_clock = (clockid_t)clock;
    int rc = pthread_create(&self->thread, NULL, watch_main, self);
    if (rc != 0) {
        errno = rc;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    pthread_setname_np(self->thread, "atoll-watch");
    self->running = 1;
    Py_INCREF(self); /* the thread's reference, dropped by stop() */
    Py_RETURN_NONE;
}

static PyObject *Watch_stop(WatchObject *self, PyObject *unused) {
    int was = self->running;
    __atomic_store_n(&self->stop, 1, __ATOMIC_RELEASE);
    watch_stop(self);
    /* the callbacks (bound methods of the Python watch, which holds this object's beat)
     * would make a cycle this type does not collect: none is called any more */
    Py_CLEAR(self->on_late);
    Py_CLEAR(self->on_beat);
    if (was)
        Py_DECREF(self);
    Py_RETURN_NONE;
}

static void Watch_dealloc(WatchObject *self) {
    /* running holds a reference: a running watch is never deallocated */
    Py_CLEAR(self->on_late);
    Py_CLEAR(self->on_beat);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Watch_get_beats(WatchObject *self, void *closure) {
    return PyLong_FromUnsignedLongLong(__atomic_load_n(&self->beats, __ATOMIC_ACQUIRE));
}

static PyObject *Watch_get_calls(WatchObject *self, void *closure) {
    return PyLong_FromUnsignedLongLong(__atomic_load_n(&self->calls, __ATOMIC_RELAXED));
}

static PyObject *Watch_get_running(WatchObject *self, void *closure) {
    return PyBool_FromLong(self->running);
}

static PyMethodDef Watch_methods[] = {
    {"beat", (PyCFunction)Watch_beat, METH_NOARGS, "the serving loop's heartbeat"},
    {"start", (PyCFunction)Watch_start, METH_O,
     "start(cpu_clock): start the native thread (cpu_clock: the serving thread's, or -1)"},
    {"stop", (PyCFunction)Watch_stop, METH_NOARGS,
     "stop the thread and wait for it; no callback runs after it returns"},
    {NULL},
};

static PyGetSetDef Watch_getset[] = {
    {"beats", (getter)Watch_get_beats, NULL, "beat() calls so far", NULL},
    {"calls", (getter)Watch_get_calls, NULL, "callbacks made so far (on_late and on_beat)", NULL},
    {"running", (getter)Watch_get_running, NULL, "True from start() until stop()", NULL},
    {NULL},
};

PyTypeObject WatchType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "atoll.runtime._native.Watch",
    .tp_basicsize = sizeof(WatchObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Watch(interval_ns, stall_after_ns, starved, on_late, on_beat): the stall watch's "
              "check on a native thread, taking the GIL only when the beat is late",
    .tp_new = Watch_new,
    .tp_dealloc = (destructor)Watch_dealloc,
    .tp_methods = Watch_methods,
    .tp_getset = Watch_getset,
};
