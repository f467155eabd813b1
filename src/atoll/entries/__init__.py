"""The kinds of worker entry, each turned into one ``fetch`` coroutine at load time.

* Python (``main = "*.py"``): the operator's own module, imported (:mod:`.python`);
* whole-wasm (``main = "*.wasm"``): a WASI program served as CGI/WAGI (:mod:`.cgi`).

:func:`load_entry` runs once per worker load and picks the kind from the manifest.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from atoll.api import ExecutionContext, Request, Response

if TYPE_CHECKING:
    from atoll.bindings import Env
    from atoll.manifest import Manifest
    from atoll.runtime.cache import ModuleCache

__all__ = ["FetchHandler", "load_entry"]

#: What every entry kind becomes: ``await fetch(request, env, ctx)`` → a Response.
FetchHandler = Callable[[Request, "Env", ExecutionContext], Awaitable[Response]]


def load_entry(manifest: Manifest, cache: ModuleCache, linker: object) -> FetchHandler:
    """The worker's ``fetch``, loaded once per worker load.

    Raises :class:`~atoll.errors.WorkerLoadError` (or ``ModuleLoadError``) when
    the entry cannot be loaded.
    """
    if manifest.whole_wasm:
        from atoll.entries.cgi import load_wasi_entry

        handler: FetchHandler = load_wasi_entry(manifest, cache, linker)
        return handler
    from atoll.entries.python import load_python_entry

    return load_python_entry(manifest)
