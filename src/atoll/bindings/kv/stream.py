"""Streams in and out of KV: ``get(key, type="stream")`` and ``put(key, stream)``.

Workers hands a ``ReadableStream`` for ``type: "stream"`` and accepts one as a
value. In Python a stream is an async iterable of ``bytes`` chunks:
:class:`KVStream` is what ``get`` returns (``async for chunk in stream``, or
``await stream.read()``), and :func:`read_value` turns whatever ``put`` is given
— a :class:`KVStream`, any async iterable of bytes or text chunks, or a binary
file object with ``read()`` — into bytes, refusing it as soon as it passes the
value limit (the rest is not read).

A value is at most 25 MiB and the store hands it over whole, so a
:class:`KVStream` is a view over bytes already read: it saves the caller a
copy, not memory.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from atoll.errors import KVError, KVLimitError

__all__ = ["CHUNK_BYTES", "KVStream", "is_stream", "read_value", "read_value_sync"]

#: Size of the chunks a :class:`KVStream` yields.
CHUNK_BYTES = 64 * 1024


class KVStream:
    """A value read with ``type="stream"``: iterate it (``bytes`` chunks) or ``await read()``.

    Read once, as a ``ReadableStream`` is: a second read raises :class:`KVError`.
    """

    __slots__ = ("_data", "_used")

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._used = False

    def _take(self) -> memoryview:
        if self._used:
            raise KVError("this KV stream was already read", hint="get the key again to re-read")
        self._used = True
        return memoryview(self._data)

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[bytes]:
        view = self._take()
        for start in range(0, len(view), CHUNK_BYTES):
            yield bytes(view[start : start + CHUNK_BYTES])

    async def read(self) -> bytes:
        """Every byte of the value."""
        self._take()
        return self._data

    def __repr__(self) -> str:
        return f"<KVStream {len(self._data)} bytes{' (read)' if self._used else ''}>"


def is_stream(value: object) -> bool:
    """True for what :func:`read_value` reads: async iterables and objects with ``read()``."""
    if isinstance(value, str | bytes | bytearray | memoryview):
        return False
    return hasattr(value, "__aiter__") or callable(getattr(value, "read", None))


def _chunk(piece: object, what: str) -> bytes:
    if isinstance(piece, bytes):
        return piece
    if isinstance(piece, bytearray | memoryview):
        return bytes(piece)
    if isinstance(piece, str):
        return piece.encode()
    raise KVError(f"{what}: a stream chunk must be bytes or str, not {type(piece).__name__}")


def _too_large(size: int, limit: int, what: str) -> KVLimitError:
    return KVLimitError(
        f"{what}: the streamed value passed {limit} bytes (25 MiB) at {size} bytes",
        hint="store large files elsewhere and keep their address in KV",
    )


async def read_value(value: Any, limit: int, what: str) -> bytes:
    """The bytes of a stream value, read until its end or until it passes ``limit``.

    Raises :class:`KVLimitError` past ``limit``, :class:`KVError` for a chunk
    that is not bytes or text.
    """
    if isinstance(value, KVStream):
        data = await value.read()
        if len(data) > limit:
            raise _too_large(len(data), limit, what)
        return data
    if not hasattr(value, "__aiter__"):
        return read_value_sync(value, limit, what)
    parts: list[bytes] = []
    size = 0
    async for piece in value:
        data = _chunk(piece, what)
        size += len(data)
        if size > limit:
            raise _too_large(size, limit, what)
        parts.append(data)
    return b"".join(parts)


def read_value_sync(value: Any, limit: int, what: str) -> bytes:
    """:func:`read_value` for a file object (``read(n)``), blocking; no async iterables."""
    read = getattr(value, "read", None)
    if isinstance(value, KVStream) or hasattr(value, "__aiter__") or not callable(read):
        raise KVError(f"{what}: an async stream cannot be written from a blocking call")
    data = _chunk(read(limit + 1), what)
    if len(data) > limit:
        raise _too_large(len(data), limit, what)
    return data
