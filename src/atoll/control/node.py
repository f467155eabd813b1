"""A serving process's view of the state folder: loaded workers and the route table over them.

:meth:`Node.sync` runs once when the process starts and then each time the
supervisor says the state changed (a deploy, rollback, delete or secret): it
reads every active pointer, loads the workers whose version or secrets
changed (``load_worker``: modules come from the compiled-code cache the
supervisor filled while checking the upload), builds a new
:class:`~atoll.manifest.routes.RouteTable` and swaps it into the app with one
assignment. A request picks its worker from the table once, when it starts,
and keeps that :class:`~atoll.worker.Worker` to the end: requests in flight
finish on the version they started on, new ones get the new version, and no
request sees both. A worker that fails to load here (it was checked before
activation, so only the machine does that: a broken disk, no memory) keeps its
old version serving and is named in the reply's ``errors``; the supervisor
then syncs again, and undoes the change if it still fails (supervisor.py).

:attr:`Node.scheduler` runs the workers' cron triggers (control/cron.py).

:meth:`Node.on_result` runs once per request (an ``AtollApp`` result hook):
it counts the request in :attr:`Node.metrics` and, if a tail stream wants
it, queues an event to the supervisor.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from atoll.api import ScheduledEvent
from atoll.control.channel import ProcessChannel
from atoll.control.cron import Claims, Scheduler, SqliteClaims, log_run
from atoll.control.metrics import Metrics
from atoll.control.secret_store import SecretStore, secret_bindings
from atoll.control.services import LocalServices
from atoll.control.state import State
from atoll.control.tail import TailSource, event
from atoll.errors import AtollError
from atoll.http.app import AtollApp, Hook
from atoll.http.bodies import BodyBudget
from atoll.manifest import Manifest
from atoll.manifest.routes import Route, RouteTable, manifest_routes
from atoll.worker import BindingFactory, Result, Runtime, Worker, load_worker

__all__ = ["Deployment", "Node", "bindings_for", "routes_of"]

log = logging.getLogger("atoll.control")


@dataclass(frozen=True, slots=True)
class Deployment:
    """One worker as this process serves it."""

    name: str
    version: str
    secrets: str
    """Revision of the secrets it was loaded with (see ``SecretStore.revision``)."""
    worker: Worker
    routes: tuple[Route, ...]


def routes_of(manifest: Manifest) -> tuple[Route, ...]:
    """The worker's parsed routes, or ``NAME.localhost/*`` when it declares none.

    Raises :class:`~atoll.errors.ConfigError` for a bad pattern.
    """
    return manifest_routes(manifest)


def bindings_for(
    values: Mapping[str, str], extra: BindingFactory | None
) -> Callable[[Manifest], Mapping[str, Any]]:
    """The ``extra_bindings`` of a deployed worker: its secrets, plus ``extra`` (KV) if given."""
    secrets = secret_bindings(values)

    def bind(manifest: Manifest) -> Mapping[str, Any]:
        bound = dict(extra(manifest)) if extra is not None else {}
        bound.update(secrets(manifest))
        return bound

    return bind


class Node:
    """The workers one serving process has loaded. Sync from one thread at a time."""

    def __init__(
        self,
        state: State,
        runtime: Runtime,
        *,
        extra_bindings: BindingFactory | None = None,
        process: int = 0,
        on_startup: tuple[Hook, ...] = (),
        on_shutdown: tuple[Hook, ...] = (),
        body_budget: BodyBudget | None = None,
        claims: Claims | None = None,
    ) -> None:
        self.state = state
        self.secrets = SecretStore(state.secrets_dir)
        self.runtime = runtime
        self.extra_bindings = extra_bindings
        self.process = process
        self.deployments: dict[str, Deployment] = {}
        self.metrics = Metrics()
        self.tail = TailSource()
        self.channel: ProcessChannel | None = None
        self.table: RouteTable[Worker] = RouteTable()
        #: Cron triggers: every serving process ticks; a claim in the state folder makes
        #: each scheduled time run once per node, ``claims`` in Redis once per cluster
        #: (control/cron.py, control/cluster.py).
        self.scheduler = Scheduler(
            lambda: {name: d.worker for name, d in self.deployments.items()},
            claims or SqliteClaims(state.root / "cron.sqlite"),
            on_run=(log_run, self.on_scheduled),
        )
        #: Service bindings: calls between the workers this process serves (in process).
        self.services = LocalServices(
            lambda: {name: d.worker for name, d in self.deployments.items()},
            on_result=(self.on_result,),
        )
        self.app = AtollApp(
            self.table,
            dev=False,
            on_startup=(*on_startup, self.scheduler.start),
            on_shutdown=(self.scheduler.stop, *on_shutdown),
            on_result=[self.on_result],
            body_budget=body_budget,
        )
        self._versions: weakref.WeakKeyDictionary[Worker, str] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def sync(self) -> dict[str, Any]:
        """Load what changed in the state folder and swap the route table (see module docstring).

        Returns ``{"versions": {name: id}, "errors": {name: message}}``.
        """
        with self._lock:
            current: dict[str, Deployment] = {}
            errors: dict[str, str] = {}
            for name in self.state.workers():
                pointer = self.state.active(name)
                if pointer is None:
                    continue
                secrets = self.secrets.revision(name)
                old = self.deployments.get(name)
                if old is not None and (old.version, old.secrets) == (pointer.version, secrets):
                    current[name] = old
                    continue
                try:
                    current[name] = self._load(name, pointer.version, secrets)
                except Exception as exc:  # any failure keeps the old version serving
                    # Not only AtollError/OSError: importing an engine can raise MemoryError
                    # (STPyV8's platform init under memory pressure), and one worker's failure
                    # must not keep the other workers' changes from being swapped in.
                    errors[name] = str(exc) or type(exc).__name__
                    if isinstance(exc, (AtollError, OSError)):
                        log.error(
                            "worker %s version %s not loaded: %s", name, pointer.version[:12], exc
                        )
                    else:
                        log.exception("worker %s version %s not loaded", name, pointer.version[:12])
                    if old is not None:
                        current[name] = old
            table = RouteTable(
                (route, d.worker, d.name) for d in current.values() for route in d.routes
            )
            self.deployments = current
            self.table = table
            self.app.router = table  # one assignment: requests see the old table or the new
            return {"versions": {n: d.version for n, d in current.items()}, "errors": errors}

    def _load(self, name: str, version: str, secrets: str) -> Deployment:
        worker = load_worker(
            self.state.bundle(name, version),
            runtime=self.runtime,
            dev=False,
            extra_bindings=bindings_for(self.secrets.values(name), self.extra_bindings),
            services=self.services,
        )
        self._versions[worker] = version
        log.info("worker %s: version %s loaded", name, version[:12])
        return Deployment(name, version, secrets, worker, routes_of(worker.manifest))

    def version_of(self, worker: Worker) -> str:
        return self._versions.get(worker, "")

    def on_scheduled(
        self, worker: Worker, event: ScheduledEvent, result: Result, wall_ms: float
    ) -> None:
        """Count a cron run and tail it as a request would be (method ``SCHEDULED``, the
        cron as its URL). Once per run."""
        self.on_result(worker, "SCHEDULED", event.cron, result, wall_ms)

    def on_result(
        self, worker: Worker | None, method: str, url: str, result: Result, wall_ms: float
    ) -> None:
        """Count the request; queue a tail event if a stream wants it. Once per request."""
        name = worker.name if worker is not None else ""
        status = result.response.status
        outcome = result.outcome.value
        self.metrics.observe(name, status, outcome, wall_ms / 1000, result.cpu_ms / 1000)
        if result.subrequests:
            self.metrics.observe_subrequests(name, (r.outcome for r in result.subrequests))
        channel = self.channel
        if worker is None or channel is None:
            return
        rate = self.tail.wants(name, status, outcome)
        if rate:
            item = event(
                worker=name,
                version=self.version_of(worker),
                method=method,
                url=url,
                result=result,
                wall_ms=wall_ms,
                process=self.process,
                rate=rate,
            )
            channel.send_event(name, item)
