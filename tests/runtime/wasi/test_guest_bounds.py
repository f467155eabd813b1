"""Every guest-controlled length that makes the host allocate, copy, log or loop is bounded.

Each test runs an inline WAT guest as ``entries/cgi.py`` runs ``_start`` (an
:class:`Invocation` with ``CURRENT`` set), on the C WASI path (a ``capi.Stdio``
on the store's meter: ``_native``'s functions serve what they can) and on the
Python one (``preview1.py`` serves everything). Under ``ATOLL_CAPI=0`` only the
Python path exists, so only it is run. The bounds are listed in docs/limits.md.
"""

from __future__ import annotations

import os
import struct
import sys
import tracemalloc
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import pytest

from atoll.errors import CpuLimitError, GuestError
from atoll.manifest.schema import Limits
from atoll.runtime.backend.auto import BACKEND
from atoll.runtime.hostfuncs import CURRENT
from atoll.runtime.instance import Instance
from atoll.runtime.invocation import Invocation
from atoll.runtime.logs import MAX_LOG_BYTES, MAX_LOG_LINE, MAX_LOG_LINES, RequestLog
from atoll.runtime.module import WasmModule
from atoll.runtime.program import run_program
from atoll.runtime.wasi import DirGrant, ProcExit, WasiContext, preview1
from atoll.runtime.wasi.context import HOST_FILES, MAX_OPEN_FILES
from atoll.runtime.wasi.preview1 import (
    INVAL,
    IOV_MAX,
    LOG_WRITE_MAX,
    MFILE,
    NAMETOOLONG,
    NFILE,
    SUCCESS,
    OutputLimitError,
)
from atoll.worker import Runtime
from tests.support import wat

PATHS = ["c", "python"] if BACKEND.name == "native" else ["python"]
MIB = 1024 * 1024

IMPORTS = """
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "random_get" (func $random_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "poll_oneoff"
    (func $poll_oneoff (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_filestat_get"
    (func $path_filestat_get (param i32 i32 i32 i32 i32) (result i32)))
  (import "atoll:log" "write" (func $log (param i32 i32)))
"""


@dataclass
class Ran:
    error: BaseException | None
    outcome: str
    logs: list[str]
    stdout: bytes
    #: The guest's first page (where these guests store their results).
    head: bytes
    instance_memory: bytes


def run(
    runtime: Runtime,
    tmp_path: Path,
    body: str,
    path: str,
    *,
    pages: int = 1,
    limits: Limits | None = None,
    stdout_limit: int = MIB,
    grant: Path | None = None,
    tail: tuple[int, int] = (0, 0),
) -> Ran:
    """Run a guest whose ``_start`` is ``body`` (after :data:`IMPORTS` and a memory of
    ``pages``); ``tail``: ``(offset, length)`` of its memory to return as well."""
    source = f'(module {IMPORTS} (memory (export "memory") {pages}) {body})'
    wasm = tmp_path / "guest.wasm"
    wasm.write_bytes(wat(source))
    module = WasmModule.load("guest", wasm, cache=runtime.cache, linker=runtime.linker)
    invocation = Invocation(runtime.engine, limits or Limits(cpu_ms=5000), "rid", "w")
    dirs = (DirGrant(grant, "/data"),) if grant is not None else ()
    context = WasiContext(args=["prog"], stdout_limit=stdout_limit, dirs=dirs)
    invocation.wasi = context
    token = CURRENT.set(invocation)
    try:
        store = invocation.fresh_store()
        if path == "c":
            BACKEND.serve_stdio(store.meter, context, invocation.log_book.counts)
        instance = Instance.create(module, store, invocation, owner=invocation)
        error: BaseException | None = None
        try:
            instance.run("_start")
        except (ProcExit, GuestError) as exc:
            error = exc
        head = instance.memory.read(0, 65536)
        rest = instance.memory.read(*tail) if tail[1] else b""
        stdout = context.stdout_bytes()
    finally:
        invocation.close()
        CURRENT.reset(token)
    return Ran(error, invocation.outcome.value, invocation.logs, stdout, head, rest)


def u32s(ran: Ran, at: int, n: int) -> list[int]:
    return u32s_of(ran.head, at, n)


def u32s_of(data: bytes, at: int, n: int) -> list[int]:
    return list(struct.unpack_from(f"<{n}I", data, at))


# -- iovec counts --------------------------------------------------------------------


