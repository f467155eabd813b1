"""``atoll tail`` prints a request's subrequests under it, one ``fetch:`` line each."""

from __future__ import annotations

from atoll.cli.tail import _pretty


def test_subrequests_are_printed() -> None:
    event = {
        "time": 0.0, "method": "GET", "url": "http://w/", "status": 200, "outcome": "ok",
        "wall_ms": 3.0, "cpu_ms": 0.5, "version": "abc", "process": 0, "request_id": "r1",
        "logs": ["subrequest refused: fetch http://10.0.0.1/: a private address"],
        "subrequests": [
            {"method": "GET", "url": "https://api.example/v1", "status": 200, "ms": 41.25,
             "outcome": "ok"},
            {"method": "GET", "url": "http://10.0.0.1/", "status": None, "ms": 0.1,
             "outcome": "refused", "reason": "private"},
        ],
        "exception": None,
    }  # fmt: skip
    lines = _pretty(event).splitlines()
    assert lines[2:] == [
        "  fetch: GET https://api.example/v1 200 ok 41.2ms",
        "  fetch: GET http://10.0.0.1/ private refused 0.1ms",
    ]
