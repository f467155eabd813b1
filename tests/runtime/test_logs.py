"""A request's log, bounded: ``atoll:log.write`` on both backends, and its C writer.

The guest tests run on whichever backend the process uses (scripts/test.sh runs
them on both): on the native one ``atoll:log.write`` is served in C
(``runtime/native/log.c``), on the public one by ``hostfuncs._log_write``; the
expected lines are computed here, the same for both. The ``native_backend``
tests check that C serves the calls (Python's writer is not called) and compare
the C writer with the Python one on the same writes, byte for byte.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import logging
import os
import random
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

from atoll.errors import CpuLimitError, GuestError
from atoll.manifest.schema import Limits
from atoll.runtime import hostfuncs, logs
from atoll.runtime._native import write_lines
from atoll.runtime.backend.auto import BACKEND
from atoll.runtime.hostfuncs import CURRENT
from atoll.runtime.instance import Instance
from atoll.runtime.invocation import GuestStore, Invocation
from atoll.runtime.logs import (
    MAX_LOG_BYTES,
    MAX_LOG_LINE,
    MAX_LOG_LINES,
    LineHandler,
    RequestLog,
    log_lines,
)
from atoll.runtime.module import WasmModule
from atoll.worker import Runtime
from tests.support import wat

IMPORTS = """
  (import "atoll:log" "write" (func $log (param i32 i32)))
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
"""
#: Where the guests below keep their text.
TEXT = 65536


def dropped(lines: int, nbytes: int) -> str:
    return (
        f"… {lines} lines / {nbytes} bytes dropped (a request logs at most {MAX_LOG_LINES}"
        f" lines and {MAX_LOG_BYTES} bytes)"
    )


def cut(text: str, length: int) -> str:
    return f"{text}… (cut at {MAX_LOG_LINE} bytes of {length})"


@dataclass
class Ran:
    error: BaseException | None
    logs: list[str]
    python_writes: int


@contextmanager
def python_log_writes() -> Iterator[list[int]]:
    """Count the calls of hostfuncs._log_write (the Python writer) on this thread."""
    count = [0]
    code = hostfuncs._log_write.__code__

    def profile(frame: FrameType, event: str, arg: Any) -> None:
        if event == "call" and frame.f_code is code:
            count[0] += 1

    previous = sys.getprofile()
    sys.setprofile(profile)
    try:
        yield count
    finally:
        sys.setprofile(previous)


def load(runtime: Runtime, tmp_path: Path, body: str, pages: int = 3) -> WasmModule:
    source = f'(module {IMPORTS} (memory (export "memory") {pages}) {body})'
    path = tmp_path / "guest.wasm"
    path.write_bytes(wat(source))
    return WasmModule.load("guest", path, cache=runtime.cache, linker=runtime.linker)


def run(
    runtime: Runtime,
    tmp_path: Path,
    body: str,
    *,
    export: str = "go",
    pages: int = 3,
    limits: Limits | None = None,
) -> Ran:
    """Instantiate a guest in a request's fresh store and call its ``() -> ()`` export
    ``export`` (none: instantiating is the run, as with a start function)."""
    module = load(runtime, tmp_path, body, pages)
    invocation = Invocation(runtime.engine, limits or Limits(cpu_ms=5000), "rid", "w")
    token = CURRENT.set(invocation)
    error: BaseException | None = None
    try:
        with python_log_writes() as count:
            try:
                instance = Instance.create(module, invocation.fresh_store(), invocation, invocation)
                if export:
                    instance.exports[export]()
            except GuestError as exc:
                error = exc
    finally:
        invocation.close()
        CURRENT.reset(token)
    return Ran(error, invocation.logs, count[0])


def served_in_c(ran: Ran) -> None:
    """On the native backend no call went to the Python writer."""
    if BACKEND.name == "native":
        assert ran.python_writes == 0


def data(text: str | bytes, at: int = TEXT) -> str:
    raw = text.encode() if isinstance(text, str) else text
    escaped = "".join(f"\\{b:02x}" for b in raw)
    return f'(data (i32.const {at}) "{escaped}")'


# -- one line per call ---------------------------------------------------------------


def test_each_call_is_one_line_as_written(runtime: Runtime, tmp_path: Path) -> None:
    texts = data("hello\nworld") + data("héllo ✓", TEXT + 100) + data(b"bad \xff\xc3", TEXT + 200)
    body = f"""{texts}
      (func (export "go")
        (call $log (i32.const {TEXT}) (i32.const 11))
        (call $log (i32.const {TEXT + 100}) (i32.const {len("héllo ✓".encode())}))
        (call $log (i32.const {TEXT + 200}) (i32.const 6))
        (call $log (i32.const 0) (i32.const 0)))"""
    ran = run(runtime, tmp_path, body)
    assert ran.error is None
    assert ran.logs == ["hello\nworld", "héllo ✓", "bad \ufffd\ufffd", ""]
    served_in_c(ran)


def test_a_64_kib_write_is_cut_at_16_kib_and_says_so(runtime: Runtime, tmp_path: Path) -> None:
    body = """
      (func (export "go")
        (memory.fill (i32.const 0) (i32.const 97) (i32.const 65536))
        (call $log (i32.const 0) (i32.const 65536)))"""
    ran = run(runtime, tmp_path, body)
    assert ran.error is None
    assert ran.logs == [cut("a" * MAX_LOG_LINE, 65536), dropped(0, 65536 - MAX_LOG_LINE)]
    served_in_c(ran)


def test_a_cut_through_a_character_leaves_one_replacement(runtime: Runtime, tmp_path: Path) -> None:
    # "é" (2 bytes) straddles the cut: its first byte is kept, and decodes as U+FFFD
    text = "a" * (MAX_LOG_LINE - 1) + "é" * 10
    length = len(text.encode())
    ran = run(
        runtime,
        tmp_path,
        f'{data(text, 0)} (func (export "go") (call $log (i32.const 0) (i32.const {length})))',
    )
    assert ran.logs == [
        cut("a" * (MAX_LOG_LINE - 1) + "\ufffd", length),
        dropped(0, length - MAX_LOG_LINE),
    ]
    served_in_c(ran)


@pytest.mark.parametrize(
    ("ptr", "length"),
    [(65536 * 3 - 4, 5), (0xFFFFFFFF, 1), (0x80000000, 0x80000000), (65536 * 3, 0)],
)
def test_a_bad_pointer_or_length_logs_what_was_asked(
    runtime: Runtime, tmp_path: Path, ptr: int, length: int
) -> None:
    body = f"""(func (export "go") (call $log (i32.const {ptr - (1 << 32) if ptr >= 1 << 31 else ptr})
                                        (i32.const {length - (1 << 32) if length >= 1 << 31 else length})))"""
    ran = run(runtime, tmp_path, body)
    assert ran.error is None
    if ptr == 65536 * 3 and length == 0:  # the end of memory, nothing read: in bounds
        assert ran.logs == [""]
    else:
        assert ran.logs == [f"<atoll:log.write: bad pointer/length {ptr}/{length}>"]
    served_in_c(ran)


def test_a_guest_without_memory_gets_the_bad_pointer_line(runtime: Runtime, tmp_path: Path) -> None:
    path = tmp_path / "nomem.wasm"
    path.write_bytes(
        wat(f'(module {IMPORTS} (func (export "go") (call $log (i32.const 8) (i32.const 3))))')
    )
    module = WasmModule.load("nomem", path, cache=runtime.cache, linker=runtime.linker)
    invocation = Invocation(runtime.engine, Limits(), "rid", "w")
    token = CURRENT.set(invocation)
    try:
        Instance.create(module, invocation.fresh_store(), invocation, invocation).exports.go()
    finally:
        invocation.close()
        CURRENT.reset(token)
    assert invocation.logs == ["<atoll:log.write: bad pointer/length 8/3>"]


# -- the request's budget ----------------------------------------------------------------

LOOP = """
      (func $many (param $ptr i32) (param $len i32) (param $n i32)
        (loop $again
          (call $log (local.get $ptr) (local.get $len))
          (local.set $n (i32.sub (local.get $n) (i32.const 1)))
          (br_if $again (i32.gt_s (local.get $n) (i32.const 0)))))
