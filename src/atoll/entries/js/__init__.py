"""JavaScript entries: ``main = "src/index.js"`` (or ``.mjs``), run in V8 isolates.

:func:`load_js_entry` runs once per worker load: it bundles the worker (see
:mod:`.bundle`), reads the modules it imports and its ``env``, and starts one
isolate to check that the worker loads (kept for the loading thread's first
request when that thread runs an event loop, else dropped). Each serving thread
gets its own isolate of the worker on its first request
(:class:`~atoll.entries.js.isolate.JsIsolate`), reused by later requests.

JavaScript is untrusted code, like a wasm guest: it reaches only its bindings
(vars, secrets, wasm modules, KV), ``console``, and ``fetch`` where its
``[outbound]`` policy lets it (docs/outbound.md). See docs/js-workers.md.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import threading
import weakref
from collections.abc import Coroutine, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from atoll.api import ExecutionContext, Request, Response, ScheduledEvent
from atoll.bindings.kv.namespace import KVNamespace
from atoll.entries.js.bundle import Bundle, ModuleRule, bundle_worker, rules_for
from atoll.entries.js.sourcemap import SourceMap
from atoll.errors import KVError, WorkerLoadError
from atoll.manifest import MAX_COMPRESSED_MODULE_BYTES, Manifest
from atoll.runtime.hostfuncs import CURRENT
from atoll.runtime.module import check_wasm

if TYPE_CHECKING:
    from atoll.entries.js.isolate import JsIsolate

__all__ = ["JsEntry", "JsWorker", "load_js_entry"]

_HERE = Path(__file__).parent
CORE_JS = _HERE / "core.js"
WEBAPI_JS = _HERE / "webapi.js"


class JsWorker:
    """A loaded JavaScript worker: its bundle, modules and env, and its isolates per thread."""

    def __init__(
        self,
        manifest: Manifest,
        bundle: Bundle,
        bindings: Mapping[str, Any],
    ) -> None:
        self.manifest = manifest
        self.name = manifest.name
        self.bundle = bundle
        # The module's code runs one line down, inside its async function wrapper.
        self.sourcemap = SourceMap(
            bundle.sourcemap, script=manifest.main, line_offset=1 if bundle.is_module else 0
        )
        self.core_source = CORE_JS.read_text(encoding="utf-8")
        self.webapi_source = WEBAPI_JS.read_text(encoding="utf-8")
        self.webapi_name = "atoll:webapi.js"
        self.modules: dict[str, tuple[str, str]] = {}
        for relative, (kind, file) in bundle.modules.items():
            self.modules[relative] = (kind, _read_module(manifest, file, kind, relative))
        env_vars: dict[str, Any] = {}
        env_wasm: dict[str, str] = {}
        env_kv: dict[str, str] = {}
        self.kv: dict[str, KVNamespace] = {}
        #: ``[[services]]`` and ``[assets] binding``: objects with ``async fetch(Request)``.
        self.fetchers: dict[str, Any] = {}
        for name, value in bindings.items():
            if isinstance(value, KVNamespace):
                env_kv[name] = name
                self.kv[name] = value
            elif _is_fetcher(value):
                self.fetchers[name] = value
            elif isinstance(value, JsWasmModule):
                key = value.relative
                if key not in self.modules or value.kind != "CompiledWasm":
                    key = key if value.kind == "CompiledWasm" else f"{value.kind}:{key}"
                    self.modules.setdefault(key, (value.kind, value.data))
                env_wasm[name] = key
            else:
                env_vars[name] = value
        self.env_json = json.dumps(
            {
                "vars": env_vars,
                "wasm": env_wasm,
                "kv": env_kv,
                "fetchers": sorted(self.fetchers),
                "maxBytes": manifest.limits.memory_mb * 1024 * 1024,
            }
        )

    # -- isolates -------------------------------------------------------------------------------

    def release(self, isolate: JsIsolate) -> None:
        """A request left ``isolate``: free it if it was replaced and is now idle."""
        if isolate.broken and not isolate.records and not isolate.disposing:
            isolate.disposing = True
            # Later, once the failed request has unwound (its frames may hold JS values).
            try:
                asyncio.get_running_loop().call_soon(isolate.dispose)
            except RuntimeError:
                isolate.dispose()

    # -- host operations (fetch, KV), awaited on the serving loop ------------------------------------

    async def host_op(
        self, kind: str, args: dict[str, Any], body: str | None
    ) -> tuple[str, str | None]:
        """Run one async host operation for JS; returns (JSON text, binary-string body)."""
        if kind == "kv":
            return await self._kv(args, body)
        if kind == "fetch":
            return await _subrequest(args, body)  # the worker's [limits] apply there
        if kind == "binding":
            return await self._binding(args, body)
        raise TypeError(f"unknown host operation {kind!r}")

    async def _binding(self, args: dict[str, Any], body: str | None) -> tuple[str, str | None]:
        """``env.NAME.fetch(request)`` on a service or assets binding: the request handed to
        the Python binding (a service runs the other worker in process, as its own request)."""
        binding = self.fetchers.get(str(args.get("name")))
        if binding is None:
            raise TypeError(
                f"worker {self.name}: no service or assets binding {args.get('name')!r}"
            )
        request = Request(
            str(args["url"]),
            method=str(args["method"]),
            headers=[(str(k), str(v)) for k, v in args.get("headers", [])],
            body=body.encode("latin-1") if body is not None else None,
        )
        response: Response = await binding.fetch(request)
        data = await response.bytes()
        meta = {
            "status": response.status,
            "statusText": "",
            "headers": [
                [k, v] for k, v in response.headers.items() if k.lower() != "content-length"
            ],
        }
        return json.dumps(meta), data.decode("latin-1")

    async def _kv(self, args: dict[str, Any], body: str | None) -> tuple[str, str | None]:
        namespace = self.kv.get(str(args.get("ns")))
        if namespace is None:
            raise KVError(f"worker {self.name}: no KV namespace {args.get('ns')!r}")
        method = args["method"]
        ttl = args.get("cacheTtl")
        if method == "get":
            value = await namespace.get(args["key"], "bytes", ttl)
            return "null", None if value is None else value.decode("latin-1")
        if method == "get_with_metadata":
            pair = await namespace.get_with_metadata(args["key"], "bytes", ttl)
            data = None if pair.value is None else pair.value.decode("latin-1")
            return json.dumps(pair.metadata), data
        if method == "get_many":
            found = await namespace.get_many(args["keys"], "bytes", ttl)
            return json.dumps(
                {k: None if v is None else v.decode("latin-1") for k, v in found.items()}
            ), None
        if method == "put":
            await namespace.put(
                args["key"],
                (body or "").encode("latin-1"),
                expiration=args.get("expiration"),
                expiration_ttl=args.get("expirationTtl"),
                metadata=args.get("metadata"),
            )
            return "null", None
        if method == "delete":
            await namespace.delete(args["key"])
            return "null", None
        if method == "list":
            limit = args.get("limit")
            page = await namespace.list(
                args.get("prefix"), 1000 if limit is None else limit, args.get("cursor")
            )
            keys = []
            for info in page.keys:
                item: dict[str, Any] = {"name": info.name}
                if info.expiration is not None:
                    item["expiration"] = info.expiration
                if info.metadata is not None:
                    item["metadata"] = info.metadata
                keys.append(item)
            return json.dumps(
                {"keys": keys, "list_complete": page.list_complete, "cursor": page.cursor}
            ), None
        raise TypeError(f"unknown KV method {method!r}")


#: Per serving thread: the isolate of each loaded JS entry on it (keyed by a weak reference to
#: the entry, so an entry dropped by a reload or deploy leaves its isolates to be swept).
_THREAD = threading.local()


class JsEntry:
    """What ``load_entry`` returns for a JS worker: ``fetch`` on this thread's isolate.

    Owned by the :class:`~atoll.worker.Worker` (one per load). Isolates refer to the
    :class:`JsWorker` (the loaded program), never to this object: when a reload or deploy
    drops it, the next JS request on each thread disposes of its idle isolates there.
    """

    def __init__(self, worker: JsWorker) -> None:
        self.worker = worker
        self._ref = weakref.ref(self)
        hash(self._ref)  # a dead weak reference keeps the hash it had alive: the key stays usable

    def isolate(self) -> JsIsolate:
        """This thread's isolate of the worker (created on first use)."""
        table: dict[weakref.ref[JsEntry], JsIsolate] = _isolates()
        current = table.get(self._ref)
        if current is None or current.broken:
            from atoll.entries.js.isolate import JsIsolate

            _sweep(table)
            current = JsIsolate(self.worker)
            table[self._ref] = current
        return current

    def fetch(
        self, request: Request, env: Any, ctx: ExecutionContext
    ) -> Coroutine[Any, Any, Response]:
        """The entry's ``fetch``: run the request in this thread's isolate (``await`` it;
        the coroutine is the isolate's own ``serve``: one frame less per request). A limit
        that stops the request breaks the isolate: its other requests fail with it, and the
        thread's next request makes a new one."""
        invocation = CURRENT.get()
        if invocation is None:  # pragma: no cover - Worker.handle always sets it
            raise RuntimeError("a JS worker's fetch() runs only inside Worker.handle")
        return self.isolate().serve(request, ctx, invocation)

    def scheduled(
        self, event: ScheduledEvent, env: Any, ctx: ExecutionContext
    ) -> Coroutine[Any, Any, None]:
        """A cron trigger fired (``Worker.run_scheduled``): run the worker's ``scheduled``
        in this thread's isolate, under the invocation ``Worker`` set up (``await`` it)."""
        invocation = CURRENT.get()
        if invocation is None:  # pragma: no cover - Worker.run_scheduled always sets it
            raise RuntimeError("a JS worker's scheduled() runs only inside Worker.run_scheduled")
        return self.isolate().run_scheduled(event.cron, event.scheduled_time_ms, ctx, invocation)


