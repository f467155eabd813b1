"""atoll.devtools.toolchains: declarations, the tool-name fallback, detection and install commands."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import re
from pathlib import Path

import pytest

from atoll.devtools.toolchains import (
    TOOLCHAINS,
    ZIGLANG_VERSION,
    declared_toolchains,
    missing_toolchains,
    require_toolchains,
    required_toolchains,
)
from atoll.errors import BuildError
from atoll.manifest import load_manifest

REPO = Path(__file__).resolve().parents[2]
TEMPLATES = REPO / "src" / "atoll" / "templates"


def worker(tmp_path: Path, command: str, script: str | None = None) -> Path:
    (tmp_path / "src").mkdir(exist_ok=True)
    (tmp_path / "src" / "worker.py").write_text("async def fetch(request, env, ctx): ...\n")
    # A TOML literal string: the commands here hold double quotes but no single ones.
    (tmp_path / "atoll.toml").write_text(
        f'name = "w"\nmain = "src/worker.py"\n[build]\ncommand = \'{command}\'\n'
    )
    if script is not None:
        (tmp_path / "build.sh").write_text(script)
    return tmp_path


def names(folder: Path) -> list[str]:
    return [t.name for t in required_toolchains(load_manifest(folder, check_files=False))]


# -- declarations ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("#!/bin/sh\n# atoll-toolchain: rust\n", ["rust"]),
        ("#!/bin/sh\n#atoll-toolchain:c\n", ["c"]),
        ("// atoll-toolchain: zig, assemblyscript\n", ["zig", "assemblyscript"]),
        ("# atoll-toolchain: rust c rust\n", ["rust", "c"]),
        ("# atoll-toolchain: none\n", []),
        ("#!/bin/sh\necho no declaration\n", None),
        ("\n" * 10 + "# atoll-toolchain: rust\n", None),  # past the first 10 lines
    ],
)
def test_declared_toolchains(text: str, expected: list[str] | None) -> None:
    assert declared_toolchains(text) == expected


def test_unknown_declared_toolchain_is_an_error() -> None:
    with pytest.raises(BuildError, match="unknown toolchain 'cobol'") as info:
        declared_toolchains("# atoll-toolchain: cobol\n")
    assert info.value.hint is not None
    assert "rust, c, zig, assemblyscript" in info.value.hint


# -- what a worker needs -----------------------------------------------------------


def test_declaration_in_the_build_script_wins(tmp_path: Path) -> None:
    folder = worker(tmp_path, "./build.sh", "#!/bin/sh\n# atoll-toolchain: c\nzig build\n")
    assert names(folder) == ["c"]


def test_fallback_scans_command_and_script_for_tool_names(tmp_path: Path) -> None:
    folder = worker(
        tmp_path,
        "bash build.sh && asc x.ts",
        "#!/bin/sh\n# uses zig in a comment only\n/usr/bin/rustc --target wasm32-wasi x.rs\n",
    )
    assert names(folder) == ["rust", "assemblyscript"]


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("clang-14 --target=wasm32-wasi -o a.wasm a.c", ["c"]),
        ('"$ATOLL_PYTHON" -m ziglang build-exe main.zig', ["zig"]),
        ("cargo build --release", ["rust"]),
        ("npx asc index.ts -o a.wasm", ["assemblyscript"]),
        ("python3 -m compileall -q src", []),
        ("cp prebuilt/basic.wasm build/", []),  # 'basic' is not 'asc'
    ],
)
def test_fallback_on_inline_commands(tmp_path: Path, command: str, expected: list[str]) -> None:
    assert names(worker(tmp_path, command)) == expected


def test_no_build_command_needs_nothing(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "worker.py").write_text("")
    (tmp_path / "atoll.toml").write_text('name = "w"\nmain = "src/worker.py"\n')
    assert names(tmp_path) == []


@pytest.mark.parametrize("template", sorted(p.name for p in TEMPLATES.iterdir() if p.is_dir()))
def test_every_template_declares_its_toolchain(template: str) -> None:
    expected = {
        "python": [],
        "python-rust": ["rust"],
        "rust-wasi": ["rust"],
        "python-c": ["c"],
        "c-wasi": ["c"],
        "zig-wasi": ["zig"],
        "python-assemblyscript": ["assemblyscript"],
        "assemblyscript-wasi": ["assemblyscript"],
        "js": [],
        "js-rust": ["rust"],
    }[template]
    folder = TEMPLATES / template
    assert names(folder) == expected
    if expected:
        head = (folder / "build.sh").read_text().splitlines()[:3]
        assert f"# atoll-toolchain: {expected[0]}" in head


# -- detection and install commands ----------------------------------------------------


def test_install_commands_are_exact() -> None:
    commands = {name: chain.install_command() for name, chain in TOOLCHAINS.items()}
    sudo = r"(sudo )?"
    assert re.fullmatch(
        rf"{sudo}apt-get update && {sudo}apt-get install -y rustc libstd-rust-dev-wasm32 lld-14",
        commands["rust"],
    )
    assert re.fullmatch(
        rf"{sudo}apt-get update && {sudo}apt-get install -y clang-14 lld-14 wasi-libc "
        "libclang-rt-14-dev-wasm32",
        commands["c"],
    )
    assert commands["zig"].endswith(f" -m pip install ziglang=={ZIGLANG_VERSION}")
    assert commands["assemblyscript"].endswith("apt-get install -y nodejs npm")


def test_ziglang_pin_matches_the_install_script() -> None:
    script = (REPO / "scripts" / "install-toolchains.sh").read_text()
    assert f'ZIGLANG_VERSION="{ZIGLANG_VERSION}"' in script


def test_every_toolchain_is_installed_here(tmp_path: Path) -> None:
    """CI installs every toolchain (scripts/install-toolchains.sh): a missing one fails here."""
    missing = missing_toolchains(TOOLCHAINS.values(), tmp_path)
    assert not missing, "\n".join(
        f"{chain.name}: {'; '.join(problems)}; install with: {chain.install_command()}"
        for chain, problems in missing
    )


def test_a_missing_toolchain_names_itself_and_its_install_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rust = TOOLCHAINS["rust"]
    monkeypatch.setitem(
        TOOLCHAINS, "rust", dataclasses.replace(rust, check=lambda _: ["/usr/bin/rustc not found"])
    )
    folder = worker(tmp_path, "./build.sh", "# atoll-toolchain: rust\n")
    with pytest.raises(BuildError) as info:
        require_toolchains(load_manifest(folder, check_files=False))
    message = str(info.value)
    assert "the rust toolchain is missing: /usr/bin/rustc not found" in message
    assert f"install it with: {rust.install_command()}" in message
    assert "scripts/install-toolchains.sh" in message


def test_zig_version_mismatch_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.metadata, "version", lambda _: "0.0.1")
    problems = TOOLCHAINS["zig"].problems(Path("."))
    if problems and "not installed" in problems[0]:
        pytest.fail(f"ziglang is not installed: {TOOLCHAINS['zig'].install_command()}")
    assert problems == [
        f"ziglang 0.0.1 is installed; the templates are written for {ZIGLANG_VERSION}"
    ]
