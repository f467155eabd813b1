"""The manifest loader: valid manifests load, and every mistake has a golden message.

Spin-style golden files live in ``golden/``: ``<case>.toml`` is a manifest and
``<case>.err`` is ``str(ConfigError)`` for it, with the worker folder shown as
``<dir>``. A case with an ``.err`` but no config runs on a folder with no
manifest. Cases named ``ok_*`` have no ``.err``: they must load.

The config is written as ``atoll.toml``, except ``wrangler_*.toml`` (written as
``wrangler.toml``) and ``*.jsonc`` (``wrangler.jsonc``); ``*_beside_wrangler``
cases also get a valid ``wrangler.toml``. A first line ``# atoll-test: env=NAME``
(``//`` in JSON) loads the case with ``env=NAME``.

Every case runs in a fresh worker folder holding ``src/worker.py`` and
``pkg/heavy_compute.wasm``, with ``x.wasm`` just outside it. To (re)write the
``.err`` files after changing a message, run::

    ATOLL_REGEN_GOLDEN=1 pytest tests/manifest/test_loader.py

then read the diff: each message should tell a user what to fix.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from atoll.errors import ConfigError
from atoll.manifest import Manifest, load_manifest
from atoll.manifest.docs import schema_fields

GOLDEN = Path(__file__).parent / "golden"
SEED = Path(__file__).resolve().parents[2] / "examples" / "seed"
REGEN = os.environ.get("ATOLL_REGEN_GOLDEN") == "1"

OK_CASES = sorted(p.stem for p in [*GOLDEN.glob("ok_*.toml"), *GOLDEN.glob("ok_*.jsonc")])
CONFIGS = {p.stem: p for p in [*GOLDEN.glob("*.toml"), *GOLDEN.glob("*.jsonc")]}
ERROR_CASES = sorted({*CONFIGS, *(p.stem for p in GOLDEN.glob("*.err"))} - set(OK_CASES))
_WHERE = re.compile(
    r"^\s*<dir>/(?:atoll\.toml|wrangler\.toml|wrangler\.jsonc):(\d+): (?:key '([^']+)': )?"
)
_ENV = re.compile(r"^(?:#|//) atoll-test: env=(\S+)")


@pytest.fixture
def worker(tmp_path: Path) -> Path:
    """A worker folder with the files the golden manifests name, and one file outside it."""
    folder = tmp_path / "worker"
    (folder / "src").mkdir(parents=True)
    (folder / "pkg").mkdir()
    (folder / "src" / "worker.py").write_text("async def fetch(request, env, ctx): ...\n")
    (folder / "pkg" / "heavy_compute.wasm").write_bytes(b"\0asm\1\0\0\0")
    (tmp_path / "x.wasm").write_bytes(b"\0asm\1\0\0\0")
    return folder


def _place(case: str, worker: Path) -> str | None:
    """Write the case's config into ``worker`` under its file name; the env it asks for."""
    source = CONFIGS[case]
    if source.suffix == ".jsonc":
        target = "wrangler.jsonc"
    elif case.startswith(("wrangler_", "ok_wrangler_")):
        target = "wrangler.toml"
    else:
        target = "atoll.toml"
    shutil.copy(source, worker / target)
    if case.endswith("_beside_wrangler"):
        shutil.copy(GOLDEN / "ok_minimal.toml", worker / "wrangler.toml")
    first = source.read_text(encoding="utf-8").splitlines()[0]
    env = _ENV.match(first)
    return env.group(1) if env else None


def _load_case(case: str, worker: Path, *, check_files: bool = True) -> Manifest:
    env = _place(case, worker)
    return load_manifest(worker, check_files=check_files, env=env)


def _message(exc: ConfigError, worker: Path) -> str:
    return str(exc).replace(str(worker), "<dir>") + "\n"


# -- errors: golden messages ----------------------------------------------------


@pytest.mark.parametrize("case", ERROR_CASES)
def test_error_message(case: str, worker: Path) -> None:
    env = _place(case, worker) if case in CONFIGS else None
    with pytest.raises(ConfigError) as info:
        load_manifest(worker, env=env)
    got = _message(info.value, worker)
    golden = GOLDEN / f"{case}.err"
    if REGEN:
        golden.write_text(got, encoding="utf-8")
        pytest.skip(f"wrote {golden.name}")
    if not golden.exists():
        pytest.fail(f"no {golden.name}; write it with ATOLL_REGEN_GOLDEN=1", pytrace=False)
    assert got == golden.read_text(encoding="utf-8")


@pytest.mark.parametrize("case", [c for c in ERROR_CASES if c in CONFIGS])
def test_error_line_points_at_the_key(case: str) -> None:
    """Each line in a golden message is the line of the key it names (or of its table)."""
    if not (GOLDEN / f"{case}.err").exists():
        pytest.skip("no golden message yet")
    lines = CONFIGS[case].read_text(encoding="utf-8").splitlines()
    for message in (GOLDEN / f"{case}.err").read_text(encoding="utf-8").splitlines():
        where = _WHERE.match(message)
        if where is None or where.group(2) is None:
            continue  # no line (key not in the file), or a syntax error: in the golden text
        lineno, key = int(where.group(1)), where.group(2)
        line = lines[lineno - 1]
        names = [part for part in re.split(r"[.\[\]]", key) if part and not part.isdigit()]
        assert any(name in line for name in names), f"line {lineno} ({line!r}) does not show {key}"


