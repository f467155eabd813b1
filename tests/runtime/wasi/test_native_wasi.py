"""WASI preview 1 served in C (``native/wasi.c``, a CGI run's ``Stdio``) answers as ``preview1.py`` does.

Each test runs one guest twice, the way ``cgi.py`` does (an :class:`Invocation`
with ``CURRENT`` set, ``fresh_store()``, ``Instance.create``, ``instance.run``):
once with a ``capi.Stdio`` on the store's meter (the C functions serve what they
can) and once with the same :class:`WasiContext` but no Stdio (everything in
``preview1.py``). The guest stores every errno, and the WASI functions write
into its memory; both runs must leave the same memory, errnos, stdout, stderr
lines and stdin position. A profile hook counts the ``preview1.py`` functions
that ran, to show which path served each call.
"""

from __future__ import annotations

import struct
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, ModuleType
from typing import Any

import pytest

from atoll.errors import GuestError, GuestTrapError
from atoll.manifest.schema import Limits
from atoll.runtime.backend.auto import BACKEND
from atoll.runtime.hostfuncs import CURRENT
from atoll.runtime.instance import Instance
from atoll.runtime.invocation import Invocation
from atoll.runtime.module import WasmModule
from atoll.runtime.wasi import DirGrant, ProcExit, WasiContext, preview1
from atoll.runtime.wasi.preview1 import (
    ALL_RIGHTS,
    BADF,
    FAULT,
    FT_CHAR,
    FT_DIR,
    INVAL,
    IOV_MAX,
    ISDIR,
    NOTSUP,
    READ_RIGHTS,
    SPIPE,
    SUCCESS,
    OutputLimitError,
)
from atoll.worker import Runtime
from tests.support import WorkerFactory, wat

capi: ModuleType | None = None
if BACKEND.name == "native":
    from atoll.runtime import capi
# C versus Python WASI, in one store: needs the native backend (scripts/test.sh deselects
# these in its ATOLL_CAPI=0 run).
pytestmark = pytest.mark.native_backend
PROVIDED = {(fn.module, fn.name): fn for fn in preview1.host_functions()}

MODULE = preview1.MODULE
MEM = 65536  # the guest's memory: one page
RESULTS = 1024  # errno i of the guest's run at RESULTS + 4 * i
DATA = 8192  # data segments: iovec arrays and the bytes to write
OUT = 16384  # output buffers the WASI functions fill (sentinel-filled first)
OUT_END = MEM - 4096  # the last page's top is kept for the edge-of-memory cases
SENTINEL = 0xAA
#: The WASI functions native/wasi.c can serve (also the names of their preview1.py versions).
NATIVE = frozenset(capi.NATIVE_WASI) if capi is not None else frozenset()


# -- the guest ----------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    name: str
    args: tuple[int, ...]
    expect: int | None  # the errno both paths must give (None: not checked here)
    served: bool  # the C function answers it itself (no FALLBACK) when a Stdio is attached

    @property
    def refused_in_c(self) -> bool:
        """More iovecs than IOV_MAX: C answers EINVAL itself, with or without a Stdio."""
        return self.name in ("fd_write", "fd_read") and (self.args[2] & 0xFFFFFFFF) > IOV_MAX


