"""``atoll.http`` imports uvicorn's serving parts without its command line, and the whole
``uvicorn`` package still works for whoever asks for more (each case in a fresh process:
the order of imports is the point)."""

from __future__ import annotations

import subprocess
import sys


def run(code: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.split()


def test_the_server_is_imported_without_uvicorns_cli() -> None:
    code = (
        "import sys, atoll.http.server, uvicorn\n"
        "print('uvicorn.main' in sys.modules, 'uvicorn.supervisors' in sys.modules)\n"
        "print(uvicorn.Server is sys.modules['uvicorn.server'].Server)\n"
        "print(uvicorn.Config is sys.modules['uvicorn.config'].Config)\n"
    )
    assert run(code) == ["False", "False", "True", "True"]


def test_any_other_attribute_initialises_the_package() -> None:
    code = (
        "import sys, atoll.http.server, uvicorn\n"
        "from uvicorn.main import run\n"
        "print(uvicorn.run is run, uvicorn.__version__ == uvicorn._version.__version__)\n"
        "print(uvicorn.Server is sys.modules['uvicorn.server'].Server)\n"
        "print('__getattr__' in vars(uvicorn))\n"
        "try:\n"
        "    uvicorn.no_such_thing\n"
        "except AttributeError:\n"
        "    print('AttributeError')\n"
    )
    assert run(code) == ["True", "True", "True", "False", "AttributeError"]


def test_uvicorn_imported_first_is_left_alone() -> None:
    code = (
        "import sys, uvicorn\n"
        "import atoll.http.server\n"
        "print('uvicorn.main' in sys.modules, '__getattr__' in vars(uvicorn))\n"
    )
    assert run(code) == ["True", "False"]
