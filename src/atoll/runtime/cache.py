"""Compiled-code cache: wasm bytes → a compiled module, in memory and on disk.

The module is the backend's (``Backend.compile``): a ``wasmtime.Module`` or a
``native_setup.Module``.

A compile costs milliseconds to seconds; a cache hit costs microseconds (in
memory) or about a millisecond (from disk). Entries are keyed by the wasm's
sha256 and the engine's key (wasmtime version + every setting that changes
code), so a cache made by another wasmtime or configuration is never loaded.

Disk format: ``<dir>/<wasm sha256>-<engine key>.cwasm`` holding ``MAGIC``, the
sha256 of the payload, then wasmtime's serialized module. Files are written to
a temporary name and renamed (atomic on POSIX), so readers in other processes
see a whole file or none. A file that is truncated, corrupt or foreign fails
the checksum (or wasmtime's own header check) and is recompiled and replaced;
it is never loaded blindly (wasmtime trusts what it deserializes).
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from atoll.runtime.backend.auto import BACKEND
from atoll.runtime.engine import Engine
from atoll.runtime.private import private_dir

if TYPE_CHECKING:
    import wasmtime
else:  # its exceptions, imported when one is raised (the native backend runs without it)
    from atoll.runtime.lazy import wasmtime

__all__ = ["CacheStats", "ModuleCache", "default_cache_dir"]

log = logging.getLogger("atoll.cache")

MAGIC = b"ATOLLCW1"
_HEADER = len(MAGIC) + 32


def default_cache_dir() -> Path:
    """``$ATOLL_CACHE_DIR``, else ``$XDG_CACHE_HOME/atoll/modules``, else ``~/.cache/atoll/modules``."""
    explicit = os.environ.get("ATOLL_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "atoll" / "modules"


@dataclass
class CacheStats:
    """Counters since the cache was created (for tests, logs and benchmarks)."""

    memory_hits: int = 0
    disk_hits: int = 0
    compiles: int = 0
    disk_rejects: int = 0


class ModuleCache:
    """Process-wide cache of compiled modules for one engine.

    Thread-safe: concurrent loads of the same wasm compile it once.
    ``directory=None`` keeps the cache in memory only.
    """

    def __init__(self, engine: Engine, directory: Path | None) -> None:
        self.engine = engine
        self.directory = directory
        self.stats = CacheStats()
        self._memory: dict[str, Any] = {}
        self._lock = threading.Lock()

    def load(self, wasm: bytes) -> Any:
        """The compiled module for ``wasm``.

        Raises ``wasmtime.WasmtimeError`` when ``wasm`` does not compile; the
        caller (``runtime/module.py``) turns it into a ``ModuleLoadError``.
        """
        digest = hashlib.sha256(wasm).hexdigest()
        module = self._memory.get(digest)
        if module is not None:
            self.stats.memory_hits += 1
            return module
        with self._lock:
            module = self._memory.get(digest)
            if module is None:
                module = self._from_disk(digest) or self._compile(digest, wasm)
                self._memory[digest] = module
            else:
                self.stats.memory_hits += 1
        return module

    def path_for(self, digest: str) -> Path | None:
        """Where the compiled form of the wasm with sha256 ``digest`` lives on disk."""
        if self.directory is None:
            return None
        return self.directory / f"{digest}-{self.engine.key}.cwasm"

    def _from_disk(self, digest: str) -> Any:
        path = self.path_for(digest)
        if path is None:
            return None
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("compiled-code cache: cannot read %s (%s); recompiling", path, exc)
            return None
        payload = memoryview(data)[_HEADER:]
        if (
            data[: len(MAGIC)] != MAGIC
            or hashlib.sha256(payload).digest() != data[len(MAGIC) : _HEADER]
        ):
            self.stats.disk_rejects += 1
            log.warning("compiled-code cache: %s is corrupt or truncated; recompiling", path)
            return None
        try:
            module = BACKEND.deserialize(self.engine.engine, payload.tobytes())
        except wasmtime.WasmtimeError as exc:
            self.stats.disk_rejects += 1
            log.warning("compiled-code cache: %s is not loadable here (%s); recompiling", path, exc)
            return None
        self.stats.disk_hits += 1
        return module

    def _compile(self, digest: str, wasm: bytes) -> Any:
        module = BACKEND.compile(self.engine.engine, wasm)
        self.stats.compiles += 1
        path = self.path_for(digest)
        if path is not None:
            self._write(path, BACKEND.serialize(module))
        return module

    def _write(self, path: Path, serialized: bytes | bytearray) -> None:
        payload = bytes(serialized)
        try:
            private_dir(path.parent)  # compiled code is the node's own: 0700 (mkstemp: 0600)
            import tempfile  # here: a start that finds its modules cached writes none

            fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(MAGIC)
                    out.write(hashlib.sha256(payload).digest())
                    out.write(payload)
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            # The cache is an optimisation: a read-only or full disk costs a compile, not a request.
            log.warning("compiled-code cache: cannot write %s (%s)", path, exc)
