"""``atoll kv``: put/get/delete/list and bulk put against a worker folder's local state."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from atoll.bindings.kv import KVNamespace, open_backend
from atoll.cli.kv import kv

MANIFEST = """\
name = "kv-worker"
main = "src/worker.py"

[[kv_namespaces]]
binding = "CACHE"
id = "cache-ns"

[[kv_namespaces]]
binding = "OTHER"
id = "other-ns"
"""


@pytest.fixture
def worker(tmp_path: Path) -> Path:
    root = tmp_path / "worker"
    (root / "src").mkdir(parents=True)
    (root / "src" / "worker.py").write_text("async def fetch(request, env, ctx): ...\n")
    (root / "atoll.toml").write_text(MANIFEST)
    return root


def run(*args: str) -> Result:
    return CliRunner().invoke(kv, list(args), catch_exceptions=False)


def read(root: Path, namespace_id: str, key: str) -> object:
    async def main() -> object:
        async with open_backend("sqlite", state_dir=root / ".atoll") as backend:
            return await KVNamespace(backend, namespace_id).get_with_metadata(key)

    return asyncio.run(main())


def test_put_get_delete_list(worker: Path) -> None:
    d = str(worker)
    result = run("put", "greeting", "héllo", d, "--binding", "CACHE", "--metadata", '{"v": 1}')
    assert result.exit_code == 0, result.output
    assert (worker / ".atoll" / "kv.sqlite3").exists()
    assert read(worker, "cache-ns", "greeting") == ("héllo", {"v": 1})
    assert read(worker, "other-ns", "greeting") == (None, None)

    result = run("get", "greeting", d, "--binding", "CACHE")
    assert result.exit_code == 0
    assert result.stdout_bytes == "héllo".encode()

    run("put", "b", "2", d, "-b", "CACHE", "--ttl", "3600")
    result = run("list", d, "--binding", "CACHE")
    keys = json.loads(result.stdout)
    assert [k["name"] for k in keys] == ["b", "greeting"]
    assert "expiration" in keys[0]
    assert keys[1] == {"name": "greeting", "metadata": {"v": 1}}
    assert json.loads(run("list", d, "-b", "CACHE", "--prefix", "g").stdout) == [keys[1]]

    assert run("delete", "greeting", d, "--binding", "CACHE").exit_code == 0
    result = run("get", "greeting", d, "--binding", "CACHE")
    assert result.exit_code == 1
    assert "'greeting' not found" in result.stderr


def test_put_from_a_file_and_the_current_folder(
    worker: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blob = bytes(range(256))
    (worker / "blob.bin").write_bytes(blob)
    monkeypatch.chdir(worker)
    assert run("put", "blob", "--path", "blob.bin", "--binding", "CACHE").exit_code == 0
    assert run("get", "blob", "-b", "CACHE").stdout_bytes == blob
    assert run("get", "blob", "--namespace-id", "cache-ns").stdout_bytes == blob


def test_errors_name_the_key_and_limit_and_exit_1(worker: Path) -> None:
    d = str(worker)
    result = run("put", "k" * 513, "v", d, "--binding", "CACHE")
    assert result.exit_code == 1
    assert "over the limit of 512 bytes" in result.stderr
    assert "kkkkkkkk" in result.stderr
    assert "Traceback" not in result.output

    result = run("put", "k", "v", d, "--binding", "CACHE", "--ttl", "30")
    assert result.exit_code == 1
    assert "'k'" in result.stderr
    assert "minimum of 60 seconds" in result.stderr

    result = run("put", "k", "v", d, "--binding", "NOPE")
    assert result.exit_code == 1
    assert "binding = 'NOPE'" in result.stderr
    assert "CACHE, OTHER" in result.stderr

    result = run("put", "k", "v", d)
    assert result.exit_code == 1
    assert "--binding" in result.stderr

    result = run("get", "k", str(worker / "missing"), "--binding", "CACHE")
    assert result.exit_code == 1
    assert "no config file found" in result.stderr


def test_bulk_put(worker: Path) -> None:
    d = str(worker)
    entries = [
        {"key": "a", "value": "text"},
        {"key": "b", "value": "AAEC/w==", "base64": True, "metadata": {"bin": True}},
        {"key": "c", "value": '{"x":1}', "expiration_ttl": 600},
    ]
    (worker / "bulk.json").write_text(json.dumps(entries))
    result = run("bulk", "put", str(worker / "bulk.json"), d, "--binding", "CACHE")
    assert result.exit_code == 0, result.output
    assert "wrote 3 keys" in result.stderr
    assert read(worker, "cache-ns", "a") == ("text", None)
    assert run("get", "b", d, "-b", "CACHE").stdout_bytes == b"\x00\x01\x02\xff"
    keys = json.loads(run("list", d, "-b", "CACHE").stdout)
    assert [k["name"] for k in keys] == ["a", "b", "c"]
    assert keys[1]["metadata"] == {"bin": True}
    assert "expiration" in keys[2]

    (worker / "keys.json").write_text(json.dumps(["a", {"key": "b"}]))
    assert run("bulk", "delete", str(worker / "keys.json"), d, "-b", "CACHE").exit_code == 0
    assert [k["name"] for k in json.loads(run("list", d, "-b", "CACHE").stdout)] == ["c"]


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ({"key": "a"}, "expected a JSON array"),
        ([{"key": "a"}], "entry 0: 'value' must be a string"),
        ([{"key": "a", "value": "v", "ttl": 60}], "entry 0: unknown field 'ttl'"),
        (
            [{"key": "a", "value": "%%", "base64": True}],
            "entry 0 (key 'a'): 'value' is not valid base64",
        ),
        (
            [{"key": "ok", "value": "v"}, {"key": "x" * 600, "value": "v"}],
            "entry 1: KV key 'xxx",
        ),
        (
            [{"key": "ok", "value": "v"}, {"key": "m", "value": "v", "metadata": "x" * 2000}],
            "entry 1: KV key 'm': the metadata is 2002 bytes of JSON, over the limit of 1024",
        ),
        (
            [{"key": "e", "value": "v", "expiration_ttl": 1}],
            "entry 0: KV key 'e': expiration_ttl 1",
        ),
    ],
)
def test_bulk_put_checks_everything_before_writing(
    worker: Path, entries: object, message: str
) -> None:
    (worker / "bulk.json").write_text(json.dumps(entries))
    result = run("bulk", "put", str(worker / "bulk.json"), str(worker), "--binding", "CACHE")
    assert result.exit_code == 1
    assert message in result.stderr
    assert read(worker, "cache-ns", "ok") == (None, None)  # nothing written


def test_bulk_file_errors(worker: Path) -> None:
    (worker / "bad.json").write_text("{not json")
    result = run("bulk", "put", str(worker / "bad.json"), str(worker), "-b", "CACHE")
    assert result.exit_code == 1
    assert "is not valid JSON" in result.stderr
    result = run("bulk", "put", str(worker / "absent.json"), str(worker), "-b", "CACHE")
    assert result.exit_code == 1
    assert "cannot read" in result.stderr
    (worker / "keys.json").write_text(json.dumps(["ok", ""]))
    result = run("bulk", "delete", str(worker / "keys.json"), str(worker), "-b", "CACHE")
    assert result.exit_code == 1
    assert "entry 1: KV key '' is not allowed" in result.stderr


# -- wrangler's spellings ------------------------------------------------------------


def test_wrangler_key_commands(worker: Path) -> None:
    d = str(worker)
    put = run("key", "put", "k", "v", d, "--binding", "CACHE", "--preview", "--local")
    assert put.exit_code == 0, put.output
    assert run("key", "get", "k", d, "--binding", "CACHE").stdout_bytes == b"v"
    listed = run("key", "list", d, "--namespace-id", "cache-ns")
    assert json.loads(listed.stdout) == [{"name": "k"}]
    assert run("key", "delete", "k", d, "--binding", "CACHE").exit_code == 0
    assert read(worker, "cache-ns", "k") == (None, None)


def test_persist_to_is_the_store_of_dev_persist_to(worker: Path, tmp_path: Path) -> None:
    d, state = str(worker), tmp_path / "state"
    assert run("key", "put", "k", "v", d, "-b", "CACHE", "--persist-to", str(state)).exit_code == 0
    assert (state / "kv.sqlite3").exists()
    assert not (worker / ".atoll").exists()
    got = run("get", "k", d, "-b", "CACHE", "--persist-to", str(state))
    assert got.stdout_bytes == b"v"


def test_wrangler_namespace_commands(worker: Path) -> None:
    d = str(worker)
    listed = run("namespace", "list", d)
    assert json.loads(listed.stdout) == [
        {"id": "cache-ns", "title": "CACHE"},
        {"id": "other-ns", "title": "OTHER"},
    ]
    created = run("namespace", "create", "my-sessions")
    assert created.exit_code == 0
    assert '[[kv_namespaces]]\nbinding = "MY_SESSIONS"\nid = "my-sessions"' in created.stdout
    for i in range(3):
        run("put", f"k{i}", "v", d, "--binding", "CACHE")
    run("put", "kept", "v", d, "--binding", "OTHER")
    gone = run("namespace", "delete", d, "--binding", "CACHE", "-y")
    assert gone.exit_code == 0, gone.output
    assert "deleted 3 keys" in gone.output
    assert json.loads(run("list", d, "-b", "CACHE").stdout) == []
    assert json.loads(run("list", d, "-b", "OTHER").stdout) == [{"name": "kept"}]
