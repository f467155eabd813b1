"""Fixtures for the KV tests: a movable clock, a real redis-server, one backend per kind.

``backend`` runs a test once per backend (memory, sqlite, redis). The Redis
runs start a real ``redis-server`` on a free port in a temporary folder, and
are skipped only when that binary is not installed.
"""

from __future__ import annotations

import pathlib
from collections.abc import AsyncIterator, Iterator

import pytest

from atoll.bindings.kv import KVBackend, KVNamespace, open_backend
from tests.bindings.kv.kv_support import FakeClock, RedisServer, redis_server_binary

BACKEND_KINDS = ("memory", "sqlite", "redis")


def _need_redis_binary() -> str:
    binary = redis_server_binary()
    if binary is None:
        pytest.skip(
            "redis-server is not installed: run the setup script, scripts/setup.sh"
            " (it installs the packages of scripts/apt-packages.txt, redis-server among them)"
        )
    return binary


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One redis-server for the whole session; tests flush it before use."""
    server = RedisServer(_need_redis_binary(), tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def own_redis_server(tmp_path: pathlib.Path) -> Iterator[RedisServer]:
    """A redis-server for one test (which may kill and restart it)."""
    folder = tmp_path / "redis"
    folder.mkdir()
    server = RedisServer(_need_redis_binary(), folder)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=BACKEND_KINDS)
def backend_spec(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> str:
    """The spec of each backend kind, with its store empty."""
    kind: str = request.param
    if kind == "memory":
        return "memory"
    if kind == "sqlite":
        return f"sqlite:{tmp_path / 'kv.sqlite3'}"
    server: RedisServer = request.getfixturevalue("redis_server")
    assert server.command("FLUSHALL").startswith(b"+OK")
    return server.url


@pytest.fixture
async def backend(
    backend_spec: str, tmp_path: pathlib.Path, clock: FakeClock
) -> AsyncIterator[KVBackend]:
    """An open backend of each kind on the fake clock, closed after the test."""
    opened = open_backend(backend_spec, state_dir=tmp_path, clock=clock)
    yield opened
    await opened.close()


@pytest.fixture
def kv(backend: KVBackend) -> KVNamespace:
    """The namespace ``test`` on ``backend``."""
    return KVNamespace(backend, "test")
