/*
 * Budget and BodyRead: the http layer's request bodies (atoll.http.bodies, atoll.http.protocol)
 * read off the GIL.
 *
 * (Reaper, at the end, frees the pages of large bodies the same way; Pool reuses them.)
 *
 * Budget is the process's body budget as a counter of bytes that native threads
 * update too (atomics, no lock, no GIL): take(n) reserves n bytes unless the sum
 * would pass the limit, give(n) returns them.
 *
 * BodyRead reads the rest of one request body from a socket straight into the
 * body's bytes object, on a native thread that never takes the GIL. A thread that
 * held it, even for a few microseconds per read, made the event loop wait for it
 * when it was preempted while holding it (a bulk reader runs at a low CPU
 * priority: the loop waited for the scheduler to give that thread the CPU again),
 * and each hand-off can cost the switch interval (5 ms). So:
 *
 *   - the thread runs at SCHED_IDLE (else its nice raised by `nice`): any thread of
 *     normal priority that wakes on its CPU preempts it at once;
 *   - it wakes once per `lowat` bytes (SO_RCVLOWAT) and copies with recv();
 *   - each byte kept is taken from the Budget as it arrives; past the budget the
 *     body is refused (`refused`), and the rest of it is read and dropped;
 *   - it tells the loop that something changed (refused, or it ended) by writing to
 *     an eventfd (`notify_fd`) that the loop watches (add_reader), not by a callback.
 *
 * The loop never waits for these threads: they run at SCHED_IDLE, and one that
 * holds anything the loop needs (a lock, a join) can wait for a CPU for as long as
 * the machine is busy. So no lock is shared with them (atomics only), they are not
 * joined (detached), and what a thread and its Python object share (the fds and the
 * counters, `br_state`) is freed by whichever of the two lets go of it last.
 *
 * Lifecycle, all calls with the GIL on the loop: BodyRead(...) -> start() ->
 * [stop()] -> the loop sees notify_fd readable -> ack(), reads the state ... until
 * `outcome` is not RUNNING (the thread will not touch the body again) -> finish()
 * (drops the body; the loop stops watching notify_fd first). A BodyRead dropped while
 * its thread runs stops it and keeps the body alive for it (never freed: only at
 * shutdown).
 */
#include "module.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>

#if PY_VERSION_HEX >= 0x030D0000
#define PY_FINALIZING() Py_IsFinalizing()
#else
#define PY_FINALIZING() _Py_IsFinalizing()
#endif
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

/* ---- Budget ---------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    long long limit;
    long long used; /* atomic */
} BudgetObject;

static int budget_take(BudgetObject *b, long long n) {
    long long used = __atomic_load_n(&b->used, __ATOMIC_RELAXED);
    if (n < 0)
        return 0;
    do { /* n > limit - used, not used + n > limit: that sum could overflow */
        if (n > b->limit - used)
            return 0;
    } while (!__atomic_compare_exchange_n(&b->used, &used, used + n, 1, __ATOMIC_ACQ_REL,
                                          __ATOMIC_RELAXED));
    return 1;
}

static PyObject *Budget_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
    static char *names[] = {"limit", NULL};
    long long limit;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "L:Budget", names, &limit))
        return NULL;
    if (limit < 1) {
        PyErr_Format(PyExc_ValueError, "the body memory budget must be positive, got %lld", limit);
        return NULL;
    }
    BudgetObject *b = (BudgetObject *)type->tp_alloc(type, 0);
    if (b != NULL)
        b->limit = limit;
    return (PyObject *)b;
}

static PyObject *Budget_take(BudgetObject *b, PyObject *arg) {
    long long n = PyLong_AsLongLong(arg);
    if (n == -1 && PyErr_Occurred())
        return NULL;
    return PyBool_FromLong(budget_take(b, n));
}

static PyObject *Budget_give(BudgetObject *b, PyObject *arg) {
    long long n = PyLong_AsLongLong(arg);
    if (n == -1 && PyErr_Occurred())
        return NULL;
    __atomic_sub_fetch(&b->used, n, __ATOMIC_ACQ_REL);
    Py_RETURN_NONE;
}

static PyObject *Budget_get_used(BudgetObject *b, void *unused) {
    return PyLong_FromLongLong(__atomic_load_n(&b->used, __ATOMIC_ACQUIRE));
}

static PyMethodDef Budget_methods[] = {
    {"take", (PyCFunction)Budget_take, METH_O,
     "take(n) -> bool: reserve n bytes; False (nothing reserved) if that would pass the limit"},
    {"give", (PyCFunction)Budget_give, METH_O, "give(n): return n bytes reserved by take()"},
    {NULL}};

static PyMemberDef Budget_members[] = {
    {"limit", T_LONGLONG, offsetof(BudgetObject, limit), READONLY, "bytes at most"},
    {NULL}};

static PyGetSetDef Budget_getset[] = {
    {"used", (getter)Budget_get_used, NULL, "bytes reserved now", NULL}, {NULL}};

PyTypeObject BudgetType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "atoll.runtime._native.Budget",
    .tp_basicsize = sizeof(BudgetObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Budget(limit): bytes of request bodies held by a process, shared with native "
              "threads",
    .tp_new = Budget_new,
    .tp_methods = Budget_methods,
    .tp_members = Budget_members,
    .tp_getset = Budget_getset,
};

/* ---- BodyRead ---------------------------------------------------------------- */

enum { BR_RUNNING = 0, BR_DONE = 1, BR_TIMEOUT = 2, BR_CLOSED = 3, BR_STOPPED = 4 };

/* Bytes one recv() copies at most (see br_read), and the buffer a refused body's rest
 * is read into and dropped. */
