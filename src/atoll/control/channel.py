"""The line between the supervisor and one serving process: JSON messages over a socketpair.

One message per line (JSON escapes newlines inside strings). The supervisor
creates a ``socket.socketpair()`` per serving process and passes one end
to it (its file descriptor is inherited).

Supervisor → process (``id`` is echoed in the reply)::

    {"op": "sync", "id": 7}          load what changed in the state folder, swap, reply
    {"op": "metrics", "id": 8}       reply with the process's metrics snapshot
    {"op": "tail", "filters": [...]} the open tail streams' filters (no reply)

Process → supervisor::

    {"op": "ready", "pid": 123}                     listening, workers loaded
    {"op": "reply", "id": 7, "data": {...}}          (or "error": "message")
    {"op": "event", "event": {...}}                  a tail event
    {"op": "dropped", "worker": "seed", "count": 3}  tail events lost in the process's queue

:class:`ProcessChannel` is the serving process's end: a reader thread that
runs the handlers, and a sender thread that drains a bounded event queue.
Requests only ever call :meth:`ProcessChannel.send_event`, which never
blocks: when the queue is full it counts a drop. When the supervisor's end
closes (it exited, even by ``kill -9``), ``on_closed`` runs once: the
process shuts down rather than serve on unsupervised.
"""

from __future__ import annotations

import json
import logging
import queue
import socket
import threading
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["ProcessChannel", "encode"]

log = logging.getLogger("atoll.control")

#: Tail events a serving process holds for the supervisor before it drops new ones.
EVENT_QUEUE = 2000

Handler = Callable[[dict[str, Any]], Any]


def encode(message: Mapping[str, Any]) -> bytes:
    """One message as a line."""
    return json.dumps(message, separators=(",", ":"), default=str).encode() + b"\n"


class ProcessChannel:
    """A serving process's end of the line (see the module docstring)."""

    def __init__(
        self,
        sock: socket.socket,
        handlers: Mapping[str, Handler],
        on_closed: Callable[[], None],
    ) -> None:
        self.sock = sock
        self.handlers = dict(handlers)
        self.on_closed = on_closed
        self._write_lock = threading.Lock()
        self._events: queue.Queue[dict[str, Any]] = queue.Queue(EVENT_QUEUE)
        self._dropped: dict[str, int] = {}
        self._dropped_lock = threading.Lock()
        self.dropped_total = 0

    def start(self) -> None:
        threading.Thread(target=self._read, name="atoll-channel-read", daemon=True).start()
        threading.Thread(target=self._send_events, name="atoll-channel-send", daemon=True).start()

    def send(self, message: Mapping[str, Any]) -> None:
        """Send a message now (blocking the caller while the socket is full)."""
        data = encode(message)
        with self._write_lock:
            self.sock.sendall(data)

    def send_event(self, worker: str, item: dict[str, Any]) -> None:
        """Queue a tail event; never blocks. A full queue drops it and counts the drop."""
        try:
            self._events.put_nowait(item)
        except queue.Full:
            with self._dropped_lock:
                self._dropped[worker] = self._dropped.get(worker, 0) + 1
                self.dropped_total += 1

    def _send_events(self) -> None:
        try:
            while True:
                item = self._events.get()
                with self._dropped_lock:
                    dropped, self._dropped = self._dropped, {}
                for worker, count in dropped.items():
                    self.send({"op": "dropped", "worker": worker, "count": count})
                self.send({"op": "event", "event": item})
        except OSError:
            return  # the supervisor is gone; the reader sees it too

    def _read(self) -> None:
        try:
            with self.sock.makefile("rb") as lines:
                for line in lines:
                    self._handle(json.loads(line))
        except (OSError, ValueError) as exc:
            log.error("supervisor channel failed: %r", exc)
        finally:
            self.on_closed()

    def _handle(self, message: dict[str, Any]) -> None:
        op = message.get("op", "")
        handler = self.handlers.get(op)
        if handler is None:
            log.warning("supervisor sent an unknown message %r", op)
            return
        try:
            data = handler(message)
        except Exception as exc:
            log.exception("handling %r failed", op)
            reply: dict[str, Any] = {"op": "reply", "id": message.get("id"), "error": str(exc)}
        else:
            reply = {"op": "reply", "id": message.get("id"), "data": data}
        if "id" in message:
            self.send(reply)
