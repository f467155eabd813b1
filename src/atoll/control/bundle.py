"""Worker bundles: a worker folder packed for upload, and unpacked safely on the node.

:func:`pack` runs in ``atoll deploy`` (the client): it writes the worker
folder as a deterministic ``.tar.gz`` (sorted, no owners, no times), leaving
out what a worker never loads (:data:`EXCLUDED`). :func:`unpack` runs on the
node for every upload, before anything else looks at it. It takes a
``.tar.gz`` or a ``.zip`` and writes regular files and folders only; it
refuses, naming the entry:

- absolute paths, ``..`` components, backslashes, NUL bytes, duplicates;
- symlinks, hard links, devices and FIFOs;
- more than :attr:`Limits.files` entries, more than :attr:`Limits.unpacked`
  bytes once unpacked (counted while decompressing, so a lying header or a
  zip bomb stops at the limit), and uploads over :attr:`Limits.upload` bytes;
- archive metadata over :attr:`Limits.metadata` bytes (tar: PAX and GNU
  long-name headers, each also at most :data:`MAX_HEADER` bytes; zip: the
  central directory), checked on the sizes the archive declares *before*
  anything is read into memory, and sparse tar members. A tar's metadata
  would otherwise be read whole: a 200 KiB upload declaring a 200 MiB PAX
  header cost the node that much memory several times over.

:func:`digest` is a version's name: the sha256 of the sorted list of
``path, sha256(content)`` pairs, so the same files give the same version
whatever the archive format, order or timestamps.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import struct
import tarfile
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from atoll.errors import ControlError

__all__ = ["EXCLUDED", "MAX_HEADER", "MIB", "Limits", "digest", "pack", "unpack"]

MIB = 1024 * 1024

#: Names left out of a bundle wherever they appear: VCS data, caches, local
#: state (``.atoll/`` holds ``atoll dev``'s KV store) and build trees.
EXCLUDED = frozenset(
    {".git", ".hg", ".svn", ".atoll", "__pycache__", "node_modules", "target", ".venv",
     ".DS_Store", ".mypy_cache", ".pytest_cache", ".ruff_cache"}
)  # fmt: skip

_CHUNK = 1 << 16
#: Bytes of one tar metadata header (PAX, GNU long name/link): names are at most
#: a few KiB, and `pack` writes nothing else there.
MAX_HEADER = 64 * 1024
_META_TYPES = frozenset(
    {tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE, tarfile.GNUTYPE_LONGNAME,
     tarfile.GNUTYPE_LONGLINK}
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Limits:
    """Sizes a bundle may have. The defaults are well over any worker's needs."""

    upload: int = 64 * MIB
    """Bytes of the uploaded archive (compressed)."""
    unpacked: int = 256 * MIB
    """Bytes of every file together, once unpacked."""
    files: int = 10_000
    """Entries (files and folders)."""
    metadata: int = 16 * MIB
    """Bytes of archive metadata: a tar's PAX and GNU long-name headers (each
    counted as at least one 512-byte block), or a zip's central directory."""


def pack(
    folder: Path, *, limits: Limits = Limits(), extra: Mapping[str, bytes] | None = None
) -> bytes:
    """The worker in ``folder`` as a deterministic ``.tar.gz``.

    ``extra`` adds files at the bundle's root, in place of any of the same
    name in the folder (``atoll deploy --env`` records its choice of config).
    Raises :class:`~atoll.errors.ControlError` for a symlink or special file
    in the folder (named), or a folder over ``limits``.
    """
    buffer = io.BytesIO()
    total = 0
    count = 0
    with (
        gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as zipped,
        tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        extra = dict(extra or {})
        for path, relative in _walk(folder):
            if relative in extra:
                continue
            count += 1
            info = tarfile.TarInfo(relative)
            info.mtime = 0
            if path.is_dir():
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tar.addfile(info)
                continue
            data = path.read_bytes()
            total += len(data)
            if total > limits.unpacked or count > limits.files:
                raise ControlError(
                    f"{folder}: the worker is over the bundle limit "
                    f"({limits.unpacked // MIB} MiB, {limits.files} files)",
                    hint="leave build trees and data out of the worker folder",
                )
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
        for name, content in sorted(extra.items()):
            info = tarfile.TarInfo(name)
            info.mtime = 0
            info.size = len(content)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(content))
    data = buffer.getvalue()
    if len(data) > limits.upload:
        raise ControlError(
            f"{folder}: the bundle is {len(data) // MIB} MiB compressed, over the "
            f"limit of {limits.upload // MIB} MiB",
            hint="leave build trees and data out of the worker folder",
        )
    return data