@pytest.mark.parametrize("path", PATHS)
def test_more_iovecs_than_iov_max_is_einval_at_once(
    runtime: Runtime, tmp_path: Path, path: str
) -> None:
    # six million empty iovecs (48 MB of zeros from 65536 on): once 1.1 s of host CPU
    many = 6_000_000
    body = f"""
      (func (export "_start")
        (i32.store (i32.const 0) (call $fd_write (i32.const 1) (i32.const 65536)
                                                 (i32.const {many}) (i32.const 64)))
        (i32.store (i32.const 4) (call $fd_write (i32.const 2) (i32.const 65536)
                                                 (i32.const {many}) (i32.const 64)))
        (i32.store (i32.const 8) (call $fd_read (i32.const 0) (i32.const 65536)
                                                (i32.const {many}) (i32.const 64)))
        (i32.store (i32.const 12) (call $fd_write (i32.const 1) (i32.const 65536)
                                                  (i32.const {IOV_MAX}) (i32.const 64))))"""
    ran = run(runtime, tmp_path, body, path, pages=800)
    assert ran.error is None
    assert u32s(ran, 0, 4) == [INVAL, INVAL, INVAL, SUCCESS]
    assert ran.stdout == b""
    assert ran.logs == []


def test_a_module_called_from_python_gets_einval_for_too_many_iovecs_from_c(
    runtime: Runtime, tmp_path: Path
) -> None:
    # the hostile benchmark's fd_write loop, from a Python worker (no CGI Stdio): on the
    # native backend C answers, no call reaches preview1.fd_write (and the GIL)
    source = f"""(module {IMPORTS} (memory (export "memory") 800)
      (func (export "go") (param $n i32)
        (loop $again
          (i32.store (i32.const 0) (call $fd_write (i32.const 1) (i32.const 65536)
                                                   (i32.const 6000000) (i32.const 64)))
          (i32.store (i32.const 4) (call $fd_read (i32.const 0) (i32.const 65536)
                                                  (i32.const 6000000) (i32.const 64)))
          (local.set $n (i32.sub (local.get $n) (i32.const 1)))
          (br_if $again (local.get $n)))))"""
    wasm = tmp_path / "guest.wasm"
    wasm.write_bytes(wat(source))
    module = WasmModule.load("guest", wasm, cache=runtime.cache, linker=runtime.linker)
    invocation = Invocation(runtime.engine, Limits(cpu_ms=5000), "rid", "w")
    calls = []
    source_file = preview1.__file__

    def profile(frame: FrameType, event: str, arg: object) -> None:
        if event == "call" and frame.f_code.co_filename == source_file:
            calls.append(frame.f_code.co_name)

    token = CURRENT.set(invocation)
    try:
        instance = Instance.create(module, invocation.fresh_store(), invocation, invocation)
        sys.setprofile(profile)
        try:
            instance.exports.go(1000)
        finally:
            sys.setprofile(None)
        assert u32s_of(instance.memory.read(0, 8), 0, 2) == [INVAL, INVAL]
    finally:
        invocation.close()
        CURRENT.reset(token)
    assert invocation.logs == []
    if BACKEND.name == "native":
        assert calls == []
    else:
        assert calls.count("fd_write") == calls.count("fd_read") == 1000


@pytest.mark.parametrize("path", PATHS)
def test_stdout_past_the_limit_fails_before_anything_is_copied(
    runtime: Runtime, tmp_path: Path, path: str
) -> None:
    # 1024 iovecs over the same 1 MiB: 1 GiB asked for, 1 MiB allowed
    body = f"""
      (func (export "_start") (local $i i32)
        (loop $fill
          (i32.store (i32.add (i32.const 1024) (i32.mul (local.get $i) (i32.const 8)))
                     (i32.const 65536))
          (i32.store (i32.add (i32.const 1028) (i32.mul (local.get $i) (i32.const 8)))
                     (i32.const {MIB}))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $fill (i32.lt_u (local.get $i) (i32.const {IOV_MAX}))))
        (drop (call $fd_write (i32.const 1) (i32.const 1024) (i32.const {IOV_MAX})
                              (i32.const 64))))"""
    tracemalloc.start()
    try:
        ran = run(runtime, tmp_path, body, path, pages=20)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert isinstance(ran.error, OutputLimitError)
    assert f"more than {MIB} bytes to stdout" in str(ran.error)
    assert ran.stdout == b""
    assert peak < 64 * MIB  # once: the whole GiB copied, then refused


