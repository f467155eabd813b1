"""``python -m benchmarks.seed_table [--quick]``: the seed's table; prints it as markdown."""

from __future__ import annotations

import argparse

from benchmarks.report import seed_section
from benchmarks.seed_table import run


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.seed_table", description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="one round, smaller resize, no fib(45)"
    )
    parser.add_argument(
        "--no-requests", action="store_true", help="skip the kernels as HTTP requests"
    )
    args = parser.parse_args()
    result = run(args.quick, with_requests=not args.no_requests)
    print("\n".join(seed_section(result)))
    return 1 if result.mismatches else 0


if __name__ == "__main__":
    raise SystemExit(main())
