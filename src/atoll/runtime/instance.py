"""A wasm instance as a worker sees it: ``instance.exports.NAME(...)`` and ``instance.memory``.

Numbers go in and out as they are. ``bytes``/``bytearray``/``memoryview`` and
``str`` arguments are copied into the guest through its exported
``alloc(len) -> ptr`` and passed as two i32 parameters ``(ptr, len)``; after
the call they are released with ``dealloc(ptr, len)`` when the guest exports
it. A function that returns a buffer returns it packed as one i64
``(ptr << 32) | len`` (or as two i32 results ``ptr, len``); read it with
``exports.NAME.bytes(...)`` / ``.text(...)`` / ``.json(...)``, which copy it
out and ``dealloc`` it. The full convention is in ``docs/wasm-abi.md``.
"""

from __future__ import annotations

import ctypes
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from atoll.errors import AbiError, AtollError
from atoll.runtime.backend.auto import BACKEND
from atoll.runtime.backend.base import Bound, InstanceRef
from atoll.runtime.invocation import CURRENT, GuestStore, Invocation
from atoll.runtime.lazy import wasmtime_errors
from atoll.runtime.module import ExportInfo, WasmModule

if TYPE_CHECKING:
    import wasmtime
else:  # the public API's objects (Instance.raw, memories), imported on first use
    from atoll.runtime.lazy import wasmtime

__all__ = ["ExportFunction", "Exports", "Instance", "Memory"]

_BUFFER = (bytes, bytearray, memoryview, str)


#: The backend's failure exceptions, looked up once (the export call is the hot path).
_CALL_FAILED = BACKEND.CallFailed
_BUDGET_SPENT = BACKEND.BudgetSpent


class Instance:
    """One instance of a :class:`WasmModule`, living in a :class:`GuestStore`.

    ``owner`` is the invocation of a fresh instance (only that request may
    call it); ``None`` for a warm instance, whose calls are charged to
    whichever request makes them.
    """

    __slots__ = ("_memory", "_raw", "exports", "guest_store", "module", "owner", "ref")

    def __init__(
        self,
        module: WasmModule,
        guest_store: GuestStore,
        ref: InstanceRef,
        owner: Invocation | None,
    ) -> None:
        self.module = module
        self.guest_store = guest_store
        #: The instance as the backend holds it (``Backend.instantiate``).
        self.ref = ref
        self._raw: wasmtime.Instance | None = None
        self.owner = owner
        self.exports = Exports(self)
        self._memory: Memory | None = None

    @property
    def raw(self) -> wasmtime.Instance:
        """The ``wasmtime.Instance`` (for wasmtime-py's public API)."""
        raw = self._raw
        if raw is None:
            raw = self._raw = BACKEND.raw_instance(self.ref)
        return raw

    @classmethod
    def create(
        cls,
        module: WasmModule,
        guest_store: GuestStore,
        invocation: Invocation,
        owner: Invocation | None,
    ) -> Instance:
        """Instantiate ``module`` into ``guest_store``, charged to ``invocation``."""
        if len(guest_store.instances) > 1:
            guest_store.fit_memory(None)
        try:
            ref = BACKEND.instantiate(
                module.pre,
                module.pre_address,
                guest_store.store,
                guest_store.ctx,
                guest_store.meter,
                invocation,
            )
        except _BUDGET_SPENT:
            raise guest_store.spent(invocation, f"{module.binding} (instantiate)") from None
        except wasmtime_errors() as exc:
            raise guest_store.failure(
                invocation, f"{module.binding} (instantiate)", exc, None
            ) from None
        instance = cls(module, guest_store, ref, owner)
        guest_store.instances.append(instance)
        return instance

    def invocation(self) -> Invocation:
        """The request to charge a call to; refuses calls from outside the owning request."""
        current = CURRENT.get()
        if current is None:
            raise AtollError(
                f"{self.module.binding}: wasm can only run while a request is being served",
                hint="call exports inside fetch(), not at import time",
            )
        if self.owner is not None and (self.owner is not current or current.closed):
            raise AtollError(
                f"{self.module.binding}: this instance belongs to another request",
                hint="call instantiate() in each request; use .instance for one shared warm instance",
            )
        return current

    @property
    def memory(self) -> Memory:
        """The guest's exported linear memory."""
        if self._memory is None:
            name = self.module.memory_export
            if name is None:
                raise AbiError(f"{self.module.binding} exports no memory")
            guest_store = self.guest_store
            view = BACKEND.memory_view(guest_store.store, guest_store.ctx, self.ref, name)
            self._memory = Memory(self, view)
        return self._memory

    def release(self) -> None:
        """Let go of what refers back to this instance (its exports' cache, its memory):
        called when its store closes (a fresh instance: when its request ends), so that
        reference counting frees it then, rather than the garbage collector later. An
        export looked up again afterwards is refused as a call would be."""
        exports = self.exports
        exports._instance = None
        exports._gone = self.module.binding, self.owner is not None
        exports._cache.clear()
        exports.__dict__.clear()
        self._memory = None

    def memory_size(self) -> int:
        """Bytes of linear memory this instance holds now (0 if it exports none)."""
        if self.module.memory_export is None:
            return 0
        return self.memory.size

    def function(self, name: str) -> ExportFunction:
        self.invocation()  # refuse a lookup on an instance of a finished request
        info = self.module.functions.get(name)
        if info is None:
            known = ", ".join(sorted(self.module.functions)) or "none"
            raise AbiError(
                f"{self.module.binding} has no exported function '{name}'",
                hint=f"its exported functions: {known}",
            )
        guest_store = self.guest_store
        bound = BACKEND.bind(
            info.prepared,
            info.qualified,
            info.raw_name,
            info.sig,
            guest_store.store,
            guest_store.ctx,
            guest_store.meter,
            self.ref,
        )
        return ExportFunction(self, info, bound)

    def run(self, name: str) -> None:
        """Call the ``() -> ()`` export ``name``: a WASI command's ``_start``.

        The same rules as ``exports.NAME()``; one C call on the native backend
        (no :class:`ExportFunction` is made).
        """
        info = self.module.functions.get(name)
        if info is None or info.sig.params or info.sig.results:
            self.exports[name]()
            return
        invocation = self.invocation()
        guest_store = self.guest_store
        if len(guest_store.instances) > 1:
            guest_store.fit_memory(self)
        try:
            ran = BACKEND.run(
                info.raw_name, guest_store.ctx, guest_store.meter, self.ref, invocation
            )
        except _CALL_FAILED as failed:  # (its exception is made only if it is needed)
            raise guest_store.failure(invocation, info.qualified, failed, self) from None
        except _BUDGET_SPENT:
            raise guest_store.spent(invocation, info.qualified) from None
        except wasmtime_errors() as exc:
            raise guest_store.failure(invocation, info.qualified, exc, self) from None
        if not ran:
            self.exports[name]()

    def __repr__(self) -> str:
        kind = "fresh" if self.owner is not None else "warm"
        return f"<atoll Instance of {self.module.binding} ({kind})>"


