"""A WASI program run as a function from a Python entry (src/atoll/runtime/program.py)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from atoll.api import Request
from atoll.runtime.outcome import Outcome
from atoll.worker import Result, Runtime, Worker, load_worker
from tests.support import WorkerFactory, wat

PROBE = Path(__file__).parents[1] / "entries" / "guests" / "wagi_probe.wasm"

MakeTool = Callable[..., Worker]

WORKER = """
import json
from atoll import Response

async def fetch(request, env, ctx):
    spec = await request.json()
    result = env.TOOL.run(**spec)
    return Response(json.dumps({
        "stdout": result.stdout.decode(),
        "stderr": result.stderr.decode(),
        "exit_code": result.exit_code,
        "ok": result.ok,
    }))
"""


@pytest.fixture
def tool(make_worker: WorkerFactory, runtime: Runtime) -> MakeTool:
    def make(limits: str = "", module: bytes | None = None) -> Worker:
        root = make_worker(
            WORKER,
            modules={"TOOL": module or PROBE.read_bytes()},
            limits=limits,
            extra='[wasi]\ndirs = { "/data" = "data", "/other" = "other" }',
        )
        for folder, name in (("data", "a.txt"), ("other", "b.txt")):
            (root / folder).mkdir()
            (root / folder / name).write_text("x")
        return load_worker(root, runtime=runtime, dev=True)

    return make


async def run(worker: Worker, **spec: object) -> Result:
    return await worker.handle(Request("http://h/", method="POST", body=json.dumps(spec)), "rid")


async def test_stdin_to_stdout_with_stderr_captured(tool: MakeTool) -> None:
    result = await run(tool(), argv=["probe", "upper"], stdin="hello wasi")
    assert json.loads(result.response.body) == {
        "stdout": "HELLO WASI",
        "stderr": "upper-casing stdin\n",
        "exit_code": 0,
        "ok": True,
    }
    assert result.logs == []  # captured, not logged


async def test_the_exit_code_is_returned(tool: MakeTool) -> None:
    out = json.loads((await run(tool(), argv=["probe", "exit", "7"])).response.body)
    assert (out["stdout"], out["exit_code"], out["ok"]) == ("exiting\n", 7, False)


async def test_argv_and_env_are_the_whole_of_them(tool: MakeTool) -> None:
    out = json.loads((await run(tool(), argv=["t", "env"], env={"A": "1"})).response.body)
    assert out["stdout"] == "A=1\nARG=t\nARG=env\n"
    default = json.loads((await run(tool())).response.body)
    assert default["stdout"] == "hello from stdout: "  # argv = ["TOOL"], stdin empty


async def test_folder_grants_are_those_of_wasi_dirs(tool: MakeTool) -> None:
    worker = tool()
    every = json.loads((await run(worker, argv=["p", "ls", "/other"])).response.body)
    assert (every["stdout"], every["exit_code"]) == ("b.txt\n", 0)
    narrowed = json.loads(
        (await run(worker, argv=["p", "ls", "/other"], dirs=["/data"])).response.body
    )
    assert narrowed["exit_code"] == 2
    assert narrowed["stderr"].startswith("cannot open /other")
    refused = await run(worker, argv=["p", "ls", "/etc"], dirs=["/etc"])
    assert refused.response.status == 500
    assert "folder '/etc' is not granted to this worker" in refused.response.body.decode()


async def test_a_program_that_loops_ends_at_the_requests_cpu_limit(tool: MakeTool) -> None:
    spin = wat('(module (memory (export "memory") 1) (func (export "_start") (loop (br 0))))')
    result = await run(tool("cpu_ms = 30", module=spin))
    assert result.response.status == 503
    assert result.outcome is Outcome.EXCEEDED_CPU


async def test_runs_free_their_memory(make_worker: WorkerFactory, runtime: Runtime) -> None:
    # Each run takes 4 MiB (64 pages); 20 runs in one request fit in a 16 MiB budget only
    # because each run's store is closed when it ends. 5 instances at once do not fit.
    big = wat('(module (memory (export "memory") 64) (func (export "_start")))')
    source = """
from atoll import Response

async def fetch(request, env, ctx):
    codes = [env.BIG.run().exit_code for _ in range(20)]
    if request.query.get("at_once"):
        [env.BIG.instantiate() for _ in range(5)]
    return Response(str(sum(codes)))
"""
    root = make_worker(source, modules={"BIG": big}, limits="memory_mb = 16")
    worker = load_worker(root, runtime=runtime, dev=True)
    result = await worker.handle(Request("http://h/"), "rid")
    assert (result.response.status, result.response.body) == (200, b"0")
    at_once = await worker.handle(Request("http://h/?at_once=1"), "rid")
    assert at_once.response.status == 503
    assert at_once.outcome is Outcome.EXCEEDED_MEMORY


async def test_an_entrypoint_that_is_not_exported_is_refused(tool: MakeTool) -> None:
    result = await run(tool(), entrypoint="nope")
    assert result.response.status == 500
    assert "exports no function 'nope'" in result.response.body.decode()
    other = json.loads((await run(tool(), entrypoint="hello")).response.body)
    assert other["stdout"].startswith("Content-Type: text/plain\n\nhello from the hello export")


@pytest.mark.parametrize("fd", [1, 2])
async def test_stdout_and_stderr_are_bounded_by_response_mb(tool: MakeTool, fd: int) -> None:
    # 32 writes of 64 KiB (2 MiB) to fd 1 or 2, with response_mb = 1.
    flood = wat(
        '(module (import "wasi_snapshot_preview1" "fd_write"'
        " (func $w (param i32 i32 i32 i32) (result i32)))"
        ' (memory (export "memory") 2)'
        ' (func (export "_start") (local $i i32)'
        " (i32.store (i32.const 0) (i32.const 1024)) (i32.store (i32.const 4) (i32.const 65536))"
        " (loop (drop (call $w (i32.const FD) (i32.const 0) (i32.const 1) (i32.const 8)))"
        " (local.set $i (i32.add (local.get $i) (i32.const 1)))"
        " (br_if 0 (i32.lt_u (local.get $i) (i32.const 32))))))".replace("FD", str(fd))
    )
    result = await run(tool("response_mb = 1", module=flood))
    assert result.response.status == 502
    stream = "stdout" if fd == 1 else "stderr"
    assert f"more than 1048576 bytes to {stream}" in result.response.body.decode()
