"""Static assets: ``[assets] directory`` (and ``[site] bucket``) served the way Workers serves them.

Configured once per worker load (:meth:`Assets.from_manifest`); used once per
request by the HTTP app, before the worker runs, and by the worker itself
through its ``[assets] binding`` (``await env.ASSETS.fetch(request)``).

What a request gets, as on Workers:

- ``GET``/``HEAD`` of a path that names a file: the file, with ``ETag``,
  ``Last-Modified``, ``Content-Type`` from its extension, ``Accept-Ranges``;
  ``If-None-Match`` / ``If-Modified-Since`` give ``304``, ``Range`` gives
  ``206`` (or ``416``). The files are served by starlette's ``FileResponse``
  (its ETag, conditional and Range handling), not by code of ours.
- ``html_handling`` maps paths to ``.html`` files and redirects (307) the
  other spellings: ``auto-trailing-slash`` (default) serves ``/a`` from
  ``a.html`` and ``/a/`` from ``a/index.html``; ``force-trailing-slash`` and
  ``drop-trailing-slash`` pick one spelling for both; ``none`` serves exact
  file names only.
- A path without a file goes to the worker. Without a worker (or through the
  binding), ``not_found_handling`` answers: ``none`` a bare 404, ``404-page``
  the nearest ``404.html`` up the path (status 404),
  ``single-page-application`` ``/index.html`` (200). With a worker, a
  navigation (``Sec-Fetch-Mode: navigate``) that matches no file gets the
  single-page ``/index.html`` instead of the worker, as Workers does.
- ``run_worker_first = true`` sends every request to the worker first (it
  serves files through the binding); a list of patterns (``/api/*``,
  ``!/api/public/*``) only the matching paths.

:class:`Assets` is a plain object with no tie to the Python entry: a JavaScript
entry wraps :meth:`Assets.fetch` the same way :class:`AssetsBinding` does.
"""

from __future__ import annotations

import fnmatch
import os
import stat
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import unquote

from atoll.api import Headers, Request, Response
from atoll.errors import ConfigError
from atoll.manifest import Manifest

if TYPE_CHECKING:  # starlette is imported when a worker has assets, not at start-up
    from starlette.responses import Response as StarletteResponse

