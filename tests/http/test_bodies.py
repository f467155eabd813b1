"""Request bodies: the per-process memory budget (503) and the per-request limit (413).

The budget is checked in-process on the reader, and end to end over real
sockets: ``atoll dev --body-memory-mb 2`` holding one body while a second
arrives.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from atoll.api.request import Request
from atoll.errors import BodyTooLargeError, RequestError
from atoll.http import bodies
from atoll.http.bodies import (
    COPY_SLICE,
    DIRECT_BYTES,
    MIB,
    PRESIZE_BYTES,
    REAP_BYTES,
    SEGMENT_BYTES,
    BodyBudget,
    BodyReader,
)
from atoll.http.protocol import PACE_BYTES, BodyPacer
from tests.support import StartDev, WorkerFactory

Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]


def chunks(*sizes: int) -> Receive:
    return parts(*(b"x" * size for size in sizes))


def parts(*bodies: bytes, disconnect: bool = False) -> Receive:
    """``receive`` giving ``bodies`` as the chunks of one body (then a disconnect, if asked)."""
    messages: list[MutableMapping[str, Any]] = [
        {"type": "http.request", "body": body, "more_body": disconnect or i < len(bodies) - 1}
        for i, body in enumerate(bodies)
    ]
    if disconnect:
        messages.append({"type": "http.disconnect"})

    async def receive() -> MutableMapping[str, Any]:
        return messages.pop(0)

    return receive


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
@pytest.mark.parametrize(
    "sizes",
    [
        [0],
        [1],
        [PRESIZE_BYTES - 1],
        [PRESIZE_BYTES],
        [65536] * 40,
        [7, COPY_SLICE + 3, 65536, 2 * COPY_SLICE + 1, 1],
        [PRESIZE_BYTES - 1, SEGMENT_BYTES + 5, 1, 3 * MIB, 65536],
    ],
    ids=["empty", "one-byte", "under-presize", "presize", "64k-chunks", "odd-chunks", "segments"],
)
def test_a_body_is_read_exactly_as_sent(declared: bool, sizes: list[int]) -> None:
    sent = [os.urandom(size) for size in sizes]
    whole = b"".join(sent)
    budget = BodyBudget(64 * MIB)
    reader = BodyReader(parts(*sent), 64 * MIB, budget, len(whole) if declared else None)
    body = asyncio.run(reader())
    assert type(body) is bytes
    assert hashlib.sha256(body).digest() == hashlib.sha256(whole).digest()
    assert body == whole
    assert budget.used == len(whole)
    reader.release()
    assert budget.used == 0


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
def test_a_body_cut_by_a_disconnect_is_400_and_gives_its_memory_back(declared: bool) -> None:
    budget = BodyBudget(64 * MIB)
    sent = [os.urandom(MIB), os.urandom(MIB)]
    reader = BodyReader(
        parts(*sent, disconnect=True), 64 * MIB, budget, 3 * MIB if declared else None
    )
    with pytest.raises(RequestError) as caught:
        asyncio.run(reader())
    assert caught.value.status == 400
    assert "closed the connection after 2097152 bytes" in str(caught.value)
    assert budget.used == 0


def test_a_declared_body_over_the_budget_is_refused_before_it_is_read() -> None:
    budget = BodyBudget(1000)
    assert budget.take(600)
    received: list[int] = []

    async def receive() -> MutableMapping[str, Any]:
        received.append(1)
        return {"type": "http.request", "body": b"x" * 500, "more_body": False}

    reader = BodyReader(receive, 10_000, budget, declared=500)
    with pytest.raises(RequestError) as caught:
        asyncio.run(reader())
    assert caught.value.status == 503
    assert received == []  # not one byte was read
    assert budget.used == 600


def test_a_streamed_body_is_refused_at_the_chunk_that_crosses_the_budget() -> None:
    budget = BodyBudget(1000)
    reader = BodyReader(chunks(400, 400, 400), 10_000, budget, declared=None)
    with pytest.raises(RequestError) as caught:
        asyncio.run(reader())
    assert caught.value.status == 503
    assert budget.used == 0  # what the refused body held is given back


def test_bodies_within_the_budget_are_read_and_given_back_once() -> None:
    budget = BodyBudget(1000)
    first = BodyReader(chunks(300, 300), 10_000, budget, declared=600)
    assert asyncio.run(first()) == b"x" * 600
    assert budget.used == 600
    second = BodyReader(chunks(300), 10_000, budget, declared=None)
    assert asyncio.run(second()) == b"x" * 300
    assert budget.used == 900
    first.release()
    first.release()
    second.release()
    assert budget.used == 0


def test_a_body_over_the_request_limit_is_413_and_holds_nothing() -> None:
    budget = BodyBudget(10_000)
    reader = BodyReader(chunks(600, 600), 1000, budget, declared=None)
    with pytest.raises(BodyTooLargeError):
        asyncio.run(reader())
    assert budget.used == 0


WORKER = """
import asyncio, os
from atoll import Response

