"""Three `atoll serve --cluster` nodes, one redis-server (AOF, fsync always) and nginx, for real.

One platform serves the whole module (starting it is most of the cost); each
test uses its own workers, and a test that kills a part starts it again. All
traffic is on 127.0.0.1 and every load is bounded (``tests/control/load.py``).
No assertion is timed: "every node serves the new version within 1 s of the
answer" is checked as "every node reported it active before the answer, and
each serves it when asked right after".
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from click.testing import CliRunner

from atoll.cli.cluster import cluster as cluster_command
from atoll.cli.deploy import deploy as deploy_command
from atoll.control.bundle import pack
from atoll.control.cluster import (
    STATE,
    Cluster,
    ClusterDeployer,
    ClusterState,
    Keyring,
    RedisClaims,
    connect,
    secrets_key,
)
from atoll.control.cron import RunHook, Scheduler, SqliteClaims
from atoll.control.state import State
from atoll.errors import ConfigError, ControlError
from atoll.worker import Runtime, Worker, load_worker
from tests.control.cluster_support import KEY, Platform, Sentinel, free_port
from tests.control.load import Load, Record
from tests.control.serving import deploy, run_cli, start_serve, write_worker
from tests.support import WorkerFactory

KV_WORKER = """
from atoll import Response

async def fetch(request, env, ctx):
    key = request.path.strip("/")
    if request.method == "PUT":
        await env.CACHE.put(key, await request.text())
        return Response("stored")
    value = await env.CACHE.get(key)
    return Response("(missing)" if value is None else value)
"""


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    started = Platform(tmp_path_factory.mktemp("cluster")).start()
    try:
        yield started
    finally:
        started.close()


def label(number: int) -> str:
    return f"v{number}:v{number}:{number}"


def failed(records: list[Record]) -> list[Record]:
    return [r for r in records if r.status != 200 or r.error]


def all_activated(answer: dict[str, object], total: int = 3) -> None:
    nodes = answer["nodes"]
    assert isinstance(nodes, dict)
    assert (nodes["total"], nodes["activated"], nodes["pending"]) == (total, total, []), nodes


def read_key(platform: Platform, key: str) -> bytes | None:
    with redis.Redis(port=platform.redis.port) as client:
        value: bytes | None = client.get(key)
        return value


def every_stored_value(platform: Platform) -> list[bytes]:
    with redis.Redis(port=platform.redis.port) as client:
        return list(every_value(client))


def every_value(client: Any) -> Iterator[bytes]:
    """Every string and hash value in Redis (to look for a secret in clear)."""
    for key in client.scan_iter():
        kind = client.type(key)
        if kind == b"string":
            yield client.get(key) or b""
        elif kind == b"hash":
            yield from client.hgetall(key).values()


def wait_until(check: object, what: str, seconds: float = 30.0) -> None:
    """Poll ``check()`` until true (a bound for a test that would hang, not a timing check)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError(f"{what}: not within {seconds} s")


def test_a_deploy_under_load_through_nginx_fails_no_request(
    platform: Platform, tmp_path: Path
) -> None:
    folder = write_worker(tmp_path / "w", "load", 1)
    all_activated(deploy(platform.node(0), folder))
    with Load(platform.nginx.url + "/", "load.localhost", threads=4) as load:
        load.wait_for(60)
        write_worker(folder, "load", 2)
        started = time.monotonic()
        answer = deploy(platform.node(1), folder)  # another node than the first deploy
        done = time.monotonic()
        all_activated(answer)
        for index in range(3):  # asked right after the answer, every node serves v2
            assert platform.node(index).get("load.localhost").text == label(2)
        load.wait_for(60, after=done)
    assert failed(load.records) == []
    assert {r.body for r in load.records} == {label(1), label(2)}
    assert {r.body for r in load.records if r.ended < started} == {label(1)}
    assert {r.body for r in load.records if r.started > done} == {label(2)}


