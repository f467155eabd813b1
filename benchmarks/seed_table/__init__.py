"""The seed article's table, redone for a Python host (``python -m benchmarks.seed_table``).

Four kernels (SHA-256 of 1 MiB, a bilinear RGBA resize 4K → HD, naive fib, a
JSON parse of 2 MiB counting values), each computed by: pure Python, CPython's
C builtins where they exist, the Rust source built natively, the same source as
wasm called through atoll's binding (copy and compute timed apart), and, when
node is present, JavaScript and the same .wasm in V8. Every column's output is
checked against every other's. Then each kernel as a request to a running
server (atoll, and workerd when it can be installed).

Rounds interleave the columns (round r rotates their order); the table shows
the median over rounds and the spread (min to max).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.seed_table.cases import Case, make_cases, write_inputs
from benchmarks.seed_table.columns import COLUMNS, Measurement, make_runners
from benchmarks.seed_table.requests import run_requests
from benchmarks.servers import ROOT

__all__ = ["COLUMNS", "SeedResult", "run"]


@dataclass
class SeedResult:
    quick: bool
    cases: list[Case]
    rounds: int
    #: case key -> column key -> one measurement per round
    samples: dict[str, dict[str, list[Measurement]]] = field(default_factory=dict)
    #: case key -> server -> request wall times (ms)
    requests: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def median(self, case: str, column: str, what: str = "ms") -> float | None:
        values = [getattr(m, what) for m in self.samples.get(case, {}).get(column, [])]
        values = [v for v in values if v is not None]
        return statistics.median(values) if values else None

    def spread(self, case: str, column: str) -> tuple[float, float] | None:
        values = [m.ms for m in self.samples.get(case, {}).get(column, [])]
        return (min(values), max(values)) if values else None

    def to_json(self) -> dict[str, Any]:
        return {
            "quick": self.quick,
            "rounds": self.rounds,
            "cases": [{"key": c.key, "label": c.label, "kernel": c.kernel} for c in self.cases],
            "samples": {
                k: {col: [m.__dict__ for m in ms] for col, ms in cols.items()}
                for k, cols in self.samples.items()
            },
            "requests": self.requests,
            "notes": self.notes,
            "mismatches": self.mismatches,
            "seconds": self.seconds,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SeedResult:
        """Back from :meth:`to_json` (inputs are not kept: enough to render the tables)."""
        return cls(
            quick=data["quick"],
            cases=[Case(c["key"], c["label"], c.get("kernel", "")) for c in data["cases"]],
            rounds=data["rounds"],
            samples={
                k: {col: [Measurement(**m) for m in ms] for col, ms in cols.items()}
                for k, cols in data["samples"].items()
            },
            requests=data["requests"],
            notes=data["notes"],
            mismatches=data["mismatches"],
            seconds=data["seconds"],
        )


def run(
    quick: bool,
    rounds: int | None = None,
    request_rounds: int | None = None,
    with_requests: bool = True,
    cases: list[Case] | None = None,
    log: Any = print,
) -> SeedResult:
    """Run every column on every case, ``rounds`` times, interleaved; check outputs agree."""
    started = time.monotonic()
    cases = cases if cases is not None else make_cases(quick)
    rounds = rounds or (1 if quick else 5)
    result = SeedResult(quick=quick, cases=cases, rounds=rounds)
    with tempfile.TemporaryDirectory(prefix="bench-seed-") as tmp:
        inputs = Path(tmp) / "inputs"
        write_inputs(cases, inputs)
        runners, notes = make_runners(inputs, ROOT / "build" / "bench")
        result.notes += notes
        names = list(runners)
        for rnd in range(rounds):
            order = names[rnd % len(names) :] + names[: rnd % len(names)]
            for case in cases:
                for name in order:
                    if name in case.skip:
                        continue
                    for column, measurement in runners[name](case).items():
                        result.samples.setdefault(case.key, {}).setdefault(column, []).append(
                            measurement
                        )
            log(f"  seed table round {rnd + 1}/{rounds} done")
    for case in cases:
        seen = {
            (column, m.result)
            for column, ms in result.samples.get(case.key, {}).items()
            for m in ms
        }
        if len({answer for _, answer in seen}) > 1:
            result.mismatches.append(f"{case.key}: {sorted(seen)}")
    if with_requests:
        times, answers, notes = run_requests(cases, request_rounds or (1 if quick else 5), log)
        result.requests = times
        result.notes += notes
        for case in cases:
            expected = {m.result for ms in result.samples.get(case.key, {}).values() for m in ms}
            for server, answer in answers[case.key].items():
                if answer not in expected:
                    result.mismatches.append(f"{case.key}: {server} request gave {answer[:80]}")
    result.seconds = time.monotonic() - started
    return result
