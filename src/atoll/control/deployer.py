"""Every change to a node's workers: upload, activate, delete, secrets. Supervisor only.

Each method runs in a worker thread of the supervisor, one at a time (the
admin API holds a lock), and touches only the state folder; the supervisor
then tells the serving processes to sync.

An upload is checked whole before anything is served from it: unpacked
safely (``bundle.py``), its manifest loaded, its routes parsed and checked
against the other workers', then loaded with
:func:`atoll.worker.load_worker` exactly as a serving process will load it
— every module validated, size-checked and compiled into the shared cache
(so the processes only deserialize it), the Python entry imported, imports
resolved, secrets bound. Only then does ``versions/<id>/`` appear. A refused
upload raises :class:`~atoll.errors.ControlError` with the text ``atoll dev``
would print for the same folder, with the folder written ``<bundle>`` (the
CLI puts the local folder back), and nothing changes.

The check imports the entry in the supervisor. The modules it imported are
forgotten afterwards (``sys.modules`` entries whose file is in the upload,
and ``sys.path`` is restored), so checks do not pile up; the supervisor never
serves a request.
"""

from __future__ import annotations

import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from atoll.control.bundle import Limits, digest, unpack
from atoll.control.node import bindings_for, routes_of
from atoll.control.secret_store import SecretStore
from atoll.control.state import Pointer, State, VersionInfo
from atoll.errors import AtollError, ControlError
from atoll.manifest import Manifest, load_manifest
from atoll.manifest.routes import Route, conflicts, default_routes, parse_route
from atoll.worker import BindingFactory, Runtime, load_worker

__all__ = ["BUNDLE", "Deployer", "Upload"]

#: How a refused upload names its own folder in messages.
BUNDLE = "<bundle>"


@dataclass(frozen=True, slots=True)
class Upload:
    """What an upload did."""

    version: VersionInfo
    new: bool
    """False when these exact files were uploaded before."""
    pointer: Pointer | None
    """The new active pointer, or None when not activated."""