@dataclass
class Guest:
    """A ``_start`` that makes one WASI call per step and stores each errno at RESULTS."""

    steps: list[Step] = field(default_factory=list)
    data: list[tuple[int, bytes]] = field(default_factory=list)
    #: (offset, length) of clock and random outputs: compared apart, not byte for byte.
    clocks: list[tuple[int, int]] = field(default_factory=list)
    randoms: list[tuple[int, int]] = field(default_factory=list)
    memory: bool = True
    _data_at: int = DATA
    _out_at: int = OUT

    def put(self, blob: bytes) -> int:
        at = self._data_at
        self.data.append((at, blob))
        self._data_at += (len(blob) + 7) & ~7 or 8
        assert self._data_at <= OUT
        return at

    def out(self, size: int) -> int:
        at = self._out_at
        self._out_at += (size + 7) & ~7 or 8
        assert self._out_at <= OUT_END
        return at

    def iovs(self, *pairs: tuple[int, int]) -> int:
        """An iovec array of raw (ptr, len) pairs."""
        return self.put(b"".join(struct.pack("<II", p, n) for p, n in pairs))

    def write_iovs(self, *chunks: bytes) -> int:
        return self.iovs(*((self.put(c), len(c)) for c in chunks))

    def read_iovs(self, *lengths: int) -> int:
        return self.iovs(*((self.out(n), n) for n in lengths))

    def call(self, name: str, *args: int, expect: int | None, served: bool = True) -> int:
        self.steps.append(Step(name, args, expect, served and name in NATIVE))
        return len(self.steps) - 1

    def wasm(self) -> bytes:
        lines = ["(module"]
        for name in sorted({s.name for s in self.steps}):
            fn = PROVIDED[(MODULE, name)]
            sig = ""
            if fn.params:
                sig += f" (param {' '.join(str(p) for p in fn.params)})"
            if fn.results:
                sig += f" (result {' '.join(str(r) for r in fn.results)})"
            lines.append(f'  (import "{MODULE}" "{name}" (func ${name}{sig}))')
        body: list[str] = []
        if self.memory:
            lines.append('  (memory (export "memory") 1)')
            for at, blob in self.data:
                text = "".join(f"\\{b:02x}" for b in blob)
                lines.append(f'  (data (i32.const {at}) "{text}")')
            body.append(
                f"(memory.fill (i32.const {RESULTS}) (i32.const {SENTINEL})"
                f" (i32.const {DATA - RESULTS}))"
            )
            body.append(
                f"(memory.fill (i32.const {OUT}) (i32.const {SENTINEL}) (i32.const {MEM - OUT}))"
            )
        for i, step in enumerate(self.steps):
            fn = PROVIDED[(MODULE, step.name)]
            args = " ".join(
                f"({ty}.const {_signed(v, str(ty))})"
                for v, ty in zip(step.args, fn.params, strict=True)
            )
            call = f"(call ${step.name} {args})"
            if fn.results and self.memory:
                body.append(f"(i32.store (i32.const {RESULTS + 4 * i}) {call})")
            elif fn.results:
                body.append(f"(drop {call})")
            else:
                body.append(call)
        lines.append('  (func (export "_start")')
        lines += [f"    {line}" for line in body]
        lines.append("  ))")
        return wat("\n".join(lines))


def _signed(value: int, ty: str) -> int:
    bits = 32 if ty == "i32" else 64
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


# -- running it ---------------------------------------------------------------


@dataclass(frozen=True)
class World:
    """What the guest is given: argv, environment, stdin, a granted folder or none."""

    args: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    stdin: bytes
    granted: bool = False

    def arg_items(self) -> list[bytes]:
        return [f"{a}\0".encode() for a in self.args]

    def env_items(self) -> list[bytes]:
        return [f"{k}={v}\0".encode() for k, v in self.env]


WORLDS = {
    "unicode": World(
        args=("prog", "héllo wörld", "", "日本語 🙂"),
        env=(("A", "1"), ("ÜMLAUT", "ça va ✓"), ("EMPTY", ""), ("X", "a=b=c")),
        stdin=b"0123456789\x00\xffabcdefgh",
    ),
    "empty": World(args=(), env=(), stdin=b""),
    "granted": World(args=("prog",), env=(("K", "v"),), stdin=b"xyz", granted=True),
}


@dataclass
class Run:
    memory: bytes
    errnos: list[int]
    stdout: bytes
    logs: list[str]
    stderr: bytes
    stdin_pos: int
    python_calls: Counter[str]
    error: BaseException | None
    exit_code: int | None
    outcome: str
    before: dict[str, int]
    after: dict[str, int]


def _clocks() -> dict[str, int]:
    return {
        "realtime": time.time_ns(),
        "monotonic": time.monotonic_ns(),
        "process": time.process_time_ns(),
        "thread": time.thread_time_ns(),
    }


@contextmanager
def python_wasi_calls() -> Iterator[Counter[str]]:
    """Count the preview1.py functions (of those C can serve) called on this thread."""
    counts: Counter[str] = Counter()
    source = preview1.__file__

    def profile(frame: FrameType, event: str, arg: Any) -> None:
        code = frame.f_code
        if event == "call" and code.co_filename == source and code.co_name in NATIVE:
            counts[code.co_name] += 1

    previous = sys.getprofile()
    sys.setprofile(profile)
    try:
        yield counts
    finally:
        sys.setprofile(previous)


def load(runtime: Runtime, tmp_path: Path, wasm: bytes, name: str = "guest") -> WasmModule:
    path = tmp_path / f"{name}.wasm"
    path.write_bytes(wasm)
    return WasmModule.load(name, path, cache=runtime.cache, linker=runtime.linker)


