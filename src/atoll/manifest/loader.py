"""Load a worker's config into a frozen :class:`~atoll.manifest.schema.Manifest`.

The config is ``atoll.toml`` or, when a folder has none, wrangler's own file
(``wrangler.json``, ``wrangler.jsonc``, ``wrangler.toml``: see
:mod:`atoll.manifest.sources`), or the file given with ``-c``. With
``env="NAME"`` the ``[env.NAME]`` table is applied with wrangler's rules:
inherited keys come from the top level unless the environment sets them,
bindings (``vars``, ``kv_namespaces``…) only from the environment, and the
name becomes ``NAME-ENV`` unless the environment sets one.

Validation is driven by the schema's type hints and field metadata, so a key
added to the schema is validated and documented with no further code. Every
problem of the file is collected before anything is raised: one problem is a
:class:`~atoll.errors.ConfigError`, several a
:class:`~atoll.errors.ConfigProblems`; each names the file, the line, the
dotted key and what would be valid. Keys of wrangler's that mean nothing here
become ``Manifest.notices`` (one line each), keys atoll cannot honour are
problems (:data:`~atoll.manifest.schema.WRANGLER_KEYS`).

Runs when a worker is loaded (``atoll dev`` start and reloads, ``atoll
deploy``, a node loading a version), never per request.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import re
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Union

from atoll.errors import ConfigError, ConfigProblems
from atoll.manifest.schema import (
    BINDING_PATTERN,
    JS_SUFFIXES,
    MANIFEST_FILE,
    WRANGLER_KEYS,
    KeyClass,
    Manifest,
    Scope,
)
from atoll.manifest.sources import (
    CONFIG_FILES,
    SELECTION_FILE,
    WRANGLER_FILES,
    KeyPath,
    Source,
    find_config,
    read_source,
    source_from_text,
)

__all__ = ["config_path", "load_manifest", "parse_manifest"]

_TYPE_NAMES: dict[type, str] = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "a boolean",
}

_BAD = object()  # a value that failed validation (its problem is already recorded)

#: Keys that are not fields but are read by the loader itself.
_HANDLED = frozenset({"env", "route", "$schema"})


def config_path(location: Path | str, config: Path | str | None = None) -> Path:
    """The config file a command reads: ``config`` (``-c``) if given, else the folder's own.

    ``location`` is a worker folder or a config file. Raises
    :class:`ConfigError` when there is none, naming the files looked for and
    a wrangler file found in the folder above, if any.
    """
    if config is not None:
        path = Path(config)
        if not path.is_file():
            raise ConfigError(
                "config file not found", path=str(path), hint="check the path given to -c/--config"
            )
        return path
    location = Path(location)
    if not location.is_dir() and (location.is_file() or location.name in CONFIG_FILES):
        return location
    found = find_config(location)
    if found is not None:
        return found
    names = ", ".join(CONFIG_FILES[:-1]) + f" or {CONFIG_FILES[-1]}"
    hint = (
        f"create {MANIFEST_FILE} in the worker folder, or run `atoll init NAME`; "
        f"a wrangler project's {WRANGLER_FILES[-1]} is read as it is"
    )
    above = find_config(location.resolve().parent)
    if above is not None:
        hint = f"{above} is in the folder above: run the command there, or pass -c {above}"
    raise ConfigError(
        f"no config file found (looked for {names})", path=str(location / MANIFEST_FILE), hint=hint
    )


def load_manifest(
    location: Path | str,
    *,
    check_files: bool = True,
    config: Path | str | None = None,
    env: str | None = None,
) -> Manifest:
    """Read and validate the config of a worker.

    ``location`` is a worker folder (holding ``atoll.toml`` or a wrangler
    file) or the config file itself; ``config`` (``-c``) names the file
    instead; ``env`` selects ``[env.NAME]``. A folder that is a deployed
    bundle says which file and environment it was deployed with
    (:data:`~atoll.manifest.sources.SELECTION_FILE`). Raises
    :class:`ConfigError` (or :class:`ConfigProblems`) when the file is
    missing, is not TOML/JSON, or does not match the schema.
    ``check_files=False`` skips the existence check of the files it names (to
    run the build that makes them).
    """
    location = Path(location)
    if config is None and env is None and location.is_dir():
        selection = location / SELECTION_FILE
        if selection.is_file():
            chosen = json.loads(selection.read_text(encoding="utf-8"))
            config = location / chosen["config"]
            env = chosen.get("env")
    path = config_path(location, config)
    try:
        source = read_source(path)
    except ConfigError as exc:
        raise _mention_wrangler(exc, path) from None
    return _load(source, env=env, check_files=check_files)


def parse_manifest(
    text: str, *, path: Path, check_files: bool = True, env: str | None = None
) -> Manifest:
    """Validate config ``text`` that lives at ``path`` (its suffix says TOML or JSON)."""
    return _load(source_from_text(text, path), env=env, check_files=check_files)


def _load(source: Source, *, env: str | None, check_files: bool) -> Manifest:
    validator = _Validator(source, check_files=check_files)
    raw = validator.effective(env)
    values = validator.table(Manifest, raw, ())
    validator.cross_checks(values)
    if source.path.name == MANIFEST_FILE:
        others = [name for name in WRANGLER_FILES if (source.path.parent / name).is_file()]
        if others:
            validator.notices.append(
                f"{source.path}: read; {others[0]} beside it is not "
                f"(atoll.toml wins; pass -c {source.path.parent / others[0]} to use it)"
            )
    validator.raise_problems()
    places = tuple(
        (_dotted(where), source.line(where))
        for where in (validator.where(("routes", i)) for i in range(len(values.get("routes", ()))))
    )
    return Manifest(
        **values,
        root=source.path.parent.resolve(),
        path=source.path,
        env_name=env,
        notices=tuple(validator.notices),
        route_places=places,
    )


def _mention_wrangler(exc: ConfigError, path: Path) -> ConfigError:
    """A broken ``atoll.toml`` with a wrangler file beside it: say that file is not read."""
    if path.name != MANIFEST_FILE:
        return exc
    others = [name for name in WRANGLER_FILES if (path.parent / name).is_file()]
    if others:
        note = (
            f"{others[0]} beside it is not read while {MANIFEST_FILE} exists "
            f"(pass -c {path.parent / others[0]} to use it)"
        )
        exc.hint = f"{exc.hint}; {note}" if exc.hint else note
    return exc


class _Validator:
    def __init__(self, source: Source, *, check_files: bool = True) -> None:
        self.source = source
        self.path = source.path
        self.check_files = check_files
        self.root = source.path.parent.resolve()
        self.problems: list[ConfigError] = []
        self.notices: list[str] = []
        # top-level key of the effective config -> where it is written in the file
        self.origin: dict[str, KeyPath] = {}

    # -- where things are ----------------------------------------------------

    def where(self, keypath: KeyPath) -> KeyPath:
        """The path in the file of ``keypath`` of the effective config."""
        if not keypath or not isinstance(keypath[0], str):
            return keypath
        prefix = self.origin.get(keypath[0])
        if prefix is None:
            return keypath
        if prefix and prefix[-1] == "route":  # route = {...} was read as routes = [{...}]
            return (*prefix, *keypath[2:])
        return (*prefix, *keypath)

    def error(self, keypath: KeyPath, message: str, hint: str | None = None) -> None:
        full = self.where(keypath)
        self.problems.append(
            ConfigError(
                message,
                path=str(self.path),
                key=_dotted(full) or None,
                line=self.source.line(full),
                hint=hint,
            )
        )

    def notice(self, keypath: KeyPath, text: str) -> None:
        full = self.where(keypath)
        line = self.source.line(full)
        where = f"{self.path}:{line}" if line else str(self.path)
        self.notices.append(f"{where}: key '{_dotted(full)}' ignored: {text}")

    def raise_problems(self) -> None:
        if not self.problems:
            return
        problems = sorted(self.problems, key=lambda p: p.line or 0)
        if len(problems) == 1:
            raise _mention_wrangler(problems[0], self.path)
        raise _mention_wrangler(ConfigProblems(str(self.path), problems), self.path)

    # -- environments ------------------------------------------------------------

    def effective(self, env: str | None) -> dict[str, Any]:
        """The top-level table, or ``[env.NAME]`` over it with wrangler's inheritance."""
        raw = self.source.raw
        top = {k: v for k, v in raw.items() if k not in {"env", "$schema"}}
        envs = raw.get("env", {})
        if not isinstance(envs, dict):
            self.error(
                ("env",), f"expected a table, got {_describe(envs)}", "write [env.NAME] tables"
            )
            envs = {}
        self.origin = {key: () for key in top}
        if env is None:
            return self._route(top)
        chosen = envs.get(env)
        if not isinstance(chosen, dict):
            defined = ", ".join(sorted(envs)) or "none"
            self.error(
                ("env",) if envs else (),
                f"no environment '{env}' in the file",
                hint=f"environments defined: {defined}; add an [env.{env}] table",
            )
            return self._route(top)
        merged: dict[str, Any] = {}
        for key, value in top.items():
            scope = _scope(key)
            if scope is Scope.NOT_INHERITED:
                if key not in chosen and value:
                    self.notice(
                        (key,),
                        f"set at the top level but not in [env.{env}], and bindings are not "
                        f"inherited: env '{env}' has none (declare them in [env.{env}])",
                    )
                continue
            merged[key] = value
        for key, value in chosen.items():
            if _scope(key) is Scope.TOP_LEVEL:
                self.error(
                    ("env", env, key),
                    "only allowed at the top level, not in an environment",
                    hint="move it to the top of the file (it applies to every environment)",
                )
                continue
            merged[key] = value
            self.origin[key] = ("env", env)
        if "name" not in chosen and isinstance(top.get("name"), str):
            merged["name"] = f"{top['name']}-{env}"
        if "route" in chosen or "routes" in chosen:  # an environment's routes replace both
            for key in ("route", "routes"):
                if key not in chosen:
                    merged.pop(key, None)
        return self._route(merged)

    def _route(self, raw: dict[str, Any]) -> dict[str, Any]:
        """``route = X`` is ``routes = [X]``; both at once is a problem."""
        if "route" not in raw:
            return raw
        raw = dict(raw)
        single = raw.pop("route")
        prefix = self.origin.pop("route", ())
        if "routes" in raw:
            self.origin["route"] = prefix
            self.error(
                ("route",), "set together with 'routes'", hint="keep one of route and routes"
            )
            return raw
        raw["routes"] = [single]
        self.origin["routes"] = (*prefix, "route")
        return raw

    # -- tables -------------------------------------------------------------

    def table(self, cls: type[Any], raw: Any, keypath: KeyPath) -> dict[str, Any]:
        """The valid values of ``raw`` for dataclass ``cls``; problems recorded, bad keys left out."""
        if not isinstance(raw, dict):
            self.error(keypath, f"expected a table, got {_describe(raw)}")
            return {}
        hints = typing.get_type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls) if not f.metadata.get("internal")}
        for key in raw:
            if key not in fields and not (not keypath and key in _HANDLED):
                self._unknown(keypath, key, sorted(fields))
        values: dict[str, Any] = {}
        for name, fld in fields.items():
            sub = (*keypath, name)
            if name not in raw:
                if (
                    fld.default is dataclasses.MISSING
                    and fld.default_factory is dataclasses.MISSING
                ):
                    example = fld.metadata.get("example") or f"{name} = ..."
                    self.error(sub, "missing (it is required)", hint=f"add `{example}`")
                continue
            value = self.value(hints[name], raw[name], sub, fld.metadata)
            if value is _BAD:
                continue
            if fld.metadata.get("notice"):
                self.notice(sub, fld.metadata["notice"])
            values[name] = value
        return values

    def _unknown(self, keypath: KeyPath, key: str, valid: list[str]) -> None:
        sub = (*keypath, key)
        known = WRANGLER_KEYS.get(_generic(sub))
        if known is not None and known.cls is KeyClass.NOTICE:
            self.notice(sub, known.text)
            return
        if known is not None and known.cls is KeyClass.REFUSED:
            self.error(sub, f"not supported by atoll: {known.text}", hint=known.todo)
            return
        import difflib  # only for a key that is wrong: not on a cold start's path

        near = difflib.get_close_matches(key, valid, n=1)
        if not keypath:
            where = "at the top level"
        elif isinstance(keypath[-1], int):
            where = f"in [[{_dotted(self.where(keypath[:-1]))}]]"
        else:
            where = f"in [{_dotted(self.where(keypath))}]"
        hint = f"did you mean '{near[0]}'? " if near else ""
        hint += f"valid keys {where}: {', '.join(valid)}"
        self.error(sub, "unknown key", hint=hint)

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
            if isinstance(raw, str) and meta.get("shorthand"):
                raw = {meta["shorthand"]: raw}
            before = len(self.problems)
            values = self.table(tp, raw, keypath)
            return _BAD if len(self.problems) > before else tp(**values)
        if origin is tuple:
            item_tp = typing.get_args(tp)[0]
            if meta.get("one_or_many") and not isinstance(raw, list):
                one = self.value(item_tp, raw, keypath, meta)  # a problem names the key itself
                return _BAD if one is _BAD else (one,)
            if not isinstance(raw, list):
                self.error(
                    keypath,
                    f"expected a list, got {_describe(raw)}",
                    hint=meta.get("example") and f"for example `{meta['example']}`",
                )
                return _BAD
            items = [self.value(item_tp, item, (*keypath, i), meta) for i, item in enumerate(raw)]
            return _BAD if any(item is _BAD for item in items) else tuple(items)
        if origin is dict:
            _, val_tp = typing.get_args(tp)
            if not isinstance(raw, dict):
                self.error(
                    keypath,
                    f"expected a table, got {_describe(raw)}",
                    hint=meta.get("example")
                    and f"write a [{_dotted(self.where(keypath))}] table with lines like `{meta['example']}`",
                )
                return _BAD
            out: dict[str, Any] = {}
            bad = False
            for key, item in raw.items():
                sub = (*keypath, key)
                if meta.get("pattern") and not re.fullmatch(meta["pattern"], key):
                    self.error(
                        sub,
                        f"'{key}' is not a valid "
                        + ("key" if meta.get("pattern_hint") else "binding name"),
                        hint=meta.get("pattern_hint")
                        or "use a Python identifier: letters, digits and _, not starting with a digit",
                    )
                    bad = True
                    continue
                value = _plain(item) if val_tp is Any else self.scalar(val_tp, item, sub, meta)
                bad = bad or value is _BAD
                out[key] = value
            return _BAD if bad else out
        return self.scalar(tp, raw, keypath, meta)

    def scalar(self, tp: type[Any], raw: Any, keypath: KeyPath, meta: Mapping[str, Any]) -> Any:
        ok = isinstance(raw, tp) and not (tp is int and isinstance(raw, bool))
        if not ok:
            shown = f' ("{raw}")' if isinstance(raw, str) else ""
            self.error(
                keypath,
                f"expected {_TYPE_NAMES.get(tp, tp.__name__)}, got {_describe(raw)}{shown}",
                hint=meta.get("example") and f"for example `{meta['example']}`",
            )
            return _BAD
        if isinstance(raw, int | float) and not isinstance(raw, bool):
            lo, hi = meta.get("minimum"), meta.get("maximum")
            if lo is not None and raw < lo:
                self.error(keypath, f"{raw} is below the minimum {lo:g}", _range(lo, hi))
                return _BAD
            if hi is not None and raw > hi:
                self.error(keypath, f"{raw} is above the maximum {hi:g}", _range(lo, hi))
                return _BAD
        if isinstance(raw, str):
            if meta.get("path"):
                return raw if self.check_path(raw, keypath) else _BAD
            if meta.get("folder"):
                inside = self.check_inside(
                    raw, keypath, "folders a worker uses must live inside its folder"
                )
                return raw if inside else _BAD
            if meta.get("pattern") == BINDING_PATTERN and not re.fullmatch(BINDING_PATTERN, raw):
                self.error(
                    keypath,
                    f"'{raw}' is not a valid binding name",
                    hint="use a Python identifier: letters, digits and _, not starting with a digit",
                )
                return _BAD
            if meta.get("pattern") and not re.fullmatch(meta["pattern"], raw):
                self.error(
                    keypath,
                    f"'{raw}' is not valid",
                    hint=(meta.get("pattern_hint") or f"it must match {meta['pattern']}")
                    + (f", for example `{meta['example']}`" if meta.get("example") else ""),
                )
                return _BAD
        return raw

    def check_inside(self, relative: str, keypath: KeyPath, hint: str) -> bool:
        target = (self.root / relative).resolve()
        if not target.is_relative_to(self.root):
            self.error(keypath, f"'{relative}' is outside the worker folder", hint=hint)
            return False
        return True

    def check_path(self, relative: str, keypath: KeyPath) -> bool:
        if not self.check_inside(
            relative, keypath, "files a worker loads must live inside its folder"
        ):
            return False
        if self.check_files and not (self.root / relative).resolve().is_file():
            self.error(
                keypath,
                f"file '{relative}' not found in the worker folder",
                hint="check the path, or build the worker first (`atoll build`)",
            )
            return False
        return True

    # -- rules across keys --------------------------------------------------

    def cross_checks(self, values: Mapping[str, Any]) -> None:
        """Rules that span keys, on whatever keys passed on their own."""
        main = values.get("main")
        if main is not None and not main.endswith((".py", ".wasm", ".toml", *JS_SUFFIXES)):
            self.error(
                ("main",),
                f"'{main}' is neither a Python module (.py), a JavaScript worker "
                "(.js, .mjs), a wasm program (.wasm) nor a WAGI module map (modules.toml)",
                hint="main names a .py file that defines `async def fetch(request, env, ctx)`, "
                "a .js file with `export default { async fetch(request, env, ctx) { … } }`, "
                "a WASI program such as build/app.wasm, or WAGI's modules.toml"
                + (
                    "; TypeScript needs a [build] command that compiles it, main its output"
                    if main.endswith((".ts", ".tsx", ".mts"))
                    else ""
                ),
            )
        wasi = values.get("wasi")
        for guest, folder in wasi.dirs.items() if wasi is not None else ():
            if self.check_files and not (self.root / folder).is_dir():
                self.error(
                    ("wasi", "dirs", guest),
                    f"folder '{folder}' not found in the worker folder",
                    hint="create it, or fix the path",
                )
        seen: dict[str, KeyPath] = {}
        places: list[tuple[str, KeyPath]] = [
            (n, ("wasm_modules", n)) for n in values.get("wasm_modules", {})
        ]
        places += [
            (kv.binding, ("kv_namespaces", i, "binding"))
            for i, kv in enumerate(values.get("kv_namespaces", ()))
        ]
        places += [(n, ("vars", n)) for n in values.get("vars", {})]
        for name, keypath in places:
            if name in seen:
                self.error(
                    keypath,
                    f"binding '{name}' is already defined at '{_dotted(self.where(seen[name]))}'",
                    hint="every name in env must be unique",
                )
            seen.setdefault(name, keypath)


