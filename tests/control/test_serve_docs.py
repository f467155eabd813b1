"""docs/serve.md documents every admin endpoint, `atoll serve` option and metric series."""

from __future__ import annotations

import re
from pathlib import Path

import click

from atoll.cli.serve import serve
from atoll.control.admin import AdminApp
from atoll.control.metrics import Metrics, merge, render

DOC = Path(__file__).resolve().parents[2] / "docs" / "serve.md"


class _NoControl:
    state = None
    deployer = None


def documented_endpoints() -> set[tuple[str, str]]:
    rows = re.findall(r"^\| (GET|POST|PUT|DELETE) \| `([^`]+)` \|", DOC.read_text(), re.M)
    return {(method, path) for method, path in rows}


def test_every_admin_endpoint_is_documented() -> None:
    app = AdminApp(_NoControl(), "token")  # type: ignore[arg-type]
    examples = {"name": "NAME", "v": "ID", "key": "KEY"}
    documented = documented_endpoints()
    for method, pattern, _ in app.routes:
        path = re.sub(
            r"\(\?P<(\w+)>[^)]*\)(\{[^}]*\})?", lambda m: examples[m.group(1)], pattern.pattern
        )
        assert (method, path) in documented, f"{method} {path} is not in docs/serve.md"
    assert len(documented) == len(app.routes)


def test_every_serve_option_is_documented() -> None:
    text = DOC.read_text()
    for param in serve.params:
        if isinstance(param, click.Option):
            assert param.opts[0] in text, f"{param.opts[0]} is not in docs/serve.md"


def test_every_metric_series_is_documented() -> None:
    metrics = Metrics()
    metrics.observe("w", 200, "ok", 0.1, 0.01)
    names = set(
        re.findall(
            r"^# TYPE (\w+)", render(merge([metrics.snapshot()]), versions={}, processes=1), re.M
        )
    )
    text = DOC.read_text()
    for name in names:
        assert f"`{name}`" in text, f"{name} is not in docs/serve.md"
