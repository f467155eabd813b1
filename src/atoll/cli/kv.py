"""``atoll kv``: read and write a worker folder's KV namespaces, as ``atoll dev`` sees them.

The store is the folder's local state, ``DIR/.atoll/`` (``kv.sqlite3`` by
default; ``--kv SPEC`` or ``ATOLL_KV`` picks another, e.g. ``redis://…``).
``--binding NAME`` names a ``[[kv_namespaces]]`` entry of ``DIR/atoll.toml``;
its ``id`` is the namespace written (``--namespace-id ID`` skips the lookup).

::

    atoll kv put KEY VALUE [DIR] --binding CACHE [--ttl 3600] [--metadata '{"a":1}']
    atoll kv put KEY --path FILE [DIR] --binding CACHE
    atoll kv get KEY [DIR] --binding CACHE
    atoll kv delete KEY [DIR] --binding CACHE
    atoll kv list [DIR] --binding CACHE [--prefix P]
    atoll kv bulk put FILE.json [DIR] --binding CACHE
    atoll kv bulk delete FILE.json [DIR] --binding CACHE

wrangler's spellings work too: ``atoll kv key put|get|list|delete`` are the
commands above, and ``atoll kv namespace list|create|delete`` list the
namespaces the config binds, print the lines that bind a new one (a
namespace exists as soon as a key is written to it), and delete every key of
one. ``--preview`` and ``--local`` are accepted and change nothing: there is
one local store. ``--persist-to DIR`` reads the store ``atoll dev
--persist-to DIR`` writes.

Errors (a key or value over Workers' limits, an unknown binding) are printed
without a traceback and exit with status 1.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import json
import re
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from atoll.bindings.kv import DEFAULT_SPEC, STATE_DIR, KVNamespace, open_backend
from atoll.bindings.kv.namespace import check_key
from atoll.cli.common import config_options, fail_on_errors, load_config, selected_config
from atoll.errors import ConfigError, KVError

__all__ = ["kv"]

BULK_FIELDS = ("key", "value", "expiration", "expiration_ttl", "metadata", "base64")

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


def _namespace_id(directory: Path, binding: str | None, namespace_id: str | None) -> str:
    if namespace_id is not None:
        if binding is not None:
            raise KVError("give --binding or --namespace-id, not both")
        return namespace_id
    if binding is None:
        raise KVError(
            "no namespace given",
            hint="pass --binding NAME (a [[kv_namespaces]] binding of atoll.toml)"
            " or --namespace-id ID",
        )
    manifest = load_config(directory)
    for entry in manifest.kv_namespaces:
        if entry.binding == binding:
            return entry.id
    known = ", ".join(entry.binding for entry in manifest.kv_namespaces)
    raise ConfigError(
        f"no [[kv_namespaces]] entry has binding = {binding!r}",
        path=str(manifest.path),
        hint=f"bindings declared: {known}"
        if known
        else 'add [[kv_namespaces]] with binding = "…" and id = "…"',
    )


def _run(
    directory: Path,
    binding: str | None,
    namespace_id: str | None,
    spec: str,
    action: Callable[[KVNamespace], Awaitable[T]],
) -> T:
    """Open the folder's store, run ``action`` on the namespace, close the store."""
    ns = _namespace_id(directory, binding, namespace_id)
    context = click.get_current_context(silent=True)
    persist_to = context.params.get("persist_to") if context is not None else None
    config, _ = selected_config()
    base = config.parent if config is not None else directory  # where `atoll dev -c` keeps it
    state_dir = Path(persist_to) if persist_to else base / STATE_DIR

    async def main() -> T:
        async with open_backend(spec, state_dir=state_dir) as backend:
            return await action(KVNamespace(backend, ns))

    return asyncio.run(main())


