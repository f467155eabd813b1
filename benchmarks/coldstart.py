# ruff: noqa: RUF001 - the page is typeset: multiplication signs and en dashes
"""Cold start: ``atoll dev examples/bench`` launch → first 200, against workerd.

Run from the repository root::

    python -m benchmarks.coldstart            # 10 launches each, alternating
    python -m benchmarks.coldstart --quick    # 3 launches each
    python -m benchmarks.coldstart --phases 7 # atoll's CPU phase by phase, 7 launches

Each launch starts the server (``atoll dev examples/bench --no-build``, KV in
memory, as ``python -m benchmarks`` runs it; workerd on the same ``bench.wasm``
when it can be had) and polls ``/compute?n=1000`` until it answers 200. Two
figures per launch: the wall time from ``Popen`` to the 200, and the CPU the
server process used until then (the sum of its threads' run time from
``/proc/PID/task/*/schedstat``, in nanoseconds). On a shared machine the wall time
is mostly waiting for a core; the CPU time is what load does not change much.
atoll's compiled-code cache on disk is warm: an unmeasured launch goes first.

Then what a fresh interpreter costs (CPU of the whole process, interleaved): alone,
importing only the libraries ``atoll dev`` serves with, and importing the dev command. The table is printed and written
into ``docs/benchmarks/coldstart.md`` (between its result markers).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.servers import (
    BENCH_WORKER,
    ROOT,
    Server,
    Unavailable,
    atoll_server,
    bench_workerd,
    compile_bytecode,
    ensure_workerd,
    free_port,
)

__all__ = ["cpu_ns", "first_200", "main"]

DOC = ROOT / "docs" / "benchmarks" / "coldstart.md"
PATH = "/compute?n=1000"

#: What a fresh interpreter runs, for the CPU the whole process takes (start to exit): the
#: interpreter alone, the libraries ``atoll dev`` serves with (uvicorn's parts without its
#: CLI, as ``atoll.http`` imports them; ctypes, through which the native backend reaches
#: wasmtime's library without wasmtime-py), and the dev command's whole import.
PROBES: dict[str, str] = {
    "`python -c pass`": "pass",
    "the libraries alone (asyncio, uvloop, ctypes, click, tomllib, uvicorn's parts)": (
        "import importlib.util, sys, asyncio, uvloop, ctypes, click, tomllib; "
        "u = importlib.util.module_from_spec(importlib.util.find_spec('uvicorn')); "
        "sys.modules['uvicorn'] = u; import uvicorn.config, uvicorn.server; "
        "u.Config = uvicorn.config.Config; "
        "import uvicorn.lifespan.on, uvicorn.protocols.http.httptools_impl"
    ),
    "`import atoll.cli.dev`": "import atoll.cli.dev",
}
MODULES = "; import sys; print(len(sys.modules))"


def cpu_ns(pid: int) -> int:
    """CPU time used so far by every live thread of ``pid`` (scheduler run time, ns)."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                total += int(f.read().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            pass  # the thread ended meanwhile
    return total


def first_200(server: Server, path: str = PATH) -> tuple[float, float]:
    """Start ``server`` and wait for its first 200 on ``path``: (wall ms, CPU ms), then stop it."""
    try:
        wall = server.start().wait_ready(path) * 1000
        cpu = cpu_ns(server.pid) / 1e6
    finally:
        server.stop()
    return wall, cpu


def launches(
    times: int, with_workerd: bool, folder: Path | None = None, path: str = PATH
) -> dict[str, list[tuple[float, float]]]:
    """``times`` launches of each server, alternating; (wall ms, CPU ms) per launch.

    workerd's configs are written into ``folder`` (a temporary folder by default).
    """
    first_200(
        atoll_server(), path
    )  # warms atoll's compiled-code cache on disk (and the page cache)
    out: dict[str, list[tuple[float, float]]] = {"atoll": []}
    with tempfile.TemporaryDirectory(prefix="coldstart-") as tmp:
        where = folder if folder is not None else Path(tmp)
        if with_workerd:
            out["workerd"] = []
            first_200(bench_workerd(where), path)
        for i in range(times):
            for name in out:
                server = atoll_server() if name == "atoll" else bench_workerd(where)
                wall, cpu = first_200(server, path)
                out[name].append((wall, cpu))
                print(f"launch {i + 1} {name:8} wall {wall:7.1f} ms  CPU {cpu:7.1f} ms")
    return out


