"""Helpers shared by tests (fixtures live in conftest.py)."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import wasmtime

#: ``make_worker(python, modules=..., limits=..., extra=..., name=...) -> folder``
WorkerFactory = Callable[..., Path]


def wat(text: str) -> bytes:
    """Compile inline WAT to wasm bytes."""
    return bytes(wasmtime.wat2wasm(textwrap.dedent(text)))
