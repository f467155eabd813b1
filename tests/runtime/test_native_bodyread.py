"""atoll.runtime._native.Budget, BodyRead, Reaper and Pool: a request body read on a native
thread, freed on another, its memory reused.

``http/protocol.py`` uses them to read the rest of a large body straight into its
``bytes`` without the GIL. Here over a real socket pair: the bytes arrive exact,
each is taken from the budget, past the budget the rest is read and dropped, and
the thread ends for a closed peer, a stop, or a body that stops coming; the
eventfd says so. Waits poll for what happened, with generous deadlines.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import json
import os
import random
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from atoll.runtime._native import BodyRead, Budget, Pool, Reaper

MIB = 1024 * 1024
RUNNING, DONE, TIMEOUT, CLOSED, STOPPED = range(5)
SECOND = 1_000_000_000


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair()
    try:
        yield a, b
    finally:
        a.close()
        b.close()


def wait_ended(read: BodyRead, seconds: float = 20.0) -> None:
    """Until the thread says it ended (the eventfd is readable and outcome is set)."""
    deadline = time.monotonic() + seconds
    while read.outcome == RUNNING:
        left = deadline - time.monotonic()
        assert left > 0, "the read never ended"
        select.select([read.notify_fd], [], [], left)
        read.ack()


def read_whole(
    read: BodyRead, body: bytes, sent: bytes, send: Callable[[], None], join: float = 30
) -> None:
    """Run ``send`` on a thread while ``read`` (started) reads: the read ends done, with
    ``body`` as ``sent``."""
    sender = threading.Thread(target=send)
    sender.start()
    wait_ended(read)
    sender.join(join)
    assert read.outcome == DONE
    assert body == sent
    read.finish()


def send_quietly(sock: socket.socket, data: bytes) -> None:
    with contextlib.suppress(OSError):
        sock.sendall(data)


def test_the_budget_counts_and_refuses_past_its_limit() -> None:
    budget = Budget(100)
    assert budget.limit == 100
    assert budget.take(60)
    assert not budget.take(41)  # nothing reserved
    assert budget.used == 60
    assert budget.take(40)
    budget.give(100)
    assert budget.used == 0
    with pytest.raises(ValueError, match="positive"):
        Budget(0)


def test_the_budget_refuses_a_size_whose_sum_would_overflow() -> None:
    """``used + n`` past 2**63 wrapped negative and was let through: a take of almost
    2**63 bytes succeeded and left ``used`` below zero."""
    budget = Budget(100)
    assert budget.take(1)
    assert not budget.take(2**63 - 1)
    assert not budget.take(-5)  # a negative take would raise the room
    assert budget.used == 1


def test_a_budget_shared_by_threads_never_passes_its_limit() -> None:
    budget = Budget(1000)
    taken = [0] * 8

    def take(i: int) -> None:
        for _ in range(10_000):
            if budget.take(7):
                taken[i] += 7

    threads = [threading.Thread(target=take, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(taken) == budget.used <= 1000
    assert budget.used > 1000 - 7


def test_a_body_arrives_whole_in_its_bytes_and_in_the_budget(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    client, server = pair
    sent = os.urandom(9 * MIB + 13)
    body = bytes(len(sent))  # a fresh bytes of that size (the server's is presized)
    head = 1000  # bytes already kept by the loop
    budget = Budget(64 * MIB)
    read = BodyRead(server.fileno(), body, head, budget, 30 * SECOND, MIB, 10)
    read.start()
    sender = threading.Thread(target=client.sendall, args=(sent[head:],))
    sender.start()
    wait_ended(read)
    sender.join(30)
    assert read.outcome == DONE
    assert (read.got, read.taken, read.refused) == (len(sent) - head, len(sent) - head, False)
    assert budget.used == len(sent) - head
    assert body[head:] == sent[head:]
    assert time.monotonic() - read.last < 30
    read.finish()
    # the socket is untouched: the next bytes are the connection's
    client.sendall(b"next request")
    assert server.recv(100) == b"next request"


def test_the_bytes_kept_and_those_before_the_start_survive_the_pages_being_mapped(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    """The thread maps each page of the body before recv() copies into it, by writing
    into it: only where no byte has come yet. Here the body starts mid-page after bytes
    the loop kept, and comes in pieces of every size, so that recv() often returns
    less than the part just mapped."""
    client, server = pair
    sent = os.urandom(6 * MIB + 4321)
    head = 3 * 4096 - 7  # the loop's bytes end mid-page
    body = sent[:head] + bytes(len(sent) - head)
    read = BodyRead(server.fileno(), body, head, Budget(64 * MIB), 30 * SECOND, 64 * 1024, 10)
    read.start()
    sizes = random.Random(7)

    def send_in_pieces() -> None:
        at = head
        while at < len(sent):
            n = sizes.choice((1, 17, 4095, 4097, 65537, 300_001))
            client.sendall(sent[at : at + n])
            at += n

    read_whole(read, body, sent, send_in_pieces)


def test_past_the_budget_the_body_is_refused_and_the_rest_is_read_and_dropped(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    client, server = pair
    sent = os.urandom(8 * MIB)
    body = bytes(len(sent))
    budget = Budget(3 * MIB)
    read = BodyRead(server.fileno(), body, 0, budget, 30 * SECOND, MIB, 10)
    read.start()
    sender = threading.Thread(target=client.sendall, args=(sent + b"after",))
    sender.start()
    wait_ended(read)
    sender.join(30)
    assert read.outcome == DONE  # the whole body was read, most of it dropped
    assert read.refused
    assert read.got == read.taken == budget.used <= 3 * MIB
    assert body[: read.got] == sent[: read.got]
    assert server.recv(100) == b"after"
    read.finish()


def test_a_client_gone_mid_body_ends_the_read_closed(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    client, server = pair
    body = bytes(4 * MIB)
    budget = Budget(64 * MIB)
    read = BodyRead(server.fileno(), body, 0, budget, 30 * SECOND, MIB, 10)
    read.start()
    client.sendall(os.urandom(MIB + 5))
    client.shutdown(socket.SHUT_WR)
    wait_ended(read)
    assert read.outcome == CLOSED
    assert read.got == read.taken == budget.used == MIB + 5
    read.finish()


def test_a_body_that_stops_coming_times_out(pair: tuple[socket.socket, socket.socket]) -> None:
    client, server = pair
    body = bytes(4 * MIB)
    read = BodyRead(server.fileno(), body, 0, Budget(64 * MIB), SECOND // 5, MIB, 10)
    read.start()
    client.sendall(b"x" * 100)
    wait_ended(read)
    assert read.outcome == TIMEOUT
    assert read.got == 100
    read.finish()


def test_a_slow_body_over_tcp_keeps_coming_below_the_low_water_mark() -> None:
    """Over TCP, poll() wakes only once ``lowat`` bytes wait (a socketpair ignores
    it): a client sending steadily, but under ``lowat`` per timeout, timed out
    though a byte never stopped coming for that long. Its bytes are read before a
    timeout is declared."""
    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(listener.getsockname())
    server, _ = listener.accept()
    listener.close()
    sent = os.urandom(8 * MIB)

    def trickle() -> None:  # 2.5 MiB/s: 8 MiB (the low-water mark) take 3 s
        for at in range(0, len(sent), 128 * 1024):
            send_quietly(client, sent[at : at + 128 * 1024])
            time.sleep(0.05)

    try:
        body = bytes(len(sent))
        read = BodyRead(server.fileno(), body, 0, Budget(64 * MIB), 2 * SECOND, 8 * MIB, 10)
        read.start()
        read_whole(read, body, sent, trickle, join=60)
    finally:
        client.close()
        server.close()


def tids() -> set[str]:
    return set(os.listdir("/proc/self/task"))


def threads_gone(started: set[str]) -> None:
    """Until none of ``started`` runs (a reading thread is detached: it ends on its own
    once its read has ended; at the lowest priority, a loaded machine delays that)."""
    deadline = time.monotonic() + 60
    while started & tids():
        assert time.monotonic() < deadline, "the reading thread never ended"
        time.sleep(0.01)


def test_stop_ends_the_thread(pair: tuple[socket.socket, socket.socket]) -> None:
    _, server = pair
    before = tids()
    body = bytes(4 * MIB)
    read = BodyRead(server.fileno(), body, 0, Budget(64 * MIB), 30 * SECOND, MIB, 10)
    read.start()
    started = tids() - before
    with pytest.raises(RuntimeError, match="not ended"):
        read.finish()
    read.stop()
    wait_ended(read)
    assert read.outcome == STOPPED
    held = sys.getrefcount(body)
    read.finish()
    assert sys.getrefcount(body) == held - 1  # the body is let go
    threads_gone(started)


def test_a_running_read_dropped_stops_and_keeps_its_body_alive(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    """Dropped while its thread runs (only at shutdown), a read stops its thread
    without waiting for it, and never lets go of the body the thread writes into."""
    _, server = pair
    before = tids()
    body = bytes(4 * MIB)
    read = BodyRead(server.fileno(), body, 0, Budget(64 * MIB), 30 * SECOND, MIB, 10)
    held = sys.getrefcount(body)
    read.start()
    started = tids() - before
    del read
    threads_gone(started)
    assert sys.getrefcount(body) == held


def test_the_reading_thread_runs_at_idle_priority(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    _, server = pair
    before = set(os.listdir("/proc/self/task"))
    read = BodyRead(server.fileno(), bytes(4 * MIB), 0, Budget(64 * MIB), 30 * SECOND, MIB, 10)
    read.start()
    try:
        deadline = time.monotonic() + 10
        while True:
            new = set(os.listdir("/proc/self/task")) - before
            if new:
                break
            assert time.monotonic() < deadline
        (tid,) = new
        for _ in range(1000):  # until the thread has set its policy
            policy = os.sched_getscheduler(int(tid))
            if policy == os.SCHED_IDLE:
                break
            time.sleep(0.01)
        assert policy == os.SCHED_IDLE
    finally:
        read.stop()
        wait_ended(read)
        read.finish()


def test_the_arguments_are_checked(pair: tuple[socket.socket, socket.socket]) -> None:
    _, server = pair
    with pytest.raises(ValueError, match="start"):
        BodyRead(server.fileno(), bytes(10), 10, Budget(100), SECOND, MIB, 10)
    with pytest.raises(ValueError, match="positive"):
        BodyRead(server.fileno(), bytes(10), 0, Budget(100), 0, MIB, 10)
    with pytest.raises(OSError, match="Bad file descriptor"):
        BodyRead(-1, bytes(10), 0, Budget(100), SECOND, MIB, 10)


def test_the_reaper_gives_a_bodys_pages_back_then_releases_it() -> None:
    """Its pages wholly inside the data go (they read as zeros: a test may look, a
    server never does), the object's header and the bytes around stay; the object is
    released by the next put() or collect()."""
    reaper = Reaper()
    body = os.urandom(8 * MIB + 100)
    head, tail = body[:8], body[-8:]
    held = sys.getrefcount(body)
    reaper.put(body)
    assert sys.getrefcount(body) == held + 1  # the reaper holds it
    deadline = time.monotonic() + 60  # its thread runs at the lowest priority
    while reaper.reaped < 1:
        assert time.monotonic() < deadline, "never reaped"
        time.sleep(0.01)
    assert len(body) == 8 * MIB + 100
    page = os.sysconf("SC_PAGE_SIZE")
    assert body[page : 8 * MIB - page] == bytes(8 * MIB - 2 * page)
    assert body[:8] == head or body[:8] == bytes(8)  # the first page may start inside it
    assert body[-8:] == tail  # the last partial page is never given back
    reaper.collect()
    assert sys.getrefcount(body) == held


def test_a_reaper_dropped_releases_what_it_holds() -> None:
    reaper = Reaper()
    bodies = [os.urandom(MIB) for _ in range(3)]
    held = [sys.getrefcount(body) for body in bodies]
    for body in bodies:
        reaper.put(body)
    del body
    del reaper  # waits for a thread still at work on it
    assert [sys.getrefcount(body) for body in bodies] == held
    with pytest.raises(TypeError, match="bytes"):
        Reaper().put(bytearray(10))  # type: ignore[arg-type]


def test_the_reaper_thread_ends_when_it_has_nothing_left() -> None:
    """No idle reaper thread is left for the process's exit to wait for (a SCHED_IDLE
    thread can wait seconds for the CPU it needs to die on a loaded machine): each
    put() after the thread ended starts another, and every body is reaped."""
    reaper = Reaper()
    before = tids()
    for round_ in range(1, 4):
        reaper.put(os.urandom(MIB))
        deadline = time.monotonic() + 60  # its thread runs at the lowest priority
        while reaper.reaped < round_ or reaper.running:
            assert time.monotonic() < deadline, "never reaped, or its thread never ended"
            time.sleep(0.01)
        threads_gone(tids() - before)  # the thread said it ended: it is gone
    reaper.collect()


CANNOT_MAKE_THREADS = """
import os, resource, sys
from atoll.runtime._native import Reaper
if os.geteuid() == 0:  # root is not bound by RLIMIT_NPROC: be nobody
    os.setgid(65534)
    os.setuid(65534)
resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))  # no thread can be made
reaper = Reaper()
body = os.urandom(1 << 20)
held = sys.getrefcount(body)
reaper.put(body)  # raised OSError (logged as an error by the server)
assert reaper.reaped == 1 and not reaper.running, (reaper.reaped, reaper.running)
assert sys.getrefcount(body) == held, "the reaper still holds the body"
print("freed here")
"""


def test_a_reaper_that_cannot_make_its_thread_frees_the_body_on_the_callers() -> None:
    """No thread left (RLIMIT_NPROC, as when the process is out of threads or memory):
    put() frees the body on the calling thread instead of raising."""
    import subprocess

    done = subprocess.run(
        [sys.executable, "-c", CANNOT_MAKE_THREADS], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "freed here"


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # fork() with threads (3.12+)
def test_a_reaper_used_before_a_fork_reaps_in_the_child() -> None:
    """Its thread stays in the parent: the child starts its own on its first put()
    (before, the child's bodies were held forever and never reaped)."""
    reaper = Reaper()
    reaper.put(os.urandom(MIB))
    deadline = time.monotonic() + 60
    while reaper.reaped < 1:
        assert time.monotonic() < deadline, "never reaped"
        time.sleep(0.01)
    pid = os.fork()
    if pid == 0:  # the child: exit status 0 once its body is reaped, 1 if never
        status = 1
        try:
            reaper.put(os.urandom(MIB))
            until = time.monotonic() + 60
            while time.monotonic() < until:
                if reaper.reaped >= 2:
                    status = 0
                    break
                time.sleep(0.01)
            reaper.collect()
        finally:
            os._exit(status)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    del reaper


def pool(limit: int = 64 * MIB, idle_ns: int = 60 * SECOND) -> Pool:
    return Pool(limit, idle_ns, Reaper())


def fill(body: bytes, byte: int) -> None:
    """Write ``byte`` all over a bytes that take() handed out (nobody has read it yet)."""
    ctypes.memset(ctypes.c_char_p(body), byte, len(body))


def test_a_pooled_buffer_is_handed_out_again_only_once_nothing_else_holds_it() -> None:
    p = pool()
    first = p.take(10 * MIB)
    assert len(first) == 10 * MIB
    assert p.owns(first)
    assert (p.made, p.held) == (1, 10 * MIB)
    fill(first, ord("a"))
    hash(first)  # CPython keeps it in the object
    kept = first
    del first
    second = p.take(10 * MIB)  # ``kept`` still holds the first: not reused
    assert second is not kept
    assert p.reused == 0
    fill(second, ord("b"))
    assert kept == b"a" * (10 * MIB)
    del kept, second
    third = p.take(10 * MIB - 3)  # a free buffer of the size: reused, not made
    assert (p.made, p.reused, p.held) == (2, 1, 20 * MIB)
    assert len(third) == 10 * MIB - 3
    fill(third, ord("c"))
    assert third == b"c" * (10 * MIB - 3)
    assert hash(third) == hash(bytes(bytearray(third)))  # not the earlier body's hash


def test_the_pool_holds_at_most_its_limit_and_makes_room_from_free_buffers() -> None:
    p = pool(limit=20 * MIB)
    a = p.take(12 * MIB)
    b = p.take(12 * MIB)  # no room while ``a`` is held: a plain bytes, not pooled
    assert p.owns(a)
    assert not p.owns(b)
    assert p.held == 12 * MIB
    del a, b
    c = p.take(16 * MIB)  # the free 12 MiB buffer is too small: it goes, to make room
    assert p.owns(c)
    assert p.held == 16 * MIB
    assert p.made == 2
    del c
    d = p.take(9 * MIB)  # 16 MiB for 9 would waste more than a quarter: a new one
    assert p.owns(d)
    assert p.held == 9 * MIB
    assert p.reused == 0
    with pytest.raises(ValueError, match="2 or more"):
        p.take(1)


def test_a_free_buffer_unused_long_enough_gives_its_pages_back_and_is_reused() -> None:
    p = pool(idle_ns=0)
    body = p.take(8 * MIB)
    fill(body, ord("x"))
    del body
    p.sweep()
    assert (p.free, p.resident) == (1, 1)
    assert p.trim() == 0  # none left holding its pages
    deadline = time.monotonic() + 60
    while p.resident:  # the reaper's thread gives them back
        assert time.monotonic() < deadline, "never trimmed"
        time.sleep(0.01)
    assert (p.trimmed, p.free) == (1, 1)
    again = p.take(8 * MIB)  # pages fault in again, as a new buffer's would
    assert p.reused == 1
    fill(again, ord("y"))
    assert again == b"y" * (8 * MIB)

    recent = pool(idle_ns=3600 * SECOND)
    body = recent.take(8 * MIB)
    del body
    assert recent.trim() == 1
    assert recent.resident == 1


def test_a_body_is_read_into_a_pooled_buffer_after_another_body(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    client, server = pair
    p = pool()
    for _ in range(2):
        sent = os.urandom(5 * MIB + 11)
        body = p.take(len(sent))
        read = BodyRead(server.fileno(), body, 0, Budget(64 * MIB), 30 * SECOND, MIB, 10)
        read.start()
        read_whole(read, body, sent, functools.partial(client.sendall, sent))
        del read, body
    assert (p.made, p.reused) == (1, 1)


def mapping_of(address: int) -> tuple[int, int]:
    """The mapping (VMA) of this process that holds ``address``: (start, end)."""
    with open("/proc/self/maps") as maps:
        for line in maps:
            start, end = (int(x, 16) for x in line.split()[0].split("-"))
            if start <= address < end:
                return start, end
    raise AssertionError(f"{address:#x} is not mapped")


_MAPPINGS = """
import ctypes, json
from atoll.runtime._native import Pool, Reaper
from tests.runtime.test_native_bodyread import MIB, mapping_of

p = Pool(256 * MIB, 60 * 10**9, Reaper())
bodies = [p.take(40 * MIB) for _ in range(3)] + [p.take(300 * MIB)]  # pooled, and not
seen = []
for body in bodies:
    address = ctypes.cast(ctypes.c_char_p(body), ctypes.c_void_p).value
    seen.append([p.owns(body), address, len(body), *mapping_of(address + len(body) // 2)])
print(json.dumps(seen))
"""


def test_a_bodys_pages_are_a_mapping_of_their_own() -> None:
    """Consecutive bodies were one mapping (the kernel merges adjacent anonymous ones):
    an mmap or munmap next to any of them waited for every page fault in progress in all
    of them. Each body's pages, but its first and last, are now a mapping of their own.
    In a fresh interpreter: glibc serves a body from its heap (whose mapping it shares)
    when a free block of the heap fits it, as one may after a process has freed large
    blocks there (in a full test run, it did), and a body over 32 MiB otherwise gets its
    own mmap."""
    out = subprocess.run(
        [sys.executable, "-c", _MAPPINGS],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
        timeout=120,
    ).stdout
    page = os.sysconf("SC_PAGE_SIZE")
    seen = json.loads(out.strip().splitlines()[-1])
    assert [owned for owned, *_ in seen] == [True, True, True, False]
    for _owned, address, size, start, end in seen:
        assert address <= start <= address + page
        assert address + size - page <= end <= address + size
