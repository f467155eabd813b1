"""ExecutionContext (src/atoll/api/context.py)."""

from __future__ import annotations

import asyncio

import pytest

from atoll.api import ExecutionContext


def test_log_joins_its_parts_like_print() -> None:
    lines: list[str] = []
    ctx = ExecutionContext("rid", lines.append)
    ctx.log("a", 1, None, {"k": 2})
    ctx.log()
    assert lines == ["a 1 None {'k': 2}", ""]
    assert ctx.request_id == "rid"


async def test_wait_until_work_is_handed_over_once_and_not_run_before() -> None:
    ran: list[str] = []

    async def later(name: str) -> None:
        ran.append(name)

    ctx = ExecutionContext("rid", lambda line: None)
    ctx.wait_until(later("a"))
    ctx.wait_until(asyncio.ensure_future(later("b")))  # any awaitable
    pending = ctx.take_pending()
    assert len(pending) == 2
    assert ctx.take_pending() == []
    await asyncio.gather(*pending)
    assert sorted(ran) == ["a", "b"]


def test_wait_until_refuses_what_is_not_awaitable() -> None:
    ctx = ExecutionContext("rid", lambda line: None)

    async def job() -> None:
        pass

    with pytest.raises(TypeError, match="got function"):
        ctx.wait_until(job)  # type: ignore[arg-type]  # the function, not a call of it
    assert ctx.take_pending() == []
