"""The one exception tree of atoll.

Every error atoll raises on purpose is an :class:`AtollError`. Each carries a
message that names what is at fault (file, key, binding, export, import) and a
``hint`` that says what to do. wasmtime's own exceptions are wrapped at the
boundary of ``runtime/`` and never reach a user raw.

::

    AtollError
    ├── ConfigError              atoll.toml (or a runtime option) is wrong: file, key, line
    │   └── ConfigProblems       several of them in one file, each a ConfigError
    ├── BuildError               the [build] command failed or its toolchain is missing
    ├── WorkerLoadError          a worker cannot be loaded (entry missing, no fetch, import failed)
    │   └── ModuleLoadError      a wasm module is not valid, too large, or imports what atoll lacks
    ├── AbiError                 a call into a guest does not match its exports (types, alloc)
    ├── RequestError             the HTTP request itself is refused (status attached)
    │   └── BodyTooLargeError    413: the body is over the configured limit
    ├── ResponseError            a worker's response cannot be sent as written (502 / 500)
    ├── GuestError               wasm failed while serving one request (outcome attached)
    │   ├── GuestTrapError       a trap: unreachable, stack overflow, out of bounds… (500)
    │   ├── CpuLimitError        the request ran out of wasm CPU time (503)
    │   ├── MemoryLimitError     the request's wasm memory reached its limit (503)
    │   ├── ScriptError          a JavaScript worker threw, or never answered (500; JS stack)
    │   └── CapacityError        the node holds as many live instances as it can (503)
    ├── KVError                  a KV operation failed
    │   └── KVLimitError         a key, value, metadata or option is outside Workers' limits
    ├── SubrequestError          a worker's fetch() failed: network, timeout, size (reason attached)
    │   ├── EgressRefusedError   [outbound] refused the URL or the address it resolves to
    │   └── SubrequestLimitError the request used up its [limits] subrequests
    └── ControlError             a deployment / admin operation was refused

Only ``cli/`` turns an error into a message and an exit code; a library never
calls ``sys.exit``.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "AbiError",
    "AtollError",
    "BodyTooLargeError",
    "BuildError",
    "CapacityError",
    "ConfigError",
    "ConfigProblems",
    "ControlError",
    "CpuLimitError",
    "EgressRefusedError",
    "GuestError",
    "GuestTrapError",
    "KVError",
    "KVLimitError",
    "MemoryLimitError",
    "ModuleLoadError",
    "RequestError",
    "ResponseError",
    "ScriptError",
    "SubrequestError",
    "SubrequestLimitError",
    "WorkerLoadError",
]


class AtollError(Exception):
    """Base of every error atoll raises on purpose.

    ``message`` says what went wrong and names the thing at fault; ``hint``
    (optional) says what to do about it. ``str(err)`` gives both.
    """

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  hint: {self.hint}"
        return self.message


class ConfigError(AtollError):
    """A configuration file or option is invalid.

    ``path`` is the file at fault, ``key`` the dotted key (``limits.cpu_ms``),
    ``line`` the 1-based line when the parser or a key search gives it.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        key: str | None = None,
        line: int | None = None,
        hint: str | None = None,
    ) -> None:
        where = path or "<config>"
        if line is not None:
            where = f"{where}:{line}"
        prefix = f"{where}: "
        if key:
            prefix += f"key '{key}': "
        super().__init__(prefix + message, hint=hint)
        self.path = path
        self.key = key
        self.line = line


class ConfigProblems(ConfigError):
    """Every problem found in one config file, reported together (``problems``, in file order)."""

    def __init__(self, path: str, problems: Sequence[ConfigError]) -> None:
        lines = [f"{len(problems)} problems"]
        for problem in problems:
            lines += ["  " + line for line in str(problem).splitlines()]
        super().__init__("\n".join(lines), path=path, hint="fix them all, then run again")
        self.problems = tuple(problems)


class BuildError(AtollError):
    """The worker's ``[build] command`` failed, or a toolchain it needs is missing."""


class WorkerLoadError(AtollError):
    """A worker cannot be loaded: its entry is missing, does not import, or has no ``fetch``."""


class ModuleLoadError(WorkerLoadError):
    """A wasm module cannot be loaded.

    It is not valid wasm, is over the compressed size limit, or imports a
    function atoll does not provide (the import is named).
    """


class AbiError(AtollError):
    """A call into a guest does not match what the guest exports.

    Examples: an export that does not exist, wrong argument count or types,
    a string/bytes argument to a module without ``alloc``.
    """


class RequestError(AtollError):
    """The HTTP request is refused before the worker runs; ``status`` is the HTTP status."""

    status: int = 400

    def __init__(self, message: str, *, status: int | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        if status is not None:
            self.status = status


class BodyTooLargeError(RequestError):
    """The request body is over the limit (413); raised before the body is read whole."""

    status = 413


class ResponseError(AtollError):
    """A worker returned a response that cannot be sent as it was written.

    A header that is not valid HTTP, a ``Content-Length`` that does not match
    the body, a status that is not a final one… The message names the header
    or field at fault. ``status`` is what the client gets instead: 502 for a
    whole-wasm (CGI) worker, which is a gateway to the program, 500 for a
    worker whose code returned the response.
    """

    def __init__(self, message: str, *, status: int = 500, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.status = status


class GuestError(AtollError):
    """WebAssembly failed while serving one request.

    ``outcome`` is the request outcome it maps to (see
    :class:`atoll.runtime.outcome.Outcome`), ``status`` the HTTP status, and
    ``frames`` the wasm backtrace (``module!function`` strings, innermost first)
    when wasmtime gives one.
    """

    outcome: str = "exception"
    status: int = 500

    def __init__(
        self,
        message: str,
        *,
        frames: Sequence[str] = (),
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.frames: tuple[str, ...] = tuple(frames)


class GuestTrapError(GuestError):
    """The guest trapped: ``unreachable``, out-of-bounds access, stack overflow, abort…"""

    outcome = "exception"
    status = 500


class CpuLimitError(GuestError):
    """The request used up its wasm CPU budget (``limits.cpu_ms``)."""

    outcome = "exceeded_cpu"
    status = 503


class MemoryLimitError(GuestError):
    """The request's wasm memory reached ``limits.memory_mb`` and the guest could not go on."""

    outcome = "exceeded_memory"
    status = 503


class ScriptError(GuestError):
    """A JavaScript worker threw an uncaught exception, or will never answer (500).

    ``frames`` are the lines of the JS stack (``at fn (file:line:col)``), innermost first.
    """

    outcome = "exception"
    status = 500


class CapacityError(GuestError):
    """The process holds as many live wasm instances as its pool allows; retry later."""

    outcome = "overloaded"
    status = 503


class KVError(AtollError):
    """A KV operation failed (backend unreachable, value not decodable as asked…)."""


class KVLimitError(KVError):
    """A key, value, metadata or option is outside Workers KV's limits (named in the message)."""


class SubrequestError(AtollError):
    """A subrequest (``fetch()`` from a worker) failed: network, timeout, size, limits.

    ``reason`` is a short word for logs and metrics (``timeout``, ``too_large``,
    ``limit``, ``network``, ``redirects``, or a refusal's reason).
    """

    def __init__(self, message: str, *, reason: str = "network", hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.reason = reason


class EgressRefusedError(SubrequestError):
    """The worker's egress policy (``[outbound]``) refused the URL or the address it resolves to."""


class SubrequestLimitError(SubrequestError):
    """The request used up its ``[limits] subrequests``."""


class ControlError(AtollError):
    """A deployment or admin operation was refused (bad bundle, unknown version, auth)."""
