"""``atoll serve``'s first process: starts the serving processes, serves the admin API.

Processes::

    supervisor (this module)   holds the state folder's lock; checks and stores uploads
                               (deployer.py); serves the admin API (admin.py) with one
                               uvicorn server on its event loop; restarts a serving
                               process that dies; turns SIGINT/SIGTERM into a graceful stop
    serving process 0..N-1     process.py: loads the active workers, serves HTTP on the
                               node's port (own SO_REUSEPORT socket, several event loops)

The supervisor binds the HTTP port first (with ``SO_REUSEPORT``, never
listening), which resolves ``--port 0`` and fails early when the port is taken;
each serving process then binds its own listening socket to that port and the
kernel spreads new connections over them. Serving processes run in their own
session, so a Ctrl-C in the terminal reaches the supervisor only, and it
stops them once, gracefully (in-flight requests finish).

Each serving process is linked to the supervisor by a socketpair
(``channel.py``). After every change (deploy, rollback, delete, secret) the
supervisor sends ``sync`` to every process and answers the admin request when
all have replied: at that point every process routes new requests to the new
version (one that failed to load it is synced again, then the change is
undone: see :meth:`Supervisor.change`). There is no polling; a process that
(re)starts reads the state folder itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import uvicorn

from atoll.bindings.kv import backend_name, open_backend
from atoll.bindings.outbound.policy import ADMIN_ENV
from atoll.control.admin import AdminApp
from atoll.control.bundle import Limits
from atoll.control.channel import encode
from atoll.control.cron import SqliteClaims
from atoll.control.deployer import Deployer
from atoll.control.metrics import merge, render
from atoll.control.process import ProcessOptions, listen_socket
from atoll.control.state import Pointer, State
from atoll.control.tail import Subscription, TailFilter, TailHub
from atoll.errors import AtollError, ControlError
from atoll.http.bodies import DEFAULT_BODY_MEMORY
from atoll.http.protocol import ConnectionPool, protocol_class
from atoll.http.server import ServerLimits
from atoll.worker import Runtime

if TYPE_CHECKING:  # redis and cryptography are imported only by a node of a cluster
    from atoll.control.cluster import Cluster, ClusterDeployer, Keyring
    from atoll.control.cluster_link import ClusterLink

__all__ = ["ServeOptions", "Supervisor"]

log = logging.getLogger("atoll.control")

T = TypeVar("T")

#: Seconds a serving process may take to load the workers and listen.
START_TIMEOUT = 120.0
#: Seconds a serving process may take to load a change before the admin call answers anyway.
SYNC_TIMEOUT = 60.0
#: Times a serving process is told to sync a change it failed to load before it is undone.
SYNC_ATTEMPTS = 3
#: Seconds before the second sync of a process that failed to load a change (then twice that).
SYNC_RETRY_DELAY = 0.2
#: Seconds between two restarts of a serving process that keeps dying.
RESTART_DELAY = 1.0
#: Seconds a cluster change waits for every live node to report it active.
ACK_WAIT = 2.0
#: Seconds a node that mirrored the cluster before waits for Redis at start.
FIRST_SYNC_WAIT = 10.0
#: Seconds deleted files stay in trash/ (requests in flight may still read them).
TRASH_DELAY = 60.0
#: The admin API's connections: few, from operators' tools.
ADMIN_LIMITS = ServerLimits(max_connections=64, max_head_bytes=16 * 1024, max_headers=64)


@dataclass(frozen=True, slots=True)
class ServeOptions:
    """Everything ``atoll serve`` was told."""

    state: Path
    host: str = "127.0.0.1"
    port: int = 8787
    admin_host: str = "127.0.0.1"
    admin_port: int = 8788
    processes: int = 1
    loops: int = 4
    token: str | None = None
    log_level: str = "info"
    kv: str = "sqlite"
    shutdown_timeout: float = 10.0
    limits: Limits = field(default_factory=Limits)
    server_limits: ServerLimits = field(default_factory=ServerLimits)
    """What a client connection may cost each serving process (``http/protocol.py``)."""
    body_memory: int = DEFAULT_BODY_MEMORY
    """Bytes of request bodies each serving process holds at once (``http/bodies.py``)."""
    cluster: str | None = None
    """Redis URL of the cluster store (``cluster.py``); None: a node on its own."""
    cluster_keys: Path | None = None
    """File of the keys that encrypt secrets in the cluster store (else $ATOLL_CLUSTER_KEYS)."""
    node_id: str | None = None
    """This node's name in the cluster (default HOSTNAME:PORT)."""


