"""``python -m benchmarks [--quick]``: every side-by-side benchmark, then docs/benchmarks.md.

Runs the seed's table (:mod:`benchmarks.seed_table`), atoll vs workerd and the
limits (:mod:`benchmarks.workerd`), writes ``docs/benchmarks.md`` (its generated
block) and the charts in ``docs/benchmarks/`` (skipped, with a note, without
matplotlib), and keeps the raw results in ``build/benchmarks/results.json``
(``--render`` renders the page from them again, measuring nothing).
``--quick`` (under a minute) checks that everything runs and agrees; its numbers
are not measurements, so its page and results go to ``build/benchmarks/quick.md``
and ``quick.json`` instead.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks import js_routes, seed_table
from benchmarks.report import (
    DOC,
    Machine,
    compare_section,
    limits_section,
    machine_section,
    seed_section,
    write_charts,
    write_page,
)
from benchmarks.seed_table import SeedResult
from benchmarks.servers import ROOT, Unavailable, ensure_workerd
from benchmarks.workerd import plan
from benchmarks.workerd.compare import CompareResult, run_compare
from benchmarks.workerd.limits import LimitRow, run_limits
from benchmarks.workerd.load import wrk_path

COMMANDS = [
    "python -m benchmarks            # everything below, then this page and its charts",
    "python -m benchmarks.seed_table  # the seed's table (+ --quick)",
    "python -m benchmarks.workerd     # atoll vs workerd, cold start, limits (+ --quick)",
    "python -m benchmarks.js_routes   # JS workers: workerd, atoll JS, atoll Python (+ --quick)",
    "# what they run:",
    "atoll dev examples/bench --port P --log-level warning --no-build        # ATOLL_KV=memory",
    "benchmarks/workerd/node_modules/@cloudflare/workerd-linux-64/bin/workerd serve config.capnp",
    "wrk -t1 -c32 -dSs --latency http://127.0.0.1:P/ROUTE                     # -c16 each for 2 processes",
    "node benchmarks/seed_table/kernels.mjs SPEC; build/bench/bench_native KERNEL ARGS",
]
#: The raw results of the last run (``--render`` reads them back).
RESULTS = ROOT / "build" / "benchmarks" / "results.json"
#: Where a ``--quick`` run writes its page (and charts beside it, in benchmarks/) and results.
QUICK_PAGE = ROOT / "build" / "benchmarks" / "quick.md"
QUICK_RESULTS = ROOT / "build" / "benchmarks" / "quick.json"


def measure(quick: bool) -> dict[str, Any] | None:
    """Run everything; the raw results as JSON-able data (None if a tool is missing)."""
    started = time.monotonic()
    machine = Machine.describe()
    wrk = wrk_path()
    if wrk is None:
        print("wrk not found (Debian: apt-get install wrk)", file=sys.stderr)
        return None
    try:
        ensure_workerd()
    except Unavailable as exc:
        print(exc, file=sys.stderr)
        return None
    print("seed table…", flush=True)
    seed = seed_table.run(quick)
    p = plan(quick)
    print("atoll vs workerd…", flush=True)
    cmp = run_compare(
        wrk,
        rounds=p.rounds,
        seconds=p.seconds,
        processes=p.processes,
        extra_configs=p.extra_configs,
        cold_start_times=p.cold_start_times,
    )
    print("JavaScript workers…", flush=True)
    js = js_routes.run(wrk, *((1, 2.0) if quick else (3, 8.0)))
    print("limits…", flush=True)
    rows = run_limits(p.limit_wait)
    machine.load_after = os.getloadavg()
    return {
        "quick": quick,
        "machine": machine.to_json(),
        "seed": seed.to_json(),
        "compare": cmp.to_json(),
        "js": js,
        "limits": [r.to_json() for r in rows],
        "limit_wait": p.limit_wait,
        "seconds": time.monotonic() - started,
    }


def render(data: dict[str, Any], write: bool) -> int:
    """Write (or print) the page and the charts from raw results."""
    machine = Machine.from_json(data["machine"])
    seed = SeedResult.from_json(data["seed"])
    cmp = CompareResult.from_json(data["compare"])
    rows = [LimitRow(**r) for r in data["limits"]]
    body = (
        machine_section(machine, COMMANDS, data["quick"])
        + seed_section(seed)
        + compare_section(cmp)
        + (js_routes.section(data["js"]) if "js" in data else [])
        + limits_section(rows, data["limit_wait"])
        + [f"Whole run: {data['seconds']:.0f} s.", ""]
    )
    if not write:
        print("\n".join(body))
        return 0
    # A quick run checks; it does not measure: its page goes to build/, not over docs/.
    page = QUICK_PAGE if data["quick"] else DOC
    page.parent.mkdir(parents=True, exist_ok=True)
    print(f"wrote {write_page(body, page).relative_to(ROOT)}")
    charts = write_charts(cmp, seed, page.parent / "benchmarks")
    if isinstance(charts, str):
        print(charts)
    else:
        print("wrote " + ", ".join(str(c.relative_to(ROOT)) for c in charts))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="a check in under a minute, not a measurement"
    )
    parser.add_argument(
        "--no-write", action="store_true", help="print the page instead of writing docs/"
    )
    parser.add_argument(
        "--render",
        metavar="JSON",
        type=Path,
        help="measure nothing: render the page from a results file of an earlier run",
    )
    args = parser.parse_args()
    if args.render is not None:
        return render(json.loads(args.render.read_text()), write=not args.no_write)
    data = measure(args.quick)
    if data is None:
        return 1
    results = QUICK_RESULTS if args.quick else RESULTS
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(json.dumps(data, indent=1))
    render(data, write=not args.no_write)
    print(f"raw results in {results.relative_to(ROOT)}; {data['seconds']:.0f} s")
    return 1 if data["seed"]["mismatches"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
