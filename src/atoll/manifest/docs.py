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
from atoll.manifest.schema import MANIFEST_FILE, UNSUPPORTED_WRANGLER_KEYS, Manifest

__all__ = ["DEFAULT_OUT", "REGENERATE", "full_example", "main", "render", "schema_fields"]

#: Where the page lives, relative to the repository root.
DEFAULT_OUT = Path("docs") / "config.md"

#: The command that rewrites the page (quoted in the page and in the test's failure).
REGENERATE = "python -m atoll.manifest.docs --write"

#: A manifest with one mistake, loaded at render time to show a real error message.
_SAMPLE_BAD = 'name = "seed"\nmain = "src/worker.py"\n\n[limits]\ncpu = 50\n'

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
    top = [f for f in fields if not _is_table(hints[f.name])]
    tables = [f for f in fields if _is_table(hints[f.name])]

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
        if _table_class(tp) is None:
            out.append(f"| `{key}` | {_type_name(tp, fld)} | {_default(fld)} |")
    out += ["", "## Top level", ""]
    out += ["Keys written before any `[table]` header.", ""]
    for fld in top:
        out += _key_section(fld, hints[fld.name], "###")
    for fld in tables:
        out += _table_section(fld, hints[fld.name])
    out += _unsupported()
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
        if inner is not None:
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
    return [
        f"`{MANIFEST_FILE}` sits at the root of a worker folder and says what the worker "
        "is: its name, its Python entry, the WebAssembly modules, KV namespaces and "
        "plain values it may use, its per-request limits and how to build it. "
        "`atoll dev`, `atoll build` and `atoll serve` read it; relative paths in it "
        "are relative to the folder, and a file it names must stay inside the folder.",
        "",
        "Keys follow Cloudflare's `wrangler.toml` wherever Workers has the same concept "
        "(`main` names a Python module rather than a JavaScript one). Keys of "
        "`wrangler.toml` that atoll does not support are listed "
        "[at the end](#wranglertoml-keys-atoll-does-not-support), each with what to do.",
        "",
        "**Unknown keys are errors**, not warnings: a misspelt key would otherwise be "
        "ignored silently. Every error names the file, the line, the key and what "
        "would be valid, for example:",
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


def _key_section(fld: dataclasses.Field[Any], tp: Any, level: str) -> list[str]:
    meta = fld.metadata
    out = [f"{level} `{fld.name}`", "", meta["doc"], ""]
    out.append(f"- Type: {_type_name(tp, fld)}")
    out.append(f"- Default: {_default(fld)}")
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


def _unsupported() -> list[str]:
    out = [
        "## `wrangler.toml` keys atoll does not support",
        "",
        "A manifest that sets one of these is refused with the advice below "
        "(any other unknown key is refused too, naming the nearest valid key).",
        "",
        "| Key | What to do |",
        "| --- | --- |",
    ]
    for key, advice in UNSUPPORTED_WRANGLER_KEYS.items():
        out.append(f"| `{key}` | {_cell(advice)} |")
    return out


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
            return "array of tables"
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
