"""Whole-wasm workers: a WASI program served as CGI/1.1, compatible with WAGI.

When ``main`` names a ``.wasm`` file, :func:`load_wasi_entry` turns the
program into the worker's ``fetch``. Per request, a fresh instance runs
``_start`` (through :func:`atoll.runtime.program.run_program`) with:

* the CGI/1.1 meta-variables as its environment (``REQUEST_METHOD``,
  ``SCRIPT_NAME`` and ``PATH_INFO`` from the route that matched (:mod:`.mounts`),
  ``QUERY_STRING``, ``CONTENT_LENGTH`` (``0`` without a body, as WAGI sets it),
  ``HTTP_*`` but :data:`NOT_PASSED`…, plus WAGI's ``X_FULL_URL``,
  ``X_MATCHED_ROUTE``, ``X_RAW_PATH_INFO``, ``X_RELATIVE_PATH``) and the worker's
  ``[vars]``; none of the host's environment;
* the request body on stdin; as arguments the program name and the query's
  ``&``-separated items, as WAGI gives them (or ``[wasi] argv``, fixed);
* its stdout parsed as a CGI response (:func:`parse_cgi_output`): header lines, a
  blank line, the body; or, with ``[wasi] mode = "stdout"``, the body as it is
  (Cloudflare's workers-wasi contract).

Exit code 0 is success; another code or a trap is a 500; output that is not
CGI is a 502 naming the first bad line (and a response that is CGI but that
HTTP cannot carry, a wrong ``Content-Length``…, is a 502 from
:mod:`atoll.http.wire`). Loaded once per deploy; everything per request
happens in the returned ``fetch``.
"""

from __future__ import annotations

import json
import re
from typing import Any

from atoll.api import ExecutionContext, Request, Response
from atoll.api.headers import BAD_VALUE
from atoll.entries.mounts import Located, Mount, locate, worker_mounts
from atoll.errors import AtollError, GuestError, GuestTrapError, ModuleLoadError
from atoll.manifest import Manifest
from atoll.manifest.routes import Route
from atoll.runtime.cache import ModuleCache
from atoll.runtime.hostfuncs import HostLinker
from atoll.runtime.invocation import CURRENT
from atoll.runtime.module import WasmModule
from atoll.runtime.program import run_program
from atoll.runtime.wasi import DirGrant, WasiContext, wasi_grants
from atoll.version import __version__

__all__ = [
    "NOT_PASSED",
    "CgiOutputError",
    "cgi_arguments",
    "cgi_environment",
    "header_variable",
    "load_wasi_entry",
    "parse_cgi_output",
    "worker_environment",
]

MIB = 1024 * 1024
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_BLANK_LINE = re.compile(rb"\n\r?\n")
_STATUS_LINE = re.compile(rb"HTTP/1\.[01] ([2-5][0-9][0-9])(?: [^\x00-\x08\x0a-\x1f\x7f]*)?")
#: Header names seen valid → their lowercase (names repeat from request to request).
_CHECKED_NAMES: dict[str, str] = {}


class CgiOutputError(GuestError):
    """The program's stdout is not a CGI response (502); the message names the first bad line."""

    outcome = "exception"
    status = 502


