"""benchmarks/js_routes_cost.py drives the JS and Python bench routes in process (no timings checked)."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import atoll.entries.js.isolate as isolate_module
from atoll.worker import Runtime, load_worker
from benchmarks.js_routes import js_worker
from benchmarks.js_routes_cost import only, per_request


def test_js_routes_answer_through_the_entry_and_the_lone_isolate(runtime: Runtime) -> None:
    async def run() -> None:
        with tempfile.TemporaryDirectory(prefix="bench-js-") as tmp:
            worker = load_worker(js_worker(Path(tmp) / "bench-js"), runtime=runtime)
            assert await per_request(worker, "/compute?n=1000", 5, 1) > 0
        startup_ms = isolate_module.STARTUP_CPU_MS
        await only("/hello", 2, 3)  # asserts every answer is a 200
        # only() raises the startup allowance for callgrind, and gives it back (later
        # tests read it: test_docs checks the limits page against it)
        assert startup_ms == isolate_module.STARTUP_CPU_MS

    asyncio.run(run())
