"""atoll.runtime._native.Watch: the stall watch's check on a native thread (http/stalls.py uses it).

The watch calls ``on_late`` only while the beat is late and ``on_beat`` once
when beats resume; ``stop`` joins its thread (counted in /proc/self/task), and
no callback runs after it. Waits poll for what happened, with generous
deadlines; nothing asserts how fast.
"""

from __future__ import annotations

import functools
import os
import threading
import time
import weakref
from collections.abc import Callable

import pytest

from atoll.runtime._native import Watch

MS = 1_000_000


def native_threads() -> int:
    return len(os.listdir("/proc/self/task"))


def running(watch: Watch) -> bool:
    return watch.running


def wait_for(check: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.002)


class Calls:
    def __init__(self) -> None:
        self.late: list[int] = []
        self.beat = 0

    def on_late(self, beats: int) -> None:
        self.late.append(beats)

    def on_beat(self) -> None:
        self.beat += 1


def test_it_calls_back_while_the_beat_is_late_and_once_when_it_resumes() -> None:
    calls = Calls()
    # No CPU clock: a silent loop is late after starved * stall_after (4 * 200 ms).
    watch = Watch(1 * MS, 200 * MS, 4, calls.on_late, calls.on_beat)
    watch.start(-1)
    try:
        end = time.monotonic() + 0.3
        while time.monotonic() < end:  # beating every ms, far under the 800 ms it needs
            watch.beat()
            time.sleep(0.001)
        assert calls.late == []
        assert calls.beat == 0
        assert watch.calls == 0
        wait_for(lambda: len(calls.late) >= 2)  # silent: a call per check while late
        assert set(calls.late) == {watch.beats}
        assert calls.beat == 0
        watch.beat()
        wait_for(lambda: calls.beat == 1)
        late = len(calls.late)
        watch.beat()
        time.sleep(0.05)
        assert calls.beat == 1
        assert len(calls.late) == late
    finally:
        watch.stop()


def test_a_busy_silent_thread_is_late_after_stall_after() -> None:
    calls = Calls()
    spun = threading.Event()
    clock: list[int] = []

    def spin() -> None:  # beats never: busy on a CPU until the watch calls
        clock.append(time.pthread_getcpuclockid(threading.get_ident()))
        spun.set()
        while not calls.late:
            pass

    worker = threading.Thread(target=spin)
    # starved is huge: only the busy path can call on_late.
    watch = Watch(1 * MS, 20 * MS, 1_000_000, calls.on_late, calls.on_beat)
    worker.start()
    spun.wait()
    watch.start(clock[0])
    try:
        worker.join(30)
        assert not worker.is_alive()
        assert calls.late
        assert calls.late[0] == 0
    finally:
        watch.stop()


def test_stop_joins_the_thread_and_no_callback_runs_after_it() -> None:
    before = native_threads()
    calls = Calls()
    watch = Watch(1 * MS, 1 * MS, 1, calls.on_late, calls.on_beat)  # late at every check
    watch.start(-1)
    assert running(watch)
    assert native_threads() == before + 1
    wait_for(lambda: len(calls.late) >= 3)
    watch.stop()
    stopped = len(calls.late)
    assert not running(watch)
    assert native_threads() == before
    time.sleep(0.05)
    assert len(calls.late) == stopped
    watch.stop()  # twice is fine
    with pytest.raises(RuntimeError):
        watch.start(-1)


def test_stop_lets_the_callbacks_go() -> None:
    calls = Calls()
    gone = weakref.ref(calls)
    watch = Watch(1 * MS, 1 * MS, 1, calls.on_late, calls.on_beat)
    watch.start(-1)
    watch.stop()
    del calls
    assert gone() is None  # no reference left in the stopped watch (it has no GC support)


def test_start_and_stop_many_times_leaves_no_thread() -> None:
    before = native_threads()
    for i in range(50):
        calls = Calls()
        watch = Watch(1 * MS, 1 * MS, 1, calls.on_late, calls.on_beat)
        if i % 2:
            watch.start(-1)
            if i % 4 == 1:
                wait_for(functools.partial(bool, calls.late))  # stop while it calls back
        watch.stop()
        del watch
    assert native_threads() == before


def test_a_failing_callback_is_reported_and_the_watch_goes_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reported: list[BaseException | None] = []
    monkeypatch.setattr("sys.unraisablehook", lambda u: reported.append(u.exc_value))
    late: list[int] = []

    def on_late(beats: int) -> None:
        late.append(beats)
        raise ValueError("boom")

    watch = Watch(1 * MS, 1 * MS, 1, on_late, lambda: None)
    watch.start(-1)
    try:
        wait_for(lambda: len(late) >= 2)
    finally:
        watch.stop()
    assert reported
    assert isinstance(reported[0], ValueError)


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="must be positive"):
        Watch(0, 1, 1, print, print)
    with pytest.raises(TypeError, match="callable"):
        Watch(1, 1, 1, None, print)  # type: ignore[arg-type]