"""


def test_past_the_line_budget_calls_are_counted_not_kept(runtime: Runtime, tmp_path: Path) -> None:
    text = data("line")
    body = f"""{text} {LOOP}
      (func (export "go") (call $many (i32.const {TEXT}) (i32.const 4) (i32.const 5000)))"""
    ran = run(runtime, tmp_path, body)
    assert ran.logs == ["line"] * MAX_LOG_LINES + [dropped(4000, 4000 * 4)]
    served_in_c(ran)


def test_past_the_byte_budget_then_more_calls(runtime: Runtime, tmp_path: Path) -> None:
    # 10,000 writes of 64 KiB: the cut lines that fit in the byte budget are kept (the part cut off
    # of each counted as dropped), every later one is dropped whole; a short line after
    # them still fits in what the byte budget has left, and is kept
    per_line = len(cut("b" * MAX_LOG_LINE, 65536).encode())
    kept = MAX_LOG_BYTES // per_line
    assert MAX_LOG_BYTES - kept * per_line >= 5
    text = data("short", 0)
    body = f"""{text} {LOOP}
      (func (export "go")
        (memory.fill (i32.const 1024) (i32.const 98) (i32.const 65536))
        (call $many (i32.const 1024) (i32.const 65536) (i32.const 10000))
        (call $log (i32.const 0) (i32.const 5)))"""
    ran = run(runtime, tmp_path, body)
    assert ran.error is None
    assert ran.logs[:kept] == [cut("b" * MAX_LOG_LINE, 65536)] * kept
    refused = 10000 - kept
    assert ran.logs[kept:] == [
        "short",
        dropped(refused, kept * (65536 - MAX_LOG_LINE) + refused * 65536),
    ]
    served_in_c(ran)


def test_invalid_utf8_counts_as_its_replacement_characters(
    runtime: Runtime, tmp_path: Path
) -> None:
    # 2,000 writes of 1,000 invalid bytes: each line is 1,000 U+FFFD, 3,000 bytes, so the
    # byte budget (not the raw bytes written) decides how many are kept
    body = f"""{LOOP}
      (func (export "go")
        (memory.fill (i32.const 0) (i32.const 255) (i32.const 1000))
        (call $many (i32.const 0) (i32.const 1000) (i32.const 2000)))"""
    ran = run(runtime, tmp_path, body)
    kept = MAX_LOG_BYTES // 3000
    assert ran.logs[:-1] == ["\ufffd" * 1000] * kept
    assert ran.logs[-1] == dropped(2000 - kept, (2000 - kept) * 1000)
    served_in_c(ran)


# -- order, and where lines go ----------------------------------------------------------------


def test_lines_from_c_and_from_python_keep_their_order(runtime: Runtime, tmp_path: Path) -> None:
    # log.write (C on the native backend), stderr (Python), log.write
    texts = data("one", 0) + data("two\n", 16) + data("three", 32)
    body = f"""{texts}
      (func (export "go")
        (call $log (i32.const 0) (i32.const 3))
        (i32.store (i32.const 64) (i32.const 16))
        (i32.store (i32.const 68) (i32.const 4))
        (drop (call $fd_write (i32.const 2) (i32.const 64) (i32.const 1) (i32.const 72)))
        (call $log (i32.const 32) (i32.const 5)))"""
    ran = run(runtime, tmp_path, body)
    assert ran.logs == ["one", "two", "three"]
    served_in_c(ran)


def test_a_start_function_logs_during_instantiation(runtime: Runtime, tmp_path: Path) -> None:
    body = data("starting", 0) + "(func $s (call $log (i32.const 0) (i32.const 8))) (start $s)"
    ran = run(runtime, tmp_path, body, export="")
    assert ran.logs == ["starting"]
    served_in_c(ran)


def test_lines_logged_before_a_trap_are_kept(runtime: Runtime, tmp_path: Path) -> None:
    text = data("about to fail", 0)
    body = f"""{text}
      (func (export "go") (call $log (i32.const 0) (i32.const 13)) unreachable)"""
    ran = run(runtime, tmp_path, body)
    assert isinstance(ran.error, GuestError)
    assert ran.logs == ["about to fail"]


def test_a_warm_instance_logs_to_the_request_that_calls_it(
    runtime: Runtime, tmp_path: Path
) -> None:
    text = data("from the warm instance", 0)
    body = f"""{text}
      (func (export "go") (call $log (i32.const 0) (i32.const 22)))"""
    module = load(runtime, tmp_path, body)
    store = GuestStore(runtime.engine, 64 << 20)
    first = Invocation(runtime.engine, Limits(), "r1", "w")
    second = Invocation(runtime.engine, Limits(), "r2", "w")
    try:
        token = CURRENT.set(first)
        try:
            warm = Instance.create(module, store, first, owner=None)
            warm.exports.go()
        finally:
            CURRENT.reset(token)
        for invocation in (second, second, first):
            token = CURRENT.set(invocation)
            try:
                warm.exports.go()
            finally:
                CURRENT.reset(token)
    finally:
        store.close()
        first.close()
        second.close()
    assert first.logs == ["from the warm instance"] * 2
    assert second.logs == ["from the warm instance"] * 2


# -- the CPU budget ----------------------------------------------------------------------


@pytest.mark.parametrize("length", [5, 65536])
def test_a_log_write_loop_is_stopped_by_the_cpu_limit(
    runtime: Runtime, tmp_path: Path, length: int
) -> None:
    text = data("spin!", 0)
    body = f"""{text}
      (func (export "go") (loop $forever (call $log (i32.const 0) (i32.const {length})) (br $forever)))"""
    ran = run(runtime, tmp_path, body, limits=Limits(cpu_ms=50))
    assert isinstance(ran.error, CpuLimitError)
    # how far it got depends on the machine: lines as written, then what was dropped
    line = "spin!" if length == 5 else cut("spin!" + "\0" * (MAX_LOG_LINE - 5), length)
    kept = [text for text in ran.logs if not text.startswith("… ")]
    assert kept == [line] * len(kept)
    assert len(kept) <= MAX_LOG_LINES
    assert len(ran.logs) - len(kept) <= 1
    served_in_c(ran)


# -- the C writer against the Python one (native backend) ---------------------------------


class _Memory:
    """A caller whose ``memory`` is a ctypes buffer (what ``memory_bytes`` reads)."""

    def __init__(self, size: int) -> None:
        self.buffer = ctypes.create_string_buffer(size)
        self.size = size

    def memory_view(self) -> tuple[int, int]:
        return ctypes.addressof(self.buffer), self.size


def _random_bytes(rng: random.Random, n: int) -> bytes:
    kind = rng.randrange(5)
    if kind == 0:
        return bytes(rng.randrange(32, 127) for _ in range(n))
    if kind == 1:  # valid UTF-8 of every width
        chars = "aé✓€𝄞\u07ff\u0800\uffff\U0010ffff"
        text = "".join(rng.choice(chars) for _ in range(n))
        return text.encode()[:n]
    if kind == 2:  # bytes around the boundaries of UTF-8's ranges
        pool = [0x7F, 0x80, 0xBF, 0xC0, 0xC1, 0xC2, 0xDF, 0xE0, 0xA0, 0x9F, 0xED, 0xEF, 0xF0]
        pool += [0x90, 0x8F, 0xF4, 0xF5, 0xFF, 0x41]
        return bytes(rng.choice(pool) for _ in range(n))
    return bytes(rng.randrange(256) for _ in range(n))


@pytest.mark.native_backend
@pytest.mark.parametrize("seed", range(6))
def test_the_c_writer_keeps_and_counts_exactly_as_the_python_one(
    runtime: Runtime, seed: int
) -> None:
    from atoll.runtime import capi

    rng = random.Random(seed)
    memory = _Memory(1 << 17)
    invocation = Invocation(runtime.engine, Limits(), "rid", "w")
    invocation.log_book = RequestLog(invocation.logs)  # the Python counters
    c_lines: list[str] = []
    book = capi.LogBook(c_lines, MAX_LOG_LINES, MAX_LOG_BYTES, MAX_LOG_LINE)
    token = CURRENT.set(invocation)
    try:
        for _ in range(1500):
            size = rng.choice([0, 1, 3, 7, 100, 1000, MAX_LOG_LINE - 1, MAX_LOG_LINE, 20000])
            length = size if rng.random() < 0.9 else rng.choice([size + 1, 1 << 20, 0xFFFFFFFF])
            ptr = rng.randrange(0, memory.size - size + 1) if rng.random() < 0.95 else memory.size
            raw = _random_bytes(rng, size)
            if ptr + len(raw) <= memory.size:
                ctypes.memmove(ctypes.addressof(memory.buffer) + ptr, raw, len(raw))
            hostfuncs._log_write(memory, ptr, length)  # type: ignore[arg-type]
            wanted = min(length, MAX_LOG_LINE)
            in_bounds = ptr + wanted <= memory.size
            view = (
                ctypes.string_at(ctypes.addressof(memory.buffer) + ptr, wanted)
                if in_bounds
                else None
            )
            book.write(view, length, ptr)
            py = invocation.log_book.counts
            assert (book.kept_bytes, book.dropped_lines, book.dropped_bytes) == (
                py.kept_bytes,
                py.dropped_lines,
                py.dropped_bytes,
            ), (size, length, ptr)
    finally:
        CURRENT.reset(token)
    book.collect()
    counts = invocation.log_book.counts
    assert c_lines == invocation.logs
    assert (book.kept_lines, book.dropped_lines, book.dropped_bytes) == (
        counts.kept_lines,
        counts.dropped_lines,
        counts.dropped_bytes,
    )
    assert book.dropped_lines > 0  # the budget was reached


@pytest.mark.native_backend
def test_the_c_writer_counts_utf8_as_pythons_decoder_replaces_it() -> None:
    from atoll.runtime import capi

    rng = random.Random(7)
    samples = [
        bytes([a, b, c, d])
        for a in (0xE0, 0xED, 0xF0, 0xF4, 0xC2)
        for b in (0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0)
        for c in (0x80, 0x41)
        for d in (0xBF, 0x80)
    ]
    samples += [_random_bytes(rng, rng.randrange(1, 40)) for _ in range(20000)]
    for raw in samples:
        for end in range(len(raw) + 1) if len(raw) <= 4 else (len(raw),):
            book = capi.LogBook([], 10, 1 << 20, MAX_LOG_LINE)
            book.write(raw[:end])
            assert book.kept_bytes == len(raw[:end].decode("utf-8", errors="replace").encode()), (
                raw[:end]
            )


# -- writing a request's lines: log_lines and LineHandler -----------------------------------


class Writes(io.StringIO):
    """A stream that counts its writes."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


