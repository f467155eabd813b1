"""Shared fixtures: worker folders built from inline WAT and Python source."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

# First, before anything imports STPyV8: it sets the V8 flags JS isolates need (per-isolate
# heap limits), which V8 freezes once it starts.
import atoll.entries.js.v8  # noqa: F401  # isort: skip
from atoll.runtime.backend.auto import BACKEND
from atoll.runtime.engine import Engine
from atoll.worker import Runtime
from tests.support import DevServer, StartDev, WorkerFactory, start_dev, wat


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``native_backend`` test the C path itself: on the public backend
    (``ATOLL_CAPI=0``, or a wasmtime other than the pinned one) they cannot run, and
    say so. scripts/test.sh deselects them in its public-backend run (``-m``)."""
    if BACKEND.name == "native":
        return
    skip = pytest.mark.skip(reason=f"native backend only; this run uses the {BACKEND.name} one")
    for item in items:
        if item.get_closest_marker("native_backend") is not None:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def engine() -> Iterator[Engine]:
    """One engine (and epoch ticker) for the test session, as in a real process."""
    eng = Engine()
    yield eng
    eng.close()


@pytest.fixture
def runtime(engine: Engine, tmp_path: Path) -> Runtime:
    """A runtime with a compiled-code cache of its own on disk."""
    return Runtime(engine, cache_dir=tmp_path / "cache")


@pytest.fixture
def make_worker(tmp_path: Path) -> WorkerFactory:
    """Write a worker folder: ``make_worker(python=..., modules={"NAME": wat_or_bytes}, limits=...)``."""
    counter = iter(range(1000))

    def make(
        python: str,
        *,
        modules: dict[str, str | bytes] | None = None,
        limits: str = "",
        extra: str = "",
        name: str = "test-worker",
    ) -> Path:
        root = tmp_path / f"worker{next(counter)}"
        (root / "src").mkdir(parents=True)
        (root / "src" / "worker.py").write_text(textwrap.dedent(python))
        lines = [f'name = "{name}"', 'main = "src/worker.py"', extra]
        if modules:
            lines.append("[wasm_modules]")
            (root / "pkg").mkdir()
            for binding, source in modules.items():
                data = source if isinstance(source, bytes) else wat(source)
                (root / "pkg" / f"{binding}.wasm").write_bytes(data)
                lines.append(f'{binding} = "pkg/{binding}.wasm"')
        if limits:
            lines.append("[limits]")
            lines.append(textwrap.dedent(limits))
        (root / "atoll.toml").write_text("\n".join(lines) + "\n")
        return root

    return make


@pytest.fixture
def dev_server() -> Iterator[StartDev]:
    """``dev_server(folder, *args)`` starts ``atoll dev``; every one is stopped after the test."""
    started: list[DevServer] = []

    def start(folder: Path, *args: str) -> DevServer:
        server = start_dev(folder, *args)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
