"""A wasm module loaded for a worker: checked, compiled (via the cache), pre-linked.

Loading happens once per deploy (or process start); a request only
instantiates the pre-linked module (the backend's ``InstancePre``) built here.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from atoll.errors import ModuleLoadError
from atoll.manifest.schema import MAX_COMPRESSED_MODULE_BYTES
from atoll.runtime.backend.auto import BACKEND
from atoll.runtime.backend.base import Prepared
from atoll.runtime.cache import ModuleCache
from atoll.runtime.engine import PROPOSALS
from atoll.runtime.hostfuncs import HostLinker
from atoll.runtime.signature import Signature

if TYPE_CHECKING:
    import wasmtime
else:  # its exceptions, imported when one is raised (the native backend runs without it)
    from atoll.runtime.lazy import wasmtime

__all__ = ["ExportInfo", "WasmModule", "check_wasm"]

WASM_MAGIC = b"\0asm"


@dataclass(frozen=True, slots=True)
class ExportInfo:
    """One function export of a module: made once per load, shared by every instance."""

    name: str
    #: ``binding.name``, as errors name the export.
    qualified: str
    sig: Signature
    #: ``name`` encoded, for the backend's lookups (made once, not per instance).
    raw_name: bytes
    #: What the backend prepared for this signature (``Backend.prepare``).
    prepared: Prepared


class WasmModule:
    """A compiled, pre-linked module bound to a worker under ``binding``.

    Shared by every thread and request (wasmtime's ``Module`` and
    ``InstancePre`` are thread-safe). Created by :meth:`load`.
    """

    def __init__(
        self,
        *,
        binding: str,
        source: str,
        sha256: str,
        module: Any,
        pre: Any,
    ) -> None:
        self.binding = binding
        self.source = source
        self.sha256 = sha256
        self.module = module
        self.pre = pre
        #: ``pre``'s C address, for the native backend (0 on the public one).
        self.pre_address = BACKEND.address(pre.ptr())
        self.functions: dict[str, ExportInfo] = {}
        self.memory_export: str | None = None
        for name, kind, sig in BACKEND.exports(module):
            if sig is not None:  # a function
                qualified = f"{binding}.{name}"
                self.functions[name] = ExportInfo(
                    name, qualified, sig, name.encode(), BACKEND.prepare(qualified, sig)
                )
            elif kind == "memory" and self.memory_export is None:
                self.memory_export = name
        self.has_alloc = "alloc" in self.functions

    @classmethod
    def load(
        cls,
        binding: str,
        path: Path,
        *,
        cache: ModuleCache,
        linker: HostLinker,
        display: str | None = None,
    ) -> WasmModule:
        """Read, check, compile and pre-link the module at ``path``.

        Raises :class:`ModuleLoadError` naming the binding and file when the
        file is unreadable, not wasm, over 10 MB compressed, invalid, or
        imports anything atoll does not provide.
        """
        shown = display or str(path)
        try:
            wasm = path.read_bytes()
        except OSError as exc:
            raise ModuleLoadError(f"wasm module {binding} ({shown}): cannot read: {exc}") from None
        check_wasm(wasm, binding=binding, shown=shown)
        try:
            module = cache.load(wasm)
        except wasmtime.WasmtimeError as exc:
            raise _compile_error(binding, shown, exc) from None
        _check_imports(module, binding, shown, linker)
        try:
            pre = BACKEND.instantiate_pre(linker.linker, module)
        except wasmtime.WasmtimeError as exc:  # pragma: no cover - imports were checked above
            raise ModuleLoadError(f"wasm module {binding} ({shown}): {_first_line(exc)}") from None
        return cls(
            binding=binding,
            source=shown,
            sha256=hashlib.sha256(wasm).hexdigest(),
            module=module,
            pre=pre,
        )


def check_wasm(wasm: bytes, *, binding: str, shown: str) -> None:
    """Refuse what is not wasm, or is over Workers' 10 MB compressed limit."""
    if wasm[:4] != WASM_MAGIC:
        raise ModuleLoadError(
            f"wasm module {binding} ({shown}) is not a WebAssembly binary "
            f"(it starts with {wasm[:4]!r}, not b'\\x00asm')",
            hint="point [wasm_modules] at a compiled .wasm file (WAT text must be compiled first)",
        )
    if len(wasm) > MAX_COMPRESSED_MODULE_BYTES:
        import gzip  # only for a module this large: not on a cold start's path

        compressed = len(gzip.compress(wasm, compresslevel=6))
        if compressed > MAX_COMPRESSED_MODULE_BYTES:
            raise ModuleLoadError(
                f"wasm module {binding} ({shown}) is {compressed / 1e6:.1f} MB gzip-compressed, "
                f"over the {MAX_COMPRESSED_MODULE_BYTES / 1024 / 1024:.0f} MB limit",
                hint="strip debug info (wasm-opt --strip-debug -O) or split the module",
            )


def _check_imports(module: Any, binding: str, shown: str, linker: HostLinker) -> None:
    for import_module, name, kind, actual in BACKEND.imports(module):
        provided = linker.provided.get((import_module, name))
        if provided is None:
            raise ModuleLoadError(
                f"wasm module {binding} ({shown}) imports {import_module}.{name}, "
                "which atoll does not provide",
                hint=f"atoll provides: {linker.describe()}; see docs/wasm-abi.md",
            )
        if actual is None:
            raise ModuleLoadError(
                f"wasm module {binding} ({shown}) imports {import_module}.{name} "
                f"as a {kind}, but atoll provides a function",
                hint=f"atoll provides {import_module}.{provided.doc}",
            )
        wanted = Signature(provided.params, provided.results)
        if actual != wanted:
            raise ModuleLoadError(
                f"wasm module {binding} ({shown}) imports {import_module}.{name} "
                f"with the wrong type {actual}, not {wanted}",
                hint=f"atoll provides {import_module}.{provided.doc}",
            )


#: Phrases of wasmtime's validator that mean "a proposal atoll turned off".
_PROPOSAL_WORDS = (
    "not enabled",
    "must be enabled",
    "required for",
    "disallowed",
    "not supported without",
    "proposal",
)


def _compile_error(binding: str, shown: str, exc: wasmtime.WasmtimeError) -> ModuleLoadError:
    """The load error for a module wasmtime refused to compile.

    wasmtime's first line is always "failed to parse WebAssembly module"; the
    cause (with the byte offset) is its last line.
    """
    cause = _cause(exc)
    if any(word in cause for word in _PROPOSAL_WORDS):
        on = ", ".join(name for name, enabled in PROPOSALS.items() if enabled)
        off = ", ".join(name for name, enabled in PROPOSALS.items() if not enabled)
        return ModuleLoadError(
            f"wasm module {binding} ({shown}) uses a WebAssembly feature atoll does not "
            f"support: {cause}",
            hint=f"atoll supports the core spec plus {on}; not {off} "
            "(see docs/limits.md); rebuild without that feature",
        )
    return ModuleLoadError(
        f"wasm module {binding} ({shown}) is not valid WebAssembly: {cause}",
        hint="rebuild it, and check that its toolchain targets wasm32",
    )


def _cause(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