def _scope(key: str) -> Scope:
    """How ``[env.NAME]`` treats top-level ``key`` (a field's ``scope``, else the registry's)."""
    for fld in dataclasses.fields(Manifest):
        if fld.name == key and "scope" in fld.metadata:
            scope: Scope = fld.metadata["scope"]
            return scope
    known = WRANGLER_KEYS.get(key)
    return known.scope if known is not None else Scope.INHERITED


def _generic(keypath: KeyPath) -> str:
    """``kv_namespaces[].preview_id`` for ``("kv_namespaces", 0, "preview_id")``."""
    out = ""
    for part in keypath:
        out += "[]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


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
    if raw is None:
        return "null"
    return type(raw).__name__


def _range(lo: float | None, hi: float | None) -> str:
    return f"use a value from {lo:g} to {hi:g}" if lo is not None and hi is not None else ""


def _plain(item: Any) -> Any:
    """TOML values for ``[vars]``: dates become ISO strings so every var is JSON-able."""
    if isinstance(item, dict):
        return {k: _plain(v) for k, v in item.items()}
    if isinstance(item, list):
        return [_plain(v) for v in item]
    if item is None or isinstance(item, str | int | float | bool):
        return item
    if isinstance(item, datetime.date | datetime.time):  # datetime is a date
        return item.isoformat()
    return str(item)
