"""Request metrics in Prometheus' text format.

Each serving process counts its own requests in a :class:`Metrics` (one
:meth:`~Metrics.observe` per request, under a lock: a few dict updates). The
admin API asks every process for a :meth:`~Metrics.snapshot`, adds them up
(:func:`merge`) and renders the sum (:func:`render`), so a scrape sees the
node as one. A process that restarts starts again from zero; Prometheus'
``rate()`` treats the drop as a counter reset.

Series::

    atoll_requests_total{worker,status,outcome}           counter
    atoll_request_duration_seconds{worker}                histogram (wall time)
    atoll_request_cpu_seconds{worker}                     histogram (wasm CPU time)
    atoll_subrequests_total{worker,outcome}               counter (ok, refused, error)
    atoll_tail_events_dropped_total                       counter
    atoll_worker_version_info{worker,version}             gauge, 1 per active version
    atoll_processes                                       gauge

``worker`` is ``""`` for requests no route matched.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["CPU_BUCKETS", "LATENCY_BUCKETS", "Metrics", "merge", "render"]

#: Upper bounds (seconds) of the wall-time histogram.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: Upper bounds (seconds) of the wasm CPU histogram (``cpu_ms`` is at most 30 s).
CPU_BUCKETS = (0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0)

Snapshot = dict[str, Any]


class _Histogram:
    __slots__ = ("bounds", "count", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * len(bounds)  # per bucket, not cumulative
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        for i, bound in enumerate(self.bounds):
            if value <= bound:
                self.counts[i] += 1
                break
        self.sum += value
        self.count += 1

    def to_json(self) -> dict[str, Any]:
        return {"counts": list(self.counts), "sum": self.sum, "count": self.count}


class Metrics:
    """One process's counters. :meth:`observe` is called once per request, from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, int, str], int] = {}
        self._latency: dict[str, _Histogram] = {}
        self._cpu: dict[str, _Histogram] = {}
        self._subrequests: dict[tuple[str, str], int] = {}
        self.tail_dropped = 0

    def observe_subrequests(self, worker: str, outcomes: Iterable[str]) -> None:
        """Count a request's subrequests by outcome (once per request that made any)."""
        with self._lock:
            for outcome in outcomes:
                key = (worker, outcome)
                self._subrequests[key] = self._subrequests.get(key, 0) + 1

    def observe(self, worker: str, status: int, outcome: str, wall_s: float, cpu_s: float) -> None:
        key = (worker, status, outcome)
        with self._lock:
            self._requests[key] = self._requests.get(key, 0) + 1
            latency = self._latency.get(worker)
            if latency is None:
                latency = self._latency[worker] = _Histogram(LATENCY_BUCKETS)
            latency.observe(wall_s)
            cpu = self._cpu.get(worker)
            if cpu is None:
                cpu = self._cpu[worker] = _Histogram(CPU_BUCKETS)
            cpu.observe(cpu_s)

    def snapshot(self) -> Snapshot:
        """The counters as plain JSON data (what a process sends to the supervisor)."""
        with self._lock:
            return {
                "requests": [[w, s, o, n] for (w, s, o), n in sorted(self._requests.items())],
                "latency": {w: h.to_json() for w, h in self._latency.items()},
                "cpu": {w: h.to_json() for w, h in self._cpu.items()},
                "subrequests": [[w, o, n] for (w, o), n in sorted(self._subrequests.items())],
                "tail_dropped": self.tail_dropped,
            }


def merge(snapshots: Iterable[Snapshot]) -> Snapshot:
    """The sum of several processes' snapshots."""
    requests: dict[tuple[str, int, str], int] = {}
    histograms: dict[str, dict[str, dict[str, Any]]] = {"latency": {}, "cpu": {}}
    subrequests: dict[tuple[str, str], int] = {}
    dropped = 0
    for snap in snapshots:
        for worker, outcome, count in snap.get("subrequests", ()):
            subrequests[(worker, outcome)] = subrequests.get((worker, outcome), 0) + count
        for worker, status, outcome, count in snap["requests"]:
            key = (worker, status, outcome)
            requests[key] = requests.get(key, 0) + count
        for kind, into in histograms.items():
            for worker, hist in snap[kind].items():
                total = into.setdefault(
                    worker, {"counts": [0] * len(hist["counts"]), "sum": 0.0, "count": 0}
                )
                total["counts"] = [
                    a + b for a, b in zip(total["counts"], hist["counts"], strict=True)
                ]
                total["sum"] += hist["sum"]
                total["count"] += hist["count"]
        dropped += snap.get("tail_dropped", 0)
    return {
        "requests": [[w, s, o, n] for (w, s, o), n in sorted(requests.items())],
        **histograms,
        "subrequests": [[w, o, n] for (w, o), n in sorted(subrequests.items())],
        "tail_dropped": dropped,
    }


def render(snapshot: Snapshot, *, versions: Mapping[str, str], processes: int) -> str:
    """Prometheus text exposition (format 0.0.4) of a merged snapshot."""
    out: list[str] = []
    out += [
        "# HELP atoll_requests_total Requests served, by worker, HTTP status and outcome.",
        "# TYPE atoll_requests_total counter",
    ]
    for worker, status, outcome, count in snapshot["requests"]:
        labels = _labels(worker=worker, status=str(status), outcome=outcome)
        out.append(f"atoll_requests_total{labels} {count}")
    for kind, name, bounds, help_text in (
        ("latency", "atoll_request_duration_seconds", LATENCY_BUCKETS, "Wall time per request."),
        ("cpu", "atoll_request_cpu_seconds", CPU_BUCKETS, "Wasm CPU time per request."),
    ):
        out += [f"# HELP {name} {help_text}", f"# TYPE {name} histogram"]
        for worker, hist in sorted(snapshot[kind].items()):
            running = 0
            for bound, count in zip(bounds, hist["counts"], strict=True):
                running += count
                out.append(f"{name}_bucket{_labels(worker=worker, le=_num(bound))} {running}")
            out.append(f"{name}_bucket{_labels(worker=worker, le='+Inf')} {hist['count']}")
            out.append(f"{name}_sum{_labels(worker=worker)} {_num(hist['sum'])}")
            out.append(f"{name}_count{_labels(worker=worker)} {hist['count']}")
    out += [
        "# HELP atoll_subrequests_total Subrequests (fetch()) made by workers, by outcome.",
        "# TYPE atoll_subrequests_total counter",
    ]
    for worker, outcome, count in snapshot.get("subrequests", ()):
        out.append(f"atoll_subrequests_total{_labels(worker=worker, outcome=outcome)} {count}")
    out += [
        "# HELP atoll_tail_events_dropped_total Tail events dropped because a stream was full.",
        "# TYPE atoll_tail_events_dropped_total counter",
        f"atoll_tail_events_dropped_total {snapshot.get('tail_dropped', 0)}",
        "# HELP atoll_worker_version_info The version each worker serves (value 1).",
        "# TYPE atoll_worker_version_info gauge",
    ]
    for worker, version in sorted(versions.items()):
        out.append(f"atoll_worker_version_info{_labels(worker=worker, version=version)} 1")
    out += [
        "# HELP atoll_processes Serving processes answering this scrape.",
        "# TYPE atoll_processes gauge",
        f"atoll_processes {processes}",
    ]
    return "\n".join(out) + "\n"


def _labels(**labels: str) -> str:
    def escape(value: str) -> str:
        return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")

    return "{" + ",".join(f'{k}="{escape(v)}"' for k, v in labels.items()) + "}"


def _num(value: float) -> str:
    return repr(float(value)) if value != int(value) else f"{value:.1f}"
