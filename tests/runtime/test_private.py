"""Private folders and files (atoll.runtime.private): 0700/0600 whatever the umask."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from atoll.runtime.private import private_dir, private_file, tighten


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def open_umask() -> Iterator[None]:
    """The common default umask, under which mkdir gives 0755 and open gives 0644."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_private_dir_creates_every_missing_level_0700(tmp_path: Path) -> None:
    leaf = private_dir(tmp_path / "a" / "b" / "c")
    assert leaf.is_dir()
    for folder in (tmp_path / "a", tmp_path / "a" / "b", leaf):
        assert mode(folder) == 0o700


def test_private_dir_tightens_an_existing_open_folder_unless_told_not_to(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir(mode=0o755)
    private_dir(mine)
    assert mode(mine) == 0o700
    users = tmp_path / "users"
    users.mkdir(mode=0o755)
    private_dir(users, tighten_existing=False)
    assert mode(users) == 0o755


def test_private_file_is_0600_and_never_truncated(tmp_path: Path) -> None:
    new = private_file(tmp_path / "new")
    assert mode(new) == 0o600
    old = tmp_path / "old"
    old.write_bytes(b"data")
    old.chmod(0o644)
    private_file(old)
    assert mode(old) == 0o600
    assert old.read_bytes() == b"data"


def test_tighten_keeps_the_owner_bits_and_ignores_a_missing_file(tmp_path: Path) -> None:
    script = tmp_path / "script"
    script.write_text("")
    script.chmod(0o755)
    tighten(script)
    assert mode(script) == 0o700
    tighten(tmp_path / "missing")
