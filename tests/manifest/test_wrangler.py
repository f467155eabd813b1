"""Workers projects' own configs load as they are: wrangler.toml / .json / .jsonc, envs, routes, rules.

The fixtures in ``wrangler/`` are small configs written here in the shapes real
public Workers projects use (the C3 template's jsonc, a wrangler 1 project,
environments with route tables, module rules and blobs, plain JSON).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from atoll.errors import ConfigError, ConfigProblems
from atoll.manifest import load_manifest, parse_manifest
from atoll.manifest.loader import config_path
from atoll.manifest.schema import DEFAULT_RULES, Rule
from atoll.manifest.sources import SELECTION_FILE, read_source, strip_jsonc

SHAPES = Path(__file__).parent / "wrangler"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A worker folder with the files the fixtures name."""
    root = tmp_path / "project"
    (root / "src").mkdir(parents=True)
    (root / "src" / "worker.py").write_text("async def fetch(request, env, ctx): ...\n")
    (root / "src" / "payload.dat").write_bytes(b"\x00\x01")
    (root / "README.md").write_text("# readme\n")
    return root


def _place(folder: Path, shape: str, as_name: str) -> Path:
    target = folder / as_name
    shutil.copy(SHAPES / shape, target)
    return target


# -- which file ------------------------------------------------------------------------


def test_c3_jsonc_loads_with_comments_and_trailing_commas(folder: Path) -> None:
    _place(folder, "c3_default.jsonc", "wrangler.jsonc")
    manifest = load_manifest(folder)
    assert manifest.path == folder / "wrangler.jsonc"
    assert manifest.name == "hello-world"
    assert manifest.compatibility_flags == ("nodejs_compat", "global_fetch_strictly_public")
    assert manifest.vars == {"MY_VARIABLE": "production_value"}
    assert [(kv.binding, kv.id) for kv in manifest.kv_namespaces] == [
        ("CACHE", "8f1e3b2a9c4d4e5f8a7b6c5d4e3f2a1b")
    ]
    notes = "\n".join(manifest.notices)
    assert "wrangler.jsonc:11: key 'observability' ignored" in notes
    assert "kv_namespaces[0].remote' ignored" in notes
    assert "$schema" not in notes  # an editor hint: no notice


def test_plain_json_loads(folder: Path) -> None:
    _place(folder, "plain.json", "wrangler.json")
    manifest = load_manifest(folder)
    assert manifest.route_patterns == ("plain.example.com/*",)
    assert manifest.vars["B"] == {"nested": [1, 2, 3]}


def test_wrangler_1_project_loads_with_notices(folder: Path) -> None:
    _place(folder, "v1_legacy.toml", "wrangler.toml")
    manifest = load_manifest(folder)
    assert manifest.route_patterns == ("legacy.example.com/*",)
    assert manifest.kv_namespaces[0].preview_id == "5f4e3d2c1b0a"
    ignored = {line.split("key '")[1].split("'")[0] for line in manifest.notices}
    assert ignored == {
        "type",
        "account_id",
        "workers_dev",
        "zone_id",
        "kv_namespaces[0].preview_id",
    }
    assert all(line.startswith(f"{folder / 'wrangler.toml'}:") for line in manifest.notices)


def test_atoll_toml_wins_and_the_wrangler_file_is_named(folder: Path) -> None:
    _place(folder, "v1_legacy.toml", "wrangler.toml")
    (folder / "atoll.toml").write_text('name = "mine"\nmain = "src/worker.py"\n')
    manifest = load_manifest(folder)
    assert manifest.name == "mine"
    assert any("wrangler.toml beside it is not" in line for line in manifest.notices)


def test_wrangler_files_in_wrangler_order(folder: Path) -> None:
    _place(folder, "v1_legacy.toml", "wrangler.toml")
    _place(folder, "c3_default.jsonc", "wrangler.jsonc")
    assert config_path(folder) == folder / "wrangler.jsonc"
    _place(folder, "plain.json", "wrangler.json")
    assert config_path(folder) == folder / "wrangler.json"


def test_config_option_reads_any_file(folder: Path) -> None:
    config = _place(folder, "plain.json", "atoll.staging.jsonc")
    (folder / "atoll.toml").write_text('name = "mine"\nmain = "src/worker.py"\n')
    manifest = load_manifest(folder, config=config)
    assert manifest.name == "plain-json"
    assert manifest.root == folder.resolve()


