"""``[triggers] crons``: five-field cron expressions checked at load, next times in UTC."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from atoll.errors import ConfigError
from atoll.manifest.crons import check_crons, next_time
from atoll.worker import Runtime, load_worker
from tests.support import WorkerFactory


def _at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("expr", "after", "expected"),
    [
        ("*/5 * * * *", "2026-12-06T01:02:03", "2026-12-06T01:05:00"),
        ("*/5 * * * *", "2026-12-06T01:05:00", "2026-12-06T01:10:00"),  # strictly after
        ("0 3 * * *", "2026-12-06T04:00:00", "2026-12-07T03:00:00"),
        ("0 3 * * mon", "2026-12-06T00:00:00", "2026-12-07T03:00:00"),  # 2026-12-07 is a Monday
        ("30 0 1 jan *", "2026-12-06T00:00:00", "2027-01-01T00:30:00"),
    ],
)
def test_next_time_is_utc(expr: str, after: str, expected: str) -> None:
    assert next_time(expr, _at(after)) == _at(expected)


@pytest.mark.parametrize("bad", ["* * * *", "*/5 * * * * *", "61 * * * *", "every minute", ""])
def test_bad_crons_name_the_key(bad: str) -> None:
    with pytest.raises(ConfigError, match=r"triggers\.crons\[1\]") as info:
        check_crons(("* * * * *", bad), "atoll.toml")
    assert "five fields" in str(info.value)


def test_a_worker_with_a_bad_cron_does_not_load(
    make_worker: WorkerFactory, runtime: Runtime, tmp_path: Path
) -> None:
    folder = make_worker(
        "async def fetch(request, env, ctx): ...\n", extra='[triggers]\ncrons = ["99 * * * *"]'
    )
    with pytest.raises(ConfigError, match="99 \\* \\* \\* \\*"):
        load_worker(folder, runtime=runtime)
