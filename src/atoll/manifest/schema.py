"""The schema of ``atoll.toml``: one frozen dataclass per table, a doc per field.

This module is the single source of truth for the manifest. The loader
(:mod:`atoll.manifest.loader`) validates against it, and
:mod:`atoll.manifest.docs` renders ``docs/config.md`` from it; a test fails when
the rendered page and the committed one differ.

Keys follow ``wrangler.toml`` where Workers has the same concept. Bindings are
denied by default: a worker's ``env`` holds exactly what this file declares.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "Assets",
    "Build",
    "KVNamespaceBinding",
    "Limits",
    "Manifest",
    "Site",
    "Wasi",
    "setting",
]

#: Name of the manifest file inside a worker folder.
MANIFEST_FILE = "atoll.toml"

#: Workers' limit on a compressed module, applied to every wasm file at load.
MAX_COMPRESSED_MODULE_BYTES = 10 * 1024 * 1024

#: Suffixes of a JavaScript ``main`` (run in V8 by ``atoll.entries.js``).
JS_SUFFIXES = (".js", ".mjs")

#: ``env`` names must be Python identifiers (``env.NAME``); Workers uses the same rule in JS.
BINDING_PATTERN = r"[A-Za-z_][A-Za-z0-9_]*"


def setting(
    default: Any = dataclasses.MISSING,
    *,
    doc: str,
    example: str | None = None,
    minimum: float | None = None,
    maximum: float | None = None,
    pattern: str | None = None,
    path: bool = False,
    folder: bool = False,
    pattern_hint: str | None = None,
    default_factory: Any = dataclasses.MISSING,
) -> Any:
    """Declare one manifest key.

    ``doc`` is the text shown in ``docs/config.md``; ``minimum``/``maximum``
    bound numbers; ``pattern`` is a full-match regex for strings (or for each
    mapping key of a ``dict`` field); ``path`` marks a file path relative to
    the worker folder that must exist and stay inside it; ``folder`` a folder
    path that must stay inside it; ``pattern_hint`` says the pattern in words.
    """
    meta = {
        "doc": doc,
        "example": example,
        "minimum": minimum,
        "maximum": maximum,
        "pattern": pattern,
        "path": path,
        "folder": folder,
        "pattern_hint": pattern_hint,
    }
    if default_factory is not dataclasses.MISSING:
        return field(default_factory=default_factory, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True, slots=True)
class Limits:
    """``[limits]``: what one request may use. Enforced, not advised."""

    cpu_ms: int = setting(
        50,
        doc=(
            "Wasm CPU time one request may use, in milliseconds, summed over every "
            "wasm call it makes (fresh and warm instances). Past it the request ends "
            "with 503 and outcome `exceeded_cpu`. Workers: 10 ms free, 30 s default paid."
        ),
        example="cpu_ms = 50",
        minimum=1,
        maximum=30_000,
    )
    memory_mb: int = setting(
        128,
        doc=(
            "Wasm linear memory one request may hold, in MiB, summed over the fresh "
            "instances it creates. A `memory.grow` past it fails (returns -1); a guest "
            "that then traps ends with 503 and outcome `exceeded_memory`. The warm "
            "`instance` of a module has a budget of its own of the same size."
        ),
        example="memory_mb = 128",
        minimum=1,
        maximum=4096,
    )
    response_mb: int = setting(
        32,
        doc=(
            "Largest response a whole-wasm worker may write to stdout, in MiB. The "
            "write that crosses it ends the request with 502."
        ),
        example="response_mb = 32",
        minimum=1,
        maximum=1024,
    )
    request_body_mb: int = setting(
        100,
        doc=(
            "Largest request body accepted, in MiB. A larger body is refused with 413 "
            "before it is read whole (from `Content-Length`, or while streaming)."
        ),
        example="request_body_mb = 100",
        minimum=1,
        maximum=4096,
    )


@dataclass(frozen=True, slots=True)
class Build:
    """``[build]``: how to turn sources into the files the worker loads."""

    command: str | None = setting(
        None,
        doc=(
            "Shell command run in the worker folder (or `cwd`) by `atoll build` and "
            "before `atoll dev` serves. A non-zero exit stops with its output."
        ),
        example='command = "./build.sh"',
    )
    cwd: str | None = setting(
        None,
        doc="Folder to run `command` in, relative to the worker folder.",
        example='cwd = "rust"',
        folder=True,
    )
    watch_dir: tuple[str, ...] = setting(
        default_factory=tuple,
        doc="Folders whose changes trigger a rebuild in `atoll dev` (relative to the worker folder).",
        example='watch_dir = ["src"]',
        folder=True,
    )


@dataclass(frozen=True, slots=True)
class Wasi:
    """``[wasi]``: what a WASI guest is given besides the request (argv, readable folders)."""

    argv: tuple[str, ...] = setting(
        default_factory=tuple,
        doc=(
            "Arguments the program gets (`argv`, program name first). Default: the "
            "file name of `main`."
        ),
        example='argv = ["app.wasm", "--verbose"]',
    )
    dirs: dict[str, str] = setting(
        default_factory=dict,
        doc=(
            "Folders the guest may read: guest path → folder of the worker. Read-only; "
            "nothing else of the host's file system is visible. Applies to a whole-wasm "
            "worker and to WASI modules called from a Python entry."
        ),
        example='dirs = { "/static" = "static" }',
        pattern=r"/[^\0]*",
        pattern_hint="guest paths are absolute, such as /static",
        folder=True,
    )


@dataclass(frozen=True, slots=True)
class KVNamespaceBinding:
    """One ``[[kv_namespaces]]`` entry: a KV namespace bound into ``env``."""

    binding: str = setting(
        doc="Name under which the namespace appears in `env` (`env.CACHE`).",
        example='binding = "CACHE"',
        pattern=BINDING_PATTERN,
    )
    id: str = setting(
        doc=(
            "The namespace's name in the store. Two workers that bind the same id "
            "share its keys; different ids never mix."
        ),
        example='id = "cache"',
        pattern=r"[A-Za-z0-9_.:-]{1,128}",
    )


@dataclass(frozen=True, slots=True)
class Assets:
    """``[assets]``: static files served the way Workers serves them (ETag, 304, Range)."""

    directory: str = setting(
        doc=(
            "Folder of files served as they are, relative to the worker folder: "
            "`public/about.html` answers `/about.html` (and `/about`, see `html_handling`). "
            "A request that matches a file never reaches the worker."
        ),
        example='directory = "./public"',
        folder=True,
    )
    binding: str | None = setting(
        None,
        doc=(
            "Name of a binding whose `fetch(request)` serves the assets from the worker's "
            "own code (`await env.ASSETS.fetch(request)`)."
        ),
        example='binding = "ASSETS"',
        pattern=BINDING_PATTERN,
    )
    not_found_handling: str = setting(
        "none",
        doc=(
            "A path without a file: `none` (the worker answers; without a worker, 404), "
            "`404-page` (the nearest `404.html` up the path, status 404) or "
            "`single-page-application` (`/index.html`, status 200, for navigations)."
        ),
        example='not_found_handling = "single-page-application"',
        pattern=r"none|404-page|single-page-application",
        pattern_hint="one of none, 404-page, single-page-application",
    )
    html_handling: str = setting(
        "auto-trailing-slash",
        doc=(
            "How `.html` files answer paths without the extension: `auto-trailing-slash` "
            "(`/a` serves `a.html`, `/a/` serves `a/index.html`, other spellings redirect), "
            "`force-trailing-slash`, `drop-trailing-slash` or `none` (exact file names only)."
        ),
        example='html_handling = "drop-trailing-slash"',
        pattern=r"auto-trailing-slash|force-trailing-slash|drop-trailing-slash|none",
        pattern_hint=(
            "one of auto-trailing-slash, force-trailing-slash, drop-trailing-slash, none"
        ),
    )
    run_worker_first: bool | tuple[str, ...] = setting(
        False,
        doc=(
            "`true`: every request goes to the worker first (it serves files through "
            "`binding`); a list of path patterns (`/api/*`, `!/api/docs/*`): only those."
        ),
        example='run_worker_first = ["/api/*"]',
    )


@dataclass(frozen=True, slots=True)
class Site:
    """``[site]``: Workers Sites (wrangler v1/v2), served as ``[assets]`` are."""

    bucket: str = setting(
        doc=(
            "Folder of static files, relative to the worker folder; served like "
            "`[assets] directory` (the worker answers paths without a file)."
        ),
        example='bucket = "./public"',
        folder=True,
    )
    include: tuple[str, ...] = setting(
        default_factory=tuple,
        doc="Only files matching these glob patterns are served (default: all).",
        example='include = ["*.html", "css/*"]',
    )
    exclude: tuple[str, ...] = setting(
        default_factory=tuple,
        doc="Files matching these glob patterns are not served.",
        example='exclude = ["*.map"]',
    )


@dataclass(frozen=True, slots=True)
class Manifest:
    """The whole of ``atoll.toml``. ``root`` and ``path`` are filled in by the loader."""

    name: str = setting(
        doc="The worker's name: lowercase letters, digits and dashes, as in Workers.",
        example='name = "seed"',
        pattern=r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?",
        pattern_hint="use lowercase letters, digits and dashes (not first or last), at most 63 characters",
    )
    main: str = setting(
        doc=(
            "The entry, relative to the worker folder: a Python module (`.py`) that "
            "defines `async def fetch(request, env, ctx)`, a JavaScript worker (`.js` or "
            "`.mjs`: an ES module with `export default { fetch }`, or a service-worker "
            "script; run in V8, see docs/js-workers.md), or a WebAssembly program "
            "(`.wasm`, WASI preview 1) that is the whole worker: each request runs its "
            "`_start` as a CGI program (see docs/wasi-workers.md)."
        ),
        example='main = "src/worker.py"',
        path=True,
    )
    compatibility_date: str | None = setting(
        None,
        doc="Date of the runtime behaviour the worker expects (`YYYY-MM-DD`), as in Workers.",
        example='compatibility_date = "2026-11-01"',
        pattern=r"\d{4}-\d{2}-\d{2}",
    )
    routes: tuple[str, ...] = setting(
        default_factory=tuple,
        doc=(
            "Route patterns this worker serves under `atoll serve` (Workers' syntax: "
            "`example.com/*`, `*.example.com/api/*`). `atoll dev` serves every path."
        ),
        example='routes = ["example.com/*"]',
    )
    wasm_modules: dict[str, str] = setting(
        default_factory=dict,
        doc=(
            "WebAssembly modules bound into `env`: binding name → `.wasm` path. Each "
            "is validated, size-checked (10 MB gzip-compressed at most) and compiled "
            "at load, so a request only instantiates."
        ),
        example='RUST_MODULE = "pkg/heavy_compute.wasm"',
        pattern=BINDING_PATTERN,
        path=True,
    )
    kv_namespaces: tuple[KVNamespaceBinding, ...] = setting(
        default_factory=tuple,
        doc="KV namespaces bound into `env` (see `[[kv_namespaces]]`).",
        example='[[kv_namespaces]]\nbinding = "CACHE"\nid = "cache"',
    )
    vars: dict[str, Any] = setting(
        default_factory=dict,
        doc=(
            "Plain values bound into `env` (strings, numbers, booleans, tables). Not for secrets."
        ),
        example='GREETING = "hello"',
        pattern=BINDING_PATTERN,
    )
    wasi: Wasi = setting(
        default_factory=Wasi,
        doc="What a whole-wasm worker gets (see `[wasi]`).",
    )
    limits: Limits = setting(
        default_factory=Limits,
        doc="Per-request limits (see `[limits]`).",
    )
    build: Build = setting(
        default_factory=Build,
        doc="How to build the worker (see `[build]`).",
    )
    assets: Assets | None = setting(
        None,
        doc="Static files served before the worker (see `[assets]`).",
    )
    site: Site | None = setting(
        None,
        doc="Workers Sites' static files, served as `[assets]` (see `[site]`).",
    )
    root: Path = field(default=Path("."), metadata={"internal": True})
    path: Path = field(default=Path(MANIFEST_FILE), metadata={"internal": True})

    def resolve(self, relative: str) -> Path:
        """Absolute path of a file named in the manifest (already checked to exist)."""
        return (self.root / relative).resolve()

    @property
    def whole_wasm(self) -> bool:
        """True when ``main`` is a WebAssembly program rather than a Python module."""
        return self.main.endswith(".wasm")

    @property
    def entry_kind(self) -> str:
        """``"python"``, ``"js"`` or ``"wasi"``: which loader in ``atoll.entries`` runs ``main``."""
        if self.main.endswith(JS_SUFFIXES):
            return "js"
        return "wasi" if self.whole_wasm else "python"

    @property
    def binding_names(self) -> tuple[str, ...]:
        """Every name this manifest puts into ``env``, in declaration order."""
        names = list(self.wasm_modules)
        names += [kv.binding for kv in self.kv_namespaces]
        names += list(self.vars)
        if self.assets is not None and self.assets.binding:
            names.append(self.assets.binding)
        return tuple(names)


#: Keys of wrangler.toml that atoll knows but does not support yet, with what to do.
UNSUPPORTED_WRANGLER_KEYS: dict[str, str] = {
    "triggers": "cron triggers are not supported yet; remove [triggers]",
    "durable_objects": "Durable Objects are not supported; remove the binding",
    "r2_buckets": "R2 buckets are not supported; remove the binding",
    "d1_databases": "D1 databases are not supported; remove the binding",
    "services": "service bindings are not supported yet; remove the binding",
    "queues": "queues are not supported; remove the binding",
    "account_id": "atoll has no accounts; remove account_id",
    "workers_dev": "atoll has no workers.dev; use routes",
    "route": 'use routes = ["..."] (a list)',
    "compatibility_flags": "compatibility flags are not supported yet; remove them",
    "node_compat": "atoll runs Python and wasm, not Node; remove node_compat",
}