@contextmanager
def logger_with(*handlers: logging.Handler) -> Iterator[logging.Logger]:
    logger = logging.getLogger(f"atoll.test-log-lines.{random.random()}")
    logger.handlers[:] = list(handlers)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield logger
    finally:
        logger.handlers.clear()


FORMAT = logging.Formatter("%(levelname)s %(name)s: %(message)s <")
LINES = ["one", "", "tr\u00e8s \U0001f600", "x" * 20_000, "last"]


def test_a_line_handler_writes_a_requests_lines_once_as_a_record_per_line_would() -> None:
    batched, plain = Writes(), Writes()
    line_handler = LineHandler(batched)
    stream_handler = logging.StreamHandler(plain)
    for handler in (line_handler, stream_handler):
        handler.setFormatter(FORMAT)
    with logger_with(line_handler) as logger:
        log_lines(logger, "rid1", LINES)
        logger.info("a record of its own")
    with logger_with(stream_handler) as other:
        other.name = logger.name
        for line in LINES:
            other.info("  [%s] %s", "rid1", line)
        other.info("a record of its own")
    assert batched.getvalue() == plain.getvalue()
    assert batched.getvalue().startswith(f"INFO {logger.name}:   [rid1] one <\n")
    assert batched.writes == 2  # the request's lines, then the other record
    assert plain.writes == len(LINES) + 1


