"""Documentation that is tested: the guest in docs/wasm-abi.md runs as the page says."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from atoll.api import Request
from atoll.worker import Runtime, load_worker
from tests.support import WorkerFactory

DOCS = Path(__file__).resolve().parents[1] / "docs"


def blocks(page: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", (DOCS / page).read_text(), flags=re.S)


async def test_wasm_abi_example_guest_runs(make_worker: WorkerFactory, runtime: Runtime) -> None:
    (guest,) = blocks("wasm-abi.md", "wat")
    (python,) = blocks("wasm-abi.md", "python")
    root = make_worker(python, modules={"UPPER": guest})
    worker = load_worker(root, runtime=runtime, dev=True)
    result = await worker.handle(Request("http://docs/"), "doc")
    assert result.response.body == b"HELLO, ATOLL"
    assert result.logs == ["upper called"]


def test_readme_links_every_doc() -> None:
    readme = (DOCS.parent / "README.md").read_text()
    for page in sorted(DOCS.glob("*.md")):
        assert f"docs/{page.name}" in readme, f"README does not link docs/{page.name}"


# -- docs/embedding.md and docs/testing.md: worker folders written from the page ---------


def write_files(page: str, root: Path) -> list[str]:
    """Write the page's file blocks (first line ``# path``) under ``root``; return the others."""
    text = (DOCS / page).read_text()
    rest: list[str] = []
    for lang, code in re.findall(r"```(python|toml)\n(.*?)```", text, flags=re.S):
        first, _, body = code.partition("\n")
        if first.startswith("# ") and "/" in first:
            path = root / first[2:].strip()
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(body)
        elif lang == "python":
            rest.append(code)
    return rest


def test_embedding_examples_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    examples = write_files("embedding.md", tmp_path)
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {}
    for code in examples:
        exec(compile(code, "docs/embedding.md", "exec"), namespace)
    assert capsys.readouterr().out == "".join(blocks("embedding.md", "text"))

    async def drive() -> None:
        app, both = namespace["app"], namespace["both"]
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://testserver"
            ) as client,
        ):
            assert (await client.get("/")).text == "the main app"
            greeted = await client.get("/edge/greet?name=Ada")
            assert greeted.text == "Hi, Ada! (/greet)\n"
        async with (
            both,
            httpx.AsyncClient(transport=httpx.ASGITransport(app=both)) as client,
        ):
            assert (await client.get("http://x.test/api/v1")).json() == {"api": "/api/v1"}
            hello = await client.get("http://hello.localhost/?name=Bo")
            assert hello.text == "Hello, Bo! (/)\n"
            assert (await client.get("http://x.test/")).status_code == 404

    asyncio.run(drive())


def test_testing_worked_example_passes(tmp_path: Path) -> None:
    assert write_files("testing.md", tmp_path) == []
    folder = tmp_path / "counter"
    assert (folder / "tests" / "test_counter.py").is_file()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:asyncio"],
        cwd=folder,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "5 passed" in proc.stdout


def _size(n: int) -> str:
    """``n`` bytes as docs/limits.md writes a round size."""
    for unit, size in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size and n % size == 0:
            return f"{n // size} {unit}"
    return f"{n} bytes"


