"""``atoll dev`` with KV namespaces, end to end: real processes, real sockets.

(That every serving loop's Redis client is closed with its loop is checked
in-process by tests/bindings/kv/test_kv_threads.py: a process that exits
closes its sockets anyway.)

What ``atoll kv`` writes into a worker folder, ``env.NAME`` reads in ``atoll
dev`` of that folder; ``--kv`` / ``ATOLL_KV`` pick another store; a wasm guest
(``examples/kv-counter``) and Python share the keys.
"""

from __future__ import annotations

import os
import pathlib
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.bindings.kv.kv_support import RedisServer, redis_server_binary
from tests.cli.test_dev import REPO, DevServer, start_dev
from tests.support import WorkerFactory

KV_WORKER = """
from atoll import Response

async def fetch(request, env, ctx):
    key = request.path.strip("/")
    if request.method == "PUT":
        await env.CACHE.put(key, await request.text())
        return Response("stored")
    value = await env.CACHE.get(key)
    return Response("(missing)" if value is None else value)
"""

KV_TOML = """
[[kv_namespaces]]
binding = "CACHE"
id = "cache"
"""


def atoll_kv(*args: str, env: dict[str, str] | None = None) -> str:
    """Run ``atoll kv ARGS…``; its stdout (fails the test on a non-zero exit)."""
    proc = subprocess.run(
        [sys.executable, "-m", "atoll.cli", "kv", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.fixture
def servers() -> Iterator[list[DevServer]]:
    """Servers a test starts; each is stopped after the test."""
    started: list[DevServer] = []
    yield started
    for server in started:
        server.stop()


def test_what_atoll_kv_writes_atoll_dev_reads(
    make_worker: WorkerFactory, servers: list[DevServer]
) -> None:
    folder = make_worker(KV_WORKER, extra=KV_TOML)
    atoll_kv("put", "greeting", "hello from the CLI", str(folder), "--binding", "CACHE")
    server = start_dev(folder)
    servers.append(server)
    assert (folder / ".atoll" / "kv.sqlite3").is_file()
    assert "KV namespaces CACHE in" in server.log()
    assert httpx.get(f"{server.url}/greeting").text == "hello from the CLI"
    assert httpx.put(f"{server.url}/from-http", content="written by the worker").text == "stored"
    # another process (the CLI) sees the worker's write while the server runs
    out = atoll_kv("get", "from-http", str(folder), "--binding", "CACHE")
    assert out.strip() == "written by the worker"
    atoll_kv("put", "greeting", "changed", str(folder), "--binding", "CACHE")
    assert httpx.get(f"{server.url}/greeting").text == "changed"


def test_atoll_dev_makes_the_default_store_in_the_folder(
    make_worker: WorkerFactory, servers: list[DevServer]
) -> None:
    folder = make_worker(KV_WORKER, extra=KV_TOML)
    assert not (folder / ".atoll").exists()
    server = start_dev(folder)
    servers.append(server)
    assert httpx.put(f"{server.url}/k", content="v").text == "stored"
    assert (folder / ".atoll" / "kv.sqlite3").is_file()
    assert f"KV namespaces CACHE in {folder / '.atoll' / 'kv.sqlite3'}" in server.log()


def test_atoll_dev_makes_its_kv_files_private_whatever_the_umask(
    make_worker: WorkerFactory, servers: list[DevServer]
) -> None:
    """Issue 10 section 4: the KV folder was 0755 and kv.sqlite3 0644 (any local user
    could read the data); ``atoll dev`` makes them 0700 / 0600 under umask 022 too."""
    folder = make_worker(KV_WORKER, extra=KV_TOML)
    previous = os.umask(0o022)  # the child inherits it
    try:
        server = start_dev(folder)
    finally:
        os.umask(previous)
    servers.append(server)
    assert httpx.put(f"{server.url}/k", content="secret").text == "stored"
    store = folder / ".atoll"
    files = sorted(store.iterdir())
    assert store / "kv.sqlite3" in files
    modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in [store, *files]}
    assert modes == {name: 0o700 if name == ".atoll" else 0o600 for name in modes}


def test_atoll_kv_env_var_picks_the_store(
    make_worker: WorkerFactory, servers: list[DevServer], tmp_path: pathlib.Path
) -> None:
    folder = make_worker(KV_WORKER, extra=KV_TOML)
    env = {"ATOLL_KV": f"sqlite:{tmp_path / 'elsewhere.sqlite3'}"}
    atoll_kv("put", "k", "in elsewhere", str(folder), "--binding", "CACHE", env=env)
    server = start_dev(folder, env=env)
    servers.append(server)
    assert httpx.get(f"{server.url}/k").text == "in elsewhere"
    assert not (folder / ".atoll").exists()
    # --kv memory: a store of the process alone
    memory = start_dev(folder, "--kv", "memory")
    servers.append(memory)
    assert httpx.get(f"{memory.url}/k").text == "(missing)"


def test_a_bad_kv_spec_is_an_error_without_traceback(make_worker: WorkerFactory) -> None:
    folder = make_worker(KV_WORKER, extra=KV_TOML)
    proc = subprocess.run(
        [sys.executable, "-m", "atoll.cli", "dev", str(folder), "--port", "0", "--kv", "mongo://x"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert "error: KV backend spec 'mongo://x' is not known" in proc.stderr
    assert "Traceback" not in proc.stderr


# -- Redis: every serving loop has its own client, all closed at shutdown ------------------


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    binary = redis_server_binary()
    if binary is None:
        pytest.skip("redis-server is not installed: run scripts/setup.sh")
    server = RedisServer(binary, tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


def test_atoll_dev_on_redis_from_every_loop(
    make_worker: WorkerFactory, redis_server: RedisServer
) -> None:
    redis_server.command("FLUSHALL")
    folder = make_worker(KV_WORKER, extra=KV_TOML)
    server = start_dev(folder, "--kv", redis_server.url, "--loops", "4")
    try:

        def one(i: int) -> tuple[str, str]:
            with httpx.Client() as client:  # a new connection: any loop may take it
                stored = client.put(f"{server.url}/k{i}", content=f"v{i}").text
                return stored, client.get(f"{server.url}/k{i}").text

        with ThreadPoolExecutor(16) as pool:
            results = list(pool.map(one, range(64)))
        assert results == [("stored", f"v{i}") for i in range(64)]
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(timeout=30) == 0
    finally:
        server.stop()
    log = server.log()
    assert "Traceback" not in log
    assert "Unclosed" not in log
    out = atoll_kv("get", "k63", str(folder), "--binding", "CACHE", "--kv", redis_server.url)
    assert out.strip() == "v63"


# -- the example: a wasm guest counts in KV, Python and the CLI read the same keys ---------


def test_kv_counter_example(servers: list[DevServer], tmp_path: pathlib.Path) -> None:
    example = REPO / "examples" / "kv-counter"
    store = ["--kv", f"sqlite:{tmp_path / 'counts.sqlite3'}"]  # not the example's own .atoll/
    server = start_dev(example, *store)
    servers.append(server)
    assert [httpx.get(f"{server.url}/hits").text for _ in range(3)] == [
        "hits: 1\n",
        "hits: 2\n",
        "hits: 3\n",
    ]
    assert httpx.get(f"{server.url}/peek/hits").text == "hits: 3\n"
    assert httpx.get(f"{server.url}/other").text == "other: 1\n"
    assert atoll_kv("get", "hits", str(example), "--binding", "COUNTS", *store).strip() == "3"
    atoll_kv("put", "hits", "41", str(example), "--binding", "COUNTS", *store)
    assert httpx.get(f"{server.url}/hits").text == "hits: 42\n"
    assert logged(server, "counter hits = 42")  # the guest's atoll:log line


def logged(server: DevServer, text: str) -> bool:
    """True once ``text`` is in the server's log (lines arrive a little after responses)."""
    deadline = time.monotonic() + 5
    while text not in server.log():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_kv_counter_build_is_reproducible(tmp_path: pathlib.Path) -> None:
    """The committed pkg/counter.wasm is what build.sh makes (when clang-14 is here)."""
    example = REPO / "examples" / "kv-counter"
    if subprocess.run(["sh", "-c", "command -v clang-14"], capture_output=True).returncode:
        pytest.skip("clang-14 is not installed: scripts/install-toolchains.sh")
    copy = tmp_path / "kv-counter"
    for name in ("build.sh", "c/counter.c", "include/atoll_kv.h"):
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        (copy / name).write_bytes((example / name).read_bytes())
    subprocess.run(["bash", str(copy / "build.sh")], check=True, capture_output=True, timeout=120)
    built = (copy / "pkg" / "counter.wasm").read_bytes()
    assert built == (example / "pkg" / "counter.wasm").read_bytes(), (
        "pkg/counter.wasm is not what build.sh builds: run examples/kv-counter/build.sh"
    )
