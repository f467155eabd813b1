"""SCRIPT_NAME / PATH_INFO from routes (src/atoll/entries/mounts.py)."""

from __future__ import annotations

import pytest

from atoll.entries.mounts import ROOT, Mount, locate, normalize_path, worker_mounts


@pytest.mark.parametrize(
    ("path", "normal"),
    [
        ("/a/b", "/a/b"),
        ("/a/./b", "/a/b"),
        ("/a/../b", "/b"),
        ("/../../x", "/x"),
        ("/a/b/..", "/a/"),
        ("/a/b/.", "/a/b/"),
        ("/a/%2e%2E/b", "/b"),
        ("/a/.%2e/b", "/b"),
        ("/a/.hidden/b", "/a/.hidden/b"),
        ("/a/...", "/a/..."),
        ("/", "/"),
        ("/..", "/"),
    ],
)
def test_normalize_path(path: str, normal: str) -> None:
    assert normalize_path(path) == normal


def test_mount_parse_and_match() -> None:
    exact, prefix = Mount.parse("/hello"), Mount.parse("/hello/...")
    assert (exact.prefix, exact.wildcard, prefix.prefix, prefix.wildcard) == (
        "/hello",
        False,
        "/hello",
        True,
    )
    assert exact.match("/hello") == ""
    assert exact.match("/hello/x") is None
    assert prefix.match("/hello") == ""
    assert prefix.match("/hello/x/y") == "/x/y"
    assert prefix.match("/helloworld") is None  # a prefix ends at a segment
    assert Mount.parse("/...") == ROOT
    assert ROOT.match("/any") == "/any"


def test_mount_below() -> None:
    app = Mount.parse("/app/...")
    assert app.below(Mount.parse("/hello")) == Mount("/app/hello", "/app/hello", False)
    assert app.below(Mount.parse("/s/...")) == Mount("/app/s/...", "/app/s", True)
    assert app.below(ROOT) == Mount("/app/...", "/app", True)
    assert ROOT.below(Mount.parse("/")) == Mount("/", "/", False)


def test_worker_routes_as_mounts() -> None:
    mounts = dict(
        (r.pattern, m)
        for r, m in worker_mounts(("site.test/assets/*", "/api*", "x.test/v1/api*", "h.test/exact"))
    )
    assert mounts["site.test/assets/*"] == Mount("/assets/...", "/assets", True)
    assert mounts["/api*"].prefix == ""
    assert mounts["x.test/v1/api*"].prefix == "/v1"
    assert mounts["h.test/exact"] == Mount("/exact", "/exact", False)


@pytest.mark.parametrize(
    ("raw", "script", "info", "raw_info"),
    [
        ("/assets/a%20b/c", "/assets", "/a b/c", "/a%20b/c"),
        ("/assets/a%2Fb", "/assets", "/a/b", "/a%2Fb"),
        ("/assets", "/assets", "", ""),
        ("/other/x%41", "", "/other/xA", "/other/x%41"),
        ("/assets/./a/../b%21", "/assets", "/b!", "/b%21"),
    ],
)
def test_locate(raw: str, script: str, info: str, raw_info: str) -> None:
    located = locate(raw, "site.test", worker_mounts(("site.test/assets/*",)))
    assert located is not None
    assert (located.script_name, located.path_info, located.raw_path_info) == (
        script,
        info,
        raw_info,
    )


def test_locate_with_inner_routes_picks_the_first_match() -> None:
    inner = (Mount.parse("/one/two/..."), Mount.parse("/one/..."))
    located = locate("/one/two/three", "h", (), inner)
    assert located is not None
    assert located.inner == 0
    assert located.path_info == "/three"
    assert locate("/zero", "h", (), inner) is None
