"""A request's log lines, bounded: a guest cannot make the host keep or print more than this.

Every line a request logs goes through :meth:`RequestLog.add`: a guest's
stderr (and the stdout of WASI modules called from Python), ``atoll:log.write``,
the reasons ``atoll:kv`` logs, and the worker's own ``ctx.log``. A request keeps
at most :data:`MAX_LOG_LINES` lines and :data:`MAX_LOG_BYTES` bytes of them,
each line at most :data:`MAX_LOG_LINE` characters (longer lines are cut and say
so). What does not fit is counted, and one last line says how much was dropped
(added when the request ends, see :meth:`RequestLog.finish`). The limits are
listed in ``docs/limits.md``.

On the native backend ``atoll:log.write`` is served in C without the GIL
(``runtime/native/log.c``): the request's counters then live in a
``_native.LogBook`` (:attr:`RequestLog.counts`), made with the limits below
(their one definition), which the C writer and :class:`RequestLog` share; the
lines it keeps reach :attr:`RequestLog.lines` when the guest's call returns,
or before Python logs a line of its own (:meth:`LogCounts.collect`).

When the request ends, the host logs its lines (``http/app.py``, cron runs,
service calls) with :func:`log_lines`: a record per line, ``"  [ID] line"``, as
any ``logging`` handler expects; the CLI's handler (:class:`LineHandler`, set
by ``--log-level``) takes all of a request's lines at once, so that a request
that logged its 1,000 lines costs the thread that ends it one write, not 1,000
records; when its stream is a file in UTF-8 they are encoded and written in C
with the GIL released (``_native.write_lines``), so that the other requests of
the process do not wait for a request's log, whatever its size or characters.

Nor do they wait for the log's reader: when the stream is a pipe or a socket
(a terminal pager, a log shipper, journald), :class:`LineHandler` writes
without waiting for it. What the pipe does not take is kept, whole lines, up
to :data:`LOG_BUFFER` bytes (1 MiB), and written first next time; the lines
after that are dropped and counted, and once the reader has caught up the log says
``atoll: N log lines (M bytes) dropped: the log's reader did not keep up``.
A node whose log nobody reads goes on serving; a file or terminal is written
as before (a file does not wait for a reader).
"""

from __future__ import annotations

import codecs
import logging
import os
import stat
from collections.abc import Sequence
from typing import Protocol, TextIO

try:
    from atoll.runtime._native import write_lines as _write_lines
except ImportError:  # pragma: no cover - a source tree without its build: the stream writes
    _write_lines = None  # type: ignore[assignment]

__all__ = [
    "LOG_BUFFER",
    "MAX_LOG_BYTES",
    "MAX_LOG_LINE",
    "MAX_LOG_LINES",
    "LineHandler",
    "LogCounts",
    "PyLogCounts",
    "RequestLog",
    "cut_line",
    "log_lines",
]

#: Lines kept per request.
MAX_LOG_LINES = 1000
#: Bytes (UTF-8) of log lines kept per request: Workers keeps 256 KB of log events
#: per invocation (docs/limits.md).
MAX_LOG_BYTES = 256 * 1024
#: Longest line kept, in characters (a guest's raw lines are cut at as many bytes first).
MAX_LOG_LINE = 16 * 1024
#: Bytes of whole log lines kept for a pipe or socket whose reader is behind, before
#: further lines are dropped (:class:`LineHandler`).
LOG_BUFFER = 1024 * 1024


def cut_line(line: str, limit: int = MAX_LOG_LINE) -> str:
    """``line`` cut at ``limit`` characters, saying so."""
    if len(line) <= limit:
        return line
    return f"{line[:limit]}… (cut at {limit} characters of {len(line)})"


def _size(line: str) -> int:
    return len(line) if line.isascii() else len(line.encode("utf-8", errors="replace"))


