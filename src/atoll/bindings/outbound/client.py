"""The one host path of every subrequest: Python ``fetch``, JS ``fetch`` and the wasm import.

Where things live and how often they are made:

- One :class:`httpx.AsyncClient` per event loop and egress policy (an httpx
  client is bound to the loop it first ran on; atoll serves from several
  loops, one per thread), made on first use and kept for the process: its
  connection pool stays warm across requests. Workers with equal ``[outbound]``
  rules share one; workers with different rules never share a connection.
- One :class:`Subrequests` per request (or scheduled run), made by the worker
  when the request starts (:func:`begin`): the policy, the limits, the count,
  and a record per subrequest for the log, tail and metrics.

The policy is checked on the URL (and each redirect, followed here, not by
httpx) and again on each address DNS gives, at connect time, by the network
backend of the pool (:class:`_PinnedBackend`): the connection goes to the
address that passed, while TLS still verifies and sends SNI for the host name
of the URL. Proxies from the environment are ignored (``trust_env=False``):
a proxy would connect for us, past the check.

Time spent waiting on the network is not CPU time: ``cpu_ms`` counts wasm
(and JS) execution only, and a subrequest awaits on the loop, so it costs a
request wall time, bounded by ``[limits] subrequest_timeout_s`` per step.
"""

from __future__ import annotations

import asyncio
import contextvars
import ipaddress
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from atoll.bindings.outbound.policy import EgressPolicy, IPAddress, _shown
from atoll.errors import EgressRefusedError, SubrequestError, SubrequestLimitError
from atoll.manifest.schema import Limits

if TYPE_CHECKING:  # httpx is imported on the first subrequest: it is most of a cold start's imports
    import httpx

__all__ = [
    "MAX_REDIRECTS",
    "OUTBOUND",
    "SubrequestRecord",
    "Subrequests",
    "Upstream",
    "begin",
    "current",
    "policy_of",
]

#: Redirects one ``fetch()`` follows at most (the Fetch standard's 20).
MAX_REDIRECTS: Final = 20
MIB: Final = 1024 * 1024
#: Headers not sent on to another origin by a redirect (Fetch drops Authorization).
_CROSS_ORIGIN_DROP: Final = ("authorization", "cookie", "proxy-authorization")

Resolver = Callable[[str, int], Awaitable[list[IPAddress]]]


async def system_resolve(host: str, port: int) -> list[IPAddress]:
    """The addresses of ``host`` from the system resolver (an IP literal: itself)."""
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise SubrequestError(f"fetch: cannot resolve {host!r}: {exc}", reason="dns") from None
    seen: list[IPAddress] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if address not in seen:
            seen.append(address)
    return seen


#: How names are resolved (read at each connect; tests swap in a fake resolver).
resolver: Resolver = system_resolve

#: The scheme of the request being connected (the pool's backend sees only host and port).
_SCHEME: contextvars.ContextVar[str] = contextvars.ContextVar("atoll_outbound_scheme", default="")


def _resolve(host: str, port: int) -> Awaitable[list[IPAddress]]:
    """The module's current :data:`resolver` (tests replace it), for the transport."""
    return resolver(host, port)


class Upstream:
    """The clients of this process, one per (event loop, policy rules). Thread-safe."""

    def __init__(self) -> None:
        self._clients: dict[tuple[int, tuple[Any, ...]], tuple[Any, httpx.AsyncClient]] = {}

    def client(self, policy: EgressPolicy) -> httpx.AsyncClient:
        """The client of the running loop for ``policy`` (made on first use)."""
        loop = asyncio.get_running_loop()
        key = (id(loop), policy.key)
        found = self._clients.get(key)
        if found is not None and found[0] is loop:
            return found[1]
        import httpx

        from atoll.bindings.outbound.transport import PinnedTransport

        client = httpx.AsyncClient(
            transport=PinnedTransport(policy, _resolve, _SCHEME),
            follow_redirects=False,
            trust_env=False,
            timeout=None,
        )
        self._clients[key] = (loop, client)
        return client

    async def aclose_loop(self) -> None:
        """Close the clients of the running loop (a serving loop that stops)."""
        loop = asyncio.get_running_loop()
        for key, (owner, client) in list(self._clients.items()):
            if owner is loop:
                del self._clients[key]
                await client.aclose()