class _Process:
    """One serving process as the supervisor sees it."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.proc: asyncio.subprocess.Process | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.pending: dict[int, asyncio.Future[Any]] = {}
        self.ready: asyncio.Future[None] | None = None
        self.ids = itertools.count(1)

    @property
    def connected(self) -> bool:
        return self.writer is not None and not self.writer.is_closing()

    def post(self, message: dict[str, Any]) -> None:
        if self.writer is not None and not self.writer.is_closing():
            self.writer.write(encode(message))

    async def request(self, op: str, seconds: float, **fields: Any) -> Any:
        """Send ``op`` and wait for the reply's data. Raises ControlError on error or timeout."""
        if not self.connected:
            raise ControlError(f"serving process {self.index} is not running")
        ident = next(self.ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.pending[ident] = future
        try:
            self.post({"op": op, "id": ident, **fields})
            async with asyncio.timeout(seconds):
                return await future
        except TimeoutError:
            raise ControlError(f"serving process {self.index} did not answer {op!r}") from None
        finally:
            self.pending.pop(ident, None)

    def fail_pending(self) -> None:
        for future in self.pending.values():
            if not future.done():
                future.set_exception(ControlError(f"serving process {self.index} exited"))
        self.pending.clear()


class _AdminServer(uvicorn.Server):
    """uvicorn on the supervisor's loop; the supervisor handles signals, not uvicorn.

    Its connections have the serving port's head limits (``http/protocol.py``): a
    client without a token must not cost the supervisor more than a small head.
    """

    def __init__(self, config: uvicorn.Config, pool: ConnectionPool) -> None:
        super().__init__(config)
        self.listening = asyncio.Event()
        self.pool = pool

    async def on_tick(self, counter: int) -> bool:
        if counter % 5 == 0:
            self.pool.sweep()
        return await super().on_tick(counter)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.listening.set()

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class Supervisor:
    """Runs a node (see the module docstring). One per state folder."""

    def __init__(self, options: ServeOptions) -> None:
        if options.processes < 1:
            raise ControlError("--processes must be at least 1")
        self.options = options
        self.state = State(options.state)
        backend_name(options.kv)  # an unknown spec fails here, not in every process
        self.runtime: Runtime | None = None
        self.hub = TailHub(self._filters_changed)
        self.processes = [_Process(i) for i in range(options.processes)]
        self._lock = asyncio.Lock()
        self._stopping = asyncio.Event()
        self._deployer: Deployer | None = None
        self.cluster: Cluster | None = None
        self.link: ClusterLink | None = None
        self.keyring: Keyring | None = None
        if options.cluster:
            from atoll.control.cluster import Keyring

            self.keyring = Keyring.load(options.cluster_keys)
        self.port = 0
        self.admin_port = 0

    @property
    def deployer(self) -> Deployer:
        assert self._deployer is not None, "the supervisor is not running"
        return self._deployer

    # -- the run -----------------------------------------------------------------------------

    def run(self, ready: Callable[[str, int, str, int, str | None], None] | None = None) -> None:
        """Serve until SIGINT/SIGTERM (blocks). ``ready(host, port, admin_host, admin_port,
        token_file)`` is called once every serving process listens.

        Raises :class:`~atoll.errors.AtollError` when the state folder is in use, a
        port cannot be bound, or a serving process fails to start.
        """
        os.umask(0o077)  # whatever the node writes (state, KV, cache) is its user's alone
        self.state.lock()
        sys.dont_write_bytecode = True  # checking an upload must not write into it
        try:
            self.state.prepare()
            asyncio.run(self._run(ready))
        finally:
            self.state.unlock()

    async def _run(self, ready: Callable[[str, int, str, int, str | None], None] | None) -> None:
        options = self.options
        token_file: str | None = None
        token = options.token
        if not token:
            token = self.state.admin_token()
            token_file = str(self.state.root / "admin-token")
        self.runtime = Runtime(cache_dir=self.state.cache_dir)
        if options.port:
            _probe(options.host, options.port)
        reservation = listen_socket(options.host, options.port)
        self.port = reservation.getsockname()[1]
        if options.cluster and self.keyring is not None:
            from atoll.control.cluster import Cluster, ClusterDeployer

            node_id = options.node_id or f"{socket.gethostname()}:{self.port}"
            self.cluster = Cluster(options.cluster, node_id, self.keyring)
            self._deployer = ClusterDeployer(
                self.state, self.runtime, self.cluster, limits=options.limits
            )
            await self._first_sync()
        else:
            self._deployer = Deployer(self.state, self.runtime, limits=options.limits)
        admin_sock = _admin_socket(options.admin_host, options.admin_port)
        self.admin_port = admin_sock.getsockname()[1]
        # Serving processes inherit it: their workers' subrequests never reach the admin API.
        os.environ[ADMIN_ENV] = f"{admin_sock.getsockname()[0]}:{self.admin_port}"
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._on_signal)
        for process in self.processes:
            process.ready = loop.create_future()
        await self._prepare_files()
        keepers: list[asyncio.Task[None]] = []
        admin: asyncio.Task[None] | None = None
        server: _AdminServer | None = None
        try:
            keepers = [asyncio.create_task(self._keep(p)) for p in self.processes]
            started = asyncio.gather(*(self._wait_ready(p) for p in self.processes))
            stop = asyncio.ensure_future(self._stopping.wait())
            waiting: list[asyncio.Future[Any]] = [started, stop]
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            if not started.done():  # a signal while starting
                started.cancel()
                with contextlib.suppress(asyncio.CancelledError, AtollError):
                    await started
                return
            stop.cancel()
            started.result()  # raises if a process failed to start
            app = AdminApp(self, token, limits=options.limits)
            pool = ConnectionPool(ADMIN_LIMITS, ADMIN_LIMITS.max_connections)
            config = uvicorn.Config(
                app,
                http=protocol_class(ADMIN_LIMITS, pool),
                lifespan="off",
                log_config=None,
                access_log=False,
                timeout_graceful_shutdown=5,
            )
            server = _AdminServer(config, pool)
            admin = asyncio.create_task(server.serve(sockets=[admin_sock]))
            listening = asyncio.ensure_future(server.listening.wait())
            await asyncio.wait([listening, admin], return_when=asyncio.FIRST_COMPLETED)
            listening.cancel()
            if admin.done():
                admin.result()  # raises why it failed
                raise ControlError("the admin API stopped while starting")
            if ready is not None:
                ready(options.host, self.port, options.admin_host, self.admin_port, token_file)
            trash = asyncio.create_task(self._empty_trash())
            link: asyncio.Task[None] | None = None
            if self.cluster is not None:
                from atoll.control.cluster_link import ClusterLink

                self.link = ClusterLink(
                    self.cluster, self._resync, self.hub.publish, self._remote_filters
                )
                self.link.start()
                link = asyncio.create_task(self.link.run())
            await self._stopping.wait()
            trash.cancel()
            if link is not None:
                link.cancel()
        finally:
            self._stopping.set()
            self.hub.close()
            if self.link is not None:
                await asyncio.to_thread(self.link.stop)
            if self.cluster is not None:
                self.cluster.close()
            if server is not None and admin is not None:
                server.should_exit = True
                with contextlib.suppress(Exception):
                    await admin
            await self._stop_processes()
            for keeper in keepers:
                keeper.cancel()
            await asyncio.gather(*keepers, return_exceptions=True)
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            reservation.close()
            admin_sock.close()

    async def _prepare_files(self) -> None:
        """Create the SQLite files the serving processes share (cron claims; the KV store
        when it is SQLite) before any starts, in WAL mode.

        Turning a new file to WAL takes a lock SQLite does not wait for: processes that
        start together and all create it failed at random with "database is locked".
        Once a file is in WAL mode, opening it again changes nothing.
        """
        await asyncio.to_thread(SqliteClaims, self.state.root / "cron.sqlite")
        if backend_name(self.options.kv) == "sqlite":
            backend = await asyncio.to_thread(
                open_backend, self.options.kv, state_dir=self.state.root
            )
            await backend.close()

    def _on_signal(self) -> None:
        if self._stopping.is_set():
            for process in self.processes:  # a second signal: do not wait
                if process.proc is not None and process.proc.returncode is None:
                    process.proc.kill()
        self._stopping.set()

    async def _wait_ready(self, process: _Process) -> None:
        assert process.ready is not None
        async with asyncio.timeout(START_TIMEOUT):
            await process.ready

    async def _keep(self, process: _Process) -> None:
        """Run serving process ``process.index``, restarting it when it dies, until stopping."""
        first = True
        while not self._stopping.is_set():
            try:
                code = await self._spawn(process)
            except Exception as exc:  # pragma: no cover - spawning python itself failed
                log.exception("serving process %d could not start", process.index)
                if process.ready is not None and not process.ready.done():
                    process.ready.set_exception(ControlError(str(exc)))
                return
            if self._stopping.is_set():
                return
            if first and process.ready is not None and not process.ready.done():
                process.ready.set_exception(
                    ControlError(
                        f"serving process {process.index} exited with code {code} while starting",
                        hint="see its error above",
                    )
                )
                return
            first = False
            log.error("serving process %d exited with code %s; restarting", process.index, code)
            await asyncio.sleep(RESTART_DELAY)

    async def _spawn(self, process: _Process) -> int:
        """Start one serving process and read its channel until it exits; returns its exit code."""
        loop = asyncio.get_running_loop()
        ours, theirs = socket.socketpair()
        options = ProcessOptions(
            state=str(self.state.root),
            host=self.options.host,
            port=self.port,
            loops=self.options.loops,
            index=process.index,
            channel_fd=theirs.fileno(),
            log_level=self.options.log_level,
            kv=self.options.kv,
            server_limits=asdict(self.options.server_limits),
            body_memory=self.options.body_memory,
            cluster=self.options.cluster,
            node_id=self.cluster.node_id if self.cluster is not None else "",
        )
        if process.ready is None or process.ready.done():
            process.ready = loop.create_future()
        # Connected before the process exists: a change made while it starts is sent to
        # it (buffered in the socketpair, read once its first load is done) instead of
        # being skipped while its own load may already have read the old state.
        reader, writer = await asyncio.open_unix_connection(sock=ours, limit=16 * 1024 * 1024)
        process.writer = writer
        try:
            process.proc = await asyncio.create_subprocess_exec(
                *options.to_argv(),
                pass_fds=[theirs.fileno()],
                stdin=asyncio.subprocess.DEVNULL,
                start_new_session=True,
            )
        except BaseException:
            process.writer = None
            writer.close()
            raise
        finally:
            theirs.close()
        filters = self._all_filters()
        if filters:
            process.post({"op": "tail", "filters": filters})
        try:
            while line := await reader.readline():
                self._on_message(process, line)
        finally:
            process.writer = None
            process.fail_pending()
            writer.close()
        return await process.proc.wait()

    def _on_message(self, process: _Process, line: bytes) -> None:
        message = json.loads(line)
        op = message.get("op")
        if op == "event":
            item = message["event"]
            if self.cluster is not None:
                item["node"] = self.cluster.node_id
                if self.link is not None:
                    self.link.publish_event(item)
            self.hub.publish(item)
        elif op == "dropped":
            self.hub.lost(message["worker"], int(message["count"]))
        elif op == "reply":
            future = process.pending.get(message.get("id", -1))
            if future is not None and not future.done():
                if "error" in message:
                    future.set_exception(ControlError(message["error"]))
                else:
                    future.set_result(message.get("data"))
        elif op == "ready":
            if process.ready is not None and not process.ready.done():
                process.ready.set_result(None)
            log.debug("serving process %d (pid %s) ready", process.index, message.get("pid"))

    async def _stop_processes(self) -> None:
        running = [
            p.proc for p in self.processes if p.proc is not None and p.proc.returncode is None
        ]
        for proc in running:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(self.options.shutdown_timeout + 5):
                await asyncio.gather(*(proc.wait() for proc in running))
        except TimeoutError:
            for proc in running:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
            await asyncio.gather(*(proc.wait() for proc in running))

    async def _empty_trash(self) -> None:
        while True:
            await asyncio.sleep(TRASH_DELAY / 2)
            await asyncio.to_thread(self.state.empty_trash, TRASH_DELAY)

    # -- what the admin API calls (admin.Control) ---------------------------------------------

    async def change(self, operation: Callable[[], T]) -> tuple[T, dict[str, Any]]:
        """Run ``operation`` (a deployer call, in a thread), then sync every serving process;
        answers once each live process serves the change.

        A process that still fails to load it after :data:`SYNC_ATTEMPTS` syncs (the
        upload was checked, so only the machine does that: memory, disk) would serve
        another version than the others: on a node on its own the active pointers are
        put back as they were, every process synced back, and :class:`ControlError`
        names the process and its error.
        """
        async with self._lock:
            before = await asyncio.to_thread(self._pointers) if self.cluster is None else {}
            result = await asyncio.to_thread(operation)
            report = await self._sync_all()
            if report["errors"] and self.cluster is None:
                await self._undo(before, report["errors"])
            cluster = self.cluster
            rev = 0
            if cluster is not None:
                rev = self._cluster_deployer().current.rev
                cluster.applied = rev
                cluster.last_sync = time.time()
                with contextlib.suppress(Exception):  # Redis down: the heartbeat says it later
                    await asyncio.to_thread(cluster.heartbeat)
        if cluster is not None:
            report["nodes"] = await asyncio.to_thread(cluster.wait_activated, rev, ACK_WAIT)
        return result, report

    # -- the cluster ---------------------------------------------------------------------------

    async def _first_sync(self) -> None:
        """Mirror the cluster before any serving process starts (so before any traffic).

        Waits for Redis; a state folder that mirrored the cluster before starts on its
        copy (degraded) after :data:`FIRST_SYNC_WAIT` seconds.
        """
        from atoll.control.cluster import RedisError

        assert self.cluster is not None
        deployer = self._cluster_deployer()
        started = time.monotonic()
        logged = False
        while not self._stopping.is_set():
            try:
                target = await asyncio.to_thread(self.cluster.read)
                errors = await asyncio.to_thread(deployer.mirror, target)
                for name, error in errors.items():
                    log.error("worker %s not mirrored at start: %s", name, error)
                self.cluster.applied = target.rev
                self.cluster.last_sync = time.time()
                await asyncio.to_thread(self.cluster.heartbeat)
                return
            except RedisError as exc:
                if not logged:
                    log.error("cluster store unreachable at start (%s); waiting for it", exc)
                    logged = True
                if self.state.workers() and time.monotonic() - started > FIRST_SYNC_WAIT:
                    log.error("starting degraded on the state folder's last copy of the cluster")
                    return
                await asyncio.sleep(0.5)

    async def _resync(self) -> None:
        """Mirror the cluster's newest rev and swap every serving process to it (ClusterLink)."""
        assert self.cluster is not None
        deployer = self._cluster_deployer()
        async with self._lock:
            target = await asyncio.to_thread(self.cluster.read)
            if target.rev == self.cluster.applied and not self.cluster.stale:
                return
            errors = await asyncio.to_thread(deployer.mirror, target)
            self.cluster.stale = False
            await self._sync_all()
            if errors:  # not reported as served: tried again at the next poll
                return
            self.cluster.applied = target.rev
            self.cluster.last_sync = time.time()
        log.info("cluster rev %d active on this node", target.rev)

    def _cluster_deployer(self) -> ClusterDeployer:
        deployer = self._deployer
        assert deployer is not None, "the supervisor is not running"
        assert hasattr(deployer, "mirror"), "not a node of a cluster"
        return deployer  # type: ignore[return-value]

    def _remote_filters(self, _filters: list[dict[str, Any]]) -> None:
        self._filters_changed(self.hub.filters())

    def _all_filters(self) -> list[dict[str, Any]]:
        mine = [f.to_json() for f in self.hub.filters()]
        remote = self.link.remote_filters if self.link is not None else []
        return mine + remote

    def _pointers(self) -> dict[str, Pointer | None]:
        return {name: self.state.active(name) for name in self.state.workers()}

    async def _undo(self, before: dict[str, Pointer | None], errors: dict[str, str]) -> None:
        """Put the active pointers back as ``before`` and sync; raise why (see :meth:`change`)."""

        def restore() -> list[str]:
            changed = []
            for name, pointer in self._pointers().items():
                old = before.get(name)
                if pointer == old:
                    continue
                changed.append(name)
                if old is None:
                    self.state.deactivate(name)
                else:
                    self.state.point(name, old)
            return changed

        changed = await asyncio.to_thread(restore)
        failed = "; ".join(f"process {index}: {error}" for index, error in errors.items())
        log.error(
            "change not loaded by every serving process (%s); undone for %s",
            failed,
            ", ".join(changed) or "nothing",
        )
        back = await self._sync_all()
        if changed:
            hint = "nothing changed; try again (see the node's log for why it failed)"
        else:
            hint = "see the node's log for why it failed"
        if back["errors"]:
            hint = f"undoing failed too ({back['errors']}); see the node's log"
        raise ControlError(
            f"the change was not loaded by every serving process ({failed})", hint=hint
        )

    async def _sync_all(self) -> dict[str, Any]:
        """Sync every connected process; one that fails to load is synced again, up to
        :data:`SYNC_ATTEMPTS` times. ``errors`` names the processes that still failed.

        A process that exits meanwhile is not an error: when it restarts it loads the
        state folder as it is before it listens.
        """
        live = [p for p in self.processes if p.connected]
        errors: dict[str, str] = {}
        pending = live
        for attempt in range(SYNC_ATTEMPTS):
            if attempt:
                await asyncio.sleep(SYNC_RETRY_DELAY * attempt)
            replies = await asyncio.gather(
                *(p.request("sync", SYNC_TIMEOUT) for p in pending), return_exceptions=True
            )
            failed = []
            for process, reply in zip(pending, replies, strict=True):
                key = str(process.index)
                errors.pop(key, None)
                if isinstance(reply, BaseException):
                    if process.connected:  # timed out: still serving what it had
                        errors[key] = str(reply)
                        failed.append(process)
                elif reply.get("errors"):
                    errors[key] = "; ".join(reply["errors"].values())
                    failed.append(process)
            if not failed:
                break
            log.warning(
                "serving process %s did not load the change (%s); syncing it again",
                ", ".join(str(p.index) for p in failed),
                "; ".join(errors.values()),
            )
            pending = [p for p in failed if p.connected]
            if not pending:
                errors = {k: v for k, v in errors.items() if self.processes[int(k)].connected}
                break
        synced = sum(1 for p in live if p.connected and str(p.index) not in errors)
        return {"total": len(self.processes), "synced": synced, "errors": errors}

    async def metrics(self) -> str:
        live = [p for p in self.processes if p.connected]
        replies = await asyncio.gather(
            *(p.request("metrics", 10.0) for p in live), return_exceptions=True
        )
        snapshots = [r for r in replies if not isinstance(r, BaseException)]
        merged = merge(snapshots)
        merged["tail_dropped"] += self.hub.dropped + sum(
            s.dropped_total for s in self.hub.subscriptions
        )
        versions = {}
        for name in self.state.workers():
            pointer = self.state.active(name)
            if pointer is not None:
                versions[name] = pointer.version
        text = render(merged, versions=versions, processes=len(snapshots))
        return text + self._cluster_metrics()

    def _cluster_metrics(self) -> str:
        cluster = self.cluster
        if cluster is None:
            return ""
        node = cluster.node_id.replace("\\", "\\\\").replace('"', '\\"')
        failures = self.link.failures if self.link is not None else 0
        rows = [
            ("atoll_cluster_info", "gauge", f'{{node="{node}"}}', 1),
            ("atoll_cluster_up", "gauge", "", int(cluster.up)),
            ("atoll_cluster_nodes", "gauge", "", len(cluster.seen)),
            ("atoll_cluster_rev", "gauge", "", cluster.applied),
            ("atoll_cluster_lag_revisions", "gauge", "", max(0, cluster.latest - cluster.applied)),
            ("atoll_cluster_last_sync_timestamp_seconds", "gauge", "", round(cluster.last_sync, 3)),
            ("atoll_cluster_errors_total", "counter", "", failures),
        ]
        return "".join(
            f"# TYPE {name} {kind}\n{name}{labels} {value}\n" for name, kind, labels, value in rows
        )

    def health(self) -> tuple[bool, dict[str, Any]]:
        cluster = self.cluster
        if cluster is None:
            return True, {}
        return cluster.applied >= 0, {
            "node": cluster.node_id,
            "rev": cluster.applied,
            "lag": max(0, cluster.latest - cluster.applied),
            "degraded": not cluster.up,
            "nodes": sorted(cluster.seen),
        }

    async def subscribe(self, tail_filter: TailFilter) -> Subscription:
        sub = self.hub.subscribe(tail_filter)
        await self._send_filters()
        return sub

    async def unsubscribe(self, sub: Subscription) -> None:
        self.hub.unsubscribe(sub)

    def _filters_changed(self, filters: Sequence[TailFilter]) -> None:
        if self.link is not None:
            self.link.filters_changed([f.to_json() for f in filters])
        message = {"op": "tail", "filters": self._all_filters()}
        for process in self.processes:
            process.post(message)

    async def _send_filters(self) -> None:
        """Wait until every serving process has the current filters (a round trip each)."""
        live = [p for p in self.processes if p.connected]
        await asyncio.gather(*(p.request("ping", 10.0) for p in live), return_exceptions=True)


def _probe(host: str, port: int) -> None:
    """Fail if anything listens on ``host:port``, even another node with SO_REUSEPORT
    (which our sockets would silently share the port with)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ControlError(
                f"cannot listen on {host}:{port}: {exc.strerror}",
                hint="choose another --port (0 picks a free one) or stop what uses this one",
            ) from exc


def _admin_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say TCP, and
    # without it a small answer waits ~40 ms for the client's delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ControlError(
            f"cannot listen on {host}:{port} for the admin API: {exc.strerror}",
            hint="choose another --admin-port (0 picks a free one)",
        ) from exc
    sock.listen(128)
    return sock
