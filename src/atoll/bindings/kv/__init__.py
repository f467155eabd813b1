"""KV namespaces: the Workers KV API (``env.CACHE``) over a store the operator chooses.

The operator picks the store once per process with a spec (``--kv`` of
``atoll dev`` / ``atoll serve``, never the worker's ``atoll.toml``);
:func:`open_backend` opens it, :func:`kv_bindings` wraps it in one
:class:`KVNamespace` per ``[[kv_namespaces]]`` binding of each worker, and
:class:`KVHousekeeping` purges and closes it for the server's lifetime. Wasm
guests reach the same namespaces through the ``atoll:kv`` host imports
(:mod:`atoll.bindings.kv.host`).

======================  =====================================================
spec                    store
======================  =====================================================
``sqlite`` (default)    ``STATE_DIR/kv.sqlite3``; survives ``kill -9``; shared by
                        the processes of one machine
``sqlite:PATH``         that file (``?synchronous=full``: also survives power loss)
``redis://host:port/d`` a Redis server, shared by processes and machines
``memory``              this process only, gone on exit: for tests
======================  =====================================================
"""

from __future__ import annotations

import importlib
import logging
import pathlib
import time
from typing import Final

from atoll.bindings.kv.base import Clock, Entry, KeyRecord, KVBackend, ListPage
from atoll.bindings.kv.binding import PURGE_EVERY, KVHousekeeping, kv_bindings, purge_forever
from atoll.bindings.kv.cache import ReadCache
from atoll.bindings.kv.namespace import KeyInfo, KVNamespace, ListResult, ValueWithMetadata
from atoll.errors import KVError

__all__ = [
    "BACKENDS",
    "DEFAULT_SPEC",
    "PURGE_EVERY",
    "STATE_DIR",
    "Entry",
    "KVBackend",
    "KVHousekeeping",
    "KVNamespace",
    "KeyInfo",
    "KeyRecord",
    "ListPage",
    "ListResult",
    "ReadCache",
    "ValueWithMetadata",
    "backend_name",
    "kv_bindings",
    "open_backend",
    "purge_forever",
]

DEFAULT_SPEC: Final = "sqlite"

#: The folder of local state under a worker folder (``atoll dev``, ``atoll kv``, ``atoll.load``):
#: where the ``sqlite`` store keeps its file unless ``--persist-to`` says otherwise.
STATE_DIR: Final = ".atoll"
log = logging.getLogger("atoll.kv")

BACKENDS: Final[dict[str, str]] = {
    "sqlite": "atoll.bindings.kv.sqlite:SQLiteBackend",
    "redis": "atoll.bindings.kv.redis:RedisBackend",
    "memory": "atoll.bindings.kv.memory:MemoryBackend",
}
"""Backend name → ``"module:Class"``, imported only when a spec names it."""

_SCHEMES: Final[dict[str, str]] = {
    "sqlite": "sqlite",
    "redis": "redis",
    "rediss": "redis",
    "unix": "redis",
    "memory": "memory",
}


def backend_name(spec: str) -> str:
    """The :data:`BACKENDS` name a spec selects; raises :class:`KVError` if none."""
    scheme = spec.split(":", 1)[0].split("?", 1)[0].lower()
    name = _SCHEMES.get(scheme)
    if name is None:
        raise KVError(
            f"KV backend spec {spec!r} is not known",
            hint="use sqlite, sqlite:PATH, redis://HOST:PORT/DB or memory",
        )
    return name


def _load(name: str) -> type[KVBackend]:
    module_name, _, class_name = BACKENDS[name].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise KVError(
            f"the {name} KV backend cannot be loaded: {exc}",
            hint="for Redis install atoll's extra: pip install 'atoll[redis]'",
        ) from exc
    cls: type[KVBackend] = getattr(module, class_name)
    return cls


def open_backend(
    spec: str = DEFAULT_SPEC, *, state_dir: pathlib.Path, clock: Clock = time.time
) -> KVBackend:
    """Open the KV store ``spec`` names; once per process, closed with ``await backend.close()``.

    ``state_dir`` holds the store when the spec gives no path (``sqlite``:
    ``state_dir/kv.sqlite3``). ``clock`` is the hook that decides expiry
    (tests pass one they can move). Imports only the chosen backend's module.
    Raises :class:`~atoll.errors.KVError` for an unknown or malformed spec or
    a store that cannot be opened.
    """
    return _load(backend_name(spec)).from_spec(spec, state_dir=state_dir, clock=clock)