def _walk(folder: Path) -> Iterator[tuple[Path, str]]:
    """Files and folders under ``folder``, sorted, without :data:`EXCLUDED`; refuses links."""
    for current, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d not in EXCLUDED)
        base = Path(current)
        for name in [*dirs, *sorted(f for f in files if f not in EXCLUDED)]:
            path = base / name
            relative = path.relative_to(folder).as_posix()
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode):
                raise ControlError(
                    f"{path}: symlinks cannot be deployed",
                    hint="copy the file into the worker folder instead of linking it",
                )
            if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                raise ControlError(f"{path}: only files and folders can be deployed")
            if name.endswith(".pyc"):
                continue
            yield path, relative


def unpack(data: bytes, into: Path, *, limits: Limits = Limits()) -> None:
    """Unpack an uploaded ``.tar.gz`` or ``.zip`` into the empty folder ``into``.

    Raises :class:`~atoll.errors.ControlError` for an archive that is not one
    of those, is over ``limits``, or holds an entry it refuses (see the module
    docstring). On error ``into`` may hold part of the files: the caller
    removes it.
    """
    if len(data) > limits.upload:
        raise ControlError(
            f"the bundle is {len(data)} bytes, over the limit of {limits.upload // MIB} MiB"
        )
    writer = _Writer(into, limits)
    if data[:2] == b"\x1f\x8b":
        _untar(data, writer)
    elif data[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        _unzip(data, writer)
    else:
        raise ControlError(
            "the bundle is neither a .tar.gz nor a .zip",
            hint="upload the worker folder packed by `atoll deploy`, or as .tar.gz or .zip",
        )


def digest(folder: Path) -> str:
    """The version id of the files under ``folder`` (see the module docstring)."""
    lines = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        content = hashlib.sha256()
        with path.open("rb") as handle:
            while chunk := handle.read(_CHUNK):
                content.update(chunk)
        lines.append(f"{path.relative_to(folder).as_posix()}\0{content.hexdigest()}\n")
    return hashlib.sha256("".join(lines).encode()).hexdigest()


class _Writer:
    """Writes checked entries under ``root``, counting files and bytes."""

    def __init__(self, root: Path, limits: Limits) -> None:
        self.root = root
        self.limits = limits
        self.files = 0
        self.bytes = 0
        self.seen: set[str] = set()

    def name(self, raw: str) -> PurePosixPath:
        if "\\" in raw or "\0" in raw:
            raise ControlError(f"bundle entry {raw!r}: invalid character in the name")
        path = PurePosixPath(raw)
        parts = [p for p in path.parts if p not in ("", ".")]
        if path.is_absolute() or ".." in parts or not parts:
            raise ControlError(
                f"bundle entry {raw!r}: the path leaves the bundle",
                hint="paths in a bundle are relative and have no '..'",
            )
        clean = PurePosixPath(*parts)
        key = clean.as_posix()
        if key in self.seen:
            raise ControlError(f"bundle entry {raw!r} appears twice")
        self.seen.add(key)
        self.files += 1
        if self.files > self.limits.files:
            raise ControlError(f"the bundle has more than {self.limits.files} entries")
        return clean

    def folder(self, raw: str) -> None:
        (self.root / self.name(raw)).mkdir(parents=True, exist_ok=True)

    def file(self, raw: str, declared: int, source: IO[bytes]) -> None:
        relative = self.name(raw)
        if self.bytes + declared > self.limits.unpacked:
            self._too_big()
        target = self.root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():  # a folder of that name
            raise ControlError(f"bundle entry {raw!r} appears twice")
        with target.open("xb") as out:
            while chunk := source.read(_CHUNK):
                self.bytes += len(chunk)
                if self.bytes > self.limits.unpacked:
                    self._too_big()
                out.write(chunk)

    def _too_big(self) -> None:
        raise ControlError(
            f"the bundle is over {self.limits.unpacked // MIB} MiB once unpacked",
            hint="leave build trees and data out of the worker folder",
        )


def _bounded_tarinfo(limits: Limits) -> type[tarfile.TarInfo]:
    """A TarInfo class that checks each metadata header's declared size before
    :mod:`tarfile` reads it (one class per upload: it counts that upload's bytes)."""
    seen = {"bytes": 0, "chain": 0}

    def refuse(what: str) -> ControlError:
        return ControlError(
            f"the bundle's tar metadata is refused: {what}",
            hint="upload the worker folder packed by `atoll deploy`, or a plain .tar.gz",
        )

    class Bounded(tarfile.TarInfo):
        def _proc_member(self, tar: tarfile.TarFile) -> tarfile.TarInfo:
            if self.type == tarfile.GNUTYPE_SPARSE:
                raise refuse(f"{self.name!r} is a sparse file")
            if self.type in _META_TYPES:
                if self.size > MAX_HEADER:
                    raise refuse(f"a header of {self.size} bytes (at most {MAX_HEADER})")
                seen["bytes"] += max(self.size, tarfile.BLOCKSIZE)
                seen["chain"] += 1
                if seen["bytes"] > limits.metadata:
                    raise refuse(f"over {limits.metadata // MIB} MiB of headers")
                if seen["chain"] > 8:  # PAX + GNU name + GNU link is 3 for one entry
                    raise refuse("more than 8 headers in a row for one entry")
            else:
                seen["chain"] = 0
            member: tarfile.TarInfo = super()._proc_member(tar)  # type: ignore[misc]
            return member

        def _sparse(self, *_: object) -> None:
            raise refuse(f"{self.name!r} is a sparse file")

        _proc_gnusparse_00 = _proc_gnusparse_01 = _proc_gnusparse_10 = _sparse

    return Bounded


def _untar(data: bytes, writer: _Writer) -> None:
    try:
        with tarfile.open(
            fileobj=io.BytesIO(data), mode="r:gz", tarinfo=_bounded_tarinfo(writer.limits)
        ) as tar:
            for member in tar:
                if member.isdir():
                    writer.folder(member.name)
                elif member.isreg():
                    source = tar.extractfile(member)
                    assert source is not None  # a regular file always has one
                    writer.file(member.name, member.size, source)
                else:
                    kind = "link" if (member.issym() or member.islnk()) else "special file"
                    raise ControlError(
                        f"bundle entry {member.name!r} is a {kind}; only files and folders "
                        "are accepted"
                    )
    except (tarfile.TarError, EOFError, OSError, gzip.BadGzipFile, RecursionError) as exc:
        raise ControlError(f"the bundle is not a readable .tar.gz: {exc}") from None


def _zip_directory(data: bytes) -> tuple[int, int]:
    """(entries, bytes) of a zip's central directory, from its end record (zip64 too).

    Raises :class:`ControlError` if there is no end record.
    """
    end = data.rfind(b"PK\x05\x06", max(0, len(data) - 65557))
    if end < 0 or len(data) < end + 22:
        raise ControlError("the bundle is not a readable .zip: no end of central directory")
    entries, size = struct.unpack_from("<HI", data, end + 10)
    locator = end - 20
    if (entries == 0xFFFF or size == 0xFFFFFFFF) and data[locator : locator + 4] == b"PK\x06\x07":
        (offset,) = struct.unpack_from("<Q", data, locator + 8)
        if data[offset : offset + 4] == b"PK\x06\x06" and len(data) >= offset + 56:
            entries, size = struct.unpack_from("<QQ", data, offset + 32)
    return entries, size


def _unzip(data: bytes, writer: _Writer) -> None:
    entries, size = _zip_directory(data)
    if entries > writer.limits.files:
        raise ControlError(f"the bundle has more than {writer.limits.files} entries")
    if size > writer.limits.metadata:
        raise ControlError(
            f"the bundle's zip directory is over {writer.limits.metadata // MIB} MiB"
        )
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            for info in archive.infolist():
                kind = stat.S_IFMT(info.external_attr >> 16)  # 0: no Unix type recorded
                if info.is_dir():
                    writer.folder(info.filename)
                elif kind and kind != stat.S_IFREG:
                    what = "link" if kind == stat.S_IFLNK else "special file"
                    raise ControlError(
                        f"bundle entry {info.filename!r} is a {what}; only files and folders "
                        "are accepted"
                    )
                else:
                    with archive.open(info) as source:
                        writer.file(info.filename, info.file_size, source)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError) as exc:
        raise ControlError(f"the bundle is not a readable .zip: {exc}") from None
