"""WAGI apps: ``main = "modules.toml"`` serves WAGI's module map as it is.

WAGI's ``modules.toml`` (github.com/deislabs/wagi, ``docs/configuring_and_running.md``)
lists ``[[module]]`` entries; atoll reads it directly, at load, once per deploy:

* ``route`` (required): ``/hello`` or ``/hello/...``, mounted below the worker's own
  route (``site.test/app/*`` + ``/hello`` answers ``/app/hello``);
* ``module`` (required): a ``.wasm`` file, relative to the folder of ``modules.toml``
  (``file://`` accepted), inside the worker folder;
* ``entrypoint``: the export to run instead of ``_start``;
* ``volumes``: guest path → folder (read-only, inside the worker folder);
* ``environment``: variables for this module only (the worker's ``[vars]`` apply to all);
* ``argv``: WAGI's template, ``${SCRIPT_NAME}`` and ``${ARGS}`` replaced per request;
* a module that exports ``_routes`` is run once at load; each line it prints,
  ``/path entrypoint``, adds a route below the module's own to another export
  (WAGI's dynamic routes, ``docs/writing_modules.md``).

Routes are tried in WAGI's order: modules as listed, each module's dynamic
routes last-printed first, then its own route; the first that matches serves
the request, and a path no route matches is a 404. ``allowed_hosts`` and
``http_max_concurrency`` (outbound HTTP), ``bindle_server``, ``repository`` and
``oci:``/``bindle:`` module references are refused with the reason, and so are
``[wasi] dirs``, ``argv`` and ``mode`` in ``atoll.toml`` (each module has its own).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from atoll.api import ExecutionContext, Request, Response
from atoll.entries.cgi import program_fetch, request_server_name
from atoll.entries.mounts import Mount, locate, worker_mounts
from atoll.errors import AtollError, ConfigError, ModuleLoadError
from atoll.manifest import Manifest
from atoll.runtime.cache import ModuleCache
from atoll.runtime.hostfuncs import CURRENT
from atoll.runtime.invocation import MIB, Invocation
from atoll.runtime.module import WasmModule
from atoll.runtime.program import run_program
from atoll.runtime.wasi import DirGrant, WasiContext

__all__ = ["WagiRoute", "load_wagi_app", "parse_dynamic_routes", "read_module_map"]

_KEYS = frozenset({"route", "module", "entrypoint", "volumes", "environment", "argv"})
#: Keys of WAGI's module map that atoll does not offer, with the reason and what to do.
REFUSED_KEYS = {
    "allowed_hosts": (
        "atoll has no outbound HTTP for WASI guests yet, so there are no hosts to allow; "
        "remove the key (a module that makes HTTP requests cannot run on atoll yet)"
    ),
    "http_max_concurrency": ("atoll has no outbound HTTP for WASI guests yet; remove the key"),
    "bindle_server": "atoll loads modules from files only; remove the key",
    "repository": "reserved by WAGI and unused; remove the key",
}


@dataclass(frozen=True, slots=True)
class ModuleEntry:
    """One ``[[module]]`` of the map, checked."""

    index: int
    route: Mount
    path: Path
    shown: str
    entrypoint: str
    grants: tuple[DirGrant, ...]
    environment: dict[str, str]
    argv: str | None


@dataclass(frozen=True, slots=True)
class WagiRoute:
    """A route of the app: a mount (below the worker's) and the export that serves it."""

    mount: Mount
    module: int
    entrypoint: str


def read_module_map(manifest: Manifest) -> list[ModuleEntry]:
    """Parse and check ``main`` (a ``modules.toml``). Raises :class:`ConfigError` naming
    the file, the ``module[N].key`` and what to do."""
    path = manifest.resolve(manifest.main)
    shown = manifest.main
    folder = path.parent
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read: {exc}", path=shown) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", path=shown) from None

    def bad(key: str, message: str, hint: str) -> ConfigError:
        return ConfigError(message, path=shown, key=key, hint=hint)

    extra = sorted(set(data) - {"module"})
    if extra:
        raise bad(extra[0], "unknown key", "a WAGI module map holds [[module]] entries only")
    modules = data.get("module")
    if not isinstance(modules, list) or not modules:
        raise bad("module", "no [[module]] entries", "add [[module]] with route and module")
    entries = []
    for index, raw in enumerate(modules):
        where = f"module[{index}]"
        if not isinstance(raw, dict):
            raise bad(where, "expected a table", "write [[module]] entries")
        for key in raw:
            if key in REFUSED_KEYS:
                raise bad(f"{where}.{key}", "not supported", REFUSED_KEYS[key])
            if key not in _KEYS:
                raise bad(
                    f"{where}.{key}", "unknown key", f"the keys are {', '.join(sorted(_KEYS))}"
                )
        route = raw.get("route")
        if not isinstance(route, str) or not route.startswith("/"):
            raise bad(
                f"{where}.route", "a route is a path", 'write route = "/hello" or "/hello/..."'
            )
        reference = raw.get("module")
        if not isinstance(reference, str) or not reference:
            raise bad(f"{where}.module", "missing", 'write module = "hello.wasm"')
        if reference.startswith(("oci:", "bindle:")):
            raise bad(
                f"{where}.module",
                f"{reference!r}: atoll loads modules from files only",
                "download the .wasm into the worker folder and name its path",
            )
        relative = reference.removeprefix("file://")
        target = (folder / relative).resolve()
        if not target.is_relative_to(manifest.root):
            raise bad(
                f"{where}.module",
                f"'{relative}' is outside the worker folder",
                "files a worker loads must live inside its folder",
            )
        if target.suffix == ".wat":
            raise bad(
                f"{where}.module",
                f"'{relative}' is WebAssembly text",
                "build it to .wasm (wat2wasm) and name the .wasm",
            )
        if not target.is_file():
            raise bad(
                f"{where}.module",
                f"file '{relative}' not found",
                "check the path, or build the module first",
            )
        entrypoint = raw.get("entrypoint", "_start")
        if not isinstance(entrypoint, str) or not entrypoint:
            raise bad(f"{where}.entrypoint", "expected an export name", 'entrypoint = "hello"')
        grants = []
        volumes = raw.get("volumes", {})
        if not isinstance(volumes, dict):
            raise bad(f"{where}.volumes", "expected a table", 'volumes = { "/data" = "data" }')
        for guest, host in volumes.items():
            host_path = (folder / str(host)).resolve()
            if not guest.startswith("/") or not isinstance(host, str):
                raise bad(
                    f"{where}.volumes",
                    f"{guest!r}: guest paths are absolute folders",
                    'volumes = { "/data" = "data" }',
                )
            if not host_path.is_relative_to(manifest.root) or not host_path.is_dir():
                raise bad(
                    f"{where}.volumes.{guest}",
                    f"'{host}' is not a folder inside the worker folder",
                    "folders a worker uses must live inside its folder",
                )
            grants.append(DirGrant(host_path, guest))
        environment = raw.get("environment", {})
        if not isinstance(environment, dict) or not all(
            isinstance(v, str) and "=" not in k for k, v in environment.items()
        ):
            raise bad(
                f"{where}.environment",
                "expected a table of strings",
                'environment = { GREETING = "hello" }',
            )
        argv = raw.get("argv")
        if argv is not None and not isinstance(argv, str):
            raise bad(f"{where}.argv", "expected a string", 'argv = "${SCRIPT_NAME} -v ${ARGS}"')
        entries.append(
            ModuleEntry(
                index,
                Mount.parse(route),
                target,
                str(target.relative_to(manifest.root)),
                entrypoint,
                tuple(grants),
                dict(environment),
                argv,
            )
        )
    return entries