async def fetch(request, env, ctx):
    body = await request.bytes()
    marker = request.query.get("hold")
    if marker:
        open(marker + ".held", "w").close()
        for _ in range(400):  # at most 20 s
            if os.path.exists(marker + ".go"):
                break
            await asyncio.sleep(0.05)
    return Response(f"read {len(body)}")
"""


def post(url: str, path: str, size: int) -> tuple[int, bytes]:
    """POST ``size`` bytes on a keep-alive raw socket, as browsers and httpx do; (status, body).

    The server may answer before it reads the body: it then reads and drops the
    rest, so the whole body is sent before the answer is read.
    """
    parts = urlsplit(url)
    assert parts.hostname is not None
    with socket.create_connection((parts.hostname, parts.port or 80), timeout=30) as sock:
        head = f"POST {path} HTTP/1.1\r\nHost: t\r\nContent-Length: {size}\r\n\r\n"
        sock.sendall(head.encode() + b"x" * size)
        raw = b""
        while b"\r\n\r\n" not in raw:
            chunk = sock.recv(65536)
            assert chunk, f"closed before the answer: {raw!r}"
            raw += chunk
        head_raw, _, body = raw.partition(b"\r\n\r\n")
        length = int(head_raw.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        while len(body) < length:
            chunk = sock.recv(65536)
            assert chunk, "closed in the middle of the answer"
            body += chunk
    return int(head_raw.split(b" ", 2)[1]), body


def test_concurrent_bodies_past_the_process_budget_get_503(
    make_worker: WorkerFactory, dev_server: StartDev, tmp_path: Path
) -> None:
    folder = make_worker(WORKER, limits="request_body_mb = 8")
    server = dev_server(folder, "--no-reload", "--body-memory-mb", "2")
    marker = tmp_path / "first"
    first: list[tuple[int, bytes]] = []
    holder = threading.Thread(
        target=lambda: first.append(post(server.url, f"/?hold={marker}", int(1.5 * MIB)))
    )
    holder.start()
    try:
        for _ in range(400):  # until the first body is held (20 s at most)
            if Path(f"{marker}.held").exists():
                break
            time.sleep(0.05)
        status, body = post(server.url, "/", MIB)
        assert status == 503, body.decode()
        assert b"request bodies" in body
        assert post(server.url, "/", 256 * 1024) == (200, b"read 262144")  # fits beside it
    finally:
        Path(f"{marker}.go").touch()
        holder.join(30)
    assert first == [(200, b"read 1572864")]
    assert post(server.url, "/", MIB) == (200, b"read 1048576")  # given back
    status, _ = post(server.url, "/", 9 * MIB)  # one body over request_body_mb
    assert status == 413


def test_a_declared_body_holds_only_the_bytes_that_came() -> None:
    budget = BodyBudget(1000)
    arrived = asyncio.Event()

    async def scenario() -> None:
        sent = [{"type": "http.request", "body": b"x" * 100, "more_body": True}]

        async def receive() -> MutableMapping[str, Any]:
            if sent:
                return sent.pop()
            arrived.set()
            await asyncio.sleep(3600)  # the client stopped sending
            raise AssertionError("unreachable")

        reader = BodyReader(receive, 10_000, budget, declared=900)
        task = asyncio.ensure_future(reader())
        await arrived.wait()
        assert budget.used == 100  # not the 900 it declared
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        reader.release()

    asyncio.run(scenario())
    assert budget.used == 0


def test_a_body_that_stops_coming_ends_with_408() -> None:
    budget = BodyBudget(1000)

    async def receive() -> MutableMapping[str, Any]:
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    reader = BodyReader(receive, 10_000, budget, declared=10, timeout=0.05)
    with pytest.raises(RequestError) as caught:
        asyncio.run(reader())
    assert caught.value.status == 408
    assert budget.used == 0


HASHING = """
import hashlib
from atoll import Response

