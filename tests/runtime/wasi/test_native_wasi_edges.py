"""Edge cases where the C and Python WASI paths once disagreed (test_native_wasi.py
has the main parity test): a fault writes or consumes nothing on either path, the
pointer table comes before the strings, a NUL inside an argument or variable, exit
codes of 2**31 and over, a trap after proc_exit in the same store."""

from __future__ import annotations

from pathlib import Path

import pytest

from atoll.errors import GuestTrapError
from atoll.manifest.schema import Limits
from atoll.runtime.hostfuncs import CURRENT
from atoll.runtime.instance import Instance
from atoll.runtime.invocation import Invocation
from atoll.runtime.wasi import ProcExit, WasiContext
from atoll.runtime.wasi.preview1 import FAULT, SUCCESS
from atoll.worker import Runtime
from tests.runtime.wasi.test_native_wasi import (
    MEM,
    WORLDS,
    Guest,
    World,
    assert_same,
    both,
    capi,
    load,
)
from tests.support import wat

# C against Python: on the public backend (ATOLL_CAPI=0) there is no C path to compare;
# test_guest_bounds.py runs the Python path there.
pytestmark = pytest.mark.native_backend

U = WORLDS["unicode"]


def case_sizes_partial(g: Guest) -> None:
    g.call("args_sizes_get", g.out(4), MEM - 2, expect=FAULT)


def case_env_sizes_partial(g: Guest) -> None:
    g.call("environ_sizes_get", g.out(4), MEM - 2, expect=FAULT)


def case_args_get_partial(g: Guest) -> None:
    g.call("args_get", g.out(16), MEM - 2, expect=FAULT)


def case_environ_get_partial(g: Guest) -> None:
    g.call("environ_get", g.out(16), MEM - 2, expect=FAULT)


def case_args_get_overlap(g: Guest) -> None:
    at = g.out(64)
    g.call("args_get", at, at, expect=SUCCESS)


def case_write_nwritten_oob(g: Guest) -> None:
    g.call("fd_write", 1, g.write_iovs(b"abc"), 1, MEM - 2, expect=FAULT)


def case_read_nread_oob(g: Guest) -> None:
    g.call("fd_read", 0, g.read_iovs(4), 1, MEM - 2, expect=FAULT)


def case_read_second_iovec_oob(g: Guest) -> None:
    g.call("fd_read", 0, g.iovs((g.out(4), 4), (MEM - 2, 8)), 2, g.out(4), expect=FAULT)


def case_read_iovec_longer_than_memory_left(g: Guest) -> None:
    g.call("fd_read", 0, g.read_iovs(19), 1, g.out(4), expect=SUCCESS)  # 1 byte of stdin left
    g.call("fd_read", 0, g.iovs((MEM - 2, 100)), 1, g.out(4), expect=None)


def case_read_iovec_longer_than_memory_left_at_eof(g: Guest) -> None:
    g.call("fd_read", 0, g.read_iovs(20), 1, g.out(4), expect=SUCCESS)  # all of stdin
    g.call("fd_read", 0, g.iovs((MEM - 2, 100)), 1, g.out(4), expect=None)


CASES = {
    f.__name__: f
    for f in [
        case_sizes_partial,
        case_env_sizes_partial,
        case_args_get_partial,
        case_environ_get_partial,
        case_args_get_overlap,
        case_write_nwritten_oob,
        case_read_nread_oob,
        case_read_second_iovec_oob,
        case_read_iovec_longer_than_memory_left,
        case_read_iovec_longer_than_memory_left_at_eof,
    ]
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_case(runtime: Runtime, tmp_path: Path, name: str) -> None:
    g = Guest()
    CASES[name](g)
    in_c, in_py = both(runtime, tmp_path, g, U)
    assert_same(in_c, in_py, g)


def test_write_over_limit_with_nwritten_oob(runtime: Runtime, tmp_path: Path) -> None:
    g = Guest()
    g.call("fd_write", 1, g.write_iovs(b"x" * 20), 1, MEM - 2, expect=None)
    in_c, in_py = both(runtime, tmp_path, g, U, stdout_limit=10)
    assert_same(in_c, in_py, g)


@pytest.mark.parametrize(
    "world",
    [
        World(args=("a\0b", "c"), env=(), stdin=b""),
        World(args=(), env=(("PATH_INFO", "/a\0b"), ("Z", "1")), stdin=b""),
    ],
)
def test_nul_in_strings(runtime: Runtime, tmp_path: Path, world: World) -> None:
    g = Guest()
    for kind in ("args", "environ"):
        at = g.out(8)
        g.call(f"{kind}_sizes_get", at, at + 4, expect=SUCCESS)
        g.call(f"{kind}_get", g.out(64), g.out(64), expect=SUCCESS)
    in_c, in_py = both(runtime, tmp_path, g, world)
    assert_same(in_c, in_py, g)


@pytest.mark.parametrize("code", [0x80000000, 0xFFFFFFFF])
def test_big_exit_code(runtime: Runtime, tmp_path: Path, code: int) -> None:
    g = Guest()
    g.call("proc_exit", code, expect=None)
    in_c, in_py = both(runtime, tmp_path, g, U)
    assert_same(in_c, in_py, g)


EXIT_THEN_TRAP = """
(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1)
  (func (export "exit") (call $proc_exit (i32.const 0)))
  (func (export "crash") unreachable))
"""


@pytest.mark.parametrize("native", [True, False])
def test_trap_after_proc_exit_in_the_same_store(
    runtime: Runtime, tmp_path: Path, native: bool
) -> None:
    module = load(runtime, tmp_path, wat(EXIT_THEN_TRAP))
    invocation = Invocation(runtime.engine, Limits(), "rid", "w")
    context = WasiContext(args=["p"])
    invocation.wasi = context
    token = CURRENT.set(invocation)
    try:
        store = invocation.fresh_store()
        if native:
            assert capi is not None
            store.meter.stdio = context.serve_stdio_in_c(capi.Stdio)
        instance = Instance.create(module, store, invocation, owner=invocation)
        with pytest.raises(ProcExit):
            instance.run("exit")
        with pytest.raises(GuestTrapError):
            instance.run("crash")
    finally:
        invocation.close()
        CURRENT.reset(token)
