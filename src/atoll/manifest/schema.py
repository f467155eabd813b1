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
import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_CPU_MS",
    "DEFAULT_RULES",
    "MAX_CPU_MS",
    "WRANGLER_KEYS",
    "Assets",
    "Build",
    "Dev",
    "KVNamespaceBinding",
    "KeyClass",
    "Limits",
    "Manifest",
    "Outbound",
    "RouteSpec",
    "Rule",
    "Scope",
    "ServiceBinding",
    "Site",
    "Triggers",
    "Wasi",
    "WranglerKey",
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


class KeyClass(enum.Enum):
    """What atoll does with a key of ``wrangler.toml`` (the three classes of ``docs/config.md``)."""

    HONOURED = "honoured"
    """Read and acted on, as Workers does (or as close as a single node can)."""
    NOTICE = "accepted, with a notice"
    """Means nothing on a self-hosted node: accepted, and one line says so at load."""
    REFUSED = "refused"
    """atoll cannot do what the key asks: the load fails, saying why and what to do."""


class Scope(enum.Enum):
    """How a key behaves in ``[env.NAME]`` (wrangler's rules)."""

    INHERITED = "inherited"
    """Set at the top level, it applies to every environment unless the environment sets it."""
    NOT_INHERITED = "not inherited"
    """A binding: an environment has only what its own table declares."""
    TOP_LEVEL = "top level only"
    """Applies to the worker as a whole; an environment may not set it."""