__all__ = ["Assets", "AssetsBinding"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

NotFound = Literal["none", "404-page", "single-page-application"]
HtmlHandling = Literal["auto-trailing-slash", "force-trailing-slash", "drop-trailing-slash", "none"]

#: What Workers sends with an asset: caches may keep it but must ask again (ETag).
CACHE_CONTROL = "public, max-age=0, must-revalidate"


@dataclass(frozen=True, slots=True)
class _File:
    path: str
    stat: os.stat_result
    status: int = 200


@dataclass(frozen=True, slots=True)
class _Redirect:
    location: str


class Assets:
    """The static files of one worker: lookup by Workers' rules, and serving.

    Built once per worker load; shared by every request and thread (it keeps
    no per-request state). Every lookup reads the folder as it is now, so
    files changed under ``atoll dev`` are served at once, without a reload.
    """

    def __init__(
        self,
        directory: Path,
        *,
        not_found_handling: NotFound = "none",
        html_handling: HtmlHandling = "auto-trailing-slash",
        run_worker_first: bool | tuple[str, ...] = False,
        include: tuple[str, ...] = (),
        exclude: tuple[str, ...] = (),
    ) -> None:
        self.directory = directory.resolve()
        self.not_found_handling = not_found_handling
        self.html_handling = html_handling
        self.run_worker_first = run_worker_first
        self.include = include
        self.exclude = exclude
        from starlette.staticfiles import StaticFiles

        self._files = StaticFiles(directory=self.directory, check_dir=False)

    @classmethod
    def from_manifest(cls, manifest: Manifest) -> Assets | None:
        """The assets ``[assets]`` or ``[site]`` declare, or ``None``. Once per load.

        Raises :class:`ConfigError` when both tables are set or the folder is missing.
        """
        if manifest.assets is not None and manifest.site is not None:
            raise ConfigError(
                "[assets] and [site] are both set",
                path=str(manifest.path),
                hint="keep [assets] (Workers Sites is its older form) and remove [site]",
            )
        if manifest.assets is not None:
            config = manifest.assets
            assets = cls(
                manifest.resolve(config.directory),
                not_found_handling=config.not_found_handling,  # type: ignore[arg-type]
                html_handling=config.html_handling,  # type: ignore[arg-type]
                run_worker_first=config.run_worker_first,
            )
            key, where = "assets.directory", config.directory
        elif manifest.site is not None:
            site = manifest.site
            assets = cls(manifest.resolve(site.bucket), include=site.include, exclude=site.exclude)
            key, where = "site.bucket", site.bucket
        else:
            return None
        if not assets.directory.is_dir():
            raise ConfigError(
                f"key '{key}': '{where}' is not a folder",
                path=str(manifest.path),
                hint="create it (the build may write it), or fix the path",
            )
        return assets

    # -- routing ---------------------------------------------------------------------------

    def worker_first(self, path: str) -> bool:
        """True when ``run_worker_first`` sends ``path`` to the worker before any file."""
        rule = self.run_worker_first
        if isinstance(rule, bool):
            return rule
        matched = False
        for pattern in rule:
            if pattern.startswith("!"):
                if fnmatch.fnmatchcase(path, pattern[1:]):
                    return False
            elif fnmatch.fnmatchcase(path, pattern):
                matched = True
        return matched

    def _file(self, path: str) -> _File | None:
        """The regular file at URL ``path`` inside the folder (no escape, no symlink out)."""
        relative = path.lstrip("/")
        if not relative or relative.endswith("/"):
            return None
        if self.include and not any(fnmatch.fnmatchcase(relative, p) for p in self.include):
            return None
        if any(fnmatch.fnmatchcase(relative, p) for p in self.exclude):
            return None
        full, found = self._files.lookup_path(relative)
        if found is None or not stat.S_ISREG(found.st_mode):
            return None
        return _File(full, found)

    def lookup(self, path: str) -> _File | _Redirect | None:
        """What ``path`` maps to under ``html_handling``: a file, a redirect, or nothing."""
        mode = self.html_handling
        if mode == "none":
            return self._file(path)
        if path.endswith("/"):
            index = self._file(path + "index.html")
            html = self._file(path[:-1] + ".html") if path != "/" else None
            if mode == "drop-trailing-slash" and path != "/":
                return _Redirect(path[:-1]) if index or html else None
            if index is not None:
                return index
            if html is not None:
                return html if mode == "force-trailing-slash" else _Redirect(path[:-1])
            return None
        exact = self._file(path)
        if path.endswith(".html"):
            if exact is None:
                return None
            if path.endswith("/index.html"):
                base = path[: -len("index.html")]
                return _Redirect(base if mode != "drop-trailing-slash" else base[:-1] or "/")
            stem = path[: -len(".html")]
            return _Redirect(stem + "/" if mode == "force-trailing-slash" else stem)
        if exact is not None:
            return exact
        html = self._file(path + ".html")
        index = self._file(path + "/index.html")
        if mode == "force-trailing-slash":
            return _Redirect(path + "/") if html or index else None
        if html is not None:
            return html
        if index is not None:
            return index if mode == "drop-trailing-slash" else _Redirect(path + "/")
        return None

    def not_found(self, path: str) -> _File | None:
        """The page ``not_found_handling`` gives a path without a file (``None``: bare 404)."""
        if self.not_found_handling == "single-page-application":
            return self._file("/index.html")
        if self.not_found_handling == "404-page":
            folder = path.rsplit("/", 1)[0]
            while True:
                page = self._file(folder + "/404.html")
                if page is not None:
                    return _File(page.path, page.stat, 404)
                if not folder:
                    return None
                folder = folder.rsplit("/", 1)[0]
        return None

    # -- serving ---------------------------------------------------------------------------

    def _response(self, found: _File | _Redirect, scope: Scope, query: bytes) -> StarletteResponse:
        from starlette.datastructures import Headers as StarletteHeaders
        from starlette.responses import FileResponse, RedirectResponse
        from starlette.staticfiles import NotModifiedResponse

        if isinstance(found, _Redirect):
            location = found.location + ("?" + query.decode("latin-1") if query else "")
            return RedirectResponse(location, status_code=307)
        headers = {"cache-control": CACHE_CONTROL}
        response = FileResponse(
            found.path, status_code=found.status, headers=headers, stat_result=found.stat
        )
        if found.status == 200 and self._files.is_not_modified(
            response.headers, StarletteHeaders(scope=scope)
        ):
            return NotModifiedResponse(response.headers)
        return response

    async def serve(
        self, scope: Scope, receive: Receive, send: Send, *, has_worker: bool
    ) -> int | None:
        """Answer an ASGI ``http`` request from the files, before its worker; once per request.

        Returns the status sent, or ``None`` when the worker must answer (a
        method other than GET/HEAD, ``run_worker_first``, or no file with a
        worker there to answer).
        """
        if scope["method"] not in ("GET", "HEAD"):
            return None
        path = scope.get("path") or "/"
        if has_worker and self.worker_first(path):
            return None
        found: _File | _Redirect | None = self.lookup(path)
        if found is None:
            navigate = _header(scope, b"sec-fetch-mode") == b"navigate"
            if has_worker and not (
                navigate and self.not_found_handling == "single-page-application"
            ):
                return None
            found = self.not_found(path)
        response: StarletteResponse
        if found is None:
            from starlette.responses import Response as StarletteResponse

            response = StarletteResponse(status_code=404)
        else:
            response = self._response(found, scope, scope.get("query_string", b""))
        await response(scope, receive, send)
        return response.status_code

    async def fetch(self, request: Request) -> Response:
        """``env.ASSETS.fetch(request)``: the file for ``request``'s path, as a response.

        Applies ``html_handling`` and ``not_found_handling`` (a missing file is
        404, the 404 page or the single-page index), never calls the worker.
        Any method but GET/HEAD gets 405.
        """
        if request.method not in ("GET", "HEAD"):
            return Response(status=405, headers={"allow": "GET, HEAD"})
        path = unquote(request.path)
        scope: Scope = {
            "type": "http",
            "method": request.method,
            "path": path,
            "query_string": request.url_parts.query.encode("latin-1"),
            "headers": request.headers.raw(),
            "asgi": {"spec_version": "2.4"},
        }
        found = self.lookup(path) or self.not_found(path)
        from starlette.responses import Response as StarletteResponse

        response = (
            StarletteResponse(status_code=404)
            if found is None
            else self._response(found, scope, scope["query_string"])
        )
        status, headers, body = 200, Headers(), bytearray()

        async def receive() -> Message:  # pragma: no cover - a file response does not read
            return {"type": "http.request", "body": b"", "more_body": False}

        async def capture(message: Message) -> None:
            nonlocal status, headers
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = Headers.from_raw(message.get("headers", []))
            elif message["type"] == "http.response.body":
                body.extend(message.get("body", b""))

        await response(scope, receive, capture)
        headers.delete("content-length")  # the app sets it from the body it sends
        return Response(bytes(body), status=status, headers=headers)


class AssetsBinding:
    """``env.ASSETS`` of a Python worker: ``await env.ASSETS.fetch(request_or_url)``."""

    __slots__ = ("_assets",)

    def __init__(self, assets: Assets) -> None:
        self._assets = assets

    async def fetch(self, request: Request | str) -> Response:
        """The asset for ``request`` (a :class:`Request`, or a URL / path for a GET)."""
        if isinstance(request, str):
            request = Request(request if "://" in request else "http://assets" + request)
        return await self._assets.fetch(request)

    def __repr__(self) -> str:
        return f"<Assets {self._assets.directory}>"


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value)
    return None