#: The variables of :func:`worker_environment` that are CGI's, not the worker's ``[vars]``.
_CONSTANTS = frozenset({"GATEWAY_INTERFACE", "SERVER_SOFTWARE", "AUTH_TYPE"})


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
            "AUTH_TYPE": "",
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
    located: Located | None = None,
) -> dict[str, str]:
    """The CGI/1.1 meta-variables for ``request`` (RFC 3875 §4.1, and WAGI's extras).

    ``base`` is :func:`worker_environment` of ``manifest``, if the caller keeps it;
    ``located`` says where the program is mounted (:func:`atoll.entries.mounts.locate`;
    default: at the root, ``SCRIPT_NAME`` empty). Each request header becomes
    ``HTTP_<NAME>`` but those :func:`header_variable` drops; a header never replaces
    a meta-variable nor a ``[vars]`` entry. Linear in the number of headers.
    """
    split = request.url_parts
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
    if located is None:
        located = locate(split.path or "/", host, ())
        assert located is not None  # no inner routes: always located
    env["SERVER_NAME"] = host
    env["SERVER_PORT"] = str(port or (443 if split.scheme == "https" else 80))
    env["SERVER_PROTOCOL"] = f"HTTP/{request.http_version}"
    env["REQUEST_METHOD"] = request.method
    env["SCRIPT_NAME"] = located.script_name
    env["PATH_INFO"] = located.path_info
    env["PATH_TRANSLATED"] = located.path_info
    env["QUERY_STRING"] = split.query
    env["REMOTE_ADDR"] = remote
    env["REMOTE_HOST"] = remote
    env["CONTENT_LENGTH"] = str(body_length)
    env["CONTENT_TYPE"] = request.headers.get("content-type") or ""
    env["X_FULL_URL"] = request.url
    env["X_MATCHED_ROUTE"] = located.mount.text
    env["X_RAW_PATH_INFO"] = located.raw_path_info
    env["X_RELATIVE_PATH"] = located.path_info[1:] if located.path_info else ""
    return env


def cgi_arguments(program: str, query: str) -> list[str]:
    """WAGI's arguments: the program, then each ``&``-separated item of the query as sent
    (``a=1&b`` → ``[program, "a=1", "b"]``). RFC 3875 §4.4 passes arguments only for a
    query without ``=``; WAGI passes them always, and so does atoll."""
    return [program, *query.split("&")] if query else [program]


def parse_cgi_output(output: bytes, program: str) -> Response:
    """Turn a program's stdout into a :class:`Response`, or raise :class:`CgiOutputError`.

    Lines may end in ``\\n`` or ``\\r\\n``, mixed (the headers end at the first empty
    line either way, as WAGI reads them). A first line ``HTTP/1.0 NNN reason`` or
    ``HTTP/1.1 NNN reason`` (RFC 3875 §5's non-parsed-header output) sets the status;
    a ``Status:`` header after it wins, as in WAGI, which reads only ``Status``.
    """
    if not output:
        raise CgiOutputError(
            f"{program} wrote nothing to stdout",
            hint="a CGI program prints headers (at least Content-Type), a blank line, then the body",
        )
    # The first empty line: LF, then an optional CR, then LF (LF LF, CRLF CRLF, and the
    # mixes). The search stops there: a body of megabytes is not scanned.
    blank = _BLANK_LINE.search(output)
    if blank is None or output.startswith((b"\r\n", b"\n")):
        if output.startswith((b"\r\n", b"\n")):  # no headers at all
            raise CgiOutputError(
                f"{program}: output starts with a blank line: no CGI headers",
                hint="print at least `Content-Type: text/plain`, then a blank line, then the body",
            )
        raise CgiOutputError(
            f"{program}: no blank line after the CGI headers",
            hint="end the headers with an empty line (\\n\\n); a program that prints only a "
            'body wants [wasi] mode = "stdout"',
        )
    end, body_start = blank.start(), blank.end()
    status = 200
    headers: list[tuple[str, str]] = []
    has_location = has_status = False
    lines = output[:end].split(b"\n")
    first = 0
    if lines[0].startswith(b"HTTP/"):  # NPH: a status line first
        nph = _STATUS_LINE.fullmatch(lines[0].rstrip(b"\r"))
        if nph is None:
            raise CgiOutputError(
                f"{program}: CGI header line 1 is not a status line `HTTP/1.1 NNN reason`: "
                f"{lines[0][:200].decode('latin-1')!r}",
                hint="write `HTTP/1.1 404 Not Found` (HTTP/1.0 or 1.1, a code from 200 to 599) "
                "or `Status: 404 Not Found`",
            )
        status, has_status, first = int(nph.group(1)), True, 1
    for number, raw in enumerate(lines[first:], start=first + 1):
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


def load_wasi_entry(manifest: Manifest, cache: ModuleCache, linker: HostLinker) -> Any:
    """Compile ``main`` and return the ``fetch`` that serves it (once per deploy)."""
    module = WasmModule.load(
        "main", manifest.resolve(manifest.main), cache=cache, linker=linker, display=manifest.main
    )
    if "_start" not in module.functions:
        raise ModuleLoadError(
            f"{manifest.main} exports no _start: it is a library (reactor), not a program",
            hint="build it as a WASI command (the default for wasm32-wasi), "
            "or bind it under [wasm_modules] and call it from a Python entry",
        )
    return program_fetch(
        module,
        manifest,
        mounts=worker_mounts(manifest.route_patterns),
        argv=manifest.wasi.argv,
        grants=wasi_grants(manifest),
        plain=manifest.wasi.mode == "stdout",
    )


