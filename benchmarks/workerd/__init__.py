"""atoll and workerd side by side (``python -m benchmarks.workerd``): throughput, CPU,
latency, memory and cold start on the same routes and .wasm, then the same hostile
guests against both. See :mod:`benchmarks.workerd.compare` and
:mod:`benchmarks.workerd.limits`; workerd itself is pinned in ``package.json`` here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

__all__ = ["Plan", "plan"]


@dataclass(frozen=True)
class Plan:
    """How much to measure: ``--quick`` is a check that everything runs, not a measurement."""

    rounds: int
    seconds: float
    processes: int
    extra_configs: bool
    cold_start_times: int
    limit_wait: float


def plan(quick: bool) -> Plan:
    processes = max(2, os.cpu_count() or 2)
    if quick:
        return Plan(
            rounds=1,
            seconds=1,
            processes=processes,
            extra_configs=False,
            cold_start_times=3,
            limit_wait=2.0,
        )
    return Plan(
        rounds=5,
        seconds=5,
        processes=processes,
        extra_configs=True,
        cold_start_times=10,
        limit_wait=5.0,
    )