# -- the log: line length, lines and bytes per request ---------------------------------

LONG = 8 * MIB


@pytest.mark.parametrize("path", PATHS)
def test_an_8_mib_stderr_line_is_cut_and_written_in_short_writes(
    runtime: Runtime, tmp_path: Path, path: str
) -> None:
    # as a libc writes: loop until fd_write took it all (nwritten at 64, calls at 68)
    body = f"""
      (data (i32.const 1024) "\\nafter\\n")
      (func (export "_start") (local $at i32) (local $left i32)
        (memory.fill (i32.const 65536) (i32.const 120) (i32.const {LONG}))
        (local.set $at (i32.const 65536))
        (local.set $left (i32.const {LONG}))
        (block $done
          (loop $again
            (br_if $done (i32.eqz (local.get $left)))
            (i32.store (i32.const 0) (local.get $at))
            (i32.store (i32.const 4) (local.get $left))
            (br_if $done (call $fd_write (i32.const 2) (i32.const 0) (i32.const 1) (i32.const 64)))
            (local.set $at (i32.add (local.get $at) (i32.load (i32.const 64))))
            (local.set $left (i32.sub (local.get $left) (i32.load (i32.const 64))))
            (i32.store (i32.const 68) (i32.add (i32.load (i32.const 68)) (i32.const 1)))
            (br $again)))
        (i32.store (i32.const 0) (i32.const 1024))
        (i32.store (i32.const 4) (i32.const 7))
        (i32.store (i32.const 72) (call $fd_write (i32.const 2) (i32.const 0) (i32.const 1)
                                                  (i32.const 64))))"""
    ran = run(runtime, tmp_path, body, path, pages=130)
    assert ran.error is None
    calls_made, errno = u32s(ran, 68, 2)
    assert calls_made == LONG // LOG_WRITE_MAX  # each call took at most LOG_WRITE_MAX bytes
    assert errno == SUCCESS
    assert len(ran.logs) == 3
    first, after, summary = ran.logs
    dropped = LONG - MAX_LOG_LINE
    assert first == "x" * MAX_LOG_LINE + f"… (cut at {MAX_LOG_LINE} bytes; {dropped} more dropped)"
    assert after == "after"
    assert summary.startswith(f"… 0 lines / {dropped} bytes dropped")


@pytest.mark.parametrize("path", PATHS)
def test_stderr_lines_past_the_request_budget_are_counted_not_kept(
    runtime: Runtime, tmp_path: Path, path: str
) -> None:
    lines = 5000
    body = f"""
      (data (i32.const 1024) "line\\n")
      (func (export "_start") (local $i i32)
        (i32.store (i32.const 0) (i32.const 1024))
        (i32.store (i32.const 4) (i32.const 5))
        (loop $again
          (drop (call $fd_write (i32.const 2) (i32.const 0) (i32.const 1) (i32.const 64)))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $again (i32.lt_u (local.get $i) (i32.const {lines})))))"""
    ran = run(runtime, tmp_path, body, path)
    assert ran.error is None
    assert ran.logs[:-1] == ["line"] * MAX_LOG_LINES
    dropped = lines - MAX_LOG_LINES
    assert ran.logs[-1] == (
        f"… {dropped} lines / {dropped * 5} bytes dropped (a request logs at most"
        f" {MAX_LOG_LINES} lines and {MAX_LOG_BYTES} bytes)"
    )


@pytest.mark.parametrize("path", PATHS)
def test_stderr_and_atoll_log_write_lines_keep_their_order(
    runtime: Runtime, tmp_path: Path, path: str
) -> None:
    # log.write "a"; stderr "b\nc"; log.write "d"; stderr "\n" (ends the line "c")
    body = """
      (data (i32.const 1024) "a") (data (i32.const 1032) "b\\nc") (data (i32.const 1040) "d")
      (data (i32.const 1048) "\\n")
      (func $err (param $at i32) (param $n i32)
        (i32.store (i32.const 0) (local.get $at))
        (i32.store (i32.const 4) (local.get $n))
        (drop (call $fd_write (i32.const 2) (i32.const 0) (i32.const 1) (i32.const 64))))
      (func (export "_start")
        (call $log (i32.const 1024) (i32.const 1))
        (call $err (i32.const 1032) (i32.const 3))
        (call $log (i32.const 1040) (i32.const 1))
        (call $err (i32.const 1048) (i32.const 1)))"""
    ran = run(runtime, tmp_path, body, path)
    assert ran.error is None
    assert ran.logs == ["a", "b", "d", "c"]


