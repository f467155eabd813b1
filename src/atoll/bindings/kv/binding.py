"""``[[kv_namespaces]]`` → ``env.NAME``: the KV bindings of a worker.

:func:`kv_bindings` is configured once per process with the operator's
backend; the function it returns runs once per worker load (each ``atoll
dev`` start, later each deploy) and makes one :class:`KVNamespace` per
``[[kv_namespaces]]`` entry of that worker. Nothing here runs per request:
a namespace object is shared by every request, thread and event loop.

A worker gets the namespaces it declares and no others: ``env`` holds only
these, and wasm guests reach KV only through ``env`` (``atoll:kv`` looks the
binding up in the worker's ``env``). Two workers that declare the same ``id``
share its keys, as on Workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from typing import Final

from atoll.bindings.kv.base import KVBackend
from atoll.bindings.kv.namespace import KVNamespace
from atoll.errors import KVError
from atoll.manifest import Manifest

__all__ = ["PURGE_EVERY", "KVHousekeeping", "kv_bindings", "purge_forever"]

PURGE_EVERY: Final = 60.0
"""Seconds between two background purges of expired keys."""

log = logging.getLogger("atoll.kv")


def kv_bindings(
    backend: KVBackend, *, default_cache_ttl: float | None = None
) -> Callable[[Manifest], Mapping[str, KVNamespace]]:
    """A binding factory for :func:`atoll.worker.load_worker` (``extra_bindings=``).

    ``backend`` is the process's store (opened once with
    :func:`~atoll.bindings.kv.open_backend`; the caller closes it).
    ``default_cache_ttl`` is the runtime's policy for reads that pass no
    ``cache_ttl``: ``None`` (the default, what ``atoll dev`` uses) sends them
    to the store, so they are never stale; ``60``
    (:data:`~atoll.bindings.kv.namespace.DEFAULT_CACHE_TTL`) behaves like
    Workers, whose reads may be up to 60 s old. It is the operator's choice,
    never the worker's. Raises :class:`~atoll.errors.KVLimitError` if it is
    under 30 s.
    """
    # Check the policy now, not at the first worker load.
    KVNamespace(backend, "-", default_cache_ttl=default_cache_ttl)

    def bind(manifest: Manifest) -> Mapping[str, KVNamespace]:
        if manifest.kv_namespaces:  # at load, so no request pays for the connection
            backend.warm_up()
        return {
            entry.binding: KVNamespace(backend, entry.id, default_cache_ttl=default_cache_ttl)
            for entry in manifest.kv_namespaces
        }

    return bind


class KVHousekeeping:
    """The backend's life next to a server: purged while it serves, closed when it stops.

    :meth:`start` runs once when the server starts (an ASGI lifespan startup
    hook): it starts :func:`~atoll.bindings.kv.purge_forever` on that loop.
    :meth:`stop` runs once when it stops, after the last request: it cancels
    the purge and closes the backend. Both must run on the same loop.
    """

    def __init__(self, backend: KVBackend, *, purge_every: float | None = None) -> None:
        self.backend = backend
        self.purge_every = purge_every
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        every = PURGE_EVERY if self.purge_every is None else self.purge_every
        self._task = asyncio.create_task(purge_forever(self.backend, every=every))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.backend.close()


async def purge_forever(backend: KVBackend, *, every: float = PURGE_EVERY) -> None:
    """Call ``backend.purge_expired()`` every ``every`` seconds until cancelled.

    The runtime starts one such task per process next to the backend and
    cancels it before closing the backend. A failed purge is logged and
    retried at the next tick: reads never depend on purges.
    """
    while True:
        await asyncio.sleep(every)
        try:
            removed = await backend.purge_expired()
        except KVError as exc:
            log.warning("KV purge failed: %s", exc)
        else:
            if removed:
                log.debug("KV purge removed %d expired keys", removed)
