"""Route patterns: which worker serves a request, by host and path.

A pattern is Workers' syntax, ``[scheme://]HOST/PATH``:

==========================  ===================================================
pattern                     matches
==========================  ===================================================
``example.com/*``           host ``example.com``, every path
``example.com/hello``       host ``example.com``, path ``/hello`` only
``*.example.com/api/*``     any subdomain of ``example.com`` (not ``example.com``
                            itself), paths under ``/api/``
``*example.com/*``          ``example.com`` and every host ending in it
``/api/*``                  any host, paths under ``/api/`` (atoll's addition)
==========================  ===================================================

``*`` is allowed only at the start of the host and at the end of the path,
and matches any run of characters, none included: ``/api/*`` matches
``/api/`` and ``/api/x`` but not ``/api``; ``/api*`` matches all three (and
``/apiary``). Hosts match without case and without the request's port. The
scheme, if written, is ignored; the query string never takes part.

**Precedence: the most specific pattern wins, host first, then path.**

1. Host: an exact host beats a wildcard host; between wildcard hosts the
   longer fixed part wins (``*.api.example.com`` beats ``*.example.com``);
   any-host patterns (``/api/*``) come last.
2. Path, among patterns whose host is equally specific: an exact path beats a
   wildcard path; between wildcard paths the longer fixed prefix wins.

So ``a.example.com/*`` beats ``*.example.com/a`` for ``a.example.com/a`` (as on
Workers), and ``example.com/api/*`` beats ``example.com/*`` for ``/api/x``. Two
workers may not claim the same pattern: :func:`conflicts` finds such clashes
so that a deploy can be refused; a table built with one anyway resolves it by
worker name, so that every process picks the same winner.

A worker that declares no routes is served at ``NAME.localhost`` (every path):
:func:`default_routes`. A config's routes may be strings or tables
(``{ pattern, zone_name }``, ``{ pattern, zone_id }``); a custom domain
(``{ pattern = "api.example.com", custom_domain = true }``) is the route
``api.example.com/*``. :func:`manifest_routes` parses them all, naming the
file, line and key of every bad one. ``*.localhost`` resolves to the loopback address in
curl and browsers, so ``curl http://seed.localhost:8787/`` reaches it.

A :class:`RouteTable` is immutable: a deploy builds a new one and the server
swaps its reference in one assignment, so a request sees the old table or the
new one, never a mix. Matching costs a dict lookup for exact hosts plus a scan
of the wildcard and any-host patterns (few, by nature).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from atoll.errors import ConfigError, ConfigProblems
from atoll.manifest.schema import Manifest

__all__ = [
    "Route",
    "RouteTable",
    "conflicts",
    "default_routes",
    "manifest_routes",
    "parse_route",
    "request_host",
]

T = TypeVar("T")

#: Host of the implicit route of a worker without routes: ``NAME.localhost``.
DEFAULT_HOST_SUFFIX = ".localhost"


@dataclass(frozen=True, slots=True)
class Route:
    """One parsed pattern. Build it with :func:`parse_route`."""

    pattern: str
    """The pattern as written (for messages)."""
    host: str | None
    """The fixed part of the host, lowercase; ``None``: any host."""
    host_wildcard: bool
    """True when the host started with ``*`` (``host`` is then a suffix)."""
    path: str
    """The fixed part of the path (starts with ``/``)."""
    path_wildcard: bool
    """True when the path ended with ``*`` (``path`` is then a prefix)."""

    def matches(self, host: str, path: str) -> bool:
        """Whether a request for ``host`` (lowercase, no port) and ``path`` matches."""
        return self.matches_host(host) and self.matches_path(path)

    def matches_host(self, host: str) -> bool:
        if self.host is None:
            return True
        if self.host_wildcard:
            return host.endswith(self.host)
        return host == self.host

    def matches_path(self, path: str) -> bool:
        if self.path_wildcard:
            return path.startswith(self.path)
        return path == self.path

    @property
    def specificity(self) -> tuple[int, int, int, int]:
        """Sort key, larger is more specific: (host kind, host length, path kind, path length)."""
        host_kind = 0 if self.host is None else (1 if self.host_wildcard else 2)
        return (
            host_kind,
            len(self.host or ""),
            0 if self.path_wildcard else 1,
            len(self.path),
        )

    @property
    def key(self) -> tuple[str | None, bool, str, bool]:
        """What makes two patterns the same pattern (``HTTP://Example.com/*`` = ``example.com/*``)."""
        return (self.host, self.host_wildcard, self.path, self.path_wildcard)


def parse_route(pattern: str) -> Route:
    """Parse a route pattern (see the module docstring).

    Raises :class:`~atoll.errors.ConfigError` (key ``routes``) for a pattern
    with no path, a ``*`` elsewhere than the host's start or the path's end,
    a query string, or a port.
    """
    text = pattern.strip()

    def bad(reason: str, hint: str) -> ConfigError:
        return ConfigError(f"route {pattern!r}: {reason}", key="routes", hint=hint)

    for scheme in ("http://", "https://"):
        if text.lower().startswith(scheme):
            text = text[len(scheme) :]
            break
    if "?" in text or "#" in text:
        raise bad("a route cannot hold a query string", "end the path with * instead")
    slash = text.find("/")
    if slash < 0:
        raise bad("a route needs a path", f"write {text}/* for every path of {text}")
    host_part, path_part = text[:slash], text[slash:]
    host: str | None = None
    host_wildcard = False
    if host_part:
        host_wildcard = host_part.startswith("*")
        host = (host_part[1:] if host_wildcard else host_part).lower()
        if "*" in host:
            raise bad("'*' may only start the host", "use *.example.com or *example.com")
        if ":" in host:
            raise bad("a route cannot name a port", "remove the port: routes match any port")
        if host_wildcard and not host:
            host, host_wildcard = None, False  # "*/api/*" is any host
    path_wildcard = path_part.endswith("*")
    path = path_part[:-1] if path_wildcard else path_part
    if "*" in path:
        raise bad("'*' may only end the path", "use a prefix such as /images/*")
    return Route(pattern, host, host_wildcard, path, path_wildcard)


def default_routes(name: str) -> tuple[Route, ...]:
    """The implicit route of a worker that declares none: ``NAME.localhost/*``."""
    return (parse_route(f"{name}{DEFAULT_HOST_SUFFIX}/*"),)


def manifest_routes(manifest: Manifest) -> tuple[Route, ...]:
    """A worker's parsed routes, or ``NAME.localhost/*`` when it declares none.

    Runs once per load of a config (a deploy, a node loading a version, a
    CLI command). Raises :class:`~atoll.errors.ConfigError` for one bad
    pattern, :class:`~atoll.errors.ConfigProblems` for several, each naming
    the file, the line and the key as written (``env.staging.routes[1]``,
    ``route.pattern``).
    """
    if not manifest.routes:
        return default_routes(manifest.name)
    routes: list[Route] = []
    problems: list[ConfigError] = []
    for index, pattern in enumerate(manifest.route_patterns):
        try:
            routes.append(parse_route(pattern))
        except ConfigError as exc:
            key, line = (
                manifest.route_places[index]
                if index < len(manifest.route_places)
                else (f"routes[{index}]", None)
            )
            reason = exc.message.split("key 'routes': ", 1)[-1]
            problems.append(
                ConfigError(reason, path=str(manifest.path), key=key, line=line, hint=exc.hint)
            )
    if len(problems) == 1:
        raise problems[0]
    if problems:
        raise ConfigProblems(str(manifest.path), problems)
    return tuple(routes)


def request_host(host: str) -> str:
    """A ``Host`` header as routes see it: lowercase, without port or trailing dot."""
    host = host.strip().lower()
    if host.startswith("["):  # [::1]:8787
        end = host.find("]")
        return host[: end + 1] if end >= 0 else host
    colon = host.rfind(":")
    if colon >= 0 and host[colon + 1 :].isdigit():
        host = host[:colon]
    return host.rstrip(".")


def conflicts(
    claims: Mapping[str, Sequence[Route]],
) -> list[tuple[str, str, str]]:
    """Patterns claimed by two owners: ``(pattern, owner, other owner)`` for each clash."""
    seen: dict[tuple[str | None, bool, str, bool], str] = {}
    clashes: list[tuple[str, str, str]] = []
    for owner in sorted(claims):
        for route in claims[owner]:
            other = seen.setdefault(route.key, owner)
            if other != owner:
                clashes.append((route.pattern, owner, other))
    return clashes


class RouteTable(Generic[T]):
    """An immutable table of routes to targets (workers), most specific first.

    Satisfies :class:`atoll.http.app.Router` when ``T`` is a worker. Built
    once per deploy on the control path; :meth:`match` runs once per request,
    from any thread.
    """

    __slots__ = ("_any", "_exact", "_wildcard", "routes")

    def __init__(self, entries: Iterable[tuple[Route, T, str]] = ()) -> None:
        """``entries``: ``(route, target, owner name)``; the owner breaks ties between equal patterns."""
        ranked = sorted(entries, key=lambda e: (_rank(e[0]), e[2]))
        self.routes: tuple[tuple[Route, T, str], ...] = tuple(ranked)
        exact: dict[str, list[tuple[Route, T]]] = {}
        wildcard: list[tuple[Route, T]] = []
        any_host: list[tuple[Route, T]] = []
        for route, target, _owner in ranked:
            if route.host is None:
                any_host.append((route, target))
            elif route.host_wildcard:
                wildcard.append((route, target))
            else:
                exact.setdefault(route.host, []).append((route, target))
        self._exact = {host: tuple(items) for host, items in exact.items()}
        self._wildcard = tuple(wildcard)
        self._any = tuple(any_host)

    def match(self, host: str, path: str) -> T | None:
        """The target of the most specific route matching ``host`` (a Host header) and ``path``."""
        host = request_host(host)
        for route, target in self._exact.get(host, ()):
            if route.matches_path(path):
                return target
        for route, target in self._wildcard:
            if route.matches(host, path):
                return target
        for route, target in self._any:
            if route.matches_path(path):
                return target
        return None

    def __len__(self) -> int:
        return len(self.routes)


def _rank(route: Route) -> tuple[int, int, int, int]:
    kind, host_len, path_kind, path_len = route.specificity
    return (-kind, -host_len, -path_kind, -path_len)
