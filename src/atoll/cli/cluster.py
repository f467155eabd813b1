"""``atoll cluster``: helpers for running nodes as one cluster (docs/cluster.md).

- ``keygen`` prints a new key to encrypt secrets with (Fernet).
- ``rekey`` encrypts every secret in the cluster store again with the first key
  (the step of a key rotation between "new key first" and "drop the old key").
- ``nginx-config`` prints an nginx configuration that spreads traffic over nodes.
"""

from __future__ import annotations

from pathlib import Path

import click

from atoll.cli.common import fail_on_errors
from atoll.errors import ConfigError

__all__ = ["cluster", "nginx_config"]


@click.group()
def cluster() -> None:
    """Run several `atoll serve --cluster` nodes as one platform."""


@cluster.command()
def keygen() -> None:
    """Print a new key for the secrets in the cluster store (give it to every node)."""
    from atoll.control.cluster import Keyring

    click.echo(Keyring.generate())


@cluster.command()
@click.option("--cluster", "url", required=True, envvar="ATOLL_CLUSTER", metavar="URL")
@click.option("--cluster-keys", type=click.Path(dir_okay=False, path_type=Path), default=None)
def rekey(url: str, cluster_keys: Path | None) -> None:
    """Encrypt every worker's secrets again with the first key (after putting a new key first)."""
    with fail_on_errors():
        from atoll.control.cluster import Keyring, connect, secrets_key

        keyring = Keyring.load(cluster_keys)
        client = connect(url)
        count = 0
        for key in client.scan_iter(match=secrets_key("*")):
            token = client.get(key)
            if token:
                client.set(key, keyring.rotate(bytes(token)))
                count += 1
        click.echo(f"{count} workers' secrets encrypted with the first key")


def nginx_config(nodes: list[str], *, listen: str = "80") -> str:
    """An nginx ``http {}`` fragment: one upstream over ``nodes``, passive health checks."""
    servers = "\n".join(f"    server {node} max_fails=1 fail_timeout=2s;" for node in nodes)
    return f"""\
# atoll cluster nginx-config --nodes {",".join(nodes)}
# Put inside http {{ }} (e.g. /etc/nginx/conf.d/atoll.conf).
#
# Open-source nginx has no active health checks (that is NGINX Plus): a node is
# marked down for fail_timeout after a failed connection or a 502/503, and the
# request is retried on the next node. A node still syncing at start does not
# listen yet (connection refused), so nginx passes it by. GET /health on each
# node's admin port says "ready" once it has synced: point an external checker
# (or your orchestrator) at it.
upstream atoll {{
{servers}
    keepalive 64;
}}

server {{
    listen {listen};
    client_max_body_size 100m;

    location / {{
        proxy_pass http://atoll;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $host;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_connect_timeout 1s;
        # Retry on the next node when a node is down or restarting. A request
        # that was sent and may have run is retried only if idempotent (nginx's
        # default: POST, PATCH, LOCK are not; add non_idempotent only if your
        # workers tolerate a second run).
        proxy_next_upstream error timeout http_502 http_503;
        proxy_next_upstream_tries 3;
        proxy_next_upstream_timeout 10s;
    }}
}}
"""


@cluster.command("nginx-config")
@click.option(
    "--nodes",
    required=True,
    help="The nodes' serving addresses, comma-separated: 10.0.0.1:8787,10.0.0.2:8787",
)
@click.option("--listen", default="80", show_default=True, help="nginx's listen directive.")
def nginx_config_command(nodes: str, listen: str) -> None:
    """Print an nginx configuration that spreads traffic over the nodes, with retries."""
    with fail_on_errors():
        addresses = [n.strip() for n in nodes.split(",") if n.strip()]
        for address in addresses:
            host, _, port = address.rpartition(":")
            if not host or not port.isdigit():
                raise ConfigError(
                    f"--nodes: {address!r} is not HOST:PORT", hint="e.g. 10.0.0.1:8787"
                )
        click.echo(nginx_config(addresses, listen=listen), nl=False)