def run_guest(
    runtime: Runtime,
    module: WasmModule,
    world: World,
    *,
    native: bool,
    grant: Path | None = None,
    stdout_limit: int = 1024 * 1024,
    steps: int = 0,
    export: str = "_start",
) -> Run:
    """Run ``export`` as cgi.py runs ``_start``: in C (``native``) or all in Python."""
    invocation = Invocation(runtime.engine, Limits(cpu_ms=2000), "rid", "test-worker")
    dirs = (DirGrant(grant, "/data"),) if world.granted and grant is not None else ()
    context = WasiContext(
        args=list(world.args),
        env=dict(world.env),
        stdin=world.stdin,
        stdout_limit=stdout_limit,
        dirs=dirs,
    )
    invocation.wasi = context
    token = CURRENT.set(invocation)
    try:
        store = invocation.fresh_store()
        if native:
            assert capi is not None
            # stderr to the request's log in C as well
            store.meter.stdio = context.serve_stdio_in_c(capi.Stdio, invocation.log_book.counts)
        else:
            assert store.meter.stdio is None
        instance = Instance.create(module, store, invocation, owner=invocation)
        error: BaseException | None = None
        before = _clocks()
        with python_wasi_calls() as counts:
            try:
                instance.run(export)
            except (ProcExit, GuestError) as exc:
                error = exc
        after = _clocks()
        memory = b""
        errnos: list[int] = []
        if module.memory_export is not None:
            memory = instance.memory.read(0, instance.memory.size)
            errnos = list(struct.unpack_from(f"<{steps}I", memory, RESULTS))
        stdio = context.native
        return Run(
            memory=memory,
            errnos=errnos,
            stdout=context.stdout_bytes(),
            logs=list(invocation.logs),
            stderr=context.stderr_line()[0],
            stdin_pos=stdio.stdin_pos if stdio is not None else context.stdin_pos,
            python_calls=counts,
            error=error,
            exit_code=context.exit_code,  # the C path records it there too
            outcome=invocation.outcome.value,
            before=before,
            after=after,
        )
    finally:
        invocation.close()
        CURRENT.reset(token)


def both(
    runtime: Runtime, tmp_path: Path, guest: Guest, world: World, **kw: Any
) -> tuple[Run, Run]:
    module = load(runtime, tmp_path, guest.wasm())
    grant = tmp_path / "granted"
    grant.mkdir(exist_ok=True)
    (grant / "a.txt").write_text("a")
    steps = len(guest.steps) if guest.memory else 0
    in_c = run_guest(runtime, module, world, native=True, grant=grant, steps=steps, **kw)
    in_python = run_guest(runtime, module, world, native=False, grant=grant, steps=steps, **kw)
    return in_c, in_python


def describe(error: BaseException | None) -> tuple[str, str] | None:
    if error is None:
        return None
    if isinstance(error, ProcExit):
        return ("ProcExit", str(error.code))
    return (type(error).__name__, str(error).split("\n")[0])


def assert_same(in_c: Run, in_python: Run, guest: Guest) -> None:
    """Everything but clock and random outputs is equal; those are checked for plausibility."""
    mask = guest.clocks + guest.randoms
    c_memory, py_memory = bytearray(in_c.memory), bytearray(in_python.memory)
    for at, n in mask:
        c_memory[at : at + n] = py_memory[at : at + n] = bytes(n)
    failures = [
        (step, c, py)
        for step, c, py in zip(guest.steps, in_c.errnos, in_python.errnos, strict=True)
        if c != py
    ]
    assert failures == [], "errnos differ (step, C, Python)"
    first = next((i for i in range(len(c_memory)) if c_memory[i] != py_memory[i]), None)
    assert first is None, f"memory differs from {first}"
    assert in_c.stdout == in_python.stdout
    assert in_c.logs == in_python.logs
    assert in_c.stderr == in_python.stderr
    assert in_c.stdin_pos == in_python.stdin_pos
    assert describe(in_c.error) == describe(in_python.error)
    assert in_c.exit_code == in_python.exit_code
    assert in_c.outcome == in_python.outcome


def assert_paths(in_c: Run, in_python: Run, guest: Guest) -> None:
    """The C run called Python only for what C does not serve; the Python run for everything."""
    wanted_c: Counter[str] = Counter(
        s.name for s in guest.steps if not s.served and not s.refused_in_c
    )
    wanted_py: Counter[str] = Counter(
        s.name for s in guest.steps if s.name in NATIVE and not s.refused_in_c
    )
    assert in_c.python_calls == wanted_c
    assert in_python.python_calls == wanted_py


# -- the parity guest -----------------------------------------------------------


@dataclass
class Parity:
    guest: Guest
    world: World
    stdout: bytes
    log_lines: list[str]
    stderr_rest: bytes
    #: where args_get / environ_get wrote (pointer array, count) for the decode check.
    string_tables: list[tuple[int, list[bytes]]]
    sizes: list[tuple[int, int, int]]  # (out, count, size)
    fdstats: list[tuple[int, bytes]]
    prestat: int | None
    clock_steps: list[tuple[int, int]]  # (clock id, out)
    random_steps: list[tuple[int, int]]  # (out, len) of successful random_get


