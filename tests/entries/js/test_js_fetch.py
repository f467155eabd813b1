"""``fetch()`` from a JS worker: subrequests through the host, under the request's limits.

A loopback HTTP server stands in for the internet; loopback is refused by default,
so the worker allows it by name in ``[outbound] allowed_hosts`` (docs/outbound.md).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from tests.support import DevServer, start_dev


class _Origin(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/redirect":
            self.send_response(302)
            self.send_header("location", "/json")
            self.end_headers()
            return
        body = b'{"from":"origin"}'
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("x-origin", "yes")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        data = self.rfile.read(int(self.headers["content-length"]))
        self.send_response(201)
        self.send_header("content-length", str(len(data) + 5))
        self.end_headers()
        self.wfile.write(b"echo:" + data)

    def log_message(self, *args: object) -> None:
        pass


WORKER_JS = """
export default {
  async fetch(request, env) {
    const origin = new URL(request.url).searchParams.get("origin");
    const path = new URL(request.url).pathname;
    if (path === "/get") {
      const r = await fetch(origin + "/json");
      return Response.json({ status: r.status, type: r.headers.get("content-type"),
                             origin: r.headers.get("x-origin"), body: await r.json() });
    }
    if (path === "/post") {
      const r = await fetch(origin + "/", { method: "POST", body: "ping" });
      return new Response(`${r.status} ${await r.text()}`);
    }
    if (path === "/redirect") {
      const r = await fetch(origin + "/redirect");
      return new Response(`${r.status} ${r.redirected} ${new URL(r.url).pathname}`);
    }
    if (path === "/many") {
      const out = [];
      for (let i = 0; i < 3; i++) {
        try { out.push((await fetch(origin + "/json")).status); } catch (e) { out.push(e.message); }
      }
      return Response.json(out);
    }
    return new Response("?", { status: 404 });
  },
};
"""


@pytest.fixture(scope="module")
def origin() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Origin)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    folder: Path = tmp_path_factory.mktemp("fetcher")
    (folder / "atoll.toml").write_text(
        'name = "fetcher"\nmain = "index.js"\n[limits]\nsubrequests = 2\n'
        '[outbound]\nallowed_hosts = ["http://127.0.0.1:*"]\n'
    )
    (folder / "index.js").write_text(WORKER_JS)
    server = start_dev(folder, "--loops", "1")
    try:
        yield server
    finally:
        server.stop()


def test_fetch_gets_status_headers_and_body(node: DevServer, origin: str) -> None:
    got = httpx.get(f"{node.url}/get", params={"origin": origin}).json()
    assert got == {
        "status": 200,
        "type": "application/json",
        "origin": "yes",
        "body": {"from": "origin"},
    }


def test_fetch_sends_a_body(node: DevServer, origin: str) -> None:
    assert httpx.get(f"{node.url}/post", params={"origin": origin}).text == "201 echo:ping"


def test_fetch_follows_redirects(node: DevServer, origin: str) -> None:
    assert httpx.get(f"{node.url}/redirect", params={"origin": origin}).text == "200 true /json"


def test_subrequests_are_counted_per_request(node: DevServer, origin: str) -> None:
    got = httpx.get(f"{node.url}/many", params={"origin": origin}).json()
    assert got[:2] == [200, 200]
    assert "already made its 2 subrequests" in got[2]
