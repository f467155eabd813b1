"""Real parts for the cluster tests and benchmark: redis-server, nginx and `atoll serve` nodes.

Everything listens on 127.0.0.1 at ports picked here; every child is stopped
by :meth:`Platform.close`. ``redis-server`` runs with ``appendonly yes`` and
``appendfsync always`` (an acknowledged write is on disk), RDB snapshots off.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from atoll.cli.cluster import nginx_config
from tests.control.serving import Node, start_serve

__all__ = ["KEY", "Nginx", "Platform", "Redis", "Sentinel", "free_port"]

#: A fixed Fernet key for the tests (never used anywhere else).
KEY = "iblGNr2F0_QxBipyTppLb_SZ94xSRLO6l8abMuttRxc="


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_port(port: int, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.02)
    raise RuntimeError(f"{what} did not listen on {port} within 15 s")


class Redis:
    """``redis-server`` with AOF fsynced on every write, restartable on the same port and data."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is not installed: run scripts/setup.sh"
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.folder)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        _wait_port(self.port, self.proc, "redis-server")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:  # loading the AOF answers -LOADING
            with socket.create_connection(("127.0.0.1", self.port), 2) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(64).startswith(b"+PONG"):
                    return
            time.sleep(0.02)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)


class Sentinel:
    """One ``redis-server --sentinel`` watching ``master_port`` as the service ``atoll``."""

    def __init__(self, folder: Path, master_port: int) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.conf = folder / "sentinel.conf"
        self.conf.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {folder}\n"
            f"sentinel monitor atoll 127.0.0.1 {master_port} 1\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis+sentinel://127.0.0.1:{self.port}/atoll/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is not installed: run scripts/setup.sh"
        self.proc = subprocess.Popen(
            [binary, str(self.conf), "--sentinel"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_port(self.port, self.proc, "redis-sentinel")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


class Nginx:
    """nginx in the foreground with the config ``atoll cluster nginx-config`` prints."""

    def __init__(self, folder: Path, nodes: list[str]) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        http = nginx_config(nodes, listen=f"127.0.0.1:{self.port}")
        (folder / "nginx.conf").write_text(
            f"""daemon off;
worker_processes 1;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {folder}/body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
{http}
}}
"""
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        assert os.path.exists(binary), "nginx is not installed: run scripts/setup.sh"
        self.proc = subprocess.Popen(
            [binary, "-c", str(self.folder / "nginx.conf"), "-p", str(self.folder)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_port(self.port, self.proc, "nginx")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


class Platform:
    """Redis, ``count`` nodes on fixed loopback ports, and nginx in front of them."""

    def __init__(self, root: Path, count: int = 3, *, processes: int = 1) -> None:
        self.root = root
        self.processes = processes
        self.redis = Redis(root / "redis")
        self.ports = [free_port() for _ in range(count)]
        self.nodes: list[Node | None] = [None] * count
        self.nginx = Nginx(root / "nginx", [f"127.0.0.1:{p}" for p in self.ports])
        os.environ["ATOLL_CLUSTER_KEYS"] = KEY

    def start(self) -> Platform:
        self.redis.start()
        with ThreadPoolExecutor(len(self.ports)) as pool:  # nodes start at once, as machines do
            list(pool.map(self.start_node, range(len(self.ports))))
        self.nginx.start()
        return self

    def start_node(self, index: int) -> Node:
        node = start_serve(
            self.root / f"node{index}",
            "--cluster", self.redis.url, "--port", str(self.ports[index]),
            "--node-id", f"n{index}", "--log-level", "warning",
            processes=self.processes,
        )  # fmt: skip
        self.nodes[index] = node
        return node

    def node(self, index: int) -> Node:
        node = self.nodes[index]
        assert node is not None
        return node

    def kill_node(self, index: int) -> None:
        """``kill -9`` a node's supervisor and its serving processes at once (a machine dying)."""
        node = self.node(index)
        pids = [node.proc.pid, *_children(node.proc.pid)]
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        node.stop()
        self.nodes[index] = None

    def health(self, index: int) -> dict[str, object]:
        node = self.node(index)
        answer: dict[str, object] = httpx.get(node.admin + "/health", timeout=10).json()
        return answer

    def close(self) -> None:
        self.nginx.stop()
        for node in self.nodes:
            if node is not None:
                node.stop()
        self.redis.kill()
