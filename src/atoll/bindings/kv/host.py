"""``atoll:kv``: the KV namespaces of a worker, for its wasm guests (host imports).

:func:`host_functions` lists them; ``worker.Runtime`` wires them into the
linker it builds, next to the runtime's own and WASI's. The contract
is in ``docs/wasm-abi.md`` ("KV from wasm"); in short, every function takes
the binding name first, then strings as ``ptr, len`` of UTF-8 in the
guest's ``memory``:

- ``get(binding, key) -> i64``: ``(ptr << 32) | len`` of the value in a
  buffer from the guest's ``alloc``, ``0`` if empty, :data:`NOT_FOUND`;
- ``put(binding, key, value, ttl_seconds: i64) -> i32``: :data:`OK`;
- ``delete(binding, key) -> i32``: :data:`OK`;
- ``list(binding, prefix, cursor, limit: i32) -> i64``: a JSON page, returned
  as ``get`` returns a value;

or a negative error code.

When it runs: once per guest call, on the thread running the guest, with
:data:`~atoll.runtime.hostfuncs.CURRENT` set to the request. The binding is
looked up in that request's worker ``env``, so a guest reaches only the
namespaces its own worker declares; any other name traps, naming the
binding. A call blocks its thread for one store operation through the
namespace's ``*_sync`` twins: same keys, encoding, expiry and read cache as
``await env.NAME.get(…)``.

Errors: a key, value or TTL outside Workers' limits returns :data:`INVALID`
and a store failure :data:`STORE_ERROR`, each with the reason in the
request's log; only guest faults (a bad pointer, an unknown binding, no
``alloc`` export, ``alloc`` trapping) trap.
"""

from __future__ import annotations

import ctypes
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, NoReturn

from atoll.bindings.kv.base import decode_cursor
from atoll.bindings.kv.namespace import MAX_KEY_BYTES, MAX_VALUE_BYTES, KVNamespace
from atoll.errors import CpuLimitError, GuestTrapError, KVError, KVLimitError
from atoll.runtime.backend.auto import BACKEND
from atoll.runtime.hostfuncs import CURRENT, HostFunction, fail, memory_view
from atoll.runtime.signature import Signature

if TYPE_CHECKING:
    import wasmtime
else:  # its Trap and Func, imported on first use (the native backend runs without it)
    from atoll.runtime.lazy import wasmtime

__all__ = ["INVALID", "MODULE", "NOT_FOUND", "NO_MEMORY", "OK", "STORE_ERROR"]

MODULE: Final = "atoll:kv"

OK: Final = 0
NOT_FOUND: Final = -1
"""``get``: the key is missing or expired."""
INVALID: Final = -2
"""A key, value, TTL or limit outside Workers' KV limits, a key or prefix that is not
UTF-8, a cursor not from ``list`` (reason logged)."""
STORE_ERROR: Final = -3
"""The store failed: unreachable, locked too long… (reason logged)."""
NO_MEMORY: Final = -4
"""``get``/``list``: the guest's ``alloc`` returned 0."""

#: Bytes of an unknown, over-long binding name shown in the trap message.
NAME_SHOWN: Final = 64
#: A cursor is a key in URL-safe base64 (4/3 of its bytes): longer ones were never made by list.
_CURSOR_MAX: Final = 2 * MAX_KEY_BYTES

_I32 = "i32"
_ALLOC_SIG = Signature(("i32",), ("i32",))
_I64 = "i64"

#: How the backend calls a guest's ``alloc`` (once its type was checked).
_ALLOC = BACKEND.prepare("alloc", _ALLOC_SIG)


