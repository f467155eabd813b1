"""Where a WASI program is mounted: ``SCRIPT_NAME``, ``PATH_INFO`` and WAGI's route variables.

A CGI program learns from ``SCRIPT_NAME`` where it is mounted and from
``PATH_INFO`` what the request asks of it below that point (RFC 3875 §4.1.13,
§4.1.5): a static-file program under ``/assets`` serves ``PATH_INFO=/a.css``
from its folder. WAGI sets both from the route that matched, plus
``X_MATCHED_ROUTE`` (the route as written), ``X_RAW_PATH_INFO`` (``PATH_INFO``
before percent-decoding) and, in its early versions, ``X_RELATIVE_PATH``
(``PATH_INFO`` without its leading slash).

Routes here are WAGI's syntax: ``/hello`` (exactly that path) and
``/hello/...`` (``/hello`` and every path below it). A worker's own Workers
routes (``site.test/assets/*``) are read as ``/assets/...``
(:func:`worker_mounts`); a ``modules.toml`` app mounts each module below the
worker's mount (:mod:`atoll.entries.wagi`).

Paths are normalized before they are matched: ``.`` and ``..`` segments
(``%2e`` spelled or not) are removed as RFC 3986 §5.2.4 says, ``..`` never
climbing above ``/``. Built once per deploy; :func:`locate` runs per request.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple
from urllib.parse import quote, unquote

from atoll.manifest.routes import Route, parse_route

__all__ = ["ROOT", "Located", "Mount", "locate", "normalize_path", "worker_mounts"]

_DOT = frozenset({".", "%2e"})
_DOTDOT = frozenset({"..", ".%2e", "%2e.", "%2e%2e"})


def normalize_path(path: str) -> str:
    """``path`` (raw or decoded, starting with ``/``) without dot segments.

    ``/a/./b/../c`` → ``/a/c``; ``/../x`` → ``/x``; ``/a/b/..`` → ``/a/``. The
    percent-encoded spellings of ``.`` count as dots (they are the same URI).
    """
    if "/." not in path and "%2e" not in path and "%2E" not in path:
        return path
    kept: list[str] = []
    trailing = False
    for segment in path.split("/")[1:]:
        lower = segment.lower()
        if lower in _DOT:
            trailing = True
        elif lower in _DOTDOT:
            if kept:
                kept.pop()
            trailing = True
        else:
            kept.append(segment)
            trailing = False
    normal = "/" + "/".join(kept)
    return normal + "/" if trailing and kept else normal


@dataclass(frozen=True, slots=True)
class Mount:
    """One WAGI-style route: ``/hello`` (exact) or ``/hello/...`` (the prefix and below)."""

    text: str
    """The route as WAGI writes it (``X_MATCHED_ROUTE``)."""
    prefix: str
    """The path it is mounted at, without a trailing slash (``""`` for the root)."""
    wildcard: bool
    """True for ``/...`` routes."""

    @classmethod
    def parse(cls, text: str) -> Mount:
        """``/hello`` or ``/hello/...`` (``/...`` alone: every path)."""
        if text == "/..." or text == "...":
            return cls("/...", "", True)
        if text.endswith("/..."):
            return cls(text, text[: -len("/...")].rstrip("/"), True)
        return cls(text, text, False)

    def match(self, path: str) -> str | None:
        """The ``PATH_INFO`` of a decoded, normalized ``path`` below this mount, or None."""
        if not self.wildcard:
            return "" if path == self.prefix else None
        if path == self.prefix:
            return ""
        if path.startswith(self.prefix) and path[len(self.prefix)] == "/":
            return path[len(self.prefix) :]
        return None

    def below(self, inner: Mount) -> Mount:
        """``inner`` mounted under this mount (``/app/...`` + ``/hello`` → ``/app/hello``)."""
        joined = self.prefix + ("" if inner.prefix in ("", "/") else inner.prefix)
        if inner.wildcard:
            return Mount(f"{joined}/...", joined, True)
        path = joined if inner.prefix != "/" else joined + "/"
        return Mount(path or "/", path or "/", False)


#: The mount of a program that serves every path: ``SCRIPT_NAME`` empty.
ROOT = Mount("/...", "", True)


class Located(NamedTuple):
    """A request's path as the program sees it (decoded, normalized); one per request."""

    mount: Mount
    script_name: str
    path_info: str
    raw_path_info: str
    inner: int = -1
    """The index of the ``inner`` route that matched (-1: none given)."""


def worker_mounts(patterns: tuple[str, ...]) -> tuple[tuple[Route, Mount], ...]:
    """The worker's routes (Workers' syntax) as mounts, most specific first (once per deploy).

    ``site.test/assets/*`` mounts at ``/assets``; ``/api*`` (a prefix that does
    not end a segment) at the segment before it, ``""``; ``site.test/hello`` at
    ``/hello`` exactly.
    """
    mounts: list[tuple[Route, Mount]] = []
    for pattern in patterns:
        route = parse_route(pattern)
        if not route.path_wildcard:
            mount = Mount(route.path, route.path, False)
        elif route.path.endswith("/"):
            mount = Mount(route.path + "...", route.path.rstrip("/"), True)
        else:
            base = route.path[: route.path.rfind("/")]
            mount = Mount(route.path + "*", base, True)
        mounts.append((route, mount))
    mounts.sort(key=lambda pair: tuple(-n for n in pair[0].specificity))
    return tuple(mounts)


def locate(
    raw_path: str,
    host: str,
    routes: tuple[tuple[Route, Mount], ...],
    inner: tuple[Mount, ...] = (),
) -> Located | None:
    """Where ``raw_path`` (as received: percent-encoded) falls for a program.

    ``routes``: the worker's mounts (:func:`worker_mounts`); the first whose host
    and path match is the mount, :data:`ROOT` if none does (``atoll dev`` serves
    every path). ``inner``: a ``modules.toml`` app's routes, matched in order
    below that mount; None when none matches (a 404). Linear in the path length.
    """
    raw = normalize_path(raw_path or "/")
    path = normalize_path(unquote(raw)) if "%" in raw else raw
    outer = ROOT
    for route, mount in routes:
        if route.matches_host(host) and mount.match(path) is not None:
            outer = mount
            break
    chosen = outer
    index = -1
    if inner:
        for index, candidate in enumerate(inner):  # noqa: B007 - the index is the result
            full = _below(outer, candidate)
            if full.match(path) is not None:
                chosen = full
                break
        else:
            return None
    info = chosen.match(path)
    if info is None:  # a route of the worker that does not cover the path (atoll dev)
        chosen, info = ROOT, path
    script = chosen.prefix
    raw_info = _raw_tail(raw, script, info)
    return Located(chosen, script, info, raw_info, index)


@lru_cache(maxsize=4096)
def _below(outer: Mount, inner: Mount) -> Mount:
    """``outer.below(inner)``, made once per pair (the pairs are the routes of a deploy)."""
    return outer.below(inner)


def _raw_tail(raw: str, script: str, info: str) -> str:
    """The percent-encoded part of ``raw`` that decodes to ``info`` (after ``script``)."""
    if not info:
        return ""
    if not script:
        return raw
    position = 0
    for _ in range(script.count("/")):  # past as many segments as SCRIPT_NAME has
        position = raw.find("/", position + 1)
        if position < 0:
            break
    if position > 0 and unquote(raw[:position]) == script:
        return raw[position:]
    return quote(info, safe="/")  # an encoded '/' in SCRIPT_NAME's part: re-encode PATH_INFO
