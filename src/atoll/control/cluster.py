"""Many ``atoll serve`` nodes as one platform, through one Redis (``atoll serve --cluster URL``).

What lives where::

    Redis (the source of truth)                  each node (a mirror, in its --state folder)
    atoll:state        JSON {rev, workers:        workers/NAME/versions/<id>/bundle  unpacked copy
                       {NAME: pointer+routes},    workers/NAME/active.json           = the cluster's
                       secrets: {NAME: rev}}      secrets/NAME.json                  decrypted copy
    atoll:versions:N   hash id → version.json     cache/                             compiled code
    atoll:bundle:N:ID  the uploaded archive
    atoll:secrets:N    Fernet token of {KEY: value}
    atoll:nodes        hash node → {rev, seen}
    atoll:changes      pub/sub: "a new rev" (a hint; the rev in atoll:state decides)
    atoll:tail         pub/sub: tail events of every node
    atoll:tail-filters hash node → the tail filters its streams want

A change (deploy, rollback, delete, secret) made through any node's admin
API is checked on that node as before (``deployer.py``: unpacked, loaded,
compiled), then written to Redis: the archive once under its content address
(``SET NX``), then ``atoll:state`` in a ``WATCH``/``MULTI`` transaction that
bumps ``rev`` (two nodes changing the same worker at once: one transaction
wins, the other retries on the new state, so the cluster ends on one active
version). Only once Redis has answered ``EXEC`` (with ``appendfsync always``,
once the change is on its disk) is the change acknowledged. Then the node
publishes the new rev; every node (including this one) reads ``atoll:state``,
fetches the archives it lacks, checks and compiles them into its own cache,
writes its mirror and tells its serving processes to swap (``supervisor.py``),
then writes the rev it serves into ``atoll:nodes``. The admin call waits a
short while for every live node to report that rev, and answers with how many
did. A missed message costs nothing: each node also reads the rev every
second.

Redis unreachable: nodes serve their mirror unchanged (logged, ``/metrics``
says ``atoll_cluster_up 0``); changes are refused with a :class:`ControlError`
that says so; every second a node tries again, and catches up when it answers.

Calls into Redis here are blocking (redis-py's sync client, thread-safe): the
supervisor runs them in worker threads, never on its event loop.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
import urllib.parse
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from redis.exceptions import RedisError, WatchError

from atoll.control.deployer import Deployer, Upload
from atoll.control.secret_store import SecretStore
from atoll.control.state import Pointer, State, VersionInfo
from atoll.errors import AtollError, ConfigError, ControlError
from atoll.manifest.routes import Route, conflicts, default_routes, parse_route

__all__ = [
    "CHANGES",
    "Cluster",
    "ClusterDeployer",
    "ClusterState",
    "Keyring",
    "RedisClaims",
    "RedisError",
    "connect",
]

log = logging.getLogger("atoll.cluster")

STATE = "atoll:state"
NODES = "atoll:nodes"
CHANGES = "atoll:changes"
TAIL = "atoll:tail"
TAIL_FILTERS = "atoll:tail-filters"
#: Seconds without a heartbeat after which a node no longer counts as part of the cluster.
NODE_TTL = 5.0
#: How long a cron claim is kept in Redis (it matters only around its time).
CLAIM_HOLD_MS = 3600 * 1000
#: Seconds a node leaves Redis out of cron claims after a failed one.
CLAIM_RETRY = 5.0
#: Env var with the secrets' keys, comma-separated, the one to encrypt with first.
KEYS_ENV = "ATOLL_CLUSTER_KEYS"


def bundle_key(name: str, version: str) -> str:
    return f"atoll:bundle:{name}:{version}"


def versions_key(name: str) -> str:
    return f"atoll:versions:{name}"


def secrets_key(name: str) -> str:
    return f"atoll:secrets:{name}"


def connect(url: str, *, timeout: float = 2.0) -> Any:
    """A client for ``redis://``/``rediss://``/``unix://`` URLs, or a Sentinel-managed master.

    Sentinel: ``redis+sentinel://[:PASSWORD@]HOST:PORT[,HOST:PORT...]/SERVICE[/DB]`` asks the
    sentinels which server is the master of SERVICE, and again after a failover.
    Raises :class:`ConfigError` for a URL it cannot read. Connects lazily. Typed ``Any``:
    redis-py's stubs mix ``bytes`` and ``str`` answers, and this client answers ``bytes``.
    """
    try:
        if url.startswith("redis+sentinel://"):
            from redis.sentinel import Sentinel

            parsed = urllib.parse.urlsplit(url)
            hosts = []
            for part in parsed.netloc.rpartition("@")[2].split(","):
                host, _, port = part.rpartition(":")
                hosts.append((host or "127.0.0.1", int(port or 26379)))
            path = [p for p in parsed.path.split("/") if p]
            if not path:
                raise ValueError("no service name")
            db = int(path[1]) if len(path) > 1 else 0
            sentinel = Sentinel(hosts, socket_timeout=timeout, socket_connect_timeout=timeout)
            return sentinel.master_for(
                path[0], db=db, password=parsed.password, socket_timeout=timeout
            )
        return redis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout, health_check_interval=10
        )
    except ValueError as exc:
        raise ConfigError(
            f"--cluster {url!r} is not a Redis URL: {exc}",
            hint="use redis://HOST:6379/0 or redis+sentinel://HOST:26379/SERVICE",
        ) from None


class Keyring:
    """The keys that encrypt secrets in Redis (Fernet: AES-128-CBC + HMAC-SHA256).

    Encrypts with the first key, decrypts with any (``MultiFernet``): to rotate,
    put a new key first on every node, re-encrypt (``atoll cluster rekey``),
    then drop the old one. The keys never go to Redis.
    """

    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise ConfigError(
                "the cluster needs a key to encrypt secrets with",
                hint=f"make one with `atoll cluster keygen`, give it to every node in "
                f"${KEYS_ENV} or --cluster-keys FILE",
            )
        self.keys = [k.strip() for k in keys]
        try:
            self.fernet = MultiFernet([Fernet(k.encode()) for k in self.keys])
        except ValueError:
            raise ConfigError(
                "a cluster key is not a Fernet key (32 url-safe base64-encoded bytes)",
                hint="make one with `atoll cluster keygen`",
            ) from None

    @staticmethod
    def generate() -> str:
        """A new random key."""
        return Fernet.generate_key().decode()

    @classmethod
    def load(cls, keys_file: Path | None) -> Keyring:
        """Keys from ``keys_file`` (one per line, the current first) else ``$ATOLL_CLUSTER_KEYS``."""
        if keys_file is not None:
            try:
                text = keys_file.read_text()
            except OSError as exc:
                raise ConfigError(
                    f"{keys_file}: cannot read the cluster keys: {exc.strerror}"
                ) from None
            lines = [line.strip() for line in text.splitlines()]
            return cls([line for line in lines if line and not line.startswith("#")])
        return cls([k for k in os.environ.get(KEYS_ENV, "").split(",") if k.strip()])

    def encrypt(self, values: dict[str, str]) -> bytes:
        return self.fernet.encrypt(json.dumps(values, sort_keys=True).encode())

    def decrypt(self, token: bytes, worker: str) -> dict[str, str]:
        try:
            data: dict[str, str] = json.loads(self.fernet.decrypt(token))
        except InvalidToken:
            raise ControlError(
                f"the secrets of {worker!r} in the cluster store were encrypted with a key "
                "this node does not hold",
                hint=f"give this node every current key (${KEYS_ENV} or --cluster-keys)",
            ) from None
        return data

    def rotate(self, token: bytes) -> bytes:
        """``token`` encrypted again with the first key."""
        return self.fernet.rotate(token)


@dataclass
class ClusterState:
    """``atoll:state``: the cluster's active versions and secrets' revisions, at ``rev``."""

    rev: int = 0
    workers: dict[str, dict[str, Any]] = field(default_factory=dict)
    """NAME → {version, previous, activated_at, routes}."""
    secrets: dict[str, int] = field(default_factory=dict)
    """NAME → the rev at which its secrets last changed."""

    @classmethod
    def parse(cls, raw: bytes | None) -> ClusterState:
        if not raw:
            return cls()
        data = json.loads(raw)
        return cls(int(data["rev"]), dict(data["workers"]), dict(data["secrets"]))

    def dump(self) -> bytes:
        return json.dumps(
            {"rev": self.rev, "workers": self.workers, "secrets": self.secrets}, sort_keys=True
        ).encode()

    def pointer(self, name: str) -> Pointer | None:
        entry = self.workers.get(name)
        if entry is None:
            return None
        return Pointer(entry["version"], entry.get("previous"), entry["activated_at"])


def _down(exc: Exception) -> ControlError:
    return ControlError(
        f"the cluster store (Redis) is unreachable: {exc}; the change was not made",
        hint="every node keeps serving; retry once Redis answers",
    )


class Cluster:
    """This node's connection to the cluster store. Blocking calls: run them in threads."""

    def __init__(self, url: str, node_id: str, keyring: Keyring) -> None:
        self.url = url
        self.node_id = node_id
        self.keyring = keyring
        self.redis: Any = connect(url)
        self.up = False
        """Whether the last call into Redis succeeded."""
        self.last_sync = 0.0
        """Unix time this node last matched the cluster's rev."""
        self.applied = -1
        """The rev this node serves (-1: none yet)."""
        self.latest = 0
        """The newest rev this node has read from Redis."""
        self.seen: dict[str, dict[str, Any]] = {}
        """Live nodes as of the last heartbeat: id → {rev, seen}."""
        self.stale = False
        """The state folder may differ from the cluster (a change Redis refused midway):
        mirror it again as soon as Redis answers, whatever the rev."""

    # -- reading -----------------------------------------------------------------------------

    def read(self) -> ClusterState:
        """``atoll:state`` now. Raises RedisError when Redis is unreachable."""
        try:
            state = ClusterState.parse(self.redis.get(STATE))
        except RedisError:
            self.up = False
            raise
        self.up = True
        self.latest = max(self.latest, state.rev)
        return state

    def archive(self, name: str, version: str) -> bytes:
        data = self.redis.get(bundle_key(name, version))
        if data is None:
            raise ControlError(f"version {version[:12]} of {name!r} is not in the cluster store")
        return bytes(data)

    def versions(self, name: str) -> dict[str, VersionInfo]:
        raw = self.redis.hgetall(versions_key(name))
        out = {}
        for key, value in raw.items():
            info = json.loads(value)
            info["routes"] = tuple(info["routes"])
            out[key.decode()] = VersionInfo(**info)
        return out

    def secret_values(self, name: str) -> dict[str, str]:
        token = self.redis.get(secrets_key(name))
        return self.keyring.decrypt(bytes(token), name) if token else {}

    # -- writing (refused with a ControlError while Redis is down) ---------------------------

    def check_up(self) -> None:
        try:
            self.redis.ping()
        except RedisError as exc:
            self.up = False
            raise _down(exc) from None
        self.up = True

    def store_version(self, info: VersionInfo, archive: bytes) -> None:
        """The archive under its content address (once), and its ``version.json``."""
        try:
            pipe = self.redis.pipeline(transaction=True)
            pipe.set(bundle_key(info.name, info.id), archive, nx=True)
            pipe.hset(versions_key(info.name), info.id, json.dumps(info.to_json()))
            pipe.execute()
        except RedisError as exc:
            raise _down(exc) from None

    def commit(
        self,
        change: Callable[[ClusterState], Callable[[Any], None] | None],
    ) -> ClusterState:
        """Apply ``change`` to ``atoll:state`` in one optimistic transaction; returns the result.

        ``change(state)`` edits ``state`` in place (raising ControlError to refuse) and may
        return a function that queues more writes on the transaction's pipeline. Retried
        when another node committed meanwhile. The new rev is published once Redis has
        accepted the transaction.
        """
        try:
            with self.redis.pipeline(transaction=True) as pipe:
                while True:
                    try:
                        pipe.watch(STATE)
                        state = ClusterState.parse(pipe.get(STATE))
                        more = change(state)
                        state.rev += 1
                        pipe.multi()
                        pipe.set(STATE, state.dump())
                        if more is not None:
                            more(pipe)
                        pipe.execute()
                        break
                    except WatchError:
                        continue
            self.redis.publish(CHANGES, str(state.rev))
        except RedisError as exc:
            self.up = False
            raise _down(exc) from None
        self.up = True
        self.latest = max(self.latest, state.rev)
        return state

    def activate(self, name: str, version: str, routes: tuple[str, ...]) -> ClusterState:
        def change(state: ClusterState) -> None:
            claims: dict[str, tuple[Route, ...]] = {name: _routes(name, routes)}
            for other, entry in state.workers.items():
                if other != name:
                    claims[other] = _routes(other, tuple(entry.get("routes", ())))
            for pattern, owner, holder in conflicts(claims):
                if name in (owner, holder):
                    other = holder if owner == name else owner
                    raise ControlError(
                        f"route {pattern!r} is already served by worker {other!r}",
                        hint=f"remove it from one of them (atoll delete {other} frees it)",
                    )
            current = state.workers.get(name)
            previous = current.get("previous") if current else None
            if current is not None and current["version"] != version:
                previous = current["version"]
            state.workers[name] = {
                "version": version,
                "previous": previous,
                "activated_at": time.time(),
                "routes": list(routes),
            }

        return self.commit(change)

    def delete_worker(self, name: str) -> ClusterState:
        def change(state: ClusterState) -> Callable[[Any], None]:
            state.workers.pop(name, None)
            state.secrets.pop(name, None)
            ids = list(self.versions(name))

            def more(pipe: Any) -> None:
                pipe.delete(versions_key(name), secrets_key(name))
                for version in ids:
                    pipe.delete(bundle_key(name, version))

            return more

        return self.commit(change)

    def delete_version(self, name: str, version: str) -> ClusterState:
        def change(state: ClusterState) -> Callable[[Any], None]:
            entry = state.workers.get(name)
            if entry is not None and entry["version"] == version:
                raise ControlError(
                    f"version {version[:12]} is the active version of {name!r}",
                    hint="activate another version first, or delete the worker",
                )

            def more(pipe: Any) -> None:
                pipe.hdel(versions_key(name), version)
                pipe.delete(bundle_key(name, version))

            return more

        return self.commit(change)

    def set_secrets(self, name: str, edit: Callable[[dict[str, str]], None]) -> ClusterState:
        """Read, ``edit`` in place and write back ``name``'s secrets, in one transaction."""

        def change(state: ClusterState) -> Callable[[Any], None]:
            values = self.secret_values(name)
            edit(values)
            state.secrets[name] = state.rev + 1
            token = self.keyring.encrypt(values)

            def more(pipe: Any) -> None:
                pipe.set(secrets_key(name), token)

            return more

        return self.commit(change)

    # -- nodes ---------------------------------------------------------------------------------

    def heartbeat(self) -> None:
        """Say this node is alive and which rev it serves; read who else is."""
        now = time.time()
        entry = json.dumps({"rev": self.applied, "seen": now})
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(NODES, self.node_id, entry)
        pipe.hgetall(NODES)
        _, raw = pipe.execute()
        self.up = True
        seen = {}
        for key, value in raw.items():
            node = json.loads(value)
            if now - float(node["seen"]) <= NODE_TTL:
                seen[key.decode()] = node
        self.seen = seen

    def wait_activated(self, rev: int, timeout: float) -> dict[str, Any]:
        """Wait up to ``timeout`` s for every live node to serve ``rev``; who did, who not."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                raw = self.redis.hgetall(NODES)
            except RedisError:
                raw = {}
            now = time.time()
            live = {}
            for key, value in raw.items():
                node = json.loads(value)
                if now - float(node["seen"]) <= NODE_TTL:
                    live[key.decode()] = int(node["rev"])
            live.setdefault(self.node_id, self.applied)
            pending = sorted(n for n, r in live.items() if r < rev)
            if not pending or time.monotonic() >= deadline:
                return {
                    "rev": rev,
                    "total": len(live),
                    "activated": len(live) - len(pending),
                    "pending": pending,
                }
            time.sleep(0.01)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.redis.close()


class RedisClaims:
    """Cron claims shared by every node of the cluster (``control/cron.py``'s ``Claims``).

    One ``SET atoll:cron:WORKER:CRON:TIME NODE NX PX`` per scheduled time and
    (worker, cron): the first process of any node to set it runs the trigger,
    so each scheduled time runs once per cluster. Called on a serving loop, so
    Redis gets a short timeout; while Redis is unreachable (and for
    :data:`CLAIM_RETRY` s after a failure, to keep the loop from waiting again)
    the node's own claims decide: each scheduled time then runs once per node.
    """

    def __init__(self, url: str, node_id: str, fallback: Any) -> None:
        self.redis: Any = connect(url, timeout=0.5)
        self.node_id = node_id
        self.fallback = fallback
        self._down_until = 0.0

    def claim(self, worker: str, cron: str, when: float) -> bool:
        if time.monotonic() >= self._down_until:
            key = f"atoll:cron:{worker}:{cron}:{int(when)}"
            try:
                return bool(self.redis.set(key, self.node_id, nx=True, px=CLAIM_HOLD_MS))
            except RedisError as exc:
                self._down_until = time.monotonic() + CLAIM_RETRY
                log.error(
                    "cron %r of %s at %d: the cluster store is unreachable (%s); "
                    "claimed on this node only",
                    cron,
                    worker,
                    when,
                    exc,
                )
        won: bool = self.fallback.claim(worker, cron, when)
        return won

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.redis.close()


def _routes(name: str, patterns: tuple[str, ...]) -> tuple[Route, ...]:
    return tuple(parse_route(p) for p in patterns) or default_routes(name)


class ClusterDeployer(Deployer):
    """A :class:`Deployer` whose changes go to the cluster, and that mirrors the cluster locally.

    Each change is checked locally first (the parent class), then committed to
    Redis (:class:`Cluster`), then the local mirror is rewritten from the
    committed state (:meth:`mirror`). A change Redis refused is undone locally
    by mirroring the last state read. One call at a time (the supervisor's lock).
    """

    def __init__(self, state: State, runtime: Any, cluster: Cluster, **kwargs: Any) -> None:
        super().__init__(state, runtime, **kwargs)
        self.cluster = cluster
        self.current = ClusterState(rev=-1)
        self._copying = False
        self._secret_revs: dict[str, int] = {}

    def _guarded(self, work: Callable[[], ClusterState]) -> ClusterState:
        try:
            committed = work()
        except BaseException:
            self.cluster.stale = True  # the folder may hold the refused change
            with contextlib.suppress(AtollError, RedisError, OSError):
                if not self.mirror(self.current):  # undo what the local check wrote
                    self.cluster.stale = False
            raise
        self.mirror(committed)
        return committed

    def upload(self, name: str, data: bytes, *, activate: bool = True) -> Upload:
        self.cluster.check_up()
        result: list[Upload] = []

        def work() -> ClusterState:
            upload = super(ClusterDeployer, self).upload(name, data, activate=activate)
            result.append(upload)
            self.cluster.store_version(upload.version, data)
            if not activate:
                return self.current
            return self.cluster.activate(name, upload.version.id, upload.version.routes)

        committed = self._guarded(work)
        upload = result[0]
        pointer = committed.pointer(name) if activate else None
        return Upload(upload.version, upload.new, pointer)

    def activate(self, name: str, version: str | None) -> Pointer:
        self.cluster.check_up()
        if version is not None:
            self._fetch_prefix(name, version)

        def work() -> ClusterState:
            pointer = super(ClusterDeployer, self).activate(name, version)
            info = self.state.version_info(name, pointer.version)
            return self.cluster.activate(name, pointer.version, info.routes)

        committed = self._guarded(work)
        pointer = committed.pointer(name)
        assert pointer is not None
        return pointer

    def delete_worker(self, name: str) -> Path:
        self.cluster.check_up()
        self._guarded(lambda: self.cluster.delete_worker(name))
        return self.state.trash_dir

    def delete_version(self, name: str, version: str) -> str:
        self.cluster.check_up()
        self._fetch_prefix(name, version)
        full = self.state.resolve(name, version)
        self._guarded(lambda: self.cluster.delete_version(name, full))
        return full

    def put_secret(self, name: str, key: str, value: str) -> None:
        self.cluster.check_up()

        def work() -> ClusterState:
            super(ClusterDeployer, self).put_secret(name, key, value)  # checks name and size
            return self.cluster.set_secrets(name, lambda values: values.__setitem__(key, value))

        self._guarded(work)

    def delete_secret(self, name: str, key: str) -> None:
        self.cluster.check_up()

        def edit(values: dict[str, str]) -> None:
            if key not in values:
                raise ControlError(f"worker {name!r} has no secret {key!r}")
            del values[key]

        self._guarded(lambda: self.cluster.set_secrets(name, edit))

    def _fetch_prefix(self, name: str, prefix: str) -> None:
        """Copy the cluster's versions of ``name`` starting with ``prefix`` that this node lacks."""
        try:
            known = self.cluster.versions(name)
        except RedisError as exc:
            raise _down(exc) from None
        for version in known:
            if version.startswith(prefix.lower()) and not self.state.has_version(name, version):
                self._fetch(name, version)

    def _check_services(self, manifest: Any) -> None:
        if not self._copying:  # a copy from the cluster was checked where it was deployed
            super()._check_services(manifest)

    def _fetch(self, name: str, version: str) -> None:
        """Copy a version from the cluster store into the mirror (checked and compiled here).

        Its ``[[services]]`` are not checked against this node: the mirror may copy a
        worker before the one it calls, and the deploying node checked them.
        """
        self._copying = True
        try:
            got = Deployer.upload(self, name, self.cluster.archive(name, version), activate=False)
        finally:
            self._copying = False
        if got.version.id != version:
            raise ControlError(
                f"version {version[:12]} of {name!r} in the cluster store unpacks as "
                f"{got.version.id[:12]}",
                hint="the store was written by something else than atoll; redeploy",
            )

    # -- the mirror --------------------------------------------------------------------------

    def mirror(self, target: ClusterState) -> dict[str, str]:
        """Make the state folder match ``target`` (secrets, then bundles, then pointers).

        Runs on every new rev and at start, before the serving processes sync. A
        worker whose version cannot be fetched or loaded keeps what it served;
        returns those errors by worker. Raises RedisError when Redis is unreachable.
        """
        errors: dict[str, str] = {}
        store: SecretStore = self.secrets
        for name, rev in target.secrets.items():
            if self._secret_revs.get(name) != rev:
                try:
                    store.replace(name, self.cluster.secret_values(name))
                except ControlError as exc:  # a key this node lacks: the worker stays as it was
                    errors[name] = str(exc)
                    log.error("worker %s: secrets not mirrored: %s", name, exc)
                    continue
                self._secret_revs[name] = rev
        for name in list(self._secret_revs) + store.workers():
            if name not in target.secrets:
                store.forget(name)
                self._secret_revs.pop(name, None)
        names = list(target.workers)
        pipe = self.cluster.redis.pipeline(transaction=False)
        for name in names:
            pipe.hkeys(versions_key(name))
        stored = {
            n: {k.decode() for k in keys} for n, keys in zip(names, pipe.execute(), strict=True)
        }
        for name, entry in target.workers.items():
            pointer = target.pointer(name)
            assert pointer is not None
            if name in errors:
                continue
            try:
                if not self.state.has_version(name, pointer.version):
                    self._fetch(name, pointer.version)
            except AtollError as exc:
                errors[name] = str(exc)
                log.error(
                    "worker %s: version %s not mirrored: %s", name, entry["version"][:12], exc
                )
                continue
            if self.state.active(name) != pointer:
                self.state.point(name, pointer)
            self._mirror_versions(name, stored[name], pointer.version)
        for name in self.state.workers():
            if name not in target.workers:
                with contextlib.suppress(ControlError, OSError):
                    self.state.delete_worker(name)
        self.current = target
        return errors

    def _mirror_versions(self, name: str, stored: set[str], active: str) -> None:
        """Copy the worker's other stored versions (for rollbacks and listings); drop deleted ones."""
        local = {info.id for info in self.state.versions(name)}
        for version in sorted(stored - local):
            try:
                self._fetch(name, version)
            except AtollError as exc:  # an old version that no longer loads: skipped, said
                log.warning("worker %s: version %s not mirrored: %s", name, version[:12], exc)
        for version in local - stored - {active}:
            with contextlib.suppress(ControlError, OSError):
                self.state.delete_version(name, version)


def tail_filters(raw: dict[bytes, bytes], node_id: str) -> Iterable[dict[str, Any]]:
    """The tail filters other nodes' streams want (entries refreshed within :data:`NODE_TTL`)."""
    now = time.time()
    for key, value in raw.items():
        if key.decode() == node_id:
            continue
        entry = json.loads(value)
        if now - float(entry["seen"]) <= NODE_TTL:
            yield from entry["filters"]
