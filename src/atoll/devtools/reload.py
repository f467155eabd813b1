"""Hot reload for ``atoll dev``: watch the worker folder, rebuild, swap the worker.

A change to the manifest, the entry, a module or a source under the folder:

1. if the manifest has a ``[build] command`` and a changed file is a source
   (not a build output; under ``[build] watch_dir`` when that is set), the
   build runs first (its output is shown as it comes; its failure is printed
   and the last good worker keeps serving);
2. the worker is loaded anew — manifest, modules (compiled once, then from the
   cache), Python entry and the modules beside it — and swapped into the
   router in one assignment: requests in flight finish on the worker they
   started on, new ones get the new one;
3. a load error is printed and the last good worker keeps serving.

What is not a change, by rule (:func:`ignored`), so a build never triggers
itself: files under state, cache, dependency and VCS folders
(:data:`IGNORED_DIRS`), compilers' and editors' temporary files
(:data:`TEMPORARY_FILES`: rustc's ``*.rcgu.o``, wasm-opt's ``*.wasm.tmp*``,
``*.swp``…), files under ``[assets] directory`` / ``[site] bucket`` (served
from disk as they are), and build outputs (the wasm files the manifest names)
whose content is what the last reload loaded.

Bindings made by ``extra_bindings`` (KV namespaces) are built again from the
same backend, so KV state persists across reloads. One watcher thread per
``atoll dev``; :meth:`DevReloader.stop` ends it.

``atoll dev`` starts watching half a second after its first response (or a second
after it listens, if no request comes): importing watchfiles would otherwise compete
with the first requests for the interpreter. Nothing is missed meanwhile: before it
watches, the thread walks the folder once and reloads what was modified since the
worker was loaded (:attr:`DevReloader.since`). A change made in that first second is
swapped in then rather than at once: a request before it gets the version loaded at
start.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from atoll.bindings.services import ServiceCaller
from atoll.errors import AtollError
from atoll.http.app import SingleWorker
from atoll.manifest import Manifest, load_manifest
from atoll.worker import BindingFactory, Runtime, Worker, load_worker

__all__ = ["IGNORED_DIRS", "TEMPORARY_FILES", "DevReloader", "ignored"]

log = logging.getLogger("atoll.devtools.reload")

#: Folders never watched: state, caches, dependencies, build trees of tools, VCS.
IGNORED_DIRS = frozenset(
    {
        ".atoll",
        ".git",
        ".hg",
        ".svn",
        "__pycache__",
        "node_modules",
        "target",
        ".zig-cache",
        "zig-cache",
        "zig-out",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".venv",
        ".wrangler",
    }
)

#: File names that are never a change: compilers' intermediate files, atomic-write temporaries,
#: editors' swap and backup files. rustc writes ``NAME.*.rcgu.o`` next to its output and
#: wasm-opt writes ``OUT.tmpXXXXXXX`` before renaming it over ``OUT``.
TEMPORARY_FILES = re.compile(
    r"""
    .*\.(rcgu\.o|o|obj|d|rmeta|rlib|a|pyc|pyo|swp|swx|swo|part|crdownload|lock)$
    | .*\.tmp[0-9A-Za-z]*$   # wasm-opt, and foo.tmp / foo.tmp123 in general
    | .*~$ | \.\#.* | \#.*\#$ | 4913$   # emacs, vim's probe file
    | \.DS_Store$
    """,
    re.VERBOSE,
)


def ignored(relative: Path) -> bool:
    """True when a path (relative to the worker folder) is never a change, by rule."""
    return any(part in IGNORED_DIRS for part in relative.parts[:-1]) or bool(
        relative.name in IGNORED_DIRS or TEMPORARY_FILES.fullmatch(relative.name)
    )


def _static_dirs(manifest: Manifest) -> list[Path]:
    """``[assets] directory`` and ``[site] bucket``: served from disk, never rebuilt."""
    folders = []
    if manifest.assets is not None:
        folders.append(manifest.resolve(manifest.assets.directory))
    if manifest.site is not None:
        folders.append(manifest.resolve(manifest.site.bucket))
    return folders


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size


class DevReloader:
    """Watches ``folder`` and keeps ``router.worker`` up to date with it."""

    def __init__(
        self,
        folder: Path,
        router: SingleWorker,
        runtime: Runtime,
        *,
        extra_bindings: BindingFactory | None = None,
        adjust: Callable[[Manifest], Manifest] | None = None,
        build: bool = True,
        report: Callable[[str], None] | None = None,
        debounce_ms: int = 150,
        config: Path | None = None,
        env: str | None = None,
        services: ServiceCaller | None = None,
        since: int | None = None,
    ) -> None:
        """``config``/``env``: the file and ``[env.NAME]`` the worker was loaded with (``-c``, ``--env``);
        ``services``: what its ``[[services]]`` bindings call (``atoll dev a/ b/``);
        ``since``: :func:`time.time_ns` before the worker's files were read (default: now)."""
        self.services = services
        self.folder = folder.resolve()
        self.config = config
        self.env = env
        self.router = router
        self.runtime = runtime
        self.extra_bindings = extra_bindings
        #: What the command line changes in every manifest loaded (`atoll dev --var …`).
        self.adjust = adjust
        self.build = build
        self.report = report or log.warning
        self.debounce_ms = debounce_ms
        #: Files modified after this (:func:`time.time_ns`) are changes the watcher has not
        #: seen yet: the thread looks for them before it watches. (A file written in the
        #: same clock tick may carry an earlier time and be missed, as a file written
        #: while watchfiles starts is; never the reverse: what the build wrote before it
        #: is not a change.)
        self.since = time.time_ns() if since is None else since
        self.reloads = 0
        #: Builds run (one per batch of source changes; a test counts them).
        self.builds = 0
        #: Build outputs as the last load saw them: an event for an unchanged one is our own.
        self._loaded: dict[Path, tuple[int, int] | None] = {}
        self._remember_outputs(router.worker.manifest)  # outputs as they are now count as loaded
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(
        self, after: threading.Event | None = None, wait: float = 1.0, settle: float = 0.5
    ) -> None:
        """Start the watcher thread (once).

        With ``after``, the thread waits until it is set and ``settle`` seconds more, or
        ``wait`` seconds if it is never set, before it imports watchfiles (``atoll dev``:
        its first response, and the requests a page makes right after it). Either way,
        files modified since :attr:`since` are reloaded before it watches.
        """
        self._thread = threading.Thread(
            target=self._watch, args=(after, wait, settle), name="atoll-reload", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _watch(self, after: threading.Event | None, wait: float, settle: float) -> None:
        if after is not None and after.wait(wait):
            self._stop.wait(settle)
        if self._stop.is_set():
            return
        import watchfiles  # in the watcher thread: not on the start-up path

        self.catch_up()
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

    def catch_up(self) -> bool:
        """Reload what was modified since :attr:`since` (one walk of the folder), and move
        :attr:`since` to the walk. True if a reload swapped the worker. Runs on the watcher
        thread before it watches; changes from then on are the watcher's."""
        mark = time.time_ns()
        changed = self.modified_since(self.since)
        self.since = mark
        return bool(changed) and self.apply(changed)

    def modified_since(self, since: int) -> set[Path]:
        """Files under the folder (but for what :func:`ignored` and the static folders rule
        out) whose modification time is after ``since`` (:func:`time.time_ns`)."""
        static = {str(folder) for folder in _static_dirs(self.router.worker.manifest)}
        found: set[Path] = set()
        for top, dirs, files in os.walk(self.folder):
            dirs[:] = [
                d for d in dirs if d not in IGNORED_DIRS and os.path.join(top, d) not in static
            ]
            for name in files:
                if ignored(Path(name)):  # (its folders are not ignored: pruned above)
                    continue
                path = os.path.join(top, name)
                try:
                    if os.stat(path).st_mtime_ns > since:
                        found.add(Path(path))
                except OSError:  # removed meanwhile
                    continue
        return found

    def _wanted(self, change: object, path: str) -> bool:
        resolved = Path(path)
        if not resolved.is_relative_to(self.folder):
            return True
        return not ignored(resolved.relative_to(self.folder))

    def outputs(self, manifest: Manifest | None = None) -> set[Path]:
        """Files the build makes: the wasm modules and a wasm ``main``."""
        manifest = manifest or self.router.worker.manifest
        files = [manifest.resolve(p) for p in manifest.wasm_modules.values()]
        if manifest.whole_wasm:
            files.append(manifest.resolve(manifest.main))
        return set(files)

    def _remember_outputs(self, manifest: Manifest) -> None:
        self._loaded = {path: _stamp(path) for path in self.outputs(manifest)}

    def _relevant(self, changed: set[Path], manifest: Manifest) -> set[Path]:
        """``changed`` without what is not a change: static files, outputs as last loaded."""
        static = _static_dirs(manifest)
        kept = set()
        for path in changed:
            if path.is_relative_to(self.folder) and ignored(path.relative_to(self.folder)):
                continue
            if any(path.is_relative_to(folder) for folder in static):
                continue
            if path in self._loaded and _stamp(path) == self._loaded[path]:
                continue  # written by the build we ran, and loaded since
            kept.add(path)
        return kept

    def _needs_build(self, changed: set[Path], manifest: Manifest) -> bool:
        """A source changed: not an output; under ``watch_dir`` when set (or the manifest)."""
        sources = changed - self.outputs(manifest)
        if not manifest.build.watch_dir:
            return bool(sources)
        watched = [manifest.resolve(d) for d in manifest.build.watch_dir]
        return any(
            path == manifest.path.resolve() or any(path.is_relative_to(d) for d in watched)
            for path in sources
        )

    def apply(self, changed: Iterable[Path]) -> bool:
        """React to ``changed`` files: build if sources changed, then reload. True if swapped.

        Runs on the watcher thread (or a test's), one batch at a time.
        """
        changed = {p.resolve() for p in changed}
        started = time.perf_counter()
        try:
            manifest = self._load(check_files=False)
            changed = self._relevant(changed, manifest)
            if not changed:
                return False
            if self.build and manifest.build.command and self._needs_build(changed, manifest):
                self.report(f"reload: building ({manifest.build.command})")
                self.builds += 1
                from atoll.devtools.build import run_build  # toolchains: only to build

                run_build(manifest, on_output=lambda line: self.report(f"  {line}"))
            loaded = self._load(check_files=True)
            if self.adjust is not None:
                loaded = self.adjust(loaded)
            worker = load_worker(
                loaded,
                runtime=self.runtime,
                dev=True,
                extra_bindings=self.extra_bindings,
                services=self.services,
            )
        except AtollError as exc:
            self.report(f"reload failed, still serving the last good version:\n{exc}")
            return False
        except Exception as exc:  # a worker's own import-time bug must not kill the watcher
            self.report(f"reload failed, still serving the last good version: {exc!r}")
            return False
        finally:
            with contextlib.suppress(AtollError):  # a broken manifest was reported above
                self._remember_outputs(self._load(check_files=False))
        self._swap(worker)
        ms = (time.perf_counter() - started) * 1000
        names = ", ".join(
            sorted(
                str(p.relative_to(self.folder)) for p in changed if p.is_relative_to(self.folder)
            )
        )
        self.report(f"reloaded {worker.name} in {ms:.0f} ms ({names or 'changes'})")
        return True

    def _load(self, *, check_files: bool) -> Manifest:
        """The manifest as the command chose it (its ``-c`` file and ``--env``)."""
        return load_manifest(self.folder, check_files=check_files, config=self.config, env=self.env)

    def _swap(self, worker: Worker) -> None:
        self.router.worker = worker  # one assignment: atomic for requests that read it after
        self.reloads += 1