def test_limits_page_states_the_bounds_the_code_enforces() -> None:
    """docs/limits.md lists every bound with its default: each constant here, as the
    code has it, appears in the page as its row says (a change to one without the page
    fails here)."""
    from dataclasses import fields

    from atoll.bindings.kv.cache import MAX_CACHED_VALUE_BYTES, ReadCache
    from atoll.bindings.kv.host import _CURSOR_MAX
    from atoll.bindings.kv.namespace import MAX_KEY_BYTES, MAX_VALUE_BYTES
    from atoll.control import bundle, tail
    from atoll.control.supervisor import ADMIN_LIMITS
    from atoll.entries.js.isolate import MAX_TIMERS, REQUEST_WALL_S, STARTUP_CPU_MS
    from atoll.http.bodies import BODY_TIMEOUT, DEFAULT_BODY_MEMORY
    from atoll.http.protocol import FD_RESERVE, LINGER, ServerLimits
    from atoll.manifest.schema import DEFAULT_CPU_MS, MAX_CPU_MS, Limits
    from atoll.runtime.engine import DEFAULT_POOL_INSTANCES
    from atoll.runtime.logs import LOG_BUFFER, MAX_LOG_BYTES, MAX_LOG_LINE, MAX_LOG_LINES
    from atoll.runtime.wasi.context import MAX_OPEN_FILES
    from atoll.runtime.wasi.preview1 import IOV_MAX, LOG_WRITE_MAX, MAX_POLL, PATH_MAX

    page = (DOCS / "limits.md").read_text()
    worker = {f.name: f.default for f in fields(Limits)}
    server = ServerLimits()
    upload = bundle.Limits()
    cache = ReadCache()
    expected = [
        f"| {DEFAULT_CPU_MS // 1000} 000 ms (Workers paid plan default) | 1 … {MAX_CPU_MS // 1000} 000",
        f"| `memory_mb`: wasm linear memory per request | {worker['memory_mb']} MiB |",
        f"| `response_mb`: what a whole-wasm worker writes to stdout | {worker['response_mb']} MiB |",
        f"| request body | {worker['request_body_mb']} MiB |",
        f"| {DEFAULT_POOL_INSTANCES // 1000} 000 | fixed (`DEFAULT_POOL_INSTANCES`",
        f"| `subrequests`: `fetch()` calls per request (redirects followed count) | "
        f"{worker['subrequests']:,}".replace(",", " "),
        f"| `subrequest_timeout_s`: connect, send, each read of a subrequest | "
        f"{worker['subrequest_timeout_s']} s |",
        f"| `subrequest_response_mb`: a subrequest's body read into memory | "
        f"{worker['subrequest_response_mb']} MiB |",
        f"| request line + headers, bytes | {_size(server.max_head_bytes)} |",
        f"| header lines per request | {server.max_headers} |",
        f"| time to send a request's head | {server.header_timeout:g} s ",
        f"| idle keep-alive connection | {server.keep_alive_timeout} s ",
        f"| open client connections | {server.max_connections}, and at most the descriptor "
        f"limit less {FD_RESERVE};",
        f"| request bodies held at once | {_size(DEFAULT_BODY_MEMORY)} |",
        f"| a body that stops coming | {BODY_TIMEOUT:g} s without a byte |",
        f"for up to {LINGER:g} s and as many bytes as the head limit ({_size(server.max_head_bytes)}",
        f"({_size(ADMIN_LIMITS.max_head_bytes)} and {ADMIN_LIMITS.max_headers} headers per "
        f"head, {ADMIN_LIMITS.max_connections} connections)",
        f"| upload (compressed) | {_size(upload.upload)} |",
        f"| files and folders | {upload.files:,} |",
        f"| bytes once unpacked | {_size(upload.unpacked)},",
        f"| one tar metadata header (PAX, GNU long name/link) | {_size(bundle.MAX_HEADER)},",
        f"| all metadata | {_size(upload.metadata)} (",
        f"| iovecs per `fd_read` / `fd_pread` / `fd_write` | {IOV_MAX} (Linux `IOV_MAX`)",
        f"(stderr; stdout of modules called from Python) | {_size(LOG_WRITE_MAX)} |",
        f"| log line | {_size(MAX_LOG_LINE)} (",
        f"(cut at {MAX_LOG_LINE} bytes",
        f"| log lines per request | {MAX_LOG_LINES:,} lines and {_size(MAX_LOG_BYTES)} (",
        f"| files and folders a request's guests hold open (`path_open`) | {MAX_OPEN_FILES} |",
        f"| path argument | {PATH_MAX} bytes (Linux `PATH_MAX`)",
        f"| subscriptions per `poll_oneoff` | {MAX_POLL} |",
        f"| KV key, prefix / cursor | {MAX_KEY_BYTES} bytes / {_CURSOR_MAX} bytes |",
        f"| KV value (`put`) | {_size(MAX_VALUE_BYTES)} (Workers' limit) |",
        f"up to {_size(LOG_BUFFER)} per process (`LOG_BUFFER`",
        f"keeps\nat most {cache.max_entries:,} entries and {_size(cache.max_bytes)}, and never "
        f"a value over {_size(MAX_CACHED_VALUE_BYTES)}",
        f"at most {tail.QUEUE_EVENTS:,} unread events",
        f"at most {tail.MAX_LOG_LINES} log lines of {tail.MAX_LINE_CHARS:,} characters and\n"
        f"a {tail.MAX_TRACEBACK_CHARS:,}-character traceback",
        f"gets {STARTUP_CPU_MS // 1000} s of CPU",
        f"| wall time waiting on timers and subrequests | {REQUEST_WALL_S:g} s |",
        f"| timers pending per request | {MAX_TIMERS:,} |",
    ]
    missing = [text for text in expected if text not in page]
    assert not missing, "docs/limits.md does not say:\n" + "\n".join(missing)
