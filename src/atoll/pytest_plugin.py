"""atoll's pytest plugin: test a worker folder in the real runtime (``docs/testing.md``).

Installed with atoll (the ``pytest11`` entry point ``atoll``), so every
pytest run sees it; it imports nothing of atoll's runtime until a test asks
for one of its fixtures, and defines nothing but fixtures and one marker.

Fixtures (each per test):

======================  ==============================================================
``atoll_worker``        the worker, loaded (:class:`atoll.embed.EmbeddedWorker`):
                        ``await atoll_worker.fetch("/path")``, ``.kv("BINDING")``, ``.env``
``atoll_client``        an ``httpx.AsyncClient`` bound to it through ``ASGITransport``
                        (base URL ``http://NAME.localhost``)
``atoll_kv``            its KV namespaces by binding: ``await atoll_kv["CACHE"].put(k, v)``
``atoll_results``       every request it served in the test, in order
                        (:class:`atoll.embed.FetchResult`: status, outcome, logs…);
                        ``.logs`` all their ``console`` / ``ctx.log`` lines,
                        ``.outcomes`` their outcomes
``atoll_clock``         the KV store's clock, frozen at the test's start:
                        ``atoll_clock.advance(61)`` expires a 60 s key
``atoll_vars``          ``{}``: override it to set vars over ``[vars]``
``atoll_secrets``       ``{}``: override it to bind secrets
``atoll_worker_dir``    the worker folder (see below)
======================  ==============================================================

The folder is, first found: the ``path`` of the nearest
``@pytest.mark.atoll(path=...)`` (relative to the test file); the ini option
``atoll_worker`` (relative to the rootdir); the nearest folder above the test
file that holds ``atoll.toml`` or a wrangler config. The marker also takes
``vars``, ``secrets``, ``config``, ``env`` and ``kv`` (default ``memory``,
a fresh store per test).

The fixtures are synchronous; the tests that await are run by whichever
async plugin the project uses (``pytest.mark.anyio``, which comes with
httpx, or pytest-asyncio).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    import httpx

    from atoll.bindings.kv import KVNamespace
    from atoll.embed import EmbeddedWorker, ManualClock, ResultLog
    from atoll.worker import Runtime

__all__ = [
    "atoll_client",
    "atoll_clock",
    "atoll_kv",
    "atoll_results",
    "atoll_secrets",
    "atoll_vars",
    "atoll_worker",
    "atoll_worker_dir",
]

#: Config files that make a folder a worker folder (atoll.manifest.sources.CONFIG_FILES).
_CONFIG_FILES = ("atoll.toml", "wrangler.json", "wrangler.jsonc", "wrangler.toml")
_MARKER = "atoll"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "atoll_worker",
        "atoll: the worker folder the atoll_* fixtures load (relative to the rootdir)",
        default="",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{_MARKER}(path=None, vars=None, secrets=None, config=None, env=None, kv='memory'): "
        "the worker the atoll_* fixtures load, and how (docs/testing.md)",
    )


class KVNamespaces:
    """A worker's KV namespaces by binding name (``atoll_kv["CACHE"]``)."""

    def __init__(self, worker: EmbeddedWorker) -> None:
        self._worker = worker

    def __getitem__(self, binding: str) -> KVNamespace:
        return self._worker.kv(binding)

    def __iter__(self) -> Iterator[str]:
        return iter([entry.binding for entry in self._worker.manifest.kv_namespaces])

    def __len__(self) -> int:
        return len(self._worker.manifest.kv_namespaces)


def _options(request: pytest.FixtureRequest) -> dict[str, Any]:
    marker = request.node.get_closest_marker(_MARKER)
    if marker is None:
        return {}
    if marker.args:
        return {"path": marker.args[0], **marker.kwargs}
    return dict(marker.kwargs)


@pytest.fixture
def atoll_worker_dir(request: pytest.FixtureRequest) -> Path:
    """The worker folder the other fixtures load (see the module docstring)."""
    here = Path(str(request.node.path)).parent
    path = _options(request).get("path")
    if path is not None:
        return (here / str(path)).resolve()
    ini = request.config.getini("atoll_worker")
    if ini:
        return (request.config.rootpath / str(ini)).resolve()
    for folder in (here, *here.parents):
        if any((folder / name).is_file() for name in _CONFIG_FILES):
            return folder
    raise pytest.UsageError(
        f"atoll: no atoll.toml or wrangler config in {here} or above it; say which worker "
        "to test with @pytest.mark.atoll(path=...) or the ini option atoll_worker"
    )


@pytest.fixture
def atoll_vars() -> Mapping[str, Any]:
    """Vars set over ``[vars]`` (override this fixture; a marker's ``vars`` go over these)."""
    return {}


@pytest.fixture
def atoll_secrets() -> Mapping[str, str]:
    """Secrets bound as ``env.NAME`` (override this fixture, or the marker's ``secrets``)."""
    return {}


@pytest.fixture
def atoll_clock() -> ManualClock:
    """The KV store's clock, frozen at the test's start; ``advance(seconds)`` moves it."""
    from atoll.embed import ManualClock

    return ManualClock()


@pytest.fixture(scope="session")
def _atoll_runtime() -> Runtime:
    """One engine and compiled-code cache for the session (loads after the first are cheap)."""
    from atoll.worker import Runtime

    return Runtime()


@pytest.fixture
def atoll_worker(
    request: pytest.FixtureRequest,
    atoll_worker_dir: Path,
    atoll_vars: Mapping[str, Any],
    atoll_secrets: Mapping[str, str],
    atoll_clock: ManualClock,
    _atoll_runtime: Runtime,
) -> Iterator[EmbeddedWorker]:
    """The worker, loaded for this test with a fresh in-memory KV store; closed after it."""
    from atoll.embed import close_now, open_worker

    options = _options(request)
    worker = open_worker(
        atoll_worker_dir,
        kv=options.get("kv", "memory"),
        vars={**atoll_vars, **(options.get("vars") or {})},
        secrets={**atoll_secrets, **(options.get("secrets") or {})},
        config=options.get("config"),
        env=options.get("env"),
        record=True,
        clock=atoll_clock,
        runtime=_atoll_runtime,
    )
    yield worker
    close_now(worker)


@pytest.fixture
def atoll_client(atoll_worker: EmbeddedWorker) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` whose requests go to the worker in process (no socket)."""
    import httpx

    transport = httpx.ASGITransport(app=atoll_worker.app)
    return httpx.AsyncClient(transport=transport, base_url=f"http://{atoll_worker.name}.localhost")


@pytest.fixture
def atoll_kv(atoll_worker: EmbeddedWorker) -> KVNamespaces:
    """The worker's KV namespaces by binding: ``atoll_kv["CACHE"]`` (seed, then read back)."""
    return KVNamespaces(atoll_worker)


@pytest.fixture
def atoll_results(atoll_worker: EmbeddedWorker) -> ResultLog:
    """Every request the worker served in this test (in process or through atoll_client)."""
    return atoll_worker.results