def parity_guest(world: World) -> Parity:
    g = Guest()
    stdout = b""
    dirs = world.granted

    # fd_write, first: its edge cases read the top of memory while it holds the sentinel
    out = g.out(4)
    hello = [b"Hello, ", b"", "wörld\n".encode()]
    iov = g.write_iovs(*hello)
    g.call("fd_write", 1, iov, 3, g.out(4), expect=SUCCESS)
    stdout += b"".join(hello)
    g.call("fd_write", 1, iov, 0, g.out(4), expect=SUCCESS)  # no iovec
    g.call("fd_write", 1, g.iovs((MEM, 0)), 1, g.out(4), expect=SUCCESS)  # empty, at the end
    g.call("fd_write", 1, g.iovs((MEM - 3, 3)), 1, g.out(4), expect=SUCCESS)  # the last bytes
    stdout += bytes([SENTINEL] * 3)
    big = bytes(range(256)) * 12
    g.call("fd_write", 1, g.write_iovs(big[:1000], b"", big[1000:]), 3, g.out(4), expect=SUCCESS)
    stdout += big
    g.call("fd_write", 1, MEM - 4, 1, out, expect=FAULT)  # iovec array past the end
    g.call("fd_write", 1, g.iovs((g.put(b"x"), 1), (MEM - 2, 4)), 2, out, expect=FAULT)
    g.call("fd_write", 1, g.iovs((MEM + 8, 0)), 1, out, expect=FAULT)  # empty, past the end
    # more than IOV_MAX iovecs: EINVAL before any pointer is looked at (as writev)
    g.call("fd_write", 1, iov, 0xFFFFFFFF, out, expect=INVAL)
    g.call("fd_write", 1, iov, 0x20000000, out, expect=INVAL)  # 8 * count is 2**32
    g.call("fd_write", 1, iov, IOV_MAX + 1, MEM, expect=INVAL)
    g.call("fd_write", 1, MEM - 8 * IOV_MAX + 8, IOV_MAX, out, expect=FAULT)  # the last one out
    g.call("fd_write", 1, 0xFFFFFFF8, 1, out, expect=FAULT)
    err = [b"err line 1\nerr ", b"line 2\npart", b"", b"ial"]
    g.call("fd_write", 2, g.write_iovs(*err), 4, g.out(4), expect=SUCCESS)
    g.call("fd_write", 2, MEM - 4, 1, out, expect=FAULT)
    # FAULT before anything is written (nwritten is past the end)
    g.call("fd_write", 2, g.write_iovs(b"?"), 1, MEM, expect=FAULT)
    one = g.write_iovs(b"z")
    g.call("fd_write", 3, one, 1, out, expect=ISDIR if dirs else BADF, served=False)
    g.call("fd_write", 99, one, 1, out, expect=BADF, served=False)
    g.call("fd_write", 0, one, 1, out, expect=BADF, served=False)

    # argv and the environment
    tables: list[tuple[int, list[bytes]]] = []
    sizes: list[tuple[int, int, int]] = []
    for kind, items in (("args", world.arg_items()), ("environ", world.env_items())):
        count, size = len(items), sum(len(i) for i in items)
        sizes_get, get = f"{kind}_sizes_get", f"{kind}_get"
        at = g.out(8)
        g.call(sizes_get, at, at + 4, expect=SUCCESS)
        sizes.append((at, count, size))
        g.call(sizes_get, MEM - 2, g.out(4), expect=FAULT)  # count past the end: nothing written
        g.call(sizes_get, 0xFFFFFFFF, g.out(4), expect=FAULT)
        g.call(sizes_get, MEM, MEM, expect=FAULT)
        g.call(sizes_get, MEM - 8, MEM - 4, expect=SUCCESS)  # the last 8 bytes
        ptrs, buf = g.out(4 * count), g.out(size)
        g.call(get, ptrs, buf, expect=SUCCESS)
        tables.append((ptrs, items))
        g.call(get, MEM - 4 * count + 2 if count else MEM + 1, g.out(size), expect=FAULT)
        g.call(get, 0xFFFFFFF0, g.out(size), expect=FAULT)
        g.call(get, MEM, MEM, expect=FAULT if count else SUCCESS)
        g.call(get, MEM - 4 * count - size, MEM - size, expect=SUCCESS)  # up to the last byte

    # stdin
    g.call("fd_read", 0, g.read_iovs(4, 0, 6), 3, g.out(4), expect=SUCCESS)
    g.call("fd_read", 0, g.read_iovs(8, 100), 2, g.out(4), expect=SUCCESS)  # the rest
    g.call("fd_read", 0, g.read_iovs(5), 1, g.out(4), expect=SUCCESS)  # past its end: 0
    g.call("fd_read", 0, g.read_iovs(5), 0, g.out(4), expect=SUCCESS)  # no iovec
    g.call("fd_read", 0, g.iovs((MEM, 0)), 1, g.out(4), expect=SUCCESS)
    g.call("fd_read", 0, MEM - 4, 1, g.out(4), expect=FAULT)  # iovec array past the end
    g.call("fd_read", 0, 0xFFFFFFFF, 1, g.out(4), expect=FAULT)
    g.call("fd_read", 0, g.iovs((MEM + 8, 4)), 1, g.out(4), expect=FAULT)  # buffer past the end
    g.call("fd_read", 0, g.read_iovs(4), 1, MEM - 2, expect=FAULT)  # nread past the end
    g.call("fd_read", 0, g.read_iovs(4), 0xFFFFFFFF, g.out(4), expect=INVAL)  # over IOV_MAX
    g.call("fd_read", 0, g.read_iovs(4), IOV_MAX + 1, MEM, expect=INVAL)
    for fd, errno in ((1, BADF), (2, BADF), (3, ISDIR if dirs else BADF), (99, BADF)):
        g.call("fd_read", fd, g.read_iovs(4), 1, g.out(4), expect=errno, served=False)

    # fd_fdstat_get, fd_prestat_get
    fdstats: list[tuple[int, bytes]] = []
    for fd in (0, 1, 2):
        at = g.out(24)
        g.call("fd_fdstat_get", fd, at, expect=SUCCESS)
        rights = ALL_RIGHTS if fd else READ_RIGHTS
        fdstats.append(
            (at, struct.pack("<BxHxxxxQQ", FT_CHAR, 1 if fd else 0, rights, READ_RIGHTS))
        )
    at = g.out(24)
    g.call("fd_fdstat_get", 3, at, expect=SUCCESS if dirs else BADF, served=False)
    if dirs:
        fdstats.append((at, struct.pack("<BxHxxxxQQ", FT_DIR, 0, READ_RIGHTS, READ_RIGHTS)))
    g.call("fd_fdstat_get", 99, g.out(24), expect=BADF, served=False)
    g.call("fd_fdstat_get", 0xFFFFFFFF, g.out(24), expect=BADF, served=False)
    g.call("fd_fdstat_get", 1, MEM - 8, expect=FAULT)
    g.call("fd_fdstat_get", 2, MEM - 24, expect=SUCCESS)  # the last 24 bytes
    g.call("fd_fdstat_get", 0, 0xFFFFFFFF, expect=FAULT)
    g.call("fd_fdstat_get", 3, MEM - 8, expect=FAULT if dirs else BADF, served=False)
    prestat = None
    for fd in (0, 1, 2, 3, 4, 99):
        at = g.out(8)
        errno = SUCCESS if dirs and fd == 3 else BADF
        g.call("fd_prestat_get", fd, at, expect=errno, served=not dirs)
        if dirs and fd == 3:
            prestat = at
    g.call("fd_prestat_get", 3, MEM - 4, expect=FAULT if dirs else BADF, served=not dirs)

    # clocks, random, sched_yield
    clock_steps: list[tuple[int, int]] = []
    for clock in (0, 1, 2, 3, 0, 1, 3):
        at = g.out(8)
        g.call("clock_time_get", clock, 1000, at, expect=SUCCESS)
        g.clocks.append((at, 8))
        clock_steps.append((clock, at))
    g.call("clock_time_get", 1, 0, MEM - 8, expect=SUCCESS)  # the last 8 bytes
    g.clocks.append((MEM - 8, 8))
    for clock in (4, 0xFFFFFFFF, 0x80000000, 7):
        g.call("clock_time_get", clock, 0, g.out(8), expect=INVAL)
    g.call("clock_time_get", 9, 0, MEM + 100, expect=INVAL)  # the id is checked first
    g.call("clock_time_get", 0, 0xFFFFFFFFFFFFFFFF, MEM - 4, expect=FAULT)
    g.call("clock_time_get", 2, 0, 0xFFFFFFFF, expect=FAULT)
    random_steps: list[tuple[int, int]] = []
    for n in (32, 32, 1):
        at = g.out(n)
        g.call("random_get", at, n, expect=SUCCESS)
        g.randoms.append((at, n))
        random_steps.append((at, n))
    g.call("random_get", g.out(8), 0, expect=SUCCESS)
    g.call("random_get", MEM, 0, expect=SUCCESS)
    g.call("random_get", MEM - 16, 16, expect=SUCCESS)
    g.randoms.append((MEM - 16, 16))
    g.call("random_get", MEM - 8, 16, expect=FAULT)
    g.call("random_get", MEM + 1, 0, expect=FAULT)
    g.call("random_get", 0xFFFFFFFF, 2, expect=FAULT)
    g.call("sched_yield", expect=SUCCESS)

    # fd_seek, fd_close; stdio still works after it is closed
    for fd in (0, 1, 2):
        g.call("fd_seek", fd, 0, 0, g.out(8), expect=SPIPE)
    g.call("fd_seek", 1, 5, 1, MEM + 10, expect=SPIPE)
    g.call("fd_seek", 2, 0xFFFFFFFFFFFFFFFF, 7, 0xFFFFFFFF, expect=SPIPE)
    g.call("fd_seek", 3, 0, 0, g.out(8), expect=ISDIR if dirs else BADF, served=False)
    g.call("fd_seek", 99, 0, 0, g.out(8), expect=BADF, served=False)
    for fd in (0, 1, 2):
        g.call("fd_close", fd, expect=SUCCESS)
    g.call("fd_close", 3, expect=NOTSUP if dirs else BADF, served=False)
    g.call("fd_close", 99, expect=BADF, served=False)
    g.call("fd_close", 0xFFFFFFFF, expect=BADF, served=False)
    g.call("fd_write", 1, g.write_iovs(b"after close\n"), 1, g.out(4), expect=SUCCESS)
    stdout += b"after close\n"
    g.call("fd_read", 0, g.read_iovs(4), 1, g.out(4), expect=SUCCESS)
    g.call("fd_fdstat_get", 1, g.out(24), expect=SUCCESS)
    return Parity(
        guest=g,
        world=world,
        stdout=stdout,
        log_lines=["err line 1", "err line 2"],
        stderr_rest=b"partial",
        string_tables=tables,
        sizes=sizes,
        fdstats=fdstats,
        prestat=prestat,
        clock_steps=clock_steps,
        random_steps=random_steps,
    )


