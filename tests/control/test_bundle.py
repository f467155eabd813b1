"""Bundles: deterministic packing, safe unpacking, content-addressed ids (atoll.control.bundle)."""

from __future__ import annotations

import contextlib
import io
import os
import tarfile
import tracemalloc
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest

from atoll.control.bundle import MIB, Limits, digest, pack, unpack
from atoll.errors import ControlError


def worker_folder(root: Path) -> Path:
    (root / "src").mkdir(parents=True)
    (root / "src" / "worker.py").write_text("async def fetch(r, e, c): ...\n")
    (root / "atoll.toml").write_text('name = "w"\nmain = "src/worker.py"\n')
    for junk in (".git", ".atoll", "node_modules", "src/__pycache__", "rust/target"):
        (root / junk).mkdir(parents=True)
        (root / junk / "big").write_bytes(b"x" * 100)
    (root / "src" / "worker.pyc").write_bytes(b"compiled")
    return root


def tar_gz(*members: tuple[tarfile.TarInfo, bytes | None]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def member(name: str, kind: bytes = tarfile.REGTYPE, target: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


def test_pack_then_unpack_gives_the_files_without_excluded_ones(tmp_path: Path) -> None:
    folder = worker_folder(tmp_path / "w")
    into = tmp_path / "out"
    into.mkdir()
    unpack(pack(folder), into)
    files = sorted(p.relative_to(into).as_posix() for p in into.rglob("*") if p.is_file())
    assert files == ["atoll.toml", "src/worker.py"]
    assert (into / "src" / "worker.py").read_text() == "async def fetch(r, e, c): ...\n"


def test_pack_is_deterministic_and_the_id_ignores_archive_details(tmp_path: Path) -> None:
    folder = worker_folder(tmp_path / "w")
    first = pack(folder)
    os.utime(folder / "atoll.toml", (1, 1))
    assert pack(folder) == first
    via_tar, via_zip = tmp_path / "t", tmp_path / "z"
    via_tar.mkdir()
    via_zip.mkdir()
    unpack(first, via_tar)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("src/worker.py", (folder / "src" / "worker.py").read_bytes())
        archive.writestr("atoll.toml", (folder / "atoll.toml").read_bytes())
    unpack(buffer.getvalue(), via_zip)
    assert digest(via_tar) == digest(via_zip)
    (via_zip / "atoll.toml").write_text('name = "w"\nmain = "src/worker.py"\n# changed\n')
    assert digest(via_zip) != digest(via_tar)


def test_pack_refuses_a_symlink(tmp_path: Path) -> None:
    folder = worker_folder(tmp_path / "w")
    (folder / "src" / "link.py").symlink_to(folder / "src" / "worker.py")
    with pytest.raises(ControlError, match=r"link\.py: symlinks cannot be deployed"):
        pack(folder)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (member("../escape.py"), "leaves the bundle"),
        (member("/etc/passwd"), "leaves the bundle"),
        (member("src/../../x"), "leaves the bundle"),
        (member("a\\b"), "invalid character"),
        (member("link", tarfile.SYMTYPE, "/etc/passwd"), "is a link"),
        (member("hard", tarfile.LNKTYPE, "atoll.toml"), "is a link"),
        (member("fifo", tarfile.FIFOTYPE), "special file"),
        (member("dev", tarfile.CHRTYPE), "special file"),
    ],
)
def test_unpack_refuses_entries_that_leave_or_are_not_files(
    tmp_path: Path, entry: tarfile.TarInfo, message: str
) -> None:
    data = tar_gz((entry, b"x" if entry.type == tarfile.REGTYPE else None))
    with pytest.raises(ControlError, match=message):
        unpack(data, tmp_path)
    assert not (tmp_path.parent / "escape.py").exists()


