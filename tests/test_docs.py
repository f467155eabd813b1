"""Documentation that is tested: the guest in docs/wasm-abi.md runs as the page says."""

from __future__ import annotations

import re
from pathlib import Path

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
