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
import resource
import struct
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from atoll.runtime.logs import MAX_LOG_LINE, RequestLog
from atoll.runtime.memory import memory_view

if TYPE_CHECKING:
    from atoll.manifest import Manifest

__all__ = [
    "HOST_FILES",
    "MAX_OPEN_FILES",
    "DirGrant",
    "GuestMemory",
    "HostFiles",
    "OpenFile",
    "ProcExit",
    "WasiContext",
    "wasi_grants",
]

#: Entries a request's guests may hold in their fd table beyond stdio and the granted
#: folders (open files and folders); ``path_open`` past it returns ``EMFILE``.
MAX_OPEN_FILES = 64


class HostFiles:
    """The host file descriptors WASI guests hold in this process, bounded.

    ``limit`` defaults to a quarter of the process's open-file limit
    (``RLIMIT_NOFILE``), so guests together can never take the descriptors the
    server needs for its connections; ``path_open`` past it returns ``ENFILE``.
    Shared by every thread running guests.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0
        self._lock = threading.Lock()

    def take(self) -> bool:
        """Count one more descriptor if the limit allows (before opening it)."""
        with self._lock:
            if self.held >= self.limit:
                return False
            self.held += 1
            return True

    def give(self) -> None:
        """A descriptor counted by :meth:`take` was closed (or never opened)."""
        with self._lock:
            self.held -= 1


def _process_limit() -> int:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft <= 0:
        soft = 4096
    return max(16, soft // 4)


#: The process's count of host descriptors held by guests.
HOST_FILES = HostFiles(_process_limit())


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
    #: The line being written to the log (stderr; stdout too with ``stdout_to_log``),
    #: at most ``MAX_LOG_LINE`` bytes; ``stderr_cut``: bytes of it dropped past that.
    stderr: bytearray = field(default_factory=bytearray)
    stderr_cut: int = 0
    #: When set, stderr is kept here (up to ``stdout_limit`` bytes) instead of going to
    #: the log: a program run as a function returns it (``atoll.runtime.program``).
    stderr_capture: bytearray | None = None
    exit_code: int | None = None
    files: dict[int, OpenFile] = field(default_factory=dict)
    next_fd: int = 3
    _env_block: list[bytes] | None = None
    _roots: dict[DirGrant, str] = field(default_factory=dict)
    _arg_block: list[bytes] | None = None
    #: ``capi.Stdio`` once :meth:`serve_stdio_in_c` ran: stdin, stdout, argv and the
    #: environment then live there, and the common WASI calls are served in C.
    native: Any = None

    def __post_init__(self) -> None:
        for grant in self.dirs:
            self.files[self.next_fd] = OpenFile(grant.host, grant, is_dir=True, preopen=True)
            self.next_fd += 1

    def serve_stdio_in_c(self, stdio_type: Any, log: Any = None) -> Any:
        """Move stdin/stdout state into a ``stdio_type`` (``capi.Stdio``) and return it
        (``None``, leaving everything to Python, if an argument or variable holds a NUL).

        Attach it to the store's meter (``meter.stdio``) so the guest's argv,
        environ, stdin, stdout, fdstat, prestat, clock, random and proc_exit
        calls run in C; the Python functions keep working on the same state.
        ``log``: the request's ``capi.LogBook``, to which stderr then goes in C as
        well, line by line (unless stderr is captured). For a ``stdout_to_log`` context
        (a request's default one) the Stdio is not the meter's: C finds it through the
        invocation, writes stdout to the log like stderr, and leaves ``proc_exit`` to
        Python.
        """
        if self.stdout or self.stdin_pos:
            raise ValueError("serve_stdio_in_c: call it before the guest runs")
        args = "\0".join(self.args) + "\0" if self.args else ""
        env = "\0".join(map("=".join, self.env.items())) + "\0" if self.env else ""
        if args.count("\0") != len(self.args) or env.count("\0") != len(self.env):
            return None  # a NUL inside an entry (a URL with %00): Python serves it all
        self.native = stdio_type(
            args.encode(),
            env.encode(),
            self.stdin,
            self.stdout_limit,
            bool(self.dirs),
            log if self.stderr_capture is None else None,
        )
        return self.native

    def stdout_size(self) -> int:
        return self.native.stdout_size if self.native is not None else len(self.stdout)

    def write_stdout(self, data: bytes) -> None:
        if self.native is not None:
            self.native.write_stdout(data)
        else:
            self.stdout += data

    def stdout_bytes(self) -> bytes:
        return self.native.stdout() if self.native is not None else bytes(self.stdout)

    def read_stdin(self, n: int) -> bytes:
        if self.native is not None:
            chunk: bytes = self.native.read_stdin(n)
            return chunk
        chunk = self.stdin[self.stdin_pos : self.stdin_pos + n]
        self.stdin_pos += len(chunk)
        return chunk

    def log_output(self, data: bytes, log: RequestLog | None) -> None:
        """Add ``data`` (a guest's stderr, or stdout sent to the log) to the request's log,
        line by line: a line is kept up to ``MAX_LOG_LINE`` bytes, the rest of it counted
        as dropped; once the log is full, lines are only counted. (With stderr served in
        C, the C writer does this, on its own state: see :meth:`serve_stdio_in_c`.)"""
        if self.native is not None and self.native.log is not None:
            self.native.log_output(data)
            return
        pending = self.stderr
        if log is not None and log.full():
            log.drop(data.count(b"\n"), len(data) + len(pending) + self.stderr_cut)
            pending.clear()
            self.stderr_cut = 0
            return
        start = 0
        while True:
            cut = data.find(b"\n", start)
            end = len(data) if cut < 0 else cut
            room = MAX_LOG_LINE - len(pending)
            if end - start <= room:
                pending += data[start:end]
            else:
                pending += data[start : start + max(room, 0)]
                self.stderr_cut += end - start - max(room, 0)
            if cut < 0:
                return
            self.flush_log(log)
            start = cut + 1

    def flush_log(self, log: RequestLog | None) -> None:
        """Log the line written so far (at a newline, and when the request ends)."""
        if self.native is not None and self.native.log is not None:
            self.native.flush_log()
            return
        line = self.stderr.decode("utf-8", errors="replace")
        if self.stderr_cut:
            line += f"… (cut at {MAX_LOG_LINE} bytes; {self.stderr_cut} more dropped)"
            if log is not None:
                log.drop(0, self.stderr_cut)
        self.stderr.clear()
        self.stderr_cut = 0
        if log is not None:
            log.add(line, cut=False)  # at most MAX_LOG_LINE bytes, and the note

    def grant_root(self, grant: DirGrant) -> str:
        """The real path of ``grant``'s host folder (symlinks followed), looked up once
        per context: what every path a guest opens in it must stay inside."""
        root = self._roots.get(grant)
        if root is None:
            root = self._roots[grant] = os.path.realpath(grant.host)
        return root

    def stderr_line(self) -> tuple[bytes, int]:
        """The line being written to the log and not logged yet: (its bytes kept, bytes of
        it dropped past ``MAX_LOG_LINE``)."""
        if self.native is not None and self.native.log is not None:
            return self.native.stderr_line(), int(self.native.stderr_cut)
        return bytes(self.stderr), self.stderr_cut

    def has_partial_line(self) -> bool:
        """A line was written to the log without its newline (flush it when the run ends)."""
        kept, cut = self.stderr_line()
        return bool(kept or cut)

    def open_count(self) -> int:
        """Entries of the fd table the guest opened (not stdio, not the granted folders)."""
        return len(self.files) - len(self.dirs)

    def add(self, entry: OpenFile) -> int:
        fd = self.next_fd
        self.next_fd += 1
        self.files[fd] = entry
        return fd

    def close_entry(self, fd: int) -> None:
        """Drop ``fd`` from the table and close its host file, if any."""
        entry = self.files.pop(fd)
        if entry.os_fd is not None:
            os_fd, entry.os_fd = entry.os_fd, None
            HOST_FILES.give()
            os.close(os_fd)

    def close(self) -> None:
        """Close every host file the guest left open (when the request ends; idempotent)."""
        for fd in list(self.files):
            self.close_entry(fd)

    def env_block(self) -> list[bytes]:
        """``KEY=value\\0`` for each variable (built once; the environment is fixed per run)."""
        if self._env_block is None:
            self._env_block = [f"{k}={v}\0".encode() for k, v in self.env.items()]
        return self._env_block

    def arg_block(self) -> list[bytes]:
        if self._arg_block is None:
            self._arg_block = [f"{a}\0".encode() for a in self.args]
        return self._arg_block


_from_memory = ctypes.pythonapi.PyMemoryView_FromMemory
_from_memory.restype = ctypes.py_object
_from_memory.argtypes = (ctypes.c_void_p, ctypes.c_ssize_t, ctypes.c_int)
_PYBUF_WRITE = 0x200


class GuestMemory:
    """Bounds-checked access to the calling guest's ``memory`` for one host call.

    A ``memoryview`` straight over the guest's linear memory: reads, writes and
    ``struct`` packing run at C speed. Valid only during the host call (the
    memory may move when the guest grows it).
    """

    __slots__ = ("size", "view")

    def __init__(self, caller: Any) -> None:
        base, self.size = memory_view(caller)
        if not base:
            raise MemoryError("the guest exports no memory named 'memory'")
        self.view: memoryview = _from_memory(base, self.size, _PYBUF_WRITE)

    def check(self, ptr: int, length: int) -> int:
        if ptr < 0 or length < 0 or ptr + length > self.size:
            raise IndexError(f"guest buffer {ptr}+{length} outside memory of {self.size}")
        return ptr

    def read(self, ptr: int, length: int) -> bytes:
        self.check(ptr, length)
        return bytes(self.view[ptr : ptr + length])

    def write(self, ptr: int, data: bytes) -> None:
        self.check(ptr, len(data))
        self.view[ptr : ptr + len(data)] = data

    def u32(self, ptr: int) -> int:
        self.check(ptr, 4)
        value: int = struct.unpack_from("<I", self.view, ptr)[0]
        return value

    def set_u32(self, ptr: int, value: int) -> None:
        self.check(ptr, 4)
        struct.pack_into("<I", self.view, ptr, value & 0xFFFFFFFF)

    def set_u64(self, ptr: int, value: int) -> None:
        self.check(ptr, 8)
        struct.pack_into("<Q", self.view, ptr, value & 0xFFFFFFFFFFFFFFFF)

    def iovecs(self, ptr: int, count: int) -> list[tuple[int, int]]:
        self.check(ptr, 8 * count)
        return [struct.unpack_from("<II", self.view, ptr + 8 * i) for i in range(count)]


def wasi_grants(manifest: Manifest) -> tuple[DirGrant, ...]:
    """The ``[wasi] dirs`` of a manifest as grants (resolved once per deploy)."""
    return tuple(
        DirGrant(manifest.resolve(folder), guest) for guest, folder in manifest.wasi.dirs.items()
    )
