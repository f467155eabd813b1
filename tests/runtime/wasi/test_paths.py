"""Paths a guest names stay inside their grant (``preview1._resolve``), with symlinks.

``_resolve`` looks at the components below the grant's real path itself and hands
the rest to ``os.path.realpath`` at the first symlink or missing component: these
cases check that the answer is ``realpath``'s, and that anything that leaves the
grant is ``NOTCAPABLE``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from atoll.runtime.wasi import DirGrant, WasiContext
from atoll.runtime.wasi.context import OpenFile
from atoll.runtime.wasi.preview1 import BADF, NOTCAPABLE, NOTDIR, _resolve


@pytest.fixture
def world(tmp_path: Path) -> tuple[WasiContext, Path, Path]:
    """A grant whose host folder is a symlink to ``real``; ``outside`` is next to it."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("host secret")
    real = tmp_path / "real"
    (real / "sub" / "deep").mkdir(parents=True)
    (real / "a.txt").write_text("a")
    (real / "sub" / "up").symlink_to("..")  # back to the grant's top: inside
    (real / "sub" / "out").symlink_to(outside)  # a folder outside
    (real / "sub" / "secret").symlink_to(outside / "secret")  # a file outside
    (real / "sub" / "abs").symlink_to(real / "a.txt")  # absolute, but inside
    (real / "loop").symlink_to("loop")
    (tmp_path / "grant").symlink_to(real)
    context = WasiContext(dirs=(DirGrant(tmp_path / "grant", "/data"),))
    return context, real.resolve(), outside


@pytest.mark.parametrize(
    ("path", "expect"),
    [
        ("a.txt", "a.txt"),
        (".", ""),
        ("sub/./deep/", "sub/deep"),
        ("sub//deep", "sub/deep"),
        ("sub/up/a.txt", "a.txt"),
        ("sub/up/sub/up/sub", "sub"),
        ("sub/abs", "a.txt"),
        ("sub/deep/../../a.txt", "a.txt"),
        ("missing/x/../y", "missing/y"),
        ("sub/up/../real/a.txt", "sub/real/a.txt"),  # ".." is the guest path's own, first
        ("a.txt/x", "a.txt/x"),  # a file named as a folder: realpath's answer (open fails later)
    ],
)
def test_paths_inside_the_grant_resolve_as_realpath_does(
    world: tuple[WasiContext, Path, Path], path: str, expect: str
) -> None:
    context, real, _ = world
    got = _resolve(context, 3, path)
    assert got == str(real / expect) if expect else str(real)
    joined = os.path.join(context.grant_root(context.files[3].grant), path)
    if ".." not in path:
        assert got == os.path.realpath(joined)


@pytest.mark.parametrize(
    "path",
    [
        "..",
        "../outside/secret",
        "sub/../../real",
        "sub/out",
        "sub/out/secret",
        "sub/secret",
        "/etc/passwd",
        "a\0b",
    ],
)
def test_paths_that_leave_the_grant_are_notcapable(
    world: tuple[WasiContext, Path, Path], path: str
) -> None:
    context, _, _ = world
    assert _resolve(context, 3, path) == NOTCAPABLE


def test_a_symlink_loop_is_no_crash(world: tuple[WasiContext, Path, Path]) -> None:
    context, real, _ = world
    assert _resolve(context, 3, "loop/x") == os.path.realpath(real / "loop" / "x")


def test_paths_from_an_opened_folder(world: tuple[WasiContext, Path, Path]) -> None:
    context, real, _ = world
    grant = context.files[3].grant
    sub = context.add(OpenFile(real / "sub", grant, is_dir=True))
    top = context.add(OpenFile(real, grant, is_dir=True))
    assert _resolve(context, sub, "deep") == str(real / "sub" / "deep")
    assert _resolve(context, sub, "../a.txt") == str(real / "a.txt")
    assert _resolve(context, sub, "../..") == NOTCAPABLE
    assert _resolve(context, top, "a.txt") == str(real / "a.txt")
    assert _resolve(context, top, "..") == NOTCAPABLE
    afile = context.add(OpenFile(real / "a.txt", grant, is_dir=False))
    assert _resolve(context, afile, "x") == NOTDIR
    assert _resolve(context, 99, "x") == BADF


def test_the_grant_root_is_looked_up_once_per_context(
    world: tuple[WasiContext, Path, Path], tmp_path: Path
) -> None:
    context, real, _ = world
    assert _resolve(context, 3, "a.txt") == str(real / "a.txt")
    # the grant's link now points elsewhere: this request keeps the folder it started with
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "grant").unlink()
    (tmp_path / "grant").symlink_to(elsewhere)
    assert _resolve(context, 3, "a.txt") == str(real / "a.txt")
    fresh = WasiContext(dirs=(DirGrant(tmp_path / "grant", "/data"),))
    assert _resolve(fresh, 3, "a.txt") == str(elsewhere.resolve() / "a.txt")
