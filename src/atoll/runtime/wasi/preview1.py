"""WASI preview 1 (``wasi_snapshot_preview1``), implemented by atoll.

Every function of the preview-1 ABI is provided, so any WASI program links;
what a guest may *do* is narrow:

* stdin: the request body (whole-wasm workers) or empty; stdout: captured in
  memory up to the response limit (or, for modules called from Python, sent
  to the request log); stderr: the request log, line by line;
* files: only folders the manifest grants, **read-only**, with paths resolved
  inside the grant (``..`` and symlinks that leave it are refused);
* clocks and random: real; ``poll_oneoff`` on clocks returns at once
  (no sleeping on a request's thread); sockets, signals, links, renames,
  writes to files: refused with the errno WASI defines.

Each function runs on the guest's thread with :data:`CURRENT` set to the
request. None raises into wasmtime except ``proc_exit`` (through
:func:`~atoll.runtime.hostfuncs.fail`), which ends the run.
"""

from __future__ import annotations

import os
import stat
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from atoll.errors import GuestError, GuestTrapError
from atoll.runtime.hostfuncs import CURRENT, I32, I64, HostFunction, check_cpu, fail
from atoll.runtime.wasi.context import (
    HOST_FILES,
    MAX_OPEN_FILES,
    GuestMemory,
    OpenFile,
    ProcExit,
    WasiContext,
)

if TYPE_CHECKING:
    import wasmtime
else:  # its Trap and Func, imported on first use (the native backend runs without it)
    from atoll.runtime.lazy import wasmtime

__all__ = [
    "IOV_MAX",
    "LOG_WRITE_MAX",
    "MAX_POLL",
    "MODULE",
    "OutputLimitError",
    "context_for",
    "host_functions",
]

MODULE = "wasi_snapshot_preview1"

# errno values (wasi_snapshot_preview1 `errno`)
SUCCESS, ACCES, BADF, EXIST, FAULT, INVAL, IO = 0, 2, 8, 20, 21, 28, 29
ISDIR, LOOP, MFILE, NAMETOOLONG, NFILE = 31, 32, 33, 37, 41
NOENT, NOSYS, NOTDIR, NOTEMPTY, NOTSUP = 44, 52, 54, 55, 58
PERM, ROFS, SPIPE, NOTCAPABLE = 63, 69, 70, 76

# What one call may ask of the host (docs/limits.md); past it the call returns an errno.
#: iovecs per fd_read/fd_pread/fd_write (POSIX's IOV_MAX on Linux): more is EINVAL.
IOV_MAX = 1024
#: Bytes one fd_write to the log (stderr) takes; the rest is a short write (the guest's
#: libc writes it with the next call, as it does for a pipe).
LOG_WRITE_MAX = 64 * 1024
#: Subscriptions per poll_oneoff: more is EINVAL.
MAX_POLL = 1024
#: Bytes of a path argument: longer is ENAMETOOLONG (Linux's PATH_MAX).
PATH_MAX = 4096
#: random_get fills guest memory this many bytes at a time, checking the CPU budget between.
RANDOM_CHUNK = 64 * 1024

# filetypes
FT_UNKNOWN, FT_CHAR, FT_DIR, FT_REG, FT_SYMLINK = 0, 2, 3, 4, 7
ALL_RIGHTS = (1 << 30) - 1
READ_RIGHTS = ALL_RIGHTS & ~(
    (1 << 6) | (1 << 8) | (1 << 9) | (1 << 10) | (1 << 19) | (1 << 22) | (1 << 26) | (1 << 25)
)
O_CREAT, O_DIRECTORY, O_EXCL, O_TRUNC = 1, 2, 4, 8
FD_APPEND = 1


class OutputLimitError(GuestError):
    """A whole-wasm worker wrote more than the response limit to stdout (502)."""

    outcome = "exception"
    status = 502


def context_for(caller: wasmtime.Caller) -> WasiContext:
    """The WASI context of the current request (a quiet default for Python-called modules)."""
    invocation = CURRENT.get()
    if invocation is None:  # pragma: no cover - wasm only runs inside requests
        return WasiContext(stdout_to_log=True)
    return invocation.wasi_context()


def _to_log(context: WasiContext, mem: GuestMemory, vecs: list[tuple[int, int]]) -> int:
    """Send at most :data:`LOG_WRITE_MAX` bytes of ``vecs`` to the request's log; return
    how many (a short write when there are more)."""
    invocation = CURRENT.get()
    log = invocation.log_book if invocation is not None else None
    taken = 0
    for ptr, length in vecs:
        n = min(length, LOG_WRITE_MAX - taken)
        if n:
            context.log_output(bytes(mem.view[ptr : ptr + n]), log)
        taken += n
        if taken >= LOG_WRITE_MAX:
            break
    return taken


