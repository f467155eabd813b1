"""Secrets apart from code (atoll.control.secret_store)."""

from __future__ import annotations

from pathlib import Path

import pytest

from atoll.control.secret_store import SecretStore, secret_bindings
from atoll.errors import ConfigError, ControlError
from atoll.manifest import parse_manifest


def test_put_list_delete_and_file_mode(tmp_path: Path) -> None:
    store = SecretStore(tmp_path / "secrets")
    assert store.names("w") == []
    assert store.revision("w") == ""
    store.put("w", "B_KEY", "two")
    store.put("w", "A_KEY", "one")
    assert store.names("w") == ["A_KEY", "B_KEY"]
    assert store.values("w") == {"A_KEY": "one", "B_KEY": "two"}
    path = tmp_path / "secrets" / "w.json"
    assert path.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "secrets").stat().st_mode & 0o777 == 0o700
    before = store.revision("w")
    store.put("w", "A_KEY", "changed")
    assert store.revision("w") != before
    store.delete("w", "A_KEY")
    assert store.names("w") == ["B_KEY"]
    with pytest.raises(ControlError, match="has no secret 'A_KEY'"):
        store.delete("w", "A_KEY")
    store.forget("w")
    assert store.names("w") == []


@pytest.mark.parametrize("key", ["1ABC", "with-dash", "", "a b"])
def test_bad_names_are_refused(tmp_path: Path, key: str) -> None:
    with pytest.raises(ControlError, match="is not valid"):
        SecretStore(tmp_path).put("w", key, "v")


def test_values_over_5_kib_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ControlError, match="over 5 KiB"):
        SecretStore(tmp_path).put("w", "BIG", "x" * 5121)


def test_a_secret_named_like_a_binding_is_a_config_error(tmp_path: Path) -> None:
    manifest = parse_manifest(
        'name = "w"\nmain = "w.py"\n[vars]\nGREETING = "hi"\n',
        path=tmp_path / "atoll.toml",
        check_files=False,
    )
    assert secret_bindings({"TOKEN": "t"})(manifest) == {"TOKEN": "t"}
    with pytest.raises(ConfigError, match="secret 'GREETING' has the name of a binding"):
        secret_bindings({"GREETING": "x"})(manifest)
