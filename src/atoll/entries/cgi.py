"""Whole-wasm workers: a WASI program served as CGI/1.1, compatible with WAGI.

When ``main`` names a ``.wasm`` file, :func:`load_wasi_entry` turns the
program into the worker's ``fetch``. Per request, a fresh instance runs
``_start`` with:

* the CGI/1.1 meta-variables as its environment (``REQUEST_METHOD``,
  ``PATH_INFO``, ``QUERY_STRING``, ``HTTP_*`` but :data:`NOT_PASSED`…, plus WAGI's ``X_FULL_URL``,
  ``X_MATCHED_ROUTE``, ``X_RAW_PATH_INFO``) and the worker's ``[vars]``; none
  of the host's environment;
* the request body on stdin and ``[wasi] argv`` (default: the file name);
* its stdout parsed as a CGI response: header lines, a blank line, the body.

Exit code 0 is success; another code or a trap is a 500; output that is not
CGI is a 502 naming the first bad line (and a response that is CGI but that
HTTP cannot carry, a wrong ``Content-Length``…, is a 502 from
:mod:`atoll.http.wire`). Loaded once per deploy; everything per request
happens in the returned ``fetch``.
"""

from __future__ import annotations

import json
import re
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import unquote

from atoll import __version__
from atoll.api import ExecutionContext, Request, Response
from atoll.api.headers import BAD_VALUE
from atoll.errors import AtollError, GuestError, GuestTrapError, ModuleLoadError
from atoll.manifest import Manifest
from atoll.runtime import calls
from atoll.runtime.cache import ModuleCache
from atoll.runtime.hostfuncs import CURRENT
from atoll.runtime.instance import Instance
from atoll.runtime.module import WasmModule
from atoll.runtime.wasi import DirGrant, ProcExit, WasiContext

__all__ = [
    "NOT_PASSED",
    "CgiOutputError",
    "cgi_environment",
    "header_variable",
    "load_wasi_entry",
    "parse_cgi_output",
    "wasi_grants",
    "worker_environment",
]

MIB = 1024 * 1024
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
#: Header names seen valid → their lowercase (names repeat from request to request).
_CHECKED_NAMES: dict[str, str] = {}


class CgiOutputError(GuestError):
    """The program's stdout is not a CGI response (502); the message names the first bad line."""

    outcome = "exception"
    status = 502


def worker_environment(manifest: Manifest) -> dict[str, str]:
    """The variables that are the same for every request of a worker: its ``[vars]``
    (non-strings as JSON) and CGI's constants. Computed once per deploy."""
    env: dict[str, str] = {}
    for key, value in manifest.vars.items():
        env[key] = value if isinstance(value, str) else json.dumps(value)
    env.update(
        {
            "GATEWAY_INTERFACE": "CGI/1.1",
            "SERVER_SOFTWARE": f"atoll/{__version__}",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "SCRIPT_NAME": "",
            "AUTH_TYPE": "",
            "X_MATCHED_ROUTE": "/...",
        }
    )
    return env


#: Request headers that are not passed as ``HTTP_*``: what RFC 3875 §4.1.18 says to
#: remove (credentials; fields that are meta-variables already; fields of the
#: connection, not the request) as WAGI does, and ``Proxy``, which would become
#: ``HTTP_PROXY``, read as the proxy to use by many HTTP clients (httpoxy).
NOT_PASSED = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "content-type",
        "content-length",
        "proxy",
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
_CGI_HEADER_NAME = re.compile(r"[0-9A-Za-z-]+")
#: Header names seen → their variable (None: dropped); names repeat from request to request.
_VARIABLES: dict[str, str | None] = {}