# -- args and environment ---------------------------------------------------


def _sizes(items: list[bytes], mem: GuestMemory, count_ptr: int, size_ptr: int) -> int:
    mem.check(count_ptr, 4)  # both pointers first: a fault writes nothing
    mem.check(size_ptr, 4)
    mem.set_u32(count_ptr, len(items))
    mem.set_u32(size_ptr, sum(len(i) for i in items))
    return SUCCESS


def _fill(items: list[bytes], mem: GuestMemory, ptrs: int, buf: int) -> int:
    """Write the pointer array and the strings with one copy each."""
    offsets = []
    at = buf
    for item in items:
        offsets.append(at)
        at += len(item)
    mem.check(ptrs, 4 * len(items))  # both areas first: a fault writes nothing
    mem.check(buf, at - buf)
    mem.write(ptrs, struct.pack(f"<{len(items)}I", *offsets))
    mem.write(buf, b"".join(items))
    return SUCCESS


def args_sizes_get(caller: wasmtime.Caller, count: int, size: int) -> int:
    return _sizes(context_for(caller).arg_block(), GuestMemory(caller), count, size)


def args_get(caller: wasmtime.Caller, ptrs: int, buf: int) -> int:
    return _fill(context_for(caller).arg_block(), GuestMemory(caller), ptrs, buf)


def environ_sizes_get(caller: wasmtime.Caller, count: int, size: int) -> int:
    return _sizes(context_for(caller).env_block(), GuestMemory(caller), count, size)


def environ_get(caller: wasmtime.Caller, ptrs: int, buf: int) -> int:
    return _fill(context_for(caller).env_block(), GuestMemory(caller), ptrs, buf)


# -- clocks, random, scheduling, process ------------------------------------

_CLOCKS: dict[int, Callable[[], int]] = {
    0: time.time_ns,
    1: time.monotonic_ns,
    2: time.process_time_ns,
    3: time.thread_time_ns,
}


def clock_res_get(caller: wasmtime.Caller, clock: int, out: int) -> int:
    if clock not in _CLOCKS:
        return INVAL
    GuestMemory(caller).set_u64(out, 1000)
    return SUCCESS


def clock_time_get(caller: wasmtime.Caller, clock: int, precision: int, out: int) -> int:
    now = _CLOCKS.get(clock)
    if now is None:
        return INVAL
    GuestMemory(caller).set_u64(out, now())
    return SUCCESS


def random_get(caller: wasmtime.Caller, buf: int, length: int) -> int:
    mem = GuestMemory(caller)
    mem.check(buf, length)  # before asking the OS for the bytes
    for at in range(buf, buf + length, RANDOM_CHUNK):
        if at != buf:
            check_cpu(caller, f"{MODULE}.random_get")
        n = min(RANDOM_CHUNK, buf + length - at)
        mem.view[at : at + n] = os.urandom(n)
    return SUCCESS


def sched_yield(caller: wasmtime.Caller) -> int:
    return SUCCESS


def poll_oneoff(caller: wasmtime.Caller, subs: int, events: int, count: int, nevents: int) -> int:
    """Every clock subscription fires at once; fd subscriptions report ready (stdin is in memory)."""
    if count > MAX_POLL:
        return INVAL
    mem = GuestMemory(caller)
    raw = mem.read(subs, 48 * count)
    out = bytearray()
    for i in range(count):
        userdata, tag = struct.unpack_from("<QB", raw, 48 * i)
        # event: userdata u64, error u16, type u8, fd_readwrite { nbytes u64, flags u16 }
        out += struct.pack("<QHBxxxxxQHxxxxxx", userdata, SUCCESS, tag, 0, 0)
    mem.write(events, bytes(out))
    mem.set_u32(nevents, count)
    return SUCCESS


def proc_exit(caller: wasmtime.Caller, code: int) -> None:
    context = context_for(caller)
    context.exit_code = code
    fail(ProcExit(code))


def proc_raise(caller: wasmtime.Caller, sig: int) -> int:
    return NOSYS


# -- file descriptors -------------------------------------------------------


