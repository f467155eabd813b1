"""Service bindings: ``env.NAME.fetch`` calls another worker in process, as its own request."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from atoll.api import Request
from atoll.bindings.services import MAX_DEPTH, ServiceBinding
from atoll.control.bundle import pack
from atoll.control.deployer import Deployer
from atoll.control.node import Node
from atoll.control.services import LocalServices
from atoll.control.state import State
from atoll.errors import ConfigError, ControlError
from atoll.runtime.outcome import Outcome
from atoll.worker import Result, Runtime, Worker, load_worker

FRONT = """
from atoll import Request, Response

async def fetch(request, env, ctx):
    path = request.path
    if path == "/loop":
        return await env.SELF.fetch(request)
    if path == "/missing":
        return await env.GONE.fetch("/x")
    target = Request("https://auth.internal/check?user=" + request.query.get("user", ""),
                     method="POST", headers={"x-from": "front"}, body="token")
    reply = await env.AUTH.fetch(target)
    return Response(f"front<{reply.status}:{await reply.text()}>")
"""

AUTH = """
from atoll import Response

async def fetch(request, env, ctx):
    ctx.log("auth saw " + request.url)
    user = request.query.get("user")
    if user == "crash":
        raise RuntimeError("auth crashed")
    if user == "spin":
        env.M.instantiate().exports.spin()
    body = await request.text()
    return Response(f"{request.method} {request.headers.get('x-from')} {body} {user}",
                    status=200 if user == "ada" else 403)
"""

SPIN = '(module (func (export "spin") (loop $l (br $l))))'


def _write(folder: Path, name: str, source: str, toml: str = "") -> Path:
    (folder / "src").mkdir(parents=True)
    (folder / "src" / "worker.py").write_text(textwrap.dedent(source))
    (folder / "atoll.toml").write_text(f'name = "{name}"\nmain = "src/worker.py"\n{toml}')
    return folder


FRONT_TOML = """
[[services]]
binding = "AUTH"
service = "auth"

[[services]]
binding = "SELF"
service = "front"

[[services]]
binding = "GONE"
service = "gone"
"""


@pytest.fixture
def pair(tmp_path: Path, runtime: Runtime) -> tuple[Worker, list[tuple[str, Result]]]:
    from tests.support import wat

    seen: list[tuple[str, Result]] = []
    workers: dict[str, Worker] = {}
    services = LocalServices(
        lambda: workers, on_result=(lambda w, m, url, r, ms: seen.append((w.name, r)),)
    )
    auth_dir = _write(
        tmp_path / "auth", "auth", AUTH, '[wasm_modules]\nM = "m.wasm"\n[limits]\ncpu_ms = 50\n'
    )
    (auth_dir / "m.wasm").write_bytes(wat(SPIN))
    for folder in (_write(tmp_path / "front", "front", FRONT, FRONT_TOML), auth_dir):
        worker = load_worker(folder, runtime=runtime, services=services)
        workers[worker.name] = worker
    return workers["front"], seen


async def test_a_call_runs_the_other_worker_as_its_own_request(
    pair: tuple[Worker, list[tuple[str, Result]]],
) -> None:
    front, seen = pair
    assert isinstance(front.env.AUTH, ServiceBinding)
    result = await front.handle(Request("http://front.test/?user=ada"), "r1")
    assert result.response.body == b"front<200:POST front token ada>"
    [(name, callee)] = seen
    assert name == "auth"
    assert callee.logs == ["auth saw https://auth.internal/check?user=ada"]
    assert callee.request_id != result.request_id
    denied = await front.handle(Request("http://front.test/?user=bob"), "r2")
    assert denied.response.body == b"front<403:POST front token bob>"


async def test_the_callee_has_its_own_limits_and_outcome(
    pair: tuple[Worker, list[tuple[str, Result]]],
) -> None:
    front, seen = pair
    crashed = await front.handle(Request("http://front.test/?user=crash"), "r3")
    assert crashed.outcome == Outcome.OK  # the caller got a 500 page and answered
    assert crashed.response.body.startswith(b"front<500:")
    assert [r.outcome for _, r in seen] == [Outcome.EXCEPTION]
    spun = await front.handle(Request("http://front.test/?user=spin"), "r4")
    assert spun.response.body.startswith(b"front<503:")
    # auth's own cpu_ms (50), not front's
    assert [r.outcome for _, r in seen] == [Outcome.EXCEPTION, Outcome.EXCEEDED_CPU]


async def test_missing_services_and_loops_are_errors(
    pair: tuple[Worker, list[tuple[str, Result]]],
) -> None:
    front, seen = pair
    missing = await front.handle(Request("http://front.test/missing"), "r5")
    assert missing.response.status == 500
    assert "service 'gone' is not deployed on this node" in str(missing.error)
    loop = await front.handle(Request("http://front.test/loop"), "r6")
    assert loop.response.status == 500
    assert len(seen) == MAX_DEPTH  # each level is a request of its own; the deepest refused
    assert f"nests {MAX_DEPTH} service calls" in str(seen[0][1].error)


def test_entrypoints_are_refused(tmp_path: Path, runtime: Runtime) -> None:
    named = _write(
        tmp_path / "named", "named", FRONT,
        '[[services]]\nbinding = "A"\nservice = "auth"\nentrypoint = "Admin"\n',
    )  # fmt: skip
    with pytest.raises(ConfigError, match="entrypoint 'Admin'"):
        load_worker(named, runtime=runtime)


async def test_deploy_refuses_a_missing_service_then_the_node_wires_it(
    tmp_path: Path, runtime: Runtime
) -> None:
    state = State(tmp_path / "state")
    state.prepare()
    deployer = Deployer(state, runtime)
    front = _write(
        tmp_path / "front", "front", FRONT,
        'routes = ["front.test/*"]\n[[services]]\nbinding = "AUTH"\nservice = "auth"\n',
    )  # fmt: skip
    with pytest.raises(ControlError, match="names worker 'auth', which is not deployed"):
        deployer.upload("front", pack(front))
    deployer.upload(
        "auth", pack(_write(tmp_path / "auth", "auth", AUTH, 'routes = ["auth.test/*"]\n'))
    )
    deployer.upload("front", pack(front))
    node = Node(state, runtime)
    node.sync()
    worker = node.app.router.match("front.test", "/")
    assert worker is not None
    result = await worker.handle(Request("http://front.test/?user=ada"), "r7")
    assert result.response.body == b"front<200:POST front token ada>"