def test_secrets_rollback_and_delete_reach_every_node(platform: Platform, tmp_path: Path) -> None:
    folder = write_worker(tmp_path / "w", "sec", 1)
    deploy(platform.node(0), folder)
    write_worker(folder, "sec", 2)
    deploy(platform.node(0), folder)
    with platform.node(2).client() as client:
        all_activated(client.put_secret("sec", "API_KEY", "s3cret-value"))
    for index in range(3):
        assert platform.node(index).get("sec.localhost", "/secret").text == "s3cret-value"
    raw = read_key(platform, secrets_key("sec"))
    assert raw is not None
    assert b"s3cret" not in raw
    assert Keyring([KEY]).decrypt(raw, "sec") == {"API_KEY": "s3cret-value"}
    assert not any(b"s3cret" in value for value in every_stored_value(platform))

    with platform.node(1).client() as client:
        all_activated(client.activate("sec", None))  # rollback, from a third node
    assert {platform.node(i).get("sec.localhost").text for i in range(3)} == {label(1)}
    with platform.node(0).client() as client:
        assert client.versions("sec")["previous"] is not None
        all_activated(client.delete("sec"))
    assert {platform.node(i).get("sec.localhost").status_code for i in range(3)} == {404}
    with platform.node(2).client() as client:
        assert client.secrets("sec")["secrets"] == []


