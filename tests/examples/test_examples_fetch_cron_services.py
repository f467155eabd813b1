"""The fetch-proxy, cron-report and service-pair examples, served by ``atoll dev`` (real sockets).

fetch-proxy and cron-report are copied to a temporary folder first: the proxy's
copy names a local upstream in ``[outbound]`` (the example names a public host),
and cron-report's KV file is written beside the copy, not in the repository.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from tests.support import REPO, StartDev

EXAMPLES = REPO / "examples"


class _Upstream(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = f'{{"path": "{self.path}", "by": "{self.headers.get("x-forwarded-by")}"}}'.encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def upstream() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_fetch_proxy(tmp_path: Path, dev_server: StartDev, upstream: str) -> None:
    folder = shutil.copytree(EXAMPLES / "fetch-proxy", tmp_path / "fetch-proxy")
    toml = folder / "atoll.toml"
    toml.write_text(toml.read_text().replace('"https://api.example.com"]', f'"{upstream}"]'))
    server = dev_server(folder, "--var", f"UPSTREAM:{upstream}")
    response = httpx.get(server.url + "/items?page=2")
    assert response.status_code == 200
    assert response.json() == {"path": "/items?page=2", "by": "atoll"}
    assert response.headers["cache-control"] == "public, max-age=60"
    # The example as committed: the local upstream is not allowed.
    refused = dev_server(EXAMPLES / "fetch-proxy", "--var", f"UPSTREAM:{upstream}")
    denied = httpx.get(refused.url + "/items")
    assert denied.status_code == 403
    assert "not in [outbound] allowed_hosts" in denied.text


def test_cron_report(tmp_path: Path, dev_server: StartDev) -> None:
    folder = shutil.copytree(EXAMPLES / "cron-report", tmp_path / "cron-report")
    server = dev_server(folder, "--test-scheduled")
    assert httpx.get(server.url + "/").json() == {"runs": []}
    ran = httpx.get(server.url + "/__scheduled", params={"cron": "*/5 * * * *"})
    assert ran.text == "Ran scheduled event\n"
    runs = httpx.get(server.url + "/").json()["runs"]
    assert [run["cron"] for run in runs] == ["*/5 * * * *"]


def test_service_pair(dev_server: StartDev) -> None:
    pair = EXAMPLES / "service-pair"
    server = dev_server(pair / "front", str(pair / "auth"))
    ok = httpx.get(server.url + "/", headers={"authorization": "Bearer ada-token"})
    assert ok.text == "hello, ada\n"
    denied = httpx.get(server.url + "/", headers={"authorization": "Bearer nope"})
    assert denied.status_code == 403
