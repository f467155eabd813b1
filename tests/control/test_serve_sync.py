"""A change answers only once every serving process serves it (supervisor.py, node.py).

A serving process can fail to load a version the supervisor checked — the
machine did it: STPyV8's platform init raised ``MemoryError`` on a first JS
load under memory pressure. These workers make that happen on purpose: their
entry raises ``MemoryError`` when imported by a serving process (not by the
supervisor's check) while a flag file exists. ``once`` removes the flag first,
so exactly one of the processes fails, once.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from atoll.errors import ControlError
from tests.control.serving import Node, deploy, start_serve, write_worker

FAILING = """
import os
import sys
from atoll import Response

FLAG = {flag!r}
if sys.argv[0].endswith("process.py") and os.path.exists(FLAG):  # a serving process
    if {once}:
        try:
            os.remove(FLAG)
        except FileNotFoundError:
            pass
        else:
            raise MemoryError()
    else:
        raise MemoryError()

async def fetch(request, env, ctx):
    return Response({label!r})
"""


def failing_worker(folder: Path, name: str, label: str, flag: Path, *, once: bool) -> Path:
    flag.touch()
    python = FAILING.format(flag=str(flag), once=once, label=label)
    return write_worker(folder, name, 1, python=python)


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    started = start_serve(tmp_path / "state", processes=2)
    try:
        yield started
    finally:
        started.stop()


def _bodies(node: Node, host: str, count: int = 30) -> set[tuple[int, str]]:
    """Status and body of ``count`` requests, each on a new connection (both processes)."""
    return {(r.status_code, r.text) for r in (node.get(host) for _ in range(count))}


def test_a_process_that_fails_to_load_once_is_synced_again_before_the_answer(
    node: Node, tmp_path: Path
) -> None:
    for cycle in range(3):  # each a new worker: before the fix, a 404 from one process
        name = f"w{cycle}"
        folder = failing_worker(
            tmp_path / name, name, f"new {cycle}", tmp_path / f"flag{cycle}", once=True
        )
        answer = deploy(node, folder)
        assert not (tmp_path / f"flag{cycle}").exists()  # one process did fail
        assert answer["processes"] == {"total": 2, "synced": 2, "errors": {}}
        assert _bodies(node, f"{name}.localhost") == {(200, f"new {cycle}")}
    assert "did not load the change" in node.log()


def test_a_change_a_process_cannot_load_is_undone_everywhere(node: Node, tmp_path: Path) -> None:
    folder = write_worker(tmp_path / "w", "w", 1)
    first = deploy(node, folder)["version"]["id"]
    failing_worker(folder, "w", "v2", tmp_path / "flag", once=False)
    with pytest.raises(ControlError, match="not loaded by every serving process") as caught:
        deploy(node, folder)
    assert "MemoryError" in caught.value.message
    assert _bodies(node, "w.localhost") == {(200, "v1:v1:1")}  # every process, the old one
    with node.client() as client:
        assert [(w["name"], w["version"]) for w in client.workers()["workers"]] == [("w", first)]
    assert "undone for w" in node.log()


def test_a_first_deploy_a_process_cannot_load_is_undone(node: Node, tmp_path: Path) -> None:
    folder = failing_worker(tmp_path / "f", "f", "never", tmp_path / "flag", once=False)
    with pytest.raises(ControlError, match="not loaded by every serving process"):
        deploy(node, folder)
    assert _bodies(node, "f.localhost", 10) == {
        (404, "404 Not Found\nno route matched http://f.localhost/\n")
    }
    with node.client() as client:
        assert [w["name"] for w in client.workers()["workers"]] == []