@dataclass(frozen=True, slots=True)
class WranglerKey:
    """A ``wrangler.toml`` key that is not a field of the schema below (or a pseudo-key)."""

    cls: KeyClass
    scope: Scope
    text: str
    """Honoured: what atoll does. Notice: the line printed (why it means nothing here).
    Refused: why atoll cannot honour it."""
    todo: str | None = None
    """Refused: what to do instead."""


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
    scope: Scope = Scope.INHERITED,
    notice: str | None = None,
    wrangler: bool = True,
    one_or_many: bool = False,
    shorthand: str | None = None,
) -> Any:
    """Declare one manifest key.

    ``doc`` is the text shown in ``docs/config.md``; ``minimum``/``maximum``
    bound numbers; ``pattern`` is a full-match regex for strings (or for each
    mapping key of a ``dict`` field); ``path`` marks a file path relative to
    the worker folder that must exist and stay inside it; ``folder`` a folder
    path that must stay inside it; ``pattern_hint`` says the pattern in words.

    ``scope`` is how ``[env.NAME]`` treats the key; ``notice`` makes it a key
    that is accepted with that one-line notice (it means nothing on a
    self-hosted node); ``wrangler=False`` marks a key of atoll's own.
    ``one_or_many`` lets a list be written as its one item; ``shorthand``
    lets a table be written as the string value of that key (a route).
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
        "scope": scope,
        "notice": notice,
        "wrangler": wrangler,
        "one_or_many": one_or_many,
        "shorthand": shorthand,
    }
    if default_factory is not dataclasses.MISSING:
        return field(default_factory=default_factory, metadata=meta)
    return field(default=default, metadata=meta)


#: Workers' paid plan: 30 s of CPU per request unless ``cpu_ms`` says otherwise, 5 min at most.
DEFAULT_CPU_MS = 30_000
MAX_CPU_MS = 300_000


@dataclass(frozen=True, slots=True)
class Limits:
    """``[limits]``: what one request may use. Enforced, not advised."""

    cpu_ms: int = setting(
        DEFAULT_CPU_MS,
        doc=(
            "CPU time one request may use, in milliseconds, summed over every "
            "wasm call it makes (fresh and warm instances). Past it the request ends "
            "with 503 and outcome `exceeded_cpu`. Default and maximum are those of "
            "Workers' paid plan (30 s, 5 min); `atoll dev` prints the limit in force."
        ),
        example="cpu_ms = 50",
        minimum=1,
        maximum=MAX_CPU_MS,
    )
    memory_mb: int = setting(
        128,
        doc=(
            "Wasm linear memory one request may hold, in MiB, summed over the fresh "
            "instances it creates. A `memory.grow` past it fails (returns -1); a guest "
            "that then traps ends with 503 and outcome `exceeded_memory`. The warm "
            "`instance` of a module has a budget of its own of the same size."
        ),
        example="memory_mb = 256",
        minimum=1,
        maximum=4096,
        wrangler=False,
    )
    response_mb: int = setting(
        32,
        doc=(
            "Largest response a whole-wasm worker may write to stdout, in MiB. The "
            "write that crosses it ends the request with 502."
        ),
        example="response_mb = 64",
        minimum=1,
        maximum=1024,
        wrangler=False,
    )
    request_body_mb: int = setting(
        100,
        doc=(
            "Largest request body accepted, in MiB. A larger body is refused with 413 "
            "before it is read whole (from `Content-Length`, or while streaming)."
        ),
        example="request_body_mb = 200",
        minimum=1,
        maximum=4096,
        wrangler=False,
    )
    subrequests: int = setting(
        1000,
        doc=(
            "Subrequests (`fetch()` calls, redirects followed included) one request or "
            "scheduled run may make. The one past it fails in the worker. Default: "
            "Workers' paid plan (1,000; the free plan allows 50). See docs/outbound.md."
        ),
        example="subrequests = 50",
        minimum=0,
        maximum=100_000,
    )
    subrequest_timeout_s: int = setting(
        30,
        doc=(
            "Seconds a subrequest may take to connect, send and read its response "
            "(each step). Network waits are not CPU time: they do not count towards `cpu_ms`."
        ),
        example="subrequest_timeout_s = 10",
        minimum=1,
        maximum=600,
        wrangler=False,
    )
    subrequest_response_mb: int = setting(
        32,
        doc=(
            "Largest subrequest response body read into memory, in MiB. A larger body "
            "fails the `fetch()` that reads it (a streamed read stops there too)."
        ),
        example="subrequest_response_mb = 64",
        minimum=1,
        maximum=1024,
        wrangler=False,
    )


@dataclass(frozen=True, slots=True)
class Triggers:
    """``[triggers]``: when the worker's ``scheduled`` handler runs (cron triggers)."""

    crons: tuple[str, ...] = setting(
        default_factory=tuple,
        doc=(
            "Cron expressions (five fields, UTC, as Workers: `*/5 * * * *`, `0 3 * * mon`). "
            "Each scheduled time calls `scheduled(event, env, ctx)` once per node "
            "(`atoll serve`) or once in `atoll dev`. Checked at load. See docs/cron.md."
        ),
        example='crons = ["*/5 * * * *", "0 3 * * *"]',
    )


@dataclass(frozen=True, slots=True)
class Outbound:
    """``[outbound]``: where the worker's subrequests (`fetch()`) may go. Secure by default.

    A host pattern is ``[scheme://]host[:port]``, as Spin's ``allowed_outbound_hosts``:
    scheme ``http``, ``https`` or ``*`` (default: both); host a name (``api.example.com``),
    ``*.example.com`` (any subdomain), ``*`` (any host), an IP address or a CIDR
    (``10.0.0.0/8``); port a number or ``*`` (default: the scheme's, 80 or 443).
    """

    allowed_hosts: tuple[str, ...] = setting(
        default_factory=tuple,
        doc=(
            "Where subrequests may go. Default (empty): any host, http or https, any port, "
            "on a public address only. Set, only the hosts listed. Loopback, private, "
            "link-local, CGNAT and other non-public addresses are refused after DNS "
            "resolution unless an entry names them: their IP, a CIDR holding them, or "
            "the exact host name (no wildcard). Cloud metadata addresses and the node's "
            "admin API are always refused."
        ),
        example='allowed_hosts = ["https://api.example.com", "http://127.0.0.1:8080"]',
        wrangler=False,
    )
    denied_hosts: tuple[str, ...] = setting(
        default_factory=tuple,
        doc=(
            "Hosts subrequests may not reach, even when `allowed_hosts` lets them "
            "(same patterns, but an entry without a port denies every port; a denial wins)."
        ),
        example='denied_hosts = ["*.internal.example.com", "10.0.0.0/8"]',
        wrangler=False,
    )