def test_unpack_refuses_a_zip_symlink(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        info = zipfile.ZipInfo("link")
        info.external_attr = 0o120777 << 16
        archive.writestr(info, "/etc/passwd")
    with pytest.raises(ControlError, match="'link' is a link"):
        unpack(buffer.getvalue(), tmp_path)


def test_unpack_refuses_duplicates(tmp_path: Path) -> None:
    data = tar_gz((member("a.py"), b"1"), (member("./a.py"), b"2"))
    with pytest.raises(ControlError, match="appears twice"):
        unpack(data, tmp_path)


def test_unpack_stops_a_bomb_at_the_limit(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("zeros", b"\0" * (4 * 1024 * 1024))
    data = buffer.getvalue()
    assert len(data) < 64 * 1024
    with pytest.raises(ControlError, match="over 1 MiB once unpacked"):
        unpack(data, tmp_path, limits=Limits(unpacked=1024 * 1024))


def test_unpack_limits_entries_and_upload_size(tmp_path: Path) -> None:
    many = tar_gz(*[(member(f"f{i}"), b"") for i in range(5)])
    with pytest.raises(ControlError, match="more than 4 entries"):
        unpack(many, tmp_path / "a", limits=Limits(files=4))
    with pytest.raises(ControlError, match="over the limit"):
        unpack(many, tmp_path / "b", limits=Limits(upload=10))


def test_unpack_refuses_what_is_not_an_archive(tmp_path: Path) -> None:
    with pytest.raises(ControlError, match=r"neither a \.tar\.gz nor a \.zip"):
        unpack(b"hello", tmp_path)
    with pytest.raises(ControlError, match=r"not a readable \.tar\.gz"):
        unpack(b"\x1f\x8b" + b"garbage" * 10, tmp_path)


# -- archive metadata: bounded before it is read --------------------------------------------


def _gz_stream(*parts: bytes | tuple[bytes, int]) -> bytes:
    """A gzip stream of ``parts``; ``(byte, n)`` is ``n`` copies of ``byte``, compressed
    a MiB at a time so the test never holds them whole."""
    squeeze = zlib.compressobj(9, zlib.DEFLATED, 31)
    out = []
    for part in parts:
        if isinstance(part, tuple):
            byte, count = part
            block = byte * MIB
            for _ in range(count // MIB):
                out.append(squeeze.compress(block))
            out.append(squeeze.compress(byte * (count % MIB)))
        else:
            out.append(squeeze.compress(part))
    out.append(squeeze.flush())
    return b"".join(out)


def _header(name: str, kind: bytes, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = size
    return info.tobuf(format=tarfile.USTAR_FORMAT)


def _peak_while(action: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        with contextlib.suppress(ControlError):
            action()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("kind", [tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.GNUTYPE_LONGNAME])
def test_a_huge_metadata_header_is_refused_before_it_is_read(tmp_path: Path, kind: bytes) -> None:
    declared = 64 * MIB  # the report's was 200 MiB in a 199 KiB upload
    padded = declared + (-declared % tarfile.BLOCKSIZE)
    upload = _gz_stream(_header("././@Meta", kind, declared), (b"\0", padded), b"\0" * 1024)
    assert len(upload) < 256 * 1024
    with pytest.raises(ControlError, match="metadata is refused"):
        unpack(upload, tmp_path / "out")
    peak = _peak_while(lambda: unpack(upload, tmp_path / "again"))
    assert peak < 8 * MIB  # what the upload costs, not what it declares


def test_headers_in_a_row_and_metadata_in_total_are_bounded(tmp_path: Path) -> None:
    pax = _header("././@PaxHeader", tarfile.XHDTYPE, 0)
    upload = _gz_stream(pax * 20, _header("a.txt", tarfile.REGTYPE, 0), b"\0" * 1024)
    with pytest.raises(ControlError, match="in a row"):
        unpack(upload, tmp_path / "row")
    entries = [pax + _header(f"f{i}", tarfile.REGTYPE, 0) for i in range(40)]
    upload = _gz_stream(*entries, b"\0" * 1024)
    with pytest.raises(ControlError, match="MiB of headers"):
        unpack(upload, tmp_path / "total", limits=Limits(metadata=16 * 1024))


def test_a_sparse_member_is_refused(tmp_path: Path) -> None:
    upload = _gz_stream(_header("hole", tarfile.GNUTYPE_SPARSE, 0), b"\0" * 1024)
    with pytest.raises(ControlError, match="sparse"):
        unpack(upload, tmp_path / "out")


def test_long_names_still_unpack(tmp_path: Path) -> None:
    name = "/".join(["folder-with-a-long-name"] * 8) + "/file.txt"
    for fmt in (tarfile.PAX_FORMAT, tarfile.GNU_FORMAT):
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz", format=fmt) as tar:
            info = tarfile.TarInfo(name)
            info.size = 2
            tar.addfile(info, io.BytesIO(b"hi"))
        unpack(buffer.getvalue(), tmp_path / str(fmt))
        assert (tmp_path / str(fmt) / name).read_bytes() == b"hi"


def test_a_zip_directory_over_the_limits_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for i in range(30):
            archive.writestr(f"f{i}", b"")
    data = buffer.getvalue()
    with pytest.raises(ControlError, match="more than 20 entries"):
        unpack(data, tmp_path / "many", limits=Limits(files=20))
    with pytest.raises(ControlError, match="zip directory"):
        unpack(data, tmp_path / "big", limits=Limits(metadata=1024))
    unpack(data, tmp_path / "fine")
    assert len(list((tmp_path / "fine").iterdir())) == 30