def u32(memory: bytes, at: int) -> int:
    value: int = struct.unpack_from("<I", memory, at)[0]
    return value


def u64(memory: bytes, at: int) -> int:
    value: int = struct.unpack_from("<Q", memory, at)[0]
    return value


def check_expected(run: Run, parity: Parity) -> None:
    """The answers themselves (the same for both paths, checked on each)."""
    guest, world = parity.guest, parity.world
    wrong = [
        (i, s, errno)
        for i, (s, errno) in enumerate(zip(guest.steps, run.errnos, strict=True))
        if s.expect is not None and errno != s.expect
    ]
    assert wrong == []
    assert run.error is None
    assert run.stdout == parity.stdout
    assert run.logs == parity.log_lines
    assert run.stderr == parity.stderr_rest
    assert run.stdin_pos == len(world.stdin)
    memory = run.memory
    for at, count, size in parity.sizes:
        assert (u32(memory, at), u32(memory, at + 4)) == (count, size)
    for ptrs, items in parity.string_tables:
        strings = []
        for i in range(len(items)):
            start = u32(memory, ptrs + 4 * i)
            end = memory.index(b"\0", start) + 1
            strings.append(memory[start:end])
        assert strings == items
    for at, expected in parity.fdstats:
        assert memory[at : at + 24] == expected
    if parity.prestat is not None:
        assert memory[parity.prestat : parity.prestat + 8] == struct.pack("<BxxxI", 0, len("/data"))


