# ruff: noqa: RUF001, RUF002 - the page is typeset: multiplication signs and en dashes
"""atoll and workerd serving the same routes on the same .wasm, measured in one run.

Configurations (each a set of server processes, driven together):

- ``workerd``: one workerd process (it runs its work on one thread: one core);
- ``atoll ×1``: one ``atoll dev`` process (several event loops in threads);
- ``atoll ×N``: one ``atoll dev`` process per core, each on its own port, each
  driven by its own wrk with its share of the connections (atoll has no
  SO_REUSEPORT yet, so one wrk cannot spread over them); requests are summed;
- ``workerd ×N`` (full runs only): the same for workerd, for a per-box view;
- ``atoll ×N, 1 loop`` (full runs only): ``atoll dev --loops 1`` per core. One event
  loop per process gives up the protection of the others (a long wasm call stalls
  the process) but no thread contends for the GIL when a ctypes call releases it.

Rounds interleave: round r runs every route on every configuration, in an order
rotated by r, so a noisy neighbour hits all alike. Ratios are taken inside a
round (atoll and workerd measured minutes apart at most), then the median over
rounds is reported with the spread.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.coldstart import launches
from benchmarks.servers import Server, atoll_server, bench_workerd, get
from benchmarks.workerd.load import finish, start_wrk

__all__ = ["ROUTES", "CompareResult", "Sample", "cold_starts", "run_compare"]

ROUTES = ("/hello", "/compute?n=1000", "/fresh?n=1000", "/fib?n=30")
EXPECTED = {
    "/hello": b"Hello, world!",
    "/compute?n=1000": b"Result: 332833500",
    "/fresh?n=1000": b"Result: 332833500",
    "/fib?n=30": b"Result: 832040",
}
CONNECTIONS = 32


@dataclass(frozen=True)
class Sample:
    config: str
    route: str
    round: int
    requests: int
    seconds: float
    cpu_seconds: float
    p50_ms: float  # the mean of the servers' medians when there are several
    p99_ms: float  # the worst of the servers' p99
    rss_mib: float  # summed over the configuration's processes, after the round
    errors: int

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    @property
    def per_cpu_second(self) -> float:
        return self.requests / self.cpu_seconds if self.cpu_seconds else 0.0


@dataclass
class CompareResult:
    configs: list[str]
    samples: list[Sample] = field(default_factory=list)
    cold_start_ms: dict[str, list[float]] = field(default_factory=dict)
    idle_rss_mib: dict[str, float] = field(default_factory=dict)
    answers: dict[str, dict[str, str]] = field(default_factory=dict)  # config -> route -> body
    seconds: float = 0.0  # the whole comparison, wall time
    rounds: int = 0
    load_seconds: float = 0.0  # wrk -d per measurement

    def of(self, config: str, route: str) -> list[Sample]:
        return [s for s in self.samples if s.config == config and s.route == route]

    def median(self, config: str, route: str, metric: str) -> float:
        values = [_metric(s, metric) for s in self.of(config, route)]
        return statistics.median(values) if values else float("nan")

    def spread(self, config: str, route: str, metric: str) -> tuple[float, float]:
        values = [_metric(s, metric) for s in self.of(config, route)]
        return (min(values), max(values)) if values else (float("nan"), float("nan"))

    def ratios(self, config: str, baseline: str, route: str, metric: str) -> list[float]:
        """``config`` / ``baseline`` for ``metric``, paired by round."""
        base = {s.round: _metric(s, metric) for s in self.of(baseline, route)}
        return [
            _metric(s, metric) / base[s.round] for s in self.of(config, route) if base.get(s.round)
        ]

    def to_json(self) -> dict[str, Any]:
        return {
            "configs": self.configs,
            "samples": [asdict(s) for s in self.samples],
            "cold_start_ms": self.cold_start_ms,
            "idle_rss_mib": self.idle_rss_mib,
            "seconds": self.seconds,
            "rounds": self.rounds,
            "load_seconds": self.load_seconds,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CompareResult:
        return cls(
            configs=data["configs"],
            samples=[Sample(**s) for s in data["samples"]],
            cold_start_ms=data["cold_start_ms"],
            idle_rss_mib=data["idle_rss_mib"],
            seconds=data["seconds"],
            rounds=data["rounds"],
            load_seconds=data.get("load_seconds", 0.0),
        )


def _metric(sample: Sample, metric: str) -> float:
    value = getattr(sample, metric)
    return float(value)


def check_answers(servers: Sequence[Server]) -> dict[str, str]:
    """Each route once on each server: every server must give the expected body."""
    answers = {}
    for route in ROUTES:
        for server in servers:
            status, body = get(server.port, route)
            if status != 200 or body != EXPECTED[route]:
                raise AssertionError(f"{server.name} {route}: {status} {body[:200]!r}")
        answers[route] = EXPECTED[route].decode()
    return answers


def _warm_up(servers: Sequence[Server], requests: int) -> None:
    for server in servers:
        for route in ROUTES:
            for _ in range(requests):
                get(server.port, route)


def measure(
    wrk: str, name: str, servers: Sequence[Server], route: str, seconds: float, rnd: int
) -> Sample:
    """One wrk per server, all at once, ``CONNECTIONS`` connections in all."""
    connections = max(1, CONNECTIONS // len(servers))
    before = [s.cpu_seconds() for s in servers]
    procs = [
        start_wrk(wrk, f"http://127.0.0.1:{s.port}{route}", seconds, connections) for s in servers
    ]
    results = [finish(p, seconds) for p in procs]
    cpu = sum(s.cpu_seconds() - b for s, b in zip(servers, before, strict=True))
    return Sample(
        config=name,
        route=route,
        round=rnd,
        requests=sum(r.requests for r in results),
        seconds=statistics.fmean(r.seconds for r in results),
        cpu_seconds=cpu,
        p50_ms=statistics.fmean(r.p50_ms for r in results),
        p99_ms=max(r.p99_ms for r in results),
        rss_mib=sum(s.rss_mib() for s in servers),
        errors=sum(r.errors for r in results),
    )


def cold_starts(times: int, folder: Path, path: str = "/compute?n=1000") -> dict[str, list[float]]:
    """Launch → first 200 on ``path``, ``times`` times each, alternating the servers (wall
    ms; ``python -m benchmarks.coldstart`` measures the CPU too)."""
    samples = launches(times, with_workerd=True, folder=folder, path=path)
    return {name: [wall for wall, _ in runs] for name, runs in samples.items()}


def run_compare(
    wrk: str,
    *,
    rounds: int,
    seconds: float,
    processes: int,
    extra_configs: bool,
    cold_start_times: int,
    log: Any = print,
) -> CompareResult:
    """Start the servers, check their answers, run the interleaved rounds, measure cold starts."""
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-workerd-") as tmp:
        folder = Path(tmp)
        workerds = [bench_workerd(folder) for _ in range(processes if extra_configs else 1)]
        atolls = [atoll_server() for _ in range(processes)]
        single_loop = [atoll_server(loops=1) for _ in range(processes if extra_configs else 0)]
        configs: dict[str, list[Server]] = {
            "workerd": workerds[:1],
            "atoll ×1": atolls[:1],
            f"atoll ×{processes}": atolls,
        }
        if extra_configs:
            configs[f"workerd ×{processes}"] = workerds
            configs[f"atoll ×{processes}, 1 loop"] = single_loop
        result = CompareResult(configs=list(configs), rounds=rounds, load_seconds=seconds)
        servers = workerds + atolls + single_loop
        try:
            for server in servers:
                server.start()
            for server in servers:
                server.wait_ready()
            for name, group in configs.items():
                result.answers[name] = check_answers(group)
            result.idle_rss_mib = {
                "workerd": workerds[0].rss_mib(),
                "atoll": atolls[0].rss_mib(),
            }
            _warm_up(servers, 20)
            names = list(configs)
            for rnd in range(rounds):
                order = names[rnd % len(names) :] + names[: rnd % len(names)]
                for route in ROUTES:
                    for name in order:
                        sample = measure(wrk, name, configs[name], route, seconds, rnd)
                        result.samples.append(sample)
                        log(
                            f"  round {rnd + 1}/{rounds} {route:<16} {name:<11} "
                            f"{sample.rps:>9,.0f} req/s {sample.per_cpu_second:>9,.0f} req/CPU-s "
                            f"p99 {sample.p99_ms:7.1f} ms"
                            + (f"  errors {sample.errors}" if sample.errors else "")
                        )
        finally:
            for server in servers:
                server.stop()
        result.cold_start_ms = cold_starts(cold_start_times, folder)
    result.seconds = time.monotonic() - started
    return result
