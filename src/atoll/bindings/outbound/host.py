"""``atoll:http``: subrequests for wasm guests (a host import), through atoll's one outbound path.

:func:`host_functions` lists it; ``worker.Runtime`` wires it into the linker it
builds. The contract is
in ``docs/outbound.md`` ("From wasm"); in short::

    fetch(req_ptr, req_len, body_ptr, body_len) -> i64

``req`` is a JSON object in the guest's memory, ``{"url": …, "method": "GET",
"headers": [[name, value], …], "redirect": "follow"}``; ``body`` the request
body (``body_len`` 0: none). The result is ``(ptr << 32) | len`` of a buffer
from the guest's ``alloc``: a little-endian ``u32`` *n*, *n* bytes of JSON
``{"status", "headers", "url", "redirected"}``, then the response body; or a
negative code: :data:`REFUSED`, :data:`LIMIT`, :data:`FAILED`,
:data:`NO_MEMORY`, :data:`INVALID`, each with the reason in the request's log.

When it runs: once per guest call, on the thread running the guest, with the
request's subrequests (:data:`~atoll.bindings.outbound.client.OUTBOUND`) set:
the worker's ``[outbound]`` policy and ``[limits]`` apply, and the subrequest
is in the request's tail event. The call blocks the guest's thread while the
subrequest runs on atoll's outbound thread (its own event loop), at most
``subrequest_timeout_s`` per step; the guest's thread uses no CPU meanwhile.
Only guest faults (a bad pointer, no ``alloc`` export, a call outside a
request) trap.
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import struct
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, Final, NoReturn, TypeVar

from atoll.bindings.outbound.client import OUTBOUND, Subrequests
from atoll.errors import EgressRefusedError, GuestTrapError, SubrequestError, SubrequestLimitError
from atoll.runtime.backend.auto import BACKEND
from atoll.runtime.hostfuncs import CURRENT, HostFunction, fail, memory_view
from atoll.runtime.signature import Signature

if TYPE_CHECKING:
    import wasmtime
else:  # its Trap and Func, imported on first use (the native backend runs without it)
    from atoll.runtime.lazy import wasmtime

__all__ = ["FAILED", "INVALID", "LIMIT", "MODULE", "NO_MEMORY", "REFUSED"]

MODULE: Final = "atoll:http"

REFUSED: Final = -1
"""The worker's ``[outbound]`` policy refused the URL, a redirect, or the address."""
LIMIT: Final = -2
"""The request already made its ``[limits] subrequests``."""
FAILED: Final = -3
"""Network failure, timeout, DNS, a body over ``subrequest_response_mb``, too many redirects."""
NO_MEMORY: Final = -4
"""The guest's ``alloc`` returned 0."""
INVALID: Final = -5
"""The request JSON is not valid (not UTF-8 JSON, no ``url``, bad ``headers``)."""

#: Bytes of request JSON a guest may pass (headers included).
MAX_REQUEST_JSON: Final = 256 * 1024

_I32 = "i32"
_I64 = "i64"
_ALLOC_SIG = Signature(("i32",), ("i32",))
T = TypeVar("T")

#: How the backend calls a guest's ``alloc`` (once its type was checked).
_ALLOC = BACKEND.prepare("alloc", _ALLOC_SIG)


class _Loop:
    """atoll's outbound thread: one event loop that runs the subrequests of wasm guests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` there and wait for it (the calling thread blocks)."""
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(
                    target=loop.run_forever, name="atoll-outbound", daemon=True
                ).start()
                self._loop = loop
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result()


_LOOP: Final = _Loop()


