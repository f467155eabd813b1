"""benchmarks/request_cost.py drives a request through the protocol and the app (no timings checked)."""

from __future__ import annotations

import sys

import pytest
import uvloop

from atoll.http.app import AtollApp, SingleWorker
from atoll.worker import Runtime, load_worker
from benchmarks.request_cost import bare, main, measure
from benchmarks.servers import BENCH_WORKER


def test_the_bare_app_and_the_bench_worker_answer_and_are_counted(runtime: Runtime) -> None:
    worker = load_worker(BENCH_WORKER, runtime=runtime, dev=True)
    app = AtollApp(SingleWorker(worker), dev=True)

    async def run() -> None:
        cpu, calls, last = await measure(bare, "/hello", 20, 1, profile=True)
        assert cpu > 0
        assert calls > 0
        assert last.endswith(b"\r\n\r\nHello, world!")
        _, atoll_calls, answer = await measure(app, "/compute?n=1000", 20, 1, profile=True)
        assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
        assert answer.endswith(b"\r\n\r\nResult: 332833500")
        assert atoll_calls > calls

    uvloop.run(run())


def test_js_serves_the_js_worker_of_js_routes(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ATOLL_KV", "memory")  # what main() sets, undone after the test
    monkeypatch.setattr(
        sys, "argv", ["request_cost", "--js", "--requests", "5", "--rounds", "1", "/compute?n=1000"]
    )
    main()
    out = capsys.readouterr().out
    assert "/compute?n=1000" in out
    assert "'Result: 332833500'" in out


def test_only_serves_warm_then_n_requests_and_checks_the_last(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ATOLL_KV", "memory")
    monkeypatch.setattr(
        sys, "argv", ["request_cost", "--js", "--warm", "5", "--only", "3", "/hello"]
    )
    main()  # the last response is checked to be a 200
    assert capsys.readouterr().out == ""