def test_any_other_handler_or_a_filter_gets_a_record_per_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # caplog's handler is not a LineHandler: every record as logging makes it
    with logger_with() as logger:
        logger.propagate = True
        caplog.set_level(logging.INFO, logger.name)
        log_lines(logger, "rid2", LINES)
    assert [r.getMessage() for r in caplog.records] == [f"  [rid2] {line}" for line in LINES]
    # a filter on the logger sees each record, and may drop some
    stream = Writes()
    handler = LineHandler(stream)
    handler.setFormatter(FORMAT)
    with logger_with(handler) as logger:
        logger.addFilter(lambda record: record.getMessage() != "  [rid3] ")
        log_lines(logger, "rid3", LINES)
    assert stream.getvalue().count("\n") == len(LINES) - 1
    assert stream.writes == len(LINES) - 1


def test_a_formatter_without_the_message_once_gets_a_record_per_line() -> None:
    stream = Writes()
    handler = LineHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s"))
    with logger_with(handler) as logger:
        log_lines(logger, "rid4", LINES)
    assert stream.getvalue() == "INFO\n" * len(LINES)


def test_lines_below_the_level_are_not_written() -> None:
    stream = Writes()
    quiet = LineHandler(stream)
    quiet.setLevel(logging.WARNING)
    with logger_with(quiet) as logger:
        log_lines(logger, "rid5", LINES)
        logger.setLevel(logging.WARNING)
        log_lines(logger, "rid5", LINES, logging.INFO)
    assert stream.getvalue() == ""