#ifndef BR_CHUNK
#define BR_CHUNK (256 * 1024)
#endif
/* recv() calls between two poll()s (which look at stop and the timeout): 16 MiB. */
#define BR_READS 64

/* What a reading thread and its BodyRead share; freed by the last of the two. */
typedef struct {
    int refs;              /* atomic: 2 while both hold it */
    BudgetObject *budget;  /* borrowed: the BodyRead holds it for the thread's life */
    char *target;          /* the body's data + start */
    long long want;        /* bytes to read */
    long long timeout_ns;  /* without a byte */
    int lowat;
    long page;             /* bytes */
    int nice;              /* if SCHED_IDLE is refused: raise the thread's nice by this */
    int fd;                /* dup of the socket: the thread's, closed when it is done */
    int notify_fd;         /* eventfd, thread -> loop */
    int stop_fd;           /* eventfd, loop -> thread */
    /* written by the thread (atomics) */
    long long got;         /* bytes kept (all taken from the budget) */
    long long last_ns;     /* CLOCK_MONOTONIC of the last byte (or of the start) */
    int refused;
    int outcome;
} br_state;

typedef struct {
    PyObject_HEAD
    PyObject *body;        /* the bytes object written into (held until finish) */
    BudgetObject *budget;  /* held */
    br_state *st;
    int started;
} BodyReadObject;

static inline long long br_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void br_signal(int fd) {
    uint64_t one = 1;
    ssize_t ignored = write(fd, &one, sizeof one);
    (void)ignored; /* an eventfd write fails only when the counter would overflow */
}