def fd_write(caller: wasmtime.Caller, fd: int, iovs: int, count: int, nwritten: int) -> int:
    if count > IOV_MAX:
        return INVAL
    context = context_for(caller)
    mem = GuestMemory(caller)
    mem.check(nwritten, 4)  # every pointer first: a fault writes nothing
    vecs = mem.iovecs(iovs, count)
    for ptr, length in vecs:
        mem.check(ptr, length)
    if fd == 1 and not context.stdout_to_log:
        written = sum(length for _, length in vecs)
        if context.stdout_size() + written > context.stdout_limit:  # before copying
            fail(
                OutputLimitError(
                    f"the guest wrote more than {context.stdout_limit} bytes to stdout "
                    "(the response limit)",
                    hint="raise [limits] response_mb, or send less",
                )
            )
        context.write_stdout(b"".join(mem.view[ptr : ptr + length] for ptr, length in vecs))
    elif fd == 2 and context.stderr_capture is not None:
        written = sum(length for _, length in vecs)
        if len(context.stderr_capture) + written > context.stdout_limit:  # before copying
            fail(
                OutputLimitError(
                    f"the guest wrote more than {context.stdout_limit} bytes to stderr",
                    hint="raise [limits] response_mb, or write less",
                )
            )
        context.stderr_capture += b"".join(mem.view[ptr : ptr + length] for ptr, length in vecs)
    elif fd in (1, 2):
        written = _to_log(context, mem, vecs)
    elif fd in context.files:
        return ROFS if not context.files[fd].is_dir else ISDIR
    else:
        return BADF
    mem.set_u32(nwritten, written)
    return SUCCESS


def _read_into(
    caller: wasmtime.Caller,
    mem: GuestMemory,
    iovs: int,
    count: int,
    fill: Callable[[memoryview], int],
) -> int:
    """Fill the iovecs in turn (``fill(buffer) -> bytes put there``) up to a short one."""
    total = 0
    for i, (ptr, length) in enumerate(mem.iovecs(iovs, count)):
        mem.check(ptr, length)  # before taking the bytes from their source
        if i:
            check_cpu(caller, f"{MODULE}.fd_read")
        n = fill(mem.view[ptr : ptr + length])
        total += n
        if n < length:
            break
    return total


def fd_read(caller: wasmtime.Caller, fd: int, iovs: int, count: int, nread: int) -> int:
    if count > IOV_MAX:
        return INVAL
    context = context_for(caller)
    mem = GuestMemory(caller)
    if fd == 0:

        def from_stdin(buffer: memoryview) -> int:
            chunk = context.read_stdin(len(buffer))
            buffer[: len(chunk)] = chunk
            return len(chunk)

        mem.check(nread, 4)  # before consuming stdin
        mem.set_u32(nread, _read_into(caller, mem, iovs, count, from_stdin))
        return SUCCESS
    entry = context.files.get(fd)
    if entry is None or fd in (1, 2):
        return BADF
    if entry.is_dir or entry.os_fd is None:
        return ISDIR
    os_fd = entry.os_fd

    def pread(buffer: memoryview) -> int:
        n = os.preadv(os_fd, [buffer], entry.position)  # straight into guest memory
        entry.position += n
        return n

    mem.set_u32(nread, _read_into(caller, mem, iovs, count, pread))
    return SUCCESS


def fd_pread(
    caller: wasmtime.Caller, fd: int, iovs: int, count: int, offset: int, nread: int
) -> int:
    if count > IOV_MAX:
        return INVAL
    context = context_for(caller)
    entry = context.files.get(fd)
    if entry is None or entry.os_fd is None:
        return BADF if entry is None else ISDIR
    mem = GuestMemory(caller)
    os_fd, pos = entry.os_fd, offset

    def pread(buffer: memoryview) -> int:
        nonlocal pos
        n = os.preadv(os_fd, [buffer], pos)
        pos += n
        return n

    mem.set_u32(nread, _read_into(caller, mem, iovs, count, pread))
    return SUCCESS


def fd_seek(caller: wasmtime.Caller, fd: int, offset: int, whence: int, out: int) -> int:
    context = context_for(caller)
    entry = context.files.get(fd)
    if fd in (0, 1, 2):
        return SPIPE
    if entry is None:
        return BADF
    if entry.os_fd is None:
        return ISDIR
    size = os.fstat(entry.os_fd).st_size
    base = {0: 0, 1: entry.position, 2: size}.get(whence)
    if base is None or base + offset < 0:
        return INVAL
    entry.position = base + offset
    GuestMemory(caller).set_u64(out, entry.position)
    return SUCCESS


