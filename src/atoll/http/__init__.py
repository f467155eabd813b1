"""The HTTP layer: the ASGI app (:mod:`atoll.http.app`), the connection protocol and the
multi-loop server (:mod:`atoll.http.server`) that serve it with uvicorn's parts.

uvicorn's package ``__init__`` imports its command line (click commands, the reload
supervisors, ``multiprocessing``, watchfiles) to export ``uvicorn.run`` and
``uvicorn.main``; atoll serves with ``uvicorn.Config``, ``uvicorn.Server`` and its
protocol and lifespan modules only. So, when this package is imported before uvicorn,
:func:`_uvicorn_without_cli` imports those first and defers the rest of the package's
initialisation to the first use of any other attribute of ``uvicorn`` (``uvicorn.run``
then works as always): a cold start of ``atoll dev`` does not import uvicorn's CLI.
"""

from __future__ import annotations

import importlib.util
import sys


def _uvicorn_without_cli() -> None:
    """Put the ``uvicorn`` package in ``sys.modules`` with only ``Config`` and ``Server``
    set, its ``__init__`` run on first access to another attribute (PEP 562
    ``__getattr__``). Nothing happens if uvicorn is imported already (or missing: the
    import that needs it then fails as usual). Runs once, at this package's import."""
    if "uvicorn" in sys.modules:
        return
    spec = importlib.util.find_spec("uvicorn")
    if spec is None or spec.loader is None:
        return
    loader = spec.loader
    package = importlib.util.module_from_spec(spec)
    sys.modules["uvicorn"] = package
    try:
        from uvicorn.config import Config
        from uvicorn.server import Server
    except BaseException:
        del sys.modules["uvicorn"]
        raise
    package.Config = Config  # type: ignore[attr-defined]
    package.Server = Server  # type: ignore[attr-defined]

    def initialise(name: str) -> object:
        # The package's own __init__, in its own namespace, once; then the attribute as usual.
        del package.__dict__["__getattr__"]
        loader.exec_module(package)
        return getattr(package, name)

    package.__dict__["__getattr__"] = initialise


_uvicorn_without_cli()
