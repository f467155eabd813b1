"""JavaScript workers in atoll against workerd running the same JS file, and atoll's Python entry.

Run from the repository root (needs wrk and the pinned workerd: ``benchmarks/workerd``)::

    python -m benchmarks.js_routes              # 3 rounds x 8 s per route and server, ~3 min
    python -m benchmarks.js_routes --quick      # 1 round x 2 s

Three servers, started once, measured in interleaved rounds with ``wrk -t1 -c32``:

- ``workerd``: ``benchmarks/workerd/bench.mjs`` + ``examples/bench/pkg/bench.wasm``;
- ``atoll JS``: ``atoll dev`` on a folder holding a copy of the same ``bench.mjs`` (its one
  import written ``"./bench.wasm"``: workerd names modules, atoll resolves paths as
  wrangler does) and the same ``bench.wasm``;
- ``atoll Python``: ``atoll dev examples/bench`` (the same routes written as a Python entry).

Per route: requests per CPU-second of the server process (the steadier figure on a
shared machine) and requests per second, medians over rounds. Then a JS worker's cold
load in-process (``load_worker`` to the first response; bundle cache warm, a new isolate
per load), median of 10.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.servers import (
    BENCH_WORKER,
    WORKERD_DIR,
    atoll_server,
    bench_workerd,
    ensure_workerd,
)
from benchmarks.workerd.compare import ROUTES, measure
from benchmarks.workerd.load import wrk_path


def js_worker(folder: Path) -> Path:
    """A JS worker folder: workerd's bench.mjs and bench.wasm, as atoll loads them."""
    folder.mkdir(parents=True, exist_ok=True)
    source = (WORKERD_DIR / "bench.mjs").read_text()
    (folder / "bench.mjs").write_text(source.replace('from "bench.wasm"', 'from "./bench.wasm"'))
    shutil.copyfile(BENCH_WORKER / "pkg" / "bench.wasm", folder / "bench.wasm")
    (folder / "atoll.toml").write_text(
        'name = "bench-js"\nmain = "bench.mjs"\n[limits]\ncpu_ms = 30000\n'
    )
    return folder


def cold_load(folder: Path, times: int = 10) -> float:
    """Median ms from ``load_worker`` to the first response of a new JS worker, in-process."""
    from atoll.api import Request
    from atoll.worker import Runtime, load_worker

    runtime = Runtime()
    load_worker(folder, runtime=runtime)  # fills the bundle cache

    async def once() -> float:
        start = time.perf_counter()
        worker = load_worker(folder, runtime=runtime)
        result = await worker.handle(Request("http://b/compute?n=1000"), "cold")
        assert result.response.status == 200
        return (time.perf_counter() - start) * 1000

    async def run() -> list[float]:
        return [await once() for _ in range(times)]

    return statistics.median(asyncio.run(run()))


#: The servers, in the order their columns appear.
SERVERS = ("workerd", "atoll JS", "atoll Python")
COMMAND = "python -m benchmarks.js_routes"


def run(wrk: str, rounds: int, seconds: float) -> dict[str, Any]:
    """Measure the JS routes and the cold load; JSON-able results (see :func:`section`)."""
    ensure_workerd()
    with tempfile.TemporaryDirectory(prefix="bench-js-") as tmp:
        folder = js_worker(Path(tmp) / "bench-js")
        servers = {
            "workerd": bench_workerd(Path(tmp)),
            "atoll JS": atoll_server(folder),
            "atoll Python": atoll_server(BENCH_WORKER),
        }
        samples: dict[str, list[list[float]]] = {}
        try:
            for server in servers.values():
                server.start()
            for server in servers.values():
                server.wait_ready()
            names = list(servers)
            for rnd in range(rounds):
                for route in ROUTES:
                    for name in names[rnd % 3 :] + names[: rnd % 3]:
                        sample = measure(wrk, name, [servers[name]], route, seconds, rnd)
                        samples.setdefault(f"{name} {route}", []).append(
                            [sample.per_cpu_second, sample.rps]
                        )
                        print(
                            f"  round {rnd + 1}/{rounds} {route:<16} {name:<13}"
                            f"{sample.rps:>9,.0f} req/s {sample.per_cpu_second:>9,.0f} req/CPU-s"
                        )
        finally:
            for server in servers.values():
                server.stop()
        cold = cold_load(folder)
    return {"rounds": rounds, "seconds": seconds, "samples": samples, "cold_ms": cold}


def section(data: dict[str, Any]) -> list[str]:
    """The page's JS section (markdown lines) from :func:`run`'s results."""

    def med(name: str, route: str, i: int) -> float:
        return float(statistics.median(s[i] for s in data["samples"][f"{name} {route}"]))

    lines = [
        "## JavaScript workers",
        "",
        f"From `{COMMAND}` (also run by `python -m benchmarks`): the four routes above, written "
        "in JS (`benchmarks/workerd/bench.mjs`), served by workerd and by `atoll dev` "
        "(STPyV8, one isolate per loop thread), against the same routes as atoll's Python "
        "entry (`examples/bench`), in the same run. One process each, "
        f"`wrk -t1 -c32`, {data['rounds']} interleaved rounds of {data['seconds']:.0f} s; "
        "medians. *req/CPU-s*: requests per second of server CPU.",
        "",
        "| route | workerd req/CPU-s | atoll JS | atoll Python | JS / workerd | JS / Python "
        "| workerd req/s | atoll JS | atoll Python |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for route in ROUTES:
        w, j, p = (med(n, route, 0) for n in SERVERS)
        rw, rj, rp = (med(n, route, 1) for n in SERVERS)
        lines.append(
            f"| `{route}` | {w:,.0f} | {j:,.0f} | {p:,.0f} | {j / w:.2f}x | {j / p:.2f}x "
            f"| {rw:,.0f} | {rj:,.0f} | {rp:,.0f} |"
        )
    lines += [
        "",
        f"A JS worker's cold load, in process (`load_worker` to its first response, bundle "
        f"cache warm, a new isolate per load; median of 10): {data['cold_ms']:.1f} ms.",
        "",
    ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    rounds, seconds = (1, 2.0) if args.quick else (3, 8.0)
    wrk = wrk_path()
    if wrk is None:
        raise SystemExit("wrk not found (Debian: apt-get install wrk)")
    print("\n".join(section(run(wrk, rounds, seconds))))


if __name__ == "__main__":
    main()