def parse_dynamic_routes(text: str, where: str) -> list[tuple[Mount, str]]:
    """The ``/path entrypoint`` lines a module's ``_routes`` printed (WAGI's format: two
    fields a line, blank lines skipped). Raises :class:`ModuleLoadError` for another line."""
    routes = []
    for line in text.splitlines():
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2 or not fields[0].startswith("/"):
            raise ModuleLoadError(
                f"{where}: _routes printed {line[:200]!r}, not `/path entrypoint`",
                hint="print one route a line: a path (ending in /... for a prefix) and an export",
            )
        routes.append((Mount.parse(fields[0]), fields[1]))
    return routes


def _dynamic_routes(module: WasmModule, manifest: Manifest, cache: ModuleCache) -> str:
    """Run the module's ``_routes`` once (at load, under the worker's limits) and return
    what it printed."""
    invocation = Invocation(cache.engine, manifest.limits, "load", manifest.name)
    context = WasiContext(args=[module.source], stdout_limit=MIB)
    token = CURRENT.set(invocation)
    try:
        code = run_program(module, invocation, context, entrypoint="_routes")
    except AtollError as exc:
        raise ModuleLoadError(
            f"{module.source}: _routes failed at load: {exc.message}", hint=exc.hint
        ) from None
    finally:
        CURRENT.reset(token)
        logs = list(invocation.logs)
        invocation.close()
    if code != 0:
        raise ModuleLoadError(
            f"{module.source}: _routes exited with code {code}",
            hint="; ".join(logs[-3:]) or "see what it writes to stderr",
        )
    return context.stdout_bytes().decode("utf-8", errors="replace")


