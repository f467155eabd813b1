"""Static assets ([assets], [site]) as Workers serves them: over a real socket (`atoll dev`),
and the lookup rules of each ``html_handling`` / ``not_found_handling`` in-process."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from atoll.api import Request
from atoll.bindings.assets import Assets
from atoll.errors import ConfigError
from atoll.manifest import load_manifest
from atoll.worker import Runtime, load_worker
from tests.control.serving import deploy, start_serve, write_worker
from tests.support import StartDev, WorkerFactory

WORKER = """
from atoll import Response

async def fetch(request, env, ctx):
    if request.path == "/via-binding":
        page = await env.ASSETS.fetch("/about")
        return Response(b"worker saw: " + page.body, status=page.status)
    return Response(f"worker {request.method} {request.path}")
"""


def site(root: Path) -> Path:
    public = root / "public"
    (public / "docs").mkdir(parents=True)
    (public / "index.html").write_text("<h1>home</h1>")
    (public / "about.html").write_text("about page")
    (public / "docs" / "index.html").write_text("docs index")
    (public / "app.js").write_text("console.log(1)")
    (public / "style.css").write_text("body{}")
    (public / "data.bin").write_bytes(bytes(range(256)) * 40)
    (public / "404.html").write_text("top 404")
    (public / "docs" / "404.html").write_text("docs 404")
    return public


def with_assets(make_worker: WorkerFactory, table: str) -> Path:
    root = make_worker(WORKER, extra=table)
    site(root)
    return root


# -- over a real socket ------------------------------------------------------------------


def test_files_etag_304_range_and_the_worker_for_the_rest(
    dev_server: StartDev, make_worker: WorkerFactory
) -> None:
    root = with_assets(make_worker, '[assets]\ndirectory = "./public"\nbinding = "ASSETS"\n')
    server = dev_server(root)
    with httpx.Client(base_url=server.url) as client:
        home = client.get("/")
        assert home.status_code == 200
        assert home.text == "<h1>home</h1>"
        assert home.headers["content-type"] == "text/html; charset=utf-8"
        assert home.headers["cache-control"] == "public, max-age=0, must-revalidate"
        etag = home.headers["etag"]
        again = client.get("/", headers={"if-none-match": etag})
        assert again.status_code == 304
        assert again.content == b""
        assert again.headers["etag"] == etag
        assert (
            client.get("/app.js")
            .headers["content-type"]
            .startswith(("text/javascript", "application/javascript"))
        )
        assert client.get("/style.css").headers["content-type"] == "text/css; charset=utf-8"
        part = client.get("/data.bin", headers={"range": "bytes=10-19"})
        assert part.status_code == 206
        assert part.content == bytes(range(10, 20))
        assert part.headers["content-range"] == f"bytes 10-19/{256 * 40}"
        assert client.get("/data.bin", headers={"range": "bytes=99999-"}).status_code == 416
        head = client.head("/about")
        assert head.status_code == 200
        assert head.content == b""
        assert head.headers["content-length"] == str(len("about page"))
        assert client.get("/about").text == "about page"  # auto-trailing-slash: about.html
        moved = client.get("/about.html")
        assert moved.status_code == 307
        assert moved.headers["location"] == "/about"
        assert client.get("/docs").headers["location"] == "/docs/"
        assert client.get("/docs/").text == "docs index"
        # No file: the worker answers; other methods always go to it.
        assert client.get("/api/items?x=1").text == "worker GET /api/items"
        assert client.post("/about").text == "worker POST /about"
        via = client.get("/via-binding")
        assert via.text == "worker saw: about page"
        assert client.get("/../atoll.toml").text.startswith("worker")  # never outside the folder
    assert "GET / 200 ok" in server.log()


def test_run_worker_first_and_spa_navigation(
    dev_server: StartDev, make_worker: WorkerFactory
) -> None:
    root = with_assets(
        make_worker,
        '[assets]\ndirectory = "public"\nnot_found_handling = "single-page-application"\n'
        'run_worker_first = ["/docs/*", "!/docs/index.html"]\n',
    )
    server = dev_server(root)
    with httpx.Client(base_url=server.url) as client:
        assert client.get("/docs/").text == "worker GET /docs/"
        assert client.get("/docs/index.html").status_code == 307  # excluded: a file again
        navigation = client.get("/some/route", headers={"sec-fetch-mode": "navigate"})
        assert navigation.text == "<h1>home</h1>"
        assert client.get("/some/route").text == "worker GET /some/route"  # a fetch()


def test_site_bucket_is_served_as_assets(dev_server: StartDev, make_worker: WorkerFactory) -> None:
    root = with_assets(make_worker, '[site]\nbucket = "public"\nexclude = ["*.bin"]\n')
    server = dev_server(root)
    with httpx.Client(base_url=server.url) as client:
        assert client.get("/about").text == "about page"
        assert client.get("/data.bin").text == "worker GET /data.bin"


# -- the rules, in-process ----------------------------------------------------------------


def lookup(assets: Assets, path: str) -> str | None:
    found = assets.lookup(path)
    if found is None:
        return None
    location = getattr(found, "location", None)
    if location is not None:
        return f"-> {location}"
    return Path(getattr(found, "path")).read_text()  # noqa: B009


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        (
            "auto-trailing-slash",
            [
                "<h1>home</h1>",
                "about page",
                "-> /about",
                "-> /about",
                "-> /docs/",
                "docs index",
                "-> /docs/",
            ],
        ),
        (
            "force-trailing-slash",
            [
                "<h1>home</h1>",
                "-> /about/",
                "-> /about/",
                "about page",
                "-> /docs/",
                "docs index",
                "-> /docs/",
            ],
        ),
        (
            "drop-trailing-slash",
            [
                "<h1>home</h1>",
                "about page",
                "-> /about",
                "-> /about",
                "docs index",
                "-> /docs",
                "-> /docs",
            ],
        ),
        ("none", [None, None, "about page", None, None, None, "docs index"]),
    ],
)
def test_html_handling(tmp_path: Path, mode: str, expected: list[str | None]) -> None:
    assets = Assets(site(tmp_path), html_handling=mode)  # type: ignore[arg-type]
    paths = ["/", "/about", "/about.html", "/about/", "/docs", "/docs/", "/docs/index.html"]
    assert [lookup(assets, p) for p in paths] == expected


def test_not_found_handling(tmp_path: Path) -> None:
    public = site(tmp_path)
    page = Assets(public, not_found_handling="404-page")
    nested = page.not_found("/docs/deep/missing")
    top = page.not_found("/nowhere")
    assert nested is not None
    assert top is not None
    assert (Path(nested.path).read_text(), nested.status) == ("docs 404", 404)
    assert (Path(top.path).read_text(), top.status) == ("top 404", 404)
    spa = Assets(public, not_found_handling="single-page-application").not_found("/x/y")
    assert spa is not None
    assert (Path(spa.path).read_text(), spa.status) == ("<h1>home</h1>", 200)
    assert Assets(public).not_found("/x") is None


def test_binding_fetch_applies_not_found_handling(tmp_path: Path) -> None:
    assets = Assets(site(tmp_path), not_found_handling="404-page")
    missing = asyncio.run(assets.fetch(Request("http://w/docs/missing")))
    assert (missing.status, missing.body) == (404, b"docs 404")
    ranged = asyncio.run(assets.fetch(Request("http://w/data.bin", headers={"range": "bytes=0-3"})))
    assert (ranged.status, ranged.body) == (206, bytes(range(4)))
    assert asyncio.run(assets.fetch(Request("http://w/", method="POST"))).status == 405
    (tmp_path / "secret.txt").write_text("outside")
    assert assets.lookup("/../secret.txt") is None
    assert asyncio.run(assets.fetch(Request("http://w/%2e%2e/secret.txt"))).status == 404


def test_binding_is_in_env_and_the_folder_must_exist(
    make_worker: WorkerFactory, runtime: Runtime
) -> None:
    root = with_assets(make_worker, '[assets]\ndirectory = "public"\nbinding = "STATIC"\n')
    worker = load_worker(root, runtime=runtime)
    assert "STATIC" in worker.env
    assert worker.assets is not None
    missing = make_worker(WORKER, extra='[assets]\ndirectory = "nothing-here"\n')
    with pytest.raises(ConfigError, match="'nothing-here' is not a folder"):
        load_worker(missing, runtime=runtime)
    both = make_worker(WORKER, extra='[assets]\ndirectory = "public"\n[site]\nbucket = "public"\n')
    site(both)
    with pytest.raises(ConfigError, match=r"\[assets\] and \[site\] are both set"):
        Assets.from_manifest(load_manifest(both))


JS_WORKER = """
export default {
  async fetch(request) {
    return new Response("js " + new URL(request.url).pathname);
  },
};
"""


def js_folder(tmp_path: Path, table: str) -> Path:
    root = tmp_path / "js"
    (root / "src").mkdir(parents=True)
    (root / "src" / "index.js").write_text(JS_WORKER)
    (root / "atoll.toml").write_text(f'name = "js"\nmain = "src/index.js"\n{table}')
    site(root)
    return root


def test_a_js_worker_gets_its_files_served_first(dev_server: StartDev, tmp_path: Path) -> None:
    server = dev_server(js_folder(tmp_path, '[assets]\ndirectory = "public"\n'))
    with httpx.Client(base_url=server.url) as client:
        assert client.get("/about").text == "about page"
        assert client.get("/api").text == "js /api"


def test_a_deployed_worker_serves_its_assets(tmp_path: Path) -> None:
    node = start_serve(tmp_path / "state")
    try:
        folder = write_worker(tmp_path / "w", "w", 1)
        site(folder)
        with (folder / "atoll.toml").open("a") as manifest:
            manifest.write('[assets]\ndirectory = "public"\n')
        deploy(node, folder)
        assert node.get("w.localhost", "/about").text == "about page"
        assert node.get("w.localhost", "/").text.startswith("<h1>home")
        assert node.get("w.localhost", "/nothing").text.startswith("v1")
    finally:
        node.stop()
