"""The network side of subrequests: httpx's transport, connecting only to checked addresses.

Imported by :meth:`atoll.bindings.outbound.client.Upstream.client` on a process's
first subrequest, not before: httpx and httpcore are most of what a worker's cold
start would otherwise import for nothing.
"""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import httpcore
import httpx

from atoll.bindings.outbound.policy import EgressPolicy, IPAddress
from atoll.errors import EgressRefusedError, SubrequestError

__all__ = ["PinnedBackend", "PinnedTransport", "Resolve"]

#: ``await resolve(host, port)`` → the addresses the name resolves to (the client's resolver,
#: looked up at each call so that tests can swap it).
Resolve = Callable[[str, int], Awaitable[Iterable[IPAddress]]]


class PinnedBackend(httpcore.AsyncNetworkBackend):
    """Resolves, checks every address against the policy, connects to one that passed."""

    def __init__(
        self, policy: EgressPolicy, resolve: Resolve, scheme: contextvars.ContextVar[str]
    ) -> None:
        self.policy = policy
        self.resolve = resolve
        self.scheme = scheme
        self.inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        scheme = self.scheme.get() or ("https" if port == 443 else "http")
        addresses = await self.resolve(host, port)
        refusal: EgressRefusedError | None = None
        failure: Exception | None = None
        for address in addresses:
            try:
                self.policy.check_address(scheme, host.lower(), port, address)
            except EgressRefusedError as exc:
                refusal = refusal or exc
                continue
            try:  # the checked address, not the name: nothing resolves it again
                return await self.inner.connect_tcp(
                    str(address), port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc  # the next address that passed, if any
        if failure is not None:
            raise failure
        if refusal is not None:
            raise refusal
        raise SubrequestError(f"fetch: {host!r} resolves to no address", reason="dns")

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise EgressRefusedError("fetch: unix sockets are never reachable", reason="scheme")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class PinnedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport with the pool's network backend swapped for :class:`PinnedBackend`."""

    def __init__(
        self, policy: EgressPolicy, resolve: Resolve, scheme: contextvars.ContextVar[str]
    ) -> None:
        super().__init__(trust_env=False, retries=0)
        # httpx builds its pool without a backend argument; ours replaces it before first use.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=100,
            max_keepalive_connections=20,
            keepalive_expiry=5.0,
            http1=True,
            http2=False,
            network_backend=PinnedBackend(policy, resolve, scheme),
        )
