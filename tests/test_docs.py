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
