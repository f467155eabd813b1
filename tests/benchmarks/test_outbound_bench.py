"""benchmarks/outbound.py runs and its set-ups answer (no timings checked)."""

from __future__ import annotations

from benchmarks.outbound import measure, table


async def test_every_set_up_runs() -> None:
    results = await measure(1, 0.01)
    assert len(results) == 5
    assert all(rate > 0 and cpu > 0 for rate, cpu in results.values())
    assert "service-binding call adds" in table(results)
