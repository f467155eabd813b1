"""The compilers a worker's build may need, how to detect each, how to install it.

atoll builds wasm with four toolchains, all installable from Debian 12, npm and
PyPI (``scripts/install-toolchains.sh`` installs every one):

=================  ==========================================================
``rust``           Debian's ``/usr/bin/rustc`` 1.63 with its wasm32 standard
                   libraries (``libstd-rust-dev-wasm32``) and ``lld-14`` (its
                   ``rust-lld``). A rustup ``rustc`` earlier on ``PATH``
                   usually has no wasm32 target: build scripts call
                   ``/usr/bin/rustc``. No crates (no crates.io here).
``c``              ``clang-14 --target=wasm32-wasi --sysroot=/usr`` with
                   Debian's ``wasi-libc``, ``lld-14`` (``wasm-ld``) and
                   ``libclang-rt-14-dev-wasm32`` (compiler builtins).
``zig``            PyPI ``ziglang`` (pinned to :data:`ZIGLANG_VERSION`) in the
                   Python that runs atoll: ``python -m ziglang build-exe``.
``assemblyscript`` ``node`` and ``npm``; the compiler itself (``asc``) and
                   ``@assemblyscript/wasi-shim`` come from the worker's own
                   ``package.json`` and are installed by its build script
                   (``npm ci``).
=================  ==========================================================

Which toolchains a worker needs
-------------------------------

A build script declares them in a comment within its first
:data:`DECLARATION_LINES` lines::

    #!/usr/bin/env bash
    # atoll-toolchain: rust

(several: ``# atoll-toolchain: rust, c``; ``//`` comments work as well). Every
template and example does. Without a declaration, the ``[build] command`` and
the script it runs are scanned for the tools' names (``rustc``, ``cargo``,
``clang``, ``zig``, ``asc``…), which can over- or under-report: declare.

Detection only looks at files and, for Node, runs nothing: it is cheap enough
to run before every build. Each check names what is missing, and
:meth:`Toolchain.install_command` gives the exact command that installs it
here.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import re
import shlex
import shutil
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from atoll.errors import BuildError
from atoll.manifest import Manifest

__all__ = [
    "DECLARATION_LINES",
    "TOOLCHAINS",
    "ZIGLANG_VERSION",
    "Toolchain",
    "declared_toolchains",
    "missing_toolchains",
    "require_toolchains",
    "required_toolchains",
]

#: The ``ziglang`` wheel the Zig templates and examples are written for
#: (``scripts/install-toolchains.sh`` pins the same; a test checks).
ZIGLANG_VERSION = "0.17.1"

#: How many lines at the top of a build script may hold ``atoll-toolchain:``.
DECLARATION_LINES = 10

_DECLARATION = re.compile(r"^\s*(?:#|//)\s*atoll-toolchain:\s*(?P<names>[A-Za-z0-9_, -]+?)\s*$")

#: Folders where Debian's rustc looks for wasm32 standard libraries.
RUST_SYSROOT = Path("/usr/lib/rustlib")


def _apt(*packages: str) -> str:
    sudo = "" if not hasattr(os, "geteuid") or os.geteuid() == 0 else "sudo "
    return f"{sudo}apt-get update && {sudo}apt-get install -y {' '.join(packages)}"


def _python() -> str:
    return shlex.quote(sys.executable or "python3")


def _executable(path: Path | str | None) -> bool:
    return path is not None and os.path.isfile(path) and os.access(path, os.X_OK)


def _check_rust(worker: Path) -> list[str]:
    problems = []
    if not _executable("/usr/bin/rustc"):
        problems.append("/usr/bin/rustc not found (Debian package 'rustc')")
    for target in ("wasm32-wasi", "wasm32-unknown-unknown"):
        if not glob.glob(str(RUST_SYSROOT / target / "lib" / "libstd-*.rlib")):
            problems.append(
                f"no {target} standard library in {RUST_SYSROOT / target} "
                "(Debian package 'libstd-rust-dev-wasm32')"
            )
    # Debian's rustc links wasm through /usr/bin/rust-lld, a link to lld-14's binary.
    if not _executable(os.path.realpath("/usr/bin/rust-lld")):
        problems.append("/usr/bin/rust-lld does not resolve to lld (Debian package 'lld-14')")
    return problems


def _check_c(worker: Path) -> list[str]:
    problems = []
    if shutil.which("clang-14") is None:
        problems.append("clang-14 not found (Debian package 'clang-14')")
    if (
        not Path("/usr/include/wasm32-wasi/stdio.h").is_file()
        or not Path("/usr/lib/wasm32-wasi/libc.a").is_file()
    ):
        problems.append(
            "wasi-libc not found in /usr/include/wasm32-wasi and /usr/lib/wasm32-wasi "
            "(Debian package 'wasi-libc')"
        )
    if not _executable("/usr/lib/llvm-14/bin/wasm-ld"):
        problems.append("wasm-ld not found in /usr/lib/llvm-14/bin (Debian package 'lld-14')")
    if not glob.glob("/usr/lib/llvm-14/lib/clang/*/lib/wasi/libclang_rt.builtins-wasm32.a"):
        problems.append(
            "the wasm32 compiler builtins are missing (Debian package 'libclang-rt-14-dev-wasm32')"
        )
    return problems


def _check_zig(worker: Path) -> list[str]:
    from importlib import metadata  # here, not at the top: it is slow to import, cold start pays it

    spec = importlib.util.find_spec("ziglang")
    if spec is None or not spec.submodule_search_locations:
        return [f"the Python package 'ziglang' is not installed in {sys.executable}"]
    folder = Path(next(iter(spec.submodule_search_locations)))
    if not _executable(folder / "zig"):
        return [f"the zig binary is missing from {folder}; reinstall 'ziglang'"]
    try:
        version = metadata.version("ziglang")
    except metadata.PackageNotFoundError:
        version = "unknown"
    if version != ZIGLANG_VERSION:
        return [f"ziglang {version} is installed; the templates are written for {ZIGLANG_VERSION}"]
    return []


def _check_assemblyscript(worker: Path) -> list[str]:
    problems = []
    if shutil.which("node") is None:
        problems.append("node not found (Debian package 'nodejs')")
    if shutil.which("npm") is None:
        problems.append("npm not found (Debian package 'npm')")
    return problems


@dataclass(frozen=True, slots=True)
class Toolchain:
    """One compiler toolchain: what it is, how to detect it, how to install it."""

    #: The name used in ``# atoll-toolchain:`` declarations.
    name: str
    #: What it is, for messages.
    title: str
    #: Returns what is missing (empty when the toolchain is usable). Runs per build.
    check: Callable[[Path], list[str]]
    #: Names that, in a build command or script, suggest this toolchain.
    tools: tuple[str, ...]
    #: How to install it: a function so that sudo and the Python path fit this machine.
    _install: Callable[[], str]

    def install_command(self) -> str:
        """The exact shell command that installs this toolchain on Debian 12, here."""
        return self._install()

    def problems(self, worker: Path) -> list[str]:
        """What is missing for a build in ``worker`` (empty: ready)."""
        return self.check(worker)


TOOLCHAINS: dict[str, Toolchain] = {
    t.name: t
    for t in (
        Toolchain(
            "rust",
            "Rust (Debian rustc with the wasm32 targets)",
            _check_rust,
            ("rustc", "cargo", "rust-lld"),
            lambda: _apt("rustc", "libstd-rust-dev-wasm32", "lld-14"),
        ),
        Toolchain(
            "c",
            "C (clang-14 with wasi-libc)",
            _check_c,
            ("clang", "clang-14", "wasm-ld", "wasi-libc"),
            lambda: _apt("clang-14", "lld-14", "wasi-libc", "libclang-rt-14-dev-wasm32"),
        ),
        Toolchain(
            "zig",
            f"Zig (PyPI ziglang {ZIGLANG_VERSION})",
            _check_zig,
            ("zig", "ziglang"),
            lambda: f"{_python()} -m pip install ziglang=={ZIGLANG_VERSION}",
        ),
        Toolchain(
            "assemblyscript",
            "AssemblyScript (node and npm; asc comes from the worker's package.json)",
            _check_assemblyscript,
            ("asc", "assemblyscript", "asinit"),
            lambda: _apt("nodejs", "npm"),
        ),
    )
}

_TOOL_PATTERNS = {
    name: re.compile(
        r"(?<![\w.-])(?:" + "|".join(re.escape(t) for t in chain.tools) + r")(?![\w.-])"
    )
    for name, chain in TOOLCHAINS.items()
}


def declared_toolchains(text: str) -> list[str] | None:
    """Toolchain names declared by ``# atoll-toolchain: …`` in the first lines of ``text``.

    Returns ``None`` when there is no declaration (``[]`` for ``atoll-toolchain: none``).
    Raises :class:`BuildError` for a name that is not in :data:`TOOLCHAINS`.
    """
    names: list[str] | None = None
    for line in text.splitlines()[:DECLARATION_LINES]:
        match = _DECLARATION.match(line)
        if not match:
            continue
        names = names or []
        for name in re.split(r"[,\s]+", match.group("names").strip()):
            if not name or name == "none":
                continue
            if name not in TOOLCHAINS:
                raise BuildError(
                    f"unknown toolchain '{name}' in an atoll-toolchain declaration",
                    hint=f"known toolchains: {', '.join(TOOLCHAINS)}",
                )
            if name not in names:
                names.append(name)
    return names


def _script_files(command: str, cwd: Path) -> list[Path]:
    """Files in ``cwd`` that the build command names (``./build.sh``, ``bash build.sh``…)."""
    try:
        words = shlex.split(command)
    except ValueError:
        words = command.split()
    files = []
    for word in words:
        if word.startswith("-") or "=" in word:
            continue
        path = (cwd / word).resolve()
        if path.is_file() and path.is_relative_to(cwd.resolve()) and path.stat().st_size < 1 << 20:
            files.append(path)
    return files


def required_toolchains(manifest: Manifest) -> list[Toolchain]:
    """The toolchains a worker's ``[build] command`` needs, in :data:`TOOLCHAINS` order.

    Declarations (``# atoll-toolchain:``) in the scripts the command runs win;
    without one, the command and those scripts are scanned for tool names.
    """
    command = manifest.build.command
    if not command:
        return []
    cwd = manifest.resolve(manifest.build.cwd or ".")
    texts = [command]
    declared: list[str] = []
    found_declaration = declared_toolchains(command) is not None
    for path in _script_files(command, cwd):
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        names = declared_toolchains(text)
        if names is not None:
            found_declaration = True
            declared += names
        texts.append(text)
    if found_declaration:
        wanted = set(declared) | set(declared_toolchains(command) or [])
    else:
        wanted = {
            name
            for name, pattern in _TOOL_PATTERNS.items()
            if any(pattern.search(_strip_comments(text)) for text in texts)
        }
    return [chain for name, chain in TOOLCHAINS.items() if name in wanted]


def _strip_comments(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))


def missing_toolchains(
    toolchains: Iterable[Toolchain], worker: Path
) -> list[tuple[Toolchain, list[str]]]:
    """Each toolchain that is not usable, with what is missing."""
    result = []
    for chain in toolchains:
        problems = chain.problems(worker)
        if problems:
            result.append((chain, problems))
    return result


def require_toolchains(manifest: Manifest) -> list[Toolchain]:
    """Check every toolchain the worker's build needs; return them.

    Raises :class:`BuildError` naming each missing toolchain, what is missing
    and the exact command that installs it.
    """
    needed = required_toolchains(manifest)
    missing = missing_toolchains(needed, manifest.root)
    if missing:
        lines = []
        for chain, problems in missing:
            lines.append(f"the {chain.name} toolchain is missing: {'; '.join(problems)}")
            lines.append(f"  install it with: {chain.install_command()}")
        raise BuildError(
            f"{manifest.path}: cannot build: " + "\n".join(lines),
            hint="scripts/install-toolchains.sh (in an atoll checkout) installs every toolchain",
        )
    return needed
