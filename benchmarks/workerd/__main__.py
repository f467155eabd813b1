"""``python -m benchmarks.workerd [--quick]``: atoll vs workerd, then limits; prints markdown."""

from __future__ import annotations

import argparse
import sys

from benchmarks.report import compare_section, limits_section
from benchmarks.servers import ensure_workerd
from benchmarks.workerd import plan
from benchmarks.workerd.compare import run_compare
from benchmarks.workerd.limits import run_limits
from benchmarks.workerd.load import wrk_path


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.workerd", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="1 round of 1 s per route: a check")
    args = parser.parse_args()
    wrk = wrk_path()
    if wrk is None:
        print("wrk not found (Debian: apt-get install wrk)", file=sys.stderr)
        return 1
    ensure_workerd()
    p = plan(args.quick)
    cmp = run_compare(
        wrk,
        rounds=p.rounds,
        seconds=p.seconds,
        processes=p.processes,
        extra_configs=p.extra_configs,
        cold_start_times=p.cold_start_times,
    )
    rows = run_limits(p.limit_wait)
    print("\n".join(compare_section(cmp) + limits_section(rows, p.limit_wait)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