class Deployer:
    """The write side of a state folder. Not thread-safe: one call at a time."""

    def __init__(
        self,
        state: State,
        runtime: Runtime,
        *,
        limits: Limits | None = None,
        extra_bindings: BindingFactory | None = None,
    ) -> None:
        self.state = state
        self.runtime = runtime
        self.limits = limits or Limits()
        self.extra_bindings = extra_bindings
        self.secrets = SecretStore(state.secrets_dir)

    # -- versions ----------------------------------------------------------------------------

    def upload(self, name: str, data: bytes, *, activate: bool = True) -> Upload:
        """Check and store a bundle of worker ``name``; activate it unless told not to.

        Raises :class:`ControlError` (see the module docstring); nothing
        changes then.
        """
        staged = self.state.staging()
        try:
            try:
                unpack(data, staged, limits=self.limits)
                manifest = load_manifest(staged)
                if manifest.name != name:
                    raise ControlError(
                        f"the bundle is worker {manifest.name!r}, uploaded as {name!r}",
                        hint="upload it under the name in its atoll.toml",
                    )
                routes = routes_of(manifest)
                if activate:
                    self._check_routes(name, routes)
                self._check_services(manifest)
                version = digest(staged)
                new = not self.state.has_version(name, version)
                if new:
                    self._check_load(manifest, staged)
                    info = VersionInfo(
                        id=version,
                        name=name,
                        uploaded_at=time.time(),
                        size=sum(p.stat().st_size for p in staged.rglob("*") if p.is_file()),
                        files=sum(1 for p in staged.rglob("*") if p.is_file()),
                        routes=manifest.route_patterns,
                    )
                    self.state.store(name, staged, info)
                else:
                    self._check_secrets(manifest)
            except AtollError as exc:
                raise _relocated(exc, staged) from exc
            pointer = self.state.activate(name, version) if activate else None
            return Upload(self.state.version_info(name, version), new, pointer)
        finally:
            shutil.rmtree(staged, ignore_errors=True)

    def activate(self, name: str, version: str | None) -> Pointer:
        """Activate a stored version (an id prefix), or with None the previous one (rollback).

        Raises :class:`ControlError` for an unknown worker or version, a
        worker with no previous version, or routes another worker holds.
        """
        if version is None:
            pointer = self.state.active(name)
            if pointer is None or pointer.previous is None:
                raise ControlError(
                    f"worker {name!r} has no previous version to roll back to",
                    hint=f"name one: atoll versions list {name}",
                )
            if not self.state.has_version(name, pointer.previous):
                raise ControlError(
                    f"the previous version {pointer.previous[:12]} of {name!r} was deleted",
                    hint=f"name another: atoll versions list {name}",
                )
            version = pointer.previous
        else:
            version = self.state.resolve(name, version)
        info = self.state.version_info(name, version)
        self._check_routes(name, _routes(name, info.routes))
        bundle = self.state.bundle(name, version)
        try:
            self._check_secrets(load_manifest(bundle))
        except AtollError as exc:
            raise _relocated(exc, bundle) from exc
        return self.state.activate(name, version)

    def delete_worker(self, name: str) -> Path:
        """Remove a worker, its versions and its secrets (the files go to ``trash/``)."""
        moved = self.state.delete_worker(name)
        self.secrets.forget(name)
        return moved

    def delete_version(self, name: str, version: str) -> str:
        """Remove a stored version that is not active; returns its full id."""
        full = self.state.resolve(name, version)
        self.state.delete_version(name, full)
        return full

    # -- secrets -----------------------------------------------------------------------------

    def put_secret(self, name: str, key: str, value: str) -> None:
        """Set a secret (the worker need not be deployed yet). Refused if a binding has its name."""
        manifest = self._active_manifest(name)
        if manifest is not None and key in manifest.binding_names:
            raise ControlError(
                f"secret {key!r} has the name of a binding declared in the atoll.toml of {name!r}",
                hint="choose another name, or rename the binding and deploy first",
            )
        self.secrets.put(name, key, value)

    def delete_secret(self, name: str, key: str) -> None:
        self.secrets.delete(name, key)

    # -- checks ------------------------------------------------------------------------------

    def _active_manifest(self, name: str) -> Manifest | None:
        pointer = self.state.active(name)
        if pointer is None:
            return None
        return load_manifest(self.state.bundle(name, pointer.version))

    def _check_routes(self, name: str, routes: tuple[Route, ...]) -> None:
        claims: dict[str, tuple[Route, ...]] = {name: routes}
        for other in self.state.workers():
            pointer = self.state.active(other)
            if other == name or pointer is None:
                continue
            claims[other] = _routes(other, self.state.version_info(other, pointer.version).routes)
        for pattern, owner, holder in conflicts(claims):
            if name in (owner, holder):
                other = holder if owner == name else owner
                raise ControlError(
                    f"route {pattern!r} is already served by worker {other!r}",
                    hint=f"remove it from one of them (atoll delete {other} frees it)",
                )

    def _check_services(self, manifest: Manifest) -> None:
        """Every ``[[services]]`` target is a worker deployed here (or the worker itself)."""
        for entry in manifest.services:
            if entry.service != manifest.name and self.state.active(entry.service) is None:
                raise ControlError(
                    f"[[services]] binding {entry.binding!r} names worker {entry.service!r}, "
                    "which is not deployed on this node",
                    hint=f"deploy {entry.service!r} first, then this worker",
                )

    def _check_secrets(self, manifest: Manifest) -> None:
        bindings_for(self.secrets.values(manifest.name), None)(manifest)

    def _check_load(self, manifest: Manifest, folder: Path) -> None:
        path = list(sys.path)
        try:
            load_worker(
                manifest,
                runtime=self.runtime,
                dev=False,
                extra_bindings=bindings_for(
                    self.secrets.values(manifest.name), self.extra_bindings
                ),
            )
        finally:
            _forget_imports(folder)
            sys.path[:] = path


def _routes(name: str, patterns: tuple[str, ...]) -> tuple[Route, ...]:
    return tuple(parse_route(p) for p in patterns) or default_routes(name)


def _forget_imports(folder: Path) -> None:
    """Drop the modules imported from ``folder`` (a checked upload) from ``sys.modules``."""
    roots = (str(folder) + "/", str(folder.resolve()) + "/")
    for key, module in list(sys.modules.items()):
        where = getattr(module, "__file__", None) or ""
        if where.startswith(roots):
            del sys.modules[key]


def _relocated(exc: AtollError, folder: Path) -> ControlError:
    """``exc`` as a ControlError whose text writes ``folder`` as :data:`BUNDLE`."""

    def clean(text: str) -> str:
        for root in {str(folder.resolve()), str(folder)}:
            text = text.replace(root, BUNDLE)
        return text

    return ControlError(clean(exc.message), hint=clean(exc.hint) if exc.hint else None)