class _Call:
    """One ``atoll:http.fetch`` call: the calling guest and its memory."""

    __slots__ = ("caller",)

    def __init__(self, caller: Any) -> None:
        self.caller = caller

    def trap(self, message: str, hint: str | None = None) -> NoReturn:
        fail(GuestTrapError(f"{MODULE}.fetch: {message}", hint=hint))
        raise AssertionError("unreachable: fail() raises")  # pragma: no cover

    def read(self, ptr: int, length: int, name: str) -> bytes:
        address, size = memory_view(self.caller)
        ptr &= 0xFFFFFFFF
        length &= 0xFFFFFFFF
        if not address or ptr + length > size:
            self.trap(
                f"{name} pointer/length {ptr}/{length} is outside the guest's memory"
                " (or it exports no 'memory')"
            )
        return ctypes.string_at(address + ptr, length)

    def give(self, data: bytes) -> int:
        """Copy ``data`` into a buffer of the guest's ``alloc``: ``(ptr << 32) | len``."""
        found = BACKEND.guest_function(self.caller, "alloc")
        if found is None:
            self.trap(
                "the guest exports no alloc(len) -> ptr, which atoll:http needs to return "
                "the response",
                hint="export alloc (see docs/outbound.md)",
            )
        sig, alloc = found
        if sig != _ALLOC_SIG:
            self.trap("the guest's alloc must be (len: i32) -> i32")
        size = len(data)
        try:
            result = BACKEND.call_back(self.caller, alloc, _ALLOC, size)
            ptr = int(result) & 0xFFFFFFFF
        except (wasmtime.Trap, wasmtime.WasmtimeError) as exc:
            self.trap(f"the guest's alloc({size}) failed: {str(exc).strip().splitlines()[-1]}")
        if ptr == 0:
            return NO_MEMORY
        address, memory_size = memory_view(self.caller)
        if not address or ptr + size > memory_size or ptr >= 1 << 31:
            self.trap(f"alloc({size}) returned {ptr}, outside the guest's memory (or over 2 GiB)")
        ctypes.memmove(address + ptr, data, size)
        return (ptr << 32) | size


def _request(call: _Call, r_ptr: int, r_len: int) -> dict[str, Any]:
    if r_len & 0xFFFFFFFF > MAX_REQUEST_JSON:
        raise ValueError(f"the request JSON is over {MAX_REQUEST_JSON} bytes")
    data = json.loads(call.read(r_ptr, r_len, "request").decode())
    if not isinstance(data, dict) or not isinstance(data.get("url"), str):
        raise ValueError('the request JSON must be an object with a "url" string')
    headers = data.get("headers", [])
    if not isinstance(headers, list) or not all(
        isinstance(h, list) and len(h) == 2 and all(isinstance(x, str) for x in h) for h in headers
    ):
        raise ValueError('"headers" must be a list of [name, value] strings')
    return data


async def _send(book: Subrequests, request: dict[str, Any], body: bytes | None) -> bytes:
    response, redirected = await book.send(
        str(request.get("method", "GET")),
        request["url"],
        [(k, v) for k, v in request.get("headers", [])],
        body,
        redirect=str(request.get("redirect", "follow")),
    )
    content = await book.read(response)
    head = json.dumps(
        {
            "status": response.status_code,
            "headers": [
                [k, v]
                for k, v in response.headers.multi_items()
                if k.lower() not in ("content-encoding", "content-length", "transfer-encoding")
            ],
            "url": str(response.url),
            "redirected": redirected,
        },
        separators=(",", ":"),
    ).encode()
    return struct.pack("<I", len(head)) + head + content


def _fetch(caller: Any, r_ptr: int, r_len: int, b_ptr: int, b_len: int) -> int:
    call = _Call(caller)
    invocation = CURRENT.get()
    book = OUTBOUND.get()
    if invocation is None or book is None:
        call.trap("called outside a request")
    try:
        try:
            request = _request(call, r_ptr, r_len)
        except (ValueError, UnicodeDecodeError) as exc:
            invocation.log(f"{MODULE}.fetch: invalid request: {exc}")
            return INVALID
        body = call.read(b_ptr, b_len, "body") if b_len & 0xFFFFFFFF else None
        try:
            data = _LOOP.run(_send(book, request, body))
        except EgressRefusedError:
            return REFUSED  # client.py logged the reason in the request's log
        except SubrequestLimitError:
            return LIMIT
        except SubrequestError:
            return FAILED  # logged too
        return call.give(data)
    except wasmtime.Trap:
        raise  # from fail(): recorded on the invocation
    except Exception as exc:
        call.trap(f"internal error: {type(exc).__name__}: {exc}")


def host_functions() -> list[HostFunction]:
    """The ``atoll:http`` host function, for the linker (``worker.Runtime`` wires it in;
    called once per runtime)."""
    return [
        HostFunction(
            MODULE,
            "fetch",
            (_I32,) * 4,
            (_I64,),
            _fetch,
            "fetch(req_ptr, req_len, body_ptr, body_len) -> i64: (ptr << 32) | len of"
            " [u32 LE n][n bytes of JSON head][body] in a buffer from the guest's alloc,"
            " or a negative error code (docs/outbound.md)",
        )
    ]
