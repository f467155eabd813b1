"""Load ``atoll.toml`` into a frozen :class:`~atoll.manifest.schema.Manifest`.

Validation is driven by the schema's type hints and field metadata, so a key
added to the schema is validated and documented with no further code. Every
error is a :class:`~atoll.errors.ConfigError` naming the file, the dotted key,
the line (found in the source text) and what would be valid.
"""

from __future__ import annotations

import dataclasses
import datetime
import difflib
import re
import tomllib
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Union

from atoll.errors import ConfigError
from atoll.manifest.schema import (
    BINDING_PATTERN,
    JS_SUFFIXES,
    MANIFEST_FILE,
    UNSUPPORTED_WRANGLER_KEYS,
    Manifest,
)

__all__ = ["load_manifest", "parse_manifest"]

KeyPath = tuple[str | int, ...]

_TYPE_NAMES: dict[type, str] = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "a boolean",
}


def load_manifest(location: Path | str, *, check_files: bool = True) -> Manifest:
    """Read and validate the manifest of a worker.

    ``location`` is a worker folder (containing ``atoll.toml``) or the path of
    the manifest file itself. Raises :class:`ConfigError` when the file is
    missing, is not TOML, or does not match the schema. ``check_files=False``
    skips the existence check of the files it names (to run the build that
    makes them).
    """
    location = Path(location)
    path = location / MANIFEST_FILE if location.is_dir() else location
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            "no manifest found",
            path=str(path),
            hint=f"create {MANIFEST_FILE} in the worker folder, or run `atoll init NAME`",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the manifest: {exc}", path=str(path)) from None
    return parse_manifest(text, path=path, check_files=check_files)


def parse_manifest(text: str, *, path: Path, check_files: bool = True) -> Manifest:
    """Validate manifest ``text`` that lives at ``path`` (used for messages and relative files)."""
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
    validator = _Validator(text, path, check_files=check_files)
    values = validator.table(Manifest, raw, ())
    manifest = Manifest(**values, root=path.parent.resolve(), path=path)
    validator.cross_checks(manifest)
    return manifest


