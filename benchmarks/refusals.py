"""What a refused request head costs a node: its CPU per refusal, for the hostile benchmark's
huge headers.

Run from the repository root::

    python -m benchmarks.refusals                      # this checkout, 3 rounds
    python -m benchmarks.refusals --src old/src --src src --rounds 4   # A/B, interleaved

``benchmarks/hostile.py`` measures what an attack does to a healthy client's latency;
on a shared machine that moves with everything else that runs. This measures the
cause, which moves much less: the node's CPU time (all its threads, from
``/proc/PID/task/*/schedstat``) while it refuses a fixed number of the huge-headers
attack's requests (one 8 MiB header; 100,000 headers), divided by their number; and,
for scale, the same for a healthy ``GET /hello`` on a new connection. Each kind is
sent by 2 client threads, each request on a new connection, as the attack does.

One ``atoll dev`` node per source tree and round (the tree's ``src`` first on
``PYTHONPATH``; with several ``--src``, the rounds alternate between them, so that a
machine that gets busier moves each about as much). The node's CPU includes the
kernel's work on the connection (on loopback, a read also runs the sending side's
network stack), as it does under the attack. Prints a line per tree and kind.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from benchmarks.hostile import (
    _BIG_HEADER,
    _MANY_HEADERS,
    ROOT,
    probe,
    send_raw,
    start_node,
    write_worker,
)

KINDS = {
    "8 MiB header": _BIG_HEADER,
    "100,000 headers": _MANY_HEADERS,
    "GET /hello": b"GET /hello HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
}


def cpu_seconds(pid: int) -> float:
    """CPU time of every live thread of ``pid`` so far."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{tid}/schedstat") as f:
            total += int(f.read().split()[0])
    return total / 1e9


@contextlib.contextmanager
def source(src: Path) -> Iterator[None]:
    """Nodes started meanwhile run ``src`` (first on their ``PYTHONPATH``)."""
    before = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(src), before]))
    try:
        yield
    finally:
        if before is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = before


def measure(port: int, pid: int, data: bytes, count: int) -> tuple[float, Counter[str]]:
    """Send ``data`` ``count`` times from each of 2 threads: (node CPU s per request, statuses)."""
    statuses: Counter[str] = Counter()

    def client() -> None:
        for _ in range(count):
            try:
                status, _ = send_raw(port, data, 30.0)
            except OSError as exc:
                statuses[type(exc).__name__] += 1
            else:
                statuses[str(status)] += 1

    threads = [threading.Thread(target=client) for _ in range(2)]
    before = cpu_seconds(pid)
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return (cpu_seconds(pid) - before) / (2 * count), statuses


def run(sources: list[Path], rounds: int, count: int) -> list[str]:
    lines = []
    with tempfile.TemporaryDirectory(prefix="atoll-bench-refusals-") as tmp:
        folder = write_worker(Path(tmp) / "worker")
        for round_ in range(rounds):
            for src in sources:
                with source(src):
                    node = start_node(folder, Path(tmp) / "node.log")
                try:
                    probe(node, 0.5)  # warm up
                    for kind, data in KINDS.items():
                        cost, statuses = measure(node.port, node.proc.pid, data, count)
                        got = ", ".join(f"{s}: {n}" for s, n in sorted(statuses.items()))
                        line = (
                            f"round {round_ + 1}  {src}  {kind:16} node CPU "
                            f"{cost * 1e6:6.0f} us per request  ({got})"
                        )
                        print(line, flush=True)
                        lines.append(line)
                finally:
                    node.stop()
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--src",
        type=Path,
        action="append",
        help="a source tree to run (its src folder; repeatable; default: this checkout's)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds per source tree")
    parser.add_argument("--count", type=int, default=500, help="requests per client thread")
    args = parser.parse_args(argv)
    print(f"load average {os.getloadavg()[0]:.1f}")
    run([p.resolve() for p in args.src or [ROOT / "src"]], args.rounds, args.count)
    print(f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
