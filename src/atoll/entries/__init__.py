"""The kinds of worker entry, each turned into one ``fetch`` coroutine at load time.

* Python (``main = "*.py"``): the operator's own module, imported (:mod:`.python`);
* whole-wasm (``main = "*.wasm"``): a WASI program served as CGI/WAGI (:mod:`.cgi`);
* JavaScript (``main = "*.js"``/``"*.mjs"``): run in V8 isolates (:mod:`.js`);
* a WAGI app (``main = "modules.toml"``): WAGI's module map, read as it is (:mod:`.wagi`).

:func:`load_entry` runs once per worker load and picks the kind from the manifest.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from atoll.entries.handler import FetchHandler

if TYPE_CHECKING:
    from atoll.manifest import Manifest
    from atoll.runtime.cache import ModuleCache
    from atoll.runtime.hostfuncs import HostLinker

__all__ = ["FetchHandler", "load_entry"]


def load_entry(
    manifest: Manifest,
    cache: ModuleCache,
    linker: HostLinker,
    bindings: Mapping[str, Any] | None = None,
    *,
    cache_dir: Path | None = None,
) -> FetchHandler:
    """The worker's ``fetch``, loaded once per worker load.

    ``bindings`` (what ``env`` will hold) are needed by JS entries, whose env
    is rebuilt inside V8. Raises :class:`~atoll.errors.WorkerLoadError` (or
    ``ModuleLoadError``) when the entry cannot be loaded.
    """
    if manifest.entry_kind == "js":
        from atoll.entries.js import load_js_entry

        worker = load_js_entry(manifest, bindings or {}, cache_dir=cache_dir)
        js_handler: FetchHandler = worker.fetch
        return js_handler
    if manifest.main.endswith(".toml"):
        from atoll.entries.wagi import load_wagi_app

        app: FetchHandler = load_wagi_app(manifest, cache, linker)
        return app
    if manifest.whole_wasm:
        from atoll.entries.cgi import load_wasi_entry

        handler: FetchHandler = load_wasi_entry(manifest, cache, linker)
        return handler
    from atoll.entries.python import load_python_entry

    return load_python_entry(manifest)