def import_cost(times: int) -> dict[str, tuple[float, float, int]]:
    """Each of :data:`PROBES` ``times`` times, interleaved: (median CPU ms, min CPU ms,
    modules) of the whole process (``getrusage`` of the children: user + system)."""
    cpu: dict[str, list[float]] = {name: [] for name in PROBES}
    modules: dict[str, int] = {}
    for _ in range(times):
        for name, code in PROBES.items():
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            out = subprocess.run(
                [sys.executable, "-c", code + MODULES], capture_output=True, text=True, check=True
            ).stdout
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            used = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            cpu[name].append(used * 1000)
            modules[name] = int(out.split()[-1])
    return {
        name: (statistics.median(values), min(values), modules[name])
        for name, values in cpu.items()
    }


def phases(times: int, path: str = PATH) -> dict[str, list[float]]:
    """``times`` launches of ``atoll dev`` under ``coldstart_phases.py``: the CPU (ms) of
    each phase to the first response, per launch (after an unmeasured launch that warms
    the compiled-code cache)."""
    compile_bytecode()
    script = Path(__file__).with_name("coldstart_phases.py")
    out: dict[str, list[float]] = {}
    for i in range(times + 1):
        port = free_port()
        argv = [sys.executable, str(script), str(BENCH_WORKER), "--port", str(port)]
        argv += ["--log-level", "warning", "--no-build"]
        server = Server("atoll-phases", argv, port, env=dict(os.environ, ATOLL_KV="memory"))
        try:
            server.start().wait_ready(path)
            line = _phases_line(server)
        finally:
            server.stop()
        if i == 0:
            continue
        for item in line.split("|")[1:]:
            name, _, value = item.rpartition("=")
            out.setdefault(name, []).append(float(value))
        print(f"launch {i}: {out['total, to the first response sent'][-1]:.1f} ms CPU")
    return out


def _phases_line(server: Server, timeout: float = 5.0) -> str:
    """The ``PHASES|…`` line the server writes once its first response is sent."""
    assert server.log_path is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in server.log_path.read_text(errors="replace").splitlines():
            if line.startswith("PHASES|"):
                return line
        time.sleep(0.01)
    raise Unavailable(f"no phase line from atoll dev:\n{server.log_tail()}")


def phase_table(results: dict[str, list[float]]) -> str:
    lines = ["| phase | CPU, ms, min | median |", "|---|---:|---:|"]
    for name, values in results.items():
        lines.append(f"| {name} | {min(values):,.1f} | {statistics.median(values):,.1f} |")
    times = len(next(iter(results.values())))
    lines += [
        "",
        f"{times} launches; load average {os.getloadavg()[0]:.1f} at the end.",
    ]
    return "\n".join(lines)


def _cell(samples: list[tuple[float, float]], index: int) -> str:
    values = [s[index] for s in samples]
    return f"{statistics.median(values):,.1f} <sub>{min(values):,.1f}–{max(values):,.1f}</sub>"


def table(
    results: dict[str, list[tuple[float, float]]], imports: dict[str, tuple[float, float, int]]
) -> str:
    lines = [
        "| server | wall to first 200, ms | CPU to first 200, ms | launches |",
        "|---|---:|---:|---:|",
    ]
    for name, samples in results.items():
        label = "`atoll dev`" if name == "atoll" else "workerd"
        lines.append(f"| {label} | {_cell(samples, 0)} | {_cell(samples, 1)} | {len(samples)} |")
    lines += [
        "",
        "| a fresh interpreter runs | CPU of the process, ms, median | min | modules |",
        "|---|---:|---:|---:|",
    ]
    for name, (median, least, count) in imports.items():
        lines.append(f"| {name} | {median:,.1f} | {least:,.1f} | {count} |")
    lines += ["", f"Load average {os.getloadavg()[0]:.1f} at the end."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="3 launches each")
    parser.add_argument("--times", type=int, default=None, help="launches of each server")
    parser.add_argument("--no-workerd", action="store_true", help="atoll only")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument(
        "--phases",
        type=int,
        metavar="N",
        default=0,
        help="only atoll's CPU phase by phase, N launches (printed, not written)",
    )
    args = parser.parse_args()
    if args.phases:
        print(phase_table(phases(args.phases)))
        return
    # here: report imports workerd.compare, which takes its cold starts from this module
    from benchmarks.report import results_text, write_results

    times = args.times or (3 if args.quick else 10)
    with_workerd = not args.no_workerd
    if with_workerd:
        try:
            ensure_workerd()
        except Unavailable as exc:
            print(f"without workerd: {exc}")
            with_workerd = False
    results = launches(times, with_workerd)
    how = f"{times} launches of each server, alternating, median <sub>min–max</sub>"
    text = results_text(
        "coldstart", table(results, import_cost(times)), times, 0, args.quick, how=how
    )
    print(text)
    if not args.no_write:
        write_results(DOC, text)


if __name__ == "__main__":
    main()