def test_missing_config_file_given(folder: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_manifest(folder, config=folder / "nope.toml")


def test_folder_without_config_names_the_one_above(folder: Path) -> None:
    _place(folder, "v1_legacy.toml", "wrangler.toml")
    with pytest.raises(ConfigError) as info:
        load_manifest(folder / "src")
    assert "no config file found" in info.value.message
    assert f"{folder / 'wrangler.toml'} is in the folder above" in (info.value.hint or "")


def test_broken_atoll_toml_mentions_the_wrangler_file(folder: Path) -> None:
    _place(folder, "v1_legacy.toml", "wrangler.toml")
    (folder / "atoll.toml").write_text('name = "mine"\nmain = "src/worker.py\n')
    with pytest.raises(ConfigError) as info:
        load_manifest(folder)
    assert "invalid TOML" in info.value.message
    assert "wrangler.toml beside it is not read while atoll.toml exists" in (info.value.hint or "")


# -- environments --------------------------------------------------------------------


def test_top_level_without_env(folder: Path) -> None:
    _place(folder, "environments.toml", "wrangler.toml")
    manifest = load_manifest(folder)
    assert (manifest.name, manifest.env_name) == ("api", None)
    assert manifest.vars == {"LOG_LEVEL": "debug"}
    assert manifest.limits.cpu_ms == 100
    assert manifest.triggers.crons == ("0 * * * *",)  # honoured: docs/cron.md


def test_env_inherits_keys_but_not_bindings_and_is_named_name_env(folder: Path) -> None:
    _place(folder, "environments.toml", "wrangler.toml")
    staging = load_manifest(folder, env="staging")
    assert (staging.name, staging.env_name) == ("api-staging", "staging")
    assert staging.vars == {"LOG_LEVEL": "info"}
    assert [kv.id for kv in staging.kv_namespaces] == ["cache-staging"]
    assert staging.limits.cpu_ms == 100  # inherited
    assert staging.compatibility_date == "2024-09-23"
    assert staging.routes[0].zone_name == "example.com"
    assert staging.route_patterns == ("staging.example.com/api/*",)


def test_env_with_its_own_name_route_table_and_limits(folder: Path) -> None:
    _place(folder, "environments.toml", "wrangler.toml")
    prod = load_manifest(folder, env="production")
    assert prod.name == "api-prod"
    assert prod.route_patterns == ("api.example.com/*",)  # a custom domain: the whole host
    assert prod.routes[0].custom_domain is True
    assert prod.vars == {"LOG_LEVEL": "warn"}
    assert [kv.id for kv in prod.kv_namespaces] == ["cache-prod"]
    assert prod.limits.cpu_ms == 5000


def test_bindings_only_at_the_top_are_not_inherited_and_a_notice_says_so(folder: Path) -> None:
    text = 'name = "w"\nmain = "src/worker.py"\n[vars]\nA = "1"\n[env.bare]\n'
    manifest = parse_manifest(text, path=folder / "wrangler.toml", env="bare")
    assert manifest.vars == {}
    assert manifest.name == "w-bare"
    assert any(
        "'vars' ignored: set at the top level but not in [env.bare]" in n for n in manifest.notices
    )


def test_unknown_env_lists_the_defined_ones(folder: Path) -> None:
    _place(folder, "environments.toml", "wrangler.toml")
    with pytest.raises(ConfigError) as info:
        load_manifest(folder, env="prod")
    assert "no environment 'prod'" in info.value.message
    assert info.value.hint == "environments defined: production, staging; add an [env.prod] table"


def test_problems_in_env_point_at_the_env_lines(folder: Path) -> None:
    text = (
        'name = "w"\n'  # 1
        'main = "src/worker.py"\n'  # 2
        "[env.x]\n"  # 3
        "[env.x.limits]\n"  # 4
        "cpu_ms = 999999\n"  # 5
        "[[env.x.kv_namespaces]]\n"  # 6
        'binding = "1bad"\n'  # 7
        'id = "ok"\n'  # 8
    )
    with pytest.raises(ConfigProblems) as info:
        parse_manifest(text, path=folder / "wrangler.toml", env="x")
    where = [(p.key, p.line) for p in info.value.problems]
    assert where == [("env.x.limits.cpu_ms", 5), ("env.x.kv_namespaces[0].binding", 7)]


# -- routes, rules, build, dev ----------------------------------------------------------


def test_modules_shape(folder: Path) -> None:
    _place(folder, "modules.toml", "wrangler.toml")
    manifest = load_manifest(folder)
    assert manifest.route_patterns == ("modules.example.com/*", "modules.example.org/*")
    assert manifest.routes[1].zone_id == "1234567890abcdef"
    assert manifest.rules == (
        Rule("Text", ("**/*.md", "**/*.txt"), True),
        Rule("Data", ("**/*.dat",), False),
    )
    assert manifest.find_additional_modules is True
    assert manifest.base_dir == "src"
    assert manifest.text_blobs == {"README": "README.md"}
    assert manifest.data_blobs == {"PAYLOAD": "src/payload.dat"}
    assert manifest.build.watch_dir == ("src",)  # a string is a list of one
    assert (manifest.build.cwd, manifest.dev.ip, manifest.dev.port) == ("src", "0.0.0.0", 8790)
    assert any("'no_bundle' ignored" in n for n in manifest.notices)
    assert any("'dev.local_protocol' ignored" in n for n in manifest.notices)


def test_module_rules_follow_wranglers_fallthrough(folder: Path) -> None:
    _place(folder, "modules.toml", "wrangler.toml")
    rules = load_manifest(folder).module_rules
    # Text falls through to the default Text rule; Data does not, so the default Data rule goes.
    assert [r.type for r in rules] == [
        "Text",
        "Data",
        "ESModule",
        "CommonJS",
        "Text",
        "CompiledWasm",
    ]
    assert Rule("Data", ("**/*.bin",)) not in rules
    minimal = parse_manifest(
        'name = "w"\nmain = "x.py"\n', path=folder / "a.toml", check_files=False
    )
    assert minimal.module_rules == DEFAULT_RULES


def test_route_and_routes_together_is_a_problem(folder: Path) -> None:
    text = 'name = "w"\nmain = "src/worker.py"\nroute = "a.com/*"\nroutes = ["b.com/*"]\n'
    with pytest.raises(ConfigError, match="set together with 'routes'"):
        parse_manifest(text, path=folder / "wrangler.toml")


def test_route_table_errors_name_route_not_routes(folder: Path) -> None:
    text = 'name = "w"\nmain = "src/worker.py"\nroute = { zone_name = "a.com" }\n'
    with pytest.raises(ConfigError) as info:
        parse_manifest(text, path=folder / "wrangler.toml")
    assert (info.value.key, info.value.line) == ("route.pattern", 3)


def test_default_cpu_limit_is_workers_paid_plan(folder: Path) -> None:
    manifest = parse_manifest('name = "w"\nmain = "src/worker.py"\n', path=folder / "atoll.toml")
    assert manifest.limits.cpu_ms == 30_000
    five_minutes = 'name = "w"\nmain = "src/worker.py"\n[limits]\ncpu_ms = 300000\n'
    assert parse_manifest(five_minutes, path=folder / "atoll.toml").limits.cpu_ms == 300_000


# -- a deployed bundle remembers -c and --env -----------------------------------------------


def test_bundle_selection_file_is_read(folder: Path) -> None:
    _place(folder, "environments.toml", "wrangler.toml")
    (folder / SELECTION_FILE).write_text(json.dumps({"config": "wrangler.toml", "env": "staging"}))
    assert load_manifest(folder).name == "api-staging"


# -- the readers ---------------------------------------------------------------------------


def test_strip_jsonc_keeps_positions_and_strings() -> None:
    text = '{\n  "a": "x // not a comment", // one\n  /* two\n  */ "b": [1, 2,],\n}\n'
    clean = strip_jsonc(text)
    assert len(clean) == len(text)
    assert clean.count("\n") == text.count("\n")
    assert json.loads(clean) == {"a": "x // not a comment", "b": [1, 2]}


def test_toml_lines_of_headers_arrays_and_inline_tables(tmp_path: Path) -> None:
    path = tmp_path / "wrangler.toml"
    path.write_text(
        'name = "x"\n'  # 1
        "routes = [\n"  # 2
        '  { pattern = "a/*" },\n'  # 3
        '  "b/*",\n'  # 4
        "]\n"  # 5
        "[[kv_namespaces]]\n"  # 6
        'binding = "A"\n'  # 7
        "[[kv_namespaces]]\n"  # 8
        "binding = 'B'\n"  # 9
        "[env.staging.vars]\n"  # 10
        '"quoted.key" = 1\n'  # 11
    )
    source = read_source(path)
    assert source.line(("routes", 0, "pattern")) == 3
    assert source.line(("routes", 1)) == 4
    assert source.line(("kv_namespaces", 1)) == 8
    assert source.line(("kv_namespaces", 1, "binding")) == 9
    assert source.line(("env", "staging")) == 10
    assert source.line(("env", "staging", "vars", "quoted.key")) == 11
    assert source.line(("env", "staging", "vars", "missing")) == 10


def test_json_lines(tmp_path: Path) -> None:
    path = tmp_path / "wrangler.jsonc"
    path.write_text('{\n  // c\n  "env": {\n    "x": {"vars": {\n      "A": 1}}},\n}\n')
    source = read_source(path)
    assert source.line(("env", "x", "vars", "A")) == 5
    assert source.line(("env", "x")) == 4
