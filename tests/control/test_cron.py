"""Cron triggers: ``scheduled(event, env, ctx)`` runs, the scheduler's ticks and claims.

Ticks are driven with explicit times (``tick_due(now)``), not by waiting.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from atoll.api import ScheduledEvent
from atoll.control.cron import MemoryClaims, RunHook, Scheduler, SqliteClaims
from atoll.runtime.outcome import Outcome
from atoll.worker import Result, Runtime, Worker, load_worker, run_pending
from tests.support import WorkerFactory

SCHEDULED = """
from atoll import Response

async def fetch(request, env, ctx):
    return Response("fetch")

async def later(cron):
    env_log.append(("later", cron))

env_log = []

async def scheduled(event, env, ctx):
    ctx.log(f"{event.type} {event.cron} {event.scheduled_time.isoformat()} {event.scheduled_time_ms}")
    ctx.wait_until(later(event.cron))
    if event.cron == "13 13 * * *":
        raise RuntimeError("the job failed")
"""

T0 = datetime(2026, 12, 6, 1, 0, 0, tzinfo=UTC).timestamp()


def _worker(make_worker: WorkerFactory, runtime: Runtime, crons: str) -> Worker:
    folder = make_worker(SCHEDULED, extra=f"[triggers]\ncrons = [{crons}]")
    return load_worker(folder, runtime=runtime)


async def test_run_scheduled_gives_the_event_and_runs_wait_until(
    make_worker: WorkerFactory, runtime: Runtime
) -> None:
    worker = _worker(make_worker, runtime, '"*/5 * * * *"')
    assert worker.scheduled is not None
    when = datetime(2026, 12, 6, 1, 5, tzinfo=UTC)
    runs: list[Result] = []
    scheduler = Scheduler(dict, MemoryClaims(), on_run=(lambda w, e, r, ms: runs.append(r),))
    result = await scheduler.run(worker, ScheduledEvent("*/5 * * * *", when))
    assert result.outcome == Outcome.OK
    assert result.logs == [
        f"scheduled */5 * * * * {when.isoformat()} {int(when.timestamp() * 1000)}"
    ]
    assert runs == [result]
    module_log = getattr(worker.scheduled, "__globals__", {})["env_log"]
    assert module_log == [("later", "*/5 * * * *")]


async def test_a_failing_run_has_an_outcome_and_an_error(
    make_worker: WorkerFactory, runtime: Runtime
) -> None:
    worker = _worker(make_worker, runtime, '"13 13 * * *"')
    result = await worker.run_scheduled(
        ScheduledEvent("13 13 * * *", datetime.now(UTC)), "run0000000000001"
    )
    await run_pending(result)  # wait_until work given before the failure still runs
    assert result.outcome == Outcome.EXCEPTION
    assert result.response.status == 500
    assert isinstance(result.error, RuntimeError)


async def test_an_entry_without_scheduled_fails_its_runs(
    make_worker: WorkerFactory, runtime: Runtime
) -> None:
    folder = make_worker(
        "from atoll import Response\nasync def fetch(request, env, ctx):\n    return Response('')\n",
        extra='[triggers]\ncrons = ["* * * * *"]',
    )
    worker = load_worker(folder, runtime=runtime)
    assert worker.scheduled is None
    result = await worker.run_scheduled(ScheduledEvent("* * * * *", datetime.now(UTC)), "r")
    assert result.outcome == Outcome.EXCEPTION
    assert "defines no scheduled handler" in str(result.error)


async def _drain(scheduler: Scheduler) -> None:
    while scheduler.running:
        await asyncio.gather(*scheduler.running)


async def test_ticks_run_each_due_time_once_and_skip_missed_ones(
    make_worker: WorkerFactory, runtime: Runtime
) -> None:
    worker = _worker(make_worker, runtime, '"*/5 * * * *", "0 * * * *"')
    ran: list[tuple[str, datetime]] = []
    scheduler = Scheduler(
        lambda: {worker.name: worker},
        MemoryClaims(),
        on_run=(lambda w, e, r, ms: ran.append((e.cron, e.scheduled_time)),),
    )
    scheduler.tick_due(T0 + 1, run=False)  # started at 01:00:01: 01:00 is not run
    assert scheduler.tick_due(T0 + 290) == T0 + 300  # nothing due; the next is 01:05
    assert scheduler.tick_due(T0 + 200) == T0 + 230  # a tick at least every 30 s
    await _drain(scheduler)
    assert ran == []
    scheduler.tick_due(T0 + 300)
    scheduler.tick_due(T0 + 301)  # the same time is not run twice
    await _drain(scheduler)
    assert ran == [("*/5 * * * *", datetime(2026, 12, 6, 1, 5, tzinfo=UTC))]
    ran.clear()
    scheduler.tick_due(T0 + 3600 + 30)  # a late tick: 01:10 … 02:00 missed, 02:00 runs once
    await _drain(scheduler)
    assert sorted(ran) == [
        ("*/5 * * * *", datetime(2026, 12, 6, 2, 0, tzinfo=UTC)),
        ("0 * * * *", datetime(2026, 12, 6, 2, 0, tzinfo=UTC)),
    ]


async def test_a_deploy_keeps_the_cursor(make_worker: WorkerFactory, runtime: Runtime) -> None:
    old = _worker(make_worker, runtime, '"*/5 * * * *"')
    new = _worker(make_worker, runtime, '"*/5 * * * *"')
    current = {"test-worker": old}
    ran: list[Worker] = []
    scheduler = Scheduler(
        lambda: current, MemoryClaims(), on_run=(lambda w, e, r, ms: ran.append(w),)
    )
    scheduler.tick_due(T0 + 290, run=False)
    current["test-worker"] = new  # deployed between two ticks
    scheduler.tick_due(T0 + 310)
    await _drain(scheduler)
    assert ran == [new]  # 01:05 ran, on the new version


async def test_processes_sharing_claims_run_each_time_once(
    make_worker: WorkerFactory, runtime: Runtime, tmp_path: Path
) -> None:
    """Two schedulers (two serving processes) over one claims file: one run per time."""
    worker = _worker(make_worker, runtime, '"*/5 * * * *"')
    ran: list[str] = []

    def record(process: int) -> RunHook:
        return lambda w, e, r, ms: ran.append(f"p{process}")

    schedulers = [
        Scheduler(
            lambda: {worker.name: worker},
            SqliteClaims(tmp_path / "cron.sqlite"),
            on_run=(record(i),),
        )
        for i in range(3)
    ]
    for scheduler in schedulers:
        scheduler.tick_due(T0, run=False)
    for step in (300, 600, 900):
        for scheduler in schedulers:
            scheduler.tick_due(T0 + step + 1)
        for scheduler in schedulers:
            await _drain(scheduler)
    assert len(ran) == 3


def test_sqlite_claims_are_won_once(tmp_path: Path) -> None:
    one, two = SqliteClaims(tmp_path / "c.sqlite"), SqliteClaims(tmp_path / "c.sqlite")
    assert one.claim("w", "* * * * *", T0)
    assert not two.claim("w", "* * * * *", T0)
    assert two.claim("w", "* * * * *", T0 + 60)
    assert two.claim("other", "* * * * *", T0)
