"""docs/config.md is rendered from the schema, and every key in the schema is documented.

Modelled on datasette's ``tests/test_docs.py``: the page cannot drift from the
code, and a key added without a doc or an example fails here, not in review.
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from pathlib import Path
from typing import Any

import pytest

from atoll.manifest import parse_manifest
from atoll.manifest.docs import (
    DEFAULT_OUT,
    REGENERATE,
    full_example,
    key_classes,
    main,
    render,
    schema_fields,
)
from atoll.manifest.schema import WRANGLER_KEYS, KeyClass

REPO = Path(__file__).resolve().parents[2]
FIELDS = list(schema_fields())


def _is_table_field(tp: Any) -> bool:
    """``limits: Limits``, ``assets: Assets | None``…: documented by the keys of their section."""
    options = [a for a in typing.get_args(tp) if a is not type(None)] or [tp]
    return len(options) == 1 and dataclasses.is_dataclass(options[0])


def _is_array_of_tables(tp: Any) -> bool:
    args = typing.get_args(tp)
    return typing.get_origin(tp) is tuple and bool(args) and dataclasses.is_dataclass(args[0])


def test_committed_page_matches_schema() -> None:
    committed = (REPO / DEFAULT_OUT).read_text(encoding="utf-8")
    expected = render()
    if committed != expected:
        diff = "".join(
            difflib.unified_diff(
                committed.splitlines(keepends=True),
                expected.splitlines(keepends=True),
                fromfile=f"{DEFAULT_OUT.as_posix()} (committed)",
                tofile="render()",
                n=1,
            )
        )
        pytest.fail(
            f"{DEFAULT_OUT.as_posix()} is out of date with the schema; "
            f"regenerate it from the repository root with `{REGENERATE}`\n{diff}",
            pytrace=False,
        )


@pytest.mark.parametrize(("key", "fld", "tp"), FIELDS, ids=[key for key, _, _ in FIELDS])
def test_every_field_has_doc_and_example(key: str, fld: dataclasses.Field[Any], tp: Any) -> None:
    assert (fld.metadata.get("doc") or "").strip(), f"schema field '{key}' has no doc= text"
    if _is_table_field(tp):
        return  # its example is made of the examples of its keys
    assert (fld.metadata.get("example") or "").strip(), f"schema field '{key}' has no example="


@pytest.mark.parametrize(("key", "fld", "tp"), FIELDS, ids=[key for key, _, _ in FIELDS])
def test_every_key_is_on_the_page(key: str, fld: dataclasses.Field[Any], tp: Any) -> None:
    page = render()
    if fld.metadata.get("shorthand"):  # a list of strings or tables: documented as a key
        assert f"### `{key}`" in page, f"'{key}' has no section"
        return
    if _is_table_field(tp) or _is_array_of_tables(tp):
        header = f"[[{key}]]" if _is_array_of_tables(tp) else f"[{key}]"
        assert f"## `{header}`" in page, f"'{header}' has no section"
        return
    assert f"`{key}`" in page, f"'{key}' is missing from the key list"
    assert fld.metadata["doc"] in page, f"the doc of '{key}' is missing"


def test_every_wrangler_key_is_listed_with_its_class() -> None:
    page = render()
    for key, known in WRANGLER_KEYS.items():
        assert f"| `{key}` | {known.cls.value} | {known.scope.value} | {known.text}" in page
        if known.cls is KeyClass.REFUSED:
            assert known.todo, f"refused key '{key}' says nothing of what to do"


#: Keys wrangler documents today (top level and the tables atoll reads), each of which
#: must have a class in docs/config.md. Written out here so that dropping one fails.
WRANGLER_DOCUMENTED = [
    "name",
    "main",
    "compatibility_date",
    "compatibility_flags",
    "account_id",
    "workers_dev",
    "preview_urls",
    "route",
    "routes",
    "tsconfig",
    "jsx_factory",
    "jsx_fragment",
    "triggers",
    "usage_model",
    "rules",
    "build",
    "no_bundle",
    "minify",
    "keep_names",
    "node_compat",
    "first_party_worker",
    "zone_id",
    "logfwdr",
    "logpush",
    "placement",
    "limits",
    "observability",
    "upload_source_maps",
    "find_additional_modules",
    "base_dir",
    "preserve_file_names",
    "migrations",
    "assets",
    "site",
    "alias",
    "define",
    "vars",
    "durable_objects",
    "kv_namespaces",
    "send_email",
    "queues",
    "r2_buckets",
    "d1_databases",
    "vectorize",
    "hyperdrive",
    "services",
    "analytics_engine_datasets",
    "browser",
    "ai",
    "images",
    "version_metadata",
    "unsafe",
    "mtls_certificates",
    "tail_consumers",
    "dispatch_namespaces",
    "pipelines",
    "secrets_store_secrets",
    "workflows",
    "containers",
    "wasm_modules",
    "text_blobs",
    "data_blobs",
    "keep_vars",
    "send_metrics",
    "dev",
    "legacy_env",
    "type",
    "webpack_config",
    "env",
    "compliance_region",
    "python_modules",
    "limits.cpu_ms",
    "build.command",
    "build.cwd",
    "build.watch_dir",
    "dev.ip",
    "dev.port",
    "dev.local_protocol",
    "dev.upstream_protocol",
    "dev.host",
    "dev.inspector_port",
    "kv_namespaces[].binding",
    "kv_namespaces[].id",
    "kv_namespaces[].preview_id",
    "routes[].pattern",
    "routes[].zone_name",
    "routes[].zone_id",
    "routes[].custom_domain",
    "rules[].type",
    "rules[].globs",
    "rules[].fallthrough",
]


@pytest.mark.parametrize("key", WRANGLER_DOCUMENTED)
def test_every_documented_wrangler_key_has_a_class(key: str) -> None:
    listed = {k for k, _, _, _ in key_classes()}
    tables = {
        "limits", "build", "dev", "kv_namespaces", "rules", "assets", "site", "triggers", "services"
    }  # fmt: skip
    assert key in listed or key in tables, f"wrangler key '{key}' has no class in docs/config.md"


def test_full_example_loads_and_sets_every_key(tmp_path: Path) -> None:
    """The examples in the schema are valid: together they make a manifest that loads."""
    manifest = parse_manifest(full_example(), path=tmp_path / "atoll.toml", check_files=False)
    for key, _, tp in FIELDS:
        if _is_table_field(tp) or "[]" in key:
            continue
        value: Any = manifest
        for part in key.split("."):
            value = getattr(value, part)
        assert value, f"the full example leaves '{key}' unset"
    assert manifest.kv_namespaces, "the full example has no [[kv_namespaces]]"


def test_sample_error_on_the_page_is_the_loaders() -> None:
    page = render()
    assert "atoll.toml:5: key 'limits.cpu': unknown key" in page
    assert "atoll.toml:7: key 'r2_buckets': not supported by atoll" in page
    assert "did you mean 'cpu_ms'?" in page


def test_cli_prints_and_writes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    assert capsys.readouterr().out == render()
    out = tmp_path / "docs" / "config.md"
    assert main(["--write", "--out", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == render()