class _Call:
    """One host call: its name, the calling guest and the request it serves."""

    __slots__ = ("_view", "caller", "invocation", "what")

    def __init__(self, caller: Any, what: str) -> None:
        # ``caller``: a capi.RawCaller (C API path) or a wasmtime.Caller; both have get().
        self.caller = caller
        self.what = what
        self._view: tuple[int, int] | None = None
        invocation = CURRENT.get()
        if invocation is None:
            self.trap("called outside a request")
        self.invocation = invocation

    def trap(self, message: str, hint: str | None = None) -> NoReturn:
        fail(GuestTrapError(f"{MODULE}.{self.what}: {message}", hint=hint))
        raise AssertionError("unreachable: fail() raises")  # pragma: no cover

    def log(self, message: str) -> None:
        self.invocation.log(f"{MODULE}.{self.what}: {message}")

    def read(self, ptr: int, length: int, name: str, copy: bool = True) -> bytes:
        """A copy of guest memory (``copy=False``: only checked, ``b""``); a pointer or
        length outside it traps."""
        if self._view is None:  # valid until the guest runs again (alloc)
            self._view = memory_view(self.caller)
        address, size = self._view
        ptr &= 0xFFFFFFFF
        length &= 0xFFFFFFFF
        if not address or ptr + length > size:
            self.trap(
                f"{name} pointer/length {ptr}/{length} is outside the guest's memory"
                " (or it exports no 'memory')"
            )
        return ctypes.string_at(address + ptr, length) if copy else b""

    def text(self, ptr: int, length: int, name: str, limit: int = MAX_KEY_BYTES) -> str:
        """A UTF-8 argument of at most ``limit`` bytes (a key, a prefix, a cursor); longer
        or not UTF-8 is a KVLimitError (→ :data:`INVALID`), and a longer one is not copied."""
        length &= 0xFFFFFFFF
        if length > limit:
            self.read(ptr, length, name, copy=False)  # a bad pointer still traps as one
            start = self.read(ptr, NAME_SHOWN, name).decode("utf-8", errors="replace")
            raise KVLimitError(
                f"KV {name} {start[:57] + '...'!r} is {length} bytes: over the limit of"
                f" {limit} bytes (UTF-8)"
            )
        try:
            return self.read(ptr, length, name).decode()
        except UnicodeDecodeError:
            raise KVLimitError(f"the {name} is not valid UTF-8") from None

    def namespace(self, ptr: int, length: int) -> KVNamespace:
        """The worker's namespace bound as the binding at ``ptr``; any other name traps.

        A name longer than the worker's longest KV binding (and than :data:`NAME_SHOWN`)
        matches none: it is not copied whole, only its first :data:`NAME_SHOWN` bytes,
        for the message.
        """
        env = self.invocation.env
        own = sorted(name for name, value in env.items() if isinstance(value, KVNamespace))
        longest = max((len(name.encode()) for name in own), default=0)
        length &= 0xFFFFFFFF
        if length > max(longest, NAME_SHOWN):
            self.read(ptr, length, "binding", copy=False)  # a bad pointer still traps as one
            shown = self.read(ptr, NAME_SHOWN, "binding").decode("utf-8", errors="replace")
            self.trap(
                f"worker {self.invocation.worker!r} has no KV binding of {length} bytes"
                f" ({shown!r}…; its KV bindings: {', '.join(own) or 'none'})",
                hint="declare it under [[kv_namespaces]] in atoll.toml; a guest reaches only"
                " the namespaces of its own worker",
            )
        binding = self.read(ptr, length, "binding").decode("utf-8", errors="replace")
        found = env.get(binding)
        if isinstance(found, KVNamespace):
            return found
        self.trap(
            f"worker {self.invocation.worker!r} has no KV binding {binding!r}"
            f" (its KV bindings: {', '.join(own) or 'none'})",
            hint="declare it under [[kv_namespaces]] in atoll.toml; a guest reaches only"
            " the namespaces of its own worker",
        )

    def give(self, data: bytes) -> int:
        """Copy ``data`` into a buffer of the guest's ``alloc``: ``(ptr << 32) | len``."""
        if not data:
            return 0
        size = len(data)
        found = BACKEND.guest_function(self.caller, "alloc")
        if found is None:
            self.trap(
                "the guest exports no alloc(len) -> ptr, which atoll:kv needs to return bytes",
                hint="export alloc (see docs/wasm-abi.md)",
            )
        # a Signature, not wasmtime-py's str(), which aborts the process on v128
        sig, alloc = found
        if sig != _ALLOC_SIG:
            self.trap(f"the guest's alloc must be (len: i32) -> i32, not {sig}")
        self._view = None  # the guest runs: its memory may grow and move
        try:
            result = BACKEND.call_back(self.caller, alloc, _ALLOC, size)
        except (wasmtime.Trap, wasmtime.WasmtimeError) as exc:
            if _is_interrupt(exc):
                fail(
                    CpuLimitError(
                        f"{MODULE}.{self.what}: exceeded the request's wasm CPU limit of"
                        f" {self.invocation.limits.cpu_ms} ms (in the guest's alloc)",
                        hint="raise [limits] cpu_ms, or do less work per request",
                    )
                )
            self.trap(f"the guest's alloc({size}) failed: {_first_line(exc)}")
        ptr = int(result) & 0xFFFFFFFF
        if ptr == 0:
            self.log(f"the guest's alloc({size}) returned 0")
            return NO_MEMORY
        address, memory_size = memory_view(self.caller)
        if not address or ptr + size > memory_size:
            self.trap(f"alloc({size}) returned {ptr}, outside the guest's memory")
        if ptr >= 1 << 31:  # (ptr << 32) | len would read as a negative i64: an error code
            self.trap(f"alloc({size}) returned {ptr}: atoll:kv buffers must lie below 2 GiB")
        ctypes.memmove(address + ptr, data, size)
        return (ptr << 32) | size


def _is_interrupt(exc: Exception) -> bool:
    if isinstance(exc, wasmtime.Trap) and exc.trap_code == wasmtime.TrapCode.INTERRUPT:
        return True
    return BACKEND.is_interrupt(exc)


def _first_line(exc: Exception) -> str:
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