def _isolates() -> dict[weakref.ref[JsEntry], JsIsolate]:
    table: dict[weakref.ref[JsEntry], JsIsolate] | None = getattr(_THREAD, "isolates", None)
    if table is None:
        table = _THREAD.isolates = {}
    return table


def _sweep(table: dict[weakref.ref[JsEntry], JsIsolate]) -> None:
    """Dispose of this thread's idle isolates whose entry was dropped (reload, deploy)."""
    for ref, isolate in list(table.items()):
        if ref() is None and not isolate.records:
            del table[ref]
            isolate.dispose()


def _is_fetcher(value: Any) -> bool:
    """A binding JS reaches as a Fetcher (``env.NAME.fetch``): a service or ``env.ASSETS``."""
    from atoll.bindings.assets import AssetsBinding
    from atoll.bindings.services import ServiceBinding

    return isinstance(value, ServiceBinding | AssetsBinding)


class JsWasmModule:
    """A file bound into a JS worker's env: ``[wasm_modules]`` (a ``WebAssembly.Module``,
    compiled by V8), ``[text_blobs]`` (a string) or ``[data_blobs]`` (an ``ArrayBuffer``)."""

    def __init__(self, relative: str, data: str, kind: str = "CompiledWasm") -> None:
        self.relative = relative
        self.data = data
        self.kind = kind

    def __repr__(self) -> str:
        return f"<JsWasmModule {self.relative}>"


