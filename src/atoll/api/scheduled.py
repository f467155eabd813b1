"""``ScheduledEvent``: the ``event`` argument of ``scheduled(event, env, ctx)`` (cron triggers)."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["ScheduledEvent"]


class ScheduledEvent:
    """One run of a cron trigger, as Workers' ``ScheduledController``.

    Made by the scheduler once per scheduled time (or per ``/__scheduled``
    call in ``atoll dev --test-scheduled``).
    """

    __slots__ = ("cron", "scheduled_time", "type")

    def __init__(self, cron: str, scheduled_time: datetime) -> None:
        #: The cron expression of the trigger, as written in ``[triggers] crons``.
        self.cron = cron
        #: When the run was scheduled (UTC, timezone-aware), not when it started.
        self.scheduled_time = scheduled_time.astimezone(UTC)
        self.type = "scheduled"

    @property
    def scheduled_time_ms(self) -> int:
        """``scheduled_time`` in milliseconds since the epoch (Workers' ``scheduledTime``)."""
        return int(self.scheduled_time.timestamp() * 1000)

    def no_retry(self) -> None:
        """Workers' ``noRetry()``: atoll never retries a failed run, so it changes nothing."""

    def __repr__(self) -> str:
        return f"<ScheduledEvent {self.cron!r} at {self.scheduled_time.isoformat()}>"
