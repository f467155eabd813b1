"""Prometheus metrics: counting, merging processes, the text format (atoll.control.metrics)."""

from __future__ import annotations

import threading

from atoll.control.metrics import LATENCY_BUCKETS, Metrics, merge, render


def test_observe_counts_by_worker_status_and_outcome() -> None:
    metrics = Metrics()
    metrics.observe("w", 200, "ok", 0.002, 0.0003)
    metrics.observe("w", 200, "ok", 0.2, 0.01)
    metrics.observe("w", 503, "exceeded_cpu", 0.06, 0.05)
    snap = metrics.snapshot()
    assert snap["requests"] == [["w", 200, "ok", 2], ["w", 503, "exceeded_cpu", 1]]
    latency = snap["latency"]["w"]
    assert latency["count"] == 3
    assert sum(latency["counts"]) == 3
    assert latency["counts"][LATENCY_BUCKETS.index(0.0025)] == 1


def test_merge_adds_processes_up() -> None:
    one, two = Metrics(), Metrics()
    one.observe("w", 200, "ok", 0.001, 0.0)
    two.observe("w", 200, "ok", 0.001, 0.0)
    two.observe("", 404, "refused", 0.0001, 0.0)
    two.tail_dropped = 3
    merged = merge([one.snapshot(), two.snapshot()])
    assert merged["requests"] == [["", 404, "refused", 1], ["w", 200, "ok", 2]]
    assert merged["latency"]["w"]["count"] == 2
    assert merged["tail_dropped"] == 3


def test_render_is_prometheus_text() -> None:
    metrics = Metrics()
    metrics.observe('we"ird', 200, "ok", 0.003, 0.0005)
    text = render(merge([metrics.snapshot()]), versions={"w": "abc"}, processes=2)
    lines = text.splitlines()
    assert "# TYPE atoll_requests_total counter" in lines
    assert 'atoll_requests_total{worker="we\\"ird",status="200",outcome="ok"} 1' in lines
    assert 'atoll_request_duration_seconds_bucket{worker="we\\"ird",le="0.0025"} 0' in lines
    assert 'atoll_request_duration_seconds_bucket{worker="we\\"ird",le="0.005"} 1' in lines
    assert 'atoll_request_duration_seconds_bucket{worker="we\\"ird",le="+Inf"} 1' in lines
    assert 'atoll_request_cpu_seconds_count{worker="we\\"ird"} 1' in lines
    assert 'atoll_worker_version_info{worker="w",version="abc"} 1' in lines
    assert "atoll_processes 2" in lines
    assert text.endswith("\n")


def test_observe_is_thread_safe() -> None:
    metrics = Metrics()

    def hammer() -> None:
        for _ in range(2000):
            metrics.observe("w", 200, "ok", 0.001, 0.0)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert metrics.snapshot()["requests"] == [["w", 200, "ok", 8000]]


def test_subrequests_are_counted_by_outcome_and_merged() -> None:
    one, two = Metrics(), Metrics()
    one.observe_subrequests("w", ["ok", "ok", "refused"])
    two.observe_subrequests("w", ["ok", "error"])
    text = render(merge([one.snapshot(), two.snapshot()]), versions={}, processes=2)
    assert 'atoll_subrequests_total{worker="w",outcome="ok"} 3' in text
    assert 'atoll_subrequests_total{worker="w",outcome="refused"} 1' in text
    assert 'atoll_subrequests_total{worker="w",outcome="error"} 1' in text