class _Validator:
    def __init__(self, text: str, path: Path, *, check_files: bool = True) -> None:
        self.path = path
        self.check_files = check_files
        self.root = path.parent.resolve()
        self.locator = _KeyLocator(text)

    # -- errors -------------------------------------------------------------

    def error(self, keypath: KeyPath, message: str, hint: str | None = None) -> ConfigError:
        return ConfigError(
            message,
            path=str(self.path),
            key=_dotted(keypath) or None,
            line=self.locator.line(keypath),
            hint=hint,
        )

    # -- tables -------------------------------------------------------------

    def table(self, cls: type[Any], raw: Any, keypath: KeyPath) -> dict[str, Any]:
        if not isinstance(raw, dict):
            raise self.error(keypath, f"expected a table, got {_describe(raw)}")
        hints = typing.get_type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls) if not f.metadata.get("internal")}
        for key in raw:
            if key not in fields:
                raise self._unknown(keypath, key, sorted(fields))
        values: dict[str, Any] = {}
        for name, fld in fields.items():
            sub = (*keypath, name)
            if name not in raw:
                if (
                    fld.default is dataclasses.MISSING
                    and fld.default_factory is dataclasses.MISSING
                ):
                    example = fld.metadata.get("example") or f"{name} = ..."
                    raise self.error(sub, "missing (it is required)", hint=f"add `{example}`")
                continue
            values[name] = self.value(hints[name], raw[name], sub, fld.metadata)
        return values

    def _unknown(self, keypath: KeyPath, key: str, valid: list[str]) -> ConfigError:
        sub = (*keypath, key)
        if not keypath and key in UNSUPPORTED_WRANGLER_KEYS:
            return self.error(sub, "not supported by atoll", hint=UNSUPPORTED_WRANGLER_KEYS[key])
        near = difflib.get_close_matches(key, valid, n=1)
        if not keypath:
            where = "at the top level"
        elif isinstance(keypath[-1], int):
            where = f"in [[{_dotted(keypath[:-1])}]]"
        else:
            where = f"in [{_dotted(keypath)}]"
        hint = f"did you mean '{near[0]}'? " if near else ""
        hint += f"valid keys {where}: {', '.join(valid)}"
        return self.error(sub, "unknown key", hint=hint)

    # -- values -------------------------------------------------------------

    def value(self, tp: Any, raw: Any, keypath: KeyPath, meta: Mapping[str, Any]) -> Any:
        origin = typing.get_origin(tp)
        if origin in (Union, types.UnionType):
            options = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(options) > 1:  # `bool | tuple[str, ...]`: a list picks the list type
                lists = [a for a in options if typing.get_origin(a) is tuple]
                others = [a for a in options if typing.get_origin(a) is not tuple]
                options = lists if isinstance(raw, list) and lists else others or lists
            return self.value(options[0], raw, keypath, meta)
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            return tp(**self.table(tp, raw, keypath))
        if origin is tuple:
            item_tp = typing.get_args(tp)[0]
            if not isinstance(raw, list):
                raise self.error(
                    keypath,
                    f"expected a list, got {_describe(raw)}",
                    hint=meta.get("example") and f"for example `{meta['example']}`",
                )
            return tuple(
                self.value(item_tp, item, (*keypath, i), meta) for i, item in enumerate(raw)
            )
        if origin is dict:
            _, val_tp = typing.get_args(tp)
            if not isinstance(raw, dict):
                raise self.error(
                    keypath,
                    f"expected a table, got {_describe(raw)}",
                    hint=meta.get("example")
                    and f"write a [{_dotted(keypath)}] table with lines like `{meta['example']}`",
                )
            out: dict[str, Any] = {}
            for key, item in raw.items():
                sub = (*keypath, key)
                if meta.get("pattern") and not re.fullmatch(meta["pattern"], key):
                    raise self.error(
                        sub,
                        f"'{key}' is not a valid "
                        + ("key" if meta.get("pattern_hint") else "binding name"),
                        hint=meta.get("pattern_hint")
                        or "use a Python identifier: letters, digits and _, not starting with a digit",
                    )
                out[key] = _plain(item) if val_tp is Any else self.scalar(val_tp, item, sub, meta)
            return out
        return self.scalar(tp, raw, keypath, meta)

    def scalar(self, tp: type[Any], raw: Any, keypath: KeyPath, meta: Mapping[str, Any]) -> Any:
        ok = isinstance(raw, tp) and not (tp is int and isinstance(raw, bool))
        if not ok:
            shown = f' ("{raw}")' if isinstance(raw, str) else ""
            raise self.error(
                keypath,
                f"expected {_TYPE_NAMES.get(tp, tp.__name__)}, got {_describe(raw)}{shown}",
                hint=meta.get("example") and f"for example `{meta['example']}`",
            )
        if isinstance(raw, int | float) and not isinstance(raw, bool):
            lo, hi = meta.get("minimum"), meta.get("maximum")
            if lo is not None and raw < lo:
                raise self.error(keypath, f"{raw} is below the minimum {lo:g}", _range(lo, hi))
            if hi is not None and raw > hi:
                raise self.error(keypath, f"{raw} is above the maximum {hi:g}", _range(lo, hi))
        if isinstance(raw, str):
            if meta.get("path"):
                self.check_path(raw, keypath)
            elif meta.get("folder"):
                self.check_inside(raw, keypath, "folders a worker uses must live inside its folder")
            elif meta.get("pattern") == BINDING_PATTERN and not re.fullmatch(BINDING_PATTERN, raw):
                raise self.error(
                    keypath,
                    f"'{raw}' is not a valid binding name",
                    hint="use a Python identifier: letters, digits and _, not starting with a digit",
                )
            elif meta.get("pattern") and not re.fullmatch(meta["pattern"], raw):
                raise self.error(
                    keypath,
                    f"'{raw}' is not valid",
                    hint=(meta.get("pattern_hint") or f"it must match {meta['pattern']}")
                    + (f", for example `{meta['example']}`" if meta.get("example") else ""),
                )
        return raw

    def check_inside(self, relative: str, keypath: KeyPath, hint: str) -> Path:
        target = (self.root / relative).resolve()
        if not target.is_relative_to(self.root):
            raise self.error(keypath, f"'{relative}' is outside the worker folder", hint=hint)
        return target

    def check_path(self, relative: str, keypath: KeyPath) -> None:
        target = self.check_inside(
            relative, keypath, "files a worker loads must live inside its folder"
        )
        if self.check_files and not target.is_file():
            raise self.error(
                keypath,
                f"file '{relative}' not found in the worker folder",
                hint="check the path, or build the worker first (`atoll build`)",
            )

    # -- rules across keys --------------------------------------------------

    def cross_checks(self, manifest: Manifest) -> None:
        if not manifest.main.endswith((".py", ".wasm", *JS_SUFFIXES)):
            raise self.error(
                ("main",),
                f"'{manifest.main}' is neither a Python module (.py), a JavaScript worker "
                "(.js, .mjs) nor a wasm program (.wasm)",
                hint="main names a .py file that defines `async def fetch(request, env, ctx)`, "
                "a .js file with `export default { async fetch(request, env, ctx) { … } }`, "
                "or a WASI program such as build/app.wasm",
            )
        for guest, folder in manifest.wasi.dirs.items():
            if self.check_files and not (self.root / folder).is_dir():
                raise self.error(
                    ("wasi", "dirs", guest),
                    f"folder '{folder}' not found in the worker folder",
                    hint="create it, or fix the path",
                )
        seen: dict[str, KeyPath] = {}
        places: list[tuple[str, KeyPath]] = [
            (n, ("wasm_modules", n)) for n in manifest.wasm_modules
        ]
        places += [
            (kv.binding, ("kv_namespaces", i, "binding"))
            for i, kv in enumerate(manifest.kv_namespaces)
        ]
        places += [(n, ("vars", n)) for n in manifest.vars]
        for name, keypath in places:
            if name in seen:
                raise self.error(
                    keypath,
                    f"binding '{name}' is already defined at '{_dotted(seen[name])}'",
                    hint="every name in env must be unique",
                )
            seen[name] = keypath


