"""``atoll serve --state DIR``: host every deployed worker, with an admin API for deploys."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from atoll.bindings.kv import DEFAULT_SPEC
from atoll.cli.common import fail_on_errors, setup_logging, stderr
from atoll.cli.server_options import server_limit_options, server_limits
from atoll.control.supervisor import ServeOptions, Supervisor
from atoll.http.server import DEFAULT_LOOPS

__all__ = ["serve"]


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


@click.command()
@click.option(
    "--state",
    "state_dir",
    required=True,
    envvar="ATOLL_STATE",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder of deployed versions, active pointers and secrets (created if missing).",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to serve on.")
@click.option("--port", default=8787, show_default=True, type=int, help="Port (0: any free port).")
@click.option(
    "--admin-host", default="127.0.0.1", show_default=True, help="Address of the admin API."
)
@click.option(
    "--admin-port", default=8788, show_default=True, type=int, help="Port of the admin API."
)
@click.option(
    "--processes",
    type=click.IntRange(1, 256),
    default=None,
    help="Serving processes on the port (default: one per core).",
)
@click.option(
    "--loops",
    default=DEFAULT_LOOPS,
    show_default=True,
    type=click.IntRange(1, 64),
    help=(
        "Event loops (threads) per process: one serves, the rest are spares that take over"
        " new connections while it is stuck in wasm and run the routes found slow."
    ),
)
@click.option(
    "--kv",
    "kv_spec",
    default=None,
    envvar="ATOLL_KV",
    metavar="SPEC",
    help="KV store: sqlite (DIR/kv.sqlite3), sqlite:PATH, redis://HOST:PORT/DB, memory (per "
    "process). Default: sqlite, or the --cluster Redis.",
)
@click.option(
    "--cluster",
    "cluster_url",
    default=None,
    envvar="ATOLL_CLUSTER",
    metavar="URL",
    help="Join the cluster whose store is this Redis (redis://HOST:6379/0, or "
    "redis+sentinel://HOST:26379/SERVICE): deploys and secrets go to every node.",
)
@click.option(
    "--cluster-keys",
    default=None,
    type=click.Path(dir_okay=False, path_type=Path),
    help="File of the keys that encrypt secrets in the cluster store, one per line, the "
    "current first (default: $ATOLL_CLUSTER_KEYS, comma-separated).",
)
@click.option(
    "--node-id",
    default=None,
    help="This node's name in the cluster (default: HOSTNAME:PORT).",
)
@click.option(
    "--token",
    envvar="ATOLL_ADMIN_TOKEN",
    default=None,
    help="Admin API bearer token (default: $ATOLL_ADMIN_TOKEN, else DIR/admin-token).",
)
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
)
@server_limit_options
def serve(
    state_dir: Path,
    host: str,
    port: int,
    admin_host: str,
    admin_port: int,
    processes: int | None,
    loops: int,
    kv_spec: str | None,
    cluster_url: str | None,
    cluster_keys: Path | None,
    node_id: str | None,
    token: str | None,
    log_level: str,
    **limit_options: Any,
) -> None:
    """Serve every worker deployed to the state folder DIR, routed by their `routes`.

    Deploy with `atoll deploy`; manage with `atoll versions`, `rollback`,
    `delete`, `secret` and `tail`, all through the admin API (bearer token).
    A worker without routes answers at http://NAME.localhost:PORT/. Stop with
    Ctrl-C: requests in flight finish. With --cluster, nodes sharing one Redis
    serve the same workers (docs/cluster.md).
    """
    setup_logging(log_level)
    limits, body_memory = server_limits(limit_options)
    count = processes or _cores()
    if kv_spec is None:
        plain_redis = cluster_url is not None and cluster_url.startswith(("redis://", "rediss://"))
        kv_spec = cluster_url if plain_redis and cluster_url else DEFAULT_SPEC
    options = ServeOptions(
        state=state_dir,
        host=host,
        port=port,
        admin_host=admin_host,
        admin_port=admin_port,
        processes=count,
        loops=loops,
        token=token,
        log_level=log_level,
        kv=kv_spec,
        server_limits=limits,
        body_memory=body_memory,
        cluster=cluster_url,
        cluster_keys=cluster_keys,
        node_id=node_id,
    )

    def ready(
        bound_host: str, bound_port: int, a_host: str, a_port: int, token_file: str | None
    ) -> None:
        stderr.print(
            f"[bold]atoll serve[/]: ready on http://{bound_host}:{bound_port}/ "
            f"({count} processes x {loops} loops); admin API on http://{a_host}:{a_port}/",
            markup=True,
        )
        if token_file is not None:
            stderr.print(f"admin token: in {token_file}", markup=False)
        cluster = supervisor.cluster
        if cluster is not None:
            stderr.print(
                f"cluster node {cluster.node_id}: serving rev {cluster.applied} of {cluster.url}",
                markup=False,
            )

    with fail_on_errors():
        supervisor = Supervisor(options)
        supervisor.run(ready)