class LogCounts(Protocol):
    """What a request's log kept and dropped: :class:`PyLogCounts`, or the native
    backend's ``_native.LogBook`` (whose C writer adds ``pending`` lines)."""

    kept_lines: int
    kept_bytes: int
    dropped_lines: int
    dropped_bytes: int
    #: Lines kept by the C writer and not yet in the request's list.
    pending: int

    def collect(self) -> None:
        """Move the ``pending`` lines into the request's list (before Python adds one)."""
        ...


class PyLogCounts:
    """:class:`LogCounts` kept in Python (the public backend: no C writer)."""

    __slots__ = ("dropped_bytes", "dropped_lines", "kept_bytes", "kept_lines")

    pending = 0

    def __init__(self) -> None:
        self.kept_lines = self.kept_bytes = self.dropped_lines = self.dropped_bytes = 0

    def collect(self) -> None:
        pass


class RequestLog:
    """The lines of one request and what was dropped from them. Not shared between threads.

    ``lines`` is the list the request's result carries (appended to in place);
    ``counts`` what was kept and dropped (by default in Python; the backend may
    pass its own, see the module notes).
    """

    __slots__ = ("counts", "lines")

    def __init__(self, lines: list[str], counts: LogCounts | None = None) -> None:
        self.lines = lines
        self.counts: LogCounts = PyLogCounts() if counts is None else counts

    def full(self) -> bool:
        """No further line would be kept (a writer may then only count what it drops)."""
        counts = self.counts
        return counts.kept_lines >= MAX_LOG_LINES or counts.kept_bytes >= MAX_LOG_BYTES

    def add(self, line: str, *, cut: bool = True, written: int | None = None) -> bool:
        """Keep ``line`` (cut at :data:`MAX_LOG_LINE` characters, unless a writer cut it at
        as many bytes already: ``cut=False``) if the request's budget allows; True if kept.
        A line not kept counts as ``written`` bytes dropped (what the guest asked to log;
        default: the line's own UTF-8 size)."""
        counts = self.counts
        if counts.pending:  # lines a guest logged in C come first
            counts.collect()
        if cut:
            line = cut_line(line)
        size = _size(line)
        if counts.kept_lines >= MAX_LOG_LINES or counts.kept_bytes + size > MAX_LOG_BYTES:
            self.drop(1, size if written is None else written)
            return False
        counts.kept_lines += 1
        counts.kept_bytes += size
        self.lines.append(line)
        return True

    def drop(self, lines: int, nbytes: int) -> None:
        """Count output that was not kept (``lines`` whole or partial lines, ``nbytes`` bytes)."""
        counts = self.counts
        counts.dropped_lines += lines
        counts.dropped_bytes += nbytes

    def finish(self) -> None:
        """Say what was dropped, in one last line (called once, when the request ends)."""
        counts = self.counts
        if counts.pending:
            counts.collect()
        if counts.dropped_lines or counts.dropped_bytes:
            self.lines.append(
                f"… {counts.dropped_lines} lines / {counts.dropped_bytes} bytes dropped (a request"
                f" logs at most {MAX_LOG_LINES} lines and {MAX_LOG_BYTES} bytes)"
            )
            counts.dropped_lines = counts.dropped_bytes = 0


# -- writing a request's lines to the log -------------------------------------------------

#: Where the line goes in the one record :meth:`LineHandler.emit_lines` formats.
_MARK = "\x00atoll-line\x00"