MIXED = [
    "",
    "ascii",
    "caf\u00e9 \xff",  # latin-1
    "\u2026 (cut)" + "b" * 70_000,  # UCS-2, longer than write_lines' chunk
    "\U0001f600 \u00e9\u2026",  # UCS-4
    "\xe9" * 70_001,  # each kind across the chunk's end
    "\U0001f600" * 20_001,
    *[f"line {n}" for n in range(2000)],
]


def test_write_lines_writes_what_the_stream_would_encode(tmp_path: Path) -> None:
    path = tmp_path / "log"
    with path.open("wb") as out:
        assert write_lines(out.fileno(), "12:00:00   [rid] ", " <\n", MIXED) is True
        assert write_lines(out.fileno(), "", "\n", []) is True
    assert path.read_bytes() == "".join(f"12:00:00   [rid] {line} <\n" for line in MIXED).encode()


@pytest.mark.parametrize("odd", ["lone \udc80 surrogate", b"bytes", None])
def test_write_lines_leaves_what_it_cannot_encode_to_the_stream(tmp_path: Path, odd: Any) -> None:
    path = tmp_path / "log"
    with path.open("wb") as out:
        assert write_lines(out.fileno(), "h ", "\n", ["fine", odd]) is False
    assert path.read_bytes() == b""  # nothing written: the stream writes it all


