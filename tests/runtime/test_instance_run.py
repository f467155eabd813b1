"""``Instance.run(name)``: a ``() -> ()`` export (a WASI command's ``_start``) in one C call."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from atoll.errors import AbiError, AtollError, CpuLimitError, GuestTrapError
from atoll.manifest.schema import Limits
from atoll.runtime.backend.auto import BACKEND
from atoll.runtime.hostfuncs import CURRENT
from atoll.runtime.instance import Instance
from atoll.runtime.invocation import Invocation
from atoll.runtime.module import WasmModule
from atoll.runtime.outcome import Outcome
from atoll.worker import Runtime
from tests.support import wat

MS = 1_000_000

GUEST = """
(module
  (memory (export "memory") 1)
  ;; a counter at address 0
  (func $bump (i32.store (i32.const 0) (i32.add (i32.load (i32.const 0)) (i32.const 1))))
  (func (export "work") (local $i i32)
    (call $bump)
    (loop $l
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 3000000)))))
  (func $crash (export "crash") (call $bump) unreachable)
  (func (export "spin") (call $bump) (loop $l (br $l)))
  (func (export "bump_ret") (result i32) (call $bump) (i32.load (i32.const 0)))
  (func (export "takes") (param i32) (call $bump))
)
"""


@dataclass
class Setup:
    module: WasmModule
    runtime: Runtime

    def invocation(self, cpu_ms: int = 1000) -> Invocation:
        return Invocation(self.runtime.engine, Limits(cpu_ms=cpu_ms), "rid", "test-worker")

    def instance(self, invocation: Invocation) -> Instance:
        store = invocation.fresh_store()
        return Instance.create(self.module, store, invocation, owner=invocation)


@pytest.fixture
def setup(runtime: Runtime, tmp_path: Path) -> Setup:
    path = tmp_path / "guest.wasm"
    path.write_bytes(wat(GUEST))
    module = WasmModule.load("guest", path, cache=runtime.cache, linker=runtime.linker)
    return Setup(module, runtime)


@pytest.fixture
def request_of(setup: Setup) -> Iterator[Invocation]:
    invocation = setup.invocation()
    token = CURRENT.set(invocation)
    yield invocation
    invocation.close()
    CURRENT.reset(token)


def counter(instance: Instance) -> int:
    return int.from_bytes(instance.memory.read(0, 4), "little")


def test_run_calls_the_export_and_charges_the_request(setup: Setup, request_of: Invocation) -> None:
    instance = setup.instance(request_of)
    used = request_of.cpu_used_ns
    instance.run("work")
    assert counter(instance) == 1
    assert request_of.cpu_used_ns > used
    charged = request_of.cpu_used_ns
    instance.run("work")
    assert counter(instance) == 2
    assert request_of.cpu_used_ns > charged
    assert request_of.outcome is Outcome.OK
    if BACKEND.name == "native":  # one C call: no ExportFunction is made
        assert "work" not in instance.exports._cache
    assert instance.guest_store.meter.depth == 0


def test_run_maps_a_trap_to_a_guest_trap_error(setup: Setup, request_of: Invocation) -> None:
    instance = setup.instance(request_of)
    with pytest.raises(GuestTrapError) as failed:
        instance.run("crash")
    assert "guest.crash" in str(failed.value)
    assert "unreachable" in str(failed.value)
    assert failed.value.frames[:1] == ("guest!crash",)
    assert request_of.outcome is Outcome.EXCEPTION
    assert request_of.host_error is None
    assert counter(instance) == 1
    assert request_of.cpu_used_ns > 0
    instance.run("work")  # the instance still works after a trap
    assert counter(instance) == 2


def test_run_stops_a_spin_at_cpu_ms(setup: Setup) -> None:
    invocation = setup.invocation(cpu_ms=30)
    token = CURRENT.set(invocation)
    try:
        instance = setup.instance(invocation)
        with pytest.raises(CpuLimitError) as stopped:
            instance.run("spin")
        assert "exceeded the request's wasm CPU limit of 30 ms" in str(stopped.value)
        assert invocation.outcome is Outcome.EXCEEDED_CPU
        # charged about the budget: thread CPU time, so another busy process does not count
        assert 30 * MS <= invocation.cpu_used_ns < 130 * MS
        assert counter(instance) == 1
        with pytest.raises(CpuLimitError) as refused:
            instance.run("work")  # the budget is spent: the guest does not run again
        assert "already used its 30 ms" in str(refused.value)
        assert counter(instance) == 1
    finally:
        invocation.close()
        CURRENT.reset(token)


@pytest.mark.parametrize("left", [0, -5 * MS])
def test_run_refuses_when_the_budget_is_spent(
    setup: Setup, request_of: Invocation, left: int
) -> None:
    instance = setup.instance(request_of)
    request_of.cpu_used_ns = request_of.cpu_budget_ns - left
    used = request_of.cpu_used_ns
    with pytest.raises(CpuLimitError, match="already used its 1000 ms"):
        instance.run("work")
    assert counter(instance) == 0
    assert request_of.cpu_used_ns == used
    assert request_of.outcome is Outcome.EXCEEDED_CPU


def test_run_of_another_signature_goes_through_exports(
    setup: Setup, request_of: Invocation
) -> None:
    instance = setup.instance(request_of)
    instance.run("bump_ret")  # () -> i32: called through exports, its result dropped
    assert counter(instance) == 1
    assert "bump_ret" in instance.exports._cache
    with pytest.raises(AbiError, match=r"signature: guest\.takes"):
        instance.run("takes")  # (i32) -> (): called with no argument
    assert counter(instance) == 1
    with pytest.raises(AbiError, match="has no exported function 'nope'"):
        instance.run("nope")


def test_run_belongs_to_its_request(setup: Setup, request_of: Invocation) -> None:
    instance = setup.instance(request_of)
    other = setup.invocation()
    token = CURRENT.set(other)
    try:
        with pytest.raises(AtollError, match="belongs to another request"):
            instance.run("work")
    finally:
        CURRENT.reset(token)
        other.close()
    token = CURRENT.set(None)
    try:
        with pytest.raises(AtollError, match="only run while a request is being served"):
            instance.run("work")
    finally:
        CURRENT.reset(token)
    assert counter(instance) == 0


@pytest.mark.native_backend
def test_run_uses_the_c_path_when_there_is_one(
    setup: Setup, request_of: Invocation, monkeypatch: pytest.MonkeyPatch
) -> None:
    from atoll.runtime import capi

    instance = setup.instance(request_of)
    assert isinstance(instance.ref, tuple)  # the native backend's (store_id, index)
    ran: list[object] = []
    original = capi.run_export

    def spy(*args: Any, **kwargs: Any) -> bool:
        ran.append(args[-1])
        return original(*args, **kwargs)

    monkeypatch.setattr(capi, "run_export", spy)
    instance.run("work")
    instance.run("bump_ret")
    assert ran == [b"work"]
    assert counter(instance) == 2
