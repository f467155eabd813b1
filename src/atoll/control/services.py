"""Service bindings on a node: calls from one worker to another, in process.

One :class:`LocalServices` per node (``atoll serve``: each serving process;
``atoll dev``: the folders it serves). It finds the callee by name at call
time among the workers ``workers()`` returns, runs the request through
``Worker.handle`` (its own limits, log, outcome), then calls the result
hooks (metrics, tail) as the app does for a request from the network, and
starts the callee's ``wait_until`` work.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence

from atoll.api import Request, Response
from atoll.bindings.services import ServiceError
from atoll.runtime.logs import log_lines
from atoll.worker import Worker, request_id, run_pending

__all__ = ["LocalServices"]

log = logging.getLogger("atoll.request")

ResultHook = Callable[..., None]


class LocalServices:
    """The workers of this node as service-binding targets. Thread-safe (reads only)."""

    def __init__(
        self,
        workers: Callable[[], Mapping[str, Worker]],
        on_result: Sequence[ResultHook] = (),
    ) -> None:
        self.workers = workers
        self.on_result = tuple(on_result)
        self._pending: set[asyncio.Task[None]] = set()

    async def call(self, caller: str, service: str, request: Request) -> Response:
        """Run ``request`` on worker ``service``; its response (error pages included)."""
        worker = self.workers().get(service)
        if worker is None:
            raise ServiceError(
                f"worker {caller!r}: service {service!r} is not deployed on this node",
                hint=f"deploy {service!r} (or, in atoll dev, pass its folder too: "
                "atoll dev entry/ other/)",
            )
        started = time.perf_counter()
        result = await worker.handle(request, request_id())
        wall_ms = (time.perf_counter() - started) * 1000
        log.info(
            "%s %s %d %s %.2fms cpu=%.2fms id=%s (service %s, from %s)",
            request.method,
            request.url,
            result.response.status,
            result.outcome.value,
            wall_ms,
            result.cpu_ms,
            result.request_id,
            service,
            caller,
        )
        log_lines(log, result.request_id, result.logs)
        for hook in self.on_result:
            try:
                hook(worker, request.method, request.url, result, wall_ms)
            except Exception:
                log.exception("on_result hook failed")
        if result.pending:
            task = asyncio.get_running_loop().create_task(run_pending(result))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)
        return result.response