def fd_tell(caller: wasmtime.Caller, fd: int, out: int) -> int:
    entry = context_for(caller).files.get(fd)
    if entry is None:
        return SPIPE if fd in (0, 1, 2) else BADF
    GuestMemory(caller).set_u64(out, entry.position)
    return SUCCESS


def fd_close(caller: wasmtime.Caller, fd: int) -> int:
    context = context_for(caller)
    if fd in (0, 1, 2):
        return SUCCESS
    entry = context.files.get(fd)
    if entry is None or entry.preopen:
        return BADF if entry is None else NOTSUP
    context.close_entry(fd)
    return SUCCESS


def fd_fdstat_get(caller: wasmtime.Caller, fd: int, out: int) -> int:
    context = context_for(caller)
    if fd in (0, 1, 2):
        filetype, rights = FT_CHAR, ALL_RIGHTS if fd else READ_RIGHTS
        flags = FD_APPEND if fd else 0
    else:
        entry = context.files.get(fd)
        if entry is None:
            return BADF
        filetype = FT_DIR if entry.is_dir else FT_REG
        rights, flags = READ_RIGHTS, 0
    GuestMemory(caller).write(out, struct.pack("<BxHxxxxQQ", filetype, flags, rights, READ_RIGHTS))
    return SUCCESS


def fd_prestat_get(caller: wasmtime.Caller, fd: int, out: int) -> int:
    entry = context_for(caller).files.get(fd)
    if entry is None or not entry.preopen:
        return BADF
    GuestMemory(caller).write(out, struct.pack("<BxxxI", 0, len(entry.grant.guest.encode())))
    return SUCCESS


def fd_prestat_dir_name(caller: wasmtime.Caller, fd: int, path: int, length: int) -> int:
    entry = context_for(caller).files.get(fd)
    if entry is None or not entry.preopen:
        return BADF
    name = entry.grant.guest.encode()
    if length < len(name):
        return NAMETOOLONG
    GuestMemory(caller).write(path, name)
    return SUCCESS


def _filestat(st: os.stat_result) -> bytes:
    filetype = (
        FT_DIR if stat.S_ISDIR(st.st_mode) else FT_REG if stat.S_ISREG(st.st_mode) else FT_UNKNOWN
    )
    return struct.pack(
        "<QQBxxxxxxxQQQQQ",
        st.st_dev,
        st.st_ino,
        filetype,
        st.st_nlink,
        st.st_size,
        st.st_atime_ns,
        st.st_mtime_ns,
        st.st_ctime_ns,
    )


def fd_filestat_get(caller: wasmtime.Caller, fd: int, out: int) -> int:
    context = context_for(caller)
    mem = GuestMemory(caller)
    if fd in (0, 1, 2):
        mem.write(out, struct.pack("<QQBxxxxxxxQQQQQ", 0, 0, FT_CHAR, 1, 0, 0, 0, 0))
        return SUCCESS
    entry = context.files.get(fd)
    if entry is None:
        return BADF
    st = os.fstat(entry.os_fd) if entry.os_fd is not None else entry.host.stat()
    mem.write(out, _filestat(st))
    return SUCCESS


def fd_readdir(
    caller: wasmtime.Caller, fd: int, buf: int, length: int, cookie: int, used: int
) -> int:
    entry = context_for(caller).files.get(fd)
    if entry is None:
        return BADF
    if not entry.is_dir:
        return NOTDIR
    names = [".", "..", *sorted(os.listdir(entry.host))]
    out = bytearray()
    for index in range(cookie, len(names)):
        name = names[index]
        path = entry.host / name
        try:
            st = path.lstat()
            kind = (
                FT_DIR
                if stat.S_ISDIR(st.st_mode)
                else FT_SYMLINK
                if stat.S_ISLNK(st.st_mode)
                else FT_REG
            )
            ino = st.st_ino
        except OSError:
            kind, ino = FT_UNKNOWN, 0
        raw = name.encode()
        out += struct.pack("<QQIBxxx", index + 1, ino, len(raw), kind) + raw
        if len(out) >= length:
            break
    data = bytes(out[:length])
    mem = GuestMemory(caller)
    mem.write(buf, data)
    mem.set_u32(used, len(data))
    return SUCCESS


# -- paths (inside a granted folder, read-only) ------------------------------