@pytest.mark.native_backend
def test_a_stderr_flood_is_served_in_c(runtime: Runtime, tmp_path: Path) -> None:
    # 20,000 writes of a 64 KiB line: with the request's LogBook on the CGI run's Stdio,
    # none reaches preview1.fd_write (and so the GIL); the log keeps its budget
    body = """
      (func (export "_start") (local $i i32)
        (memory.fill (i32.const 1024) (i32.const 122) (i32.const 65536))
        (i32.store8 (i32.const 66559) (i32.const 10))
        (i32.store (i32.const 0) (i32.const 1024))
        (i32.store (i32.const 4) (i32.const 65536))
        (loop $again
          (drop (call $fd_write (i32.const 2) (i32.const 0) (i32.const 1) (i32.const 64)))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $again (i32.lt_u (local.get $i) (i32.const 20000)))))"""
    calls: list[str] = []
    source_file = preview1.__file__

    def profile(frame: FrameType, event: str, arg: object) -> None:
        if event == "call" and frame.f_code.co_filename == source_file:
            calls.append(frame.f_code.co_name)

    sys.setprofile(profile)
    try:
        ran = run(runtime, tmp_path, body, "c", pages=2)
    finally:
        sys.setprofile(None)
    assert ran.error is None
    assert calls == []
    line = (
        "z" * MAX_LOG_LINE + f"… (cut at {MAX_LOG_LINE} bytes; {65535 - MAX_LOG_LINE} more dropped)"
    )
    kept = MAX_LOG_BYTES // len(line.encode())
    assert ran.logs[:-1] == [line] * kept
    assert ran.logs[-1].startswith(f"… {20000 - kept} lines / ")


@pytest.mark.parametrize("native", [True, False] if BACKEND.name == "native" else [False])
def test_a_last_stderr_line_is_in_the_log_when_run_program_returns(
    runtime: Runtime, tmp_path: Path, native: bool
) -> None:
    # as wagi's _routes reads the log: after run_program, before the request ends
    source = f"""(module {IMPORTS} (memory (export "memory") 1)
      (data (i32.const 1024) "first\\nno newline")
      (func (export "_start")
        (i32.store (i32.const 0) (i32.const 1024))
        (i32.store (i32.const 4) (i32.const 16))
        (drop (call $fd_write (i32.const 2) (i32.const 0) (i32.const 1) (i32.const 64)))))"""
    wasm = tmp_path / "guest.wasm"
    wasm.write_bytes(wat(source))
    module = WasmModule.load("guest", wasm, cache=runtime.cache, linker=runtime.linker)
    invocation = Invocation(runtime.engine, Limits(), "rid", "w")
    if not native:  # the Python counters: no C writer anywhere
        invocation.log_book = RequestLog(invocation.logs)
    token = CURRENT.set(invocation)
    try:
        assert run_program(module, invocation, WasiContext(args=["p"])) == 0
        assert invocation.logs == ["first", "no newline"]
    finally:
        invocation.close()
        CURRENT.reset(token)


def _called_from_python(
    runtime: Runtime, tmp_path: Path, body: str, pages: int = 1
) -> tuple[list[str], list[str]]:
    """Call export ``go`` of a guest as a Python worker does (the request's default WASI
    context, no Stdio): (the request's log, the preview1 functions Python ran)."""
    wasm = tmp_path / "guest.wasm"
    wasm.write_bytes(wat(f'(module {IMPORTS} (memory (export "memory") {pages}) {body})'))
    module = WasmModule.load("guest", wasm, cache=runtime.cache, linker=runtime.linker)
    invocation = Invocation(runtime.engine, Limits(cpu_ms=5000), "rid", "w")
    calls: list[str] = []

    def profile(frame: FrameType, event: str, arg: object) -> None:
        if event == "call" and frame.f_code.co_filename == preview1.__file__:
            calls.append(frame.f_code.co_name)

    token = CURRENT.set(invocation)
    try:
        instance = Instance.create(module, invocation.fresh_store(), invocation, invocation)
        sys.setprofile(profile)
        try:
            instance.exports.go()
        finally:
            sys.setprofile(None)
    finally:
        invocation.close()
        CURRENT.reset(token)
    return invocation.logs, calls


