"""``[assets] binding = "ASSETS"`` in a JavaScript worker: ``env.ASSETS.fetch(request)`` reads
the worker's static files (the Python ``Assets`` underneath), over a real socket."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.bindings.test_assets import site
from tests.support import StartDev

WORKER = """\
export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname === "/via-binding") {
      const page = await env.ASSETS.fetch(new Request(new URL("/about", request.url)));
      return new Response(`binding: ${page.status} ${await page.text()}`);
    }
    if (url.pathname === "/bytes") {
      const data = await env.ASSETS.fetch(new URL("/data.bin", request.url));
      const bytes = new Uint8Array(await data.arrayBuffer());
      return new Response(`${bytes.length} ${bytes[255]} ${data.headers.get("content-type")}`);
    }
    if (url.pathname === "/missing") {
      const page = await env.ASSETS.fetch("https://assets.local/nope/here");
      return new Response(`missing: ${page.status}`);
    }
    if (url.pathname === "/head") {
      const page = await env.ASSETS.fetch(url.origin + "/about", { method: "HEAD" });
      return new Response(`head: ${page.status} ${page.body === null}`);
    }
    return new Response("js " + url.pathname);
  },
};
"""


def _folder(tmp_path: Path) -> Path:
    root = tmp_path / "js"
    (root / "src").mkdir(parents=True)
    (root / "src" / "index.js").write_text(WORKER)
    (root / "atoll.toml").write_text(
        'name = "js"\nmain = "src/index.js"\n[assets]\ndirectory = "public"\n'
        'binding = "ASSETS"\nrun_worker_first = true\n'
    )
    site(root)
    return root


def test_env_assets_fetch_in_a_js_worker(tmp_path: Path, dev_server: StartDev) -> None:
    server = dev_server(_folder(tmp_path))
    with httpx.Client(base_url=server.url) as client:
        assert client.get("/via-binding").text == "binding: 200 about page"
        assert client.get("/bytes").text == "10240 255 application/octet-stream"
        assert client.get("/missing").text == "missing: 404"
        assert client.get("/head").text == "head: 200 true"
        assert client.get("/api").text == "js /api"