class Exports:
    """``instance.exports.NAME`` → an :class:`ExportFunction` (looked up once per instance)."""

    __slots__ = ("__dict__", "_cache", "_gone", "_instance")

    def __init__(self, instance: Instance) -> None:
        self._instance: Instance | None = instance  # None once its store closed
        self._cache: dict[str, ExportFunction] = {}
        self._gone: tuple[str, bool]  # set with _instance = None: (binding, fresh)

    def _live(self) -> Instance:
        instance = self._instance
        if instance is None:
            raise self._gone_error()
        return instance

    def _gone_error(self) -> AtollError:
        """Why this instance's exports cannot be used any more (its store closed)."""
        binding, fresh = self._gone
        if fresh:  # as Instance.invocation says it
            return AtollError(
                f"{binding}: this instance belongs to another request",
                hint="call instantiate() in each request; use .instance for one shared "
                "warm instance",
            )
        return AtollError(
            f"{binding}: this warm instance was discarded after a failed call",
            hint="use env.NAME.instance again: it is replaced by a new one",
        )

    def __getattr__(self, name: str) -> ExportFunction:
        if name.startswith("__"):
            raise AttributeError(name)
        fn = self._cache.get(name)
        if fn is None:
            fn = self._cache[name] = self._live().function(name)
            # Found by plain lookup from now on (a warm instance's exports are read in
            # every request), unless the class holds the name.
            if name not in _EXPORTS_OWN:
                self.__dict__[name] = fn
        return fn

    __getitem__ = __getattr__

    def __dir__(self) -> list[str]:
        return sorted(self._live().module.functions)

    def __contains__(self, name: object) -> bool:
        return name in self._live().module.functions


#: Names an attribute of :class:`Exports` itself answers: an export so named is found
#: through ``__getattr__`` only (``exports["_cache"]``).
_EXPORTS_OWN = frozenset(dir(Exports))


