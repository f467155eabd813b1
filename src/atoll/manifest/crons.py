"""``[triggers] crons``: cron expressions, checked at load and turned into times (UTC).

Five fields (minute, hour, day of month, month, day of week), as Workers
takes them; names (``mon``, ``jan``), ranges, steps, lists, ``L`` and ``#``
as croniter reads them. Times are UTC, as on Workers.
"""

from __future__ import annotations

from datetime import UTC, datetime

from atoll.errors import ConfigError

__all__ = ["check_crons", "next_time"]


def check_crons(crons: tuple[str, ...], path: str) -> None:
    """Raise :class:`ConfigError` naming the first expression that is not a valid cron.

    Runs once per worker load.
    """
    if not crons:
        return
    from croniter import croniter  # with dateutil, imported only by workers that have crons

    for index, expr in enumerate(crons):
        fields = expr.split()
        if len(fields) != 5 or not croniter.is_valid(expr):
            raise ConfigError(
                f"key 'triggers.crons[{index}]': {expr!r} is not a cron expression of "
                "five fields (minute hour day-of-month month day-of-week)",
                path=path,
                hint='for example "*/5 * * * *" (every five minutes, UTC) or "0 3 * * mon"',
            )


def next_time(expr: str, after: float) -> float:
    """The first time (epoch seconds) strictly after ``after`` that ``expr`` names, in UTC."""
    from croniter import croniter

    start = datetime.fromtimestamp(after, UTC)
    following: datetime = croniter(expr, start).get_next(datetime)
    return following.timestamp()