WRITE = """
  (func $out (param $fd i32) (param $at i32) (param $n i32)
    (i32.store (i32.const 0) (local.get $at))
    (i32.store (i32.const 4) (local.get $n))
    (drop (call $fd_write (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 64))))
"""


def test_stdout_and_stderr_of_a_module_called_from_python_go_to_the_log(
    runtime: Runtime, tmp_path: Path
) -> None:
    # one line being written for both (the default context's), then log.write, and a
    # last line without its newline, logged when the request ends
    body = f"""{WRITE}
      (data (i32.const 1024) "a\\nb") (data (i32.const 1032) "c\\n") (data (i32.const 1040) "d")
      (data (i32.const 1048) "\\n") (data (i32.const 1056) "tail")
      (func (export "go")
        (call $out (i32.const 1) (i32.const 1024) (i32.const 3))
        (call $out (i32.const 2) (i32.const 1032) (i32.const 2))
        (call $log (i32.const 1040) (i32.const 1))
        (call $out (i32.const 1) (i32.const 1048) (i32.const 1))
        (call $out (i32.const 2) (i32.const 1056) (i32.const 4)))"""
    logs, calls = _called_from_python(runtime, tmp_path, body)
    assert logs == ["a", "bc", "d", "", "tail"]
    if BACKEND.name == "native":
        assert calls == []  # fd_write to the log and log.write: C


def test_a_stderr_flood_from_a_module_called_from_python_keeps_the_budget(
    runtime: Runtime, tmp_path: Path
) -> None:
    body = f"""{WRITE}
      (func (export "go") (local $i i32)
        (memory.fill (i32.const 1024) (i32.const 122) (i32.const 65536))
        (i32.store8 (i32.const 66559) (i32.const 10))
        (loop $again
          (call $out (i32.const 2) (i32.const 1024) (i32.const 65536))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $again (i32.lt_u (local.get $i) (i32.const 3000)))))"""
    logs, calls = _called_from_python(runtime, tmp_path, body, pages=2)
    line = (
        "z" * MAX_LOG_LINE + f"… (cut at {MAX_LOG_LINE} bytes; {65535 - MAX_LOG_LINE} more dropped)"
    )
    kept = MAX_LOG_BYTES // len(line.encode())
    assert logs[:-1] == [line] * kept
    assert logs[-1].startswith(f"… {3000 - kept} lines / ")
    if BACKEND.name == "native":
        assert calls == []


def test_stateless_wasi_calls_of_a_module_called_from_python(
    runtime: Runtime, tmp_path: Path
) -> None:
    # clocks, random, sched_yield, stdio's fdstat/seek/close in a loop: the same answers
    # on both backends, and on the native one no call reaches Python (no GIL per call)
    imports = """
      (import "wasi_snapshot_preview1" "clock_time_get"
        (func $clock (param i32 i64 i32) (result i32)))
      (import "wasi_snapshot_preview1" "sched_yield" (func $yield (result i32)))
      (import "wasi_snapshot_preview1" "fd_fdstat_get" (func $fdstat (param i32 i32) (result i32)))
      (import "wasi_snapshot_preview1" "fd_seek" (func $seek (param i32 i64 i32 i32) (result i32)))
      (import "wasi_snapshot_preview1" "fd_close" (func $close (param i32) (result i32)))"""
    body = """
      (func (export "go") (local $i i32)
        (loop $again
          (i32.store (i32.const 200) (call $clock (i32.const 1) (i64.const 0) (i32.const 100)))
          (i32.store (i32.const 204) (call $random_get (i32.const 108) (i32.const 16)))
          (i32.store (i32.const 208) (call $yield))
          (i32.store (i32.const 212) (call $fdstat (i32.const 2) (i32.const 128)))
          (i32.store (i32.const 216) (call $seek (i32.const 1) (i64.const 0) (i32.const 0)
                                                (i32.const 160)))
          (i32.store (i32.const 220) (call $close (i32.const 0)))
          (i32.store (i32.const 224) (call $clock (i32.const 9) (i64.const 0) (i32.const 100)))
          (i32.store (i32.const 228) (call $random_get (i32.const 65530) (i32.const 16)))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $again (i32.lt_u (local.get $i) (i32.const 1000)))))"""
    wasm = tmp_path / "guest.wasm"
    source = f'(module {IMPORTS} {imports} (memory (export "memory") 1) {body})'
    wasm.write_bytes(wat(source))
    module = WasmModule.load("guest", wasm, cache=runtime.cache, linker=runtime.linker)
    invocation = Invocation(runtime.engine, Limits(cpu_ms=5000), "rid", "w")
    calls: list[str] = []

    def profile(frame: FrameType, event: str, arg: object) -> None:
        if event == "call" and frame.f_code.co_filename == preview1.__file__:
            calls.append(frame.f_code.co_name)

    token = CURRENT.set(invocation)
    try:
        instance = Instance.create(module, invocation.fresh_store(), invocation, invocation)
        sys.setprofile(profile)
        try:
            instance.exports.go()
        finally:
            sys.setprofile(None)
        memory = instance.memory.read(0, 256)
    finally:
        invocation.close()
        CURRENT.reset(token)
    errnos = u32s_of(memory, 200, 8)
    assert errnos == [
        SUCCESS,
        SUCCESS,
        SUCCESS,
        SUCCESS,
        preview1.SPIPE,
        SUCCESS,
        INVAL,
        preview1.FAULT,
    ]
    assert memory[128] == preview1.FT_CHAR
    assert int.from_bytes(memory[100:108], "little") > 0  # the monotonic clock
    if BACKEND.name == "native":
        assert calls == []