async def fetch(request, env, ctx):
    body = await request.bytes()
    mark = request.query.get("mark")
    if mark:
        with open(mark, "a") as f:
            f.write(f"{len(body)}\\n")
    return Response(f"{len(body)} {hashlib.sha256(body).hexdigest()}")
"""


def exchange(url: str, data: bytes, *, close: bool = False) -> tuple[int, bytes]:
    """Send ``data`` (one request, head and body) on a new connection; (status, body).
    ``close``: close the connection once ``data`` is sent, without reading (0, b"")."""
    parts = urlsplit(url)
    assert parts.hostname is not None
    with socket.create_connection((parts.hostname, parts.port or 80), timeout=30) as sock:
        sock.sendall(data)
        if close:
            return 0, b""
        raw = b""
        while b"\r\n\r\n" not in raw:
            chunk = sock.recv(65536)
            assert chunk, f"closed before the answer: {raw!r}"
            raw += chunk
        head_raw, _, body = raw.partition(b"\r\n\r\n")
        length = int(head_raw.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        while len(body) < length:
            chunk = sock.recv(65536)
            assert chunk, "closed in the middle of the answer"
            body += chunk
    return int(head_raw.split(b" ", 2)[1]), body


def chunked(body: bytes, sizes: list[int]) -> bytes:
    """``body`` in HTTP/1.1 chunked encoding, cut in chunks of ``sizes`` (cycled)."""
    out, at, i = [], 0, 0
    while at < len(body):
        size = sizes[i % len(sizes)]
        out.append(b"%x\r\n%s\r\n" % (len(body[at : at + size]), body[at : at + size]))
        at += size
        i += 1
    out.append(b"0\r\n\r\n")
    return b"".join(out)


def test_bodies_reach_the_worker_exactly_as_sent_over_a_socket(
    make_worker: WorkerFactory, dev_server: StartDev
) -> None:
    folder = make_worker(HASHING, limits="request_body_mb = 8")
    server = dev_server(folder, "--no-reload")
    for size in (0, 1, 65537, PRESIZE_BYTES - 3, 5 * MIB + 11):
        body = os.urandom(size)
        expected = f"{size} {hashlib.sha256(body).hexdigest()}".encode()
        head = f"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: {size}\r\n\r\n"
        assert exchange(server.url, head.encode() + body) == (200, expected), size
        head = "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
        framed = chunked(body, [1, 70_000, 3 * MIB, 4093])
        assert exchange(server.url, head.encode() + framed) == (200, expected), size
    # past request_body_mb: 413, declared or not
    head = f"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: {9 * MIB}\r\n\r\n"
    assert exchange(server.url, head.encode() + bytes(9 * MIB))[0] == 413
    head = "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
    assert exchange(server.url, head.encode() + chunked(bytes(9 * MIB), [MIB]))[0] == 413


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
def test_a_client_gone_mid_body_gives_its_budget_back_and_the_worker_never_sees_it(
    make_worker: WorkerFactory, dev_server: StartDev, tmp_path: Path, declared: bool
) -> None:
    folder = make_worker(HASHING, limits="request_body_mb = 8")
    server = dev_server(folder, "--no-reload", "--body-memory-mb", "2")
    mark = tmp_path / "read.txt"
    sent = os.urandom(int(1.5 * MIB))
    if declared:
        head = f"POST /?mark={mark} HTTP/1.1\r\nHost: t\r\nContent-Length: {2 * MIB}\r\n\r\n"
        data = head.encode() + sent
    else:
        head = f"POST /?mark={mark} HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
        data = head.encode() + chunked(sent, [65536])[: -len(b"0\r\n\r\n")]
    exchange(server.url, data, close=True)  # 1.5 of the 2 MiB budget, then gone
    body = os.urandom(int(1.5 * MIB))
    head = f"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: {len(body)}\r\n\r\n"
    expected = (200, f"{len(body)} {hashlib.sha256(body).hexdigest()}".encode())
    answers = []
    for _ in range(200):  # until the node has seen the first client go (10 s at most)
        answers.append(exchange(server.url, head.encode() + body))
        if answers[-1] == expected:
            break
        time.sleep(0.05)
    assert answers[-1] == expected, answers[-1]
    assert {status for status, _ in answers[:-1]} <= {503}
    assert not mark.exists()  # the worker never got the cut body


HERE = Path(__file__).resolve().parent


@pytest.fixture
def body_server(request: pytest.FixtureRequest) -> Iterator[tuple[str, int]]:
    """``_bodies_app.py`` served by ``atoll.http.server`` in a subprocess: (host, port).
    An indirect parameter, if any, is its body budget in bytes, or (budget, reader):
    the thread that reads large bodies, ``native`` (default) or ``python``."""
    src = str(HERE.parents[1] / "src")
    param = getattr(request, "param", 64 * MIB)
    budget, reader = param if isinstance(param, tuple) else (param, "native")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")])),
        "ATOLL_TEST_BODY_BUDGET": str(budget),
        "ATOLL_TEST_BODY_READER": reader,
    }
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "_bodies_app.py")],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 30)
    line = proc.stdout.readline() if ready else ""
    try:
        assert line.startswith("READY "), line
        _, host, port = line.split()
        yield host, int(port)
    finally:
        proc.kill()
        proc.communicate()


def answers(sock: socket.socket, count: int) -> list[bytes]:
    """Read ``count`` responses (each with a Content-Length) from ``sock``: their bodies."""
    raw = b""
    bodies: list[bytes] = []
    while len(bodies) < count:
        head_end = raw.find(b"\r\n\r\n")
        if head_end >= 0:
            head = raw[:head_end].lower()
            length = int(head.split(b"content-length: ")[1].split(b"\r\n")[0])
            if len(raw) >= head_end + 4 + length:
                bodies.append(raw[head_end + 4 : head_end + 4 + length])
                raw = raw[head_end + 4 + length :]
                continue
        chunk = sock.recv(1 << 20)
        assert chunk, f"closed after {len(bodies)} answers"
        raw += chunk
    return bodies


def expect(body: bytes, attached: bool = True) -> bytes:
    return f"{attached} {len(body)} {hashlib.sha256(body).hexdigest()}".encode()


def test_the_server_hands_a_body_to_the_reader_as_it_arrives(
    body_server: tuple[str, int],
) -> None:
    big, odd = os.urandom(3 * MIB + 5), os.urandom(2 * MIB - 1)
    with socket.create_connection(body_server, timeout=30) as sock:
        head = f"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: {len(big)}\r\n\r\n"
        sock.sendall(head.encode() + big[:1000])
        time.sleep(0.2)  # the reader attaches while the body is on its way
        sock.sendall(big[1000:])
        assert answers(sock, 1) == [expect(big)]
        head = "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
        sock.sendall(head.encode() + chunked(odd, [65536, 7, 300_000]))
        assert answers(sock, 1) == [expect(odd)]


def test_pipelined_and_unread_bodies_stay_with_their_requests(
    body_server: tuple[str, int],
) -> None:
    first, second, third = os.urandom(2 * MIB), os.urandom(3 * MIB), os.urandom(MIB + 1)
    requests = [
        f"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: {len(first)}\r\n\r\n".encode() + first,
        f"POST /ignore HTTP/1.1\r\nHost: t\r\nContent-Length: {len(third)}\r\n\r\n".encode()
        + third,
        b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
        + chunked(second, [100_000]),
        f"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: {len(third)}\r\n\r\n".encode() + third,
    ]
    with socket.create_connection(body_server, timeout=30) as sock:
        sender = threading.Thread(target=sock.sendall, args=(b"".join(requests),))
        sender.start()
        got = answers(sock, 4)
        sender.join(30)
    # whether a sink was attached depends on how far the connection had read: not asserted
    assert [answer.split(b" ", 1)[-1] for answer in got] == [
        expect(first).split(b" ", 1)[1],
        b"ignored",
        expect(second).split(b" ", 1)[1],
        expect(third).split(b" ", 1)[1],
    ]


def test_a_body_after_100_continue_goes_to_the_sink(body_server: tuple[str, int]) -> None:
    body = os.urandom(2 * MIB)
    with socket.create_connection(body_server, timeout=30) as sock:
        head = (
            f"POST / HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        sock.sendall(head.encode())
        interim = sock.recv(1024)
        assert interim.startswith(b"HTTP/1.1 100 "), interim
        sock.sendall(body)
        assert answers(sock, 1) == [expect(body)]


class _Flow:
    def __init__(self) -> None:
        self.read_paused = False

    def pause_reading(self) -> None:
        self.read_paused = True

    def resume_reading(self) -> None:
        self.read_paused = False


class _Conn:
    """What BodyPacer uses of a connection: its loop, flow control and transport."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.flow = _Flow()
        self.transport = self
        self.closing = False

    def is_closing(self) -> bool:
        return self.closing