def _local_options(command: F) -> F:
    """wrangler's ``--preview`` / ``--local`` (accepted, no effect) and ``--persist-to``.

    The command does not see them: :func:`_run` reads ``--persist-to`` from the click context.
    """

    @functools.wraps(command)
    def dropped(*args: Any, preview: bool, local: bool, persist_to: str | None, **kw: Any) -> Any:
        return command(*args, **kw)

    fn: Any = dropped
    fn = click.option(
        "--persist-to",
        type=click.Path(file_okay=False),
        default=None,
        metavar="DIR",
        help="The state folder `atoll dev --persist-to DIR` uses (default: DIR/.atoll/).",
    )(fn)
    fn = click.option(
        "--local", is_flag=True, help="Accepted for wrangler's sake; no effect (always local)."
    )(fn)
    fn = click.option(
        "--preview/--no-preview",
        default=False,
        help="Accepted for wrangler's sake; no effect (one namespace, no preview copy).",
    )(fn)
    return fn  # type: ignore[no-any-return]


def _namespace_options(fn: F) -> F:
    fn = _local_options(fn)
    fn = config_options(fn)
    fn = click.option(
        "--kv",
        "spec",
        default=DEFAULT_SPEC,
        show_default=True,
        envvar="ATOLL_KV",
        metavar="SPEC",
        help="Store: sqlite (DIR/.atoll/kv.sqlite3), sqlite:PATH, redis://HOST:PORT/DB.",
    )(fn)
    fn = click.option(
        "--namespace-id", metavar="ID", help="Use this namespace id instead of a binding's."
    )(fn)
    fn = click.option(
        "--binding", "-b", metavar="NAME", help="A [[kv_namespaces]] binding of DIR/atoll.toml."
    )(fn)
    return fn


_DIR = click.Path(file_okay=False, path_type=Path)


def _json_option(_ctx: click.Context, _param: click.Parameter, value: str | None) -> Any:
    if value is None:
        return None
    try:
        return json.loads(value)
    except ValueError as exc:
        raise click.BadParameter(f"not valid JSON: {exc}") from None


@click.group(name="kv")
def kv() -> None:
    """Read and write the KV namespaces of a worker folder's local state (DIR/.atoll/)."""


@kv.command()
@click.argument("key")
@click.argument("args", nargs=-1, metavar="VALUE [DIR]")
@click.option(
    "--path", "value_file", type=click.File("rb"), help="Read the value from this file (bytes)."
)
@click.option("--ttl", "--expiration-ttl", "expiration_ttl", type=float, help="Seconds (≥ 60).")
@click.option("--expiration", type=float, help="Expiry as seconds since the epoch.")
@click.option("--metadata", callback=_json_option, metavar="JSON", help="Metadata (JSON).")
@_namespace_options
def put(
    key: str,
    args: tuple[str, ...],
    value_file: Any,
    expiration_ttl: float | None,
    expiration: float | None,
    metadata: Any,
    binding: str | None,
    namespace_id: str | None,
    spec: str,
) -> None:
    """Write KEY: VALUE as text, or the bytes of --path FILE."""
    value: str | bytes
    if value_file is not None:
        if len(args) > 1:
            raise click.UsageError("with --path, give KEY and at most DIR")
        value = value_file.read()
        rest = args
    else:
        if not args:
            raise click.UsageError("give VALUE (or --path FILE)")
        if len(args) > 2:
            raise click.UsageError("too many arguments: KEY VALUE [DIR]")
        value, rest = args[0], args[1:]
    directory = Path(rest[0]) if rest else Path(".")
    with fail_on_errors():
        _run(
            directory,
            binding,
            namespace_id,
            spec,
            lambda ns: ns.put(key, value, expiration, expiration_ttl, metadata),
        )
    click.echo(f"wrote {key!r}", err=True)


@kv.command()
@click.argument("key")
@click.argument("directory", default=".", type=_DIR)
@_namespace_options
def get(
    key: str, directory: Path, binding: str | None, namespace_id: str | None, spec: str
) -> None:
    """Print the value of KEY (its bytes, as stored)."""
    with fail_on_errors():
        value = _run(directory, binding, namespace_id, spec, lambda ns: ns.get(key, type="bytes"))
        if value is None:
            raise KVError(f"key {key!r} not found")
    out = sys.stdout.buffer
    out.write(value)
    if sys.stdout.isatty() and not value.endswith(b"\n"):
        out.write(b"\n")
    out.flush()