def test_atoll_log_write_in_a_loop_keeps_the_request_budget(
    runtime: Runtime, tmp_path: Path
) -> None:
    # 200 lines of 16 KiB (3.2 MiB) and 100,000 of 8 MiB each asked for: 1 MiB kept
    body = f"""
      (func (export "_start") (local $i i32)
        (memory.fill (i32.const 65536) (i32.const 121) (i32.const {LONG}))
        (loop $big
          (call $log (i32.const 65536) (i32.const {MAX_LOG_LINE}))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $big (i32.lt_u (local.get $i) (i32.const 200))))
        (local.set $i (i32.const 0))
        (loop $huge
          (call $log (i32.const 65536) (i32.const {LONG}))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $huge (i32.lt_u (local.get $i) (i32.const 100000)))))"""
    ran = run(runtime, tmp_path, body, PATHS[-1], pages=130)
    assert ran.error is None
    kept = MAX_LOG_BYTES // MAX_LOG_LINE
    assert ran.logs[:-1] == ["y" * MAX_LOG_LINE] * kept
    assert sum(len(line) for line in ran.logs) < MAX_LOG_BYTES + 1024
    dropped_lines = 200 - kept + 100_000
    dropped_bytes = (200 - kept) * MAX_LOG_LINE + 100_000 * LONG
    assert ran.logs[-1].startswith(f"… {dropped_lines} lines / {dropped_bytes} bytes dropped")


# -- file descriptors --------------------------------------------------------------------

OPEN_LOOP = """
  (data (i32.const 1024) "{name}")
  (func (export "_start") (local $i i32)
    (loop $again
      (i32.store (i32.add (i32.const 4096) (i32.mul (local.get $i) (i32.const 4)))
        (call $path_open (i32.const 3) (i32.const 0) (i32.const 1024) (i32.const {length})
                         (i32.const 0) (i64.const 0) (i64.const 0) (i32.const 0) (i32.const 64)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $again (i32.lt_u (local.get $i) (i32.const {count})))))
"""


def _held_in(folder: Path) -> list[str]:
    """The host fds of this process open on something in ``folder``."""
    held = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(folder)):
            held.append(target)
    return held


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("name", ["a.txt", "."])
def test_path_open_in_a_loop_stops_at_the_request_limit_and_all_is_closed(
    runtime: Runtime, tmp_path: Path, path: str, name: str
) -> None:
    grant = tmp_path / "granted"
    grant.mkdir()
    (grant / "a.txt").write_text("a")
    count = 1000  # once: ~970 host fds held, and healthy requests failed
    body = OPEN_LOOP.format(name=name, length=len(name), count=count)
    ran = run(runtime, tmp_path, body, path, grant=grant)
    assert ran.error is None
    errnos = u32s(ran, 4096, count)
    assert errnos == [SUCCESS] * MAX_OPEN_FILES + [MFILE] * (count - MAX_OPEN_FILES)
    assert _held_in(grant) == []  # every file the request opened is closed
    assert HOST_FILES.held == 0