class LineHandler(logging.StreamHandler[TextIO]):
    """A ``StreamHandler`` that writes all the lines of a request at once, and never
    waits for a pipe's reader.

    :func:`log_lines` hands it a request's lines together (:meth:`emit_lines`);
    every other record is emitted as a ``StreamHandler`` does. What it writes is
    what one record per line would have written, each line formatted alike,
    provided its formatter puts the message in unchanged (``logging.Formatter``
    does); when the message does not come out whole (a JSON formatter escapes
    it), each line is emitted as its own record.

    On a pipe or socket in UTF-8 every record and line goes through
    ``_native.write_lines`` without waiting for the reader (module notes): the
    thread that logs (an event loop) is never held by a slow reader.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__(stream)
        self._for: object = None  # the stream _fd was found for
        self._fd: int | None = None  # a descriptor that never waits for the reader
        self._own_fd = False  # _fd was opened here (closed with the handler)
        self._socket = False  # _fd is a socket (sent to with MSG_DONTWAIT)
        self._carry = b""  # whole lines the reader has not taken yet, written first
        self._dropped_lines = 0
        self._dropped_bytes = 0

    def emit_lines(self, record: logging.LogRecord, lines: Sequence[str]) -> None:
        """Write ``record`` once per line of ``lines``, each in place of the record's
        last argument, at once: in C without the GIL (a file in UTF-8), else in one
        write to the stream (and one flush). Once per request that logged, on the
        thread that ends it."""
        try:
            head, mark, tail = self.format(record).partition(_MARK)
            if not mark or _MARK in tail:  # a formatter that moves or repeats the message
                for line in lines:
                    self.emit(_with_line(record, line))
                return
            end = tail + self.terminator
            self.acquire()
            try:
                stream = self.stream
                fd = self._reader_free_fd()
                if fd is not None:
                    self._send(fd, head, end, list(lines))
                    return
                fd = _utf8_file(stream)
                if fd is not None and _write_lines is not None:
                    stream.flush()  # what the stream holds goes first
                    if _write_lines(fd, head, end, list(lines)):
                        return
                stream.write(head + (end + head).join(lines) + end)
                self.flush()
            finally:
                self.release()
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)

    def emit(self, record: logging.LogRecord) -> None:
        """One record (called by ``Handler.handle``, with the handler's lock held)."""
        fd = self._reader_free_fd()
        if fd is None:
            super().emit(record)
            return
        try:
            self._send(fd, "", self.terminator, [self.format(record)])
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)

    def flush(self) -> None:
        """Flush the stream, and write what the reader has not taken yet if it takes it now."""
        super().flush()
        self.acquire()
        try:
            if self._carry and self._fd is not None and self._for is self.stream:
                self._send(self._fd, "", "", [])
        except OSError:
            pass  # the reader is gone: what it did not take is lost, as a stream's would be
        finally:
            self.release()

    def close(self) -> None:
        """Write what the reader takes now (never waiting for it), then close."""
        try:
            self.flush()
        finally:
            self.acquire()
            try:
                if self._own_fd and self._fd is not None:
                    os.close(self._fd)
                self._fd, self._for, self._own_fd = None, None, False
            finally:
                self.release()
            super().close()

    def dropped(self) -> tuple[int, int]:
        """Lines and bytes dropped since the log last said so (the reader was behind)."""
        return self._dropped_lines, self._dropped_bytes

    def _reader_free_fd(self) -> int | None:
        """A descriptor of the stream's pipe or socket that never waits for its reader,
        or None (a file, a terminal, not UTF-8, no C extension): found once per stream.
        A pipe is opened anew, non-blocking (``/proc/self/fd``): its own open file, so
        the stream's, which other processes may share, stays as it is; a socket is sent
        to with ``MSG_DONTWAIT``."""
        stream = self.stream
        if self._for is stream:
            return self._fd
        if self._own_fd and self._fd is not None:
            os.close(self._fd)
        self._for, self._fd, self._own_fd, self._socket = stream, None, False, False
        fd = _utf8_file(stream)
        if fd is None or _write_lines is None:
            return None
        try:
            mode = os.fstat(fd).st_mode
            if stat.S_ISSOCK(mode):
                self._fd, self._socket = fd, True
            elif stat.S_ISFIFO(mode):
                flags = os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC
                self._fd, self._own_fd = os.open(f"/proc/self/fd/{fd}", flags), True
        except OSError:
            pass  # no /proc: the stream is written as it is
        return self._fd

    def _send(self, fd: int, head: str, end: str, lines: list[str]) -> None:
        """Write what the reader has not taken yet, then ``lines``, without waiting;
        count what is dropped, and say so once the reader has caught up."""
        assert _write_lines is not None
        if self._carry:  # first what the reader has not taken yet, alone
            self._carry = _write_lines(fd, "", "", [], self._carry, 0, self._socket)[0]  # type: ignore[index]
        carry = self._carry
        if not carry and self._dropped_lines:  # it has caught up: say what it missed
            carry = self._notice()
        self.stream.flush()  # what the stream holds goes first (nothing, as a rule)
        result = _write_lines(fd, head, end, lines, carry, LOG_BUFFER, self._socket)
        if result is False:  # a lone surrogate or a non-str: as the stream would write it
            errors = getattr(self.stream, "errors", None) or "backslashreplace"
            head, end = (_encodable(text, errors) for text in (head, end))
            lines = [_encodable(line, errors) for line in lines]
            result = _write_lines(fd, head, end, lines, carry, LOG_BUFFER, self._socket)
            assert result is not False
        self._carry, lines_dropped, bytes_dropped = result
        if lines_dropped:
            self._dropped_lines += lines_dropped
            self._dropped_bytes += bytes_dropped

    def _notice(self) -> bytes:
        """The line that says what was dropped (then the count starts again)."""
        record = logging.makeLogRecord(
            {
                "name": "atoll",
                "levelno": logging.WARNING,
                "levelname": "WARNING",
                "msg": "atoll: %d log lines (%d bytes) dropped: the log's reader did not keep up",
                "args": (self._dropped_lines, self._dropped_bytes),
            }
        )
        self._dropped_lines = self._dropped_bytes = 0
        return (self.format(record) + self.terminator).encode("utf-8", "backslashreplace")


