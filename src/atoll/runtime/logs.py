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
"""

from __future__ import annotations

from typing import Protocol

__all__ = [
    "MAX_LOG_BYTES",
    "MAX_LOG_LINE",
    "MAX_LOG_LINES",
    "LogCounts",
    "PyLogCounts",
    "RequestLog",
    "cut_line",
]

#: Lines kept per request.
MAX_LOG_LINES = 1000
#: Bytes (UTF-8) of log lines kept per request.
MAX_LOG_BYTES = 1024 * 1024
#: Longest line kept, in characters (a guest's raw lines are cut at as many bytes first).
MAX_LOG_LINE = 16 * 1024


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