def test_every_error_case_has_a_line_where_the_key_is_in_the_file() -> None:
    """Only errors about a key that is absent (or a missing file) may lack a line number."""
    lineless = set()
    for case in ERROR_CASES:
        golden = GOLDEN / f"{case}.err"
        if not golden.exists():
            continue
        for message in golden.read_text(encoding="utf-8").splitlines():
            if re.match(r"\s*<dir>/[\w.]+: (?!\d+ problems)", message):
                lineless.add(case)
    assert lineless == {"missing_name", "missing_main", "no_manifest", "unknown_top_level_key"}


# -- valid manifests --------------------------------------------------------------


@pytest.mark.parametrize("case", OK_CASES)
def test_ok_case_loads(case: str, worker: Path) -> None:
    manifest = _load_case(case, worker)
    assert manifest.root == worker.resolve()
    assert manifest.path == worker / "atoll.toml"


def test_minimal_gets_the_defaults(worker: Path) -> None:
    manifest = _load_case("ok_minimal", worker)
    assert manifest.name == "seed"
    assert manifest.main == "src/worker.py"
    assert manifest.resolve(manifest.main) == (worker / "src" / "worker.py").resolve()
    assert manifest.compatibility_date is None
    assert manifest.routes == ()
    assert manifest.binding_names == ()
    assert (manifest.limits.cpu_ms, manifest.limits.memory_mb) == (30_000, 128)
    assert manifest.limits.request_body_mb == 100
    assert manifest.build.command is None


def test_full_sets_every_key(worker: Path) -> None:
    """``ok_full.toml`` sets every key of the schema to a value other than its default."""
    full = _load_case("ok_full", worker)
    minimal = _load_case("ok_minimal", worker)
    for key, _, _ in schema_fields():
        if key in {"name", "main"} or "[]" in key:
            continue
        got: Any = full
        default: Any = minimal
        for part in key.split("."):
            got, default = getattr(got, part), getattr(default, part, None)  # [assets]: None
        assert got != default, f"ok_full.toml does not set '{key}'"
    assert [(kv.binding, kv.id) for kv in full.kv_namespaces] == [
        ("CACHE", "cache"),
        ("SESSIONS", "sessions:v1"),
    ]
    assert full.binding_names == ("RUST_MODULE", "CACHE", "SESSIONS", "AUTH", "GREETING", "ASSETS")
    assert full.route_patterns == ("example.com/*", "*.example.com/api/*")
    assert full.build.watch_dir == ("src", "pkg")


def test_seed_example_loads() -> None:
    manifest = load_manifest(SEED)
    assert manifest.name == "seed"
    assert manifest.limits.cpu_ms == 50  # stated in the example's atoll.toml
    assert manifest.wasm_modules == {"RUST_MODULE": "pkg/heavy_compute.wasm"}
    assert manifest.resolve(manifest.wasm_modules["RUST_MODULE"]).is_file()


def test_manifest_file_path_is_accepted(worker: Path) -> None:
    shutil.copy(GOLDEN / "ok_minimal.toml", worker / "atoll.toml")
    assert load_manifest(worker / "atoll.toml").name == "seed"


def test_vars_are_json_able(worker: Path) -> None:
    manifest = _load_case("ok_vars_nested", worker)
    assert json.loads(json.dumps(manifest.vars)) == manifest.vars
    assert manifest.vars["GREETING"] == "hello"
    assert manifest.vars["COUNT"] == 3
    assert manifest.vars["RATIO"] == 0.5
    assert manifest.vars["ENABLED"] is True
    assert manifest.vars["RELEASED"] == "2026-11-01"
    assert manifest.vars["AT"] == "09:30:00"
    assert manifest.vars["DB"] == {
        "host": "localhost",
        "ports": [5432, 5433],
        "since": "1979-05-27",
        "pool": {"size": 4},
    }


def test_vars_datetimes_are_iso_8601(worker: Path) -> None:
    manifest = _load_case("ok_vars_nested", worker)
    assert manifest.vars["STARTED"] == "2026-11-01T09:30:00+00:00"


# -- check_files ----------------------------------------------------------------


@pytest.mark.parametrize("case", ["missing_main_file", "missing_wasm_file"])
def test_check_files_false_skips_missing_files(case: str, worker: Path) -> None:
    manifest = _load_case(case, worker, check_files=False)
    assert manifest.name == "seed"


def test_check_files_false_still_refuses_a_path_outside(worker: Path) -> None:
    with pytest.raises(ConfigError, match="outside the worker folder"):
        _load_case("path_escapes_folder", worker, check_files=False)


def test_error_carries_path_key_and_line(worker: Path) -> None:
    with pytest.raises(ConfigError) as info:
        _load_case("unknown_limits_key", worker)
    assert (info.value.path, info.value.key, info.value.line) == (
        str(worker / "atoll.toml"),
        "limits.cpu",
        5,
    )
