"""Hot reload for ``atoll dev``: watch the worker folder, rebuild, swap the worker.

A change to the manifest, the entry, a module or a source under the folder:

1. if the manifest has a ``[build] command`` and a changed file is not one of
   the build's outputs, the build runs first (its failure is printed; the last
   good worker keeps serving);
2. the worker is loaded anew — manifest, modules (compiled once, then from the
   cache), Python entry and the modules beside it — and swapped into the
   router in one assignment: requests in flight finish on the worker they
   started on, new ones get the new one;
3. a load error is printed and the last good worker keeps serving.

Bindings made by ``extra_bindings`` (KV namespaces) are built again from the
same backend, so KV state persists across reloads. One watcher thread per
``atoll dev``; :meth:`DevReloader.stop` ends it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from atoll.devtools.build import run_build
from atoll.errors import AtollError
from atoll.http.app import SingleWorker
from atoll.manifest import load_manifest
from atoll.worker import BindingFactory, Runtime, Worker, load_worker

__all__ = ["DevReloader"]

log = logging.getLogger("atoll.devtools.reload")

#: Folders never watched: state, caches, dependencies, VCS.
IGNORED_DIRS = frozenset(
    {
        ".atoll",
        ".git",
        "__pycache__",
        "node_modules",
        "target",
        ".zig-cache",
        "zig-cache",
        ".mypy_cache",
    }
)


class DevReloader:
    """Watches ``folder`` and keeps ``router.worker`` up to date with it."""

    def __init__(
        self,
        folder: Path,
        router: SingleWorker,
        runtime: Runtime,
        *,
        extra_bindings: BindingFactory | None = None,
        build: bool = True,
        report: Callable[[str], None] | None = None,
        debounce_ms: int = 150,
    ) -> None:
        self.folder = folder.resolve()
        self.router = router
        self.runtime = runtime
        self.extra_bindings = extra_bindings
        self.build = build
        self.report = report or log.warning
        self.debounce_ms = debounce_ms
        self.reloads = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the watcher thread (once)."""
        self._thread = threading.Thread(target=self._watch, name="atoll-reload", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _watch(self) -> None:
        import watchfiles  # in the watcher thread: not on the start-up path

        for changes in watchfiles.watch(
            self.folder,
            watch_filter=self._wanted,
            debounce=self.debounce_ms,
            step=50,
            stop_event=self._stop,
            yield_on_timeout=False,
            raise_interrupt=False,
        ):
            self.apply({Path(path) for _, path in changes})

    def _wanted(self, change: object, path: str) -> bool:
        relative = (
            Path(path).relative_to(self.folder) if path.startswith(str(self.folder)) else Path(path)
        )
        return not any(part in IGNORED_DIRS for part in relative.parts) and not path.endswith(
            (".pyc", ".swp", "~")
        )

    def outputs(self) -> set[Path]:
        """Files the build makes: the wasm modules and a wasm ``main``."""
        manifest = self.router.worker.manifest
        files = [manifest.resolve(p) for p in manifest.wasm_modules.values()]
        if manifest.whole_wasm:
            files.append(manifest.resolve(manifest.main))
        return set(files)

    def apply(self, changed: Iterable[Path]) -> bool:
        """React to ``changed`` files: build if sources changed, then reload. True if swapped."""
        changed = {p.resolve() for p in changed}
        started = time.perf_counter()
        try:
            manifest = load_manifest(self.folder, check_files=False)
            if self.build and manifest.build.command and not changed <= self.outputs():
                self.report(f"reload: building ({manifest.build.command})")
                run_build(manifest)
            worker = load_worker(
                self.folder, runtime=self.runtime, dev=True, extra_bindings=self.extra_bindings
            )
        except AtollError as exc:
            self.report(f"reload failed, still serving the last good version:\n{exc}")
            return False
        except Exception as exc:  # a worker's own import-time bug must not kill the watcher
            self.report(f"reload failed, still serving the last good version: {exc!r}")
            return False
        self._swap(worker)
        ms = (time.perf_counter() - started) * 1000
        names = ", ".join(
            sorted(
                str(p.relative_to(self.folder)) for p in changed if p.is_relative_to(self.folder)
            )
        )
        self.report(f"reloaded {worker.name} in {ms:.0f} ms ({names or 'changes'})")
        return True

    def _swap(self, worker: Worker) -> None:
        self.router.worker = worker  # one assignment: atomic for requests that read it after
        self.reloads += 1
