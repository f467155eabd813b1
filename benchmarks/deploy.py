"""``atoll serve``: how long a deploy takes to serve, and req/s of one process vs several.

Run from the repository root (needs ``wrk`` for the throughput part)::

    python -m benchmarks.deploy            # ~3 minutes
    python -m benchmarks.deploy --quick    # ~1 minute, fewer rounds

Deploy → first response: a node serves ``examples/seed`` (``--processes N``,
default one per core). Each round changes the worker's Python entry (so the
upload is a new version), uploads it through the admin API (as ``atoll
deploy`` does, bundle packed beforehand), and then sends GETs, each on a new
connection, until one answers with the new version. "cached" rounds keep the
wasm module (compiled-code cache hit: the supervisor and every process
deserialize it); "new module" rounds also append a custom section to the
wasm, so its sha256 changes and the supervisor compiles it. Times are from
the start of the upload: "deploy call" until the admin API answers (every
process has swapped), "first response" until the first new-version answer.

Throughput: ``wrk -t2 -c32 -d5s --latency`` against ``/?n=...`` with
``Host: seed.localhost``, one node each for 1 process x 4 loops, N x 4 and
N x 2 (N: cores), rounds interleaved; medians over rounds. Serving processes log at ``warning`` (no per-request
line).

The markdown is printed and written into ``docs/benchmarks/serve.md``,
between its ``deploy`` result markers.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from atoll.control.bundle import pack
from atoll.control.client import AdminClient

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks" / "serve.md"
SEED = ROOT / "examples" / "seed"
START, END = "<!-- deploy:start -->", "<!-- deploy:end -->"
TOKEN = "bench-token"


@dataclass
class Node:
    proc: subprocess.Popen[str]
    url: str
    admin: str

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def start_node(state: Path, processes: int, loops: int = 4) -> Node:
    command = [
        sys.executable, "-c", "from atoll.cli.serve import serve; serve()",
        "--state", str(state), "--port", "0", "--admin-port", "0",
        "--processes", str(processes), "--loops", str(loops), "--log-level", "warning",
        "--token", TOKEN,
    ]  # fmt: skip
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "300"}
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env)
    assert proc.stderr is not None
    for line in proc.stderr:
        match = re.search(r"ready on (http://\S+?)/ .*admin API on (http://\S+?)/", line)
        if match:
            return Node(proc, match.group(1), match.group(2))
    raise SystemExit(f"atoll serve did not start (exit {proc.wait()})")


def seed_copy(into: Path) -> Path:
    for part in ("atoll.toml", "src", "pkg"):
        source = SEED / part
        if source.is_dir():
            shutil.copytree(source, into / part)
        else:
            into.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, into / part)
    return into


def with_custom_section(wasm: bytes, payload: bytes) -> bytes:
    """``wasm`` plus a custom section (id 0): same code, another sha256."""
    name = b"atoll-bench"
    body = _leb(len(name)) + name + payload
    return wasm + b"\x00" + _leb(len(body)) + body


def _leb(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def deploy_rounds(
    node: Node, folder: Path, rounds: int, *, new_module: bool
) -> list[tuple[float, float]]:
    """(deploy call ms, first response ms) per round."""
    entry = folder / "src" / "worker.py"
    original = entry.read_text()
    wasm_path = folder / "pkg" / "heavy_compute.wasm"
    wasm = wasm_path.read_bytes()
    times = []
    stale = 0
    with AdminClient(node.admin, TOKEN) as client:
        for i in range(rounds):
            label = f"{'new' if new_module else 'cached'}-{i}-{time.time_ns()}"
            entry.write_text(original.replace('f"Result: ', f'f"{label}: '))
            if new_module:
                wasm_path.write_bytes(with_custom_section(wasm, label.encode()))
            bundle = pack(folder)
            started = time.perf_counter()
            client.deploy("seed", bundle)
            answered = time.perf_counter()
            tries = 0
            while True:
                tries += 1
                if get(node.url, "/?n=10", "seed.localhost").startswith(label):
                    break
            first = time.perf_counter()
            times.append(((answered - started) * 1000, (first - started) * 1000))
            stale += tries - 1
    entry.write_text(original)
    wasm_path.write_bytes(wasm)
    if stale:
        print(f"warning: {stale} responses from the old version after the deploy call returned")
    return times


def get(url: str, path: str, host: str) -> str:
    """One GET on a new connection, with a raw socket (an httpx client costs more than the GET)."""
    address, port = url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((address, int(port))) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data.partition(b"\r\n\r\n")[2].decode()


def wrk(url: str, seconds: int) -> tuple[float, float, float, int]:
    """req/s, p50 ms, p99 ms, errors."""
    out = subprocess.run(
        ["wrk", "-t2", "-c32", f"-d{seconds}s", "--latency", "-H", "Host: seed.localhost", url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"50%\s+([\d.]+\w+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"99%\s+([\d.]+\w+)", out).group(1))  # type: ignore[union-attr]
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rate, p50, p99, errors + (int(non2xx.group(1)) if non2xx else 0)


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(\w+)", text).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds, shorter wrk runs")
    parser.add_argument("--processes", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--no-write", action="store_true", help="print only; leave the doc alone")
    args = parser.parse_args()
    rounds, wrk_rounds, seconds = (5, 1, 3) if args.quick else (15, 3, 5)
    many = max(2, args.processes)
    lines: list[str] = []
    with tempfile.TemporaryDirectory(prefix="atoll-bench-deploy-") as tmp:
        base = Path(tmp)
        folder = seed_copy(base / "seed")
        node = start_node(base / "state-deploy", many)
        try:
            with AdminClient(node.admin, TOKEN) as client:
                client.deploy("seed", pack(folder))  # version 0, modules now cached
            cached = deploy_rounds(node, folder, rounds, new_module=False)
            compiled = deploy_rounds(node, folder, rounds, new_module=True)
        finally:
            node.stop()
        lines += [
            f"Deploy → first response, `examples/seed`, {many} serving processes, "
            f"{rounds} rounds each (ms; median, p90 and max):",
            "",
            "| modules | deploy call p50 | p90 | first response p50 | p90 | max |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for title, times in (("cached", cached), ("new module (compiled)", compiled)):
            calls = sorted(t[0] for t in times)
            firsts = sorted(t[1] for t in times)
            lines.append(
                f"| {title} | {statistics.median(calls):.1f} | {_p90(calls):.1f} | "
                f"{statistics.median(firsts):.1f} | {_p90(firsts):.1f} | {firsts[-1]:.1f} |"
            )
        if shutil.which("wrk"):
            lines += ["", *throughput(base, folder, many, wrk_rounds, seconds)]
    lines += [
        "",
        f"Machine: {len(os.sched_getaffinity(0))} CPUs ({platform.machine()}), Python "
        f"{platform.python_version()}, wasmtime {metadata.version('wasmtime')}, "
        f"uvicorn {metadata.version('uvicorn')}; command: `python -m benchmarks.deploy"
        f"{' --quick' if args.quick else ''}`.",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write(text)


def throughput(base: Path, folder: Path, many: int, rounds: int, seconds: int) -> list[str]:
    configs = [(1, 4), (many, 4), (many, 2)]  # (processes, loops per process)
    nodes = {c: start_node(base / f"state-{c[0]}x{c[1]}", *c) for c in configs}
    results: dict[tuple[tuple[int, int], int], list[tuple[float, float, float, int]]] = {}
    loads = [1000, 1_000_000]
    try:
        for node in nodes.values():
            with AdminClient(node.admin, TOKEN) as client:
                client.deploy("seed", pack(folder))
        for r in range(rounds):
            for config in configs[r % len(configs) :] + configs[: r % len(configs)]:
                for load in loads:
                    results.setdefault((config, load), []).append(
                        wrk(f"{nodes[config].url}/?n={load}", seconds)
                    )
    finally:
        for node in nodes.values():
            node.stop()
    out = [
        f"Throughput, `wrk -t2 -c32 -d{seconds}s` on loopback, {rounds} interleaved round(s), "
        "medians:",
        "",
        "| request | processes x loops | req/s | p50 ms | p99 ms | errors |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for load in loads:
        for config in configs:
            runs = results[(config, load)]
            out.append(
                f"| `/?n={load:,}` | {config[0]} x {config[1]} | "
                f"{statistics.median(r[0] for r in runs):,.0f} | "
                f"{statistics.median(r[1] for r in runs):.2f} | "
                f"{statistics.median(r[2] for r in runs):.2f} | {sum(r[3] for r in runs)} |"
            )
    return out


def _p90(values: list[float]) -> float:
    return values[min(len(values) - 1, round(0.9 * (len(values) - 1)))]


def write(text: str) -> None:
    doc = DOC.read_text() if DOC.exists() else ""
    block = f"{START}\n{text}\n{END}"
    if START in doc and END in doc:
        doc = doc[: doc.index(START)] + block + doc[doc.index(END) + len(END) :]
    else:
        doc = doc.rstrip() + "\n\n## Deploys and processes\n\n" + block + "\n"
    DOC.write_text(doc)


if __name__ == "__main__":
    main()
