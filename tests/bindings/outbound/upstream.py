"""A tiny HTTP/1.1 server on 127.0.0.1 for subrequest tests (asyncio, keep-alive).

Routes: ``/hello``; ``/echo`` (method, Host, headers and body back as JSON);
``/redirect?to=URL&status=302``; ``/big?n=BYTES``; ``/slow?s=SECONDS``;
``/gzip`` (a gzip-encoded body). It counts the connections it accepted.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import threading
from urllib.parse import parse_qs, urlsplit


class Upstream:
    def __init__(self) -> None:
        self.server: asyncio.Server | None = None
        self.port = 0
        self.connections = 0
        self.requests: list[dict[str, object]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> Upstream:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self.server.wait_closed()

    def start_in_thread(self) -> Upstream:
        """Serve from a thread of its own (for callers that block their loop: wasm guests)."""
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.run_until_complete(self.start())
            ready.set()
            loop.run_forever()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        ready.wait(10)
        self._loop = loop
        return self

    def stop_thread(self) -> None:
        loop = self._loop
        asyncio.run_coroutine_threadsafe(self.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        self._thread.join(10)
        loop.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers = [tuple(line.split(": ", 1)) for line in lines[1:] if line]
                length = int(dict((k.lower(), v) for k, v in headers).get("content-length", 0))
                body = await reader.readexactly(length) if length else b""
                self.requests.append({"method": method, "target": target, "headers": headers})
                status, extra, payload = await self._route(method, target, headers, body)
                out = [f"HTTP/1.1 {status} X", f"content-length: {len(payload)}", *extra]
                writer.write(("\r\n".join(out) + "\r\n\r\n").encode() + payload)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def _route(
        self, method: str, target: str, headers: list[tuple[str, ...]], body: bytes
    ) -> tuple[int, list[str], bytes]:
        parts = urlsplit(target)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        if parts.path == "/hello":
            return 200, ["content-type: text/plain"], b"hello from upstream"
        if parts.path == "/echo":
            data = {
                "method": method,
                "headers": [list(h) for h in headers],
                "body": body.decode("latin-1"),
            }
            return 200, ["content-type: application/json"], json.dumps(data).encode()
        if parts.path == "/redirect":
            return int(query.get("status", "302")), [f"location: {query['to']}"], b""
        if parts.path == "/loop":
            return 302, ["location: /loop"], b""
        if parts.path == "/big":
            return 200, [], b"x" * int(query["n"])
        if parts.path == "/slow":
            await asyncio.sleep(float(query["s"]))
            return 200, [], b"slow"
        if parts.path == "/gzip":
            return 200, ["content-encoding: gzip"], gzip.compress(b"unzipped " * 10)
        return 404, [], b"not found"