def test_write_lines_raises_when_the_write_fails() -> None:
    read, write = os.pipe()
    os.close(read)
    previous = signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    try:
        with pytest.raises(BrokenPipeError):
            write_lines(write, "h ", "\n", ["x"])
    finally:
        signal.signal(signal.SIGPIPE, previous)
        os.close(write)


def test_write_lines_waits_on_a_full_non_blocking_pipe() -> None:
    """A non-blocking fd (stdio shared with a process that set O_NONBLOCK) that is
    full, with a slow reader: write_lines waits for the reader as a blocking fd
    would, and every line arrives whole (it raised BlockingIOError mid-line)."""
    read, write = os.pipe()
    os.set_blocking(write, False)
    lines = [f"line {i} " + "x" * 1000 for i in range(300)]  # ~300 KiB: past a pipe's 64 KiB
    filled = 0
    with contextlib.suppress(BlockingIOError):
        while True:  # full: the first write of write_lines finds EAGAIN
            filled += os.write(write, b"." * 4096)
    got = bytearray()

    def drain() -> None:  # slower than the writer
        while chunk := os.read(read, 65536):
            got.extend(chunk)
            time.sleep(0.01)

    reader = threading.Thread(target=drain)
    reader.start()
    try:
        assert write_lines(write, "h ", "\n", lines) is True
    finally:
        os.close(write)
        reader.join(60)
        os.close(read)
    assert bytes(got) == b"." * filled + "".join(f"h {line}\n" for line in lines).encode()


