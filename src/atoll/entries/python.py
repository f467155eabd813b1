"""Python entries: ``main = "src/worker.py"`` with ``async def fetch(request, env, ctx)``.

The entry is imported once per load (``atoll dev`` start or reload, each deploy).
Python entries are the operator's own code: they run in the atoll process,
unsandboxed, like a WSGI app; only wasm (and JavaScript) guests are sandboxed.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import sys
import traceback
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from atoll.errors import WorkerLoadError
from atoll.manifest import Manifest

if TYPE_CHECKING:
    from atoll.entries.handler import FetchHandler

__all__ = ["load_python_entry"]


def load_python_entry(manifest: Manifest) -> FetchHandler:
    path = manifest.resolve(manifest.main)
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:12]
    name = f"atoll_worker_{manifest.name.replace('-', '_')}_{digest}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:  # pragma: no cover - .py checked by the manifest
        raise WorkerLoadError(f"{manifest.main}: cannot be imported as a Python module")
    module: ModuleType = importlib.util.module_from_spec(spec)
    folder = str(path.parent)
    _forget_siblings(path.parent)
    # Sibling modules of the entry import as in a script: its folder comes first while the
    # entry runs, and stays on sys.path (last) for imports made later. Trusted code.
    if folder in sys.path:
        sys.path.remove(folder)
    sys.path.insert(0, folder)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        tb = traceback.extract_tb(exc.__traceback__)
        where = next(
            (
                f"{Path(f.filename).name}:{f.lineno}"
                for f in reversed(tb)
                if f.filename == str(path)
            ),
            manifest.main,
        )
        raise WorkerLoadError(
            f"{manifest.main}: importing the entry failed at {where}: {type(exc).__name__}: {exc}",
            hint="fix the error above; the worker was not loaded",
        ) from exc
    finally:
        sys.path.remove(folder)
        sys.path.append(folder)
    fetch = getattr(module, "fetch", None)
    if fetch is None or not inspect.iscoroutinefunction(fetch):
        raise WorkerLoadError(
            f"{manifest.main} defines no `async def fetch(request, env, ctx)`",
            hint="add it: async def fetch(request, env, ctx): return Response('hello')",
        )
    sys.modules[name] = module
    handler: FetchHandler = fetch
    return handler


def _forget_siblings(folder: Path) -> None:
    """Drop cached modules named like the entry's siblings, so each load imports its own.

    Two workers in one process may both have a ``helper.py``; each entry binds
    the one from its own folder when it is imported (sibling names are shared
    per process, so import siblings at the top of the entry, not lazily).
    """
    local = {p.stem for p in folder.glob("*.py")}
    local |= {p.name for p in folder.iterdir() if (p / "__init__.py").is_file()}
    for name in list(sys.modules):
        if name.split(".", 1)[0] in local:
            del sys.modules[name]