def check_clocks_and_random(in_c: Run, in_python: Run, parity: Parity) -> None:
    for run in (in_c, in_python):
        seen: dict[int, list[int]] = {}
        for clock, at in parity.clock_steps:
            seen.setdefault(clock, []).append(u64(run.memory, at))
        b, a = run.before, run.after
        for value in seen[0]:
            assert b["realtime"] <= value <= a["realtime"]
        for value in seen[1]:
            assert b["monotonic"] <= value <= a["monotonic"]
        for value in seen[2]:
            assert 0 < value <= a["process"]
        for value in seen[3]:
            assert b["thread"] <= value <= a["thread"]
        for values in seen.values():
            assert values == sorted(values)  # each clock in call order never goes back
        blobs = [run.memory[at : at + n] for at, n in parity.random_steps]
        assert blobs[0] != blobs[1]
        assert all(blob != bytes([SENTINEL] * len(blob)) for blob in blobs[:2])
        edge = run.memory[MEM - 16 :]
        assert edge != bytes([SENTINEL] * 16)
    c_blobs = [in_c.memory[at : at + n] for at, n in parity.random_steps[:2]]
    py_blobs = [in_python.memory[at : at + n] for at, n in parity.random_steps[:2]]
    assert c_blobs != py_blobs


@pytest.mark.parametrize("world_name", sorted(WORLDS))
def test_c_and_python_give_the_same_answers(
    runtime: Runtime, tmp_path: Path, world_name: str
) -> None:
    world = WORLDS[world_name]
    parity = parity_guest(world)
    in_c, in_python = both(runtime, tmp_path, parity.guest, world)
    check_expected(in_python, parity)
    check_expected(in_c, parity)
    assert_same(in_c, in_python, parity.guest)
    assert_paths(in_c, in_python, parity.guest)
    check_clocks_and_random(in_c, in_python, parity)


