"""Types of atoll.runtime._native (src/atoll/runtime/native/); see capi.py."""

from collections.abc import Callable
from typing import Any, Literal, overload

INTERRUPT_MARKER: str
MAX_SLOTS: int
LOG_WRITE_NATIVE: int

class CallFailed(Exception):
    """A C call failed: ``args`` is ``(error_address, trap_address)``."""

class BudgetSpent(Exception):
    """The invocation's ``cpu_budget_ns`` is used up."""

class Sig:
    name: str
    def __init__(self, params: bytes, results: bytes, name: str) -> None: ...
    def call(self, ctx: int, store_id: int, private: int, *args: int | float) -> Any: ...

class Stdio:
    stdin_pos: int
    stdout_size: int
    exited: int
    exit_code: int
    stderr_cut: int
    log: LogBook | None
    def __init__(
        self,
        args: bytes,
        env: bytes,
        stdin: bytes,
        stdout_limit: int,
        has_dirs: bool = ...,
        log: LogBook | None = ...,
    ) -> None: ...
    def log_output(self, data: bytes) -> None: ...
    def flush_log(self) -> None: ...
    def stderr_line(self) -> bytes: ...
    def stdout(self) -> bytes: ...
    def write_stdout(self, data: bytes) -> None: ...
    def read_stdin(self, n: int) -> bytes: ...

class LogBook:
    lines: list[str]
    kept_lines: int
    kept_bytes: int
    dropped_lines: int
    dropped_bytes: int
    pending: int
    max_lines: int
    max_bytes: int
    max_line: int
    def __init__(self, lines: list[str], max_lines: int, max_bytes: int, max_line: int) -> None: ...
    def collect(self) -> None: ...
    def write(self, data: bytes | None, length: int = ..., ptr: int = ...) -> None: ...

class Meter:
    allow_ns: int
    used_ns: int
    depth: int
    tick_ns: int
    stdio: Stdio | None
    def __init__(self, tick_ns: int = ...) -> None: ...
    def install(self, store: int) -> None: ...
    def begin(self, allow_ns: int) -> None: ...
    def end(self) -> int: ...

class Bound:
    sig: Sig
    def __init__(self, sig: Sig, meter: Meter, ctx: int, store_id: int, private: int) -> None: ...
    def __call__(self, invocation: Any, *args: int | float) -> Any: ...

class Ticker:
    ticks: int
    running: bool
    slow: bool
    def __init__(self, engine: int, tick_ns: int = ..., keepalive: object = ...) -> None: ...
    def stop(self) -> None: ...

class Watch:
    beats: int
    calls: int
    running: bool
    def __init__(
        self,
        interval_ns: int,
        stall_after_ns: int,
        starved: int,
        on_late: Callable[[int], object],
        on_beat: Callable[[], object],
    ) -> None: ...
    def beat(self) -> None: ...
    def start(self, cpu_clock: int) -> None: ...
    def stop(self) -> None: ...

class Budget:
    limit: int
    used: int
    def __init__(self, limit: int) -> None: ...
    def take(self, size: int, /) -> bool: ...
    def give(self, size: int, /) -> None: ...

class BodyRead:
    got: int
    taken: int
    refused: bool
    outcome: int
    last: float
    notify_fd: int
    def __init__(
        self,
        fd: int,
        body: bytes,
        start: int,
        budget: Budget,
        timeout_ns: int,
        lowat: int,
        nice: int,
    ) -> None: ...
    def start(self) -> None: ...
    def stop(self) -> None: ...
    def ack(self) -> None: ...
    def finish(self) -> None: ...

class Reaper:
    reaped: int
    running: bool
    def __init__(self) -> None: ...
    def put(self, body: bytes, /) -> None: ...
    def collect(self) -> None: ...

class Pool:
    limit: int
    held: int
    made: int
    reused: int
    trimmed: int
    free: int
    resident: int
    def __init__(self, limit: int, idle_ns: int, reaper: Reaper) -> None: ...
    def take(self, size: int, /) -> bytes: ...
    def owns(self, body: bytes, /) -> bool: ...
    def sweep(self) -> None: ...
    def trim(self) -> int: ...

def init(addresses: dict[str, int]) -> None: ...
def needed() -> tuple[str, ...]: ...
def new_store(
    engine: int, memory_size: int, instances: int, tables: int, memories: int, meter: Meter
) -> tuple[int, int]: ...
def store_delete(store: int) -> None: ...
def instantiate(meter: Meter, invocation: Any, pre: int, ctx: int) -> tuple[int, int]: ...
def run_export(
    meter: Meter, invocation: Any, ctx: int, store_id: int, index: int, name: bytes
) -> bool: ...
def export_get(ctx: int, store_id: int, index: int, name: bytes) -> tuple[int, ...] | None: ...
def caller_memory(caller: int, name: bytes) -> tuple[int, int]: ...
def caller_cpu_left(caller: int) -> int | None: ...
def define_host(
    linker: int,
    module: bytes,
    name: bytes,
    functype: int,
    impl: Callable[..., Any],
    params: bytes,
    result: bytes,
    make_caller: Callable[[int], Any],
    on_error: Callable[[BaseException], bytes],
    native: int = ...,
) -> int: ...
def wasi_names() -> tuple[str, ...]: ...
def thread_ns() -> int: ...
@overload
def write_lines(fd: int, head: str, end: str, lines: list[str]) -> bool: ...
@overload
def write_lines(
    fd: int,
    head: str,
    end: str,
    lines: list[str],
    carry: bytes,
    limit: int = 0,
    socket: bool = False,
) -> tuple[bytes, int, int] | Literal[False]: ...