@pytest.mark.parametrize("lines", [MIXED, [*MIXED, "lone \udc80 surrogate"]])
def test_a_line_handler_on_a_file_writes_what_a_record_per_line_would(
    tmp_path: Path, lines: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # in C (a file in UTF-8), or through the stream (a surrogate: its errors= decides)
    written: list[bool] = []

    def recorded(fd: int, head: str, end: str, lines: list[str]) -> bool:
        written.append(write_lines(fd, head, end, lines))
        return written[-1]

    monkeypatch.setattr(logs, "_write_lines", recorded)
    outputs = []
    for name, cls in (("batched", LineHandler), ("plain", logging.StreamHandler)):
        with (tmp_path / name).open("w", encoding="utf-8", errors="backslashreplace") as out:
            out.write("before\n")  # held by the stream: written first
            handler = cls(out)
            handler.setFormatter(FORMAT)
            with logger_with(handler) as logger:
                logger.name = "atoll.test-file"
                if isinstance(handler, LineHandler):
                    log_lines(logger, "rid6", lines)
                else:
                    for line in lines:
                        logger.info("  [%s] %s", "rid6", line)
                logger.info("after")
        outputs.append((tmp_path / name).read_bytes())
    assert outputs[0] == outputs[1]
    assert outputs[0].startswith(b"before\nINFO atoll.test-file:   [rid6]  <\n")
    assert written == [lines is MIXED]


def _read_all(reader: int | Any) -> bytes:
    """What waits in a pipe's read end or a socket, without waiting for more."""
    chunks: list[bytes] = []
    while True:
        try:
            chunk = os.read(reader, 1 << 16) if isinstance(reader, int) else reader.recv(1 << 16)
        except BlockingIOError:
            return b"".join(chunks)
        chunks.append(chunk)


@pytest.mark.parametrize("odd", ["", " lone \udc80"], ids=["utf-8", "surrogate"])
@pytest.mark.parametrize("kind", ["pipe", "socket"])
def test_a_log_nobody_reads_never_holds_the_thread_that_logs(kind: str, odd: str) -> None:
    """stderr a pipe (or journald's socket) whose reader stopped reading: the thread
    that logs (an event loop) went on waiting in write_lines once the pipe was full.
    Now what the pipe does not take is dropped at line boundaries and counted; once
    the reader catches up, every line it gets is whole, and the log says how many
    lines were dropped (with what arrived: all of them). Lines with a lone surrogate
    (written as the stream's errors= says) go the same way."""
    import socket

    reader: int | socket.socket
    if kind == "pipe":
        reader, write_fd = os.pipe()
        os.set_blocking(reader, False)
    else:
        reader, other = socket.socketpair()
        reader.setblocking(False)
        write_fd = other.detach()
    # (errors= as stderr has: a lone surrogate is written escaped)
    stream = open(write_fd, "w", encoding="utf-8", errors="backslashreplace")  # noqa: SIM115
    handler = LineHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger(f"atoll.test.unread.{kind}")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    x = "x" * 1000

    def flood() -> None:
        for n in range(300):  # ~3 MiB: far past what a pipe or socket buffer holds
            log_lines(logger, f"r{n}", [f"line {n}.{i} {x}{odd}" for i in range(10)])
            logger.info("request %d done", n)

    try:
        logging_thread = threading.Thread(target=flood, daemon=True)
        logging_thread.start()
        logging_thread.join(120)
        assert not logging_thread.is_alive(), "the thread that logs waits for the reader"
        assert handler.dropped()[0] > 0
        got = b""
        afters = 0
        while not got.endswith(f"after {afters}\n".encode()):  # the reader catches up
            assert afters < 100, "the log never caught up"
            got += _read_all(reader)
            afters += 1
            logger.info("after %d", afters)
            got += _read_all(reader)
    finally:
        handler.close()
        stream.close()
        if not isinstance(reader, int):
            reader.close()
        else:
            os.close(reader)
    lines = got.decode().split("\n")
    assert lines.pop() == ""  # ends with a whole line
    notices = [line for line in lines if line.startswith("atoll: ")]
    assert notices
    dropped = 0
    for notice in notices:
        words = notice.split()
        assert notice == (
            f"atoll: {words[1]} log lines {words[4]} bytes) dropped: "
            "the log's reader did not keep up"
        )
        dropped += int(words[1])
    kept = [line for line in lines if not line.startswith("atoll: ")]
    written = odd.encode("utf-8", "backslashreplace").decode()  # as errors= writes it
    for line in kept:  # every line arrived whole
        assert (
            (line.startswith("  [r") and line.endswith(f" {x}{written}"))
            or line.endswith(" done")
            or line.startswith("after ")
        ), line[:80]
    assert len(kept) + dropped == 300 * 11 + afters
