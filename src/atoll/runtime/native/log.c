/*
 * atoll.runtime._native, the request log: LogBook (what a request's log kept and dropped,
 * runtime/logs.py's counters held in C) and atoll:log.write served in C without the GIL.
 *
 * A guest that calls atoll:log.write in a loop would otherwise take the GIL once per
 * call, handing it back and forth with the threads serving other requests. Here a call
 * appends the line to the LogBook's pending buffer (or, once the request's budget is
 * spent, only counts it); the lines become Python strings in the request's list when
 * the outermost call into the store returns (atoll_log_detach, with the GIL), or
 * earlier when Python logs a line itself (LogBook.collect), so the order is kept.
 *
 * The rules are those of RequestLog.add and hostfuncs._log_write (the public backend's
 * implementation): one call is one line, cut at max_line bytes with a note saying so;
 * a line is kept while the request holds fewer than max_lines lines and its bytes
 * (UTF-8, as Python's decoder with errors="replace" makes them) fit in max_bytes;
 * what is not kept is counted: a line not kept as the bytes the guest asked to log, a
 * cut line as the bytes cut off. The limits come from logs.py (LogBook's arguments).
 *
 * write_lines: when the request ends, the CLI's log handler (runtime/logs.py, LineHandler)
 * writes its lines to the log's file with the GIL released: a request that logged its
 * whole budget holds the GIL for a snapshot of its list, not for formatting and encoding
 * it (what a str made of guest bytes costs grows with their kind: a 16 KiB line cut with
 * a note is a UCS-2 str).
 */
#include "module.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

struct LogBookObject {
    PyObject_HEAD
    PyObject *lines;               /* list[str]: the request's log lines */
    Py_ssize_t max_lines, max_bytes, max_line;
    long long kept_lines;          /* lines kept: in `lines`, or pending here */
    long long kept_bytes;
    long long dropped_lines, dropped_bytes;
    /* lines kept but not yet in `lines`: records of a rec_head, then its raw bytes
     * (decoded with errors="replace"), then its note (UTF-8) */
    char *pending;
    size_t pending_len, pending_cap;
    Py_ssize_t pending_count;
};

typedef struct {
    uint32_t raw_len;
    uint32_t note_len;
} rec_head;

/* ---- sizes, as Python counts them ------------------------------------------ */

/* Bytes of the UTF-8 encoding of data.decode("utf-8", errors="replace"): valid sequences
 * count as they are, each maximal invalid subpart (Unicode's "substitution of maximal
 * subparts", which CPython's decoder follows) as one U+FFFD, 3 bytes. */
static size_t utf8_replaced_size(const uint8_t *s, size_t n) {
    size_t i = 0, out = 0;
    while (i < n) {
        uint64_t eight;
        if (n - i >= 8 && (memcpy(&eight, s + i, 8), (eight & 0x8080808080808080ULL) == 0)) {
            out += 8; /* eight ASCII bytes */
            i += 8;
            continue;
        }
        uint8_t c = s[i];
        if (c < 0x80) {
            out++;
            i++;
            continue;
        }
        int need;
        uint8_t lo = 0x80, hi = 0xBF; /* the range of the byte after c */
        if (c >= 0xC2 && c <= 0xDF) {
            need = 1;
        } else if (c == 0xE0) {
            need = 2;
            lo = 0xA0;
        } else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) {
            need = 2;
        } else if (c == 0xED) {
            need = 2;
            hi = 0x9F;
        } else if (c == 0xF0) {
            need = 3;
            lo = 0x90;
        } else if (c >= 0xF1 && c <= 0xF3) {
            need = 3;
        } else if (c == 0xF4) {
            need = 3;
            hi = 0x8F;
        } else { /* 0x80..0xC1, 0xF5..0xFF: never a lead byte */
            out += 3;
            i++;
            continue;
        }
        size_t j = i + 1;
        int k = 0;
        while (k < need && j < n && s[j] >= lo && s[j] <= hi) {
            j++;
            k++;
            lo = 0x80;
            hi = 0xBF;
        }
        out += k == need ? (size_t)need + 1 : 3; /* a valid sequence, or one U+FFFD */
        i = j;
    }
    return out;
}

/* ---- writing: no GIL needed ----------------------------------------------------- */