static void br_release(br_state *st) {
    if (__atomic_sub_fetch(&st->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    if (st->fd >= 0)
        close(st->fd);
    if (st->notify_fd >= 0)
        close(st->notify_fd);
    if (st->stop_fd >= 0)
        close(st->stop_fd);
    free(st);
}

static void br_set_lowat(int fd, int *current, long long left, int lowat) {
    int low = left < lowat ? (int)left : lowat;
    if (low < 1)
        low = 1;
    if (low != *current && setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &low, sizeof low) == 0)
        *current = low;
}

static void br_lower_priority(int nice_step) {
    struct sched_param param = {0};
    if (pthread_setschedparam(pthread_self(), SCHED_IDLE, &param) == 0)
        return;
    pid_t tid = (pid_t)syscall(SYS_gettid);
    errno = 0;
    int now = getpriority(PRIO_PROCESS, (id_t)tid);
    if (errno == 0) {
        int nice = now + nice_step > 19 ? 19 : now + nice_step;
        (void)setpriority(PRIO_PROCESS, (id_t)tid, nice);
    }
}

/* A detached thread born at SCHED_IDLE (so that it never preempts the thread that
 * creates it, not even before it runs), else at the creator's policy (it lowers
 * itself then). */
static int br_spawn(pthread_t *thread, void *(*run)(void *), void *arg, int detached) {
    pthread_attr_t attr;
    struct sched_param param = {0};
    int err = 1;
    for (int idle = 1; idle >= 0 && err != 0; idle--) {
        pthread_attr_init(&attr);
        pthread_attr_setstacksize(&attr, 256 * 1024);
        if (detached)
            pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        if (!idle || (pthread_attr_setinheritsched(&attr, PTHREAD_EXPLICIT_SCHED) == 0 &&
                      pthread_attr_setschedpolicy(&attr, SCHED_IDLE) == 0 &&
                      pthread_attr_setschedparam(&attr, &param) == 0))
            err = pthread_create(thread, &attr, run, arg);
        pthread_attr_destroy(&attr);
    }
    return err;
}

/* Map the pages of target[from, to) before recv() copies into them: see br_read. Writes
 * a zero into each page; nothing in that range is body yet. */
static void br_map(char *target, long long from, long long to, long page) {
    for (long long at = from; at < to;) {
        ((volatile char *)target)[at] = 0;
        at = (long long)(((uintptr_t)(target + at) / (uintptr_t)page + 1) * (uintptr_t)page -
                         (uintptr_t)target);
    }
}

static int br_read(br_state *st) {
    char *scratch = NULL;
    long long at = 0, mapped = 0; /* target[0, mapped) has its pages */
    int low = 1, outcome = BR_DONE;
    while (at < st->want) {
        br_set_lowat(st->fd, &low, st->want - at, st->lowat);
        long long idle = br_now_ns() - __atomic_load_n(&st->last_ns, __ATOMIC_RELAXED);
        long long wait_ns = st->timeout_ns - idle;
        /* poll() on TCP wakes only once `low` bytes wait: a client that sends steadily,
         * but fewer bytes than that per timeout, would time out with bytes waiting. So
         * poll() waits half the timeout at most, then what waits is read (recv() takes
         * fewer than the low-water mark without waiting): `last` stays within half a
         * timeout of the last byte (the reader in bodies.py times out by it too). */
        int queued = 0, late = 0;
        if (wait_ns <= 0) {
            if (ioctl(st->fd, FIONREAD, &queued) != 0 || queued <= 0) {
                outcome = BR_TIMEOUT;
                break;
            }
            late = 1;
        } else {
            struct pollfd fds[2] = {{st->fd, POLLIN, 0}, {st->stop_fd, POLLIN, 0}};
            long long half = st->timeout_ns / 2 > 1000000 ? st->timeout_ns / 2 : 1000000;
            long long wait_ms = (wait_ns < half ? wait_ns : half) / 1000000 + 1;
            /* a minute at most: a timeout of days must not overflow the int */
            int k = poll(fds, 2, wait_ms > 60000 ? 60000 : (int)wait_ms);
            if (k < 0) {
                if (errno == EINTR)
                    continue;
                outcome = BR_CLOSED;
                break;
            }
            if (fds[1].revents) {
                outcome = BR_STOPPED;
                break;
            }
            if (k == 0 && (ioctl(st->fd, FIONREAD, &queued) != 0 || queued <= 0))
                continue; /* the timeout is checked at the top */
        }
        /* Read what came, BR_CHUNK at most per recv(): a kernel built without full
         * preemption (PREEMPT_NONE, the common server default) copies a whole recv()
         * without letting another thread onto the CPU, even one of higher priority,
         * and a socket's receive buffer can hold several MiB: the serving loop, woken
         * on this CPU, would wait for the whole copy. Returning to user space between
         * chunks lets it in. A body's bytes are fresh memory: each page recv() copies
         * into first faults in the kernel (allocated, zeroed, charged), and inside
         * recv() those faults add up, again without a way out for the loop; so the
         * pages are first touched here, from user space, where the return from each
         * fault lets a waiting thread in. */
        long long before = at;
        for (int reads = 0; at < st->want && reads < BR_READS; reads++) {
            char *into = scratch == NULL ? st->target + at : scratch;
            long long left = st->want - at;
            size_t room = (size_t)(left < BR_CHUNK ? left : BR_CHUNK);
            if (scratch == NULL && at + (long long)room > mapped) {
                br_map(st->target, at > mapped ? at : mapped, at + (long long)room, st->page);
                mapped = at + (long long)room;
            }
            ssize_t n = recv(st->fd, into, room, MSG_DONTWAIT);
            if (n < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                    break; /* back to poll() */
                outcome = BR_CLOSED;
                goto out;
            }
            if (n == 0) {
                outcome = BR_CLOSED;
                goto out;
            }
            at += n;
            __atomic_store_n(&st->last_ns, br_now_ns(), __ATOMIC_RELAXED);
            if (scratch != NULL)
                continue;
            if (budget_take(st->budget, n)) {
                __atomic_store_n(&st->got, at, __ATOMIC_RELEASE);
            } else { /* refused: the loop answers 503 now; the rest is read and dropped,
                      * so that the client reads the answer and the connection goes on */
                scratch = malloc(BR_CHUNK);
                if (scratch == NULL) {
                    outcome = BR_CLOSED;
                    goto out;
                }
                __atomic_store_n(&st->refused, 1, __ATOMIC_RELEASE);
                br_signal(st->notify_fd);
            }
        }
        if (late && at == before) { /* queued, but nothing to read: never spin */
            outcome = BR_TIMEOUT;
            break;
        }
    }
out:
    free(scratch);
    if (low != 1) { /* the socket is the connection's: as its loop had it */
        int one = 1;
        (void)setsockopt(st->fd, SOL_SOCKET, SO_RCVLOWAT, &one, sizeof one);
    }
    return outcome;
}

static void *br_main(void *arg) {
    br_state *st = (br_state *)arg;
    br_lower_priority(st->nice);
    int outcome = br_read(st);
    /* done with the socket: its dup must not keep the connection open */
    close(st->fd);
    st->fd = -1;
    /* after this the body is not touched again (the loop may drop it) */
    __atomic_store_n(&st->outcome, outcome, __ATOMIC_RELEASE);
    br_signal(st->notify_fd);
    br_release(st);
    return NULL;
}

static PyObject *BodyRead_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
    static char *names[] = {"fd", "body", "start", "budget", "timeout_ns", "lowat", "nice", NULL};
    int fd, lowat, nice;
    Py_ssize_t start;
    long long timeout_ns;
    PyObject *body, *budget;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "iSnO!Lii:BodyRead", names, &fd, &body, &start,
                                     &BudgetType, &budget, &timeout_ns, &lowat, &nice))
        return NULL;
    /* a bytes of one byte may be CPython's shared singleton: never written into */
    if (start < 0 || start >= PyBytes_GET_SIZE(body) || PyBytes_GET_SIZE(body) < 2) {
        PyErr_SetString(PyExc_ValueError,
                        "BodyRead: start must be within the body (of 2 bytes or more)");
        return NULL;
    }
    if (timeout_ns < 1 || lowat < 1) {
        PyErr_SetString(PyExc_ValueError, "BodyRead: timeout_ns and lowat must be positive");
        return NULL;
    }
    br_state *st = calloc(1, sizeof *st);
    if (st == NULL)
        return PyErr_NoMemory();
    st->refs = 1;
    st->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    st->notify_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    st->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (st->fd < 0 || st->notify_fd < 0 || st->stop_fd < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        br_release(st);
        return NULL;
    }
    BodyReadObject *r = (BodyReadObject *)type->tp_alloc(type, 0);
    if (r == NULL) {
        br_release(st);
        return NULL;
    }
    r->st = st;
    r->body = Py_NewRef(body);
    r->budget = (BudgetObject *)Py_NewRef(budget);
    st->budget = r->budget;
    st->target = PyBytes_AS_STRING(body) + start;
    st->want = PyBytes_GET_SIZE(body) - start;
    st->timeout_ns = timeout_ns;
    st->lowat = lowat;
    st->page = sysconf(_SC_PAGESIZE);
    st->nice = nice;
    return (PyObject *)r;
}

static PyObject *BodyRead_start(BodyReadObject *r, PyObject *unused) {
    br_state *st = r->st;
    if (r->started || r->body == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "BodyRead.start(): already started");
        return NULL;
    }
    st->last_ns = br_now_ns();
    __atomic_add_fetch(&st->refs, 1, __ATOMIC_ACQ_REL); /* the thread's */
    pthread_t thread;
    int err = br_spawn(&thread, br_main, st, 1);
    if (err != 0) {
        __atomic_sub_fetch(&st->refs, 1, __ATOMIC_ACQ_REL);
        errno = err;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    r->started = 1;
    Py_RETURN_NONE;
}