@dataclass(frozen=True, slots=True)
class Build:
    """``[build]``: how to turn sources into the files the worker loads."""

    command: str | None = setting(
        None,
        doc=(
            "Shell command run in the worker folder (or `cwd`) by `atoll build`, "
            "`atoll deploy` and before `atoll dev` serves. Its output is shown; a "
            "non-zero exit stops with it."
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
        doc=(
            "Folders `atoll dev` watches for changes that rebuild and reload the worker "
            "(relative to the worker folder; a string or a list). Default: the whole "
            "worker folder. The config file is always watched."
        ),
        example='watch_dir = ["src"]',
        folder=True,
        one_or_many=True,
    )


@dataclass(frozen=True, slots=True)
class Dev:
    """``[dev]``: defaults of ``atoll dev`` (its command-line options win)."""

    ip: str | None = setting(
        None,
        doc="Address `atoll dev` listens on when `--host`/`--ip` is not given (default 127.0.0.1).",
        example='ip = "0.0.0.0"',
        scope=Scope.TOP_LEVEL,
    )
    port: int | None = setting(
        None,
        doc="Port `atoll dev` listens on when `--port` is not given (default 8787).",
        example="port = 8788",
        minimum=0,
        maximum=65535,
        scope=Scope.TOP_LEVEL,
    )


@dataclass(frozen=True, slots=True)
class Wasi:
    """``[wasi]``: what a WASI guest is given besides the request (argv, readable folders)."""

    argv: tuple[str, ...] = setting(
        default_factory=tuple,
        doc=(
            "Arguments the program gets (`argv`, program name first), the same for every "
            "request. Default: the file name of `main`, then (in `cgi` mode) each "
            "`&`-separated item of the request's query, as WAGI passes them."
        ),
        example='argv = ["app.wasm", "--verbose"]',
        wrangler=False,
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
        wrangler=False,
    )
    mode: str = setting(
        "cgi",
        doc=(
            "What a whole-wasm worker's stdout is: `cgi` (headers, a blank line, the body; "
            "WAGI's contract) or `stdout` (the body as it is, status 200, no headers: the "
            "contract of Cloudflare's workers-wasi, stdin = request body, stdout = response "
            "body). See docs/wasi-workers.md."
        ),
        example='mode = "stdout"',
        pattern=r"cgi|stdout",
        pattern_hint="one of cgi, stdout",
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
    preview_id: str | None = setting(
        None,
        doc="Workers' namespace for `wrangler dev --remote`. atoll has one store: it uses `id`.",
        example='preview_id = "cache-preview"',
        notice="atoll dev and deploy both use `id`; preview_id is ignored",
    )


@dataclass(frozen=True, slots=True)
class ServiceBinding:
    """One ``[[services]]`` entry: another worker of the node, bound into ``env``."""

    binding: str = setting(
        doc="Name under which the other worker appears in `env` (`env.AUTH`).",
        example='binding = "AUTH"',
        pattern=BINDING_PATTERN,
    )
    service: str = setting(
        doc=(
            "The other worker's `name`. `await env.AUTH.fetch(request)` calls it in the "
            "same process, without a socket, under its own limits (see docs/services.md). "
            "`atoll deploy` refuses a worker whose services are not deployed."
        ),
        example='service = "auth"',
        pattern=r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?",
        pattern_hint="a worker name: lowercase letters, digits and dashes",
    )
    entrypoint: str | None = setting(
        None,
        doc="A named entrypoint of the other worker. Not supported yet: a set value fails the load.",
        example='entrypoint = "AdminApi"',
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


#: Module rule types of wrangler (``[[rules]] type``).
RULE_TYPES = (
    "ESModule",
    "CommonJS",
    "CompiledWasm",
    "Text",
    "Data",
    "PythonModule",
    "PythonRequirement",
)


@dataclass(frozen=True, slots=True)
class Rule:
    """One ``[[rules]]`` entry: files a JavaScript entry imports as modules of one type."""

    type: str = setting(
        doc=(
            "How matching files are imported: `ESModule`, `CommonJS`, `CompiledWasm` "
            "(a `WebAssembly.Module`), `Text` (a string), `Data` (an `ArrayBuffer`), "
            "`PythonModule` or `PythonRequirement`."
        ),
        example='type = "Text"',
        pattern="|".join(RULE_TYPES),
        pattern_hint="one of " + ", ".join(RULE_TYPES),
    )
    globs: tuple[str, ...] = setting(
        doc="Glob patterns of the files, relative to `base_dir` (`**/*.md`).",
        example='globs = ["**/*.md"]',
        one_or_many=True,
    )
    fallthrough: bool = setting(
        False,
        doc=(
            "When false (the default), later rules of the same type, wrangler's "
            "default rules included, no longer apply."
        ),
        example="fallthrough = true",
    )


#: wrangler's default module rules, applied after the ``[[rules]]`` of the file.
DEFAULT_RULES: tuple[Rule, ...] = (
    Rule("ESModule", ("**/*.mjs",)),
    Rule("CommonJS", ("**/*.js", "**/*.cjs")),
    Rule("Text", ("**/*.txt", "**/*.html", "**/*.sql")),
    Rule("Data", ("**/*.bin",)),
    Rule("CompiledWasm", ("**/*.wasm", "**/*.wasm?module")),
)


@dataclass(frozen=True, slots=True)
class RouteSpec:
    """One route: a string pattern, or a table with a pattern (``routes`` / ``route``)."""

    pattern: str = setting(
        doc="Workers' route pattern (`example.com/*`), or a host when `custom_domain` is true.",
        example='pattern = "example.com/*"',
    )
    zone_name: str | None = setting(
        None,
        doc="Cloudflare zone of the pattern. Recorded; atoll matches the pattern alone.",
        example='zone_name = "example.com"',
    )
    zone_id: str | None = setting(
        None,
        doc="Cloudflare zone id of the pattern. Recorded; atoll matches the pattern alone.",
        example='zone_id = "0123456789abcdef"',
    )
    custom_domain: bool = setting(
        False,
        doc=(
            "True: `pattern` is a whole host (`api.example.com`) and the worker gets "
            "every path of it, as a Workers custom domain."
        ),
        example="custom_domain = true",
    )

    @property
    def routing_pattern(self) -> str:
        """The pattern :func:`atoll.manifest.routes.parse_route` reads (a custom domain: ``HOST/*``)."""
        if self.custom_domain and "/" not in self.pattern:
            return f"{self.pattern}/*"
        return self.pattern


@dataclass(frozen=True, slots=True)
class Manifest:
    """The whole of a worker's config. ``root``, ``path``, ``env_name`` and ``notices`` come from the loader."""

    name: str = setting(
        doc=(
            "The worker's name: lowercase letters, digits and dashes, as in Workers. "
            "With `--env NAME` it becomes `name-NAME` unless the environment sets its own."
        ),
        example='name = "seed"',
        pattern=r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?",
        pattern_hint="use lowercase letters, digits and dashes (not first or last), at most 63 characters",
    )
    main: str = setting(
        doc=(
            "The entry, relative to the config file's folder: a Python module (`.py`) that "
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
    compatibility_flags: tuple[str, ...] = setting(
        default_factory=tuple,
        doc=(
            "Workers' compatibility flags. Recorded on the worker; JavaScript entries "
            "read those they implement (`nodejs_compat`), others change nothing yet."
        ),
        example='compatibility_flags = ["nodejs_compat"]',
    )
    routes: tuple[RouteSpec, ...] = setting(
        default_factory=tuple,
        doc=(
            "Routes this worker serves under `atoll serve`: Workers' patterns "
            "(`example.com/*`, `*.example.com/api/*`) or tables `{ pattern, zone_name }`, "
            "`{ pattern, zone_id }`, `{ pattern, custom_domain = true }`. `route = ...` "
            "(one route) is the same. `atoll dev` serves every path."
        ),
        example='routes = ["example.com/*", { pattern = "api.example.com", custom_domain = true }]',
        shorthand="pattern",
    )
    find_additional_modules: bool | None = setting(
        None,
        doc=(
            "JavaScript entries: also load the files under `base_dir` that `[[rules]]` "
            "match, so the entry may import them by path at run time."
        ),
        example="find_additional_modules = true",
    )
    base_dir: str | None = setting(
        None,
        doc="JavaScript entries: folder the `[[rules]]` globs are relative to (default: the folder of `main`).",
        example='base_dir = "src"',
        folder=True,
    )
    preserve_file_names: bool = setting(
        False,
        doc="JavaScript entries: keep module file names as they are (wrangler hashes some).",
        example="preserve_file_names = true",
    )
    rules: tuple[Rule, ...] = setting(
        default_factory=tuple,
        doc=(
            "Module rules (see `[[rules]]`); wrangler's defaults follow them "
            "(`.mjs` ESModule, `.js`/`.cjs` CommonJS, `.txt`/`.html`/`.sql` Text, "
            "`.bin` Data, `.wasm` CompiledWasm)."
        ),
        example='[[rules]]\ntype = "Text"\nglobs = ["**/*.md"]\nfallthrough = true',
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
        scope=Scope.TOP_LEVEL,
    )
    text_blobs: dict[str, str] = setting(
        default_factory=dict,
        doc=(
            "Service-worker syntax: files a JavaScript entry sees as global strings, "
            "name → path. Python and wasm entries do not use them."
        ),
        example='NOTICE = "notice.txt"',
        pattern=BINDING_PATTERN,
        path=True,
        scope=Scope.TOP_LEVEL,
    )
    data_blobs: dict[str, str] = setting(
        default_factory=dict,
        doc=(
            "Service-worker syntax: files a JavaScript entry sees as global "
            "`ArrayBuffer`s, name → path. Python and wasm entries do not use them."
        ),
        example='LOGO = "logo.png"',
        pattern=BINDING_PATTERN,
        path=True,
        scope=Scope.TOP_LEVEL,
    )
    kv_namespaces: tuple[KVNamespaceBinding, ...] = setting(
        default_factory=tuple,
        doc="KV namespaces bound into `env` (see `[[kv_namespaces]]`).",
        example='[[kv_namespaces]]\nbinding = "CACHE"\nid = "cache"',
        scope=Scope.NOT_INHERITED,
    )
    services: tuple[ServiceBinding, ...] = setting(
        default_factory=tuple,
        doc="Other workers of the node bound into `env` (see `[[services]]`).",
        example='[[services]]\nbinding = "AUTH"\nservice = "auth"',
        scope=Scope.NOT_INHERITED,
    )
    vars: dict[str, Any] = setting(
        default_factory=dict,
        doc=(
            "Plain values bound into `env` (strings, numbers, booleans, tables). Not for secrets."
        ),
        example='GREETING = "hello"',
        pattern=BINDING_PATTERN,
        scope=Scope.NOT_INHERITED,
    )
    wasi: Wasi = setting(
        default_factory=Wasi,
        doc="What a whole-wasm worker gets (see `[wasi]`).",
        wrangler=False,
    )
    limits: Limits = setting(
        default_factory=Limits,
        doc="Per-request limits (see `[limits]`).",
    )
    triggers: Triggers = setting(
        default_factory=Triggers,
        doc="Cron triggers (see `[triggers]`).",
    )
    outbound: Outbound = setting(
        default_factory=Outbound,
        doc="Where subrequests may go (see `[outbound]`).",
        wrangler=False,
    )
    build: Build = setting(
        default_factory=Build,
        doc="How to build the worker (see `[build]`).",
    )
    dev: Dev = setting(
        default_factory=Dev,
        doc="Defaults of `atoll dev` (see `[dev]`).",
        scope=Scope.TOP_LEVEL,
    )
    assets: Assets | None = setting(
        None,
        doc="Static files served before the worker (see `[assets]`).",
    )
    site: Site | None = setting(
        None,
        doc="Workers Sites' static files, served as `[assets]` (see `[site]`).",
        scope=Scope.TOP_LEVEL,
    )
    root: Path = field(default=Path("."), metadata={"internal": True})
    path: Path = field(default=Path(MANIFEST_FILE), metadata={"internal": True})
    env_name: str | None = field(default=None, metadata={"internal": True})
    """The ``[env.NAME]`` the manifest was resolved for (``--env``), if any."""
    notices: tuple[str, ...] = field(default=(), metadata={"internal": True})
    """One line per accepted key that means nothing here; the CLI prints them at load."""
    route_places: tuple[tuple[str, int | None], ...] = field(
        default=(), metadata={"internal": True}
    )
    """Where each of ``routes`` is written: (key as in the file, line), for messages."""

    def resolve(self, relative: str) -> Path:
        """Absolute path of a file named in the manifest (already checked to exist)."""
        return (self.root / relative).resolve()

    @property
    def whole_wasm(self) -> bool:
        """True when ``main`` is a WebAssembly program (or a WAGI ``modules.toml`` of them)
        rather than a Python module."""
        return self.main.endswith((".wasm", ".toml"))

    @property
    def entry_kind(self) -> str:
        """``"python"``, ``"js"`` or ``"wasi"``: which loader in ``atoll.entries`` runs ``main``."""
        if self.main.endswith(JS_SUFFIXES):
            return "js"
        return "wasi" if self.whole_wasm else "python"

    @property
    def route_patterns(self) -> tuple[str, ...]:
        """The routes as patterns :mod:`atoll.manifest.routes` parses (custom domains as ``HOST/*``)."""
        return tuple(route.routing_pattern for route in self.routes)

    @property
    def module_rules(self) -> tuple[Rule, ...]:
        """``[[rules]]`` then wrangler's defaults, as wrangler applies them.

        A rule without ``fallthrough`` ends its type: later rules of that type,
        defaults included, are dropped.
        """
        done: set[str] = set()
        out: list[Rule] = []
        for rule in (*self.rules, *DEFAULT_RULES):
            if rule.type in done:
                continue
            out.append(rule)
            if not rule.fallthrough:
                done.add(rule.type)
        return tuple(out)

    @property
    def binding_names(self) -> tuple[str, ...]:
        """Every name this manifest puts into ``env``, in declaration order."""
        names = list(self.wasm_modules)
        names += [kv.binding for kv in self.kv_namespaces]
        names += [service.binding for service in self.services]
        names += list(self.vars)
        if self.assets is not None and self.assets.binding:
            names.append(self.assets.binding)
        return tuple(names)


def _notice(scope: Scope, text: str) -> WranglerKey:
    return WranglerKey(KeyClass.NOTICE, scope, text)


def _refused(scope: Scope, text: str, todo: str) -> WranglerKey:
    return WranglerKey(KeyClass.REFUSED, scope, text, todo)


_I, _N, _T = Scope.INHERITED, Scope.NOT_INHERITED, Scope.TOP_LEVEL
_NO_BUNDLER = "atoll does not bundle JavaScript (entries and modules load as written)"
_BINDING_TODO = (
    "remove the binding, or keep this config for wrangler and give atoll its own (-c FILE)"
)

#: Every key of wrangler's config that is not a field of :class:`Manifest` (or of its
#: tables), with its class. Dotted; ``[]`` marks the entries of an array of tables.
#: The loader reads it for keys it finds; ``docs/config.md`` lists it whole.
WRANGLER_KEYS: dict[str, WranglerKey] = {
    # -- honoured, but not a field of their own --------------------------------------
    "env": WranglerKey(
        KeyClass.HONOURED,
        _T,
        "environments `[env.NAME]`, chosen with `--env NAME` (see Environments)",
    ),
    "route": WranglerKey(
        KeyClass.HONOURED, _I, "one route, string or table: the same as `routes = [...]`"
    ),
    "$schema": WranglerKey(
        KeyClass.HONOURED, _T, "editor hint of wrangler.json(c): nothing to do, no notice"
    ),
    # -- accepted with a notice: they mean nothing on a self-hosted node ---------------
    "account_id": _notice(_I, "atoll has no Cloudflare accounts"),
    "zone_id": _notice(_I, "atoll has no Cloudflare zones; routes match by pattern"),
    "workers_dev": _notice(_I, "atoll has no workers.dev; the worker is served on its routes"),
    "preview_urls": _notice(_I, "atoll has no preview URLs; deploy a version with --no-activate"),
    "send_metrics": _notice(_T, "atoll sends no usage metrics anywhere"),
    "observability": _notice(_I, "logs and tail are atoll's own (`atoll tail`)"),
    "logpush": _notice(_I, "atoll has no Logpush; use `atoll tail` or the node's logs"),
    "logfwdr": _notice(_N, "atoll has no log forwarding; use `atoll tail`"),
    "tail_consumers": _notice(_N, "tail workers do not run; use `atoll tail`"),
    "streaming_tail_consumers": _notice(_N, "tail workers do not run; use `atoll tail`"),
    "placement": _notice(_I, "one node: there is no placement to choose"),
    "upload_source_maps": _notice(_I, "nothing is uploaded to Cloudflare"),
    "minify": _notice(_I, _NO_BUNDLER),
    "keep_names": _notice(_I, _NO_BUNDLER),
    "no_bundle": _notice(_I, _NO_BUNDLER),
    "alias": _notice(_T, _NO_BUNDLER + "; aliases are not applied"),
    "define": _notice(_N, _NO_BUNDLER + "; defines are not substituted, use [vars]"),
    "tsconfig": _notice(_I, _NO_BUNDLER + "; compile TypeScript in [build] command"),
    "jsx_factory": _notice(_I, _NO_BUNDLER + "; compile JSX in [build] command"),
    "jsx_fragment": _notice(_I, _NO_BUNDLER + "; compile JSX in [build] command"),
    "node_compat": _notice(
        _I, 'wrangler 2 polyfills: use compatibility_flags = ["nodejs_compat"] instead'
    ),
    "usage_model": _notice(_I, "atoll has no billing; [limits] cpu_ms sets the CPU limit"),
    "first_party_worker": _notice(_I, "Cloudflare-internal setting"),
    "compliance_region": _notice(_I, "the worker runs where the node runs"),
    "keep_vars": _notice(_T, "atoll has no dashboard: vars always come from this file"),
    "legacy_env": _notice(_T, "environments always deploy as NAME-ENV workers"),
    "type": _notice(_T, "wrangler 1 project type; atoll reads main"),
    "migrations": _notice(_I, "Durable Object migrations: atoll has no Durable Objects"),
    "python_modules": _notice(_I, "Python entries import what is in the folder"),
    "miniflare": _notice(_T, "miniflare 2 settings; use [dev] and atoll dev options"),
    "kv_namespaces[].remote": _notice(_N, "atoll dev has one local store; there is no remote one"),
    "dev.local_protocol": _notice(_T, "atoll dev serves HTTP; put a TLS proxy in front for HTTPS"),
    "dev.upstream_protocol": _notice(_T, "atoll dev has no upstream"),
    "dev.host": _notice(_T, "atoll dev has no upstream host"),
    "dev.inspector_port": _notice(_T, "no V8 inspector: Python and wasm debug with their tools"),
    "dev.enable_containers": _notice(_T, "atoll runs no containers"),
    "dev.container_engine": _notice(_T, "atoll runs no containers"),
    "site.entry-point": _notice(_T, "wrangler 1 Workers Sites entry; atoll reads main"),
    # -- refused: atoll cannot honour them ---------------------------------------------
    "durable_objects": _refused(
        _N, "atoll has no Durable Objects", "keep state in KV, or run this worker on Workers"
    ),
    "r2_buckets": _refused(_N, "atoll has no R2 buckets", _BINDING_TODO),
    "d1_databases": _refused(_N, "atoll has no D1 databases", _BINDING_TODO),
    "queues": _refused(_N, "atoll has no Queues (producers or consumers)", _BINDING_TODO),
    "vectorize": _refused(_N, "atoll has no Vectorize indexes", _BINDING_TODO),
    "hyperdrive": _refused(
        _N, "atoll has no Hyperdrive", "connect to the database directly from the worker"
    ),
    "ai": _refused(_N, "atoll has no Workers AI binding", _BINDING_TODO),
    "browser": _refused(_N, "atoll has no Browser Rendering binding", _BINDING_TODO),
    "images": _refused(_N, "atoll has no Images binding", _BINDING_TODO),
    "media": _refused(_N, "atoll has no Media Transformations binding", _BINDING_TODO),
    "analytics_engine_datasets": _refused(
        _N, "atoll has no Analytics Engine", "log the data points, or use a KV namespace"
    ),
    "mtls_certificates": _refused(_N, "atoll has no mTLS certificate bindings", _BINDING_TODO),
    "send_email": _refused(_N, "atoll sends no email", _BINDING_TODO),
    "dispatch_namespaces": _refused(
        _N, "atoll has no Workers for Platforms dispatch namespaces", _BINDING_TODO
    ),
    "workflows": _refused(_N, "atoll has no Workflows", _BINDING_TODO),
    "pipelines": _refused(_N, "atoll has no Pipelines", _BINDING_TODO),
    "secrets_store_secrets": _refused(
        _N,
        "atoll has no Secrets Store",
        "set each value with `atoll secret put` and read it as env.KEY",
    ),
    "version_metadata": _refused(
        _N, "the version metadata binding is not provided yet", _BINDING_TODO
    ),
    "containers": _refused(_N, "atoll runs no containers", _BINDING_TODO),
    "cloudchamber": _refused(_N, "atoll runs no containers", _BINDING_TODO),
    "ratelimits": _refused(_N, "atoll has no rate-limiting binding", _BINDING_TODO),
    "worker_loaders": _refused(_N, "atoll has no Worker Loader binding", _BINDING_TODO),
    "vpc_services": _refused(_N, "atoll has no VPC service bindings", _BINDING_TODO),
    "constellation": _refused(_N, "atoll has no Constellation binding", _BINDING_TODO),
    "unsafe": _refused(
        _N, "unsafe bindings and metadata are passed to Cloudflare's API as is", _BINDING_TODO
    ),
    "unsafe_hello_world": _refused(_N, "a test binding of wrangler", _BINDING_TODO),
    "pages_build_output_dir": _refused(
        _T,
        "this is a Pages project, not a Worker",
        "serve the output folder with [assets] directory and a worker main",
    ),
    "webpack_config": _refused(
        _T,
        "wrangler 1's webpack build is not run",
        'run webpack yourself: [build] command = "npx webpack", main = its output',
    ),
    "kv-namespaces": _refused(
        _N, "wrangler 1's spelling", "rename it kv_namespaces (binding, id), as wrangler 2+ does"
    ),
    "build.upload": _refused(
        _I,
        "wrangler 1's [build.upload] is not read",
        "move main (and rules) to the top level, as wrangler 2+ does",
    ),
}
"""Keys of wrangler's config, by dotted name. Fields of :class:`Manifest` are not in it."""
