"""The supervisor's live link to the cluster: notifications, the catch-up poll, tail relay.

Runs in the supervisor of a node started with ``--cluster`` (``supervisor.py``):

- a listener thread subscribed to ``atoll:changes`` and ``atoll:tail``: a new
  rev wakes :meth:`ClusterLink.run` at once; another node's tail event goes to
  this node's tail streams. On a Redis error it reconnects every 0.5 s.
- :meth:`ClusterLink.run`, a task on the supervisor's loop: once per wake-up
  and at least once a second it reads the rev in ``atoll:state`` (so a missed
  message is caught up by this poll), asks the supervisor to mirror a new rev
  (``resync``), writes the heartbeat (the rev this node serves) and the tail
  filters of its streams, and reads the other nodes' filters. Redis down: it
  logs once, marks the node degraded, and tries again next second.
- a publisher thread that sends this node's tail events to ``atoll:tail``
  while another node has a stream open (a bounded queue; full: dropped).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import queue
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from redis.exceptions import RedisError

from atoll.control.cluster import CHANGES, NODES, TAIL, TAIL_FILTERS, Cluster, tail_filters

__all__ = ["POLL", "ClusterLink"]

log = logging.getLogger("atoll.cluster")

#: Seconds between two reads of the cluster's rev when no notification came.
POLL = 1.0
#: Tail events waiting for Redis before new ones are dropped.
TAIL_QUEUE = 2000


class ClusterLink:
    """See the module docstring. Start with :meth:`start`, run :meth:`run`, end with :meth:`stop`."""

    def __init__(
        self,
        cluster: Cluster,
        resync: Callable[[], Awaitable[None]],
        on_event: Callable[[dict[str, Any]], None],
        on_remote_filters: Callable[[list[dict[str, Any]]], None],
    ) -> None:
        self.cluster = cluster
        self.resync = resync
        self.on_event = on_event
        self.on_remote_filters = on_remote_filters
        self.local_filters: list[dict[str, Any]] = []
        self.remote_filters: list[dict[str, Any]] = []
        self.wake = asyncio.Event()
        self.failures = 0
        """Times a call into Redis failed (``atoll_cluster_errors_total``)."""
        self._stop = threading.Event()
        self._events: queue.Queue[dict[str, Any]] = queue.Queue(TAIL_QUEUE)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        for target, name in ((self._listen, "listen"), (self._publish, "tail-publish")):
            thread = threading.Thread(target=target, name=f"atoll-cluster-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        with contextlib.suppress(queue.Full):
            self._events.put_nowait({})
        for thread in self._threads:
            thread.join(timeout=3)
        with contextlib.suppress(Exception):  # a node that stops leaves the cluster at once
            self.cluster.redis.hdel(TAIL_FILTERS, self.cluster.node_id)
            self.cluster.redis.hdel(NODES, self.cluster.node_id)

    # -- the loop task -----------------------------------------------------------------------

    async def run(self) -> None:
        """Until cancelled: catch up with the cluster, heartbeat, exchange tail filters."""
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(POLL):
                    await self.wake.wait()
            self.wake.clear()
            try:
                state = await asyncio.to_thread(self.cluster.read)
                if state.rev != self.cluster.applied or self.cluster.stale:
                    await self.resync()
                await asyncio.to_thread(self._beat)
                if not self.cluster.up:
                    raise RedisError("heartbeat failed")
                if self.failures and self._was_down:
                    log.warning("cluster store answers again; node in sync at rev %d",
                                self.cluster.applied)  # fmt: skip
                self._was_down = False
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis down, or anything else: logged, tried again
                if not isinstance(exc, RedisError):
                    log.exception("cluster sync failed; trying again in %.0f s", POLL)
                    continue
                self.cluster.up = False
                self.failures += 1
                if not self._was_down:
                    log.error(
                        "cluster store unreachable (%s): serving rev %d as is; "
                        "changes are refused until it answers",
                        exc,
                        self.cluster.applied,
                    )
                self._was_down = True

    _was_down = False

    def filters_changed(self, filters: Sequence[Mapping[str, Any]]) -> None:
        """This node's streams changed: tell the others now (not at the next beat)."""
        self.local_filters = [dict(f) for f in filters]
        self.wake.set()

    def _beat(self) -> None:
        cluster = self.cluster
        cluster.heartbeat()
        entry = json.dumps({"seen": time.time(), "filters": self.local_filters})
        pipe = cluster.redis.pipeline(transaction=False)
        if self.local_filters:
            pipe.hset(TAIL_FILTERS, cluster.node_id, entry)
        else:
            pipe.hdel(TAIL_FILTERS, cluster.node_id)
        pipe.hgetall(TAIL_FILTERS)
        raw = pipe.execute()[-1]
        remote = list(tail_filters(raw, cluster.node_id))
        if remote != self.remote_filters:
            self.remote_filters = remote
            if self._loop is not None:
                self._loop.call_soon_threadsafe(self.on_remote_filters, remote)

    # -- threads -----------------------------------------------------------------------------

    def publish_event(self, item: dict[str, Any]) -> None:
        """Queue this node's tail event for the other nodes' streams; never blocks."""
        if self.remote_filters:
            with contextlib.suppress(queue.Full):
                self._events.put_nowait(item)

    def _publish(self) -> None:
        while not self._stop.is_set():
            item = self._events.get()
            if not item:
                continue
            with contextlib.suppress(RedisError):
                self.cluster.redis.publish(TAIL, json.dumps(item, default=str))

    def _listen(self) -> None:
        loop = self._loop
        assert loop is not None
        while not self._stop.is_set():
            try:
                pubsub = self.cluster.redis.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(CHANGES, TAIL)
                loop.call_soon_threadsafe(self.wake.set)  # catch up on what was missed
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=0.5)
                    if message is None:
                        continue
                    if message["channel"] == CHANGES.encode():
                        loop.call_soon_threadsafe(self.wake.set)
                    else:
                        item = json.loads(message["data"])
                        if item.get("node") != self.cluster.node_id:
                            loop.call_soon_threadsafe(self.on_event, item)
            except (RedisError, OSError, ValueError):
                time.sleep(0.5)
            except RuntimeError:  # the loop closed: the node is stopping
                return
