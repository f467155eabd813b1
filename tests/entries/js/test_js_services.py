"""``[[services]]`` with JavaScript workers, over a real socket (``atoll dev front/ auth/``):
a JS worker calling a Python worker, a Python worker calling a JS worker, and JS calling JS."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.support import StartDev

SERVICES = '[[services]]\nbinding = "AUTH"\nservice = "auth"\n'

JS_FRONT = """\
export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname === "/post") {
      const reply = await env.AUTH.fetch("https://auth/echo", {
        method: "POST", body: "payload \\u00e9", headers: { "x-from": "front" },
      });
      return new Response(`${reply.status} ${reply.headers.get("x-echo")} ${await reply.text()}`);
    }
    if (url.pathname === "/loop") return env.AUTH.fetch(request);
    const reply = await env.AUTH.fetch(request);
    if (reply.status !== 200) return new Response("denied: " + (await reply.text()), { status: 403 });
    return new Response("welcome " + (await reply.text()));
  },
};
"""

JS_AUTH = """\
export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname === "/echo") {
      return new Response(`js ${request.method} ${await request.text()}`, {
        headers: { "x-echo": request.headers.get("x-from") },
      });
    }
    if (url.pathname === "/fail") throw new Error("auth broke");
    const user = request.headers.get("authorization") === "Bearer ada" ? "ada" : null;
    if (user === null) return new Response("who?", { status: 401 });
    return new Response(`js-auth:${user}`);
  },
};
"""

PY_FRONT = """\
from atoll import Response

async def fetch(request, env, ctx):
    reply = await env.AUTH.fetch(request)
    if reply.status != 200:
        return Response("denied: " + await reply.text(), status=403)
    return Response("welcome " + await reply.text())
"""

PY_AUTH = """\
from atoll import Response

async def fetch(request, env, ctx):
    if request.url.endswith("/echo"):
        body = (await request.bytes()).decode()
        return Response(f"py {request.method} {body}", headers={"x-echo": request.headers.get("x-from")})
    if request.headers.get("authorization") != "Bearer ada":
        return Response("who?", status=401)
    return Response("py-auth:ada")
"""


def _worker(root: Path, name: str, source: str, extra: str = "") -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    if source.startswith("from atoll"):
        (folder / "worker.py").write_text(source)
        main = "worker.py"
    else:
        (folder / "index.js").write_text(source)
        main = "index.js"
    (folder / "atoll.toml").write_text(f'name = "{name}"\nmain = "{main}"\n{extra}')
    return folder


def _check(server_url: str, auth: str) -> None:
    with httpx.Client(base_url=server_url) as client:
        ok = client.get("/", headers={"authorization": "Bearer ada"})
        assert (ok.status_code, ok.text) == (200, f"welcome {auth}-auth:ada")
        denied = client.get("/", headers={"authorization": "Bearer eve"})
        assert (denied.status_code, denied.text) == (403, "denied: who?")


def test_js_calls_python(tmp_path: Path, dev_server: StartDev) -> None:
    front = _worker(tmp_path, "front", JS_FRONT, SERVICES)
    auth = _worker(tmp_path, "auth", PY_AUTH)
    server = dev_server(front, str(auth))
    _check(server.url, "py")
    posted = httpx.get(server.url + "/post")
    assert posted.text == "200 front py POST payload é"


def test_python_calls_js(tmp_path: Path, dev_server: StartDev) -> None:
    front = _worker(tmp_path, "front", PY_FRONT, SERVICES)
    auth = _worker(tmp_path, "auth", JS_AUTH)
    server = dev_server(front, str(auth))
    _check(server.url, "js")


def test_js_calls_js(tmp_path: Path, dev_server: StartDev) -> None:
    front = _worker(tmp_path, "front", JS_FRONT, SERVICES)
    auth = _worker(tmp_path, "auth", JS_AUTH)
    server = dev_server(front, str(auth))
    _check(server.url, "js")
    posted = httpx.get(server.url + "/post")
    assert posted.text == "200 front js POST payload é"
    failed = httpx.get(server.url + "/fail")  # the callee's error page reaches the caller
    assert failed.status_code == 403
    assert "500 Internal Server Error" in failed.text


def test_a_js_worker_calling_itself_stops_at_the_depth_limit(
    tmp_path: Path, dev_server: StartDev
) -> None:
    front = _worker(
        tmp_path, "front", JS_FRONT, '[[services]]\nbinding = "AUTH"\nservice = "front"\n'
    )
    server = dev_server(front)
    looped = httpx.get(server.url + "/loop")
    assert looped.status_code == 500
    assert "nests 16 service calls deep" in looped.text


def test_under_atoll_serve_a_js_caller_is_deployed_after_its_callee(tmp_path: Path) -> None:
    from atoll.cli.deploy import deploy as deploy_command
    from tests.control.serving import run_cli, start_serve

    front = _worker(tmp_path, "front", JS_FRONT, SERVICES)
    auth = _worker(tmp_path, "auth", PY_AUTH)
    node = start_serve(tmp_path / "state")
    try:
        refused = run_cli(deploy_command, node, str(front))
        assert refused.exit_code != 0
        assert "'auth', which is not deployed" in refused.output
        assert run_cli(deploy_command, node, str(auth)).exit_code == 0
        assert run_cli(deploy_command, node, str(front)).exit_code == 0
        ok = httpx.get(
            node.url + "/", headers={"host": "front.localhost", "authorization": "Bearer ada"}
        )
        assert (ok.status_code, ok.text) == (200, "welcome py-auth:ada")
    finally:
        node.stop()