class ExportFunction:
    """A guest function bound to one instance. Call it with numbers, bytes or str."""

    __slots__ = ("_bound", "_info", "_instance")

    def __init__(self, instance: Instance, info: ExportInfo, bound: Bound) -> None:
        self._instance = instance
        self._info = info
        #: ``bound(invocation, *numbers)``: budget check, deadline, call and CPU
        #: charge (one C call on the native backend, numeric signatures). The hot path.
        self._bound = bound

    @property
    def name(self) -> str:
        return self._info.name

    def __call__(self, *args: Any) -> Any:
        instance = self._instance
        invocation = instance.invocation()
        guest_store = instance.guest_store
        if len(guest_store.instances) > 1:
            guest_store.fit_memory(instance)
        try:
            return self._bound(invocation, *args)
        except _CALL_FAILED as failed:  # (its exception is made only if it is needed)
            raise guest_store.failure(invocation, self._info.qualified, failed, instance) from None
        except wasmtime_errors() as exc:
            raise guest_store.failure(invocation, self._info.qualified, exc, instance) from None
        except _BUDGET_SPENT:
            raise guest_store.spent(invocation, self._info.qualified) from None
        except (TypeError, ValueError) as exc:  # argument count, type or range
            if any(isinstance(arg, _BUFFER) for arg in args):
                return self._call_with_buffers(args)
            raise AbiError(f"{exc} (signature: {self._signature()})") from None

    def _signature(self) -> str:
        info = self._info
        return f"{info.qualified}({', '.join(info.sig.params)})"

    def _call_with_buffers(self, args: tuple[Any, ...]) -> Any:
        memory = self._instance.memory
        flat: list[Any] = []
        owned: list[tuple[int, int]] = []
        try:
            for arg in args:
                if isinstance(arg, _BUFFER):
                    data = arg.encode("utf-8") if isinstance(arg, str) else bytes(arg)
                    ptr = memory.alloc(data)
                    owned.append((ptr, len(data)))
                    flat += [ptr, len(data)]
                else:
                    flat.append(arg)
            return self(*flat)
        finally:
            for ptr, length in owned:
                memory.dealloc(ptr, length)

    def bytes(self, *args: Any) -> bytes:
        """Call, then read the returned buffer (``(ptr << 32) | len`` or ``ptr, len``)."""
        result = self(*args)
        if isinstance(result, tuple) and len(result) == 2:
            ptr, length = result
        elif isinstance(result, int):
            packed = result & 0xFFFFFFFFFFFFFFFF
            ptr, length = packed >> 32, packed & 0xFFFFFFFF
        else:
            raise AbiError(
                f"{self._info.qualified} did not return a buffer",
                hint="return (ptr << 32) | len as i64, or (ptr, len) as two i32; see docs/wasm-abi.md",
            )
        memory = self._instance.memory
        data = memory.read(ptr & 0xFFFFFFFF, length & 0xFFFFFFFF)
        memory.dealloc(ptr & 0xFFFFFFFF, length & 0xFFFFFFFF)
        return data

    def text(self, *args: Any) -> str:
        """Call, then read the returned buffer as UTF-8."""
        return self.bytes(*args).decode("utf-8", errors="replace")

    def json(self, *args: Any) -> Any:
        """Call, then parse the returned buffer as JSON."""
        return json.loads(self.bytes(*args))

    def __repr__(self) -> str:
        sig = self._info.sig
        return f"<wasm function {self._info.qualified}({', '.join(sig.params)}) -> ({', '.join(sig.results)})>"


class Memory:
    """A guest's linear memory: bounds-checked reads and writes, and its allocator."""

    __slots__ = ("_instance", "_view")

    def __init__(self, instance: Instance, view: Callable[[], tuple[int, int]]) -> None:
        self._instance = instance
        #: ``view()``: the memory's ``(address, length)`` now (``Backend.memory_view``).
        self._view = view

    @property
    def size(self) -> int:
        """Current size in bytes."""
        return self._view()[1]

    def _check(self, ptr: int, length: int) -> int:
        base, size = self._view()
        if ptr < 0 or length < 0 or ptr + length > size:
            raise AbiError(
                f"{self._instance.module.binding}: buffer {ptr}..{ptr + length} is outside "
                f"its memory of {size} bytes"
            )
        return base + ptr

    def read(self, ptr: int, length: int) -> bytes:
        """Copy ``length`` bytes out of guest memory at ``ptr``."""
        address = self._check(ptr, length)
        return ctypes.string_at(address, length)

    def write(self, ptr: int, data: bytes) -> None:
        """Copy ``data`` into guest memory at ``ptr``."""
        address = self._check(ptr, len(data))
        ctypes.memmove(address, data, len(data))

    def alloc(self, data: bytes) -> int:
        """Copy ``data`` into a buffer from the guest's ``alloc``; returns its pointer."""
        instance = self._instance
        if not instance.module.has_alloc:
            raise AbiError(
                f"{instance.module.binding} exports no alloc(len) -> ptr, so it cannot take bytes or str",
                hint="export alloc and dealloc from the module; see docs/wasm-abi.md",
            )
        ptr = int(instance.exports.alloc(len(data))) & 0xFFFFFFFF
        if ptr == 0 and data:
            raise AbiError(
                f"{instance.module.binding}: alloc({len(data)}) returned 0 (out of memory?)"
            )
        self.write(ptr, data)
        return ptr

    def dealloc(self, ptr: int, length: int) -> None:
        """Give a buffer back with the guest's ``dealloc(ptr, len)`` if it exports one."""
        if "dealloc" in self._instance.module.functions:
            self._instance.exports.dealloc(ptr, length)
