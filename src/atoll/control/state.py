"""The state folder of ``atoll serve``: deployed versions, active pointers, secrets.

Layout (``STATE`` is ``--state DIR``)::

    STATE/
      atoll.lock                     held (flock) by the one `atoll serve` using STATE
      admin-token                    the admin token, when none was given (mode 0600)
      workers/NAME/
        versions/<id>/bundle/        the worker folder as uploaded; never written again
        versions/<id>/version.json   id, upload time, size, files, routes
        active.json                  {"version": id, "previous": id, "activated_at": t}
      secrets/NAME.json              KEY → value (mode 0600, folder 0700; see secret_store.py)
      cache/                         compiled-code cache shared by the node's processes
      tmp/                           uploads being checked (emptied at start)
      trash/                         deleted workers, removed once no request can use them

The folder holds KV data, secrets and the admin token: it and everything in
it are private to the node's user. Folders are created 0700 and files 0600
(``runtime/private.py``; the node's processes also run with umask 077), and the
folder, its own subfolders and the admin token are made private again when a
node starts on a folder an older release left open.

A version's ``id`` is the sha256 of its files (:func:`atoll.control.bundle.digest`):
uploading the same files twice gives the same version. ``versions/<id>/``
appears by one ``rename`` once the bundle has been checked whole, and
``active.json`` is replaced by one ``rename`` (written to a temporary file,
flushed, renamed), so a reader — another process, or the node after a crash
— sees the old pointer or the new one, never a torn one.

Writers: only the supervisor of ``atoll serve`` (one per folder, held by the
lock) writes here, one change at a time. Serving processes only read.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from atoll.errors import ControlError
from atoll.runtime.private import private_dir, tighten

__all__ = ["Pointer", "State", "VersionInfo", "write_atomic"]

ACTIVE_FILE = "active.json"
VERSION_FILE = "version.json"


@dataclass(frozen=True, slots=True)
class VersionInfo:
    """What ``version.json`` records about one uploaded version."""

    id: str
    name: str
    uploaded_at: float
    size: int
    files: int
    routes: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["routes"] = list(self.routes)
        return data


@dataclass(frozen=True, slots=True)
class Pointer:
    """``active.json``: the version a worker serves, and the one before it (for rollback)."""

    version: str
    previous: str | None
    activated_at: float


def write_atomic(path: Path, data: bytes, *, mode: int = 0o600) -> None:
    """Replace ``path`` by ``data`` in one rename: a reader sees the old file or the new one."""
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class State:
    """The state folder. Reading methods are safe from any process; writing ones are not
    concurrent-safe and are called by the supervisor only, one at a time."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.workers_dir = root / "workers"
        self.secrets_dir = root / "secrets"
        self.cache_dir = root / "cache"
        self.tmp_dir = root / "tmp"
        self.trash_dir = root / "trash"
        self._lock_fd: int | None = None

    # -- the folder as a whole (supervisor) -------------------------------------------------

    def prepare(self) -> None:
        """Create the folder tree and empty ``tmp/`` and ``trash/``; once per `atoll serve` start."""
        try:
            for folder in (self.root, self.workers_dir, self.cache_dir, self.secrets_dir):
                private_dir(folder)
            for folder in (self.tmp_dir, self.trash_dir):
                shutil.rmtree(folder, ignore_errors=True)
                private_dir(folder)
        except OSError as exc:
            raise ControlError(
                f"{self.root}: cannot use as the state folder: {exc.strerror}",
                hint="give --state a folder this user can write",
            ) from exc

    def lock(self) -> None:
        """Take the folder for this process; raises :class:`ControlError` if another holds it."""
        try:
            private_dir(self.root)
        except OSError as exc:
            raise ControlError(
                f"{self.root}: cannot use as the state folder: {exc.strerror}",
                hint="give --state a folder this user can write",
            ) from exc
        fd = os.open(self.root / "atoll.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ControlError(
                f"{self.root}: another `atoll serve` uses this state folder",
                hint="stop it, or give this one another --state",
            ) from None
        self._lock_fd = fd

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def admin_token(self) -> str:
        """The token in ``admin-token``, created (random, mode 0600) if missing."""
        path = self.root / "admin-token"
        tighten(path)
        with contextlib.suppress(FileNotFoundError):
            token = path.read_text().strip()
            if token:
                return token
        token = secrets.token_urlsafe(32)
        write_atomic(path, token.encode() + b"\n", mode=0o600)
        return token

    def staging(self) -> Path:
        """A new empty folder in ``tmp/`` for an upload being checked (the caller removes it)."""
        return Path(tempfile.mkdtemp(prefix="upload-", dir=self.tmp_dir))

    # -- reading (any process) --------------------------------------------------------------

    def workers(self) -> list[str]:
        """Names of the workers that have an active version, sorted."""
        if not self.workers_dir.is_dir():
            return []
        return sorted(p.parent.name for p in self.workers_dir.glob(f"*/{ACTIVE_FILE}"))

    def active(self, name: str) -> Pointer | None:
        """The worker's active pointer, or None if it has none (never deployed, or deleted)."""
        try:
            raw = json.loads((self.workers_dir / name / ACTIVE_FILE).read_bytes())
        except FileNotFoundError:
            return None
        return Pointer(raw["version"], raw.get("previous"), raw.get("activated_at", 0.0))

    def bundle(self, name: str, version: str) -> Path:
        """The folder of a version's files (``load_worker`` loads it)."""
        return self.workers_dir / name / "versions" / version / "bundle"

    def has_version(self, name: str, version: str) -> bool:
        return (self.workers_dir / name / "versions" / version / VERSION_FILE).is_file()

    def version_info(self, name: str, version: str) -> VersionInfo:
        raw = json.loads(
            (self.workers_dir / name / "versions" / version / VERSION_FILE).read_text()
        )
        raw["routes"] = tuple(raw["routes"])
        return VersionInfo(**raw)

    def versions(self, name: str) -> list[VersionInfo]:
        """Every stored version of ``name``, oldest upload first."""
        folder = self.workers_dir / name / "versions"
        if not folder.is_dir():
            return []
        infos = [
            self.version_info(name, p.name)
            for p in folder.iterdir()
            if p.is_dir() and not p.name.startswith(".")  # .incoming-*: being stored
        ]
        return sorted(infos, key=lambda info: (info.uploaded_at, info.id))

    def resolve(self, name: str, prefix: str) -> str:
        """The full id of the version of ``name`` whose id starts with ``prefix``.

        Raises :class:`ControlError` when no version, or more than one, matches.
        """
        ids = [info.id for info in self.versions(name)]
        if not ids:
            raise ControlError(f"worker {name!r} has no versions", hint="deploy it first")
        found = [i for i in ids if i.startswith(prefix.lower())] if prefix else []
        if len(found) == 1:
            return found[0]
        known = ", ".join(i[:12] for i in ids)
        if not found:
            raise ControlError(
                f"worker {name!r} has no version {prefix!r}", hint=f"versions: {known}"
            )
        raise ControlError(f"version {prefix!r} of {name!r} is ambiguous", hint="give more digits")

    # -- writing (supervisor only) ----------------------------------------------------------

    def store(self, name: str, staged: Path, info: VersionInfo) -> None:
        """Move the checked bundle ``staged`` in as version ``info.id`` (a no-op if it exists)."""
        home = self.workers_dir / name / "versions" / info.id
        if self.has_version(name, info.id):
            shutil.rmtree(staged, ignore_errors=True)
            return
        home.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(home, ignore_errors=True)  # a half-stored version left by a crash
        holder = Path(tempfile.mkdtemp(prefix=".incoming-", dir=home.parent))
        os.rename(staged, holder / "bundle")
        write_atomic(holder / VERSION_FILE, json.dumps(info.to_json(), indent=2).encode())
        os.rename(holder, home)
        _fsync_dir(home.parent)

    def activate(self, name: str, version: str) -> Pointer:
        """Point ``name`` at ``version`` (which must be stored); the old one becomes ``previous``."""
        if not self.has_version(name, version):
            raise ControlError(f"worker {name!r} has no version {version[:12]!r}")
        current = self.active(name)
        previous = current.previous if current is not None else None
        if current is not None and current.version != version:
            previous = current.version
        pointer = Pointer(version, previous, time.time())
        write_atomic(self.workers_dir / name / ACTIVE_FILE, json.dumps(asdict(pointer)).encode())
        return pointer

    def point(self, name: str, pointer: Pointer) -> None:
        """Write ``pointer`` as is (a cluster node mirroring the cluster's pointer)."""
        folder = self.workers_dir / name
        folder.mkdir(parents=True, exist_ok=True)
        write_atomic(folder / ACTIVE_FILE, json.dumps(asdict(pointer)).encode())

    def deactivate(self, name: str) -> None:
        """Remove ``name``'s active pointer (its versions stay): an undone first deploy."""
        (self.workers_dir / name / ACTIVE_FILE).unlink(missing_ok=True)
        _fsync_dir(self.workers_dir / name)

    def delete_worker(self, name: str) -> Path:
        """Deactivate ``name`` and move its folder to ``trash/``; returns where it went.

        In-flight requests may still read the moved files (a WASI grant): the
        caller removes the trash later. Raises :class:`ControlError` if unknown.
        """
        folder = self.workers_dir / name
        if not folder.is_dir():
            raise ControlError(f"there is no worker {name!r}")
        (folder / ACTIVE_FILE).unlink(missing_ok=True)
        _fsync_dir(folder)
        target = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self.trash_dir))
        os.rename(folder, target / name)
        return target

    def delete_version(self, name: str, version: str) -> None:
        """Move a stored version that is not active to ``trash/`` (as :meth:`delete_worker`).

        Raises :class:`ControlError` if it is the active one.
        """
        pointer = self.active(name)
        if pointer is not None and pointer.version == version:
            raise ControlError(
                f"version {version[:12]} is the active version of {name!r}",
                hint="activate another version first, or delete the worker",
            )
        home = self.workers_dir / name / "versions" / version
        target = Path(tempfile.mkdtemp(prefix=f"{name}-{version[:12]}-", dir=self.trash_dir))
        os.rename(home, target / version)

    def empty_trash(self, older_than: float = 0.0) -> None:
        """Remove what was moved to ``trash/`` at least ``older_than`` seconds ago."""
        now = time.time()
        for item in self.trash_dir.iterdir() if self.trash_dir.is_dir() else ():
            with contextlib.suppress(FileNotFoundError):
                if now - item.stat().st_mtime >= older_than:
                    shutil.rmtree(item, ignore_errors=True)