def test_concurrent_deploys_of_one_worker_end_on_one_version(
    platform: Platform, tmp_path: Path
) -> None:
    folders = [write_worker(tmp_path / f"w{i}", "race", 10 + i) for i in range(2)]
    answers: list[dict[str, object]] = []
    barrier = threading.Barrier(2)

    def push(index: int) -> None:
        barrier.wait()
        answers.append(deploy(platform.node(index), folders[index]))

    threads = [threading.Thread(target=push, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(answers) == 2
    state = ClusterState.parse(read_key(platform, STATE))
    active = state.workers["race"]["version"]
    winner = next(a for a in answers if a["version"]["id"] == active)  # type: ignore[index]
    served = {platform.node(i).get("race.localhost").text for i in range(3)}
    assert len(served) == 1
    assert served <= {label(10), label(11)}
    assert state.workers["race"]["previous"] in {a["version"]["id"] for a in answers}  # type: ignore[index]
    assert winner["active"] is True


def test_tail_on_one_node_streams_every_node(platform: Platform, tmp_path: Path) -> None:
    deploy(platform.node(0), write_worker(tmp_path / "w", "tailed", 1))
    seen: list[dict[str, object]] = []
    opened = threading.Event()

    def read() -> None:
        with platform.node(0).client() as client:
            for kind, data in client.tail("tailed"):
                if kind == "open":
                    opened.set()
                elif kind == "request":
                    seen.append(data)
                    if {e["node"] for e in seen} >= {"n0", "n1", "n2"}:
                        return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert opened.wait(30)

    def every_node_seen() -> bool:
        for index in range(3):
            platform.node(index).get("tailed.localhost")
        return {e["node"] for e in seen} >= {"n0", "n1", "n2"}

    wait_until(every_node_seen, "events of every node on node 0's tail")
    assert all(e["worker"] == "tailed" for e in seen)


def test_metrics_and_health_show_the_cluster(platform: Platform) -> None:
    health = platform.health(1)
    assert health["status"] == "ready"
    assert health["node"] == "n1"
    assert health["nodes"] == ["n0", "n1", "n2"]
    assert health["degraded"] is False
    with platform.node(1).client() as client:
        text = client._client.get("/metrics").text
    assert 'atoll_cluster_info{node="n1"} 1' in text
    assert "atoll_cluster_nodes 3" in text
    assert "atoll_cluster_up 1" in text
    assert "atoll_cluster_lag_revisions 0" in text


def test_kill_9_of_a_node_mid_load_loses_no_request(platform: Platform, tmp_path: Path) -> None:
    deploy(platform.node(0), write_worker(tmp_path / "w", "sturdy", 1))
    with Load(platform.nginx.url + "/", "sturdy.localhost", threads=4) as load:
        load.wait_for(60)
        killed = time.monotonic()
        platform.kill_node(2)
        load.wait_for(120, after=killed)
        platform.start_node(2)  # back on its port, synced before it listens
        back = time.monotonic()
        load.wait_for(60, after=back)
    assert failed(load.records) == []
    assert {r.body for r in load.records} == {label(1)}
    assert platform.node(2).get("sturdy.localhost").text == label(1)


def test_a_node_started_late_serves_the_active_versions(platform: Platform, tmp_path: Path) -> None:
    deploy(platform.node(0), write_worker(tmp_path / "w", "early", 3))
    with platform.node(0).client() as client:
        client.put_secret("early", "API_KEY", "known-before")
    # a worker that calls another whose name sorts after it: the late node copies both
    deploy(platform.node(0), write_worker(tmp_path / "back", "zz-back", 7))
    front = write_worker(tmp_path / "front", "aa-front", 8)
    with (front / "atoll.toml").open("a") as toml:
        toml.write('[[services]]\nbinding = "BACK"\nservice = "zz-back"\n')
    deploy(platform.node(1), front)
    sentinel = Sentinel(tmp_path / "sentinel", platform.redis.port)
    sentinel.start()  # the late node finds the master through Sentinel
    try:
        late = start_serve(
            tmp_path / "late", "--cluster", sentinel.url, "--kv", platform.redis.url,
            "--node-id", "late", "--log-level", "warning",
        )  # fmt: skip
        try:
            assert late.get("early.localhost").text == label(3)  # its first answer
            assert late.get("early.localhost", "/secret").text == "known-before"
            assert late.get("aa-front.localhost").text == label(8)
            assert late.get("zz-back.localhost").text == label(7)
            assert httpx.get(late.admin + "/health").json()["status"] == "ready"
            with late.client() as client:  # and it takes changes for the whole cluster
                client.put_secret("early", "API_KEY", "from-late")
            assert platform.node(1).get("early.localhost", "/secret").text == "from-late"
        finally:
            late.stop()
    finally:
        sentinel.stop()


def test_a_node_without_the_key_serves_the_workers_it_can(
    platform: Platform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deploy(platform.node(0), write_worker(tmp_path / "w", "keyless", 4))
    with platform.node(0).client() as client:
        client.put_secret("keyed", "API_KEY", "only-for-key-holders")
    deploy(platform.node(0), write_worker(tmp_path / "k", "keyed", 5))
    monkeypatch.setenv("ATOLL_CLUSTER_KEYS", Keyring.generate())  # not the cluster's key
    stranger = start_serve(
        tmp_path / "stranger", "--cluster", platform.redis.url, "--node-id", "stranger",
    )  # fmt: skip
    try:
        assert stranger.get("keyless.localhost").text == label(4)
        assert stranger.get("keyed.localhost").status_code == 404  # not served without them
        assert httpx.get(stranger.admin + "/health").json()["status"] == "ready"
    finally:
        stranger.stop()
    assert "worker keyed: secrets not mirrored" in stranger.log()
    assert "key this node does not hold" in stranger.log()
    assert "only-for-key-holders" not in stranger.log()


def test_redis_down_nodes_serve_refuse_changes_and_catch_up(
    platform: Platform, tmp_path: Path
) -> None:
    folder = write_worker(tmp_path / "w", "durable", 1)
    all_activated(deploy(platform.node(0), folder))
    with platform.node(1).client() as client:
        client.put_secret("durable", "API_KEY", "acked")
    kv = write_worker(tmp_path / "kv", "kvw", 1, python=KV_WORKER)
    with (kv / "atoll.toml").open("a") as toml:
        toml.write('[[kv_namespaces]]\nbinding = "CACHE"\nid = "cache"\n')
    deploy(platform.node(0), kv)
    put = httpx.put(platform.nginx.url + "/k", content=b"kept", headers={"host": "kvw.localhost"})
    assert put.text == "stored"

    with Load(platform.nginx.url + "/", "durable.localhost", threads=2) as load:
        load.wait_for(20)
        platform.redis.kill()
        down = time.monotonic()

        def refused() -> bool:
            with platform.node(2).client() as client:
                text = client._client.get("/metrics").text
            return "atoll_cluster_up 0" in text

        wait_until(refused, "node 2 sees Redis down")
        write_worker(folder, "durable", 2)
        with pytest.raises(ControlError, match="unreachable"):
            deploy(platform.node(2), folder)
        with platform.node(0).client() as client, pytest.raises(ControlError, match="unreachable"):
            client.put_secret("durable", "API_KEY", "refused")
        load.wait_for(40, after=down)
        assert platform.health(0)["degraded"] is True
        platform.redis.start()  # same port, same AOF
        up = time.monotonic()
        for index in range(3):
            wait_until(lambda i=index: not platform.health(i)["degraded"], f"node {index} back")
        load.wait_for(20, after=up)
    assert failed(load.records) == []
    assert {r.body for r in load.records} == {label(1)}
    # nothing acknowledged was lost: the deploy, the secret, the KV write
    state = ClusterState.parse(read_key(platform, STATE))
    assert "durable" in state.workers
    assert "kvw" in state.workers
    assert platform.node(2).get("durable.localhost", "/secret").text == "acked"
    assert httpx.get(platform.nginx.url + "/k", headers={"host": "kvw.localhost"}).text == "kept"
    # and changes work again, everywhere
    all_activated(deploy(platform.node(2), folder))
    assert {platform.node(i).get("durable.localhost").text for i in range(3)} == {label(2)}


def test_atoll_deploy_says_on_how_many_nodes(platform: Platform, tmp_path: Path) -> None:
    folder = write_worker(tmp_path / "w", "said", 1)
    result = run_cli(deploy_command, platform.node(1), str(folder), "--no-build")
    assert result.exit_code == 0, result.output
    assert "cluster: active on 3/3 nodes" in result.output
    with platform.node(2).client() as two, platform.node(0).client() as zero:
        listed = [v["id"] for v in two.versions("said")["versions"]]  # every node lists it
        assert listed == [v["id"] for v in zero.versions("said")["versions"]]


CRON_WORKER = """
from atoll import Response

async def fetch(request, env, ctx):
    return Response("fetch")

async def scheduled(event, env, ctx):
    ctx.log(event.cron)
"""
T0 = datetime(2026, 12, 6, 1, 0, 0, tzinfo=UTC).timestamp()


async def _three_nodes_tick(
    url: str, worker: Worker, tmp_path: Path
) -> tuple[list[str], list[RedisClaims]]:
    """Three schedulers as on three nodes (each its own claims file), ticked over 3 times."""
    ran: list[str] = []
    claims = [
        RedisClaims(url, f"c{i}", SqliteClaims(_folder(tmp_path / f"node{i}") / "cron.sqlite"))
        for i in range(3)
    ]

    def record(index: int) -> RunHook:
        return lambda w, e, r, ms: ran.append(f"c{index}")

    schedulers = [
        Scheduler(lambda: {worker.name: worker}, claims[i], on_run=(record(i),)) for i in range(3)
    ]
    for scheduler in schedulers:
        scheduler.tick_due(T0, run=False)
    for step in (300, 600, 900):
        for scheduler in schedulers:
            scheduler.tick_due(T0 + step + 1)
        for scheduler in schedulers:
            while scheduler.running:
                await asyncio.gather(*scheduler.running)
    return ran, claims


def _folder(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


async def test_each_scheduled_time_runs_once_per_cluster(
    platform: Platform, make_worker: WorkerFactory, runtime: Runtime, tmp_path: Path
) -> None:
    folder = make_worker(CRON_WORKER, extra='[triggers]\ncrons = ["*/5 * * * *"]')
    worker = load_worker(folder, runtime=runtime)
    ran, claims = await _three_nodes_tick(platform.redis.url, worker, tmp_path / "up")
    assert len(ran) == 3  # 01:05, 01:10, 01:15: once each, on whichever node claimed it
    for claim in claims:
        claim.close()

    dead = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens: Redis unreachable
    ran, claims = await _three_nodes_tick(dead, worker, tmp_path / "down")
    assert sorted(ran) == sorted(["c0", "c1", "c2"] * 3)  # once per node, on each node's claims
    for claim in claims:
        claim.close()


def test_sentinel_urls_are_read() -> None:
    client = connect("redis+sentinel://:pw@127.0.0.1:26379,127.0.0.2:26380/atoll/2")
    pool = client.connection_pool
    assert pool.service_name == "atoll"
    assert [
        s.connection_pool.connection_kwargs["port"] for s in pool.sentinel_manager.sentinels
    ] == [
        26379,
        26380,
    ]
    assert pool.connection_kwargs["db"] == 2
    with pytest.raises(ConfigError, match="not a Redis URL"):
        connect("redis+sentinel://127.0.0.1:26379")


def test_keyring_rotation() -> None:
    old, new = Keyring([KEY]), Keyring([Keyring.generate(), KEY])
    token = old.encrypt({"A": "1"})
    assert new.decrypt(token, "w") == {"A": "1"}  # new first, old still decrypts
    rotated = new.rotate(token)
    newest_only = Keyring([new.keys[0]])
    assert newest_only.decrypt(rotated, "w") == {"A": "1"}
    with pytest.raises(ControlError, match="key this node does not hold"):
        newest_only.decrypt(token, "w")
    with pytest.raises(ConfigError, match="needs a key"):
        Keyring([])


def test_nginx_config_command() -> None:
    runner = CliRunner()
    result = runner.invoke(cluster_command, ["nginx-config", "--nodes", "10.0.0.1:8787,b:1"])
    assert result.exit_code == 0
    assert "server 10.0.0.1:8787 max_fails=1" in result.output
    assert "proxy_next_upstream error timeout http_502 http_503;" in result.output
    assert "non_idempotent;" not in result.output
    bad = runner.invoke(cluster_command, ["nginx-config", "--nodes", "nohost"])
    assert bad.exit_code != 0
    assert "HOST:PORT" in bad.output


def test_a_change_redis_refuses_midway_is_undone_on_the_node(
    platform: Platform, tmp_path: Path, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The node checks and stores a change, then Redis fails before the commit: the node's
    folder goes back to the cluster's state, or is marked stale until Redis answers."""
    deploy(platform.node(0), write_worker(tmp_path / "w", "midway", 1))
    state = State(tmp_path / "node")
    state.prepare()
    cluster = Cluster(platform.redis.url, "midway-node", Keyring([KEY]))
    deployer = ClusterDeployer(state, runtime, cluster)
    try:
        deployer.mirror(cluster.read())
        active = state.active("midway")
        assert active is not None

        def refuse(*_: object) -> ClusterState:
            cluster.redis = connect(f"redis://127.0.0.1:{free_port()}/0")  # Redis goes away
            raise ControlError("the cluster store (Redis) is unreachable: gone")

        monkeypatch.setattr(cluster, "activate", refuse)
        with pytest.raises(ControlError, match="unreachable"):
            deployer.upload("midway", pack(write_worker(tmp_path / "w", "midway", 2)))
        assert cluster.stale  # the folder could not be put back yet
        cluster.redis = connect(platform.redis.url)  # Redis answers again: the link mirrors
        assert deployer.mirror(cluster.read()) == {}
        assert state.active("midway") == active
    finally:
        cluster.close()