static inline int book_full(const LogBookObject *b) {
    return b->kept_lines >= b->max_lines || b->kept_bytes >= b->max_bytes;
}

static void book_drop(LogBookObject *b, long long lines, long long nbytes) {
    b->dropped_lines += lines;
    b->dropped_bytes += nbytes;
}

/* Keep a line of `size` bytes (raw + note) if the budget allows (RequestLog.add); if
 * not, count the `written` bytes the guest asked to log. 1 if kept. */
static int book_add(LogBookObject *b, const char *raw, uint32_t raw_len, const char *note,
                    uint32_t note_len, size_t size, uint32_t written) {
    if (b->kept_lines >= b->max_lines || b->kept_bytes + (long long)size > b->max_bytes) {
        book_drop(b, 1, written);
        return 0;
    }
    size_t need = sizeof(rec_head) + raw_len + note_len;
    if (b->pending_len + need > b->pending_cap) {
        size_t cap = b->pending_cap ? b->pending_cap : 4096;
        while (cap < b->pending_len + need)
            cap *= 2;
        char *grown = PyMem_RawRealloc(b->pending, cap);
        if (grown == NULL) { /* the host is out of memory: the line is not kept */
            book_drop(b, 1, written);
            return 0;
        }
        b->pending = grown;
        b->pending_cap = cap;
    }
    rec_head h = {raw_len, note_len};
    char *at = b->pending + b->pending_len;
    memcpy(at, &h, sizeof h);
    memcpy(at + sizeof h, raw, raw_len);
    memcpy(at + sizeof h + raw_len, note, note_len);
    b->pending_len += need;
    b->pending_count++;
    b->kept_lines++;
    b->kept_bytes += (long long)size;
    return 1;
}

/* One atoll:log.write(ptr, length): `data` is guest memory at ptr (NULL when ptr/length
 * is out of bounds); hostfuncs._log_write, step for step. */
static void book_write(LogBookObject *b, const uint8_t *data, uint32_t ptr, uint32_t length) {
    if (book_full(b)) { /* nothing read or copied */
        book_drop(b, 1, length);
        return;
    }
    char note[96];
    if (data == NULL) {
        int n = snprintf(note, sizeof note, "<atoll:log.write: bad pointer/length %u/%u>", ptr,
                         length);
        book_add(b, note, (uint32_t)n, "", 0, (size_t)n, length);
        return;
    }
    uint32_t n = length < (uint64_t)b->max_line ? length : (uint32_t)b->max_line;
    int note_len = 0;
    if (length > (uint64_t)b->max_line)
        note_len = snprintf(note, sizeof note, "\xe2\x80\xa6 (cut at %zd bytes of %u)",
                            b->max_line, length);
    /* the line takes at least its raw bytes (a replacement only adds): when those do not
     * fit, it is not kept, and its bytes need not be read */
    if (b->kept_bytes + (long long)n + note_len > b->max_bytes) {
        book_drop(b, 1, length);
        return;
    }
    size_t size = utf8_replaced_size(data, n) + (size_t)note_len;
    if (book_add(b, (const char *)data, n, note, (uint32_t)note_len, size, length) && note_len)
        book_drop(b, 0, (long long)length - b->max_line); /* the part cut off */
}

int atoll_book_full(const LogBookObject *b) { return book_full(b); }

Py_ssize_t atoll_book_max_line(const LogBookObject *b) { return b->max_line; }

void atoll_book_drop(LogBookObject *b, long long lines, long long nbytes) {
    book_drop(b, lines, nbytes);
}

void atoll_book_add_line(LogBookObject *b, const char *raw, uint32_t raw_len, const char *note,
                         uint32_t note_len) {
    size_t size = utf8_replaced_size((const uint8_t *)raw, raw_len) + note_len;
    book_add(b, raw, raw_len, note, note_len, size, (uint32_t)(size > 0xFFFFFFFFu ? 0xFFFFFFFFu : size));
}

/* ---- collecting: with the GIL ----------------------------------------------------- */

/* Move the pending lines into `lines`. -1 with an exception set if one could not be
 * made (the lines not moved are then counted as dropped, not kept). */