def _encodable(text: object, errors: str) -> str:
    """``text`` as a str UTF-8 can carry, as a stream with ``errors`` would write it."""
    return str(text).encode("utf-8", errors).decode("utf-8")


def _utf8_file(stream: TextIO) -> int | None:
    """The descriptor under ``stream`` if it writes UTF-8 to one, else None."""
    try:
        if codecs.lookup(stream.encoding).name != "utf-8":
            return None
        return stream.fileno()
    except (AttributeError, LookupError, OSError, ValueError, TypeError):
        return None  # io.UnsupportedOperation is an OSError and a ValueError


def _with_line(record: logging.LogRecord, line: str) -> logging.LogRecord:
    one = logging.makeLogRecord(record.__dict__)
    one.args = (*record.args[:-1], line) if isinstance(record.args, tuple) else (line,)
    return one


def _line_handlers(logger: logging.Logger, level: int) -> list[LineHandler] | None:
    """The handlers a record of ``logger`` at ``level`` would reach, if all are
    :class:`LineHandler` without filters (on them or on the loggers passed); else None."""
    found: list[LineHandler] = []
    current: logging.Logger | None = logger
    while current is not None:
        if current.filters:
            return None
        for handler in current.handlers:
            if type(handler) is not LineHandler or handler.filters:
                return None
            if level >= handler.level:
                found.append(handler)
        if not current.propagate:
            break
        current = current.parent
    return found or None  # none: logging's last resort decides, record by record


def log_lines(
    logger: logging.Logger, request_id: str, lines: Sequence[str], level: int = logging.INFO
) -> None:
    """Log each of a request's ``lines`` as ``"  [request_id] line"`` at ``level``: one
    record per line, or, when every handler the records would reach is a
    :class:`LineHandler`, one write per handler. Once per request, when it ends."""
    if not lines or not logger.isEnabledFor(level):
        return
    handlers = _line_handlers(logger, level)
    if handlers is None:
        for line in lines:
            logger.log(level, "  [%s] %s", request_id, line)
        return
    record = logger.makeRecord(
        logger.name, level, __file__, 0, "  [%s] %s", (request_id, _MARK), None, "log_lines"
    )
    for handler in handlers:
        handler.emit_lines(record, lines)