def load_wagi_app(manifest: Manifest, cache: ModuleCache, linker: Any) -> Any:
    """Load every module of the map and return the app's ``fetch`` (once per deploy)."""
    for key, value in (("dirs", manifest.wasi.dirs), ("argv", manifest.wasi.argv)):
        if value:
            raise ConfigError(
                f"a WAGI app ({manifest.main}) takes its {key} from each [[module]]",
                path=str(manifest.path.name),
                key=f"wasi.{key}",
                hint="remove it and write volumes / argv in modules.toml",
            )
    if manifest.wasi.mode != "cgi":
        raise ConfigError(
            f"a WAGI app ({manifest.main}) is CGI: its modules print headers",
            path=str(manifest.path.name),
            key="wasi.mode",
            hint='remove mode, or serve a plain program with main = "its .wasm"',
        )
    entries = read_module_map(manifest)
    mounts = worker_mounts(manifest.route_patterns)
    compiled: dict[Path, WasmModule] = {}
    table: list[tuple[Mount, Any]] = []
    for entry in entries:
        module = compiled.get(entry.path)
        if module is None:
            module = WasmModule.load(
                f"module[{entry.index}]",
                entry.path,
                cache=cache,
                linker=linker,
                display=entry.shown,
            )
            compiled[entry.path] = module
        routes = []
        if "_routes" in module.functions:
            dynamic = parse_dynamic_routes(_dynamic_routes(module, manifest, cache), entry.shown)
            routes = [(entry.route.below(mount), export) for mount, export in reversed(dynamic)]
        routes.append((entry.route, entry.entrypoint))
        for mount, export in routes:
            if export not in module.functions:
                raise ModuleLoadError(
                    f"{entry.shown}: route {mount.text} names entrypoint {export!r}, "
                    "which the module does not export",
                    hint=f"exports: {', '.join(sorted(module.functions))}",
                )
            table.append(
                (
                    mount,
                    program_fetch(
                        module,
                        manifest,
                        mounts=mounts,
                        inner=mount,
                        entrypoint=export,
                        argv_template=entry.argv,
                        grants=entry.grants,
                        environment=entry.environment,
                    ),
                )
            )
    inner = tuple(mount for mount, _ in table)
    fetches = tuple(fetch for _, fetch in table)

    async def fetch(request: Request, env: Any, ctx: ExecutionContext) -> Response:
        split = request.url_parts
        located = locate(split.path or "/", request_server_name(request), mounts, inner)
        if located is None:
            return Response(f"404 Not Found\nno route of {manifest.main} matched\n", status=404)
        served: Response = await fetches[located.inner](request, env, ctx)
        return served

    return fetch
