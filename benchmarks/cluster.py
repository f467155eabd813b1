"""``atoll serve --cluster``: deploy → every node serving, req/s through nginx, Redis down.

Run from the repository root (needs ``redis-server``, ``nginx`` and ``wrk``:
``scripts/setup.sh`` installs them)::

    python -m benchmarks.cluster            # ~3 minutes

Everything runs on this machine, on 127.0.0.1: one ``redis-server``
(``appendonly yes``, ``appendfsync always``), three ``atoll serve --cluster``
nodes (one serving process x 4 loops each) and nginx with the configuration
``atoll cluster nginx-config`` prints (the parts are the tests', from
``tests/control/cluster_support.py``). The worker is the tests' small Python
worker with a wasm module (``tests/control/serving.py``).

- Deploy → all nodes serving: 20 deploys of a new version, each sent to the
  next node in turn through its admin API; time from the start of the upload
  until the admin call answers (every node reported the version active), and
  until each of the three nodes, asked directly on a new connection, answers
  with the new version.
- Requests/s: ``wrk -t2 -c32 -d5s`` through nginx whose upstream has 1, 2 or
  3 of the nodes, and straight to one node without nginx; three rounds,
  interleaved, the median round (by req/s) reported.
- Redis down: ``kill -9`` of redis-server, then ``wrk`` through nginx for
  20 s; a deploy meanwhile (refused); Redis restarted from its AOF, then the
  time until every node reports it is no longer degraded.

The markdown is printed and written to ``docs/benchmarks/cluster.md``.
"""

from __future__ import annotations

import os
import platform as host_platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from atoll.control.bundle import pack
from atoll.errors import ControlError
from benchmarks.workerd.load import WrkResult, parse_wrk, wrk_path
from tests.control.cluster_support import Nginx, Platform
from tests.control.serving import write_worker

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks" / "cluster.md"
HOST = "bench.localhost"
DEPLOYS = 20
#: wrk runs per target, interleaved; the median (by req/s) is reported.
ROUNDS = 3


def label(number: int) -> str:
    return f"v{number}:v{number}:{number}"


def wrk(url: str, seconds: int = 5, connections: int = 32) -> WrkResult:
    binary = wrk_path()
    if binary is None:
        raise SystemExit("wrk not found (Debian: apt-get install wrk)")
    argv = [binary, "-t2", f"-c{connections}", f"-d{seconds}s", "--latency",
            "-H", f"Host: {HOST}", url]  # fmt: skip
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30).stdout
    return parse_wrk(out)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def deploys(bench: Platform, folder: Path) -> tuple[list[float], list[float]]:
    answered: list[float] = []
    serving: list[float] = []
    for number in range(2, DEPLOYS + 2):
        write_worker(folder, "bench", number)
        bundle = pack(folder)
        node = bench.node(number % 3)
        with node.client() as client:
            started = time.perf_counter()
            answer = client.deploy("bench", bundle)
            answered.append(time.perf_counter() - started)
        assert answer["nodes"]["activated"] == 3, answer["nodes"]
        pending = {0, 1, 2}
        while pending:
            for index in sorted(pending):
                url = f"http://127.0.0.1:{bench.ports[index]}/"
                if httpx.get(url, headers={"host": HOST}).text == label(number):
                    pending.discard(index)
        serving.append(time.perf_counter() - started)
    return answered, serving


def redis_down(bench: Platform, folder: Path) -> dict[str, object]:
    bench.redis.kill()
    killed = time.monotonic()
    write_worker(folder, "bench", 999)
    try:
        with bench.node(0).client() as client:
            client.deploy("bench", pack(folder))
        refused = "accepted (!)"
    except ControlError as exc:
        refused = exc.message
    load = wrk(bench.nginx.url + "/", seconds=20)
    down_for = time.monotonic() - killed
    bench.redis.start()
    restarted = time.perf_counter()
    while any(bench.health(i)["degraded"] for i in range(3)):
        time.sleep(0.01)
    caught_up = time.perf_counter() - restarted
    return {"load": load, "down_for": down_for, "refused": refused, "caught_up": caught_up}