@kv.command()
@click.argument("key")
@click.argument("directory", default=".", type=_DIR)
@_namespace_options
def delete(
    key: str, directory: Path, binding: str | None, namespace_id: str | None, spec: str
) -> None:
    """Delete KEY (deleting a missing key is not an error)."""
    with fail_on_errors():
        _run(directory, binding, namespace_id, spec, lambda ns: ns.delete(key))
    click.echo(f"deleted {key!r}", err=True)


@kv.command(name="list")
@click.argument("directory", default=".", type=_DIR)
@click.option("--prefix", default=None, help="Only keys that start with this.")
@_namespace_options
def list_(
    directory: Path,
    prefix: str | None,
    binding: str | None,
    namespace_id: str | None,
    spec: str,
) -> None:
    """Print every key as JSON: [{"name", "expiration"?, "metadata"?}], in key order."""

    async def collect(ns: KVNamespace) -> list[dict[str, Any]]:
        keys: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            page = await ns.list(prefix=prefix, cursor=cursor)
            for info in page.keys:
                item: dict[str, Any] = {"name": info.name}
                if info.expiration is not None:
                    item["expiration"] = info.expiration
                if info.metadata is not None:
                    item["metadata"] = info.metadata
                keys.append(item)
            if page.list_complete:
                return keys
            cursor = page.cursor

    with fail_on_errors():
        keys = _run(directory, binding, namespace_id, spec, collect)
    click.echo(json.dumps(keys, indent=2, ensure_ascii=False))