def wasm_binding(manifest: Manifest, binding: str, relative: str) -> JsWasmModule:
    """Read and check one ``[wasm_modules]`` file for a JS worker (once per load)."""
    path = manifest.resolve(relative)
    data = path.read_bytes()
    check_wasm(data, binding=binding, shown=relative)
    key = path.relative_to(manifest.root).as_posix()
    return JsWasmModule(key, data.decode("latin-1"))


def blob_bindings(manifest: Manifest) -> dict[str, JsWasmModule]:
    """``[text_blobs]`` and ``[data_blobs]`` of a JS worker, read once per load."""
    out: dict[str, JsWasmModule] = {}
    for table, kind in ((manifest.text_blobs, "Text"), (manifest.data_blobs, "Data")):
        for name, relative in table.items():
            path = manifest.resolve(relative)
            data = path.read_bytes().decode("latin-1")
            out[name] = JsWasmModule(path.relative_to(manifest.root).as_posix(), data, kind)
    return out


def _check_size(manifest: Manifest, worker: JsWorker) -> None:
    """Workers' limit on a worker's size (10 MB gzip-compressed): the bundle and its modules."""
    parts = [worker.bundle.code.encode()] + [
        data.encode("latin-1") for _, data in worker.modules.values()
    ]
    if sum(map(len, parts)) <= MAX_COMPRESSED_MODULE_BYTES:
        return
    compressed = sum(len(gzip.compress(part, compresslevel=6)) for part in parts)
    if compressed > MAX_COMPRESSED_MODULE_BYTES:
        raise WorkerLoadError(
            f"{manifest.main}: the worker (its bundle and the modules it imports) is "
            f"{compressed / 1e6:.1f} MB gzip-compressed, over the "
            f"{MAX_COMPRESSED_MODULE_BYTES / 1024 / 1024:.0f} MB limit",
            hint="import less (check what esbuild bundles from node_modules), or load "
            "large data from KV",
        )


