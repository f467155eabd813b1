"""``[[services]]``: another worker of the node as ``env.NAME`` (service bindings).

A :class:`ServiceBinding` is made once per worker load, one per entry of
``[[services]]``. Its :meth:`~ServiceBinding.fetch` runs once per call: it
builds a fresh request and hands it to the node's :class:`ServiceCaller`,
which finds the other worker *at call time* (so a deploy of the callee is
seen by its callers at once) and runs it in the same process, without a
socket, as its own request: its own limits, log, outcome and tail event.
The caller gets the callee's response, error pages included.
"""

from __future__ import annotations

import contextvars
from typing import Final, Protocol

from atoll.api import Headers, Request, Response
from atoll.api.headers import HeadersInit
from atoll.errors import AtollError

__all__ = ["MAX_DEPTH", "ServiceBinding", "ServiceCaller", "ServiceError"]

#: Nested service calls one request may make (A calls B calls C…): stops a loop.
MAX_DEPTH: Final = 16

_DEPTH: contextvars.ContextVar[int] = contextvars.ContextVar("atoll_service_depth", default=0)


class ServiceError(AtollError):
    """A service binding cannot be called (the worker is not deployed, calls nest too deep)."""


class ServiceCaller(Protocol):
    """Runs a request on the worker named ``service`` (the node's or ``atoll dev``'s)."""

    async def call(self, caller: str, service: str, request: Request) -> Response: ...


class _Unavailable:
    """Where no node gives workers to call (a worker loaded alone, to check it)."""

    async def call(self, caller: str, service: str, request: Request) -> Response:
        raise ServiceError(
            f"worker {caller!r}: service {service!r} cannot be called here",
            hint="service bindings work under atoll serve and atoll dev (atoll dev a/ b/)",
        )


UNAVAILABLE: Final = _Unavailable()


class ServiceBinding:
    """``env.NAME`` for ``[[services]] binding = "NAME", service = "other"``."""

    __slots__ = ("binding", "caller", "service", "worker")

    def __init__(self, binding: str, service: str, worker: str, caller: ServiceCaller) -> None:
        self.binding = binding
        self.service = service
        self.worker = worker
        self.caller = caller

    async def fetch(
        self,
        resource: str | Request,
        *,
        method: str | None = None,
        headers: HeadersInit = None,
        body: str | bytes | None = None,
    ) -> Response:
        """Call the other worker's ``fetch`` with this request, as Workers'
        ``env.NAME.fetch(request)``. The URL's host is the callee's to read; it is not
        used to route. Raises :class:`ServiceError` when the worker is not deployed."""
        if isinstance(resource, Request):
            url = resource.url
            method = method or resource.method
            headers = resource.headers if headers is None else headers
            if body is None and resource.method not in ("GET", "HEAD"):
                body = await resource.bytes()
        else:
            url = str(resource)
            if "://" not in url:  # a path: Workers needs a full URL, any host will do
                url = f"https://{self.service}{'' if url.startswith('/') else '/'}{url}"
        data = body.encode() if isinstance(body, str) else body
        request = Request(url, method=method or "GET", headers=Headers(headers), body=data)
        depth = _DEPTH.get()
        if depth >= MAX_DEPTH:
            raise ServiceError(
                f"worker {self.worker!r}: env.{self.binding}.fetch nests {depth} service calls "
                "deep; a service calls itself in a loop?",
                hint="look for a worker calling itself through its bindings",
            )
        token = _DEPTH.set(depth + 1)
        try:
            return await self.caller.call(self.worker, self.service, request)
        finally:
            _DEPTH.reset(token)

    def __repr__(self) -> str:
        return f"<ServiceBinding {self.binding} -> {self.service}>"


def service_bindings(
    worker: str, entries: tuple[tuple[str, str, str | None], ...], caller: ServiceCaller | None
) -> dict[str, ServiceBinding]:
    """The ``env`` entries of ``[[services]]`` (once per worker load).

    ``entries`` are ``(binding, service, entrypoint)``; a named entrypoint is not
    supported and raises :class:`~atoll.errors.ConfigError`.
    """
    from atoll.errors import ConfigError

    out: dict[str, ServiceBinding] = {}
    for binding, service, entrypoint in entries:
        if entrypoint is not None:
            raise ConfigError(
                f"key 'services': binding {binding!r} names entrypoint {entrypoint!r}; "
                "atoll calls a worker's default fetch only",
                hint="remove `entrypoint` (named entrypoints are not supported yet)",
            )
        out[binding] = ServiceBinding(binding, service, worker, caller or UNAVAILABLE)
    return out