static int book_collect(LogBookObject *b) {
    size_t at = 0;
    int rc = 0;
    while (at < b->pending_len) {
        rec_head h;
        memcpy(&h, b->pending + at, sizeof h);
        const char *raw = b->pending + at + sizeof h;
        PyObject *line = PyUnicode_DecodeUTF8(raw, h.raw_len, "replace");
        if (line != NULL && h.note_len) {
            PyObject *note = PyUnicode_DecodeUTF8(raw + h.raw_len, h.note_len, "strict");
            if (note == NULL) {
                Py_CLEAR(line);
            } else {
                PyUnicode_Append(&line, note);
                Py_DECREF(note);
            }
        }
        if (line == NULL || PyList_Append(b->lines, line) < 0) {
            Py_XDECREF(line);
            rc = -1;
            break;
        }
        Py_DECREF(line);
        at += sizeof h + h.raw_len + h.note_len;
        b->pending_count--;
    }
    if (rc < 0) { /* what is left is not kept */
        b->kept_lines -= b->pending_count;
        book_drop(b, b->pending_count, 0);
    }
    b->pending_len = 0;
    b->pending_count = 0;
    return rc;
}

static void collect_keeping_error(LogBookObject *b) {
    if (b->pending_len) {
        PyObject *et, *ev, *etb;
        PyErr_Fetch(&et, &ev, &etb);
        if (book_collect(b) < 0)
            PyErr_Clear();
        PyErr_Restore(et, ev, etb);
    }
}

/* The outermost call into m's store returned: its log lines (atoll:log.write's, and a
 * CGI run's stderr) go to the request's list, and the LogBook is let go (a warm store
 * serves other requests next). With the GIL. */
void atoll_log_detach(MeterObject *m) {
    LogBookObject *b = m->log;
    m->log = NULL;
    StdioObject *out = m->out;
    m->out = NULL;
    if (m->stdio != NULL) {
        LogBookObject *err = atoll_stdio_log(m->stdio);
        if (err != NULL && err != b)
            collect_keeping_error(err);
    }
    if (out != NULL) {
        LogBookObject *err = atoll_stdio_log(out);
        if (err != NULL && err != b)
            collect_keeping_error(err);
        Py_DECREF(out);
    }
    if (b == NULL)
        return;
    collect_keeping_error(b);
    Py_DECREF(b);
}

/* The LogBook of the request the outermost call runs for (invocation.log_book.counts),
 * or NULL. Takes the GIL (once per outermost call that logs). */
static LogBookObject *attach(MeterObject *m) {
    if (m->depth == 0 || m->invocation == NULL)
        return NULL;
    PyGILState_STATE g = PyGILState_Ensure();
    LogBookObject *found = NULL;
    PyObject *book = PyObject_GetAttrString(m->invocation, "log_book");
    PyObject *counts = book ? PyObject_GetAttrString(book, "counts") : NULL;
    if (counts != NULL && Py_TYPE(counts) == &LogBookType) {
        Py_INCREF(counts);
        found = m->log = (LogBookObject *)counts;
    }
    if (PyErr_Occurred())
        PyErr_Clear(); /* not an Invocation: Python serves the call */
    Py_XDECREF(counts);
    Py_XDECREF(book);
    PyGILState_Release(g);
    return found;
}

/* atoll:log.write(ptr, len) for a store with a Meter. */
wt_trap_t *atoll_log_write(MeterObject *m, void *caller, wt_val_raw_t *vals) {
    LogBookObject *b = m->log != NULL ? m->log : attach(m);
    if (b == NULL)
        return FALLBACK;
    uint32_t ptr = (uint32_t)vals[0].i32, length = (uint32_t)vals[1].i32;
    if (book_full(b)) {
        book_drop(b, 1, length);
        return NULL;
    }
    const uint8_t *data = NULL;
    wt_extern_t item;
    memset(&item, 0, sizeof(item));
    if (W.caller_export_get(caller, "memory", 6, &item) && item.kind == WT_EXTERN_MEMORY) {
        wt_context_t *ctx = W.caller_context(caller);
        uint8_t *base = W.memory_data(ctx, &item.of.memory);
        size_t size = W.memory_data_size(ctx, &item.of.memory);
        uint64_t n = length < (uint64_t)b->max_line ? length : (uint64_t)b->max_line;
        if (base != NULL && (uint64_t)ptr + n <= size)
            data = base + ptr;
    }
    book_write(b, data, ptr, length);
    return NULL;
}

