"""The compiled-code cache: hits, misses, corruption, and caches of another engine config."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import ClassVar

import pytest
import wasmtime

from atoll.runtime.cache import MAGIC, ModuleCache
from atoll.runtime.engine import Engine
from tests.support import as_wasmtime_py, wat

WASM = wat('(module (func (export "answer") (result i32) (i32.const 42)))')


def answer(engine: Engine, cached: object) -> int:
    py_engine, module = as_wasmtime_py(engine.engine, cached)
    store = wasmtime.Store(py_engine)
    store.set_epoch_deadline(1000)
    instance = wasmtime.Instance(store, module, [])
    func = instance.exports(store)["answer"]
    assert isinstance(func, wasmtime.Func)
    result: int = func(store)
    return result


def test_miss_then_memory_hit_then_disk_hit(engine: Engine, tmp_path: Path) -> None:
    cache = ModuleCache(engine, tmp_path)
    first = cache.load(WASM)
    assert cache.stats.compiles == 1
    assert cache.load(WASM) is first
    assert cache.stats.memory_hits == 1
    files = list(tmp_path.glob("*.cwasm"))
    assert len(files) == 1
    assert engine.key in files[0].name

    other_process = ModuleCache(engine, tmp_path)
    module = other_process.load(WASM)
    assert other_process.stats.disk_hits == 1
    assert other_process.stats.compiles == 0
    assert answer(engine, module) == 42


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage", "empty"])
def test_corrupt_cache_file_is_recompiled_and_replaced(
    engine: Engine, tmp_path: Path, damage: str
) -> None:
    ModuleCache(engine, tmp_path).load(WASM)
    (path,) = tmp_path.glob("*.cwasm")
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        mid = len(data) // 2
        path.write_bytes(data[:mid] + bytes([data[mid] ^ 0xFF]) + data[mid + 1 :])
    elif damage == "garbage":
        path.write_bytes(b"not a module at all" * 100)
    else:
        path.write_bytes(b"")

    cache = ModuleCache(engine, tmp_path)
    module = cache.load(WASM)
    assert cache.stats.disk_rejects == 1
    assert cache.stats.compiles == 1
    assert answer(engine, module) == 42
    assert path.read_bytes() == data  # rewritten whole


def test_cache_made_by_another_engine_config_is_not_loaded(engine: Engine, tmp_path: Path) -> None:
    # A file with a valid checksum but serialized by an engine without epoch interruption:
    # wasmtime refuses it, and the cache recompiles instead of crashing.
    config = wasmtime.Config()
    config.epoch_interruption = False
    foreign = wasmtime.Module(wasmtime.Engine(config), WASM).serialize()
    import hashlib

    cache = ModuleCache(engine, tmp_path)
    path = cache.path_for(hashlib.sha256(WASM).hexdigest())
    assert path is not None
    path.write_bytes(MAGIC + hashlib.sha256(foreign).digest() + bytes(foreign))

    module = cache.load(WASM)
    assert cache.stats.disk_rejects == 1
    assert cache.stats.compiles == 1
    assert answer(engine, module) == 42


def test_engine_key_changes_with_settings(engine: Engine) -> None:
    class Other(Engine):
        SETTINGS: ClassVar[dict[str, object]] = {**Engine.SETTINGS, "max_wasm_stack": 1024 * 1024}

    other = Other()
    try:
        assert other.key != engine.key
    finally:
        other.close()


def test_memory_only_cache_writes_nothing(engine: Engine, tmp_path: Path) -> None:
    cache = ModuleCache(engine, None)
    cache.load(WASM)
    assert cache.path_for("x") is None
    assert list(tmp_path.iterdir()) == []


def test_unwritable_cache_dir_costs_a_compile_not_an_error(engine: Engine, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder should be")
    cache = ModuleCache(engine, blocker / "sub")
    assert answer(engine, cache.load(WASM)) == 42


def test_cache_folder_and_files_are_private_to_the_user(engine: Engine, tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        folder = tmp_path / "cache" / "modules"
        ModuleCache(engine, folder).load(WASM)
    finally:
        os.umask(old)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "cache").stat().st_mode) == 0o700
    (compiled,) = folder.glob("*.cwasm")
    assert stat.S_IMODE(compiled.stat().st_mode) == 0o600
