"""One guest's WASI world: argv, environment, stdin, stdout, stderr, granted folders.

atoll implements WASI preview 1 itself (``preview1.py``) rather than using
wasmtime's: stdin and stdout stay in memory, the output limit is enforced at
the write that crosses it, stderr lines go to the request's log, and a guest
can never reach a WASI call without a context (wasmtime aborts the process
then). A :class:`WasiContext` is created per request for a whole-wasm worker;
modules called from Python get a quiet default (no stdin, output to the log).
"""

from __future__ import annotations

import ctypes
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from atoll.runtime.hostfuncs import memory_view

__all__ = ["DirGrant", "GuestMemory", "OpenFile", "ProcExit", "WasiContext"]


class ProcExit(Exception):
    """The guest called ``proc_exit(code)``: its run is over (code 0 is success)."""

    def __init__(self, code: int) -> None:
        super().__init__(f"proc_exit({code})")
        self.code = code


@dataclass(frozen=True)
class DirGrant:
    """A host folder the guest sees at ``guest`` (read-only)."""

    host: Path
    guest: str


@dataclass
class OpenFile:
    """An entry of the guest's fd table beyond stdio."""

    host: Path
    grant: DirGrant
    is_dir: bool
    os_fd: int | None = None  # an open host fd for regular files
    position: int = 0
    preopen: bool = False


@dataclass
class WasiContext:
    """argv, env, stdin, captured stdout/stderr and the fd table of one guest run.

    ``stdout_limit`` bounds the bytes a guest may write to stdout; the write
    that crosses it fails the run (see ``preview1.fd_write``).
    """

    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    stdin: bytes = b""
    stdout_limit: int = 32 * 1024 * 1024
    dirs: tuple[DirGrant, ...] = ()
    stdout_to_log: bool = False
    stdin_pos: int = 0
    stdout: bytearray = field(default_factory=bytearray)
    stderr: bytearray = field(default_factory=bytearray)
    exit_code: int | None = None
    files: dict[int, OpenFile] = field(default_factory=dict)
    next_fd: int = 3

    def __post_init__(self) -> None:
        for grant in self.dirs:
            self.files[self.next_fd] = OpenFile(grant.host, grant, is_dir=True, preopen=True)
            self.next_fd += 1

    def add(self, entry: OpenFile) -> int:
        fd = self.next_fd
        self.next_fd += 1
        self.files[fd] = entry
        return fd

    def close(self) -> None:
        """Close every host file the guest left open (called once, after the run)."""
        for entry in self.files.values():
            if entry.os_fd is not None:
                os.close(entry.os_fd)
                entry.os_fd = None
        self.files.clear()

    def env_block(self) -> list[bytes]:
        return [f"{k}={v}".encode() + b"\0" for k, v in self.env.items()]

    def arg_block(self) -> list[bytes]:
        return [a.encode() + b"\0" for a in self.args]


class GuestMemory:
    """Bounds-checked access to the calling guest's ``memory`` for one host call."""

    __slots__ = ("base", "size")

    def __init__(self, caller: Any) -> None:
        self.base, self.size = memory_view(caller)
        if not self.base:
            raise MemoryError("the guest exports no memory named 'memory'")

    def check(self, ptr: int, length: int) -> int:
        ptr &= 0xFFFFFFFF
        if ptr < 0 or length < 0 or ptr + length > self.size:
            raise IndexError(f"guest buffer {ptr}+{length} outside memory of {self.size}")
        return self.base + ptr

    def read(self, ptr: int, length: int) -> bytes:
        return ctypes.string_at(self.check(ptr, length), length)

    def write(self, ptr: int, data: bytes) -> None:
        ctypes.memmove(self.check(ptr, len(data)), data, len(data))

    def u32(self, ptr: int) -> int:
        value: int = struct.unpack("<I", self.read(ptr, 4))[0]
        return value

    def set_u32(self, ptr: int, value: int) -> None:
        self.write(ptr, struct.pack("<I", value & 0xFFFFFFFF))

    def set_u64(self, ptr: int, value: int) -> None:
        self.write(ptr, struct.pack("<Q", value & 0xFFFFFFFFFFFFFFFF))

    def iovecs(self, ptr: int, count: int) -> list[tuple[int, int]]:
        raw = self.read(ptr, 8 * count)
        return [struct.unpack_from("<II", raw, 8 * i) for i in range(count)]