static int br_running(BodyReadObject *r) {
    return r->started && __atomic_load_n(&r->st->outcome, __ATOMIC_ACQUIRE) == BR_RUNNING;
}

static PyObject *BodyRead_stop(BodyReadObject *r, PyObject *unused) {
    br_signal(r->st->stop_fd);
    Py_RETURN_NONE;
}

static PyObject *BodyRead_ack(BodyReadObject *r, PyObject *unused) {
    uint64_t count;
    ssize_t ignored = read(r->st->notify_fd, &count, sizeof count);
    (void)ignored;
    Py_RETURN_NONE;
}

static PyObject *BodyRead_finish(BodyReadObject *r, PyObject *unused) {
    if (br_running(r)) {
        PyErr_SetString(PyExc_RuntimeError, "BodyRead.finish(): the read has not ended");
        return NULL;
    }
    Py_CLEAR(r->body);
    Py_RETURN_NONE;
}

static void BodyRead_dealloc(BodyReadObject *r) {
    if (r->st != NULL) {
        if (br_running(r)) {
            /* its thread may still write into the body: stop it, and let the body be */
            br_signal(r->st->stop_fd);
            r->body = NULL;
            r->budget = NULL; /* the thread takes from it */
        }
        br_release(r->st);
    }
    Py_CLEAR(r->body);
    Py_CLEAR(r->budget);
    Py_TYPE(r)->tp_free((PyObject *)r);
}

#define BR_ATOMIC_GETTER(name, convert)                                         \
    static PyObject *BodyRead_get_##name(BodyReadObject *r, void *unused) {    \
        return convert(__atomic_load_n(&r->st->name, __ATOMIC_ACQUIRE));       \
    }
BR_ATOMIC_GETTER(got, PyLong_FromLongLong)
BR_ATOMIC_GETTER(refused, PyBool_FromLong)
BR_ATOMIC_GETTER(outcome, PyLong_FromLong)

static PyObject *BodyRead_get_last(BodyReadObject *r, void *unused) {
    return PyFloat_FromDouble((double)__atomic_load_n(&r->st->last_ns, __ATOMIC_ACQUIRE) / 1e9);
}

static PyObject *BodyRead_get_notify_fd(BodyReadObject *r, void *unused) {
    return PyLong_FromLong(r->st->notify_fd);
}

static PyMethodDef BodyRead_methods[] = {
    {"start", (PyCFunction)BodyRead_start, METH_NOARGS, "start(): start the reading thread"},
    {"stop", (PyCFunction)BodyRead_stop, METH_NOARGS,
     "stop(): ask the thread to stop (outcome STOPPED, unless it ended first)"},
    {"ack", (PyCFunction)BodyRead_ack, METH_NOARGS, "ack(): clear notify_fd's readiness"},
    {"finish", (PyCFunction)BodyRead_finish, METH_NOARGS,
     "finish(): once outcome is not RUNNING: drop the body (stop watching notify_fd first)"},
    {NULL}};

static PyGetSetDef BodyRead_getset[] = {
    {"got", (getter)BodyRead_get_got, NULL,
     "bytes read and kept (each taken from the budget as it came)", NULL},
    {"taken", (getter)BodyRead_get_got, NULL, "bytes taken from the budget (== got)", NULL},
    {"refused", (getter)BodyRead_get_refused, NULL, "the budget refused the body", NULL},
    {"outcome", (getter)BodyRead_get_outcome, NULL,
     "0 running, 1 done, 2 timeout, 3 closed (or failed), 4 stopped", NULL},
    {"last", (getter)BodyRead_get_last, NULL, "time.monotonic() of the last byte read", NULL},
    {"notify_fd", (getter)BodyRead_get_notify_fd, NULL,
     "readable when refused changed or the read ended (then call ack())", NULL},
    {NULL}};

PyTypeObject BodyReadType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "atoll.runtime._native.BodyRead",
    .tp_basicsize = sizeof(BodyReadObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "BodyRead(fd, body, start, budget, timeout_ns, lowat, nice): read body[start:] "
              "from the socket fd on a native thread, without the GIL",
    .tp_new = BodyRead_new,
    .tp_dealloc = (destructor)BodyRead_dealloc,
    .tp_methods = BodyRead_methods,
    .tp_getset = BodyRead_getset,
};

/* ---- Reaper ------------------------------------------------------------------ */

/* Frees the pages of large bodies off the loop and off the GIL: put(body) (with the
 * GIL, on the loop) holds the body and hands it to a native SCHED_IDLE thread, which
 * gives the pages wholly inside its data back to the kernel (madvise MADV_DONTNEED:
 * tens of MiB take milliseconds, which the loop must not spend); the object itself is
 * released (its now empty pages unmapped, cheap) by the next put() or collect(), with
 * the GIL. The thread never takes the GIL, shares no lock with the loop (two lock-free
 * stacks and a flag), and waking it never preempts the loop.
 *
 * The thread lives only while there is work: it ends once it finds nothing left to
 * do, and the next put() starts another (a thread costs tens of microseconds; a body
 * put here is 8 MiB or more). So no idle SCHED_IDLE thread is left for the process's
 * exit to wait for: under full CPU load the kernel can take seconds to give one the
 * CPU it needs to die (and a join at shutdown waited as long). A thread that cannot
 * be made (no thread or memory left) is no error: put() frees the body on the
 * calling thread. */

/* The states of a Pool's slot (below); the reaper marks a trimmed one. */
enum { SLOT_EMPTY = 0, SLOT_USED, SLOT_FREE, SLOT_TRIMMING, SLOT_TRIMMED };