def program_fetch(
    module: WasmModule,
    manifest: Manifest,
    *,
    mounts: tuple[tuple[Route, Mount], ...],
    inner: Mount | None = None,
    entrypoint: str = "_start",
    argv: tuple[str, ...] = (),
    argv_template: str | None = None,
    grants: tuple[DirGrant, ...] = (),
    environment: dict[str, str] | None = None,
    plain: bool = False,
) -> Any:
    """The ``fetch`` that runs ``entrypoint`` of ``module`` per request (made once per deploy).

    ``mounts``: the worker's routes; ``inner``: the route of a ``modules.toml`` module
    below them; ``argv``: fixed arguments (default: WAGI's, :func:`cgi_arguments`);
    ``argv_template``: WAGI's ``argv`` key (``${SCRIPT_NAME}``, ``${ARGS}`` replaced);
    ``environment``: variables added to the worker's (a module's ``environment``);
    ``plain``: stdout is the body as it is, not CGI output.
    """
    program = module.source.rsplit("/", 1)[-1]
    stdout_limit = manifest.limits.response_mb * MIB
    base = worker_environment(manifest)
    if environment:
        base = {**environment, **base}  # the meta-variables win, as over [vars]
    inner_routes = (inner,) if inner is not None else ()
    plain_env = {k: v for k, v in base.items() if k not in _CONSTANTS}  # [vars] only

    async def fetch(request: Request, env: Any, ctx: ExecutionContext) -> Response:
        body = await request.bytes()
        invocation = CURRENT.get()
        if invocation is None:  # pragma: no cover - Worker.handle sets it
            raise AtollError("a whole-wasm worker runs only inside a request")
        if plain:  # workers-wasi: the body in, the body out; argv and env as configured
            context = WasiContext(
                args=list(argv or (program,)),
                env=plain_env,
                stdin=body,
                stdout_limit=stdout_limit,
                dirs=grants,
            )
            store = invocation.fresh_store()
            check_exit(run_program(module, invocation, context, store=store, entrypoint=entrypoint))
            return Response(context.stdout_bytes())
        split = request.url_parts
        located = locate(split.path or "/", request_server_name(request), mounts, inner_routes)
        if located is None:  # pragma: no cover - the modules.toml app matched it already
            return Response("404 Not Found\n", status=404)
        context = WasiContext(
            args=(
                list(argv)
                if argv
                else cgi_arguments(program, split.query)
                if argv_template is None
                else templated_arguments(argv_template, split.path or "/", split.query)
            ),
            env=cgi_environment(request, manifest, len(body), base, located),
            stdin=body,
            stdout_limit=stdout_limit,
            dirs=grants,
        )
        check_exit(
            run_program(
                module, invocation, context, store=invocation.fresh_store(), entrypoint=entrypoint
            )
        )
        return parse_cgi_output(context.stdout_bytes(), module.source)

    def check_exit(code: int) -> None:
        if code != 0:
            raise GuestTrapError(
                f"{module.source} exited with code {code}",
                hint="see its stderr lines in the request log",
            )

    return fetch


def templated_arguments(template: str, path: str, query: str) -> list[str]:
    """WAGI's ``argv`` template: ``${SCRIPT_NAME}`` is the request path, ``${ARGS}`` the
    query's ``&``-separated items; the result is split at whitespace (as WAGI does)."""
    text = template.replace("${SCRIPT_NAME}", path).replace("${ARGS}", query.replace("&", " "))
    return text.split()


def request_server_name(request: Request) -> str:
    """The request's host as routes see it: lowercase, without port."""
    split = request.url_parts
    netloc = split.netloc
    if "@" in netloc or "[" in netloc:
        return split.hostname or "localhost"
    return netloc.partition(":")[0].lower() or "localhost"
