"""The same hostile guests against atoll and workerd: what happens to that request,
to another request served meanwhile, and to the server.

Guests (``examples/bench/rust/hostile.rs``, one .wasm for both, a fresh instance
per request): ``/overflow`` (unbounded recursion), ``/bomb?mb=512`` (grows and
touches 512 MiB, aborting if a grow is refused), ``/loop`` (never returns). atoll
serves them under ``examples/bench/hostile/atoll.toml`` (cpu_ms 500, memory_mb
128); workerd enforces no limit locally. While each hostile request runs, a
prober asks for ``/hello`` every 20 ms (from 50 ms after it was sent): on atoll
the same worker in the same process, on workerd a second worker in the same
process. Every wait is bounded; a server that does not answer is killed.
"""

from __future__ import annotations

import contextlib
import http.client
import re
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks.servers import (
    HOSTILE_WORKER,
    WORKERD_DIR,
    Server,
    WorkerdService,
    atoll_server,
    free_port,
    get,
    workerd_config,
    workerd_server,
)

__all__ = ["GUESTS", "LimitRow", "run_limits"]

GUESTS = (
    ("stack overflow", "/overflow"),
    ("memory bomb (512 MiB)", "/bomb?mb=512"),
    ("infinite loop", "/loop"),
)
HOSTILE_WASM = HOSTILE_WORKER / "pkg" / "hostile.wasm"
#: Probing starts this long after the hostile request is sent, so that it has arrived.
PROBE_DELAY = 0.05


@dataclass(frozen=True)
class LimitRow:
    runtime: str
    guest: str
    status: int | None  # None: no answer within the wait
    answer_ms: float
    message: str
    probes_ok: int
    probes: int
    probe_max_ms: float
    cpu_after: (
        float  # share of one core the server burnt in the second after the answer (or timeout)
    )
    peak_rss_mib: float
    server_after: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class Prober(threading.Thread):
    """GET /hello every ``every`` seconds until stopped; keeps each outcome and latency."""

    def __init__(self, port: int, every: float = 0.02, timeout: float = 1.0) -> None:
        super().__init__(daemon=True)
        self.port, self.every, self.timeout = port, every, timeout
        self.results: list[tuple[bool, float]] = []
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            start = time.perf_counter()
            ok = False
            with contextlib.suppress(OSError, http.client.HTTPException):
                ok = get(self.port, "/hello", timeout=self.timeout)[0] == 200
            self.results.append((ok, (time.perf_counter() - start) * 1000))
            self._stop_event.wait(self.every)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(self.timeout + 1)


def _message(body: bytes) -> str:
    lines = [line.strip() for line in body.decode(errors="replace").splitlines() if line.strip()]
    for line in lines:
        if "Error" in line and ":" in line:
            return line[:140]
    return lines[0][:140] if lines else ""


def _server_error(server: Server) -> str:
    """The exception workerd logged for the last failed request ("RangeError: …")."""
    for line in reversed(server.log_tail(40).splitlines()):
        match = re.search(r"(\w*Error: .*)$", line)
        if match:
            return match.group(1)[:140]
    return ""


def hit(
    runtime: str, server: Server, probe_port: int, guest: str, path: str, wait: float
) -> LimitRow:
    """Send the hostile request; 50 ms later start probing; stop when it ends (or after ``wait``)."""
    outcome: dict[str, Any] = {}

    def hostile() -> None:
        start = time.perf_counter()
        with contextlib.suppress(OSError, http.client.HTTPException):
            outcome["status"], outcome["body"] = get(server.port, path, timeout=wait)
        outcome["ms"] = (time.perf_counter() - start) * 1000

    sender = threading.Thread(target=hostile, daemon=True)
    sender.start()
    time.sleep(PROBE_DELAY)
    prober = Prober(probe_port)
    prober.start()
    sender.join(wait + 1)
    prober.stop()
    status: int | None = outcome.get("status")
    body: bytes = outcome.get("body", b"")
    answer_ms = float(outcome.get("ms", wait * 1000))
    cpu = server.cpu_seconds()
    time.sleep(1.0)
    burn = server.cpu_seconds() - cpu
    message = _message(body) if status is not None else "(no answer)"
    if runtime == "workerd" and status is not None and status >= 500:
        message = _server_error(server) or message
    ok = [ms for good, ms in prober.results if good]
    try:
        after_ok = get(probe_port, "/hello", timeout=1.0)[0] == 200
    except (OSError, http.client.HTTPException):
        after_ok = False
    return LimitRow(
        runtime=runtime,
        guest=guest,
        status=status,
        answer_ms=answer_ms,
        message=message,
        probes_ok=len(ok),
        probes=len(prober.results),
        probe_max_ms=max((ms for _, ms in prober.results), default=0.0),
        cpu_after=burn,
        peak_rss_mib=server.peak_rss_mib(),
        server_after="serving" if after_ok else "not answering",
    )


#: The one guest a server is expected not to answer: workerd enforces no CPU limit locally.
HANGS = ("workerd", "/loop")


def run_limits(wait: float, log: Any = print, answer_wait: float | None = None) -> list[LimitRow]:
    """Each guest against atoll, then workerd. ``wait``: how long a request may go
    unanswered; ``answer_wait`` (default ``wait``): the same for every request but
    workerd's infinite loop, which never ends. A loaded machine (a test run) may take
    longer than ``wait`` to answer the others (workerd touching 512 MiB), and waiting
    for an answer costs nothing once it comes; the hang is shown by waiting ``wait``."""

    def wait_for(runtime: str, path: str) -> float:
        return wait if (runtime, path) == HANGS else max(wait, answer_wait or wait)

    rows: list[LimitRow] = []
    atoll = atoll_server(HOSTILE_WORKER).start()
    try:
        atoll.wait_ready()
        for guest, path in GUESTS:
            rows.append(hit("atoll", atoll, atoll.port, guest, path, wait_for("atoll", path)))
            log(f"  atoll   {guest:<22} {_describe(rows[-1])}")
    finally:
        atoll.stop()
    with tempfile.TemporaryDirectory(prefix="bench-limits-") as tmp:
        port, other_port = free_port(), free_port()
        config = workerd_config(
            Path(tmp),
            [
                WorkerdService(
                    "hostile", WORKERD_DIR / "hostile.mjs", "hostile.wasm", HOSTILE_WASM, port
                ),
                WorkerdService("other", WORKERD_DIR / "other.mjs", None, None, other_port),
            ],
        )
        workerd = workerd_server(config, port).start()
        try:
            workerd.wait_ready()
            for guest, path in GUESTS:
                row = hit("workerd", workerd, other_port, guest, path, wait_for("workerd", path))
                if row.server_after != "serving":
                    exited = workerd.stop(grace=2.0)
                    how = "ignored SIGTERM for 2 s, killed" if not exited else "stopped on SIGTERM"
                    row = LimitRow(**{**row.to_json(), "server_after": f"hung ({how})"})
                rows.append(row)
                log(f"  workerd {guest:<22} {_describe(row)}")
        finally:
            workerd.stop(grace=2.0)
    return rows


def _describe(row: LimitRow) -> str:
    answer = (
        f"{row.status} after {row.answer_ms:.0f} ms"
        if row.status
        else f"no answer in {row.answer_ms / 1000:.1f} s"
    )
    return (
        f"{answer}; meanwhile /hello {row.probes_ok}/{row.probes} ok (max {row.probe_max_ms:.0f} ms); "
        f"CPU after {row.cpu_after * 100:.0f}% of a core; peak RSS {row.peak_rss_mib:.0f} MiB; {row.server_after}"
    )