class _KeyLocator:
    """Find the line of a dotted key in TOML text (tomllib gives no positions)."""

    _HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?")
    _KEY = re.compile(r"^\s*([A-Za-z0-9_\-\"'.]+?)\s*=")

    def __init__(self, text: str) -> None:
        self.entries: list[tuple[KeyPath, int]] = []
        table: KeyPath = ()
        counts: dict[str, int] = {}
        for lineno, line in enumerate(text.splitlines(), start=1):
            header = self._HEADER.match(line)
            if header:
                name = header.group(2).replace('"', "")
                parts: tuple[str | int, ...] = tuple(name.split("."))
                if header.group(1) == "[[":
                    counts[name] = counts.get(name, -1) + 1
                    parts = (*parts, counts[name])
                table = parts
                self.entries.append((table, lineno))
                continue
            key = self._KEY.match(line)
            if key:
                dotted = key.group(1).replace('"', "").replace("'", "")
                self.entries.append(((*table, *dotted.split(".")), lineno))

    def line(self, keypath: KeyPath) -> int | None:
        path = tuple(keypath)
        while path:
            for entry, lineno in self.entries:
                if entry == path:
                    return lineno
            path = path[:-1]
        return None


def _dotted(keypath: Sequence[str | int]) -> str:
    out = ""
    for part in keypath:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def _describe(raw: Any) -> str:
    if isinstance(raw, bool):
        return "a boolean"
    for tp, name in _TYPE_NAMES.items():
        if isinstance(raw, tp):
            return name
    if isinstance(raw, list):
        return "a list"
    if isinstance(raw, dict):
        return "a table"
    return type(raw).__name__


def _range(lo: float | None, hi: float | None) -> str:
    return f"use a value from {lo:g} to {hi:g}" if lo is not None and hi is not None else ""


def _plain(item: Any) -> Any:
    """TOML values for ``[vars]``: dates become ISO strings so every var is JSON-able."""
    if isinstance(item, dict):
        return {k: _plain(v) for k, v in item.items()}
    if isinstance(item, list):
        return [_plain(v) for v in item]
    if isinstance(item, str | int | float | bool):
        return item
    if isinstance(item, datetime.date | datetime.time):  # datetime is a date
        return item.isoformat()
    return str(item)