# -- proc_exit, the stdout limit, a guest without memory ------------------------


@pytest.mark.parametrize("code", [0, 7])
def test_proc_exit_raises_procexit_on_both_paths(
    runtime: Runtime, tmp_path: Path, code: int
) -> None:
    g = Guest()
    g.call("fd_write", 1, g.write_iovs(b"bye\n"), 1, g.out(4), expect=SUCCESS)
    g.call("proc_exit", code, expect=None)
    g.call("fd_write", 1, g.write_iovs(b"never\n"), 1, g.out(4), expect=SUCCESS)
    world = WORLDS["unicode"]
    in_c, in_python = both(runtime, tmp_path, g, world)
    for run in (in_c, in_python):
        assert isinstance(run.error, ProcExit)
        assert run.error.code == code
        assert run.exit_code == code
        assert run.stdout == b"bye\n"
        assert run.outcome == "ok"
    assert in_c.python_calls == Counter()  # proc_exit served in C
    assert in_python.python_calls == Counter({"fd_write": 1, "proc_exit": 1})
    assert_same(in_c, in_python, g)


def test_proc_exit_in_c_without_memory(runtime: Runtime, tmp_path: Path) -> None:
    g = Guest(memory=False)
    g.call("proc_exit", 3, expect=None)
    in_c, in_python = both(runtime, tmp_path, g, WORLDS["empty"])
    assert isinstance(in_c.error, ProcExit)
    assert in_c.error.code == 3
    assert describe(in_c.error) == describe(in_python.error)
    assert in_c.python_calls == Counter()


@pytest.mark.parametrize(
    ("limit", "writes", "kept"),
    [
        (16, [b"0123456789", b"abcdef", b"!"], 16),  # up to the limit is fine; one more is not
        (16, [b"x" * 17], 0),  # one write over the limit
        (8, [b"", b"abcd", b"efgh", b"", b"i"], 8),  # empty writes at the limit
        (0, [b"", b"a"], 0),
    ],
)
def test_stdout_limit_ends_both_paths_the_same_way(
    runtime: Runtime, tmp_path: Path, limit: int, writes: list[bytes], kept: int
) -> None:
    g = Guest()
    for data in writes:
        # each write in two iovecs: the limit applies to their sum
        half = len(data) // 2
        g.call("fd_write", 1, g.write_iovs(data[:half], data[half:]), 2, g.out(4), expect=None)
    in_c, in_python = both(runtime, tmp_path, g, WORLDS["empty"], stdout_limit=limit)
    assert_same(in_c, in_python, g)
    for run in (in_c, in_python):
        assert isinstance(run.error, OutputLimitError)
        assert f"more than {limit} bytes to stdout" in str(run.error)
        assert run.stdout == b"".join(writes)[:kept]
        assert run.outcome == "exception"
        done = [e for e in run.errnos if e != 0xAAAAAAAA]
        assert done == [SUCCESS] * (len(writes) - 1)
    # the crossing write fell back from C to Python, which failed the run
    assert in_c.python_calls == Counter({"fd_write": 1})


MEMORYLESS_CALLS: list[tuple[str, tuple[int, ...]]] = [
    ("args_sizes_get", (0, 4)),
    ("args_get", (0, 64)),
    ("environ_sizes_get", (0, 4)),
    ("environ_get", (0, 64)),
    ("fd_write", (1, 0, 0, 0)),
    ("fd_write", (2, 0, 0, 0)),
    ("fd_read", (0, 0, 0, 0)),
    ("fd_fdstat_get", (1, 0)),
    ("fd_fdstat_get", (5, 0)),
    ("fd_prestat_get", (3, 0)),
    ("clock_time_get", (0, 0, 0)),
    ("clock_time_get", (9, 0, 0)),
    ("random_get", (0, 8)),
    ("random_get", (0, 0)),
    ("sched_yield", ()),
    ("fd_close", (1,)),
    ("fd_close", (3,)),
    ("fd_seek", (1, 0, 0, 0)),
    ("fd_seek", (3, 0, 0, 0)),
]