/* ---- writing a request's lines to the log: one str at a time, without the GIL --------- */

/* A str as write_lines reads it: its data stays put while the caller holds a reference
 * (a str never changes), so it is read with the GIL released. */
typedef struct {
    int kind;             /* PyUnicode_1BYTE_KIND (ascii or latin-1), 2BYTE, 4BYTE */
    int ascii;
    const void *data;
    Py_ssize_t length;
} text_ref;

static int text_of(PyObject *s, text_ref *t) {
    if (!PyUnicode_CheckExact(s))
        return -1;
#if PY_VERSION_HEX < 0x030C0000
    if (PyUnicode_READY(s) < 0)
        return -1;
#endif
    t->kind = PyUnicode_KIND(s);
    t->ascii = PyUnicode_IS_ASCII(s);
    t->data = PyUnicode_DATA(s);
    t->length = PyUnicode_GET_LENGTH(s);
    return 0;
}

/* 1 if t holds a lone surrogate (which UTF-8 cannot carry: Python's stream decides). */
static int has_surrogate(const text_ref *t) {
    if (t->kind == PyUnicode_2BYTE_KIND) {
        const Py_UCS2 *u = t->data;
        for (Py_ssize_t i = 0; i < t->length; i++)
            if (u[i] >= 0xD800 && u[i] <= 0xDFFF)
                return 1;
    } else if (t->kind == PyUnicode_4BYTE_KIND) {
        const Py_UCS4 *u = t->data;
        for (Py_ssize_t i = 0; i < t->length; i++)
            if (u[i] >= 0xD800 && u[i] <= 0xDFFF)
                return 1;
    }
    return 0;
}

#define WRITE_CHUNK 65536

typedef struct {
    int fd;
    int err;              /* errno of a failed write, or 0 */
    size_t len;
    /* never waiting for the reader (write_lines with a carry): once the fd takes no
     * more, what is left of the line being written goes to `carry`, and the lines
     * after it are counted, not written */
    int nb;
    int notsock;          /* nb: fd is no socket: write() (fd is non-blocking), not send() */
    int blocked;          /* nb: the fd took no more; the rest of this line goes to carry */
    int dropping;         /* nb: lines are counted, not written */
    char *carry;
    size_t carry_len, carry_cap;
    size_t limit;         /* nb: lines go on into the carry until it holds this much */
    long long dropped_lines, dropped_bytes;
    char buf[WRITE_CHUNK];
} writer;

static void carry_add(writer *w, const char *p, size_t n) {
    if (w->carry_len + n > w->carry_cap) {
        size_t cap = (w->carry_len + n) * 2;
        char *grown = realloc(w->carry, cap);
        if (grown == NULL) {
            w->err = ENOMEM;
            return;
        }
        w->carry = grown;
        w->carry_cap = cap;
    }
    memcpy(w->carry + w->carry_len, p, n);
    w->carry_len += n;
}

static ssize_t writer_out(writer *w, const char *p, size_t n) {
    if (w->nb && !w->notsock) {
        /* a socket (journald's stdout stream): this send alone does not wait */
        ssize_t sent = send(w->fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (sent >= 0 || errno != ENOTSOCK)
            return sent;
        w->notsock = 1;
    }
    return write(w->fd, p, n);
}

static void writer_flush(writer *w) {
    if (w->dropping) {
        w->dropped_bytes += (long long)w->len;
        w->len = 0;
        return;
    }
    if (w->blocked) {
        carry_add(w, w->buf, w->len);
        w->len = 0;
        return;
    }
    size_t at = 0;
    while (at < w->len && !w->err) {
        ssize_t n = writer_out(w, w->buf + at, w->len - at);
        if (n > 0)
            at += (size_t)n;
        else if (n < 0 && errno == EINTR)
            continue;
        else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (w->nb) { /* the reader is behind: keep the rest, write nothing more */
                w->blocked = 1;
                carry_add(w, w->buf + at, w->len - at);
                break;
            }
            /* a non-blocking fd (stdio can be shared with a process that made it so):
             * wait until it takes more, as a blocking one would, instead of failing
             * mid-line or spinning */
            struct pollfd p = {w->fd, POLLOUT, 0};
            if (poll(&p, 1, -1) < 0 && errno != EINTR)
                w->err = errno;
        } else
            w->err = n < 0 ? errno : EIO;
    }
    w->len = 0;
}

