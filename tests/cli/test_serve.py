"""``atoll serve`` end to end: a real node (supervisor + serving processes), real sockets.

The client commands (deploy, versions, rollback, delete, secret, tail) run
in-process with click's runner against the node's admin API.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from atoll.cli.delete import delete
from atoll.cli.deploy import deploy as deploy_command
from atoll.cli.rollback import rollback
from atoll.cli.secret import secret
from atoll.cli.versions import versions
from atoll.errors import ControlError
from tests.control.serving import Node, deploy, run_cli, start_serve, write_worker

StartServe = Callable[..., Node]
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def serve_node(tmp_path: Path) -> Iterator[StartServe]:
    """``serve_node(*args, processes=1)`` starts a node on ``tmp_path/state``; all stopped after."""
    started: list[Node] = []

    def start(*args: str, processes: int = 1, state: Path | None = None) -> Node:
        node = start_serve(state or tmp_path / "state", *args, processes=processes)
        started.append(node)
        return node

    yield start
    for node in started:
        node.stop()


def test_deploy_then_requests_are_routed_by_host_and_path(
    serve_node: StartServe, tmp_path: Path
) -> None:
    node = serve_node()
    write_worker(tmp_path / "site", "site", 1, routes=["example.com/*"])
    write_worker(tmp_path / "api", "api", 2, routes=["example.com/api/*", "*.example.com/api/*"])
    write_worker(tmp_path / "plain", "plain", 3)
    for name in ("site", "api", "plain"):
        result = run_cli(deploy_command, node, str(tmp_path / name))
        assert result.exit_code == 0, result.output
        assert f"{name}: new version" in result.output
    assert node.get("example.com", "/").text == "v1:v1:1"
    assert node.get("example.com", "/api/users").text == "v2:v2:2"
    assert node.get("www.example.com", "/api/x").text == "v2:v2:2"
    assert node.get("plain.localhost:8787", "/any").text == "v3:v3:3"
    missing = node.get("www.example.com", "/")
    assert missing.status_code == 404
    assert "no route matched http://www.example.com/" in missing.text


def test_admin_api_needs_the_token(serve_node: StartServe) -> None:
    node = serve_node()
    for method, path in [
        ("GET", "/workers"),
        ("GET", "/metrics"),
        ("POST", "/workers/x/versions"),
        ("GET", "/workers/x/secrets"),
        ("GET", "/nothing-here"),
    ]:
        for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": node.token}):
            response = httpx.request(method, node.admin + path, headers=headers)
            assert response.status_code == 401, (method, path, headers)
            assert response.headers["www-authenticate"] == "Bearer"
    good = httpx.get(node.admin + "/workers", headers={"authorization": f"Bearer {node.token}"})
    assert good.status_code == 200
    assert good.json() == {"workers": []}


def test_a_broken_bundle_is_refused_with_the_text_of_atoll_dev_and_the_old_version_serves(
    serve_node: StartServe, tmp_path: Path
) -> None:
    node = serve_node()
    folder = write_worker(tmp_path / "w", "w", 1)
    assert run_cli(deploy_command, node, str(folder)).exit_code == 0
    (folder / "src" / "worker.py").write_text("import no_such_module_here\n")
    refused = run_cli(deploy_command, node, str(folder))
    assert refused.exit_code == 1
    dev = subprocess.run(
        [sys.executable, "-c", "from atoll.cli.dev import dev; dev()", str(folder), "--no-build"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "NO_COLOR": "1", "COLUMNS": "300"},
        check=False,
    )
    assert dev.returncode == 1
    expected = dev.stderr.strip()
    assert "No module named 'no_such_module_here'" in expected
    assert refused.output.strip() == expected
    (folder / "atoll.toml").write_text('name = "w"\nmain = "src/worker.py"\n[limits]\ncpu = 5\n')
    refused = run_cli(deploy_command, node, str(folder))
    assert f"error: {folder / 'atoll.toml'}:4: key 'limits.cpu'" in refused.output
    assert node.get("w.localhost").text == "v1:v1:1"
    with node.client() as client:
        assert len(client.versions("w")["versions"]) == 1


def test_bad_module_is_refused_by_the_node(serve_node: StartServe, tmp_path: Path) -> None:
    node = serve_node()
    folder = write_worker(tmp_path / "w", "w", 1)
    (folder / "pkg" / "m.wasm").write_bytes(b"\0asm not really")
    with pytest.raises(ControlError, match=r"pkg/m\.wasm"):
        deploy(node, folder)
    assert list((node.state / "tmp").iterdir()) == []


def test_versions_rollback_and_activate_by_prefix(serve_node: StartServe, tmp_path: Path) -> None:
    node = serve_node()
    folder = write_worker(tmp_path / "w", "w", 1)
    first = deploy(node, folder)["version"]["id"]
    write_worker(folder, "w", 2)
    second = deploy(node, folder)["version"]["id"]
    assert node.get("w.localhost").text == "v2:v2:2"
    listed = run_cli(versions, node, "list", "w")
    assert listed.exit_code == 0, listed.output
    assert re.search(rf"^< {first[:12]} ", listed.output, re.M)
    assert re.search(rf"^\* {second[:12]} ", listed.output, re.M)
    back = run_cli(rollback, node, "w")
    assert back.exit_code == 0, back.output
    assert f"version {first[:12]} active on 1/1 processes" in back.output
    assert node.get("w.localhost").text == "v1:v1:1"
    forth = run_cli(rollback, node, "w", second[:8])
    assert forth.exit_code == 0, forth.output
    assert node.get("w.localhost").text == "v2:v2:2"
    unknown = run_cli(rollback, node, "w", "fff")
    assert unknown.exit_code == 1
    assert "has no version 'fff'" in unknown.output
    again = deploy(node, folder)
    assert again["new"] is False


def test_restart_serves_the_same_versions(serve_node: StartServe, tmp_path: Path) -> None:
    state = tmp_path / "state"
    node = serve_node(state=state)
    folder = write_worker(tmp_path / "w", "w", 1)
    deploy(node, folder)
    write_worker(folder, "w", 2)
    deploy(node, folder)
    assert run_cli(rollback, node, "w").exit_code == 0
    assert node.stop() == 0
    again = serve_node(state=state)
    assert again.get("w.localhost").text == "v1:v1:1"
    with again.client() as client:
        listed = client.versions("w")
    assert len(listed["versions"]) == 2
    assert listed["active"] != listed["previous"]


def test_a_second_node_on_the_same_state_is_refused(serve_node: StartServe, tmp_path: Path) -> None:
    serve_node()
    with pytest.raises(AssertionError, match="another `atoll serve` uses this state folder"):
        serve_node()


def test_secrets_reach_env_but_never_the_api_the_logs_or_the_bundle(
    serve_node: StartServe, tmp_path: Path
) -> None:
    value = "sk-live-7f3a9c1e-do-not-leak"
    node = serve_node()
    folder = write_worker(tmp_path / "w", "w", 1)
    deploy(node, folder)
    put = run_cli(secret, node, "put", "w", "API_KEY", input=value + "\n")
    assert put.exit_code == 0, put.output
    assert value not in put.output
    assert node.get("w.localhost", "/secret").text == value
    listed = run_cli(secret, node, "list", "w")
    assert listed.output.split() == ["API_KEY"]
    headers = {"authorization": f"Bearer {node.token}"}
    for path in ["/workers", "/workers/w/versions", "/workers/w/secrets", "/metrics"]:
        assert value not in httpx.get(node.admin + path, headers=headers).text
    assert httpx.get(node.admin + "/workers/w/secrets/API_KEY", headers=headers).status_code == 405
    secrets_file = node.state / "secrets" / "w.json"
    assert secrets_file.stat().st_mode & 0o777 == 0o600
    assert (node.state / "secrets").stat().st_mode & 0o777 == 0o700
    holders = [p for p in node.state.rglob("*") if p.is_file() and value.encode() in p.read_bytes()]
    assert holders == [secrets_file]
    clash = run_cli(secret, node, "put", "w", "VERSION", input="x")
    assert clash.exit_code == 1
    assert "has the name of a binding" in clash.output
    deleted = run_cli(secret, node, "delete", "w", "API_KEY")
    assert deleted.exit_code == 0
    assert node.get("w.localhost", "/secret").text == "none"
    time.sleep(0.2)
    assert value not in node.log()


def test_tail_streams_events_with_outcome_logs_and_backtrace(
    serve_node: StartServe, tmp_path: Path
) -> None:
    node = serve_node(processes=2)
    deploy(node, write_worker(tmp_path / "w", "w", 1))
    with node.client() as client:
        events = client.tail("w", statuses=["5xx"])
        kind, opened = next(events)
        assert (kind, opened["worker"], opened["statuses"]) == ("open", "w", ["5xx"])
        assert node.get("w.localhost", "/fine").status_code == 200  # filtered out
        assert node.get("w.localhost", "/boom").status_code == 500
        kind, event = next(events)
    assert kind == "request"
    assert event["url"] == "http://w.localhost/boom"
    assert (event["status"], event["outcome"], event["method"]) == (500, "exception", "GET")
    assert event["logs"] == ["about to fail"]
    assert event["exception"]["type"] == "GuestTrapError"
    assert any("inner" in frame for frame in event["exception"]["frames"])
    assert event["wall_ms"] > 0
    assert len(event["version"]) == 64


def test_tail_command_prints_json_lines(serve_node: StartServe, tmp_path: Path) -> None:
    node = serve_node()
    deploy(node, write_worker(tmp_path / "w", "w", 1))
    command = "from atoll.cli.tail import tail; tail()"
    args = ["w", "--format", "json", "--outcome", "ok", "--url", node.admin]
    proc = subprocess.Popen(
        [sys.executable, "-c", command, *args],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "ATOLL_ADMIN_TOKEN": node.token},
    )
    assert proc.stdout is not None
    try:
        opened = json.loads(proc.stdout.readline())
        assert (opened["type"], opened["worker"], opened["outcomes"]) == ("open", "w", ["ok"])
        node.get("w.localhost", "/boom")  # outcome exception: filtered out
        node.get("w.localhost", "/ping")
        event = json.loads(proc.stdout.readline())
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
    assert (event["type"], event["url"], event["outcome"]) == (
        "request",
        "http://w.localhost/ping",
        "ok",
    )
    assert event["logs"] == ["served by v1"]


def test_metrics_count_requests_by_worker_status_and_outcome(
    serve_node: StartServe, tmp_path: Path
) -> None:
    node = serve_node(processes=2)
    deploy(node, write_worker(tmp_path / "w", "w", 1))
    for _ in range(3):
        node.get("w.localhost", "/")
    node.get("w.localhost", "/boom")
    node.get("nowhere.test", "/")
    with node.client() as client:
        text = client._client.get("/metrics").text
    assert 'atoll_requests_total{worker="w",status="200",outcome="ok"} 3' in text
    assert 'atoll_requests_total{worker="w",status="500",outcome="exception"} 1' in text
    assert 'atoll_requests_total{worker="",status="404",outcome="refused"} 1' in text
    assert 'atoll_request_duration_seconds_count{worker="w"} 4' in text
    assert 'atoll_request_cpu_seconds_bucket{worker="w",le="+Inf"} 4' in text
    assert "atoll_processes 2" in text
    assert re.search(r'atoll_worker_version_info\{worker="w",version="[0-9a-f]{64}"\} 1', text)


def test_delete_stops_routing_and_removes_the_worker(
    serve_node: StartServe, tmp_path: Path
) -> None:
    node = serve_node()
    deploy(node, write_worker(tmp_path / "w", "w", 1, routes=["w.test/*"]))
    assert node.get("w.test").status_code == 200
    assert run_cli(delete, node, "w").exit_code == 1  # no --yes, no terminal: aborted
    result = run_cli(delete, node, "w", "--yes")
    assert result.exit_code == 0, result.output
    assert node.get("w.test").status_code == 404
    assert not (node.state / "workers" / "w").exists()
    again = run_cli(delete, node, "w", "--yes")
    assert again.exit_code == 1
    assert "there is no worker 'w'" in again.output


def test_route_taken_by_another_worker_is_refused(serve_node: StartServe, tmp_path: Path) -> None:
    node = serve_node()
    deploy(node, write_worker(tmp_path / "a", "a", 1, routes=["example.com/*"]))
    with pytest.raises(ControlError, match="already served by worker 'a'"):
        deploy(node, write_worker(tmp_path / "b", "b", 2, routes=["EXAMPLE.com/*"]))


def test_request_in_flight_finishes_on_the_version_it_started_on(
    serve_node: StartServe, tmp_path: Path
) -> None:
    node = serve_node()
    folder = write_worker(tmp_path / "w", "w", 1)
    deploy(node, folder)
    started, go = tmp_path / "started", tmp_path / "go"
    slow: list[str] = []
    path = f"/slow?started={started}&go={go}"
    thread = threading.Thread(target=lambda: slow.append(node.get("w.localhost", path).text))
    thread.start()
    while not started.exists():  # the slow request is now inside version 1
        time.sleep(0.01)
    write_worker(folder, "w", 2)
    deploy(node, folder)
    assert node.get("w.localhost").text == "v2:v2:2"
    go.touch()
    thread.join()
    assert slow == ["v1:v1:1"]


def test_every_process_serves_the_new_version_after_a_deploy(
    serve_node: StartServe, tmp_path: Path
) -> None:
    node = serve_node(processes=3)
    folder = write_worker(tmp_path / "w", "w", 1)
    deploy(node, folder)
    write_worker(folder, "w", 2)
    answer = deploy(node, folder)
    assert answer["processes"] == {"total": 3, "synced": 3, "errors": {}}
    bodies = {node.get("w.localhost").text for _ in range(60)}  # a new connection each
    assert bodies == {"v2:v2:2"}
    served_by = {m.group(1) for m in re.finditer(r"\[(\d)\] GET / 200", node.log()) if m}
    assert len(served_by) >= 2, "the kernel sent every connection to one process"


def test_sigterm_stops_every_process(serve_node: StartServe, tmp_path: Path) -> None:
    node = serve_node(processes=2)
    assert node.stop(signal.SIGTERM) == 0
    time.sleep(0.2)
    leftover = subprocess.run(
        ["pgrep", "-f", str(node.state)], capture_output=True, text=True, check=False
    )
    assert leftover.stdout.strip() == ""


def test_kv_example_counts_across_processes_and_restarts(
    serve_node: StartServe, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    node = serve_node(processes=2, state=state)
    deploy(node, REPO / "examples" / "kv-counter")
    counts = [node.get("kv-counter.localhost", "/hits").text for _ in range(6)]
    assert counts == [f"hits: {n}\n" for n in range(1, 7)]
    assert node.stop() == 0
    again = serve_node(state=state)
    assert again.get("kv-counter.localhost", "/peek/hits").text == "hits: 6\n"
    assert (state / "kv.sqlite3").is_file()


def test_a_taken_port_is_refused(serve_node: StartServe, tmp_path: Path) -> None:
    first = serve_node(state=tmp_path / "one")
    with pytest.raises(AssertionError, match=f"cannot listen on 127.0.0.1:{first.port}"):
        serve_node("--port", str(first.port), state=tmp_path / "two")


def _serving_pids(node: Node) -> list[int]:
    found = subprocess.run(
        ["pgrep", "-f", f"atoll.control.process.*{node.state}"],
        capture_output=True,
        text=True,
        check=False,
    )
    return [int(pid) for pid in found.stdout.split()]


def test_a_serving_process_that_dies_is_restarted(serve_node: StartServe, tmp_path: Path) -> None:
    node = serve_node(processes=2)
    deploy(node, write_worker(tmp_path / "w", "w", 1))
    pids = _serving_pids(node)
    assert len(pids) == 2
    os.kill(pids[0], signal.SIGKILL)
    served = 0
    while not re.search(r"serving process \d exited with code -9; restarting", node.log()):
        try:
            assert node.get("w.localhost").text == "v1:v1:1"  # the other process serves
            served += 1
        except httpx.TransportError:
            # A connection the kernel had queued on the killed process's SO_REUSEPORT
            # socket is reset with it (docs/serve.md); new ones go to the living process.
            pass
    assert served or node.get("w.localhost").text == "v1:v1:1"
    while len(set(_serving_pids(node)) - {pids[0]}) < 2:
        time.sleep(0.05)
    write_worker(tmp_path / "w", "w", 2)
    answer = deploy(node, tmp_path / "w")
    assert answer["processes"]["synced"] == 2
    assert {node.get("w.localhost").text for _ in range(20)} == {"v2:v2:2"}


def test_serving_processes_stop_when_the_supervisor_is_killed(
    serve_node: StartServe, tmp_path: Path
) -> None:
    node = serve_node(processes=2)
    pids = _serving_pids(node)
    assert len(pids) == 2
    node.proc.kill()
    node.proc.wait()
    for pid in pids:
        while os.path.exists(f"/proc/{pid}") and "zombie" not in _state(pid):
            time.sleep(0.05)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text().lower()
    except OSError:
        return "zombie"
