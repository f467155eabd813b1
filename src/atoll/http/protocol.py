"""The HTTP/1.1 connection: uvicorn's httptools protocol with the limits a public node needs.

uvicorn (with httptools) bounds neither a request's head nor how long a
client may take to send it: one header of 8 MiB is buffered whole, 100,000
headers are all parsed, a connection that never sends anything is kept
forever, and enough of those exhaust the process's file descriptors so that
healthy clients cannot connect. :class:`AtollHttpProtocol` adds, per
connection:

- **head size**: the request line and headers together may hold at most
  :attr:`ServerLimits.max_head_bytes` bytes and :attr:`ServerLimits.max_headers`
  header lines. Past either the client gets ``431 Request Header Fields Too
  Large`` (``414 URI Too Long`` for the request line alone) and the connection
  is closed once the client stops sending (:data:`LINGER`): the bytes are counted
  as they arrive (a read a head begins counts whole), so a huge head costs at most
  one read buffer more than the limit, and one more read of what the client
  still sends. Refusals are logged, repeated ones from one address counted
  (:meth:`ConnectionPool.refused`).
- **head timeout**: a request's head must be complete within
  :attr:`ServerLimits.header_timeout` seconds of the connection being ready for
  it (accepted, or the previous response sent); else ``408`` if some of it came,
  a plain close if none did (slowloris).
- **connection cap**: each event loop holds at most its share of
  :attr:`ServerLimits.max_connections` (:meth:`ServerLimits.connection_caps`:
  most of it for the serving loop). A new connection past the cap closes
  (at once, without an answer) the loop's connection that has waited longest
  for a request head (idle keep-alive, or a slow head); if every connection is
  serving a request, the new one gets ``503`` and is closed. Idle connections therefore never keep
  out a client that sends a request.

A spare loop (``http/server.py``) takes connections only while the serving
loop is stalled; its pool's :attr:`ConnectionPool.send_home` is set the rest
of the time, and a request on such a connection is answered with
``Connection: close``, so that its client reconnects to the serving loop.

A request's body goes from ``data_received`` straight into the
:class:`~atoll.http.bodies.BodySink` of the worker reading it, once the worker
asks for it (the scope's ``atoll.body`` offers this; :meth:`AtollHttpProtocol.attach_body`):
no copy into uvicorn's buffer and out of it again, no wake-up of the request's
task per chunk. A body nobody reads goes through uvicorn as before (paused past
64 KiB). When at least :data:`~atoll.http.bodies.DIRECT_BYTES` of a body with a
``Content-Length`` are still to come, the connection stops reading and a thread
of its own reads them from the socket straight into the body's ``bytes``: a
native one that never takes the GIL (:class:`_NativeRead`), else a Python one
(:class:`_DirectRead`); the loop does nothing per chunk; then it takes the
connection back, with a new parser. The body bytes a loop reads this way are paced (:class:`BodyPacer`): at
most :data:`PACE_BYTES` per turn of the loop, and connections past that wait for
the next turn, so that a few clients sending large bodies as fast as the network
allows cannot keep the loop from the other connections for longer than that.

Timeouts are checked by :meth:`ConnectionPool.sweep`, a few times a second from
the loop's own tick (no timer per request): the head timeout, and the keep-alive
timeout of a connection idle after a response (uvicorn arms and cancels a timer
per request for that one; here it is checked within the sweep's half second). Everything here runs on the loop
that owns the connection: a pool is never touched from another thread.
"""

from __future__ import annotations

import _thread
import asyncio
import contextlib
import fcntl
import logging
import os
import resource
import socket
import sys
import termios
import threading
import time
import urllib.parse
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import httptools
from uvicorn.protocols.http.flow_control import service_unavailable
from uvicorn.protocols.http.httptools_impl import (
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)
from uvicorn.protocols.utils import get_client_addr, get_path_with_query_string

try:
    from atoll.runtime._native import BodyRead as NativeBodyRead
    from atoll.runtime._native import Budget as NativeBudget
except ImportError:  # pragma: no cover - a source tree without its build: Python threads
    NativeBodyRead = None  # type: ignore[assignment,misc]
    NativeBudget = None  # type: ignore[assignment,misc]

if TYPE_CHECKING:
    from atoll.http.bodies import BodySink, Receive

__all__ = [
    "RESPOND",
    "AtollHttpProtocol",
    "ConnectionPool",
    "ServerLimits",
    "protocol_class",
    "raise_fd_limit",
]

_log = logging.getLogger("atoll.http")

#: Descriptors of a process kept out of the connection cap: KV files, compiled
#: code, modules, a guest's WASI files, logs, pipes.
FD_RESERVE = 256
#: Seconds a refused connection keeps reading (and dropping) what the client still
#: sends, so that the client reads the refusal instead of a connection reset. It
#: drops at most as many bytes as a head may hold (:attr:`ServerLimits.max_head_bytes`):
#: past them the connection is closed (reset; at once if more than that waits unread
#: when it is refused), so that a client sending a head of many MiB costs the node
#: one read, not its whole head, while one that sent at most about twice the limit
#: finishes sending and reads its 431 and a clean close.
LINGER = 2.0
#: Seconds during which the repeated refusals of one client address are counted
#: rather than logged one by one (:meth:`ConnectionPool.refused`).
REFUSAL_LOG_WINDOW = 1.0
#: How much lower a body reader thread's CPU priority is than its loop's (nice).
BODY_NICE = 10
#: Bytes a body reader thread waits for before it wakes (``SO_RCVLOWAT``).
DIRECT_LOWAT = 1024 * 1024
#: Body bytes one event loop hands to requests' sinks per turn (:class:`BodyPacer`).
PACE_BYTES = 256 * 1024