@pytest.mark.parametrize("path", PATHS)
def test_path_open_past_the_process_share_is_enfile(
    runtime: Runtime, tmp_path: Path, path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    grant = tmp_path / "granted"
    grant.mkdir()
    (grant / "a.txt").write_text("a")
    monkeypatch.setattr(HOST_FILES, "limit", 5)  # as if other requests held the rest
    body = OPEN_LOOP.format(name="a.txt", length=5, count=8)
    ran = run(runtime, tmp_path, body, path, grant=grant)
    assert u32s(ran, 4096, 8) == [SUCCESS] * 5 + [NFILE] * 3
    assert HOST_FILES.held == 0


# -- other lengths: paths, poll subscriptions -------------------------------------------


@pytest.mark.parametrize("path", PATHS)
def test_long_paths_and_too_many_subscriptions_are_refused_unread(
    runtime: Runtime, tmp_path: Path, path: str
) -> None:
    grant = tmp_path / "granted"
    grant.mkdir()
    body = """
      (func (export "_start")
        (i32.store (i32.const 0)
          (call $path_open (i32.const 3) (i32.const 0) (i32.const 65536) (i32.const 8000000)
                           (i32.const 0) (i64.const 0) (i64.const 0) (i32.const 0) (i32.const 64)))
        (i32.store (i32.const 4)
          (call $path_filestat_get (i32.const 3) (i32.const 0) (i32.const 65536)
                                   (i32.const 4097) (i32.const 1024)))
        (i32.store (i32.const 8)
          (call $poll_oneoff (i32.const 65536) (i32.const 65536) (i32.const 100000)
                             (i32.const 64))))"""
    ran = run(runtime, tmp_path, body, path, pages=200, grant=grant)
    assert ran.error is None
    assert u32s(ran, 0, 3) == [NAMETOOLONG, NAMETOOLONG, INVAL]


# -- CPU spent inside a host call ------------------------------------------------------


@pytest.mark.parametrize("path", PATHS)
def test_a_long_random_get_is_stopped_by_the_cpu_budget(
    runtime: Runtime, tmp_path: Path, path: str
) -> None:
    # 256 MiB of random bytes asked for in one call, with 5 ms of CPU: the host stops
    # filling where the budget ends (before: the whole buffer, then a normal return)
    size = 256 * MIB
    body = f"""
      (func (export "_start")
        (i32.store (i32.const 0) (call $random_get (i32.const 65536) (i32.const {size}))))"""
    ran = run(
        runtime,
        tmp_path,
        body,
        path,
        pages=size // 65536 + 2,
        limits=Limits(cpu_ms=5, memory_mb=512),
        tail=(65536 + size - MIB, MIB),
    )
    assert isinstance(ran.error, CpuLimitError), ran.error
    assert ran.outcome == "exceeded_cpu"
    assert ran.instance_memory == bytes(MIB)  # the last MiB was never filled
    assert u32s(ran, 0, 1) == [0]  # and the call never returned


@pytest.mark.parametrize("path", PATHS)
def test_a_guest_looping_over_big_writes_is_stopped_by_its_budget_with_a_bounded_log(
    runtime: Runtime, tmp_path: Path, path: str
) -> None:
    # each call asks for 1024 iovecs x 64 KiB (64 MiB) of one endless line on stderr;
    # each takes LOG_WRITE_MAX of it, and the loop ends at the CPU limit
    body = f"""
      (func (export "_start") (local $i i32)
        (memory.fill (i32.const 65536) (i32.const 122) (i32.const 65536))
        (loop $fill
          (i32.store (i32.add (i32.const 1024) (i32.mul (local.get $i) (i32.const 8)))
                     (i32.const 65536))
          (i32.store (i32.add (i32.const 1028) (i32.mul (local.get $i) (i32.const 8)))
                     (i32.const 65536))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $fill (i32.lt_u (local.get $i) (i32.const {IOV_MAX}))))
        (loop $forever
          (drop (call $fd_write (i32.const 2) (i32.const 1024) (i32.const {IOV_MAX})
                                (i32.const 64)))
          (br $forever)))"""
    ran = run(runtime, tmp_path, body, path, pages=3, limits=Limits(cpu_ms=50))
    assert isinstance(ran.error, CpuLimitError), ran.error
    assert ran.outcome == "exceeded_cpu"
    assert u32s(ran, 64, 1) == [LOG_WRITE_MAX]  # every call was a short write
    line, summary = ran.logs  # the unfinished line, logged when the request ended
    assert line.startswith("z" * MAX_LOG_LINE + f"… (cut at {MAX_LOG_LINE} bytes; ")
    assert summary.startswith("… 0 lines / ")