def header_variable(name: str) -> str | None:
    """The variable a request header (lowercase ``name``) becomes, or None if it is dropped.

    Dropped: :data:`NOT_PASSED`, and every name with a character other than a
    letter, a digit or ``-``. ``X_Real_IP`` would become the same
    ``HTTP_X_REAL_IP`` as ``X-Real-IP`` (which a proxy in front may vouch for);
    Apache httpd and nginx drop such names too, so no header shadows another.
    """
    if name in NOT_PASSED or not _CGI_HEADER_NAME.fullmatch(name):
        return None
    return "HTTP_" + name.upper().replace("-", "_")


def cgi_environment(
    request: Request,
    manifest: Manifest,
    body_length: int,
    base: dict[str, str] | None = None,
) -> dict[str, str]:
    """The CGI/1.1 meta-variables for ``request`` (RFC 3875 §4.1, and WAGI's extras).

    ``base`` is :func:`worker_environment` of ``manifest``, if the caller keeps it.
    Each request header becomes ``HTTP_<NAME>`` but those :func:`header_variable`
    drops; a header never replaces a meta-variable nor a ``[vars]`` entry. Linear in
    the number of headers.
    """
    split = request.url_parts
    raw_path = split.path or "/"
    path = unquote(raw_path) if "%" in raw_path else raw_path
    remote = request.remote_addr or ""
    env: dict[str, str] = {}
    for field, value in request.headers.combined():
        variable = _VARIABLES.get(field, "")
        if variable == "":  # not seen yet
            variable = header_variable(field)
            if len(_VARIABLES) < 1024:
                _VARIABLES[field] = variable
        if variable is not None:
            env[variable] = value
    env.update(base if base is not None else worker_environment(manifest))
    netloc = split.netloc
    if "@" in netloc or "[" in netloc:  # userinfo or an IPv6 literal: let urllib parse it
        host, port = split.hostname or "localhost", split.port
    else:  # the common case, without urllib's two parses of the netloc
        name, _, number = netloc.partition(":")
        host, port = name.lower() or "localhost", int(number) if number.isdigit() else None
    env["SERVER_NAME"] = host
    env["SERVER_PORT"] = str(port or (443 if split.scheme == "https" else 80))
    env["REQUEST_METHOD"] = request.method
    env["PATH_INFO"] = path
    env["PATH_TRANSLATED"] = path
    env["QUERY_STRING"] = split.query
    env["REMOTE_ADDR"] = remote
    env["REMOTE_HOST"] = remote
    env["CONTENT_LENGTH"] = str(body_length) if body_length else ""
    env["CONTENT_TYPE"] = request.headers.get("content-type") or ""
    env["X_FULL_URL"] = request.url
    env["X_RAW_PATH_INFO"] = raw_path
    return env