@dataclass(frozen=True, slots=True)
class ServerLimits:
    """What one connection may cost a node. Each bound is per serving process."""

    header_timeout: float = 10.0
    """Seconds a client has to send a request's whole head (line and headers)."""
    keep_alive_timeout: int = 5
    """Seconds an idle keep-alive connection is kept between two requests."""
    max_connections: int = 4096
    """Open client connections per process (also bounded by the file-descriptor
    limit less a reserve); past it the longest-idle connection is closed."""
    max_head_bytes: int = 64 * 1024
    """Bytes of a request's line and headers together (431 past it)."""
    max_headers: int = 256
    """Header lines in a request (431 past it)."""
    proxy_headers: bool = False
    """Take the client's address and scheme from ``X-Forwarded-For`` and
    ``X-Forwarded-Proto`` when the connection comes from 127.0.0.1 (a proxy on
    the node). Off by default: a node that faces clients itself has no reason
    to believe those headers, and each request would pass through one more ASGI
    layer (uvicorn's ``ProxyHeadersMiddleware``) for nothing."""

    stall_after: float = 0.010
    """Seconds the serving loop may go without its heartbeat (a callback every
    5 ms) before it counts as stalled: a spare loop then takes new connections
    until it beats again, and the request running on it is marked long (run on
    a spare from then on). ``http/server.py`` explains the spares. Short enough
    that requests holding the loop for ~10 ms or more leave it (each one delays
    every other request by as much); a loop that is only busy with many short
    requests is never marked (a mark needs one request seen running at two
    checks 5 ms apart)."""
    spare_nice: int = 10
    """How much lower the CPU priority of the spare loops' threads is than the
    process's (Linux per-thread nice, 0 to 19): a guest spinning on a spare
    then yields the CPU to the serving loop and its clients. Too low a priority
    (19) starves a spare that holds the GIL, and the serving loop waits for it.
    A thread cannot raise its priority again without privilege, and threads a
    spare starts inherit it."""

    def connection_caps(self, loops: int, fd_limit: int | None = None) -> tuple[int, int]:
        """The connection caps of the serving loop and of each spare loop.

        The process holds at most :attr:`max_connections`, within ``fd_limit``
        (default: the process's soft ``RLIMIT_NOFILE``) less :data:`FD_RESERVE`.
        With spares (``loops > 1``) the serving loop holds three quarters of
        that and the spares share the rest: they take connections only while
        the serving loop is stalled, and send them home after.
        """
        if fd_limit is None:
            fd_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        total = max(1, min(self.max_connections, max(fd_limit - FD_RESERVE, fd_limit // 2)))
        if loops == 1:
            return total, 0
        spare = max(1, total // 4 // (loops - 1))
        return max(total // 2, total - spare * (loops - 1)), spare


def raise_fd_limit() -> int:
    """Raise the soft ``RLIMIT_NOFILE`` to the hard one; returns the soft limit now in force.

    Called once per serving process at start: the soft default (often 1024) is
    what a few hundred idle clients exhaust, and raising it up to the hard
    limit needs no privilege.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):  # e.g. above fs.nr_open: keep what we have
            pass
    return soft


class ConnectionPool:
    """The connections of one event loop that wait for a request head, oldest first.

    Created once per loop by ``http/server.py``; used only on that loop.
    """

    def __init__(self, limits: ServerLimits, cap: int) -> None:
        self.limits = limits
        self.cap = cap
        self.waiting: dict[AtollHttpProtocol, float] = {}  # insertion order = wait start
        self.evicted = 0
        self.timed_out = 0
        self.send_home = False
        """Answer every request with ``Connection: close`` (set on a spare loop while
        the serving loop is healthy: its clients reconnect there)."""
        self._refusals: dict[tuple[str, int, str], int] = {}
        self._refusals_due = False  # a log_refusals is scheduled

    def refused(self, client: tuple[str, int] | None, status: int, message: str) -> None:
        """Log that a request from ``client`` was refused with ``status``; per refusal.

        The first refusal of a client address (the host, any port) for a status and
        reason is logged at once, with its port; the same refusals from that address
        in the next :data:`REFUSAL_LOG_WINDOW` seconds are counted, and logged as one
        line at the end of the window (:meth:`log_refusals`), as long as they go on.
        A client refused a thousand times a second costs the log a line a second,
        and no refusal goes unlogged.
        """
        key = (client[0] if client else "?", status, message)
        refusals = self._refusals
        count = refusals.get(key)
        if count is not None:
            refusals[key] = count + 1
            return
        refusals[key] = 0
        _log.info("refused a request from %s: %d %s", _peer(client), status, message)
        if not self._refusals_due:
            self._refusals_due = True
            asyncio.get_running_loop().call_later(REFUSAL_LOG_WINDOW, self._next_window)

    def log_refusals(self) -> None:
        """Log the refusals counted since the last call, one line per address, status
        and reason; the window's timer calls it, and the server as its loop stops."""
        refusals = self._refusals
        for (host, status, message), count in refusals.items():
            if count:
                _log.info(
                    "refused %d more %s from %s in the last %g s: %d %s",
                    count,
                    "requests" if count > 1 else "request",
                    host,
                    REFUSAL_LOG_WINDOW,
                    status,
                    message,
                )
        # An address still refused stays known (its next refusal is counted, not logged
        # at once); one that was not refused in this window is forgotten.
        self._refusals = {key: 0 for key, count in refusals.items() if count}

    def _next_window(self) -> None:
        self.log_refusals()
        if self._refusals:
            asyncio.get_running_loop().call_later(REFUSAL_LOG_WINDOW, self._next_window)
        else:
            self._refusals_due = False

    def wait(self, proto: AtollHttpProtocol) -> None:
        """``proto`` now waits for a head (accepted, or its last response was sent)."""
        self.waiting.pop(proto, None)
        self.waiting[proto] = time.monotonic()

    def done(self, proto: AtollHttpProtocol) -> None:
        """``proto``'s head is complete, or it closed."""
        self.waiting.pop(proto, None)

    def make_room(self, connections: int) -> bool:
        """Close the longest-waiting connection if ``connections`` reached the cap.

        Returns False when at the cap and no connection waits (all are serving).
        """
        if connections <= self.cap:
            return True
        for proto in self.waiting:
            self.waiting.pop(proto)
            self.evicted += 1
            proto.transport.close()  # at once: its descriptor is what the new one needs
            return True
        return False

    def sweep(self) -> None:
        """Close the connections whose head is late, and those idle past the keep-alive
        timeout since their last response (no byte of a new request came); run from the
        loop's tick. An idle connection times out after the shorter of the two."""
        now = time.monotonic()
        limits = self.limits
        head_deadline = now - limits.header_timeout
        idle_deadline = now - min(limits.keep_alive_timeout, limits.header_timeout)
        late = []
        idle = []
        for proto, since in self.waiting.items():
            if since > idle_deadline:  # the ones after it waited less (insertion order)
                break
            if since <= head_deadline:
                late.append(proto)
            elif proto._kept and not proto._head_started:
                idle.append(proto)
        for proto in late:
            self.waiting.pop(proto, None)
            self.timed_out += 1
            proto.close_waiting(408)
        for proto in idle:  # as uvicorn's keep-alive timer: closed without an answer
            self.waiting.pop(proto, None)
            if not proto.transport.is_closing():
                proto.transport.close()


class BodyPacer:
    """How many body bytes one event loop reads per turn, for requests whose body
    goes to a sink (:meth:`AtollHttpProtocol.attach_body`).

    Every sink-bound read is counted; once a turn's :data:`PACE_BYTES` are spent,
    the connection that read stops reading and waits in line. At the next turn
    (a ``call_soon``), connections are resumed in the order they stopped, as many
    as a turn's bytes allow at one read (256 KiB) each; the rest wait for the
    turns after. A turn of the loop therefore reads at most about
    ``PACE_BYTES`` plus one read per resumed connection of body bytes, whatever
    the number of clients sending (each turn until the line is empty). One per loop (made by :func:`protocol_class`);
    used only on that loop.
    """

    __slots__ = ("left", "line", "turn")

    #: Bytes uvloop reads from a socket at most at once.
    READ = 256 * 1024

    def __init__(self) -> None:
        self.left = PACE_BYTES
        self.line: deque[AtollHttpProtocol] = deque()
        self.turn = False  # a next turn is scheduled

    def spent(self, proto: AtollHttpProtocol, size: int) -> None:
        """``proto`` read ``size`` body bytes for a sink; it stops reading if the
        turn's bytes are spent."""
        self.left -= size
        if not self.turn:
            self.turn = True
            proto.loop.call_soon(self._next_turn)
        if self.left <= 0 and not proto.flow.read_paused:
            proto.flow.pause_reading()
            self.line.append(proto)

    def _next_turn(self) -> None:
        self.turn = False
        self.left = PACE_BYTES
        line = self.line
        room = PACE_BYTES
        proto = None
        while line and room > 0:
            proto = line.popleft()
            if not proto.transport.is_closing():
                proto.flow.resume_reading()
                room -= self.READ
        if line and proto is not None:  # the rest wait for the turns after
            self.turn = True
            proto.loop.call_soon(self._next_turn)


class AtollHttpProtocol(HttpToolsProtocol):
    """One client connection (see the module docstring). :func:`protocol_class`
    makes one subclass per event loop, bound to that loop's pool."""

    pool: ClassVar[ConnectionPool]
    limits: ClassVar[ServerLimits]
    pacer: ClassVar[BodyPacer]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = False  # a request head has begun and is not complete
        self._head_started = False  # any byte of the current head came
        self._head_raw = 0  # bytes read in a head (a read it began at counts whole)
        self._head_counted = 0  # bytes of the URL and headers the parser delivered
        self._head_lines = 0
        self._in_message = False  # a request has begun and its body has not ended
        self._kept = False  # a response was sent: idle now means keep-alive (see sweep)
        self._refusal: tuple[int, str] | None = None
        self._lingering = False
        self._linger: asyncio.TimerHandle | None = None  # closes a refused connection
        self._dropped = 0
        self._sink: BodySink | None = None  # takes the current request's body bytes
        self._direct: _NativeRead | _DirectRead | None = None  # reads the rest of that body
        self._attach: Callable[..., bool] | None = self.attach_body  # in each request's scope

    # -- connection lifecycle -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        pool = self.pool
        if pool.make_room(len(self.connections)):
            pool.wait(self)
        else:
            self._refuse(503, "the server is at its connection limit; retry later")

    def connection_lost(self, exc: Exception | None) -> None:
        self.pool.done(self)
        super().connection_lost(exc)
        # Let go of what would keep this protocol: a refused connection's timer (for
        # LINGER seconds), and its bound method, held here and in its last request's
        # scope (reference cycles: the app took it from the scope as the request began),
        # so that it is freed now, not by the garbage collector: clients refused, or
        # served, by the thousand would otherwise make the collector run, and pause the
        # loop, ever more often.
        if self._linger is not None:
            self._linger.cancel()
        self._attach = None
        if self.scope is not None:
            self.scope.pop("atoll.body", None)  # type: ignore[typeddict-item]

    def on_response_complete(self) -> None:
        # uvicorn's, without its keep-alive timer (a call_later and a cancel per request):
        # the pool's sweep closes a connection idle for that long.
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        flow = self.flow
        if flow.read_paused:
            flow.resume_reading()
        if self.pipeline:  # the next (pipelined) request starts now
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
        else:
            self._kept = True
            self.pool.wait(self)  # the sweep's keep-alive clock

    def close_waiting(self, status: int) -> None:
        """Close this connection, which waits for a head: ``status`` if part of it came."""
        if self.transport.is_closing():
            return
        if self._head_started:
            self._refuse(status, "the request head did not come in time")
        else:
            self.transport.close()

    # -- reading --------------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self._lingering:  # a refused connection: drop what the client still sends
            self._dropped += len(data)
            if self._dropped > self.limits.max_head_bytes:  # (see LINGER)
                self.transport.close()
            return
        was_in_head = self._in_head  # (no keep-alive timer to cancel: see on_response_complete)
        between = not self._in_message  # a new request starts at this read's first byte
        cycle = self.cycle
        try:
            cut = self.limits.max_head_bytes + _METHOD_ROOM
            if between and len(data) > cut:
                # The read begins a head: parse no more of it than a head may hold (the
                # rest of a huge one is never parsed), and the rest only if it ended there.
                view = memoryview(data)
                self.parser.feed_data(view[:cut])
                if self._in_head and self.cycle is cycle:
                    self._refuse(431, self._too_large())
                    return
                self.parser.feed_data(view[cut:])
            else:
                self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError:
            if self._refusal is not None:
                self._refuse(*self._refusal)
            else:
                self._refuse(400, "Invalid HTTP request received.")
            return
        if self._in_head:
            if was_in_head:
                self._head_raw += len(data)
            elif between and self.cycle is cycle:  # the head began at byte 0 and is not done:
                self._head_raw = len(data)  # all of this read is head (the parser holds it)
            else:  # it began after a body or another request in this read: from the next one
                return
            if self._head_raw > self.limits.max_head_bytes:
                self._refuse(431, self._too_large())

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        # uvicorn's, without a done callback per request (a context copy and a loop
        # callback): the request's coroutine takes its task out of the server's tasks
        # as it ends (_Cycle.run). uvicorn's opt-in reset_contextvars is not offered.
        tasks = self.tasks
        task = cycle.task = self.loop.create_task(cycle.run(app, tasks))  # type: ignore[attr-defined]
        tasks.add(task)

    # uvicorn's head callbacks, merged with the limits' (one call each instead of two)
    # and without what atoll's server never uses: the cycle is made as a _Cycle, its
    # send path holds the head only when it is used (see _Cycle.send).

    def on_message_begin(self) -> None:
        self.url = b""
        self.expect_100_continue = False
        headers: list[tuple[bytes, bytes]] = []
        self.headers = headers
        self.scope = {  # type: ignore[typeddict-item]
            "type": "http",
            "asgi": {"version": self.asgi_version, "spec_version": "2.3"},
            "http_version": "1.1",
            "server": self.server,
            "client": self.client,
            "scheme": self.scheme,  # type: ignore[typeddict-item]
            "root_path": self.root_path,
            "headers": headers,
            "state": self.app_state.copy(),
        }
        self._in_head = True
        self._head_started = True
        self._in_message = True
        self._head_raw = self._head_counted = self._head_lines = 0

    def on_url(self, url: bytes) -> None:
        counted = self._head_counted = self._head_counted + len(url)
        if counted > self.limits.max_head_bytes:
            self._refusal = (414, f"the request line is over {self.limits.max_head_bytes} bytes")
            raise _Refused
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        lines = self._head_lines = self._head_lines + 1
        counted = self._head_counted = self._head_counted + len(name) + len(value) + 4
        limits = self.limits
        if lines > limits.max_headers:
            self._refusal = (431, f"the request has over {limits.max_headers} headers")
            raise _Refused
        if counted > limits.max_head_bytes:
            self._refusal = (431, self._too_large())
            raise _Refused
        name = name.lower()
        # llhttp keeps trailing whitespace, which RFC 9110 §5.5 excludes from the value.
        value = value.rstrip(b" \t")
        if name == b"expect" and value.lower() == b"100-continue":
            self.expect_100_continue = True
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._head_started = False
        pool = self.pool
        pool.done(self)
        parser = self.parser
        scope = self.scope
        http_version = parser.get_http_version()
        scope["method"] = parser.get_method().decode("ascii")
        if http_version != "1.1":
            scope["http_version"] = http_version
        if parser.should_upgrade() and self._should_upgrade():
            return
        parsed_url = httptools.parse_url(self.url)
        raw_path = parsed_url.path
        path = raw_path.decode("ascii")
        if "%" in path:
            path = urllib.parse.unquote(path)
        root = self.root_path
        if root:
            scope["path"] = root + path
            scope["raw_path"] = root.encode("ascii") + raw_path
        else:
            scope["path"] = path
            scope["raw_path"] = raw_path
        scope["query_string"] = parsed_url.query or b""
        app = self.app
        limit = self.limit_concurrency
        if limit is not None and (len(self.connections) >= limit or len(self.tasks) >= limit):
            app = service_unavailable
            self.logger.warning("Exceeded concurrency limit.")
        previous = self.cycle
        cycle = self.cycle = _Cycle(
            scope,
            self.transport,
            self.flow,
            self.logger,
            self.access_logger,
            self.access_log,
            self.server_state.default_headers,
            asyncio.Event(),
            self.expect_100_continue,
            # send_home: uvicorn adds "connection: close" and closes after
            http_version != "1.0" and parser.should_keep_alive() and not pool.send_home,
            self.on_response_complete,
        )
        scope["atoll.body"] = self._attach  # type: ignore[typeddict-unknown-key]
        scope[RESPOND] = cycle.respond  # type: ignore[literal-required]
        if previous is None or previous.response_complete:
            self._start_asgi_task(cycle, app)
        else:  # pipelined: queued until the response before it is complete
            self.flow.pause_reading()
            self.pipeline.appendleft((cycle, app))

    # -- request bodies -------------------------------------------------------------------------

    def attach_body(self, receive: Receive, sink: BodySink | None) -> bool:
        """Send the rest of the body of the request whose ASGI ``receive`` this is to
        ``sink`` (``None``: stop). Called by the request's task when its worker reads
        the body, and again when it stops; False (nothing changes) when that request
        is not the one whose body the connection is reading, or its body has ended,
        or ``receive`` is not uvicorn's own (a request offloaded to a spare loop gets
        a proxy, and reads its body through it). Bytes uvicorn already buffered for
        the request are fed to the sink first."""
        cycle = self.cycle
        if sink is None:
            if cycle is not None and getattr(receive, "__self__", None) is cycle:
                self._sink = None
                direct = self._direct
                if direct is not None and not direct.refused:  # the body cannot be finished
                    self._direct = None
                    direct.cancel()
                    self.transport.close()
            return True
        if (
            cycle is None
            or getattr(receive, "__self__", None) is not cycle
            or not cycle.more_body
            or cycle.disconnected
            or cycle.response_complete
        ):
            return False
        if cycle.body:
            buffered, cycle.body = bytes(cycle.body), bytearray()
            if sink.feed(buffered):
                cycle.message_event.set()
        self._sink = sink
        try:
            direct = self._direct_read(sink) if sink.error is None else None
            if direct is not None:
                direct.start()
        except OSError as exc:  # out of descriptors or threads: the loop reads it
            _log.warning("a request body is read on the event loop: %s", exc)
            direct = None
        if direct is not None:
            # The rest of the body is the thread's. The transport is paused behind
            # uvicorn's flow control, which must not resume it (its receive() would).
            self.transport.pause_reading()
            self.flow.read_paused = False
            self._direct = direct
        else:
            self.flow.resume_reading()  # uvicorn paused it past 64 KiB buffered
        return True

    def _direct_read(self, sink: BodySink) -> _NativeRead | _DirectRead | None:
        """A reader of the rest of ``sink``'s body straight from the socket, if enough of
        it is still to come (:meth:`BodySink.direct_into`): native (no GIL) when the C
        extension is built and the budget is native, else a Python thread."""
        into = sink.direct_into()
        sock = self.transport.get_extra_info("socket") if into is not None else None
        if into is None or sock is None:
            return None
        counter = sink.reader.budget.counter
        if NativeBodyRead is not None and isinstance(counter, NativeBudget):
            return _NativeRead(self, sock.fileno(), into, sink, counter)
        target = sink.direct_target()
        return None if target is None else _DirectRead(self, sock.fileno(), target, sink)

    def _direct_refused(self, direct: _NativeRead | _DirectRead) -> None:
        """On the loop: ``direct`` read past the budget; the reader answers 503 (the
        thread goes on reading and dropping the rest of the body)."""
        if self._direct is not direct:  # the reader gave up meanwhile: nothing holds it
            direct.sink.reader.budget.give(direct.taken)
            return
        sink = direct.sink
        sink.add_direct(direct.got, direct.taken)
        if sink.error is None:
            sink.error = sink.reader._refuse()
        self.cycle.message_event.set()

    def _direct_done(self, direct: _NativeRead | _DirectRead) -> None:
        """On the loop, once ``direct`` has stopped: account for what it read, then
        finish the request's body, or close the connection."""
        if self._direct is not direct:  # the reader gave up meanwhile: nothing holds it
            if not direct.refused:
                direct.sink.reader.budget.give(direct.taken)
            return
        self._direct = None
        direct.sink.progress = None
        if not direct.refused:
            direct.sink.add_direct(direct.got, direct.taken)
        if direct.outcome == "done":
            # The parser never saw the body: the next request starts a new one.
            self.parser = httptools.HttpRequestParser(self)
            with contextlib.suppress(AttributeError):  # as uvicorn does (httptools >= 0.6.3)
                self.parser.set_dangerous_leniencies(lenient_data_after_close=True)
            self.on_message_complete()
            if not self.transport.is_closing():
                self.transport.resume_reading()
        elif direct.outcome == "timeout" and not direct.refused:
            self.cycle.keep_alive = False  # the reader's own timeout answers 408
        else:  # the client closed, or the socket failed: uvicorn sees a disconnect
            self.transport.close()

    def on_body(self, body: bytes) -> None:
        sink = self._sink
        if sink is None:
            super().on_body(body)
        elif not self.cycle.response_complete:
            if sink.feed(body):
                self.cycle.message_event.set()  # refused: the reader raises why
            self.pacer.spent(self, len(body))

    def on_message_complete(self) -> None:
        self._sink = None
        self._in_message = False
        super().on_message_complete()

    def _too_large(self) -> str:
        return f"the request's headers are over {self.limits.max_head_bytes} bytes"

    # -- refusing -------------------------------------------------------------------------------

    def _refuse(self, status: int, message: str) -> None:
        """Answer ``status`` with ``message``, stop parsing, and close once the client
        has stopped sending (or after :data:`LINGER` seconds, or past its bytes)."""
        if self._lingering or self.transport.is_closing():
            return
        self._lingering = True
        self._in_head = False
        self.pool.done(self)
        if status != 400:
            self.pool.refused(self.client, status, message)
        body = message.encode("ascii", "replace") + b"\n"
        reason = _REASONS.get(status, b"Error")
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (status, reason, len(body), body)
        )
        if self._unread() > self.limits.max_head_bytes:
            # More than a linger drops has come already: reading it would only delay the
            # reset (for each such read, the loop copies it and lets the client send more).
            self.transport.close()
            return
        try:
            self.transport.write_eof()
        except (NotImplementedError, OSError, RuntimeError):
            self.transport.close()
            return
        self._linger = self.loop.call_later(LINGER, self.transport.close)

    def _unread(self) -> int:
        """Bytes the client sent that wait, unread, in the kernel (0 if unknown)."""
        sock = self.transport.get_extra_info("socket")
        try:
            queued = fcntl.ioctl(sock.fileno(), termios.FIONREAD, bytes(4))
        except (AttributeError, OSError):  # no socket, or not a platform with FIONREAD
            return 0
        return int.from_bytes(queued, sys.byteorder)

    def eof_received(self) -> None:
        if self._lingering:
            self.transport.close()


class _NativeRead:
    """Reads the rest of a request body from a connection's socket into the body's
    ``bytes``, on a native thread that never takes the GIL (``_native.BodyRead``,
    ``runtime/native/bodyread.c``); one per body read this way.

    Why native: a Python thread takes the GIL after each read, and the loop waited
    for it whenever it was preempted holding it (it runs at a low CPU priority), or
    for a switch interval (5 ms) to get the GIL back; measured under the hostile
    benchmark's big bodies, the serving loop waited on the GIL up to 5.8 ms. The
    native thread runs at ``SCHED_IDLE`` (any thread of normal priority preempts it),
    takes each byte from the budget as it arrives (atomics), and tells the loop what
    changed (refused; ended) through an eventfd the loop watches: the loop does
    nothing per chunk. The same outcomes and accounting as :class:`_DirectRead`.
    """

    __slots__ = ("_told", "fd", "loop", "native", "proto", "sink")

    OUTCOMES = ("running", "done", "timeout", "closed", "stopped")

    def __init__(
        self,
        proto: AtollHttpProtocol,
        fd: int,
        into: tuple[bytes, int],
        sink: BodySink,
        counter: NativeBudget,
    ) -> None:
        self.proto = proto
        self.loop = proto.loop
        self.sink = sink
        timeout_ns = int(sink.reader.timeout * 1e9)
        assert NativeBodyRead is not None
        self.native = NativeBodyRead(
            fd, into[0], into[1], counter, timeout_ns, DIRECT_LOWAT, BODY_NICE
        )
        self.fd = self.native.notify_fd
        self._told = False  # _direct_refused ran

    @property
    def refused(self) -> bool:
        """The budget refused the body (what comes next is read and dropped)."""
        return self.native.refused

    @property
    def got(self) -> int:
        return self.native.got

    @property
    def taken(self) -> int:
        return self.native.taken

    @property
    def outcome(self) -> str:
        return self.OUTCOMES[self.native.outcome]

    def start(self) -> None:
        """Watch the thread's eventfd, then start it (OSError: it could not start)."""
        self.loop.add_reader(self.fd, self._notified)
        try:
            self.native.start()
        except OSError:
            self.loop.remove_reader(self.fd)
            raise
        self.sink.progress = self._last

    def cancel(self) -> None:
        """Stop reading (the body will not be finished): the thread ends at once."""
        self.native.stop()

    def _last(self) -> float:
        return self.native.last

    def _notified(self) -> None:
        """On the loop, when the thread wrote to its eventfd: refused, or ended."""
        native = self.native
        native.ack()
        if native.refused and not self._told:
            self._told = True
            self.proto._direct_refused(self)
        if native.outcome:
            self.loop.remove_reader(self.fd)
            native.finish()
            self.proto._direct_done(self)


class _DirectRead:
    """Reads the rest of a request body from a connection's socket into ``target``,
    on a thread of its own (not joined at exit); one per body read this way.

    The socket is a ``dup()`` of the connection's, whose transport does not read
    meanwhile. Each byte is taken from the budget as it arrives; past the budget
    the body is refused (:meth:`AtollHttpProtocol._direct_refused` runs on the
    loop) and the rest of it is read and dropped. ``outcome`` says how it ended:
    ``done`` (the whole body was read), ``timeout`` (no byte for the body timeout),
    ``closed`` (the client closed, or the socket failed) or ``stopped``. Then
    :meth:`AtollHttpProtocol._direct_done` runs on the loop.
    """

    def __init__(
        self, proto: AtollHttpProtocol, fd: int, target: memoryview, sink: BodySink
    ) -> None:
        self.proto = proto
        self.loop = proto.loop
        self.fd = os.dup(fd)
        self.target = target
        self.sink = sink
        self.got = 0
        self.taken = 0
        self.stop = False
        self.refused = False  # past the budget: what comes next is dropped
        self.outcome = "closed"

    def start(self) -> None:
        """Start the thread. Not ``threading.Thread.start``: that waits until the new
        thread runs, which on a busy machine kept the loop waiting for tens of ms."""
        _thread.start_new_thread(self.run, ())

    def cancel(self) -> None:
        """Stop reading (the body will not be finished): the thread ends within 0.5 s."""
        self.stop = True

    def run(self) -> None:
        # Bulk work: the loop serving other clients comes first for the CPU.
        with contextlib.suppress(OSError):  # not Linux, or a sandbox that forbids it
            tid = threading.get_native_id()
            os.setpriority(
                os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + BODY_NICE)
            )
        try:
            self.outcome = self._read()
        except OSError:
            self.outcome = "closed"
        finally:
            self.target.release()
            with contextlib.suppress(RuntimeError):  # the loop is closed (shutdown)
                self.loop.call_soon_threadsafe(self.proto._direct_done, self)

    def _read(self) -> str:
        sock = socket.socket(fileno=self.fd)
        try:
            sock.settimeout(0.5)  # to look at ``stop`` now and then
            budget, timeout = self.sink.reader.budget, self.sink.reader.timeout
            target, want = self.target, len(self.target)
            scratch: memoryview | None = None
            at = 0  # bytes of the body read (kept, or dropped once refused)
            last = time.monotonic()
            low = 1
            while at < want:
                if self.stop:
                    return "stopped"
                if min(want - at, DIRECT_LOWAT) != low:  # wake this thread per MiB, not per
                    low = min(want - at, DIRECT_LOWAT)  # segment: each wake takes the GIL
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, low)
                try:
                    if scratch is None:
                        n = sock.recv_into(target[at:])
                    else:
                        n = sock.recv_into(scratch, min(want - at, len(scratch)))
                except TimeoutError:
                    if time.monotonic() - last > timeout:
                        return "timeout"
                    continue
                if n == 0:
                    return "closed"
                at += n
                last = self.sink.last = time.monotonic()
                if scratch is not None:
                    continue
                if budget.take(n):
                    self.taken += n
                    self.got = at
                else:  # refused: the reader answers 503 now; the rest is read and dropped,
                    # so that the client reads the answer and the connection goes on
                    self.refused = True
                    self.loop.call_soon_threadsafe(self.proto._direct_refused, self)
                    scratch = memoryview(bytearray(256 * 1024))
            return "done"
        finally:
            if low != 1:  # the socket is the connection's: as uvloop had it
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, 1)
            sock.close()


class _HeadHold:
    """The transport a request's uvicorn cycle writes to: the response head is held
    until the first write of the body and goes out with it, in one ``send()``.

    uvicorn writes the head (``http.response.start``) and the body
    (``http.response.body``) separately: two system calls, two TCP segments per
    response, where one does. A held head never waits past the loop's next
    iteration (a worker that streams its body, or pauses between the two
    messages, still gets its head sent at once), and ``close()`` sends it first.
    One per request; everything but ``write``/``close`` goes to the real transport.
    """

    __slots__ = ("_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None

    def write(self, data: bytes) -> None:
        held = self._held
        if held is not None:
            self._held = None
            self._transport.write(held + data)
        elif data.startswith(b"HTTP/") and not data.startswith(b"HTTP/1.1 100 "):
            self._held = data  # a response head (a 100 Continue goes at once)
            self._loop.call_soon(self.flush)
        else:
            self._transport.write(data)

    def flush(self) -> None:
        """Send a held head now (called on the loop's next iteration)."""
        held = self._held
        if held is not None:
            self._held = None
            if not self._transport.is_closing():
                self._transport.write(held)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    @property
    def transport(self) -> asyncio.Transport:
        """The connection's transport, which this one writes to."""
        return self._transport

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


#: The scope key under which the app finds :meth:`_Cycle.respond` (as ``atoll.body``).
RESPOND = "atoll.respond"


class _Cycle(RequestResponseCycle):
    """uvicorn's request cycle, plus :meth:`respond`: a whole response in one call.

    Offered to the app in the scope, under :data:`RESPOND`. Everything else
    (``receive``, ``send``, 100-continue, keep-alive) is uvicorn's. Like ``send``,
    it must be called on the connection's loop: a request run elsewhere (offloaded
    to a spare loop, with a proxied ``send``) sends through its proxy.
    """

    #: The task that runs :meth:`run` (set as it is made, before it runs).
    task: asyncio.Task[None]

    async def run(self, app: Any, tasks: set[asyncio.Task[None]]) -> None:
        """uvicorn's ``run_asgi`` (the request's task runs it), which also takes the task
        out of the server's ``tasks`` when it ends, as the done callback uvicorn adds per
        task did."""
        try:
            result = await app(self.scope, self.receive, self.send)
        except BaseException as exc:
            self.logger.error("Exception in ASGI application\n", exc_info=exc)
            if not self.response_started:
                await self.send_500_response()
            else:
                self.transport.close()
        else:
            if result is not None:
                msg = "ASGI callable should return None, but returned '%s'."
                self.logger.error(msg, result)
                self.transport.close()
            elif not self.response_started and not self.disconnected:
                self.logger.error("ASGI callable returned without starting response.")
                await self.send_500_response()
            elif not self.response_complete and not self.disconnected:
                self.logger.error("ASGI callable returned without completing response.")
                self.transport.close()
        finally:
            self.on_response = _nothing
            tasks.discard(self.task)

    def respond(
        self, status: int, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> Coroutine[Any, Any, None] | None:
        """Send ``status``, ``headers`` and ``body`` as one response, in one write: what
        ``send`` does for ``http.response.start`` then ``http.response.body`` (no
        ``more_body``), without the two messages or the held head. Once per request, at
        most, by the app, instead of ``send``. Returns None when it is done (written, or
        the client is gone), else a coroutine to await that finishes it (the connection
        must drain first, or the response goes through ``send``): no coroutine per
        response in the common case.

        The caller checked ``headers`` as :func:`atoll.http.wire.wire_headers` does
        (names lowercase HTTP tokens, values without control characters, no hop-by-hop
        field): they are written as they are.
        A response without a body (a HEAD request, a 204 or 304; ``body`` is empty) is
        written as it is, ``content-length`` included if there is one: it describes
        the body a GET would get (RFC 9110 §8.6). A response with a body whose
        ``content-length`` is missing or not its length goes through ``send``.
        """
        if self.response_started:
            return self._send_both(status, headers, body)
        if not (status in (204, 304) or self.scope["method"] == "HEAD"):
            length = None
            for name, value in headers:
                if name == b"content-length":
                    length = value
            if length is None or int(length) != len(body):
                return self._send_both(status, headers, body)
        elif body:
            return self._send_both(status, headers, body)  # uvicorn's checks say what is wrong
        if self.flow.write_paused and not self.disconnected:
            return self._drain_then_write(status, headers, body)
        self._write(status, headers, body)
        return None

    def send(self, message: Any) -> Coroutine[Any, Any, None]:
        """uvicorn's ``send``, with the response head held until the body's first write
        (:class:`_HeadHold`, installed by the first message: :meth:`respond` needs none),
        and a 304 that may carry the ``content-length`` of the body a GET would get (RFC
        9110 §8.6) without uvicorn waiting for that body (it would fail the response:
        "content shorter than Content-Length"). Per ASGI message."""
        if not self.response_started:
            return self._send_start(message)
        return super().send(message)

    async def _send_start(self, message: Any) -> None:
        transport: Any = self.transport
        if type(transport) is not _HeadHold:  # on the connection's loop (not a proxy's thread)
            self.transport = _HeadHold(transport, asyncio.get_running_loop())  # type: ignore[assignment]
            self.scope.pop(RESPOND, None)  # type: ignore[misc]  # (see _write)
        await super().send(message)
        if message.get("status") == 304 and self.response_started and not self.chunked_encoding:
            self.expected_content_length = 0  # no body follows, whatever its length says

    async def _send_both(
        self, status: int, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> None:
        await self.send({"type": "http.response.start", "status": status, "headers": headers})
        await self.send({"type": "http.response.body", "body": body})

    async def _drain_then_write(
        self, status: int, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> None:
        await self.flow.drain()
        self._write(status, headers, body)

    def _write(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        if self.disconnected:
            return
        self.response_started = True
        self.waiting_for_100_continue = False
        # respond() is offered once: the scope lets go of it, and so of this cycle (the
        # scope held the cycle's bound method and the cycle the scope: a reference cycle
        # per request, left to the garbage collector).
        self.scope.pop(RESPOND, None)  # type: ignore[misc]
        if self.access_log:
            self.access_logger.info(
                '%s - "%s %s HTTP/%s" %d',
                get_client_addr(self.scope),
                self.scope["method"],
                get_path_with_query_string(self.scope),
                self.scope["http_version"],
                status,
            )
        defaults = self.default_headers
        held, lines = _defaults
        content = [STATUS_LINE[status], lines if held is defaults else _default_lines(defaults)]
        for name, value in headers:  # names lowercase already (wire_headers)
            content += (name, b": ", value, b"\r\n")
        if not self.keep_alive:
            content.append(b"connection: close\r\n")
        content += (b"\r\n", body)
        self.chunked_encoding = False
        self.expected_content_length = 0
        transport: Any = self.transport
        if isinstance(transport, _HeadHold):
            transport = transport.transport  # nothing is held: the head goes with the body
        transport.write(b"".join(content))
        self.response_complete = True
        self.message_event.set()
        if not self.keep_alive:
            self.transport.close()
        self.on_response()


#: The last server headers written (``date``, ``server``) and their bytes. uvicorn makes a
#: new list when the date changes (once a second); the list is held here, so an equal
#: identity means the same headers. A race between loops only recomputes.
_defaults: tuple[object, bytes] = (None, b"")


def _default_lines(headers: list[tuple[bytes, bytes]]) -> bytes:
    """``headers`` as the head lines ``send`` writes for them (names lowercased)."""
    global _defaults
    held, lines = _defaults
    if held is not headers:
        lines = b"".join(b"%s: %s\r\n" % (name.lower(), value) for name, value in headers)
        _defaults = (headers, lines)
    return lines


def _nothing() -> None:
    """A finished cycle's ``on_response`` (uvicorn sets a lambda per request)."""


class _Refused(Exception):
    """Raised from a parser callback to stop parsing a head that is over a limit."""


#: Bytes of a read parsed past the head limit, at first, when a head begins it: room for
#: the method before the URL, so that a request line over the limit is told from
#: headers over it (414, not 431).
_METHOD_ROOM = 64

_REASONS = {
    400: b"Bad Request",
    408: b"Request Timeout",
    414: b"URI Too Long",
    431: b"Request Header Fields Too Large",
    503: b"Service Unavailable",
}


def _peer(client: tuple[str, int] | None) -> str:
    return f"{client[0]}:{client[1]}" if client else "?"


def protocol_class(limits: ServerLimits, pool: ConnectionPool) -> type[AtollHttpProtocol]:
    """The protocol class uvicorn instantiates per connection on one loop (bound to ``pool``)."""
    attributes = {"limits": limits, "pool": pool, "pacer": BodyPacer()}
    return type("AtollHttpProtocol", (AtollHttpProtocol,), attributes)