typedef struct reap_item {
    PyObject *obj;
    struct reap_item *next;
    Py_ssize_t len;     /* bytes of obj's data whose pages go back */
    int *state;         /* a Pool's slot to mark trimmed after (or NULL: obj is released) */
    PyObject *owner;    /* the Pool that holds that slot (held), or NULL */
} reap_item;

typedef struct {
    PyObject_HEAD
    reap_item *todo;           /* atomic stack: pushed by put(), taken whole by the thread */
    reap_item *done;           /* atomic stack: pushed by the thread, taken by collect() */
    int running;               /* atomic: 1 while a thread owns the todo stack */
    int threads;               /* atomic: threads that may still read this object */
    pid_t pid;                 /* the process that started the last thread */
    unsigned long long reaped; /* atomic */
    long page;
} ReaperObject;

static void reap_push(reap_item **stack, reap_item *first, reap_item *last) {
    reap_item *head = __atomic_load_n(stack, __ATOMIC_RELAXED);
    do {
        last->next = head;
    } while (!__atomic_compare_exchange_n(stack, &head, first, 1, __ATOMIC_RELEASE,
                                          __ATOMIC_RELAXED));
}

static void *reaper_main(void *arg) {
    ReaperObject *r = (ReaperObject *)arg;
    br_lower_priority(19);
    for (;;) {
        reap_item *batch = __atomic_exchange_n(&r->todo, NULL, __ATOMIC_SEQ_CST);
        if (batch == NULL) {
            /* nothing left: end, unless a put() pushed after the exchange and saw this
             * thread running (it started none); then take its work back */
            __atomic_store_n(&r->running, 0, __ATOMIC_SEQ_CST);
            int idle = 0;
            if (__atomic_load_n(&r->todo, __ATOMIC_SEQ_CST) == NULL ||
                !__atomic_compare_exchange_n(&r->running, &idle, 1, 0, __ATOMIC_SEQ_CST,
                                             __ATOMIC_SEQ_CST)) {
                __atomic_sub_fetch(&r->threads, 1, __ATOMIC_SEQ_CST); /* r is not read again */
                return NULL;
            }
            continue;
        }
        reap_item *last = batch;
        unsigned long long n = 0;
        for (reap_item *it = batch; it != NULL; it = it->next) {
            /* the object is held and read by no one: its contents may go */
            uintptr_t start = (uintptr_t)PyBytes_AS_STRING(it->obj);
            uintptr_t end = start + (uintptr_t)it->len;
            uintptr_t first = (start + r->page - 1) / r->page * r->page;
            uintptr_t stop = end / r->page * r->page;
            if (stop > first)
                (void)madvise((void *)first, stop - first, MADV_DONTNEED);
            if (it->state != NULL) /* a pool's free buffer: it may be handed out again */
                __atomic_store_n(it->state, SLOT_TRIMMED, __ATOMIC_RELEASE);
            last = it;
            n++;
        }
        reap_push(&r->done, batch, last);
        __atomic_add_fetch(&r->reaped, n, __ATOMIC_RELEASE);
    }
}

/* Release a list of bodies (GIL held); returns how many. */
static unsigned long long reap_free(reap_item *it) {
    unsigned long long n = 0;
    while (it != NULL) {
        reap_item *next = it->next;
        Py_DECREF(it->obj);
        Py_XDECREF(it->owner);
        PyMem_RawFree(it);
        it = next;
        n++;
    }
    return n;
}

/* Release the objects whose pages went back (GIL held). */
static void reaper_collect(ReaperObject *r) {
    reap_free(__atomic_exchange_n(&r->done, NULL, __ATOMIC_ACQUIRE));
}

static PyObject *Reaper_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
    if (!PyArg_ParseTuple(args, ":Reaper"))
        return NULL;
    ReaperObject *r = (ReaperObject *)type->tp_alloc(type, 0);
    if (r == NULL)
        return NULL;
    r->page = sysconf(_SC_PAGESIZE);
    r->pid = getpid();
    return (PyObject *)r;
}

/* Hand `body` (held) to the thread: its pages [0, len) go back, then it is released; if
 * `state`, a slot of the Pool `owner` is marked trimmed after (GIL held). -1: no memory. */