@kv.group()
def bulk() -> None:
    """Write or delete many keys from a JSON file (Workers' bulk format)."""


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise KVError(f"cannot read {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise KVError(f"{path} is not valid JSON: {exc}") from None


def _bulk_entries(path: Path) -> list[dict[str, Any]]:
    """The entries of a bulk put file, checked for shape (limits are checked by KVNamespace)."""
    data = _read_json(path)
    if not isinstance(data, list):
        raise KVError(
            f"{path}: expected a JSON array of objects",
            hint='[{"key": "k", "value": "v", "expiration_ttl": 3600, "metadata": {…}}]',
        )
    entries: list[dict[str, Any]] = []
    for i, item in enumerate(data):
        where = f"{path}: entry {i}"
        if not isinstance(item, dict):
            raise KVError(f"{where}: expected an object with key and value")
        unknown = sorted(set(item) - set(BULK_FIELDS))
        if unknown:
            raise KVError(
                f"{where}: unknown field {unknown[0]!r}",
                hint=f"fields: {', '.join(BULK_FIELDS)}",
            )
        for field in ("key", "value"):
            if not isinstance(item.get(field), str):
                raise KVError(f"{where}: {field!r} must be a string")
        if not isinstance(item.get("base64", False), bool):
            raise KVError(f"{where}: 'base64' must be true or false")
        if item.get("base64"):
            try:
                item = {**item, "value": base64.b64decode(item["value"], validate=True)}
            except (binascii.Error, ValueError):
                raise KVError(
                    f"{where} (key {item['key']!r}): 'value' is not valid base64"
                ) from None
        entries.append(item)
    return entries


def _with_entry(path: Path, i: int, exc: KVError) -> KVError:
    """``exc`` (same class) with the file and entry in front of its message."""
    return type(exc)(f"{path}: entry {i}: {exc.message}", hint=exc.hint)


@bulk.command(name="put")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("directory", default=".", type=_DIR)
@_namespace_options
def bulk_put(
    file: Path, directory: Path, binding: str | None, namespace_id: str | None, spec: str
) -> None:
    """Write every {key, value, expiration?, expiration_ttl?, metadata?, base64?} of FILE.

    All entries are checked first: if one is invalid, nothing is written.
    """

    async def write(ns: KVNamespace) -> int:
        for i, item in enumerate(entries):
            args = (
                item["key"],
                item["value"],
                item.get("expiration"),
                item.get("expiration_ttl"),
                item.get("metadata"),
            )
            try:
                ns.check_put(*args)
            except KVError as exc:
                raise _with_entry(file, i, exc) from None
        for item in entries:
            await ns.put(
                item["key"],
                item["value"],
                item.get("expiration"),
                item.get("expiration_ttl"),
                item.get("metadata"),
            )
        return len(entries)

    with fail_on_errors():
        entries = _bulk_entries(file)
        count = _run(directory, binding, namespace_id, spec, write)
    click.echo(f"wrote {count} keys", err=True)


@bulk.command(name="delete")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("directory", default=".", type=_DIR)
@_namespace_options
def bulk_delete(
    file: Path, directory: Path, binding: str | None, namespace_id: str | None, spec: str
) -> None:
    """Delete every key of FILE: a JSON array of key strings (or of {"key": …} objects)."""

    with fail_on_errors():
        data = _read_json(file)
        if not isinstance(data, list):
            raise KVError(f"{file}: expected a JSON array of keys")
        keys: list[str] = []
        for i, item in enumerate(data):
            key = item.get("key") if isinstance(item, dict) else item
            if not isinstance(key, str):
                raise KVError(f"{file}: entry {i}: expected a key string")
            try:
                check_key(key)
            except KVError as exc:
                raise _with_entry(file, i, exc) from None
            keys.append(key)

        async def remove(ns: KVNamespace) -> int:
            for key in keys:
                await ns.delete(key)
            return len(keys)

        count = _run(directory, binding, namespace_id, spec, remove)
    click.echo(f"deleted {count} keys", err=True)


# -- wrangler's spellings: `kv key …` and `kv namespace …` ---------------------------


@kv.group(name="key")
def key_group() -> None:
    """wrangler's `kv key put|get|list|delete`: the same commands as `atoll kv put|get|…`."""


for _command in (put, get, delete, list_):
    key_group.add_command(_command)


@kv.group(name="namespace")
def namespace() -> None:
    """wrangler's `kv namespace list|create|delete`, for a worker folder's local store."""


@namespace.command(name="list")
@click.argument("directory", default=".", type=_DIR)
@config_options
def namespace_list(directory: Path) -> None:
    """Print the namespaces DIR's config binds, as JSON: [{"id", "title"}] (wrangler's shape)."""
    with fail_on_errors():
        manifest = load_config(directory)
    listed = [{"id": entry.id, "title": entry.binding} for entry in manifest.kv_namespaces]
    click.echo(json.dumps(listed, indent=2))


@namespace.command(name="create")
@click.argument("name")
@_local_options
def namespace_create(name: str) -> None:
    """Print the lines that bind namespace NAME; add them to the config.

    Nothing is created in the store: a namespace exists as soon as a key is
    written to it, and its keys never mix with another namespace's.
    """
    with fail_on_errors():
        binding = name.upper().replace("-", "_")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", binding):
            raise KVError(
                f"{name!r} cannot be a binding name",
                hint="use letters, digits, _ and -, not starting with a digit",
            )
        if not re.fullmatch(r"[A-Za-z0-9_.:-]{1,128}", name):
            raise KVError(f"{name!r} cannot be a namespace id", hint="at most 128 of A-Za-z0-9_.:-")
    click.echo("Add this to atoll.toml (wrangler.toml: the same lines):\n")
    click.echo(f'[[kv_namespaces]]\nbinding = "{binding}"\nid = "{name}"')


@namespace.command(name="delete")
@click.argument("directory", default=".", type=_DIR)
@click.option("-y", "--yes", "--skip-confirmation", "yes", is_flag=True, help="Do not ask.")
@_namespace_options
def namespace_delete(
    directory: Path,
    yes: bool,
    binding: str | None,
    namespace_id: str | None,
    spec: str,
) -> None:
    """Delete every key of a namespace (--binding or --namespace-id). The config is left as it is."""
    what = f"--binding {binding}" if binding else f"--namespace-id {namespace_id}"
    if not yes:
        click.confirm(f"Delete every key of the namespace of {what}?", abort=True, err=True)

    async def remove_all(ns: KVNamespace) -> int:
        names: list[str] = []
        cursor: str | None = None
        while True:
            page = await ns.list(cursor=cursor)
            names += [info.name for info in page.keys]
            if page.list_complete:
                break
            cursor = page.cursor
        for name in names:
            await ns.delete(name)
        return len(names)

    with fail_on_errors():
        count = _run(directory, binding, namespace_id, spec, remove_all)
    click.echo(f"deleted {count} keys", err=True)