def _read_module(manifest: Manifest, relative: str, kind: str, shown: str) -> str:
    path = manifest.resolve(relative)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise WorkerLoadError(
            f"{manifest.main}: cannot read imported module {shown}: {exc}"
        ) from None
    if kind == "CompiledWasm":
        check_wasm(data, binding=shown, shown=shown)
    return data.decode("latin-1")


def load_js_entry(
    manifest: Manifest,
    bindings: Mapping[str, Any],
    *,
    rules: tuple[ModuleRule, ...] | None = None,
    cache_dir: Path | None = None,
) -> JsEntry:
    """Load a JS worker once: bundle, read modules, and start one isolate to check it.

    ``rules`` are the module rules (default: the manifest's ``[[rules]]``, then wrangler's
    defaults; see :func:`~atoll.entries.js.bundle.rules_for`).
    Called on a serving loop's thread, the checking isolate stays as that thread's
    isolate of the worker (its first request does not make another).
    Raises :class:`WorkerLoadError` when it does not bundle, throws while
    loading, or has no fetch handler.
    """
    bundle = bundle_worker(manifest, rules_for(manifest) if rules is None else rules, cache_dir)
    worker = JsWorker(manifest, bundle, bindings)
    _check_size(manifest, worker)
    try:
        from atoll.entries.js.isolate import JsIsolate  # starts V8 in this process, once
    except WorkerLoadError as exc:
        raise WorkerLoadError(f"{manifest.main}: {exc.message}", hint=exc.hint) from exc

    probe = JsIsolate(worker)
    entry = JsEntry(worker)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        probe.dispose()
    else:
        # Loaded on a serving loop's thread: the checked isolate serves that thread's first
        # request (a new isolate costs the Web API bundle's parse and run).
        table = _isolates()
        _sweep(table)
        table[entry._ref] = probe
    return entry


# -- fetch() subrequests ---------------------------------------------------------------------------


async def _subrequest(args: dict[str, Any], body: str | None) -> tuple[str, str | None]:
    """A JS ``fetch()``: through atoll's one outbound path (bindings/outbound), so under the
    worker's ``[outbound]`` policy and ``[limits]``, and in its tail event."""
    from atoll.bindings.outbound import current

    book = current()
    response, redirected = await book.send(
        str(args["method"]),
        str(args["url"]),
        [(str(k), str(v)) for k, v in args.get("headers", [])],
        body.encode("latin-1") if body is not None else None,
        redirect=str(args.get("redirect", "follow")),
    )
    data = await book.read(response)
    meta = {
        "status": response.status_code,
        "statusText": response.reason_phrase,
        "headers": [
            [k, v]
            for k, v in response.headers.multi_items()
            if k.lower() not in ("content-encoding", "content-length", "transfer-encoding")
        ],
        "url": str(response.url),
        "redirected": redirected,
    }
    return json.dumps(meta), data.decode("latin-1")