static int reaper_give(ReaperObject *r, PyObject *body, Py_ssize_t len, int *state,
                       PyObject *owner) {
    reaper_collect(r);
    pid_t pid = getpid();
    if (r->pid != pid) {
        /* a child of fork(): a thread the parent ran stayed there; one is started here
         * (a batch that thread held at the fork is never released in this process) */
        __atomic_store_n(&r->running, 0, __ATOMIC_SEQ_CST);
        __atomic_store_n(&r->threads, 0, __ATOMIC_SEQ_CST);
        r->pid = pid;
    }
    reap_item *it = PyMem_RawMalloc(sizeof *it);
    if (it == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    it->obj = Py_NewRef(body);
    it->len = len;
    it->state = state;
    it->owner = Py_XNewRef(owner);
    reap_push(&r->todo, it, it);
    int idle = 0;
    if (!__atomic_compare_exchange_n(&r->running, &idle, 1, 0, __ATOMIC_SEQ_CST,
                                     __ATOMIC_SEQ_CST))
        return 0; /* the running thread takes it */
    pthread_t thread;
    __atomic_add_fetch(&r->threads, 1, __ATOMIC_SEQ_CST);
    if (br_spawn(&thread, reaper_main, r, 1) != 0) {
        /* no thread: what waits is freed here, with the GIL (a few milliseconds) */
        __atomic_sub_fetch(&r->threads, 1, __ATOMIC_SEQ_CST);
        reap_item *batch = __atomic_exchange_n(&r->todo, NULL, __ATOMIC_SEQ_CST);
        __atomic_store_n(&r->running, 0, __ATOMIC_SEQ_CST);
        for (reap_item *item = batch; item != NULL; item = item->next)
            if (item->state != NULL) /* not trimmed, but free to hand out again */
                __atomic_store_n(item->state, SLOT_TRIMMED, __ATOMIC_RELEASE);
        __atomic_add_fetch(&r->reaped, reap_free(batch), __ATOMIC_RELEASE);
    }
    return 0;
}

static PyObject *Reaper_put(ReaperObject *r, PyObject *body) {
    if (!PyBytes_CheckExact(body)) {
        PyErr_SetString(PyExc_TypeError, "Reaper.put() takes a bytes object");
        return NULL;
    }
    if (reaper_give(r, body, PyBytes_GET_SIZE(body), NULL, NULL) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *Reaper_collect(ReaperObject *r, PyObject *unused) {
    reaper_collect(r);
    Py_RETURN_NONE;
}

static PyObject *Reaper_get_reaped(ReaperObject *r, void *unused) {
    return PyLong_FromUnsignedLongLong(__atomic_load_n(&r->reaped, __ATOMIC_ACQUIRE));
}

static PyObject *Reaper_get_running(ReaperObject *r, void *unused) {
    return PyBool_FromLong(r->pid == getpid() && __atomic_load_n(&r->running, __ATOMIC_SEQ_CST));
}

static void Reaper_dealloc(ReaperObject *r) {
    if (r->pid == getpid() && __atomic_load_n(&r->threads, __ATOMIC_SEQ_CST)) {
        /* its thread still works on it (only a reaper made for a test is dropped while
         * the process goes on; the process's own is dropped at exit, when it is left) */
        if (PY_FINALIZING())
            return;
        Py_BEGIN_ALLOW_THREADS
        while (__atomic_load_n(&r->threads, __ATOMIC_SEQ_CST))
            usleep(1000);
        Py_END_ALLOW_THREADS
    }
    reaper_collect(r);
    reap_free(__atomic_exchange_n(&r->todo, NULL, __ATOMIC_ACQUIRE)); /* never reaped */
    Py_TYPE(r)->tp_free((PyObject *)r);
}

static PyMethodDef Reaper_methods[] = {
    {"put", (PyCFunction)Reaper_put, METH_O,
     "put(body): give body's pages back on the reaper thread, then release it (the caller "
     "holds no other reference that is read)"},
    {"collect", (PyCFunction)Reaper_collect, METH_NOARGS,
     "collect(): release the bodies whose pages went back"},
    {NULL}};

static PyGetSetDef Reaper_getset[] = {
    {"reaped", (getter)Reaper_get_reaped, NULL, "bodies whose pages went back", NULL},
    {"running", (getter)Reaper_get_running, NULL, "whether a thread of it runs", NULL},
    {NULL}};

PyTypeObject ReaperType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "atoll.runtime._native.Reaper",
    .tp_basicsize = sizeof(ReaperObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Reaper(): frees the pages of large bodies on a native thread, without the GIL",
    .tp_new = Reaper_new,
    .tp_dealloc = (destructor)Reaper_dealloc,
    .tp_methods = Reaper_methods,
    .tp_getset = Reaper_getset,
};

/* ---- Pool -------------------------------------------------------------------- */

/* Reuses the memory of large bodies: take(size) hands out a bytes of len `size` made,
 * when one fits, of a buffer that held a body before. A fresh body's pages cost more
 * than their copy: each faults in (allocated, zeroed, charged), and they cost again
 * when freed; under a stream of large bodies that was some 40 % of the node's CPU per
 * body. So the
 * pool keeps the buffers it made, up to `limit` bytes, and hands one out again once
 * nothing but the pool holds it (its reference count is 1: no one can read it).
 *
 * A pooled buffer is a bytes made at its capacity (the size rounded up to a MiB) whose
 * len is set to each body's size (Py_SET_SIZE; its cached hash reset): CPython frees a
 * bytes by its pointer, never by its len. trim() (with the GIL, from a timer of the
 * loop) gives the pages of buffers free for `idle_ns` back to the kernel on the
 * Reaper's thread: once bodies stop coming the pool holds address space, not memory.
 *
 * A slot's state (atomic; all moves with the GIL but the reaper's):
 *   USED (handed out; or free, not seen yet) -> FREE (seen with refcount 1)
 *   FREE -> TRIMMING (trim) -> TRIMMED (the reaper, once the pages went back)
 *   FREE or TRIMMED -> USED (take) or EMPTY (evicted to make room) */

#define POOL_SLOTS 64
#define POOL_ROUND (1024 * 1024)

typedef struct {
    PyObject *obj;     /* held while not EMPTY */
    Py_ssize_t cap;    /* bytes its data holds */
    int state;         /* atomic */
    long long idle_ns; /* CLOCK_MONOTONIC when it was seen free */
} pool_slot;

typedef struct {
    PyObject_HEAD
    pool_slot slots[POOL_SLOTS];
    long long limit;   /* capacity held at most */
    long long held;    /* capacity held */
    long long idle_ns; /* a free buffer's pages go back after this long unused */
    long page;
    ReaperObject *reaper;
    unsigned long long made, reused, trimmed;
} PoolObject;

static PyObject *Pool_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
    static char *names[] = {"limit", "idle_ns", "reaper", NULL};
    long long limit, idle_ns;
    PyObject *reaper;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "LLO!:Pool", names, &limit, &idle_ns,
                                     &ReaperType, &reaper))
        return NULL;
    if (limit < 0 || idle_ns < 0) {
        PyErr_SetString(PyExc_ValueError, "Pool: limit and idle_ns must not be negative");
        return NULL;
    }
    PoolObject *p = (PoolObject *)type->tp_alloc(type, 0);
    if (p == NULL)
        return NULL;
    p->limit = limit;
    p->idle_ns = idle_ns;
    p->page = sysconf(_SC_PAGESIZE);
    p->reaper = (ReaperObject *)Py_NewRef(reaper);
    return (PyObject *)p;
}

