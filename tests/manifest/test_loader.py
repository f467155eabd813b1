"""The manifest loader: valid manifests load, and every mistake has a golden message.

Spin-style golden files live in ``golden/``: ``<case>.toml`` is a manifest and
``<case>.err`` is ``str(ConfigError)`` for it, with the worker folder shown as
``<dir>``. A case with an ``.err`` but no ``.toml`` runs on a folder with no
manifest. Cases named ``ok_*`` have no ``.err``: they must load.

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

OK_CASES = sorted(p.stem for p in GOLDEN.glob("ok_*.toml"))
ERROR_CASES = sorted(
    {p.stem for p in [*GOLDEN.glob("*.toml"), *GOLDEN.glob("*.err")]} - set(OK_CASES)
)
_WHERE = re.compile(r"^<dir>/atoll\.toml:(\d+): (?:key '([^']+)': )?")


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


def _load_case(case: str, worker: Path, *, check_files: bool = True) -> Manifest:
    shutil.copy(GOLDEN / f"{case}.toml", worker / "atoll.toml")
    return load_manifest(worker, check_files=check_files)


def _message(exc: ConfigError, worker: Path) -> str:
    return str(exc).replace(str(worker), "<dir>") + "\n"


# -- errors: golden messages ----------------------------------------------------


@pytest.mark.parametrize("case", ERROR_CASES)
def test_error_message(case: str, worker: Path) -> None:
    source = GOLDEN / f"{case}.toml"
    if source.exists():
        shutil.copy(source, worker / "atoll.toml")
    with pytest.raises(ConfigError) as info:
        load_manifest(worker)
    got = _message(info.value, worker)
    golden = GOLDEN / f"{case}.err"
    if REGEN:
        golden.write_text(got, encoding="utf-8")
        pytest.skip(f"wrote {golden.name}")
    if not golden.exists():
        pytest.fail(f"no {golden.name}; write it with ATOLL_REGEN_GOLDEN=1", pytrace=False)
    assert got == golden.read_text(encoding="utf-8")


@pytest.mark.parametrize("case", [c for c in ERROR_CASES if (GOLDEN / f"{c}.toml").exists()])
def test_error_line_points_at_the_key(case: str) -> None:
    """The line in a golden message is the line of the key it names (or of its table)."""
    if not (GOLDEN / f"{case}.err").exists():
        pytest.skip("no golden message yet")
    message = (GOLDEN / f"{case}.err").read_text(encoding="utf-8")
    where = _WHERE.match(message)
    if where is None or where.group(2) is None:
        return  # no line (key not in the file), or a syntax error: checked in the golden text
    lineno, key = int(where.group(1)), where.group(2)
    line = (GOLDEN / f"{case}.toml").read_text(encoding="utf-8").splitlines()[lineno - 1]
    names = [part for part in re.split(r"[.\[\]]", key) if part and not part.isdigit()]
    assert any(name in line for name in names), f"line {lineno} ({line!r}) does not show {key}"


def test_every_error_case_has_a_line_where_the_key_is_in_the_file() -> None:
    """Only errors about a key that is absent (or a missing file) may lack a line number."""
    lineless = {
        c
        for c in ERROR_CASES
        if (GOLDEN / f"{c}.err").exists()
        and not re.match(r"<dir>/atoll\.toml:\d+: ", (GOLDEN / f"{c}.err").read_text())
    }
    assert lineless == {"missing_name", "missing_main", "no_manifest"}


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
    assert (manifest.limits.cpu_ms, manifest.limits.memory_mb) == (50, 128)
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
    assert full.binding_names == ("RUST_MODULE", "CACHE", "SESSIONS", "GREETING", "ASSETS")
    assert full.routes == ("example.com/*", "*.example.com/api/*")
    assert full.build.watch_dir == ("src", "pkg")


def test_seed_example_loads() -> None:
    manifest = load_manifest(SEED)
    assert manifest.name == "seed"
    assert manifest.limits.cpu_ms == 50
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
