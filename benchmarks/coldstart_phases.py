"""``atoll dev`` with CPU marks: where a cold start's CPU goes, phase by phase.

Run by ``python -m benchmarks.coldstart --phases`` as a script (a file path, not
``-m``: no package of the benchmarks is imported before the marks start)::

    python benchmarks/coldstart_phases.py DIR [atoll dev options]

It imports what the ``atoll`` program imports, wraps the functions ``cli/dev.py``
calls (``load_config``, ``Runtime``, ``load_worker``, ``serve``) and the app's
per-request ``_finish``, runs ``atoll dev`` as the program does, and at the first
response writes one line to stderr: ``PHASES|name=ms|...``, each the CPU the whole
process (every thread: ``getrusage``) used in that phase. The server keeps running.

The marks cost a few function calls; the garbage collection is the program's (paused
while the command's modules import, as ``atoll.cli`` does).
"""

from __future__ import annotations

import resource
import sys


def _cpu_ms() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return (usage.ru_utime + usage.ru_stime) * 1000


_marks: list[tuple[str, float]] = [("the interpreter (to this script's first line)", _cpu_ms())]

import atoll.cli  # noqa: E402  (after the first mark, on purpose)

_marks.append(("import atoll.cli (click, atoll's API)", _cpu_ms()))

# As the program imports a command: the collector paused, then what was made frozen.
atoll.cli.LazyGroup.program = True
with atoll.cli._start_up_imports():
    import atoll.cli.dev as dev
    import atoll.http.app as app_module

_marks.append(
    ("import atoll.cli.dev (asyncio, uvloop, ctypes, uvicorn, the rest of atoll)", _cpu_ms())
)

_INSIDE = {
    "load_config": "reading atoll.toml",
    "Runtime": "Runtime()",
    "load_worker": "load_worker",
}
_spent: dict[str, float] = {}


def _timed(name: str) -> None:
    inner = getattr(dev, name)

    def timed(*args: object, **kwargs: object) -> object:
        before = _cpu_ms()
        try:
            return inner(*args, **kwargs)
        finally:
            _spent[name] = _spent.get(name, 0.0) + _cpu_ms() - before

    setattr(dev, name, timed)


for _name in _INSIDE:
    _timed(_name)

_serve = dev.serve  # type: ignore[attr-defined]


def _serve_marked(*args: object, **kwargs: object) -> None:
    now = _cpu_ms()
    inside = sum(_spent.values())
    for name, label in _INSIDE.items():
        _marks.append((label, _spent.get(name, 0.0)))
    _marks.append(
        ("the rest of the dev command (KV store, app, reloader, …)", now - _marks[2][1] - inside)
    )
    _marks.append(("serve() to the first response sent", now))
    _serve(*args, **kwargs)  # type: ignore[arg-type]


dev.serve = _serve_marked  # type: ignore[attr-defined]
_finish = app_module.AtollApp._finish
_reported: list[bool] = []


def _finish_marked(self: app_module.AtollApp, *args: object, **kwargs: object) -> None:
    _finish(self, *args, **kwargs)  # type: ignore[arg-type]
    if not _reported:
        _reported.append(True)
        now = _cpu_ms()
        serve_start = _marks[-1][1]
        phases = [(name, value) for name, value in _marks[:-1]]
        phases = [
            (name, value - (_marks[i - 1][1] if 0 < i <= 2 else 0.0))
            for i, (name, value) in enumerate(phases)
        ]
        phases.append((_marks[-1][0], now - serve_start))
        phases.append(("total, to the first response sent", now))
        line = "|".join(f"{name}={value:.3f}" for name, value in phases)
        sys.stderr.write(f"PHASES|{line}\n")
        sys.stderr.flush()


app_module.AtollApp._finish = _finish_marked  # type: ignore[method-assign]

if __name__ == "__main__":
    sys.argv = ["atoll", "dev", *sys.argv[1:]]
    atoll.cli.main()
