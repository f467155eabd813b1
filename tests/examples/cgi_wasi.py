"""Run a WASI command as a CGI program, with wasmtime-py's own WASI.

This is how a CGI server (and WAGI) runs a whole-wasm worker: the CGI/1.1
variables as the environment, the request body on stdin, a CGI response on
stdout. It uses only wasmtime-py's public WASI API (temporary files for stdin
and stdout), so the examples and templates are checked whatever atoll's own
runtime does.
"""

from __future__ import annotations

import functools
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

import wasmtime

__all__ = ["CgiResponse", "cgi_env", "parse_cgi", "run_cgi"]


@functools.cache
def _engine() -> wasmtime.Engine:
    return wasmtime.Engine()


@functools.cache
def _module(path: Path, mtime_ns: int) -> wasmtime.Module:
    return wasmtime.Module.from_file(_engine(), str(path))


@dataclass
class CgiResponse:
    """A parsed CGI response: status, header lines (names lower-cased), body."""

    status: int
    reason: str
    headers: dict[str, str]
    body: bytes
    stderr: bytes = b""
    exit_code: int = 0
    raw: bytes = field(default=b"", repr=False)

    @property
    def text(self) -> str:
        return self.body.decode()


def cgi_env(
    method: str = "GET",
    path: str = "/",
    query: str = "",
    body: bytes = b"",
    headers: dict[str, str] | None = None,
) -> dict[str, str]:
    """The CGI/1.1 variables a server sets for one request (as WAGI does)."""
    env = {
        "GATEWAY_INTERFACE": "CGI/1.1",
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": unquote(path),
        "X_RAW_PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8787",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "SERVER_SOFTWARE": "atoll-tests",
        "REMOTE_ADDR": "127.0.0.1",
        "X_FULL_URL": f"http://127.0.0.1:8787{path}" + (f"?{query}" if query else ""),
        "X_MATCHED_ROUTE": "/...",
        "CONTENT_LENGTH": str(len(body)),
    }
    for name, value in (headers or {}).items():
        key = name.upper().replace("-", "_")
        if key == "CONTENT_TYPE":
            env["CONTENT_TYPE"] = value
        else:
            env[f"HTTP_{key}"] = value
    return env


def parse_cgi(raw: bytes) -> CgiResponse:
    """Split CGI output into status, headers and body (``Status:`` sets the status)."""
    for sep in (b"\r\n\r\n", b"\n\n"):
        head, found, body = raw.partition(sep)
        if found:
            break
    else:
        raise AssertionError(f"no blank line after the CGI headers in {raw[:200]!r}")
    headers: dict[str, str] = {}
    for line in head.decode("latin-1").splitlines():
        name, colon, value = line.partition(":")
        if not colon:
            raise AssertionError(f"bad CGI header line {line!r}")
        headers[name.strip().lower()] = value.strip()
    status, reason = 200, "OK"
    if "status" in headers:
        code, _, reason = headers.pop("status").partition(" ")
        status = int(code)
    return CgiResponse(status, reason, headers, body, raw=raw)


def run_cgi(
    wasm: Path,
    *,
    method: str = "GET",
    path: str = "/",
    query: str = "",
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    argv: tuple[str, ...] = ("app.wasm",),
) -> CgiResponse:
    """Run ``_start`` of the WASI command at ``wasm`` for one request; parse its output.

    Raises ``AssertionError`` when the program exits non-zero or its output is
    not a CGI response; wasmtime's traps pass through.
    """
    store = wasmtime.Store(_engine())
    linker = wasmtime.Linker(_engine())
    linker.define_wasi()
    with tempfile.TemporaryDirectory() as tmp:
        stdin = Path(tmp, "stdin")
        stdout = Path(tmp, "stdout")
        stderr = Path(tmp, "stderr")
        stdin.write_bytes(body)
        config = wasmtime.WasiConfig()
        config.argv = list(argv)
        config.env = list(cgi_env(method, path, query, body, headers).items())
        config.stdin_file = str(stdin)
        config.stdout_file = str(stdout)
        config.stderr_file = str(stderr)
        store.set_wasi(config)
        module = _module(wasm.resolve(), wasm.stat().st_mtime_ns)
        instance = linker.instantiate(store, module)
        start = instance.exports(store)["_start"]
        assert isinstance(start, wasmtime.Func)
        exit_code = 0
        try:
            start(store)
        except wasmtime.ExitTrap as exc:
            exit_code = exc.code
        raw, errors = stdout.read_bytes(), stderr.read_bytes()
    if exit_code != 0:
        raise AssertionError(f"{wasm.name} exited with {exit_code}; stderr: {errors!r}")
    response = parse_cgi(raw)
    response.stderr = errors
    response.exit_code = exit_code
    return response
