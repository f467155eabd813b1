"""Tail: filters, sampling, bounded streams that drop and say so (atoll.control.tail)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Sequence
from typing import Any

import pytest

from atoll.api import Response
from atoll.bindings.outbound import SubrequestRecord
from atoll.control.channel import EVENT_QUEUE, ProcessChannel
from atoll.control.tail import QUEUE_EVENTS, TailFilter, TailHub, TailSource, event
from atoll.errors import ControlError, GuestTrapError
from atoll.runtime.outcome import Outcome
from atoll.worker import Result


def item(
    status: int = 200, outcome: str = "ok", worker: str = "w", rate: float = 1.0
) -> dict[str, Any]:
    return {"worker": worker, "status": status, "outcome": outcome, "sampled": rate}


@pytest.mark.parametrize(
    ("statuses", "outcomes", "status", "outcome", "expected"),
    [
        ((), (), 200, "ok", True),
        (("5xx",), (), 503, "exceeded_cpu", True),
        (("5xx",), (), 404, "ok", False),
        (("404", "2XX"), (), 201, "ok", True),
        ((), ("exceeded_cpu",), 503, "exceeded_cpu", True),
        ((), ("exceeded_cpu",), 500, "exception", False),
    ],
)
def test_filter_matches(
    statuses: tuple[str, ...], outcomes: tuple[str, ...], status: int, outcome: str, expected: bool
) -> None:
    f = TailFilter("w", statuses, outcomes)
    assert f.matches("w", status, outcome) is expected
    assert not f.matches("other", status, outcome)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"statuses": ("5x",)}, "status filter"),
        ({"outcomes": ("crashed",)}, "outcome filter"),
        ({"sample": 0.0}, "sample rate"),
        ({"sample": 1.5}, "sample rate"),
    ],
)
def test_bad_filters_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ControlError, match=message):
        TailFilter("w", **kwargs)


def test_source_wants_nothing_until_a_stream_opens() -> None:
    source = TailSource()
    assert source.wants("w", 200, "ok") == 0.0
    source.set_filters([TailFilter("w", ("5xx",)), TailFilter("w", sample=0.5)])
    assert source.wants("w", 500, "exception") == 1.0
    rates = {source.wants("w", 200, "ok") for _ in range(200)}
    assert rates == {0.0, 0.5}


def test_event_carries_logs_exception_and_frames() -> None:
    error = GuestTrapError("wasm trap: unreachable", frames=["m!inner", "m!outer"])
    result = Result(Response("x", status=500), Outcome.EXCEPTION, "id1", 1.5, ["a", "b"], error)
    data = event(
        worker="w", version="v", method="GET", url="http://w/", result=result,
        wall_ms=3.0, process=1, rate=1.0,
    )  # fmt: skip
    assert (data["status"], data["outcome"], data["logs"]) == (500, "exception", ["a", "b"])
    assert data["exception"] == {
        "type": "GuestTrapError",
        "message": "wasm trap: unreachable",
        "frames": ["m!inner", "m!outer"],
    }
    python_error = Result(Response("x", status=500), Outcome.EXCEPTION, "id2", error=KeyError("k"))
    traceback = event(
        worker="w", version="v", method="GET", url="http://w/", result=python_error,
        wall_ms=1.0, process=0, rate=1.0,
    )["exception"]["traceback"]  # fmt: skip
    assert "KeyError: 'k'" in traceback


def test_event_lists_subrequests_without_query() -> None:
    records = [
        SubrequestRecord("GET", "https://api.example/v1", 200, 12.3456, "ok"),
        SubrequestRecord("POST", "http://127.0.0.1/x", None, 0.1, "refused", "loopback"),
    ]
    result = Result(Response("x"), Outcome.OK, "id3", subrequests=records)
    data = event(
        worker="w", version="v", method="GET", url="http://w/", result=result,
        wall_ms=1.0, process=0, rate=1.0,
    )  # fmt: skip
    assert data["subrequests"] == [
        {"method": "GET", "url": "https://api.example/v1", "status": 200, "ms": 12.346,
         "outcome": "ok"},
        {"method": "POST", "url": "http://127.0.0.1/x", "status": None, "ms": 0.1,
         "outcome": "refused", "reason": "loopback"},
    ]  # fmt: skip


async def test_hub_routes_events_and_tells_processes_about_filters() -> None:
    changes: list[Sequence[TailFilter]] = []
    hub = TailHub(changes.append)
    errors = hub.subscribe(TailFilter("w", ("5xx",)))
    everything = hub.subscribe(TailFilter("w"))
    assert len(changes) == 2
    assert len(changes[-1]) == 2
    hub.publish(item(200))
    hub.publish(item(500, "exception"))
    hub.publish(item(500, "exception", worker="other"))
    assert errors.queue.qsize() == 1
    assert everything.queue.qsize() == 2
    hub.unsubscribe(errors)
    assert changes[-1] == [everything.filter]


async def test_a_full_stream_drops_and_then_says_how_many() -> None:
    hub = TailHub(lambda _: None)
    sub = hub.subscribe(TailFilter("w"))
    for _ in range(QUEUE_EVENTS + 25):
        hub.publish(item())
    assert sub.queue.qsize() == QUEUE_EVENTS
    assert sub.dropped == 25
    for _ in range(10):
        sub.queue.get_nowait()
    hub.publish(item())
    drained = [sub.queue.get_nowait() for _ in range(sub.queue.qsize())]
    assert {"dropped": 25} in drained
    assert sub.dropped == 0
    hub.lost("w", 7)  # dropped in a serving process
    assert sub.dropped == 7


async def test_hub_samples_per_stream() -> None:
    hub = TailHub(lambda _: None)
    half = hub.subscribe(TailFilter("w", sample=0.5))
    for _ in range(400):
        hub.publish(item(rate=1.0))
    assert 100 < half.queue.qsize() < 300


def test_process_channel_never_blocks_a_request_and_counts_drops() -> None:
    ours, theirs = socket.socketpair()
    closed = threading.Event()
    channel = ProcessChannel(theirs, {}, on_closed=closed.set)
    # Not started: nothing drains the queue, as when the supervisor reads too slowly.
    for _ in range(EVENT_QUEUE + 5):
        channel.send_event("w", {"n": 1})
    assert channel.dropped_total == 5
    ours.close()
    theirs.close()