def _guarded(what: str, body: Callable[[_Call], int]) -> Callable[..., int]:
    """Wrap ``body`` so KV errors become codes and nothing but a trap escapes."""

    def impl(caller: Any, *params: int) -> int:
        call = _Call(caller, what)
        try:
            return body(call, *params)
        except wasmtime.Trap:
            raise  # from fail(): the error is recorded on the invocation
        except KVLimitError as exc:
            call.log(exc.message)
            return INVALID
        except KVError as exc:
            call.log(exc.message)
            return STORE_ERROR
        except Exception as exc:
            call.trap(f"internal error: {type(exc).__name__}: {exc}")

    impl.__name__ = f"kv_{what}"
    return impl


def _get(call: _Call, b_ptr: int, b_len: int, k_ptr: int, k_len: int) -> int:
    ns = call.namespace(b_ptr, b_len)
    value = ns.get_sync(call.text(k_ptr, k_len, "key"))
    if value is None:
        return NOT_FOUND
    return call.give(value)


def _put(
    call: _Call,
    b_ptr: int,
    b_len: int,
    k_ptr: int,
    k_len: int,
    v_ptr: int,
    v_len: int,
    ttl: int,
) -> int:
    ns = call.namespace(b_ptr, b_len)
    key = call.text(k_ptr, k_len, "key")
    if v_len & 0xFFFFFFFF > MAX_VALUE_BYTES:
        raise KVLimitError(
            f"KV key {key!r}: the value is {v_len & 0xFFFFFFFF} bytes, over the limit of"
            f" {MAX_VALUE_BYTES} bytes (25 MiB)"
        )
    value = call.read(v_ptr, v_len, "value")
    if ttl < 0:
        raise KVLimitError(f"KV key {key!r}: ttl_seconds {ttl} is negative (0: never expires)")
    ns.put_sync(key, value, expiration_ttl=ttl or None)
    return OK


def _delete(call: _Call, b_ptr: int, b_len: int, k_ptr: int, k_len: int) -> int:
    ns = call.namespace(b_ptr, b_len)
    ns.delete_sync(call.text(k_ptr, k_len, "key"))
    return OK


def _list(
    call: _Call,
    b_ptr: int,
    b_len: int,
    p_ptr: int,
    p_len: int,
    c_ptr: int,
    c_len: int,
    limit: int,
) -> int:
    ns = call.namespace(b_ptr, b_len)
    if limit >= 1 << 31:  # the C API path passes i32 unsigned; a limit is signed
        limit -= 1 << 32
    prefix = call.text(p_ptr, p_len, "prefix") if p_len & 0xFFFFFFFF else None
    cursor = call.text(c_ptr, c_len, "cursor", _CURSOR_MAX) if c_len & 0xFFFFFFFF else None
    if cursor is not None:
        try:
            decode_cursor(cursor)
        except KVError as exc:  # the guest's mistake, not the store's
            raise KVLimitError(exc.message) from None
    page = ns.list_sync(prefix, limit, cursor)
    keys: list[dict[str, Any]] = []
    for info in page.keys:
        item: dict[str, Any] = {"name": info.name}
        if info.expiration is not None:
            item["expiration"] = info.expiration
        if info.metadata is not None:
            item["metadata"] = info.metadata
        keys.append(item)
    body = {"keys": keys, "list_complete": page.list_complete, "cursor": page.cursor}
    return call.give(json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode())


def _provide(
    name: str,
    params: tuple[str, ...],
    result: str,
    body: Callable[..., int],
    doc: str,
) -> HostFunction:
    return HostFunction(MODULE, name, params, (result,), _guarded(name, body), doc)


def host_functions() -> list[HostFunction]:
    """The ``atoll:kv`` host functions, for the linker (``worker.Runtime`` wires them
    in; called once per runtime)."""
    return [
        _provide(
            "get",
            (_I32,) * 4,
            _I64,
            _get,
            "get(binding_ptr, binding_len, key_ptr, key_len) -> i64: (ptr << 32) | len of the"
            " value (a buffer from the guest's alloc), -1 if missing, other negatives: errors",
        ),
        _provide(
            "put",
            (_I32,) * 6 + (_I64,),
            _I32,
            _put,
            "put(binding_ptr, binding_len, key_ptr, key_len, val_ptr, val_len, ttl_seconds: i64)"
            " -> i32: 0, or a negative error code",
        ),
        _provide(
            "delete",
            (_I32,) * 4,
            _I32,
            _delete,
            "delete(binding_ptr, binding_len, key_ptr, key_len) -> i32: 0, or a negative error"
            " code",
        ),
        _provide(
            "list",
            (_I32,) * 7,
            _I64,
            _list,
            "list(binding_ptr, binding_len, prefix_ptr, prefix_len, cursor_ptr, cursor_len,"
            " limit) -> i64: (ptr << 32) | len of a JSON page, or a negative error code",
        ),
    ]