def _resolve(context: WasiContext, fd: int, path: str) -> str | int:
    """The real host path of ``path`` relative to dir ``fd``, or an errno if it leaves the
    grant. Strings, not ``pathlib`` (a guest may call this in a loop: each call runs
    under the GIL): ``..`` is applied to the guest's path, then the result's real path
    (every symlink followed) must be inside the grant's real path."""
    entry = context.files.get(fd)
    if entry is None:
        return BADF
    if not entry.is_dir:
        return NOTDIR
    if path.startswith("/") or "\0" in path:
        return NOTCAPABLE
    root = context.grant_root(entry.grant)
    # a folder the guest opened is kept as its real path inside the grant
    parts = [] if entry.preopen else os.path.relpath(entry.host, root).split("/")
    if parts == ["."]:  # the grant's folder itself, opened again
        parts = []
    for part in path.split("/"):
        if part == "..":
            if not parts:
                return NOTCAPABLE
            parts.pop()
        elif part and part != ".":
            parts.append(part)
    real = _real_below(root, parts)
    if real != root and not real.startswith(root.rstrip("/") + "/"):
        return NOTCAPABLE
    return real


def _real_below(root: str, parts: list[str]) -> str:
    """``os.path.realpath(os.path.join(root, *parts))`` for a ``root`` that is a real path
    already: only the components below it are looked at (one ``lstat`` each), and
    ``realpath`` does the rest from the first one that is not a plain folder or file."""
    current = root
    for i, part in enumerate(parts):
        if part == "..":
            return os.path.realpath(os.path.join(current, *parts[i:]))
        candidate = os.path.join(current, part)
        try:
            link = stat.S_ISLNK(os.lstat(candidate).st_mode)
        except OSError:  # missing (or not a folder): realpath keeps the rest as written
            link = True
        if link:
            return os.path.realpath(os.path.join(current, *parts[i:]))
        current = candidate
    return current


class _PathTooLong(Exception):
    """A path argument over :data:`PATH_MAX` bytes (ENAMETOOLONG, nothing read)."""


def _path_arg(caller: wasmtime.Caller, ptr: int, length: int) -> str:
    if length > PATH_MAX:
        raise _PathTooLong
    return GuestMemory(caller).read(ptr, length).decode("utf-8", errors="surrogateescape")


