"""A serving process of ``atoll serve``: ``python -m atoll.control.process OPTIONS-JSON``.

Started by the supervisor (``supervisor.py``), never by hand. It opens the
KV store (its own connection), loads every active worker from the state folder (:class:`~atoll.control.node.Node`),
opens its own listening socket on the node's port with ``SO_REUSEPORT`` (the
kernel spreads new connections over the processes' sockets), tells the
supervisor it is ready over the inherited channel, and serves with
:func:`atoll.http.server.serve` (several event loops in threads) until
SIGTERM, or until the channel closes because the supervisor died.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from atoll.bindings.kv import KVHousekeeping, kv_bindings, open_backend
from atoll.control.channel import ProcessChannel
from atoll.control.cron import Claims, SqliteClaims
from atoll.control.node import Node
from atoll.control.state import State
from atoll.control.tail import TailFilter
from atoll.http.bodies import DEFAULT_BODY_MEMORY, BodyBudget
from atoll.http.server import ServerLimits, bind, serve
from atoll.runtime.logs import LineHandler
from atoll.worker import Runtime

__all__ = ["ProcessOptions", "listen_socket", "main"]

log = logging.getLogger("atoll.control")

#: Times a starting process tries to load a worker that fails before it serves without it.
LOAD_ATTEMPTS = 3
#: Seconds before the second try (then twice that).
LOAD_RETRY_DELAY = 0.2


@dataclass(frozen=True, slots=True)
class ProcessOptions:
    """What the supervisor tells a serving process (as JSON on its command line)."""

    state: str
    host: str
    port: int
    loops: int
    index: int
    channel_fd: int
    log_level: str
    kv: str = "sqlite"
    """KV store spec (``atoll.bindings.kv.open_backend``); ``sqlite`` is ``STATE/kv.sqlite3``."""
    server_limits: dict[str, Any] = field(default_factory=dict)
    """:class:`~atoll.http.server.ServerLimits` fields (defaults for those missing)."""
    body_memory: int = DEFAULT_BODY_MEMORY
    """Bytes of request bodies the process holds at once."""
    cluster: str | None = None
    """The cluster store's URL: cron claims go there (one run per cluster)."""
    node_id: str = ""

    def to_argv(self) -> list[str]:
        return [sys.executable, "-m", "atoll.control.process", json.dumps(asdict(self))]


def listen_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` with ``SO_REUSEPORT`` (not yet listening).

    Raises :class:`~atoll.errors.ConfigError` if the address cannot be bound.
    """
    return bind(host, port, reuse_port=True)


def _setup_logging(level: str, index: int) -> None:
    handler = LineHandler(sys.stderr)  # a request's lines at once (runtime/logs.py)
    handler.setFormatter(
        logging.Formatter(f"%(asctime)s [{index}] %(message)s", datefmt="%H:%M:%S")
    )
    root = logging.getLogger("atoll")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False


def run(options: ProcessOptions) -> None:
    """Serve until SIGTERM or until the supervisor goes away."""
    _setup_logging(options.log_level, options.index)
    os.umask(0o077)  # the state folder's files (KV, compiled code) are the node's user's alone
    sys.dont_write_bytecode = True  # versions are never written to, not even __pycache__/
    state = State(Path(options.state))
    channel_sock = socket.socket(fileno=options.channel_fd)
    backend = open_backend(options.kv, state_dir=state.root)  # once per process
    housekeeping = KVHousekeeping(backend)  # purges while serving, closes after
    node = Node(
        state,
        Runtime(cache_dir=state.cache_dir),
        extra_bindings=kv_bindings(backend),
        process=options.index,
        on_startup=(housekeeping.start,),
        on_shutdown=(housekeeping.stop,),
        body_budget=BodyBudget(options.body_memory),
        claims=_claims(options, state),
    )
    _first_load(node)
    stopping = threading.Event()

    def closed() -> None:
        if not stopping.is_set():
            stopping.set()
            os.kill(os.getpid(), signal.SIGTERM)

    def metrics(_: dict[str, Any]) -> Any:
        if node.channel is not None:
            node.metrics.tail_dropped = node.channel.dropped_total
        return node.metrics.snapshot()

    def tail(message: dict[str, Any]) -> None:
        node.tail.set_filters(TailFilter.from_json(f) for f in message.get("filters", ()))

    channel = ProcessChannel(
        channel_sock,
        {"sync": lambda _: node.sync(), "metrics": metrics, "tail": tail, "ping": lambda _: None},
        on_closed=closed,
    )
    node.channel = channel
    sock = listen_socket(options.host, options.port)
    try:
        channel.start()
        serve(
            node.app,
            sock=sock,
            loops=options.loops,
            ready=lambda _h, _p: channel.send({"op": "ready", "pid": os.getpid()}),
            log_level="warning",
            limits=ServerLimits(**options.server_limits),
        )
    finally:
        stopping.set()
        sock.close()
        asyncio.run(backend.close())  # if the server did not get to (closing twice is a no-op)


def _first_load(node: Node) -> None:
    """Load the active workers before listening; a worker that fails (the machine: memory,
    disk) is tried again, :data:`LOAD_ATTEMPTS` times in all, then the process serves the rest."""
    for attempt in range(1, LOAD_ATTEMPTS + 1):
        errors = node.sync()["errors"]
        if not errors or attempt == LOAD_ATTEMPTS:
            return
        log.warning("loading %s failed; trying again", ", ".join(errors))
        time.sleep(LOAD_RETRY_DELAY * attempt)


def _claims(options: ProcessOptions, state: State) -> Claims | None:
    """Cron claims in the cluster store, falling back to the node's own (None: the node's)."""
    if options.cluster is None:
        return None
    from atoll.control.cluster import RedisClaims  # imports redis: only for a cluster

    return RedisClaims(options.cluster, options.node_id, SqliteClaims(state.root / "cron.sqlite"))


def main(argv: list[str]) -> int:
    options = ProcessOptions(**json.loads(argv[0]))
    try:
        run(options)
    except Exception:
        logging.getLogger("atoll.control").exception("serving process %d failed", options.index)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
