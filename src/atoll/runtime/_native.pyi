"""Types of atoll.runtime._native (src/atoll/runtime/_native.c); see capi.py."""

from collections.abc import Callable
from typing import Any

INTERRUPT_MARKER: str
MAX_SLOTS: int

class CallFailed(Exception):
    """A C call failed: ``args`` is ``(error_address, trap_address)``."""

class BudgetSpent(Exception):
    """The invocation's ``cpu_budget_ns`` is used up."""

class Sig:
    name: str
    def __init__(self, params: bytes, results: bytes, name: str) -> None: ...
    def call(self, ctx: int, store_id: int, private: int, *args: int | float) -> Any: ...

class Meter:
    start_ns: int
    allow_ns: int
    tick_ns: int
    def __init__(self, tick_ns: int = ...) -> None: ...
    def install(self, store: int) -> None: ...
    def begin(self, allow_ns: int) -> int: ...

class Bound:
    sig: Sig
    def __init__(self, sig: Sig, meter: Meter, ctx: int, store_id: int, private: int) -> None: ...
    def __call__(self, invocation: Any, *args: int | float) -> Any: ...

class Ticker:
    ticks: int
    running: bool
    def __init__(self, engine: int, tick_ns: int = ..., keepalive: object = ...) -> None: ...
    def stop(self) -> None: ...

def init(addresses: dict[str, int]) -> None: ...
def new_store(
    engine: int, memory_size: int, instances: int, tables: int, memories: int, meter: Meter
) -> tuple[int, int]: ...
def store_delete(store: int) -> None: ...
def instantiate(meter: Meter, invocation: Any, pre: int, ctx: int) -> tuple[int, int]: ...
def export_get(ctx: int, store_id: int, index: int, name: bytes) -> tuple[int, ...] | None: ...
def caller_memory(caller: int, name: bytes) -> tuple[int, int]: ...
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
) -> int: ...
def thread_ns() -> int: ...
