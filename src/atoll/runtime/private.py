"""Folders and files that only the node's user may read: state, KV data, compiled code, secrets.

atoll keeps worker data at rest (KV values, secrets, the admin token, compiled
code) where other local users must not read it. Everything it creates for that
is made private at creation — folders 0700, files 0600 — whatever the umask,
and a folder or file of atoll's found open to others is tightened when opened
(and logged), so a node upgraded from an older release is fixed too.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from pathlib import Path

__all__ = ["private_dir", "private_file", "tighten"]

log = logging.getLogger("atoll.runtime")


def private_dir(path: Path, *, tighten_existing: bool = True) -> Path:
    """Create ``path`` and its missing parents with mode 0700; tighten ``path`` if it
    exists open to others (unless ``tighten_existing`` is False: a folder the user
    named, not atoll's own). Returns ``path``. Raises ``OSError`` if it cannot be created."""
    missing = []
    folder = path
    while not folder.exists():
        missing.append(folder)
        if folder.parent == folder:
            break
        folder = folder.parent
    for created in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another process made it meanwhile
            created.mkdir(mode=0o700)
        os.chmod(created, 0o700)  # mkdir's mode is masked by the umask; be exact
    if not missing and tighten_existing:
        tighten(path)
    return path


def private_file(path: Path) -> Path:
    """Create ``path`` empty with mode 0600 if missing (never truncates), tighten it if it
    exists open to others. Returns ``path``. Raises ``OSError`` if it cannot be created."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    os.close(fd)
    tighten(path)
    return path


def tighten(path: Path) -> None:
    """Remove group and other permissions from ``path`` if it has any (and we own it)."""
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
        if mode & 0o077:
            os.chmod(path, mode & 0o700)
            log.warning(
                "%s was readable by other users; made it private (mode %o)", path, mode & 0o700
            )
    except FileNotFoundError:
        pass
    except PermissionError:  # not ours: leave it, say so
        log.warning("%s is readable by other users and not ours to change", path)
