"""``[wasm_modules]`` bindings: ``env.NAME.instantiate()``, ``env.NAME.instance`` and
``env.NAME.run()`` (the module as a WASI program).

Configured once per deploy (the module is compiled and pre-linked then);
each ``instantiate()`` costs one instantiation in the current request.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from atoll.errors import AtollError
from atoll.runtime.engine import Engine
from atoll.runtime.instance import Instance
from atoll.runtime.invocation import CURRENT, MIB, GuestStore, Invocation
from atoll.runtime.module import WasmModule

if TYPE_CHECKING:
    from atoll.runtime.program import ProgramResult

__all__ = ["WasmModuleBinding"]


class WasmModuleBinding:
    """What ``env.NAME`` is for a ``[wasm_modules]`` entry.

    * :meth:`instantiate` gives a **fresh** instance with its own memory, in
      the current request's store. This is what isolates requests: nothing
      written by one request is visible to another. The instance is dropped
      when the request ends.
    * :attr:`instance` is one **warm** instance per serving thread, created
      on first use and kept: its globals and memory persist across requests
      (the seed's singleton pattern). Calls on it are charged to the request
      that makes them. If a call on it traps or runs out of CPU, it is
      discarded and the next access creates a new one. Its memory has a
      budget of its own of ``limits.memory_mb``.
    """

    def __init__(self, module: WasmModule, engine: Engine, memory_mb: int) -> None:
        self.module = module
        self._engine = engine
        self._memory_budget = memory_mb * MIB
        self._warm = threading.local()

    @staticmethod
    def _invocation(binding: str) -> Invocation:
        invocation = CURRENT.get()
        if invocation is None:
            raise AtollError(
                f"env.{binding}: wasm can only run while a request is being served",
                hint="instantiate modules inside fetch(), not at import time",
            )
        return invocation

    def instantiate(self) -> Instance:
        """A fresh instance of the module in the current request (start function run)."""
        invocation = CURRENT.get()
        if invocation is None:
            invocation = self._invocation(self.module.binding)  # raises why
        return Instance.create(self.module, invocation.fresh_store(), invocation, invocation)

    @property
    def instance(self) -> Instance:
        """The warm instance of this thread (created on first use, replaced after a failure)."""
        warm: Instance | None = getattr(self._warm, "instance", None)
        if warm is not None and not warm.guest_store.failed:
            return warm
        invocation = self._invocation(self.module.binding)
        if warm is not None:
            warm.guest_store.close()
            self._warm.instance = None
        store = GuestStore(self._engine, self._memory_budget)
        warm = Instance.create(self.module, store, invocation, owner=None)
        self._warm.instance = warm
        return warm

    def run(
        self,
        argv: Sequence[str] | None = None,
        *,
        stdin: bytes | str = b"",
        env: Mapping[str, str] | None = None,
        dirs: Iterable[str] | None = None,
        entrypoint: str = "_start",
    ) -> ProgramResult:
        """Run the module as a WASI program, in a fresh instance of the current request,
        and return its ``stdout``, ``stderr`` and ``exit_code`` (workers-wasi's
        ``wasi.start``). ``argv`` defaults to ``[NAME]``; ``env`` is the program's whole
        environment; ``dirs`` the guest paths of ``[wasi] dirs`` it may read (default:
        all). CPU, memory and output count toward the request's limits; see
        :func:`atoll.runtime.program.run_in_request` for what it raises."""
        from atoll.runtime.program import run_in_request  # only for a module run as a program

        return run_in_request(
            self.module, argv=argv, stdin=stdin, env=env, dirs=dirs, entrypoint=entrypoint
        )

    def __repr__(self) -> str:
        return f"<wasm module {self.module.binding} ({self.module.source})>"