def parse_cgi_output(output: bytes, program: str) -> Response:
    """Turn a program's stdout into a :class:`Response`, or raise :class:`CgiOutputError`."""
    if not output:
        raise CgiOutputError(
            f"{program} wrote nothing to stdout",
            hint="a CGI program prints headers (at least Content-Type), a blank line, then the body",
        )
    # The first blank line, LF or CRLF: neither search reads past it (a body of
    # megabytes is not scanned twice).
    end = body_start = len(output)
    lf = output.find(b"\n\n")
    if lf >= 0:
        end, body_start = lf, lf + 2
    crlf = output.find(b"\r\n\r\n", 0, end + 3)
    if 0 <= crlf < end:
        end, body_start = crlf, crlf + 4
    if end == len(output):
        if output.startswith((b"\r\n", b"\n")):  # no headers at all
            raise CgiOutputError(
                f"{program}: output starts with a blank line: no CGI headers",
                hint="print at least `Content-Type: text/plain`, then a blank line, then the body",
            )
        raise CgiOutputError(
            f"{program}: no blank line after the CGI headers",
            hint="end the headers with an empty line (\\n\\n)",
        )
    status = 200
    headers: list[tuple[str, str]] = []
    has_location = has_status = False
    for number, raw in enumerate(output[:end].split(b"\n"), start=1):
        line = raw.rstrip(b"\r").decode("latin-1")
        name, colon, value = line.partition(":")
        lower = _CHECKED_NAMES.get(name) if colon else None
        if lower is None and colon and _HEADER_NAME.fullmatch(name):
            lower = name.lower()
            if len(_CHECKED_NAMES) < 1024:
                _CHECKED_NAMES[name] = lower
        if lower is None:
            raise CgiOutputError(
                f"{program}: CGI header line {number} is not `Name: value`: {line[:200]!r}",
                hint="each header line is `Name: value`; the body follows a blank line",
            )
        value = value.strip(" \t")
        if BAD_VALUE.search(value):
            raise CgiOutputError(
                f"{program}: CGI header line {number} has a control character in its value: "
                f"{line[:200]!r}",
                hint="header values are printable text on one line (no NUL, CR, DEL…)",
            )
        if lower == "status":
            code = value.split(" ", 1)[0]
            if not (
                len(code) == 3 and code.isascii() and code.isdigit() and "200" <= code <= "599"
            ):
                raise CgiOutputError(
                    f"{program}: CGI header line {number}: bad Status {value!r}",
                    hint="write `Status: 404 Not Found` (a code from 200 to 599)",
                )
            status, has_status = int(code), True
            continue
        if lower == "location":
            has_location = True
        headers.append((lower, value))
    if has_location and not has_status:
        status = 302
    response = Response(output[body_start:], status=status)
    response.headers._extend_checked(headers)  # names matched _HEADER_NAME, values BAD_VALUE
    return response


def wasi_grants(manifest: Manifest) -> tuple[DirGrant, ...]:
    """The ``[wasi] dirs`` of a manifest as grants (resolved once per deploy)."""
    return tuple(
        DirGrant(manifest.resolve(folder), guest) for guest, folder in manifest.wasi.dirs.items()
    )


def load_wasi_entry(manifest: Manifest, cache: ModuleCache, linker: Any) -> Any:
    """Compile ``main`` and return the ``fetch`` that serves it as CGI (once per deploy)."""
    module = WasmModule.load(
        "main", manifest.resolve(manifest.main), cache=cache, linker=linker, display=manifest.main
    )
    if "_start" not in module.functions:
        raise ModuleLoadError(
            f"{manifest.main} exports no _start: it is a library (reactor), not a program",
            hint="build it as a WASI command (the default for wasm32-wasi), "
            "or bind it under [wasm_modules] and call it from a Python entry",
        )
    program = PurePosixPath(manifest.main).name
    argv = list(manifest.wasi.argv) or [program]
    grants = wasi_grants(manifest)
    stdout_limit = manifest.limits.response_mb * MIB
    base = worker_environment(manifest)

    async def fetch(request: Request, env: Any, ctx: ExecutionContext) -> Response:
        body = await request.bytes()
        invocation = CURRENT.get()
        if invocation is None:  # pragma: no cover - Worker.handle sets it
            raise AtollError("a whole-wasm worker runs only inside a request")
        context = WasiContext(
            args=argv,
            env=cgi_environment(request, manifest, len(body), base),
            stdin=body,
            stdout_limit=stdout_limit,
            dirs=grants,
        )
        invocation.wasi = context
        store = invocation.fresh_store()
        if calls.capi is not None:  # argv, environ, stdin, stdout… served in C
            store.meter.stdio = context.serve_stdio_in_c(calls.capi.Stdio)
        instance = Instance.create(module, store, invocation, owner=invocation)
        code = 0
        try:
            instance.run("_start")
        except ProcExit as exit_:
            code = exit_.code
        finally:
            if context.stderr or context.stderr_cut:  # its last line, without a newline
                context.flush_log(invocation.log_book)
        if code != 0:
            raise GuestTrapError(
                f"{manifest.main} exited with code {code}",
                hint="see its stderr lines in the request log",
            )
        return parse_cgi_output(context.stdout_bytes(), manifest.main)

    return fetch
