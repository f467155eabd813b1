"""The benchmarks' correctness checks, without their timings.

What ``python -m benchmarks --quick`` relies on: every column of the seed table
computes the same outputs (on small inputs here), atoll and workerd answer the
comparison's routes with the same bodies, the hostile guests do what the limits
section reports, and wrk's report is read right. workerd is installed from npm
by :func:`benchmarks.servers.ensure_workerd` (``npm ci`` in benchmarks/workerd);
without npm those tests skip.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks import seed_table
from benchmarks.coldstart import launches, table
from benchmarks.seed_table import pure
from benchmarks.seed_table.cases import Case, json_text, random_bytes
from benchmarks.seed_table.columns import count_values
from benchmarks.servers import Unavailable, atoll_server, bench_workerd, ensure_workerd, running
from benchmarks.workerd.compare import check_answers
from benchmarks.workerd.limits import run_limits
from benchmarks.workerd.load import parse_wrk


@pytest.fixture(scope="module")
def workerd() -> Path:
    try:
        return ensure_workerd()
    except Unavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="test-bench-") as tmp:
        yield Path(tmp)


def small_cases() -> list[Case]:
    image = random_bytes(96 * 54 * 4, "test image")
    return [
        Case("sha256", "SHA-256 of 100 KiB", "sha256", random_bytes(100 * 1024 + 17, "test")),
        Case("resize", "resize 96x54 → 50x27", "resize", image, (96, 54, 50, 27)),
        Case("fib", "fib(20)", "fib", params=(20,)),
        Case("json", "JSON of 64 KiB", "json", json_text(64 * 1024)),
    ]


def test_pure_kernels_match_references() -> None:
    data = random_bytes(1000, "pure")
    for n in (0, 55, 56, 63, 64, 65, 119, 1000):
        assert pure.sha256(data[:n]) == hashlib.sha256(data[:n]).digest()
    assert [pure.fib(n) for n in range(10)] == [0, 1, 1, 2, 3, 5, 8, 13, 21, 34]
    text = json_text(16 * 1024)
    assert pure.json_count(text) == count_values(json.loads(text))
    for bad in (b"", b"{", b"[1,]", b"01", b'"a', b"tru", b'{"a" 1}', b"1 2", b'"\\x"'):
        assert pure.json_count(bad) == -1, bad
    # A 2:1 bilinear downscale with centred pixels averages each 2x2 block.
    image = bytes([0, 0, 0, 0, 100, 100, 100, 100, 50, 50, 50, 50, 250, 250, 250, 250])
    assert pure.resize(image, 2, 2, 1, 1) == bytes([100, 100, 100, 100])


def test_seed_columns_and_requests_agree(workerd: Path) -> None:
    """Every column, and both servers as requests, compute the same outputs."""
    result = seed_table.run(quick=True, cases=small_cases(), log=lambda *_: None)
    assert result.mismatches == []
    samples = result.samples
    assert samples["fib"]["pure"][0].result == "6765"
    case = small_cases()[0]
    assert samples["sha256"]["atoll"][0].result == hashlib.sha256(case.data).hexdigest()
    for key in ("sha256", "resize", "json"):
        assert {"pure", "atoll", "wasmtime"} <= set(samples[key])
    assert set(result.requests["json"]) == {"atoll", "workerd"}


def test_servers_answer_the_same(workerd: Path, workdir: Path) -> None:
    with running([atoll_server(), bench_workerd(workdir)]) as servers:
        for server in servers:
            check_answers([server])


def test_cold_starts_give_wall_and_cpu_per_launch(workerd: Path, workdir: Path) -> None:
    samples = launches(1, with_workerd=True, folder=workdir)
    assert sorted(samples) == ["atoll", "workerd"]
    for runs in samples.values():
        assert len(runs) == 1
        wall, cpu = runs[0]
        assert wall > 0
        assert cpu > 0  # read from the server's threads, not this process
    text = table(samples, {"`import atoll.cli.dev`": (2.0, 1.0, 300)})
    assert "| `atoll dev` |" in text
    assert "| workerd |" in text
    assert "| `import atoll.cli.dev` | 2.0 | 1.0 | 300 |" in text


def test_limits_side_by_side(workerd: Path) -> None:
    # Every guest but workerd's infinite loop answers: it may take longer than 6 s on a
    # loaded machine (workerd touching 512 MiB did once), so those waits go on to 120 s
    # (an answer ends the wait); the loop's 6 s unanswered show the hang.
    runs = run_limits(wait=6.0, log=lambda *_: None, answer_wait=120.0)
    rows = {(r.runtime, r.guest.split(" (")[0]): r for r in runs}
    atoll = {
        guest: rows["atoll", guest] for guest in ("stack overflow", "memory bomb", "infinite loop")
    }
    assert atoll["stack overflow"].status == 500
    assert "stack overflow" in atoll["stack overflow"].message
    assert atoll["memory bomb"].status == 503
    assert "MemoryLimitError" in atoll["memory bomb"].message
    assert atoll["infinite loop"].status == 503
    assert "CpuLimitError" in atoll["infinite loop"].message
    assert all(row.server_after == "serving" for row in atoll.values())
    assert rows["workerd", "stack overflow"].status == 500
    assert rows["workerd", "memory bomb"].status == 200  # no limit locally
    hung = rows["workerd", "infinite loop"]
    assert hung.status is None
    # The first probe can race ahead of the hostile request into workerd's one thread;
    # once the loop runs, every later probe goes unanswered (they time out).
    assert hung.probes_ok <= 1 < hung.probes
    assert hung.probe_max_ms >= 1000
    assert hung.server_after.startswith("hung")


WRK_OUTPUT = """Running 1s test @ http://127.0.0.1:8787/hello
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.51ms  512.00us  12.00ms   90.00%
    Req/Sec    21.00k     1.00k   22.00k    70.00%
  Latency Distribution
     50%    1.40ms
     75%    1.60ms
     90%    1.90ms
     99%  850.00us
  21000 requests in 1.00s, 2.50MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:  21000.00
Transfer/sec:      2.50MB
"""


def test_parse_wrk() -> None:
    result = parse_wrk(WRK_OUTPUT)
    assert result.requests == 21000
    assert result.seconds == pytest.approx(1.0)
    assert result.rps == pytest.approx(21000)
    assert result.p50_ms == pytest.approx(1.4)
    assert result.p99_ms == pytest.approx(0.85)
    assert result.errors == 7
