"""The state folder: stored versions, the active pointer, the lock (atoll.control.state)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from atoll.control.secret_store import SecretStore
from atoll.control.state import State, VersionInfo, write_atomic
from atoll.errors import ControlError


def stored(state: State, name: str, version: str, at: float = 1.0) -> str:
    staged = state.staging()
    (staged / "atoll.toml").write_text(f'name = "{name}"\n')
    state.store(name, staged, VersionInfo(version, name, at, 10, 1, ()))
    return version


@pytest.fixture
def state(tmp_path: Path) -> State:
    folder = State(tmp_path / "state")
    folder.prepare()
    return folder


def test_store_and_activate_keep_the_previous_version(state: State) -> None:
    one = stored(state, "w", "a" * 64, at=1.0)
    two = stored(state, "w", "b" * 64, at=2.0)
    assert state.active("w") is None
    assert state.workers() == []
    state.activate("w", one)
    pointer = state.activate("w", two)
    assert (pointer.version, pointer.previous) == (two, one)
    assert state.active("w") == pointer
    assert state.workers() == ["w"]
    assert [v.id for v in state.versions("w")] == [one, two]
    assert (state.bundle("w", one) / "atoll.toml").is_file()
    again = state.activate("w", two)  # activating the active version keeps previous
    assert again.previous == one


def test_storing_the_same_version_twice_keeps_the_first(state: State) -> None:
    version = stored(state, "w", "c" * 64, at=1.0)
    stored(state, "w", version, at=5.0)
    assert state.version_info("w", version).uploaded_at == 1.0
    assert list(state.tmp_dir.iterdir()) == []


def test_resolve_takes_a_unique_prefix(state: State) -> None:
    stored(state, "w", "ab" + "0" * 62)
    stored(state, "w", "ac" + "0" * 62)
    assert state.resolve("w", "AB") == "ab" + "0" * 62
    with pytest.raises(ControlError, match="ambiguous"):
        state.resolve("w", "a")
    with pytest.raises(ControlError, match="has no version 'ff'"):
        state.resolve("w", "ff")
    with pytest.raises(ControlError, match="has no versions"):
        state.resolve("other", "a")


def test_activate_an_unknown_version_is_refused(state: State) -> None:
    with pytest.raises(ControlError, match="has no version"):
        state.activate("w", "d" * 64)


def test_delete_worker_moves_it_to_trash(state: State) -> None:
    state.activate("w", stored(state, "w", "e" * 64))
    moved = state.delete_worker("w")
    assert state.workers() == []
    assert state.active("w") is None
    assert (moved / "w" / "versions").is_dir()
    state.empty_trash(older_than=3600)
    assert moved.exists()
    state.empty_trash()
    assert not moved.exists()
    with pytest.raises(ControlError, match="there is no worker"):
        state.delete_worker("w")


def test_delete_version_refuses_the_active_one(state: State) -> None:
    one = stored(state, "w", "1" * 64)
    two = stored(state, "w", "2" * 64, at=2.0)
    state.activate("w", two)
    with pytest.raises(ControlError, match="is the active version"):
        state.delete_version("w", two)
    state.delete_version("w", one)
    assert [v.id for v in state.versions("w")] == [two]


def test_write_atomic_replaces_whole_files_only(tmp_path: Path) -> None:
    target = tmp_path / "active.json"
    write_atomic(target, b'{"version": "1"}')
    write_atomic(target, json.dumps({"version": "2"}).encode(), mode=0o600)
    assert json.loads(target.read_text()) == {"version": "2"}
    assert target.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["active.json"]


def test_lock_is_exclusive(tmp_path: Path) -> None:
    first, second = State(tmp_path / "s"), State(tmp_path / "s")
    first.lock()
    try:
        with pytest.raises(ControlError, match="another `atoll serve` uses this state folder"):
            second.lock()
    finally:
        first.unlock()
    second.lock()
    second.unlock()


def test_prepare_empties_tmp_and_makes_secrets_private(state: State) -> None:
    leftover = state.staging()
    state.prepare()
    assert not leftover.exists()
    assert state.secrets_dir.stat().st_mode & 0o777 == 0o700


def test_admin_token_is_created_once_and_private(state: State) -> None:
    token = state.admin_token()
    assert len(token) >= 32
    assert state.admin_token() == token
    assert os.stat(state.root / "admin-token").st_mode & 0o777 == 0o600


def test_a_version_being_stored_is_not_listed(state: State) -> None:
    stored(state, "w", "f" * 64)
    (state.workers_dir / "w" / "versions" / ".incoming-x").mkdir()
    assert [v.id for v in state.versions("w")] == ["f" * 64]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_state_folder_is_created_private_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        state = State(tmp_path / "new" / "state")
        state.lock()
        state.prepare()
        token = state.admin_token()
        stored(state, "w", "a" * 64)
        state.activate("w", "a" * 64)
        SecretStore(state.secrets_dir).put("w", "KEY", "value")
        state.unlock()
    finally:
        os.umask(old)
    assert token
    root = tmp_path / "new" / "state"
    folders = [tmp_path / "new", root, state.workers_dir, state.cache_dir, state.secrets_dir]
    folders += [state.tmp_dir, state.trash_dir]
    assert {str(f): _mode(f) for f in folders} == {str(f): 0o700 for f in folders}
    files = [root / "admin-token", root / "atoll.lock", state.secrets_dir / "w.json"]
    files += [state.workers_dir / "w" / "active.json"]
    files += [state.workers_dir / "w" / "versions" / ("a" * 64) / "version.json"]
    assert {str(f): _mode(f) for f in files} == {str(f): 0o600 for f in files}


def test_a_state_folder_left_open_is_made_private_at_start(tmp_path: Path) -> None:
    root = tmp_path / "state"
    for folder in (root, root / "workers", root / "cache", root / "secrets"):
        folder.mkdir(mode=0o755)
        folder.chmod(0o755)
    (root / "admin-token").write_text("old-token\n")
    (root / "admin-token").chmod(0o644)
    state = State(root)
    state.lock()
    state.prepare()
    assert state.admin_token() == "old-token"
    state.unlock()
    for folder in (root, root / "workers", root / "cache", root / "secrets"):
        assert _mode(folder) == 0o700
    assert _mode(root / "admin-token") == 0o600