def test_a_loop_reads_at_most_a_turn_of_body_bytes_then_resumes_connections_in_turn() -> None:
    async def scenario() -> None:
        pacer = BodyPacer()
        conns = [_Conn(asyncio.get_running_loop()) for _ in range(4)]
        pacer.spent(conns[0], PACE_BYTES // 2)  # type: ignore[arg-type]
        assert not conns[0].flow.read_paused
        for conn in conns:  # the turn's bytes are spent: each stops after its read
            pacer.spent(conn, PACE_BYTES)  # type: ignore[arg-type]
        assert [c.flow.read_paused for c in conns] == [True] * 4
        conns[1].closing = True  # closed while waiting: skipped
        reading = []
        for _ in range(3):  # each turn resumes one more (a turn's bytes allow one read)
            await asyncio.sleep(0)
            reading.append([not c.flow.read_paused for c in conns])
        assert reading == [
            [True, False, False, False],
            [True, False, True, False],
            [True, False, True, True],
        ]
        assert not pacer.line

    asyncio.run(scenario())


def post_head(size: int, path: str = "/") -> bytes:
    return f"POST {path} HTTP/1.1\r\nHost: t\r\nContent-Length: {size}\r\n\r\n".encode()


READERS = pytest.mark.parametrize(
    "body_server",
    [(64 * MIB, "native"), (64 * MIB, "python")],
    indirect=True,
    ids=["native", "python"],
)


@pytest.mark.parametrize(
    "body_server",
    [(64 * MIB, "native"), (64 * MIB, "python"), (64 * MIB, "failing")],
    indirect=True,
    ids=["native", "python", "no-thread"],
)
def test_a_large_body_read_on_a_thread_arrives_whole_and_the_connection_goes_on(
    body_server: tuple[str, int],
) -> None:
    """Past DIRECT_BYTES still to come, a thread reads the rest of the body from the
    socket; the connection's next requests (pipelined right behind it) are parsed anew.
    A reader that cannot be made (no descriptor left) leaves the body to the loop."""
    big, small = os.urandom(3 * DIRECT_BYTES + 7), os.urandom(1000)
    with socket.create_connection(body_server, timeout=30) as sock:
        sock.sendall(post_head(len(big)) + big[:MIB])
        time.sleep(0.2)  # the reader attaches, the thread takes over
        for at in range(MIB, len(big), 3 * MIB):
            sock.sendall(big[at : at + 3 * MIB])
        assert answers(sock, 1) == [expect(big)]
        pipelined = post_head(len(big)) + big + post_head(len(small)) + small
        sender = threading.Thread(target=sock.sendall, args=(pipelined,))
        sender.start()
        got = answers(sock, 2)
        sender.join(30)
        assert got[0].split(b" ", 1)[1] == expect(big).split(b" ", 1)[1]
        assert got[1].split(b" ", 1)[1] == expect(small).split(b" ", 1)[1]


@pytest.mark.parametrize(
    "body_server",
    [(int(2.5 * DIRECT_BYTES), "native"), (int(2.5 * DIRECT_BYTES), "python")],
    indirect=True,
    ids=["native", "python"],
)
def test_a_body_read_on_a_thread_is_refused_past_the_budget_and_gives_it_back(
    body_server: tuple[str, int], tmp_path: Path
) -> None:
    """Two bodies of 1.5 x DIRECT_BYTES + 1 MiB, both being read on threads, against a
    budget of 2.5 x DIRECT_BYTES: the first is read whole and held; the second crosses
    the budget while its thread reads it (503, the answer arrives whole), then the
    budget is whole again."""
    size = int(1.5 * DIRECT_BYTES) + MIB
    bodies = [os.urandom(size), os.urandom(size)]
    marks = [str(tmp_path / "first"), str(tmp_path / "second")]
    socks = [socket.create_connection(body_server, timeout=30) for _ in bodies]
    try:
        for sock, body, mark in zip(socks, bodies, marks, strict=True):
            sock.sendall(post_head(size, f"/?mark={mark}") + body[:MIB])
            wait_for(mark + ".attached")  # its thread reads the rest
        socks[0].sendall(bodies[0][MIB:])
        wait_for(marks[0] + ".read")  # held, with its budget
        sender = threading.Thread(target=_send_quietly, args=(socks[1], bodies[1][MIB:]))
        sender.start()
        status, answer = parse(_read_answer(socks[1]))
        sender.join(30)
        assert status == 503, answer
        assert b"request bodies" in answer
        Path(marks[0] + ".go").touch()
        assert answers(socks[0], 1) == [expect(bodies[0])]
    finally:
        for sock in socks:
            sock.close()
    body = os.urandom(2 * DIRECT_BYTES)  # fits only if both gave their bytes back
    with socket.create_connection(body_server, timeout=30) as sock:
        sock.sendall(post_head(len(body)) + body)
        assert answers(sock, 1) == [expect(body)]


def wait_for(path: str) -> None:
    for _ in range(400):  # 20 s at most
        if Path(path).exists():
            return
        time.sleep(0.05)
    raise AssertionError(f"{path} never came")


@READERS
def test_a_client_gone_while_a_thread_reads_its_body_gives_it_back(
    body_server: tuple[str, int],
) -> None:
    body = os.urandom(3 * DIRECT_BYTES)
    with socket.create_connection(body_server, timeout=30) as sock:
        sock.sendall(post_head(len(body)) + body[:MIB])
        time.sleep(0.2)
        sock.sendall(body[MIB : 2 * DIRECT_BYTES])
    # the budget (64 MiB) holds 60 MiB only once the first body gave its bytes back
    late = os.urandom(60 * MIB)
    for _ in range(100):  # until the server has seen the first client go (10 s at most)
        with socket.create_connection(body_server, timeout=30) as sock:
            threading.Thread(target=_send_quietly, args=(sock, post_head(len(late)) + late)).start()
            status, answer = parse(_read_answer(sock))
        if status == 200:
            break
        time.sleep(0.1)
    assert (status, answer) == (200, expect(late))


def _send_quietly(sock: socket.socket, data: bytes) -> None:
    with contextlib.suppress(OSError):  # the server may refuse, and close, before the end
        sock.sendall(data)


def _read_answer(sock: socket.socket) -> bytes:
    raw = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(1 << 20):
            raw += chunk
            head, sep, rest = raw.partition(b"\r\n\r\n")
            if sep and b"content-length: " in head.lower():
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                if len(rest) >= length:
                    break
    return raw


def parse(raw: bytes) -> tuple[int, bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    return (int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0), body


def test_a_large_body_held_by_nothing_but_its_request_is_freed_when_it_ends() -> None:
    """Without a pool (the C extension's): freed on the reaper's thread."""
    sent = os.urandom(REAP_BYTES)

    async def scenario() -> None:
        budget = BodyBudget(64 * MIB)
        budget.pool = None
        reader = BodyReader(parts(sent[:MIB], sent[MIB:]), 64 * MIB, budget, len(sent))
        request = Request("http://t/", method="POST", reader=reader)
        assert hashlib.sha256(await request.bytes()).digest() == hashlib.sha256(sent).digest()
        before = bodies.reaped()
        reader.release()
        reader.dispose(request)
        for _ in range(200):  # the reaper thread frees it (10 s at most)
            if bodies.reaped() > before:
                break
            await asyncio.sleep(0.05)
        assert bodies.reaped() == before + 1
        with pytest.raises(RequestError, match="freed when the request ended"):
            await request.bytes()

    asyncio.run(scenario())


def test_a_large_body_held_by_nothing_but_its_request_goes_back_to_the_pool() -> None:
    """Its buffer is the next large body's; unused for POOL_IDLE, its pages go back."""
    sent = os.urandom(REAP_BYTES + 100)  # its buffer: 9 MiB

    async def scenario() -> None:
        budget = BodyBudget(64 * MIB)
        pool = budget.pool
        assert pool is not None
        reader = BodyReader(parts(sent[:MIB], sent[MIB:]), 64 * MIB, budget, len(sent))
        request = Request("http://t/", method="POST", reader=reader)
        assert hashlib.sha256(await request.bytes()).digest() == hashlib.sha256(sent).digest()
        reader.release()
        reader.dispose(request)
        assert (pool.made, pool.free, pool.resident) == (1, 1, 1)
        with pytest.raises(RequestError, match="freed when the request ended"):
            await request.bytes()
        for _ in range(400):  # unused for POOL_IDLE (2 s): its pages go back (20 s at most)
            if not pool.resident:
                break
            await asyncio.sleep(0.05)
        assert (pool.trimmed, pool.resident, pool.free) == (1, 0, 1)
        then = os.urandom(REAP_BYTES + 5)
        reader = BodyReader(parts(then[:MIB], then[MIB:]), 64 * MIB, budget, len(then))
        request = Request("http://t/", method="POST", reader=reader)
        assert await request.bytes() == then
        assert (pool.made, pool.reused) == (1, 1)

    asyncio.run(scenario())


def test_a_pooled_body_cut_short_gives_its_buffer_back_while_its_error_lives() -> None:
    """The error of a body cut short keeps the reader's frame alive through its
    traceback (in a reference cycle, until the collector runs): the body's buffer must
    not wait for that, and its pages go back after POOL_IDLE with no other body's end."""
    sent = os.urandom(REAP_BYTES + 100)

    async def scenario() -> None:
        budget = BodyBudget(64 * MIB)
        pool = budget.pool
        assert pool is not None
        receive = parts(sent[:MIB], sent[MIB : 2 * MIB], disconnect=True)
        reader = BodyReader(receive, 64 * MIB, budget, len(sent))
        request = Request("http://t/", method="POST", reader=reader)
        with pytest.raises(RequestError, match="closed the connection") as caught:
            await request.bytes()
        reader.release()
        assert caught.value.__traceback__ is not None  # its frames live on
        pool.sweep()
        assert (pool.made, pool.free) == (1, 1)
        for _ in range(400):  # unused for POOL_IDLE (2 s): its pages go back (20 s at most)
            if not pool.resident:
                break
            await asyncio.sleep(0.05)
        assert (pool.trimmed, pool.resident) == (1, 0)

    asyncio.run(scenario())


def test_a_large_body_the_worker_keeps_is_not_freed() -> None:
    sent = os.urandom(REAP_BYTES + 1)

    async def scenario() -> None:
        reader = BodyReader(parts(sent), 64 * MIB, BodyBudget(64 * MIB), None)
        request = Request("http://t/", method="POST", reader=reader)
        kept = await request.bytes()
        reader.dispose(request)
        assert await request.bytes() is kept
        assert kept == sent

    asyncio.run(scenario())


def test_a_pooled_body_the_worker_keeps_is_never_another_bodys() -> None:
    """A buffer is reused only once nothing but the pool holds it: a body the worker
    keeps past its request stays as it came while later bodies come, and its buffer is
    reused once the worker lets it go."""
    first, later = os.urandom(REAP_BYTES), os.urandom(REAP_BYTES)

    async def read(budget: BodyBudget, sent: bytes) -> tuple[BodyReader, Request, bytes]:
        reader = BodyReader(parts(sent[:MIB], sent[MIB:]), 64 * MIB, budget, len(sent))
        request = Request("http://t/", method="POST", reader=reader)
        return reader, request, await request.bytes()

    async def scenario() -> None:
        budget = BodyBudget(64 * MIB)
        pool = budget.pool
        assert pool is not None
        reader, request, kept = await read(budget, first)
        reader.release()
        reader.dispose(request)  # the worker holds it: it stays the request's
        assert await request.bytes() is kept
        del reader, request
        for _ in range(3):
            reader, request, body = await read(budget, later)
            assert body == later
            assert body is not kept
            reader.release()
            reader.dispose(request)
            del reader, request, body
        assert kept == first
        assert (pool.made, pool.reused) == (2, 2)
        del kept
        _reader, _request, body = await read(budget, later)
        assert body == later
        assert (pool.made, pool.reused) == (2, 3)

    asyncio.run(scenario())


IDLE_READERS_AT_EXIT = """
import os, socket, sys
from atoll.http import bodies
from atoll.runtime._native import BodyRead, Budget
client, server = socket.socketpair()  # a client that never sends its body
readers = [BodyRead(server.fileno(), bytes(1 << 20), 0, Budget(1 << 30), 60 * 10**9, 1 << 20, 10)
           for _ in range(5)]
for reader in readers:
    reader.start()
def idle() -> int:
    return sum(os.sched_getscheduler(int(t)) == os.SCHED_IDLE for t in os.listdir("/proc/self/task"))
while idle() < 5:  # each lowers itself as it starts
    pass
allowed = os.geteuid() == 0 or __import__("resource").getrlimit(13)[0] >= 20  # RLIMIT_NICE
raised = bodies.leave_idle_priority()
print(raised, idle(), allowed)
"""


def test_at_exit_idle_body_readers_leave_sched_idle() -> None:
    """Readers still waiting for a slow client's bytes when the process exits are put
    back to the normal policy where the process may (the kernel's exit waits for each
    thread to run once: a SCHED_IDLE one waited up to seconds under full load). The
    function is what ``atexit`` runs."""
    done = subprocess.run(
        [sys.executable, "-c", IDLE_READERS_AT_EXIT], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    raised, idle, allowed = done.stdout.split()
    assert int(raised) + int(idle) == 5  # each reader raised, or left as it was
    if allowed == "True":  # root, or an RLIMIT_NICE that allows it
        assert (int(raised), int(idle)) == (5, 0)
