"""wasmtime's shared library, as the native backend loads it: without wasmtime-py.

The native backend (``runtime/capi.py``, ``runtime/native_setup.py``) calls wasmtime's
C API in the ``_libwasmtime`` that the pinned wasmtime-py release ships, but does not
import the ``wasmtime`` package: its ``__init__`` declares every C function of
wasmtime with ctypes and wraps them (tens of milliseconds of every cold start, see
docs/benchmarks/coldstart.md). This module finds the package's folder without
running its ``__init__`` (``importlib.util.find_spec``), checks the installed
version, and opens the library with ``ctypes``. When wasmtime-py is imported later
(the public-API parts that still use it: traps and errors, references, memories of a
host call's caller), it opens the same file, which the dynamic loader maps once:
pointers pass freely between the two.

Importing this module raises ``ImportError`` when wasmtime is missing, is not
exactly :data:`WASMTIME_VERSION`, or has no library for this platform; the runtime
then uses the public backend.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

__all__ = ["DLL", "LIBRARY", "WASMTIME_VERSION", "address", "cfn", "installed_wasmtime_version"]

#: The wasmtime-py release whose private layouts ``_native`` declares (``native/module.h``).
WASMTIME_VERSION = "50.0.1"


def _package_dir() -> Path:
    spec = importlib.util.find_spec("wasmtime")
    if spec is None or spec.origin is None:
        raise ImportError("wasmtime (wasmtime-py) is not installed")
    return Path(spec.origin).resolve().parent


def installed_wasmtime_version() -> str:
    """The installed wasmtime's version, read from its ``.dist-info`` folder.

    The same answer as ``importlib.metadata.version("wasmtime")`` without
    importing ``importlib.metadata`` (slow to import, and on every cold start)
    or wasmtime itself.
    """
    site = _package_dir().parent
    for info in site.glob("wasmtime-*.dist-info"):
        return info.name[len("wasmtime-") : -len(".dist-info")]
    import importlib.metadata  # an unusual install layout: ask the slow way

    return importlib.metadata.version("wasmtime")


def _library() -> Path:
    """Where wasmtime-py keeps its library (the rule of its ``_ffi.py``)."""
    machine = {"AMD64": "x86_64", "arm64": "aarch64", "ARM64": "aarch64"}.get(
        os.uname().machine, os.uname().machine
    )
    names = {"linux": "_libwasmtime.so", "darwin": "_libwasmtime.dylib"}
    name = names.get(sys.platform)
    if name is None:
        raise ImportError(f"the native backend does not run on {sys.platform}")
    path = _package_dir() / f"{sys.platform}-{machine}" / name
    if not path.is_file():
        raise ImportError(f"wasmtime-py has no library at {path}")
    return path


_installed = installed_wasmtime_version()
if _installed != WASMTIME_VERSION:
    raise ImportError(
        f"atoll.runtime.capi is pinned to wasmtime {WASMTIME_VERSION} (it uses private "
        f"C bindings), but wasmtime {_installed} is installed; install "
        f"wasmtime=={WASMTIME_VERSION} or use the public-API path"
    )

#: The library's path (the file wasmtime-py loads too).
LIBRARY: Path = _library()
#: The library, opened once per process.
DLL = ctypes.CDLL(str(LIBRARY))


def cfn(name: str, restype: Any, *argtypes: Any) -> Any:
    """A foreign function of our own for ``name`` (never wasmtime-py's, whose argtypes
    wasmtime-py relies on). Without ``argtypes`` ctypes takes the arguments as given
    (every one must then be a ctypes object of the right C type). Releases the GIL."""
    fn = DLL._FuncPtr((name, DLL))
    fn.restype = restype
    if argtypes:
        fn.argtypes = argtypes
    return fn


def address(obj: Any) -> int:
    """The C address behind a ctypes pointer (``store.ptr()``, ``engine.ptr()``…), as an int."""
    return int(ctypes.cast(obj, ctypes.c_void_p).value or 0)