def path_open(
    caller: wasmtime.Caller,
    fd: int,
    dirflags: int,
    path: int,
    path_len: int,
    oflags: int,
    rights: int,
    inheriting: int,
    fdflags: int,
    out: int,
) -> int:
    context = context_for(caller)
    if context.open_count() >= MAX_OPEN_FILES and fd in context.files:
        return MFILE  # this request's guests hold as many as one may (first, as open(2))
    target = _resolve(context, fd, _path_arg(caller, path, path_len))
    if isinstance(target, int):
        return target
    if oflags & (O_CREAT | O_TRUNC | O_EXCL) or fdflags & FD_APPEND:
        return ROFS
    if rights & ((1 << 6) | (1 << 8) | (1 << 22)):  # fd_write, fd_allocate, set_size
        return ROFS
    grant = context.files[fd].grant
    try:
        is_dir = stat.S_ISDIR(os.stat(target).st_mode)
    except OSError:
        return NOENT
    if is_dir:
        new = OpenFile(Path(target), grant, is_dir=True)
    elif oflags & O_DIRECTORY:
        return NOTDIR
    else:
        if not HOST_FILES.take():
            return NFILE  # the guests of all requests hold the process's share
        try:
            os_fd = os.open(target, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except PermissionError:
            HOST_FILES.give()
            return ACCES
        except OSError:
            HOST_FILES.give()
            return IO
        new = OpenFile(Path(target), grant, is_dir=False, os_fd=os_fd)
    GuestMemory(caller).set_u32(out, context.add(new))
    return SUCCESS


def path_filestat_get(
    caller: wasmtime.Caller, fd: int, flags: int, path: int, length: int, out: int
) -> int:
    target = _resolve(context_for(caller), fd, _path_arg(caller, path, length))
    if isinstance(target, int):
        return target
    try:
        st = os.stat(target)
    except FileNotFoundError:
        return NOENT
    GuestMemory(caller).write(out, _filestat(st))
    return SUCCESS


def path_readlink(
    caller: wasmtime.Caller, fd: int, path: int, length: int, buf: int, buf_len: int, used: int
) -> int:
    return INVAL  # grants resolve links on the host side; the guest sees no symlinks


# -- the rest: refused with the errno WASI defines ---------------------------


def _refuse(errno: int) -> Callable[..., int]:
    def refuse(caller: wasmtime.Caller, *args: Any) -> int:
        return errno

    return refuse


_SIGS: dict[str, tuple[str, Callable[..., Any]]] = {
    "args_get": ("ii>i", args_get),
    "args_sizes_get": ("ii>i", args_sizes_get),
    "environ_get": ("ii>i", environ_get),
    "environ_sizes_get": ("ii>i", environ_sizes_get),
    "clock_res_get": ("ii>i", clock_res_get),
    "clock_time_get": ("iIi>i", clock_time_get),
    "fd_advise": ("iIIi>i", _refuse(SUCCESS)),
    "fd_allocate": ("iII>i", _refuse(ROFS)),
    "fd_close": ("i>i", fd_close),
    "fd_datasync": ("i>i", _refuse(SUCCESS)),
    "fd_fdstat_get": ("ii>i", fd_fdstat_get),
    "fd_fdstat_set_flags": ("ii>i", _refuse(NOTSUP)),
    "fd_fdstat_set_rights": ("iII>i", _refuse(NOTSUP)),
    "fd_filestat_get": ("ii>i", fd_filestat_get),
    "fd_filestat_set_size": ("iI>i", _refuse(ROFS)),
    "fd_filestat_set_times": ("iIIi>i", _refuse(ROFS)),
    "fd_pread": ("iiiIi>i", fd_pread),
    "fd_prestat_get": ("ii>i", fd_prestat_get),
    "fd_prestat_dir_name": ("iii>i", fd_prestat_dir_name),
    "fd_pwrite": ("iiiIi>i", _refuse(ROFS)),
    "fd_read": ("iiii>i", fd_read),
    "fd_readdir": ("iiiIi>i", fd_readdir),
    "fd_renumber": ("ii>i", _refuse(NOTSUP)),
    "fd_seek": ("iIii>i", fd_seek),
    "fd_sync": ("i>i", _refuse(SUCCESS)),
    "fd_tell": ("ii>i", fd_tell),
    "fd_write": ("iiii>i", fd_write),
    "path_create_directory": ("iii>i", _refuse(ROFS)),
    "path_filestat_get": ("iiiii>i", path_filestat_get),
    "path_filestat_set_times": ("iiiiIIi>i", _refuse(ROFS)),
    "path_link": ("iiiiiii>i", _refuse(ROFS)),
    "path_open": ("iiiiiIIii>i", path_open),
    "path_readlink": ("iiiiii>i", path_readlink),
    "path_remove_directory": ("iii>i", _refuse(ROFS)),
    "path_rename": ("iiiiii>i", _refuse(ROFS)),
    "path_symlink": ("iiiii>i", _refuse(ROFS)),
    "path_unlink_file": ("iii>i", _refuse(ROFS)),
    "poll_oneoff": ("iiii>i", poll_oneoff),
    "proc_exit": ("i>", proc_exit),
    "proc_raise": ("i>i", proc_raise),
    "random_get": ("ii>i", random_get),
    "sched_yield": (">i", sched_yield),
    "sock_accept": ("iii>i", _refuse(NOTSUP)),
    "sock_recv": ("iiiiii>i", _refuse(NOTSUP)),
    "sock_send": ("iiiii>i", _refuse(NOTSUP)),
    "sock_shutdown": ("ii>i", _refuse(NOTSUP)),
}

_TYPES = {"i": I32, "I": I64}


def _guarded(name: str, impl: Callable[..., Any]) -> Callable[..., Any]:
    """Host errors become errno or a recorded trap, never an exception into wasmtime."""

    def call(caller: wasmtime.Caller, *args: Any) -> Any:
        try:
            return impl(caller, *args)
        except (IndexError, struct.error):
            return FAULT
        except _PathTooLong:
            return NAMETOOLONG
        except OSError:
            return IO
        except wasmtime.Trap:
            raise  # from fail(): already recorded on the invocation
        except Exception as exc:
            return fail(GuestTrapError(f"{MODULE}.{name} failed in the host: {exc!r}"))

    return call


def host_functions() -> list[HostFunction]:
    """Every ``wasi_snapshot_preview1`` function atoll provides, for the linker
    (``worker.Runtime`` wires them in; called once per runtime)."""
    functions = []
    for name, (sig, impl) in _SIGS.items():
        params, results = sig.split(">")
        functions.append(
            HostFunction(
                MODULE,
                name,
                tuple(_TYPES[c] for c in params),
                tuple(_TYPES[c] for c in results),
                _guarded(name, impl),
                f"WASI preview 1 {name}",
            )
        )
    return functions