/* n bytes as they are (a carry: whole lines, already encoded). */
static void put_bytes(writer *w, const char *p, size_t n) {
    while (n > 0 && !w->err) {
        if (w->len == WRITE_CHUNK)
            writer_flush(w);
        size_t take = WRITE_CHUNK - w->len < n ? WRITE_CHUNK - w->len : n;
        memcpy(w->buf + w->len, p, take);
        w->len += take;
        p += take;
        n -= take;
    }
}

/* Between two lines: once the fd took no more, lines go on into the carry (the line it
 * stopped in first) until the carry holds `limit` bytes; every line after is dropped. */
static void writer_line_done(writer *w) {
    if (w->blocked && !w->dropping) {
        writer_flush(w); /* what the buffer holds, whole lines, into the carry */
        if (w->carry_len >= w->limit)
            w->dropping = 1;
    }
}

/* c (not a surrogate) as UTF-8 at o; the bytes written. */
static inline size_t utf8_put(char *o, Py_UCS4 c) {
    if (c < 0x80) {
        o[0] = (char)c;
        return 1;
    }
    if (c < 0x800) {
        o[0] = (char)(0xC0 | (c >> 6));
        o[1] = (char)(0x80 | (c & 0x3F));
        return 2;
    }
    if (c < 0x10000) {
        o[0] = (char)(0xE0 | (c >> 12));
        o[1] = (char)(0x80 | ((c >> 6) & 0x3F));
        o[2] = (char)(0x80 | (c & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (c >> 18));
    o[1] = (char)(0x80 | ((c >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((c >> 6) & 0x3F));
    o[3] = (char)(0x80 | (c & 0x3F));
    return 4;
}

/* t as UTF-8 (t holds no lone surrogate): ASCII copied, the rest encoded in runs that
 * fit the buffer (at most 4 bytes a character). */
static void put_text(writer *w, const text_ref *t) {
    Py_ssize_t i = 0;
    while (i < t->length && !w->err) {
        if (WRITE_CHUNK - w->len < 4)
            writer_flush(w);
        size_t room = WRITE_CHUNK - w->len;
        Py_ssize_t n = t->length - i;
        if (t->ascii) {
            if ((size_t)n > room)
                n = (Py_ssize_t)room;
            memcpy(w->buf + w->len, (const char *)t->data + i, (size_t)n);
            w->len += (size_t)n;
        } else {
            if ((size_t)n > room / 4)
                n = (Py_ssize_t)(room / 4);
            char *o = w->buf + w->len;
            if (t->kind == PyUnicode_1BYTE_KIND) {
                const Py_UCS1 *u = (const Py_UCS1 *)t->data + i;
                for (Py_ssize_t k = 0; k < n; k++)
                    o += utf8_put(o, u[k]);
            } else if (t->kind == PyUnicode_2BYTE_KIND) {
                const Py_UCS2 *u = (const Py_UCS2 *)t->data + i;
                for (Py_ssize_t k = 0; k < n; k++)
                    o += utf8_put(o, u[k]);
            } else {
                const Py_UCS4 *u = (const Py_UCS4 *)t->data + i;
                for (Py_ssize_t k = 0; k < n; k++)
                    o += utf8_put(o, u[k]);
            }
            w->len = (size_t)(o - w->buf);
        }
        i += n;
    }
}

/* write_lines(fd, head, end, lines[, carry, limit, socket]) -> bool: head + line + end for each line, as
 * UTF-8, to fd, without the GIL (LineHandler, runtime/logs.py). False, with nothing
 * written, when one of them is not a str or holds a lone surrogate (the caller's stream
 * then writes them as its errors= says); OSError if a write fails.
 *
 * With carry (bytes: whole lines already encoded, written first), it never waits for
 * the reader: fd is a socket (`socket`: sent with MSG_DONTWAIT) or non-blocking. Once fd takes no
 * more, what is left is kept, whole lines, while the kept bytes are under `limit`, and
 * every later line is counted, not written; it returns (carry, dropped_lines, dropped_bytes): what to write first
 * next time (b"" when all went) and what was dropped. */
PyObject *atoll_write_lines(PyObject *mod, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs < 4 || nargs > 7 || !PyLong_Check(args[0]) || !PyList_Check(args[3]) ||
        (nargs >= 5 && args[4] != Py_None && !PyBytes_Check(args[4])) ||
        (nargs >= 6 && !PyLong_Check(args[5]))) {
        PyErr_SetString(PyExc_TypeError,
                        "write_lines(fd: int, head: str, end: str, lines: list, carry: bytes | "
                        "None = None, limit: int = 0, socket: bool = False)");
        return NULL;
    }
    Py_ssize_t limit = nargs >= 6 ? PyLong_AsSsize_t(args[5]) : 0;
    if (limit == -1 && PyErr_Occurred())
        return NULL;
    if (limit < 0) {
        PyErr_SetString(PyExc_ValueError, "write_lines: limit must be >= 0");
        return NULL;
    }
    long fd = PyLong_AsLong(args[0]);
    if (fd == -1 && PyErr_Occurred())
        return NULL;
    if (fd < 0 || fd > INT_MAX) {
        PyErr_SetString(PyExc_ValueError, "write_lines: fd out of range");
        return NULL;
    }
    PyObject *carry_in = nargs >= 5 && args[4] != Py_None ? args[4] : NULL; /* held by the caller */
    PyObject *lines = PySequence_Tuple(args[3]); /* the strs stay alive while written */
    if (lines == NULL)
        return NULL;
    Py_ssize_t count = PyTuple_GET_SIZE(lines);
    text_ref head, end;
    text_ref *refs = PyMem_RawMalloc(sizeof(text_ref) * (size_t)(count ? count : 1));
    writer *w = PyMem_RawCalloc(1, sizeof(writer));
    PyObject *result = NULL;
    if (refs == NULL || w == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    int ok = text_of(args[1], &head) == 0 && text_of(args[2], &end) == 0;
    for (Py_ssize_t i = 0; ok && i < count; i++)
        ok = text_of(PyTuple_GET_ITEM(lines, i), &refs[i]) == 0;
    if (PyErr_Occurred())
        goto done;
    if (!ok) {
        result = Py_NewRef(Py_False);
        goto done;
    }
    w->fd = (int)fd;
    w->nb = carry_in != NULL;
    w->limit = (size_t)limit;
    w->notsock = !(nargs == 7 && PyObject_IsTrue(args[6]) == 1);
    const char *carry_data = carry_in ? PyBytes_AS_STRING(carry_in) : NULL;
    size_t carry_size = carry_in ? (size_t)PyBytes_GET_SIZE(carry_in) : 0;
    Py_BEGIN_ALLOW_THREADS
    ok = !has_surrogate(&head) && !has_surrogate(&end);
    for (Py_ssize_t i = 0; ok && i < count; i++)
        ok = !has_surrogate(&refs[i]);
    if (ok && carry_size)
        put_bytes(w, carry_data, carry_size);
    for (Py_ssize_t i = 0; ok && i < count && !w->err; i++) {
        writer_line_done(w);
        if (w->dropping)
            w->dropped_lines++;
        put_text(w, &head);
        put_text(w, &refs[i]);
        put_text(w, &end);
    }
    if (ok && !w->err)
        writer_flush(w);
    Py_END_ALLOW_THREADS
    if (w->err) {
        errno = w->err;
        PyErr_SetFromErrno(PyExc_OSError);
        goto done;
    }
    if (!ok)
        result = Py_NewRef(Py_False);
    else if (!w->nb)
        result = Py_NewRef(Py_True);
    else
        result = Py_BuildValue("(y#LL)", w->carry ? w->carry : "", (Py_ssize_t)w->carry_len,
                               w->dropped_lines, w->dropped_bytes);
done:
    if (w != NULL)
        free(w->carry);
    PyMem_RawFree(w);
    PyMem_RawFree(refs);
    Py_DECREF(lines);
    return result;
}

/* ---- the Python type ------------------------------------------------------------- */

static int LogBook_init(LogBookObject *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"lines", "max_lines", "max_bytes", "max_line", NULL};
    PyObject *lines;
    Py_ssize_t max_lines, max_bytes, max_line;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O!nnn:LogBook", kwlist, &PyList_Type, &lines,
                                     &max_lines, &max_bytes, &max_line))
        return -1;
    if (max_lines < 0 || max_bytes < 0 || max_line < 0 || max_line > 0x7FFFFFFF) {
        PyErr_SetString(PyExc_ValueError, "LogBook: limits must be >= 0 (max_line < 2**31)");
        return -1;
    }
    Py_INCREF(lines);
    Py_XSETREF(self->lines, lines);
    self->max_lines = max_lines;
    self->max_bytes = max_bytes;
    self->max_line = max_line;
    return 0;
}

static void LogBook_dealloc(LogBookObject *self) {
    Py_XDECREF(self->lines);
    PyMem_RawFree(self->pending);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

int atoll_book_collect(LogBookObject *b) { return b->pending_len ? book_collect(b) : 0; }

static PyObject *LogBook_collect(LogBookObject *self, PyObject *unused) {
    if (self->pending_len && book_collect(self) < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* write(data, length=len(data)): what atoll:log.write does with guest bytes (for tests,
 * and for a caller that has the bytes already); data None: a bad pointer. */
static PyObject *LogBook_write(LogBookObject *self, PyObject *args) {
    Py_buffer view = {0};
    PyObject *data;
    long long length = -1;
    unsigned int ptr = 0;
    if (!PyArg_ParseTuple(args, "O|LI:write", &data, &length, &ptr))
        return NULL;
    if (data != Py_None && PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    if (length < 0)
        length = view.len;
    long long want = length < self->max_line ? length : self->max_line;
    if (length > 0xFFFFFFFFLL || (data != Py_None && view.len < want)) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError,
                        "LogBook.write: length is a u32, and data holds min(length, max_line) bytes");
        return NULL;
    }
    book_write(self, data == Py_None ? NULL : view.buf, ptr, (uint32_t)length);
    if (data != Py_None)
        PyBuffer_Release(&view);
    Py_RETURN_NONE;
}

static PyMethodDef LogBook_methods[] = {
    {"collect", (PyCFunction)LogBook_collect, METH_NOARGS,
     "move the lines written in C (pending) into the list of lines"},
    {"write", (PyCFunction)LogBook_write, METH_VARARGS,
     "write(data, length=len(data), ptr=0): as atoll:log.write with these guest bytes "
     "(data None: a bad pointer)"},
    {NULL},
};

static PyMemberDef LogBook_members[] = {
    {"lines", T_OBJECT, offsetof(LogBookObject, lines), READONLY, "the request's lines"},
    {"kept_lines", T_LONGLONG, offsetof(LogBookObject, kept_lines), 0, "lines kept"},
    {"kept_bytes", T_LONGLONG, offsetof(LogBookObject, kept_bytes), 0, "bytes of lines kept"},
    {"dropped_lines", T_LONGLONG, offsetof(LogBookObject, dropped_lines), 0,
     "lines not kept (whole or partial)"},
    {"dropped_bytes", T_LONGLONG, offsetof(LogBookObject, dropped_bytes), 0, "bytes not kept"},
    {"pending", T_PYSSIZET, offsetof(LogBookObject, pending_count), READONLY,
     "lines kept in C and not yet in lines (collect() moves them)"},
    {"max_lines", T_PYSSIZET, offsetof(LogBookObject, max_lines), READONLY, NULL},
    {"max_bytes", T_PYSSIZET, offsetof(LogBookObject, max_bytes), READONLY, NULL},
    {"max_line", T_PYSSIZET, offsetof(LogBookObject, max_line), READONLY, NULL},
    {NULL},
};

PyTypeObject LogBookType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "atoll.runtime._native.LogBook",
    .tp_basicsize = sizeof(LogBookObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "LogBook(lines, max_lines, max_bytes, max_line): a request's log counters, "
              "and the lines atoll:log.write wrote in C",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)LogBook_init,
    .tp_dealloc = (destructor)LogBook_dealloc,
    .tp_methods = LogBook_methods,
    .tp_members = LogBook_members,
};
