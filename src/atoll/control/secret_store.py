"""Secrets: values a worker reads as ``env.KEY``, kept apart from its code.

Each worker's secrets live in ``STATE/secrets/NAME.json`` (mode 0600, in a
folder of mode 0700), never in a version's bundle: a version is code and can
be listed, rolled back and copied; a secret is configuration that outlives
versions. The file is in clear text, readable by the user running ``atoll
serve`` (who can read the process's memory anyway): protect the state folder
as you would a private key. Nothing here logs a value, and the admin API
returns names only.

Read once per worker load by :func:`secret_bindings`; written by the
supervisor only (one change at a time, each by an atomic rename).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from atoll.control.state import write_atomic
from atoll.errors import ConfigError, ControlError
from atoll.manifest import Manifest
from atoll.manifest.schema import BINDING_PATTERN
from atoll.runtime.private import private_dir

__all__ = ["MAX_SECRET_BYTES", "SecretStore", "secret_bindings"]

#: Largest secret value, as on Workers (5 KiB).
MAX_SECRET_BYTES = 5 * 1024


class SecretStore:
    """The secrets of every worker, under ``folder`` (``STATE/secrets``)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _path(self, worker: str) -> Path:
        return self.folder / f"{worker}.json"

    def values(self, worker: str) -> dict[str, str]:
        """Every secret of ``worker``: KEY → value. For loading the worker only."""
        try:
            raw: dict[str, str] = json.loads(self._path(worker).read_bytes())
        except FileNotFoundError:
            return {}
        return raw

    def names(self, worker: str) -> list[str]:
        """The secrets' names (never their values), sorted."""
        return sorted(self.values(worker))

    def revision(self, worker: str) -> str:
        """A digest that changes whenever ``worker``'s secrets change ("" when it has none)."""
        try:
            return hashlib.sha256(self._path(worker).read_bytes()).hexdigest()[:16]
        except FileNotFoundError:
            return ""

    def put(self, worker: str, key: str, value: str) -> None:
        """Set ``key``. Raises :class:`ControlError` for a bad name or a value over 5 KiB."""
        if not re.fullmatch(BINDING_PATTERN, key):
            raise ControlError(
                f"secret name {key!r} is not valid",
                hint="use letters, digits and _, not starting with a digit (env.KEY)",
            )
        if len(value.encode()) > MAX_SECRET_BYTES:
            raise ControlError(f"secret {key!r} is over {MAX_SECRET_BYTES // 1024} KiB")
        values = self.values(worker)
        values[key] = value
        self._write(worker, values)

    def delete(self, worker: str, key: str) -> None:
        """Remove ``key``. Raises :class:`ControlError` if ``worker`` has no such secret."""
        values = self.values(worker)
        if key not in values:
            raise ControlError(f"worker {worker!r} has no secret {key!r}")
        del values[key]
        self._write(worker, values)

    def replace(self, worker: str, values: Mapping[str, str]) -> None:
        """Make ``values`` the whole set of ``worker``'s secrets (a cluster node's mirror)."""
        if values:
            self._write(worker, values)
        else:
            self.forget(worker)

    def workers(self) -> list[str]:
        """Workers that have secrets here."""
        return sorted(p.stem for p in self.folder.glob("*.json"))

    def forget(self, worker: str) -> None:
        """Remove every secret of ``worker`` (when the worker is deleted)."""
        self._path(worker).unlink(missing_ok=True)

    def _write(self, worker: str, values: Mapping[str, str]) -> None:
        private_dir(self.folder)
        data = json.dumps(dict(sorted(values.items()))).encode()
        write_atomic(self._path(worker), data, mode=0o600)


def secret_bindings(values: Mapping[str, str]) -> Callable[[Manifest], Mapping[str, Any]]:
    """An ``extra_bindings`` factory for :func:`atoll.worker.load_worker` giving ``values``.

    Runs once per worker load. Raises :class:`~atoll.errors.ConfigError` when a
    secret has the name of a binding ``atoll.toml`` declares (a var, module or
    KV namespace), as Workers does: one name, one binding.
    """

    def bind(manifest: Manifest) -> Mapping[str, Any]:
        clash = sorted(set(values) & set(manifest.binding_names))
        if clash:
            raise ConfigError(
                f"secret {clash[0]!r} has the name of a binding declared in atoll.toml",
                path=str(manifest.path),
                hint=f"rename the binding, or delete the secret (atoll secret delete NAME {clash[0]})",
            )
        return dict(values)

    return bind
