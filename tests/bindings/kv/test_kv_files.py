"""The SQLite KV store's files are private to the user: the folder 0700, the database
and its -wal and -shm files 0600, whatever the umask; ``atoll dev`` makes them so too."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

import httpx

from atoll.bindings.kv.sqlite import SQLiteBackend
from tests.support import StartDev, WorkerFactory


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _files(path: Path) -> list[Path]:
    return [p for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")) if p.exists()]


def test_a_new_store_is_private(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        path = tmp_path / "state" / "kv.sqlite3"
        backend = SQLiteBackend(path)
        asyncio.run(backend.put("ns", "k", b"secret", expiration=None, metadata=None))
        files = _files(path)
        assert len(files) == 3  # WAL mode: -wal and -shm exist while the store is open
        assert {str(p): _mode(p) for p in files} == {str(p): 0o600 for p in files}
        assert _mode(path.parent) == 0o700
        asyncio.run(backend.close())
    finally:
        os.umask(old)


def test_an_existing_store_left_open_is_made_private(tmp_path: Path) -> None:
    path = tmp_path / "kv.sqlite3"
    backend = SQLiteBackend(path)
    asyncio.run(backend.put("ns", "k", b"v", expiration=None, metadata=None))
    asyncio.run(backend.close())
    for p in _files(path):
        p.chmod(0o644)
    tmp_path.chmod(0o755)
    reopened = SQLiteBackend(path)
    assert {str(p): _mode(p) for p in _files(path)} == {str(p): 0o600 for p in _files(path)}
    assert _mode(tmp_path) == 0o755  # a folder the user named is theirs to set
    asyncio.run(reopened.close())


WORKER = """
from atoll import Response

async def fetch(request, env, ctx):
    await env.STORE.put("k", "v")
    return Response(await env.STORE.get("k"))
"""


def test_atoll_dev_makes_its_kv_folder_and_files_private(
    make_worker: WorkerFactory, dev_server: StartDev
) -> None:
    folder = make_worker(WORKER, extra='[[kv_namespaces]]\nbinding = "STORE"\nid = "store"')
    server = dev_server(folder, "--no-reload")
    assert httpx.get(server.url, timeout=30).text == "v"
    state = folder / ".atoll"
    assert _mode(state) == 0o700
    files = _files(state / "kv.sqlite3")
    assert files
    assert {str(p): _mode(p) for p in files} == {str(p): 0o600 for p in files}
