"""Config files as data plus the line of every key: ``atoll.toml``, ``wrangler.toml``, ``wrangler.json(c)``.

:func:`find_config` picks the file of a worker folder (:data:`CONFIG_FILES`, in
order: ``atoll.toml`` wins over wrangler's files, and wrangler's own order
applies between them). :func:`read_source` parses it and records the line on
which every key, table header and array element starts, so that an error can
name ``wrangler.toml:12`` for ``env.staging.kv_namespaces[1].id`` — the
standard parsers (``tomllib``, ``json``) give values but no positions.

JSON files may hold comments (``//``, ``/* */``) and trailing commas, as
wrangler accepts them in ``wrangler.json`` and ``wrangler.jsonc``: a first pass
blanks them out character for character (newlines kept), so ``json`` parses the
result and reports errors at the same line and column as in the file.

Runs once per load of a manifest (``atoll dev`` start and each reload, a
deploy, a node loading a version), never per request.
"""

from __future__ import annotations

import contextlib
import json
import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from atoll.errors import ConfigError

__all__ = [
    "CONFIG_FILES",
    "SELECTION_FILE",
    "WRANGLER_FILES",
    "KeyPath",
    "Source",
    "find_config",
    "read_source",
    "source_from_text",
    "strip_jsonc",
]

KeyPath = tuple[str | int, ...]

#: Wrangler's config files, in the order wrangler itself prefers them.
WRANGLER_FILES = ("wrangler.json", "wrangler.jsonc", "wrangler.toml")

#: Every config file a worker folder may hold, first found wins.
CONFIG_FILES = ("atoll.toml", *WRANGLER_FILES)

#: Written into a deployed bundle by ``atoll deploy -c FILE --env NAME``: which file
#: and environment the node must read (a bundle is a folder; the node has no flags).
SELECTION_FILE = ".atoll-config.json"


@dataclass(frozen=True, slots=True)
class Source:
    """One parsed config file: its data and where each key is written."""

    path: Path
    raw: dict[str, Any]
    lines: dict[KeyPath, int] = field(default_factory=dict)

    @property
    def is_json(self) -> bool:
        return self.path.suffix in {".json", ".jsonc"}

    def line(self, keypath: KeyPath) -> int | None:
        """The line of ``keypath``, else of its nearest enclosing key or table."""
        path = tuple(keypath)
        while path:
            found = self.lines.get(path)
            if found is not None:
                return found
            path = path[:-1]
        return None


def find_config(folder: Path) -> Path | None:
    """The config file of ``folder`` (see :data:`CONFIG_FILES`), or ``None``."""
    for name in CONFIG_FILES:
        candidate = folder / name
        if candidate.is_file():
            return candidate
    return None


