"""Each seed kernel as a request to a running server: what HTTP and a fresh instance add.

``POST /sha256``, ``POST /resize?w=&h=&dw=&dh=``, ``GET /fib?n=``, ``POST /json``
on ``atoll dev examples/bench`` and, when it can be installed, on workerd serving
``benchmarks/workerd/bench.mjs`` with the same .wasm. One request at a time on a
new connection; wall time seen by the client, body sent and received included.
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.seed_table.cases import Case
from benchmarks.servers import Server, Unavailable, atoll_server, bench_workerd, ensure_workerd, get

__all__ = ["request_for", "run_requests"]


def request_for(case: Case) -> tuple[str, bytes | None]:
    if case.kernel == "fib":
        return f"/fib?n={case.params[0]}", None
    if case.kernel == "resize":
        sw, sh, dw, dh = case.params
        return f"/resize?w={sw}&h={sh}&dw={dw}&dh={dh}", case.data
    return f"/{case.kernel}", case.data


def _result(case: Case, body: bytes) -> str:
    if case.kernel == "resize":
        return hashlib.sha256(body).hexdigest()
    text = body.decode()
    return text.removeprefix("Result: ") if case.kernel == "fib" else text


def run_requests(
    cases: list[Case], rounds: int, log: Any = print
) -> tuple[dict[str, dict[str, list[float]]], dict[str, dict[str, str]], list[str]]:
    """Per case and server: request times (ms), results, and notes on servers left out."""
    notes: list[str] = []
    servers: dict[str, Server] = {"atoll": atoll_server()}
    with tempfile.TemporaryDirectory(prefix="bench-requests-") as tmp:
        try:
            ensure_workerd()
            servers["workerd"] = bench_workerd(Path(tmp))
        except Unavailable as exc:
            notes.append(f"workerd: skipped ({exc})")
        times: dict[str, dict[str, list[float]]] = {c.key: {n: [] for n in servers} for c in cases}
        results: dict[str, dict[str, str]] = {c.key: {} for c in cases}
        try:
            for server in servers.values():
                server.start()
            for server in servers.values():
                server.wait_ready()
            for rnd in range(rounds):
                names = list(servers)
                order = names[rnd % len(names) :] + names[: rnd % len(names)]
                for case in cases:
                    path, body = request_for(case)
                    for name in order:
                        start = time.perf_counter()
                        status, answer = get(servers[name].port, path, timeout=300, body=body)
                        elapsed = (time.perf_counter() - start) * 1000
                        if status != 200:
                            raise AssertionError(f"{name} {path}: {status} {answer[:300]!r}")
                        times[case.key][name].append(elapsed)
                        results[case.key][name] = _result(case, answer)
                log(f"  requests round {rnd + 1}/{rounds} done")
        finally:
            for server in servers.values():
                server.stop()
    return times, results, notes