/* Note the buffers handed out that nothing else holds now: their idle time starts. */
static void pool_sweep(PoolObject *p) {
    long long now = 0;
    for (int i = 0; i < POOL_SLOTS; i++) {
        pool_slot *s = &p->slots[i];
        if (__atomic_load_n(&s->state, __ATOMIC_ACQUIRE) == SLOT_USED && Py_REFCNT(s->obj) == 1) {
            if (now == 0)
                now = br_now_ns();
            s->idle_ns = now;
            __atomic_store_n(&s->state, SLOT_FREE, __ATOMIC_RELEASE);
        }
    }
}

/* Move a free slot (FREE or TRIMMED, not TRIMMING) to `to`. */
static int pool_claim(pool_slot *s, int to) {
    int from = SLOT_FREE;
    if (__atomic_compare_exchange_n(&s->state, &from, to, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
        return 1;
    from = SLOT_TRIMMED;
    return __atomic_compare_exchange_n(&s->state, &from, to, 0, __ATOMIC_ACQ_REL,
                                       __ATOMIC_ACQUIRE);
}

static int pool_is_free(pool_slot *s) {
    int state = __atomic_load_n(&s->state, __ATOMIC_ACQUIRE);
    return state == SLOT_FREE || state == SLOT_TRIMMED;
}

/* Give a new buffer's pages a mapping (VMA) of their own. The kernel merges adjacent
 * anonymous mappings with the same flags: consecutive bodies (each its own mmap) became
 * one mapping, and any mmap or munmap that grew, split or freed part of it (a loop
 * making or freeing a body, an arena, a thread's stack) waited for every page fault in
 * progress anywhere in it, faults of SCHED_IDLE readers that may wait long for a CPU:
 * a serving loop slept up to 55 ms there. A flag the neighbours do not have
 * (MADV_NOHUGEPAGE, which only keeps transparent huge pages off these pages) keeps the
 * pages wholly inside the data apart; the first and last pages, which the loop or a
 * single fault touches, stay with the neighbours. Called on new memory, before anyone
 * faults it in. (A body glibc serves from its heap, under its mmap threshold, which
 * grows up to 32 MiB with the blocks freed, shares the heap's mapping all the same.) */
static void pool_isolate(PyObject *obj, Py_ssize_t len, long page) {
    uintptr_t start = (uintptr_t)PyBytes_AS_STRING(obj);
    uintptr_t first = (start + page - 1) / page * page;
    uintptr_t stop = (start + (uintptr_t)len) / page * page;
    if (stop > first)
        (void)madvise((void *)first, stop - first, MADV_NOHUGEPAGE);
}

static PyObject *pool_hand_out(PyObject *obj, Py_ssize_t size) {
    Py_SET_SIZE(obj, size);
    PyBytes_AS_STRING(obj)[size] = '\0';
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    ((PyBytesObject *)obj)->ob_shash = -1; /* a hash taken was another body's */
#pragma GCC diagnostic pop
    return Py_NewRef(obj);
}

/* Let go of a free slot's buffer: its pages go back on the reaper's thread. */
static int pool_evict(PoolObject *p, pool_slot *s) {
    if (!pool_claim(s, SLOT_EMPTY))
        return 0;
    PyObject *obj = s->obj;
    s->obj = NULL;
    p->held -= s->cap;
    if (reaper_give(p->reaper, obj, s->cap, NULL, NULL) < 0)
        PyErr_Clear(); /* no memory for the reaper's note: freed here */
    s->cap = 0;
    Py_DECREF(obj);
    return 1;
}

/* A body's bytes the pool does not keep (isolated all the same). */
static PyObject *pool_plain(PoolObject *p, Py_ssize_t size) {
    PyObject *obj = PyBytes_FromStringAndSize(NULL, size);
    if (obj != NULL)
        pool_isolate(obj, size, p->page);
    return obj;
}

static PyObject *Pool_take(PoolObject *p, PyObject *arg) {
    Py_ssize_t size = PyLong_AsSsize_t(arg);
    if (size == -1 && PyErr_Occurred())
        return NULL;
    if (size < 2) { /* a bytes of one byte may be CPython's shared singleton */
        PyErr_SetString(PyExc_ValueError, "Pool.take(): the size must be 2 or more");
        return NULL;
    }
    pool_sweep(p);
    /* the smallest free buffer that holds it, wasting at most a quarter (and a MiB) */
    pool_slot *best = NULL;
    for (int i = 0; i < POOL_SLOTS; i++) {
        pool_slot *s = &p->slots[i];
        if (pool_is_free(s) && s->cap >= size && s->cap - size <= s->cap / 4 + POOL_ROUND &&
            (best == NULL || s->cap < best->cap))
            best = s;
    }
    if (best != NULL && pool_claim(best, SLOT_USED)) {
        p->reused++;
        return pool_hand_out(best->obj, size);
    }
    if (size > p->limit)
        return pool_plain(p, size); /* never pooled */
    Py_ssize_t cap = (size + POOL_ROUND - 1) / POOL_ROUND * POOL_ROUND;
    if (cap > p->limit)
        cap = size;
    /* room: free buffers go, the longest unused first */
    while (p->held + cap > p->limit) {
        pool_slot *oldest = NULL;
        for (int i = 0; i < POOL_SLOTS; i++) {
            pool_slot *s = &p->slots[i];
            if (pool_is_free(s) && (oldest == NULL || s->idle_ns < oldest->idle_ns))
                oldest = s;
        }
        if (oldest == NULL || !pool_evict(p, oldest))
            break;
    }
    pool_slot *empty = NULL;
    for (int i = 0; i < POOL_SLOTS && empty == NULL; i++)
        if (__atomic_load_n(&p->slots[i].state, __ATOMIC_ACQUIRE) == SLOT_EMPTY)
            empty = &p->slots[i];
    if (empty == NULL || p->held + cap > p->limit)
        return pool_plain(p, size); /* the pool is full of bodies in use */
    PyObject *obj = PyBytes_FromStringAndSize(NULL, cap);
    if (obj == NULL)
        return NULL;
    pool_isolate(obj, cap, p->page);
    empty->obj = obj;
    empty->cap = cap;
    p->held += cap;
    p->made++;
    __atomic_store_n(&empty->state, SLOT_USED, __ATOMIC_RELEASE);
    return pool_hand_out(obj, size);
}

static PyObject *Pool_owns(PoolObject *p, PyObject *obj) {
    for (int i = 0; i < POOL_SLOTS; i++)
        if (p->slots[i].obj == obj)
            Py_RETURN_TRUE;
    Py_RETURN_FALSE;
}

static PyObject *Pool_sweep(PoolObject *p, PyObject *unused) {
    pool_sweep(p);
    Py_RETURN_NONE;
}

/* Free buffers unused for idle_ns give their pages back (on the reaper's thread).
 * Returns how many free buffers still hold theirs (a later trim() may take them). */
static PyObject *Pool_trim(PoolObject *p, PyObject *unused) {
    pool_sweep(p);
    reaper_collect(p->reaper);
    long long now = br_now_ns();
    int resident = 0;
    for (int i = 0; i < POOL_SLOTS; i++) {
        pool_slot *s = &p->slots[i];
        if (__atomic_load_n(&s->state, __ATOMIC_ACQUIRE) != SLOT_FREE)
            continue;
        int from = SLOT_FREE;
        if (now - s->idle_ns < p->idle_ns ||
            !__atomic_compare_exchange_n(&s->state, &from, SLOT_TRIMMING, 0, __ATOMIC_ACQ_REL,
                                         __ATOMIC_ACQUIRE)) {
            resident++;
            continue;
        }
        if (reaper_give(p->reaper, s->obj, s->cap, &s->state, (PyObject *)p) < 0) {
            __atomic_store_n(&s->state, SLOT_FREE, __ATOMIC_RELEASE);
            return NULL;
        }
        p->trimmed++;
    }
    return PyLong_FromLong(resident);
}

static PyObject *Pool_get_free(PoolObject *p, void *unused) {
    int n = 0;
    for (int i = 0; i < POOL_SLOTS; i++) {
        int state = __atomic_load_n(&p->slots[i].state, __ATOMIC_ACQUIRE);
        n += state == SLOT_FREE || state == SLOT_TRIMMING || state == SLOT_TRIMMED;
    }
    return PyLong_FromLong(n);
}

static PyObject *Pool_get_resident(PoolObject *p, void *unused) {
    int n = 0;
    for (int i = 0; i < POOL_SLOTS; i++) {
        int state = __atomic_load_n(&p->slots[i].state, __ATOMIC_ACQUIRE);
        n += state == SLOT_FREE || state == SLOT_TRIMMING;
    }
    return PyLong_FromLong(n);
}

static void Pool_dealloc(PoolObject *p) {
    /* a slot being trimmed holds the pool: none is left here */
    for (int i = 0; i < POOL_SLOTS; i++)
        Py_CLEAR(p->slots[i].obj);
    Py_CLEAR(p->reaper);
    Py_TYPE(p)->tp_free((PyObject *)p);
}

static PyMethodDef Pool_methods[] = {
    {"take", (PyCFunction)Pool_take, METH_O,
     "take(size) -> bytes: a new bytes of len size, its contents undefined (fill it before "
     "anyone reads it); made of a free pooled buffer when one fits"},
    {"owns", (PyCFunction)Pool_owns, METH_O, "owns(body) -> bool: body is one of the pool's"},
    {"sweep", (PyCFunction)Pool_sweep, METH_NOARGS,
     "sweep(): note the buffers nothing but the pool holds now (their idle time starts)"},
    {"trim", (PyCFunction)Pool_trim, METH_NOARGS,
     "trim() -> int: free buffers unused for idle_ns give their pages back (on the reaper's "
     "thread); returns how many free buffers still hold theirs"},
    {NULL}};

static PyMemberDef Pool_members[] = {
    {"limit", T_LONGLONG, offsetof(PoolObject, limit), READONLY, "bytes of buffers at most"},
    {"held", T_LONGLONG, offsetof(PoolObject, held), READONLY, "bytes of buffers held"},
    {"made", T_ULONGLONG, offsetof(PoolObject, made), READONLY, "buffers made"},
    {"reused", T_ULONGLONG, offsetof(PoolObject, reused), READONLY, "buffers handed out again"},
    {"trimmed", T_ULONGLONG, offsetof(PoolObject, trimmed), READONLY,
     "times a free buffer's pages were given back"},
    {NULL}};

static PyGetSetDef Pool_getset[] = {
    {"free", (getter)Pool_get_free, NULL, "buffers free now (as last seen)", NULL},
    {"resident", (getter)Pool_get_resident, NULL,
     "free buffers whose pages have not been given back yet", NULL},
    {NULL}};

PyTypeObject PoolType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "atoll.runtime._native.Pool",
    .tp_basicsize = sizeof(PoolObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Pool(limit, idle_ns, reaper): reuses the memory of large request bodies",
    .tp_new = Pool_new,
    .tp_dealloc = (destructor)Pool_dealloc,
    .tp_methods = Pool_methods,
    .tp_members = Pool_members,
    .tp_getset = Pool_getset,
};