def read_source(path: Path) -> Source:
    """Parse the config file at ``path``.

    Raises :class:`ConfigError` when it cannot be read or is not valid TOML /
    JSON (with the line of the syntax error), or its top is not a table.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("config file not found", path=str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the config file: {exc}", path=str(path)) from None
    return source_from_text(text, path)


def source_from_text(text: str, path: Path) -> Source:
    """Parse config ``text`` that lives at ``path`` (``.json``/``.jsonc``: JSON, else TOML)."""
    if path.suffix in {".json", ".jsonc"}:
        clean = strip_jsonc(text)
        try:
            raw = json.loads(clean)
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"invalid JSON: {exc.msg} (at line {exc.lineno}, column {exc.colno})",
                path=str(path),
                line=exc.lineno,
                hint="comments and trailing commas are allowed; keys and strings take double quotes",
            ) from None
        if not isinstance(raw, dict):
            raise ConfigError(
                "the file must hold one JSON object ({ ... })", path=str(path), line=1
            )
        return Source(path, raw, _JsonLines(clean).lines)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"\(at line (\d+)", str(exc))
        raise ConfigError(
            f"invalid TOML: {exc}",
            path=str(path),
            line=int(match.group(1)) if match else None,
            hint="see https://toml.io for the syntax",
        ) from None
    return Source(path, raw, _TomlLines(text).lines)


# -- JSON with comments ------------------------------------------------------------


def strip_jsonc(text: str) -> str:
    """``text`` with comments and trailing commas blanked out; positions and newlines unchanged."""
    out = list(text)
    i, n = 0, len(text)
    last_comma: int | None = None  # a comma still waiting to see what follows it
    while i < n:
        ch = text[i]
        if ch == '"':
            last_comma = None
            i += 1
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
            i += 1
            continue
        if text.startswith("//", i):
            while i < n and text[i] != "\n":
                out[i] = " "
                i += 1
            continue
        if text.startswith("/*", i):
            end = text.find("*/", i + 2)
            end = n if end < 0 else end + 2
            for j in range(i, end):
                if out[j] != "\n":
                    out[j] = " "
            i = end
            continue
        if ch in "]}" and last_comma is not None:
            out[last_comma] = " "
        if ch == ",":
            last_comma = i
        elif not ch.isspace():
            last_comma = None
        i += 1
    return "".join(out)


class _JsonLines:
    """Lines of keys and array elements in (comment-free) JSON text that ``json`` accepted."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.lines: dict[KeyPath, int] = {}
        with contextlib.suppress(IndexError, ValueError):  # json.loads accepted it
            self._value(())

    def _line(self) -> int:
        return self.text.count("\n", 0, self.pos) + 1

    def _skip(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def _string(self) -> str:
        start = self.pos
        self.pos += 1
        while self.text[self.pos] != '"':
            self.pos += 2 if self.text[self.pos] == "\\" else 1
        self.pos += 1
        value: str = json.loads(self.text[start : self.pos])
        return value

    def _value(self, path: KeyPath) -> None:
        self._skip()
        ch = self.text[self.pos]
        if ch == "{":
            self.pos += 1
            while True:
                self._skip()
                if self.text[self.pos] == "}":
                    self.pos += 1
                    return
                if self.text[self.pos] == ",":
                    self.pos += 1
                    continue
                line = self._line()
                key = self._string()
                self.lines.setdefault((*path, key), line)
                self._skip()
                self.pos += 1  # ':'
                self._value((*path, key))
        elif ch == "[":
            self.pos += 1
            index = 0
            while True:
                self._skip()
                if self.text[self.pos] == "]":
                    self.pos += 1
                    return
                if self.text[self.pos] == ",":
                    self.pos += 1
                    index += 1
                    continue
                self.lines.setdefault((*path, index), self._line())
                self._value((*path, index))
        elif ch == '"':
            self._string()
        else:
            while self.pos < len(self.text) and self.text[self.pos] not in ",]}":
                self.pos += 1


# -- TOML --------------------------------------------------------------------------


_BARE = re.compile(r"[A-Za-z0-9_-]+")


class _TomlLines:
    """Lines of keys, headers and array elements in TOML text that ``tomllib`` accepted.

    Follows ``[table]`` and ``[[array]]`` headers (counting the entries of each
    array of tables), dotted and quoted keys, and values that are inline tables
    or arrays, spread over several lines or not.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.line = 1
        self.lines: dict[KeyPath, int] = {}
        self.counts: dict[KeyPath, int] = {}
        with contextlib.suppress(IndexError, ValueError):  # tomllib accepted it
            self._document()

    # -- characters --------------------------------------------------------

    def _peek(self, k: int = 0) -> str:
        p = self.pos + k
        return self.text[p] if p < len(self.text) else ""

    def _advance(self, k: int = 1) -> None:
        self.line += self.text.count("\n", self.pos, self.pos + k)
        self.pos += k

    def _skip(self, newlines: bool) -> None:
        while self.pos < len(self.text):
            ch = self.text[self.pos]
            if ch == "#":
                while self.pos < len(self.text) and self.text[self.pos] != "\n":
                    self.pos += 1
            elif ch in " \t\r" or (newlines and ch == "\n"):
                self._advance()
            else:
                return

    # -- structure ---------------------------------------------------------

    def _document(self) -> None:
        table: KeyPath = ()
        while True:
            self._skip(newlines=True)
            if self.pos >= len(self.text):
                return
            if self._peek() == "[":
                array = self._peek(1) == "["
                self._advance(2 if array else 1)
                line = self.line
                name = tuple(self._key())
                self._skip(newlines=False)
                self._advance(2 if array else 1)
                if array:
                    index = self.counts.get(name, -1) + 1
                    self.counts[name] = index
                    self.lines.setdefault(name, line)
                    table = (*name, index)
                else:
                    table = name
                for end in range(1, len(table) + 1):
                    self.lines.setdefault(table[:end], line)
                continue
            self._pair(table)

    def _key(self) -> Iterator[str]:
        while True:
            self._skip(newlines=False)
            ch = self._peek()
            if ch in "\"'":
                yield self._string()
            else:
                match = _BARE.match(self.text, self.pos)
                if match is None:
                    raise ValueError("not a key")
                self._advance(match.end() - self.pos)
                yield match.group()
            self._skip(newlines=False)
            if self._peek() != ".":
                return
            self._advance()

    def _pair(self, table: KeyPath) -> None:
        line = self.line
        path: KeyPath = table
        for part in self._key():
            path = (*path, part)
            self.lines.setdefault(path, line)
        self._skip(newlines=False)
        self._advance()  # '='
        self._value(path)

    def _string(self) -> str:
        quote = self._peek()
        if self.text.startswith(quote * 3, self.pos):
            end = self.text.find(quote * 3, self.pos + 3)
            while self.text.startswith(quote, end + 3):  # up to two quotes may end the content
                end += 1
            start = self.pos
            self._advance(end + 3 - self.pos)
            return self.text[start + 3 : end]
        start = self.pos
        self._advance()
        while self._peek() != quote:
            self._advance(2 if quote == '"' and self._peek() == "\\" else 1)
        self._advance()
        raw = self.text[start : self.pos]
        if quote == "'":
            return raw[1:-1]
        value: str = json.loads(raw) if "\\" in raw else raw[1:-1]
        return value

    def _value(self, path: KeyPath) -> None:
        self._skip(newlines=False)
        ch = self._peek()
        if ch in "\"'":
            self._string()
        elif ch == "[":
            self._advance()
            index = 0
            while True:
                self._skip(newlines=True)
                ch = self._peek()
                if ch == "]":
                    self._advance()
                    return
                if ch == ",":
                    self._advance()
                    index += 1
                    continue
                self.lines.setdefault((*path, index), self.line)
                self._value((*path, index))
        elif ch == "{":
            self._advance()
            while True:
                self._skip(newlines=True)
                ch = self._peek()
                if ch == "}":
                    self._advance()
                    return
                if ch == ",":
                    self._advance()
                    continue
                self._pair(path)
        else:
            while self.pos < len(self.text) and self.text[self.pos] not in ",]}\n#":
                self.pos += 1
