"""Render ``docs/config.md``, the ``atoll.toml`` reference, from the schema.

The schema (:mod:`atoll.manifest.schema`) is the single source: every key,
its type, default, allowed values, doc text and example come from the
``setting(...)`` of its field, and the sample error message from the loader
itself. ``tests/manifest/test_docs_config.py`` fails when the committed page
differs from :func:`render`. Regenerate it from the repository root with::

    python -m atoll.manifest.docs --write

(or ``python -m atoll.manifest.docs > docs/config.md``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
import types
import typing
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Union

from atoll.errors import ConfigError
from atoll.manifest.loader import parse_manifest
from atoll.manifest.schema import (
    DEFAULT_RULES,
    MANIFEST_FILE,
    WRANGLER_KEYS,
    KeyClass,
    Manifest,
    Scope,
)
from atoll.manifest.sources import CONFIG_FILES, WRANGLER_FILES

__all__ = [
    "DEFAULT_OUT",
    "REGENERATE",
    "full_example",
    "key_classes",
    "main",
    "render",
    "schema_fields",
]

#: Where the page lives, relative to the repository root.
DEFAULT_OUT = Path("docs") / "config.md"

#: The command that rewrites the page (quoted in the page and in the test's failure).
REGENERATE = "python -m atoll.manifest.docs --write"

#: A manifest with one mistake, loaded at render time to show a real error message.
_SAMPLE_BAD = (
    'name = "seed"\nmain = "src/worker.py"\n\n[limits]\ncpu = 50\n\n'
    '[[r2_buckets]]\nbinding = "FILES"\nbucket_name = "files"\n'
)

_REQUIRED = "**required**"

_SCALARS: dict[Any, tuple[str, str]] = {
    str: ("string", "strings"),
    int: ("integer", "integers"),
    float: ("number", "numbers"),
    bool: ("boolean", "booleans"),
    Any: ("any TOML value", "any TOML values"),
}


def schema_fields(
    cls: type[Any] = Manifest,
) -> Iterator[tuple[str, dataclasses.Field[Any], Any]]:
    """Every manifest key declared under ``cls``, as ``(dotted key, field, type)``.

    Nested tables are walked (``limits.cpu_ms``, ``kv_namespaces[].id``);
    internal fields filled in by the loader (``root``, ``path``) are skipped.
    """
    hints = typing.get_type_hints(cls)
    for fld in dataclasses.fields(cls):
        if fld.metadata.get("internal"):
            continue
        tp = hints[fld.name]
        yield fld.name, fld, tp
        inner = _table_class(tp)
        if inner is not None:
            suffix = "[]" if typing.get_origin(_unoptional(tp)) is tuple else ""
            for key, sub, sub_tp in schema_fields(inner):
                yield f"{fld.name}{suffix}.{key}", sub, sub_tp


def render() -> str:
    """The whole of ``docs/config.md`` as Markdown (ends with one newline)."""
    hints = typing.get_type_hints(Manifest)
    fields = [f for f in dataclasses.fields(Manifest) if not f.metadata.get("internal")]
    top = [f for f in fields if not _is_table(hints[f.name]) or f.metadata.get("shorthand")]
    tables = [f for f in fields if f not in top]

    out: list[str] = [
        f"<!-- Generated from src/atoll/manifest/schema.py by `{REGENERATE}`. "
        "Do not edit by hand. -->",
        "",
        f"# `{MANIFEST_FILE}` reference",
        "",
        *_intro(),
        "## Full example",
        "",
        "Every key, set to its documented example:",
        "",
        "```toml",
        full_example(),
        "```",
        "",
        "## Keys at a glance",
        "",
        "| Key | Type | Default |",
        "| --- | --- | --- |",
    ]
    for key, fld, tp in schema_fields():
        if _table_class(tp) is None or fld.metadata.get("shorthand"):
            out.append(f"| `{key}` | {_type_name(tp, fld)} | {_default(fld)} |")
    out += ["", "## Top level", ""]
    out += ["Keys written before any `[table]` header.", ""]
    for fld in top:
        out += _key_section(fld, hints[fld.name], "###")
        inner = _table_class(hints[fld.name])
        if inner is not None:  # a table that may also be written as a string (a route)
            sub_hints = typing.get_type_hints(inner)
            for sub in dataclasses.fields(inner):
                out += _key_section(sub, sub_hints[sub.name], "####", prefix=f"{fld.name}[].")
    for fld in tables:
        out += _table_section(fld, hints[fld.name])
    out += _environments()
    out += _key_class_table()
    return "\n".join(out).rstrip("\n") + "\n"


def full_example() -> str:
    """A manifest that sets every key to its example; it loads (files unchecked)."""
    hints = typing.get_type_hints(Manifest)
    lines: list[str] = []
    tables: list[str] = []
    for fld in dataclasses.fields(Manifest):
        if fld.metadata.get("internal"):
            continue
        tp = hints[fld.name]
        inner = _table_class(tp)
        if inner is not None and fld.metadata.get("shorthand"):
            lines.append(_example(fld))
        elif inner is not None:
            array = typing.get_origin(_unoptional(tp)) is tuple
            header = f"[[{fld.name}]]" if array else f"[{fld.name}]"
            body = [_example(sub) for sub in dataclasses.fields(inner)]
            tables += ["", header, *body]
        elif typing.get_origin(_unoptional(tp)) is dict:
            tables += ["", f"[{fld.name}]", _example(fld)]
        else:
            lines.append(_example(fld))
    return "\n".join(lines + tables)


# -- sections -----------------------------------------------------------------


def _intro() -> list[str]:
    sample = _sample_error()
    names = ", ".join(f"`{n}`" for n in WRANGLER_FILES)
    return [
        f"`{MANIFEST_FILE}` sits at the root of a worker folder and says what the worker "
        "is: its name, its entry, the WebAssembly modules, KV namespaces and "
        "plain values it may use, its per-request limits and how to build it. "
        "Every command that reads a worker (`atoll dev`, `build`, `deploy`, `kv`, "
        "`secret`, `tail`, `versions`, `rollback`, `delete`) reads it; relative paths in "
        "it are relative to its folder, and a file it names must stay inside the folder.",
        "",
        "## Which file is read",
        "",
        "A Workers project's own config is read as it is. In a worker folder, the first "
        "of these files found is the config: "
        + ", ".join(f"`{n}`" for n in CONFIG_FILES)
        + f". **`{MANIFEST_FILE}` wins** when there are several: a project can keep its "
        f"wrangler file for Cloudflare and give atoll its own, and a notice at load "
        f"names the wrangler file that is not read. Between wrangler's files ({names}) "
        "wrangler's own order applies. `-c FILE` / `--config FILE` reads that file "
        "instead, whatever its name (`.json` and `.jsonc` are JSON, anything else TOML); "
        "paths in it are relative to its folder. JSON files may hold `//` and `/* */` "
        "comments and trailing commas, as wrangler allows. A folder with no config "
        "but one in the folder above is told so.",
        "",
        "Keys follow Cloudflare's wrangler configuration wherever Workers has the same "
        "concept (`main` names a Python module or a wasm program). Every key wrangler "
        "documents has a class, listed [at the end](#every-wrangler-key-and-what-atoll-does-with-it): "
        "honoured, accepted with a one-line notice (it means nothing on a self-hosted "
        "node), or refused with the reason and what to do.",
        "",
        "**Unknown keys are errors**, not warnings: a misspelt key would otherwise be "
        "ignored silently. **Every problem of a file is reported in one run**, each "
        "naming the file, the line, the key and what would be valid; then the command "
        "exits with status 1. For example:",
        "",
        "```toml",
        _SAMPLE_BAD.rstrip("\n"),
        "```",
        "",
        "```text",
        sample,
        "```",
        "",
        "**Bindings are denied by default**: a worker's `env` holds exactly what this "
        "file declares in `[wasm_modules]`, `[[kv_namespaces]]` and `[vars]`, and "
        "nothing else. Binding names are Python identifiers (`env.NAME`) and must be "
        "unique across the three tables.",
        "",
    ]


def _key_section(fld: dataclasses.Field[Any], tp: Any, level: str, prefix: str = "") -> list[str]:
    meta = fld.metadata
    out = [f"{level} `{prefix}{fld.name}`", "", meta["doc"], ""]
    out.append(f"- Type: {_type_name(tp, fld)}")
    out.append(f"- Default: {_default(fld)}")
    out.append(f"- Class: {_class_of(fld)}; in `[env.NAME]`: {meta['scope'].value}")
    out += [f"- {line}" for line in _allowed(tp, fld)]
    out += _example_lines(fld)
    out.append("")
    return out


def _table_section(fld: dataclasses.Field[Any], tp: Any) -> list[str]:
    inner = _table_class(tp)
    if inner is None:  # a table of user-chosen keys: [wasm_modules], [vars]
        out = [f"## `[{fld.name}]`", ""]
        out += [fld.metadata["doc"], ""]
        out.append(f"- Type: {_type_name(tp, fld)}")
        out.append(f"- Default: {_default(fld)}")
        out += [f"- {line}" for line in _allowed(tp, fld)]
        out.append("- Example:")
        out += ["", "  ```toml", f"  [{fld.name}]", f"  {_example(fld)}", "  ```", ""]
        return out
    array = typing.get_origin(_unoptional(tp)) is tuple
    header = f"[[{fld.name}]]" if array else f"[{fld.name}]"
    out = [f"## `{header}`", "", _class_doc(inner, header), ""]
    if array:
        out += [f"Write one `{header}` table per entry; there are none by default.", ""]
    elif all(_default(sub) != _REQUIRED for sub in dataclasses.fields(inner)):
        out += ["The table and every key in it are optional.", ""]
    hints = typing.get_type_hints(inner)
    for sub in dataclasses.fields(inner):
        out += _key_section(sub, hints[sub.name], "###")
    return out


def _environments() -> list[str]:
    inherited, bindings, top_only = (_top_keys(scope) for scope in Scope)
    return [
        "## Environments: `[env.NAME]`",
        "",
        "`--env NAME` (`atoll dev`, `build`, `deploy`, `kv`, `secret`, `tail`, `versions`, "
        "`rollback`, `delete`) reads the `[env.NAME]` table over the top level, with "
        "wrangler's rules:",
        "",
        "- the worker is named `NAME-ENV` (`name` of the top level, a dash, the "
        "environment) unless `[env.NAME]` sets `name`;",
        "- **inherited** keys come from the top level unless the environment sets "
        "them: " + ", ".join(f"`{k}`" for k in inherited) + ";",
        "- **bindings are not inherited**: the environment has only those it declares "
        "itself (a notice says so when the top level has some and the environment none): "
        + ", ".join(f"`{k}`" for k in bindings)
        + ";",
        "- **top-level-only** keys may not appear in an environment: "
        + ", ".join(f"`{k}`" for k in top_only)
        + ".",
        "",
        "An unknown `--env` is an error that lists the environments of the file.",
        "",
        "```toml",
        'name = "shop"',
        'main = "src/worker.py"',
        "",
        "[vars]",
        'STAGE = "dev"',
        "",
        "[env.production]",
        'routes = [{ pattern = "shop.example.com", custom_domain = true }]',
        'vars = { STAGE = "production" }   # atoll deploy --env production: worker shop-production',
        "```",
        "",
        "## Module rules",
        "",
        "After the `[[rules]]` of the file come wrangler's default rules, in this order "
        "(a rule without `fallthrough = true` ends its type: later rules of the same type, "
        "defaults included, do not apply):",
        "",
        "| Type | Globs |",
        "| --- | --- |",
        *[f"| `{r.type}` | {', '.join(f'`{g}`' for g in r.globs)} |" for r in DEFAULT_RULES],
        "",
    ]


def _top_keys(scope: Scope) -> list[str]:
    """Top-level wrangler keys (schema fields, then the registry) of one ``scope``."""
    names = [
        f.name
        for f in dataclasses.fields(Manifest)
        if f.metadata.get("wrangler", True) and f.metadata.get("scope") is scope
    ]
    names += [k for k, known in WRANGLER_KEYS.items() if "." not in k and known.scope is scope]
    return list(dict.fromkeys(names))


def key_classes() -> list[tuple[str, KeyClass, Scope, str]]:
    """Every wrangler key atoll knows: ``(dotted key, class, scope, what atoll does)``.

    The schema's own fields (those of wrangler, not atoll's additions) come
    first, then :data:`WRANGLER_KEYS`; a registry key that is also a field is
    the field.
    """
    out: list[tuple[str, KeyClass, Scope, str]] = []
    fields = set()
    for key, fld, tp in schema_fields():
        fields.add(key)
        meta = fld.metadata
        if not meta.get("wrangler", True) or (
            _table_class(tp) is not None and not meta.get("shorthand")
        ):
            continue
        parent = key.rsplit(".", 1)[0].removesuffix("[]") if "." in key else None
        scope = meta["scope"]
        if parent is not None:
            scope = next(f.metadata["scope"] for n, f, _ in schema_fields() if n == parent)
        cls = KeyClass.NOTICE if meta.get("notice") else KeyClass.HONOURED
        text = meta["notice"] if meta.get("notice") else _first_sentence(meta["doc"])
        out.append((key, cls, scope, text))
    for key, known in WRANGLER_KEYS.items():
        if key in fields:
            continue
        text = known.text + (f". To do: {known.todo}" if known.todo else "")
        out.append((key, known.cls, known.scope, text))
    return out


def _key_class_table() -> list[str]:
    out = [
        "## Every wrangler key and what atoll does with it",
        "",
        "Each key wrangler documents falls in one of three classes: **honoured** (read "
        "and acted on), **accepted, with a notice** (it means nothing on a self-hosted "
        "node: the worker loads and one line says the key is ignored) or **refused** "
        "(atoll cannot do what it asks: the load fails with the reason and what to do). "
        "Any other key is refused as unknown, naming the nearest valid key. Keys "
        "marked atoll's own in the sections above are not wrangler's and not listed.",
        "",
        "| Key | Class | In `[env.NAME]` | What atoll does |",
        "| --- | --- | --- | --- |",
    ]
    for key, cls, scope, text in key_classes():
        out.append(f"| `{key}` | {cls.value} | {scope.value} | {_cell(text)} |")
    return out


def _class_of(fld: dataclasses.Field[Any]) -> str:
    if not fld.metadata.get("wrangler", True):
        return "atoll's own"
    if fld.metadata.get("notice"):
        return f"{KeyClass.NOTICE.value} ({fld.metadata['notice']})"
    return KeyClass.HONOURED.value


def _first_sentence(doc: str) -> str:
    end = doc.find(". ")
    return doc if end < 0 else doc[: end + 1]


# -- one key ------------------------------------------------------------------


def _type_name(tp: Any, fld: dataclasses.Field[Any]) -> str:
    tp = _unoptional(tp)
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):  # `bool | tuple[str, ...]`
        return " or ".join(_type_name(a, fld) for a in typing.get_args(tp))
    path = bool(fld.metadata.get("path") or fld.metadata.get("folder"))
    if dataclasses.is_dataclass(tp):
        return "table"
    if origin is tuple:
        item = typing.get_args(tp)[0]
        if dataclasses.is_dataclass(item):
            return (
                "list of strings or tables" if fld.metadata.get("shorthand") else "array of tables"
            )
        if fld.metadata.get("one_or_many"):
            return (
                "path or list of paths"
                if path and item is str
                else f"{_SCALARS[item][0]} or list of {_SCALARS[item][1]}"
            )
        return "list of paths" if path and item is str else f"list of {_SCALARS[item][1]}"
    if origin is dict:
        _, value = typing.get_args(tp)
        shown = "path" if path and value is str else _SCALARS[value][0]
        return f"table of string → {shown}"
    if path and tp is str:
        return "path"
    return _SCALARS[tp][0]


def _default(fld: dataclasses.Field[Any]) -> str:
    if fld.default_factory is not dataclasses.MISSING:
        value = fld.default_factory()
        if value in ((), {}):
            return "empty"
        return f"`{_toml(value)}`"  # pragma: no cover - no such field yet
    if fld.default is dataclasses.MISSING:
        return _REQUIRED
    if fld.default is None:
        return "unset"
    return f"`{_toml(fld.default)}`"


def _allowed(tp: Any, fld: dataclasses.Field[Any]) -> list[str]:
    meta = fld.metadata
    out: list[str] = []
    lo, hi = meta.get("minimum"), meta.get("maximum")
    if lo is not None and hi is not None:
        out.append(f"Range: {_num(lo)} to {_num(hi)}")
    elif lo is not None:
        out.append(f"Range: at least {_num(lo)}")
    elif hi is not None:
        out.append(f"Range: at most {_num(hi)}")
    keyed = typing.get_origin(_unoptional(tp)) is dict
    if meta.get("pattern"):
        what = "Binding names: each" if keyed else "Pattern: the whole value"
        out.append(f"{what} matches `{meta['pattern']}`")
    if meta.get("pattern_hint"):
        out.append(f"In words: {meta['pattern_hint']}")
    if meta.get("folder"):
        out.append("Folder: relative to the worker folder; must stay inside it")
    if meta.get("path"):
        out.append(
            "Path: relative to the worker folder; the file must stay inside the folder "
            "and exist once the worker is built"
        )
    return out


def _example_lines(fld: dataclasses.Field[Any]) -> list[str]:
    example = _example(fld)
    if "\n" not in example:
        return [f"- Example: `{example}`"]
    return ["- Example:", "", "  ```toml", *[f"  {line}" for line in example.splitlines()], "  ```"]


def _example(fld: dataclasses.Field[Any]) -> str:
    example = fld.metadata.get("example")
    if example is None:
        raise ValueError(f"schema field '{fld.name}' has no example")
    return str(example)


def _sample_error() -> str:
    try:
        parse_manifest(_SAMPLE_BAD, path=Path(MANIFEST_FILE), check_files=False)
    except ConfigError as exc:
        return str(exc)
    raise AssertionError("the sample manifest in the docs loaded without error")


# -- helpers ------------------------------------------------------------------


def _unoptional(tp: Any) -> Any:
    if typing.get_origin(tp) in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def _table_class(tp: Any) -> type[Any] | None:
    """The dataclass behind a ``[table]`` or ``[[array]]`` field, else ``None``."""
    tp = _unoptional(tp)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return tp
    if typing.get_origin(tp) is tuple:
        item = typing.get_args(tp)[0]
        if dataclasses.is_dataclass(item) and isinstance(item, type):
            return item
    return None


def _is_table(tp: Any) -> bool:
    return _table_class(tp) is not None or typing.get_origin(_unoptional(tp)) is dict


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    return str(value)


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _class_doc(cls: type[Any], header: str) -> str:
    """First paragraph of a schema class's docstring, in Markdown, without a ``[table]:`` lead."""
    text = " ".join((cls.__doc__ or "").split("\n\n")[0].split())
    text = re.sub(r"``(.+?)``", r"`\1`", text)
    lead = f"`{header}`: "
    if text.startswith(lead):
        text = text[len(lead) :]
        text = text[:1].upper() + text[1:]
    return text


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


# -- command line ---------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m atoll.manifest.docs [--write] [--out PATH]``.

    Prints the page on stdout, or with ``--write`` writes it to ``--out``
    (default ``docs/config.md``, relative to the current folder: run it from
    the repository root). Returns the exit status.
    """
    parser = argparse.ArgumentParser(
        prog="python -m atoll.manifest.docs",
        description="Render the atoll.toml reference (docs/config.md) from the schema.",
    )
    parser.add_argument(
        "--write", action="store_true", help="write the page instead of printing it"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        metavar="PATH",
        help=f"file to write with --write (default: {DEFAULT_OUT.as_posix()}, from the repository root)",
    )
    args = parser.parse_args(argv)
    page = render()
    if not args.write:
        sys.stdout.write(page)
        return 0
    out: Path = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8", newline="\n")
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
