"""Run a WASI program as a function: argv, stdin, environment and folder grants in; stdout,
stderr and the exit code out. The core of every whole-wasm entry and of ``env.NAME.run()``.

This is workers-wasi's ``new WASI({args, env, stdin, stdout, stderr, preopens}).start(instance)``
(github.com/cloudflare/workers-wasi, ``src/index.ts``) done the atoll way:

* the run is a **fresh instance** of a module compiled at deploy, charged to the
  current request: its CPU counts toward ``limits.cpu_ms``, its memory toward
  ``limits.memory_mb``, and stdout (and captured stderr) are bounded by
  ``limits.response_mb``, each refused at the write that crosses it;
* stdin, stdout and stderr are bytes in memory (no streams: the program runs to its
  end on the request's thread, as a CGI run does);
* folders are granted read-only, and only those the worker's ``[wasi] dirs`` declares;
* ``proc_exit(n)`` and returning from ``main`` are exit codes; a trap, the CPU or memory
  limit end the request as they would anywhere (they are not exit codes: workers-wasi's
  ``returnOnExit`` maps a trap to 134, atoll keeps the request's outcome honest).

:func:`run_program` is the plain Python API (a JavaScript entry can wrap it);
:func:`run_in_request` is what ``env.NAME.run()`` calls. Runs are synchronous and
happen inside a request only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from atoll.errors import AtollError
from atoll.runtime.backend.auto import BACKEND
from atoll.runtime.hostfuncs import CURRENT
from atoll.runtime.instance import Instance
from atoll.runtime.invocation import MIB, GuestStore, Invocation
from atoll.runtime.module import WasmModule
from atoll.runtime.wasi import DirGrant, ProcExit, WasiContext

__all__ = ["ProgramResult", "grants_for", "run_in_request", "run_program"]


@dataclass(frozen=True, slots=True)
class ProgramResult:
    """What a finished run of a WASI program gave back."""

    stdout: bytes
    stderr: bytes
    exit_code: int

    @property
    def ok(self) -> bool:
        """True when the program exited with code 0."""
        return self.exit_code == 0


def run_program(
    module: WasmModule,
    invocation: Invocation,
    context: WasiContext,
    *,
    store: GuestStore | None = None,
    entrypoint: str = "_start",
) -> int:
    """Run ``entrypoint`` of a fresh instance of ``module`` with ``context`` as its WASI
    state (argv, environment, stdin, grants, where stdout and stderr go); return the exit
    code. Called once per run, on the request's thread.

    ``store``: the store to instantiate in (a whole-wasm entry passes the request's
    fresh store); by default a store of its own, closed when the run ends, so that the
    memory of one run is freed before the next (its budget is what the request's other
    instances leave of ``limits.memory_mb``).

    ``invocation.wasi`` is ``context`` for the time of the run and restored after it.
    Raises what any wasm call raises (a trap, the CPU or memory limit, a write past
    ``context.stdout_limit``).
    """
    own = store is None
    if store is None:
        used = invocation._store.memory_in_use() if invocation._store is not None else 0
        store = GuestStore(invocation.engine, max(invocation.memory_budget - used, 0))
    saved = invocation.wasi
    invocation.wasi = context
    if not context.stdout_to_log:  # argv, environ, stdio in C (native backend)
        BACKEND.serve_stdio(store.meter, context, invocation.log_book.counts)
    code = 0
    try:
        instance = Instance.create(module, store, invocation, owner=invocation)
        instance.run(entrypoint)
    except ProcExit as exit_:
        code = exit_.code
    finally:
        if context.has_partial_line():  # a last log line without its newline
            context.flush_log(invocation.log_book)
        if own:
            invocation.wasi = saved
            context.close()
            store.close()
    return code


def grants_for(
    declared: Sequence[DirGrant], wanted: Iterable[str] | None, what: str
) -> tuple[DirGrant, ...]:
    """The grants of ``declared`` (the worker's ``[wasi] dirs``) whose guest paths are in
    ``wanted`` (None: all of them). Raises :class:`AtollError` for an undeclared path."""
    if wanted is None:
        return tuple(declared)
    by_guest = {grant.guest: grant for grant in declared}
    chosen = []
    for guest in wanted:
        if guest not in by_guest:
            raise AtollError(
                f"{what}: folder {guest!r} is not granted to this worker",
                hint="declare it under [wasi] dirs in atoll.toml "
                f"(declared: {', '.join(sorted(by_guest)) or 'none'})",
            )
        chosen.append(by_guest[guest])
    return tuple(chosen)


def run_in_request(
    module: WasmModule,
    *,
    argv: Sequence[str] | None = None,
    stdin: bytes | str = b"",
    env: Mapping[str, str] | None = None,
    dirs: Iterable[str] | None = None,
    entrypoint: str = "_start",
) -> ProgramResult:
    """Run ``module`` as a program inside the current request and return its output.

    ``argv`` defaults to ``[binding name]``; ``env`` is the whole environment (nothing of
    the host's, nor of the worker's, is added); ``dirs`` names guest paths of the
    worker's ``[wasi] dirs`` to grant (default: all of them). Stderr is captured, not
    logged. Raises :class:`AtollError` outside a request or for a bad argument, and
    what the run raises (see :func:`run_program`).
    """
    invocation = CURRENT.get()
    what = f"env.{module.binding}.run()"
    if invocation is None:
        raise AtollError(
            f"{what}: a program can only run while a request is being served",
            hint="call it inside fetch(), not at import time",
        )
    args = [module.binding] if argv is None else [str(a) for a in argv]
    variables = dict(env or {})
    for name, value in variables.items():
        if not isinstance(name, str) or not isinstance(value, str) or "=" in name or not name:
            raise AtollError(
                f"{what}: environment entry {name!r} is not NAME=string",
                hint="pass env as a dict of str to str, names without '='",
            )
    if entrypoint not in module.functions:
        raise AtollError(
            f"{what}: {module.source} exports no function {entrypoint!r}",
            hint="a WASI command exports _start; name another export with entrypoint=",
        )
    limit = invocation.limits.response_mb * MIB
    context = WasiContext(
        args=args,
        env=variables,
        stdin=stdin.encode() if isinstance(stdin, str) else bytes(stdin),
        stdout_limit=limit,
        dirs=grants_for(invocation.wasi_dirs, dirs, what),
        stderr_capture=bytearray(),
    )
    code = run_program(module, invocation, context, entrypoint=entrypoint)
    stderr = context.stderr_capture
    return ProgramResult(context.stdout_bytes(), bytes(stderr or b""), code)