def main() -> None:
    load_before = os.getloadavg()[0]
    root = Path(tempfile.mkdtemp(prefix="atoll-cluster-bench-"))
    bench = Platform(root, 3)
    extra: list[Nginx] = []
    try:
        bench.start()
        folder = write_worker(root / "w", "bench", 1)
        with bench.node(0).client() as client:
            client.deploy("bench", pack(folder))
        answered, serving = deploys(bench, folder)
        throughput: dict[str, WrkResult] = {}
        for count in (1, 2):
            nginx = Nginx(root / f"nginx{count}", [f"127.0.0.1:{p}" for p in bench.ports[:count]])
            nginx.start()
            extra.append(nginx)
        targets = {
            "nginx → 1 node": extra[0].url,
            "nginx → 2 nodes": extra[1].url,
            "nginx → 3 nodes": bench.nginx.url,
            "one node, no nginx": f"http://127.0.0.1:{bench.ports[0]}",
        }
        for url in targets.values():  # every target answers the worker (and is warm)
            assert httpx.get(url + "/", headers={"host": HOST}).text.startswith("v")
        wrk(bench.nginx.url + "/", seconds=2)
        rounds: dict[str, list[WrkResult]] = {name: [] for name in targets}
        for _ in range(ROUNDS):  # interleaved: a neighbour's burst hits every target alike
            for name, url in targets.items():
                rounds[name].append(wrk(url + "/"))
        for name, results in rounds.items():
            throughput[name] = sorted(results, key=lambda r: r.rps)[len(results) // 2]
        down = redis_down(bench, folder)
    finally:
        for nginx in extra:
            nginx.stop()
        bench.close()
    text = report(answered, serving, throughput, down, load_before, os.getloadavg()[0])
    print(text)
    DOC.write_text(text)


def report(
    answered: list[float],
    serving: list[float],
    throughput: dict[str, WrkResult],
    down: dict[str, object],
    load_before: float,
    load_after: float,
) -> str:
    def ms(value: float) -> str:
        return f"{value * 1000:.0f} ms"

    rows = "\n".join(
        f"| {name} | {r.rps:,.0f} | {r.p50_ms:.1f} | {r.p99_ms:.1f} | {r.errors} |"
        for name, r in throughput.items()
    )
    load = down["load"]
    caught_up = down["caught_up"]
    assert isinstance(load, WrkResult)
    assert isinstance(caught_up, float)
    cpu = os.cpu_count()
    return f"""# Cluster benchmarks (`python -m benchmarks.cluster`)

Measured on {host_platform.machine()} with {cpu} cores, Python {sys.version.split()[0]},
{time.strftime("%Y-%m-%d", time.gmtime())}. Everything on one machine over loopback: one
redis-server (AOF, `appendfsync always`), three `atoll serve --cluster` nodes (1 process x 4
loops each), nginx in front with the configuration `atoll cluster nginx-config` prints, and
`wrk`. See the module docstring of `benchmarks/cluster.py` for the method. The machine
was shared: its 1-minute load average was {load_before:.1f} before the run and
{load_after:.1f} after (other work on the same 2 cores), so read the numbers as
orders of magnitude; the tails especially move from run to run.

## Deploy → every node serving ({len(answered)} deploys, each to the next node)

| | p50 | p99 | max |
|---|---|---|---|
| admin call answered (every node reported the version active) | {ms(statistics.median(answered))} | {ms(percentile(answered, 0.99))} | {ms(max(answered))} |
| every node answers with the new version | {ms(statistics.median(serving))} | {ms(percentile(serving, 0.99))} | {ms(max(serving))} |

A deploy is checked and compiled on the node that takes it, committed to
Redis, then every node fetches, checks and compiles it into its own cache
before it swaps: the time is mostly three loads of the worker (one per node)
on the same 2 cores, one after another for the receiving node and at once for
the two others.

## Requests/s through nginx (`wrk -t2 -c32 -d5s`, Host `{HOST}`, median of {ROUNDS} rounds)

| target | req/s | p50 ms | p99 ms | errors |
|---|---|---|---|---|
{rows}

With 2 cores for everything — wrk, nginx and three nodes' supervisor and
serving process — more nodes cannot add throughput here: each node gets a
share of the same two cores, and nginx's hop costs CPU too. Two or three
busy Python processes on two cores (with wrk and nginx) do less than one:
they take turns on the cores, and each turn costs a switch and cold caches.
On separate machines each node brings its own cores; this table shows that
nginx's balancing works without errors and what its hop costs, not how a
cluster scales.

## Redis down

redis-server killed (`kill -9`) while the nodes serve; then `wrk -t2 -c32
-d20s` through nginx:

| | |
|---|---|
| requests served with Redis down | {load.requests:,} in {load.seconds:.0f} s ({load.rps:,.0f} req/s) |
| failed requests (socket errors + non-2xx) | {load.errors} |
| Redis down for | {down["down_for"]:.0f} s (the nodes need Redis only for changes and KV; they would go on serving) |
| a deploy meanwhile | refused: `{down["refused"]}` |
| Redis restarted from its AOF → every node in sync again | {ms(caught_up)} (nodes poll once a second) |
"""


if __name__ == "__main__":
    main()
