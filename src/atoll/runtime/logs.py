"""A request's log lines, bounded: a guest cannot make the host keep or print more than this.

Every line a request logs goes through :meth:`RequestLog.add`: a guest's
stderr (and the stdout of WASI modules called from Python), ``atoll:log.write``,
the reasons ``atoll:kv`` logs, and the worker's own ``ctx.log``. A request keeps
at most :data:`MAX_LOG_LINES` lines and :data:`MAX_LOG_BYTES` bytes of them,
each line at most :data:`MAX_LOG_LINE` characters (longer lines are cut and say
so). What does not fit is counted, and one last line says how much was dropped
(added when the request ends, see :meth:`RequestLog.finish`). The limits are
listed in ``docs/limits.md``.
"""

from __future__ import annotations

__all__ = ["MAX_LOG_BYTES", "MAX_LOG_LINE", "MAX_LOG_LINES", "RequestLog", "cut_line"]

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


class RequestLog:
    """The lines of one request and what was dropped from them. Not shared between threads.

    ``lines`` is the list the request's result carries (appended to in place).
    """

    __slots__ = ("dropped_bytes", "dropped_lines", "kept_bytes", "lines")

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        self.kept_bytes = 0
        self.dropped_lines = 0
        self.dropped_bytes = 0

    def full(self) -> bool:
        """No further line would be kept (a writer may then only count what it drops)."""
        return len(self.lines) >= MAX_LOG_LINES or self.kept_bytes >= MAX_LOG_BYTES

    def add(self, line: str, *, cut: bool = True) -> None:
        """Keep ``line`` (cut at :data:`MAX_LOG_LINE` characters, unless a writer cut it at
        as many bytes already: ``cut=False``) if the request's budget allows."""
        if cut:
            line = cut_line(line)
        size = _size(line)
        if len(self.lines) >= MAX_LOG_LINES or self.kept_bytes + size > MAX_LOG_BYTES:
            self.drop(1, size)
            return
        self.kept_bytes += size
        self.lines.append(line)

    def drop(self, lines: int, nbytes: int) -> None:
        """Count output that was not kept (``lines`` whole or partial lines, ``nbytes`` bytes)."""
        self.dropped_lines += lines
        self.dropped_bytes += nbytes

    def finish(self) -> None:
        """Say what was dropped, in one last line (called once, when the request ends)."""
        if self.dropped_lines or self.dropped_bytes:
            self.lines.append(
                f"… {self.dropped_lines} lines / {self.dropped_bytes} bytes dropped (a request"
                f" logs at most {MAX_LOG_LINES} lines and {MAX_LOG_BYTES} bytes)"
            )
            self.dropped_lines = self.dropped_bytes = 0
