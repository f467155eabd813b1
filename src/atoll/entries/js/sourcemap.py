"""JS stacks in the worker's own files and lines: esbuild's source map, read back.

A bundle runs as one script named after ``main``; a frame of it reads
``at fn (src/index.js:LINE:COL)`` with the *bundle's* line. :class:`SourceMap`
turns that into the original file and line (``at fn (src/lib/util.js:3:9)``).
Decoded once per worker load, on the first stack that needs it.
"""

from __future__ import annotations

import bisect
import re
from typing import Any

__all__ = ["SourceMap"]

_B64 = {
    c: i for i, c in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
}


def _vlq(segment: str) -> list[int]:
    values: list[int] = []
    value = shift = 0
    for char in segment:
        digit = _B64[char]
        value += (digit & 31) << shift
        if digit & 32:
            shift += 5
            continue
        values.append(-(value >> 1) if value & 1 else value >> 1)
        value = shift = 0
    return values


class SourceMap:
    """A source map (version 3) of a bundle, and where its code starts in the script run."""

    def __init__(self, data: dict[str, Any], *, script: str, line_offset: int) -> None:
        self.sources: list[str] = [str(s) for s in data.get("sources", [])]
        self._mappings: str = str(data.get("mappings", ""))
        self._lines: list[tuple[list[int], list[tuple[int, int, int]]]] | None = None
        self.script = script
        self.line_offset = line_offset
        self._frame = re.compile(re.escape(script) + r":(\d+):(\d+)")

    def _decode(self) -> list[tuple[list[int], list[tuple[int, int, int]]]]:
        lines: list[tuple[list[int], list[tuple[int, int, int]]]] = []
        source = src_line = src_col = 0
        for text in self._mappings.split(";"):
            cols: list[int] = []
            targets: list[tuple[int, int, int]] = []
            col = 0
            for segment in filter(None, text.split(",")):
                fields = _vlq(segment)
                col += fields[0]
                if len(fields) >= 4:
                    source += fields[1]
                    src_line += fields[2]
                    src_col += fields[3]
                    cols.append(col)
                    targets.append((source, src_line, src_col))
            lines.append((cols, targets))
        return lines

    def original(self, line: int, column: int) -> tuple[str, int, int] | None:
        """(file, line, column), 1-based, of the script's ``line``:``column``; None if unmapped."""
        if self._lines is None:
            self._lines = self._decode()
        index = line - 1 - self.line_offset
        if not 0 <= index < len(self._lines):
            return None
        cols, targets = self._lines[index]
        at = bisect.bisect_right(cols, column - 1) - 1
        if at < 0:
            return None
        source, src_line, src_col = targets[at]
        if not 0 <= source < len(self.sources):
            return None
        return self.sources[source], src_line + 1, src_col + 1

    def frame(self, text: str) -> str:
        """A stack line with the script's positions replaced by the original ones."""

        def replace(match: re.Match[str]) -> str:
            found = self.original(int(match.group(1)), int(match.group(2)))
            if found is None:
                return match.group(0)
            return f"{found[0]}:{found[1]}:{found[2]}"

        return self._frame.sub(replace, text)