@pytest.mark.parametrize(("name", "args"), MEMORYLESS_CALLS)
@pytest.mark.parametrize("world_name", ["unicode", "granted"])
def test_a_guest_without_memory_fails_cleanly_on_both_paths(
    runtime: Runtime, tmp_path: Path, name: str, args: tuple[int, ...], world_name: str
) -> None:
    g = Guest(memory=False)
    g.call(name, *args, expect=None)
    world = WORLDS[world_name]
    in_c, in_python = both(runtime, tmp_path, g, world)
    assert describe(in_c.error) == describe(in_python.error)
    assert (in_c.stdout, in_c.logs, in_c.stdin_pos) == (in_python.stdout, in_python.logs, 0)
    assert in_c.outcome == in_python.outcome
    if in_c.error is not None:
        assert isinstance(in_c.error, GuestTrapError)
        assert "exports no memory" in str(in_c.error)


# -- stores without a Stdio never use the C functions -----------------------------

LOGGING_GUEST = """
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_sizes_get" (func $args_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_get" (func $args_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "clock_time_get" (func $clock (param i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "hello from the module\\n")
  ;; iovec at 0: "hello from the module\\n"; argv[0] is written at 400, iovec for it at 8
  (func $start (export "_start")
    (i32.store (i32.const 0) (i32.const 100))
    (i32.store (i32.const 4) (i32.const 22))
    (i32.store (i32.const 900) (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 40)))
    (i32.store (i32.const 904) (call $args_sizes_get (i32.const 200) (i32.const 204)))
    (i32.store (i32.const 908) (call $args_get (i32.const 300) (i32.const 400)))
    ;; print argv[0] (without its NUL) and a newline
    (i32.store (i32.const 8) (i32.load (i32.const 300)))
    (i32.store (i32.const 12) (i32.sub (i32.load (i32.const 204)) (i32.const 1)))
    (i32.store (i32.const 16) (i32.const 121))
    (i32.store (i32.const 20) (i32.const 1))
    (i32.store (i32.const 912) (call $fd_write (i32.const 1) (i32.const 8) (i32.const 2) (i32.const 40)))
    (i32.store (i32.const 24) (i32.const 500))
    (i32.store (i32.const 28) (i32.const 16))
    (i32.store (i32.const 916) (call $fd_read (i32.const 0) (i32.const 24) (i32.const 1) (i32.const 44)))
    (i32.store (i32.const 920) (call $clock (i32.const 0) (i64.const 0) (i32.const 48))))
  (func (export "exit") (call $start) (call $proc_exit (i32.const 5)))
  (func (export "status") (result i32) (i32.load (i32.const 900)))
)
"""


def test_a_module_called_from_python_is_served_in_c_but_proc_exit(
    runtime: Runtime, tmp_path: Path
) -> None:
    # a store without a Stdio of its own: the request's default context has one (argv,
    # stdin, grants; stdout and stderr to the log), found through the invocation, and
    # only proc_exit runs in Python (its exit code is the context's)
    module = load(runtime, tmp_path, wat(LOGGING_GUEST))
    invocation = Invocation(runtime.engine, Limits(), "rid", "the-worker")
    token = CURRENT.set(invocation)
    try:
        store = invocation.fresh_store()
        assert store.meter.stdio is None
        instance = Instance.create(module, store, invocation, owner=invocation)
        with python_wasi_calls() as counts:
            instance.run("_start")
            with pytest.raises(ProcExit) as exited:
                instance.run("exit")
        memory = instance.memory.read(0, 1024)
        context = invocation.wasi
        assert context is not None
        assert context.stdout_to_log
        assert context.native is not None
        assert context.native.log is invocation.log_book.counts
        assert context.exit_code == exited.value.code == 5
        assert store.meter.stdio is None
    finally:
        invocation.close()
        CURRENT.reset(token)
    assert struct.unpack_from("<6I", memory, 900) == (SUCCESS,) * 6
    assert u32(memory, 44) == 0  # no stdin
    assert invocation.logs == ["hello from the module", "the-worker"] * 2
    assert counts == Counter({"proc_exit": 1})  # the rest in C, on the same state


PY_WORKER = """
from atoll import Response

async def fetch(request, env, ctx):
    if request.query.get("which") == "warm":
        env.W.instance.exports._start()
    else:
        env.W.instantiate().exports._start()
    return Response("ok")
"""


@pytest.mark.parametrize("which", ["fresh", "warm"])
async def test_a_module_called_from_python_logs_its_stdout(
    make_worker: WorkerFactory, runtime: Runtime, which: str
) -> None:
    from atoll.api import Request
    from atoll.worker import load_worker

    root = make_worker(PY_WORKER, modules={"W": LOGGING_GUEST}, name="py-worker")
    worker = load_worker(root, runtime=runtime, dev=True)
    for _ in range(2):
        result = await worker.handle(Request(f"http://t/?which={which}"), "rid")
        assert result.response.status == 200
        assert result.response.body == b"ok"
        assert result.logs == ["hello from the module", "py-worker"]