#: The process's clients.
UPSTREAM: Final = Upstream()


@dataclass
class SubrequestRecord:
    """One subrequest, as the tail event and the log show it."""

    method: str
    url: str
    """Without query or fragment (they may carry secrets)."""
    status: int | None
    ms: float
    outcome: str
    """``ok``, ``refused`` or ``error``."""
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "method": self.method,
            "url": self.url,
            "status": self.status,
            "ms": round(self.ms, 3),
            "outcome": self.outcome,
        }
        if self.reason:
            data["reason"] = self.reason
        return data


@dataclass
class Subrequests:
    """One request's subrequests: policy, limits, count, records. Made once per request."""

    policy: EgressPolicy
    limits: Limits
    log: Callable[[str], None]
    records: list[SubrequestRecord] = field(default_factory=list)
    count: int = 0
    _open: list[httpx.Response] = field(default_factory=list)

    async def send(
        self,
        method: str,
        url: str,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes | None = None,
        *,
        redirect: str = "follow",
    ) -> tuple[httpx.Response, bool]:
        """Send one subrequest and follow its redirects (``redirect="follow"``); returns the
        last response, its body not read yet (read it with :meth:`read` or
        :meth:`iter_body`), and whether a redirect was followed. ``redirect="manual"``
        returns a redirect as it is; ``"error"`` raises on one.

        Raises :class:`EgressRefusedError` (the policy), :class:`SubrequestLimitError`
        (``[limits] subrequests``) or :class:`SubrequestError` (network, timeout).
        """
        import httpx

        pairs = [(str(k), str(v)) for k, v in headers]
        method = method.upper()
        redirected = False
        for _hop in range(MAX_REDIRECTS + 1):
            response = await self._one(method, url, pairs, body)
            location = response.headers.get("location")
            if response.status_code not in (301, 302, 303, 307, 308) or location is None:
                return response, redirected
            if redirect == "manual":
                return response, redirected
            await response.aclose()
            if redirect == "error":
                raise self._logged(
                    SubrequestError(
                        f"fetch {_shown(url)}: redirected to {_shown(location)} with "
                        "redirect: 'error'",
                        reason="redirect",
                    )
                )
            target = str(response.url.join(location))
            if response.status_code == 303 or (
                response.status_code in (301, 302) and method == "POST"
            ):
                if method != "HEAD":
                    method = "GET"
                body = None
                pairs = [
                    (k, v) for k, v in pairs if k.lower() not in ("content-type", "content-length")
                ]
            if httpx.URL(target).netloc != httpx.URL(url).netloc or (
                httpx.URL(target).scheme != httpx.URL(url).scheme
            ):
                pairs = [(k, v) for k, v in pairs if k.lower() not in _CROSS_ORIGIN_DROP]
            url = target
            redirected = True
        raise self._logged(
            SubrequestError(
                f"fetch {_shown(url)}: more than {MAX_REDIRECTS} redirects", reason="redirects"
            )
        )

    def _logged(self, error: SubrequestError) -> SubrequestError:
        self.log(f"subrequest error: {error.message}")
        return error

    async def _one(
        self, method: str, url: str, headers: list[tuple[str, str]], body: bytes | None
    ) -> httpx.Response:
        import httpx

        shown = _shown(url)
        started = time.perf_counter()
        if self.count >= self.limits.subrequests:
            error: SubrequestError = SubrequestLimitError(
                f"fetch {shown}: this request already made its {self.limits.subrequests} "
                "subrequests",
                reason="limit",
                hint="raise [limits] subrequests, or make fewer fetch() calls per request",
            )
            self._record(method, shown, None, started, "refused", error)
            raise error
        self.count += 1
        try:
            self.policy.check_url(url)
        except EgressRefusedError as exc:
            self._record(method, shown, None, started, "refused", exc)
            raise
        client = UPSTREAM.client(self.policy)
        timeout = httpx.Timeout(float(self.limits.subrequest_timeout_s))
        token = _SCHEME.set(httpx.URL(url).scheme)
        try:
            request = client.build_request(
                method, url, headers=headers, content=body, timeout=timeout
            )
            response = await client.send(request, stream=True)
        except EgressRefusedError as exc:
            self._record(method, shown, None, started, "refused", exc)
            raise
        except SubrequestError as exc:
            self._record(method, shown, None, started, "error", exc)
            raise
        except httpx.TimeoutException as exc:
            error = SubrequestError(
                f"fetch {shown}: timed out after {self.limits.subrequest_timeout_s} s "
                f"({type(exc).__name__})",
                reason="timeout",
                hint="raise [limits] subrequest_timeout_s, or check the upstream",
            )
            self._record(method, shown, None, started, "error", error)
            raise error from None
        except (httpx.HTTPError, httpx.InvalidURL, OSError) as exc:
            error = SubrequestError(f"fetch {shown}: {type(exc).__name__}: {exc}", reason="network")
            self._record(method, shown, None, started, "error", error)
            raise error from None
        finally:
            _SCHEME.reset(token)
        self._open.append(response)
        self._record(method, shown, response.status_code, started, "ok", None)
        return response

    def _record(
        self,
        method: str,
        shown: str,
        status: int | None,
        started: float,
        outcome: str,
        error: SubrequestError | None,
    ) -> None:
        ms = (time.perf_counter() - started) * 1000
        reason = error.reason if error is not None else ""
        self.records.append(SubrequestRecord(method, shown, status, ms, outcome, reason))
        if error is not None:
            self.log(f"subrequest {outcome}: {error.message}")

    async def iter_body(self, response: httpx.Response) -> AsyncIterator[bytes]:
        """The body of ``response`` in chunks, at most ``subrequest_response_mb`` in all."""
        import httpx

        limit = self.limits.subrequest_response_mb * MIB
        size = 0
        try:
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > limit:
                    raise self._logged(
                        SubrequestError(
                            f"fetch {_shown(str(response.url))}: the response body is over "
                            f"{self.limits.subrequest_response_mb} MiB",
                            reason="too_large",
                            hint="raise [limits] subrequest_response_mb",
                        )
                    )
                yield chunk
        except httpx.HTTPError as exc:
            raise self._logged(
                SubrequestError(
                    f"fetch {_shown(str(response.url))}: reading the body failed: {exc}",
                    reason="timeout" if isinstance(exc, httpx.TimeoutException) else "network",
                )
            ) from None
        finally:
            await response.aclose()

    async def read(self, response: httpx.Response) -> bytes:
        """The whole body of ``response`` (bounded as :meth:`iter_body`)."""
        return b"".join([chunk async for chunk in self.iter_body(response)])

    async def close(self) -> None:
        """Close the responses whose bodies were never read (once, when the request ends)."""
        opened, self._open = self._open, []
        for response in opened:
            if not response.is_closed:
                await response.aclose()


#: The subrequests of the request running in this context (None: not in a request).
OUTBOUND: contextvars.ContextVar[Subrequests | None] = contextvars.ContextVar(
    "atoll_outbound", default=None
)


def policy_of(manifest: Any) -> EgressPolicy:
    """The egress policy of a manifest (once per worker load)."""
    outbound = manifest.outbound
    return EgressPolicy.from_config(
        outbound.allowed_hosts, outbound.denied_hosts, worker=manifest.name
    )


def begin(policy: EgressPolicy, limits: Limits, log: Callable[[str], None]) -> Subrequests:
    """Start a request's subrequests (once per request or scheduled run) and make them
    the current ones of this context."""
    book = Subrequests(policy, limits, log)
    OUTBOUND.set(book)
    return book


def current(what: str = "fetch()") -> Subrequests:
    """The subrequests of the running request; outside one, a :class:`SubrequestError`."""
    book = OUTBOUND.get()
    if book is None:
        raise SubrequestError(
            f"{what} was called outside a request",
            reason="context",
            hint="call fetch() inside fetch(request, env, ctx) or scheduled(event, env, ctx), "
            "or in work given to ctx.wait_until()",
        )
    return book
