"""runtime/native_setup.py: the native backend's engine, modules and linker (C API, ctypes)."""

from __future__ import annotations

import pytest
import wasmtime

from atoll.runtime import native_setup
from atoll.runtime.engine import Engine
from atoll.runtime.signature import Signature
from tests.support import wat

pytestmark = pytest.mark.native_backend

MODULE = wat(
    """
    (module
      (import "atoll:log" "write" (func (param i32 i32)))
      (import "env" "table" (table 1 funcref))
      (import "env" "g" (global i64))
      (memory (export "memory") 1)
      (global (export "counter") (mut i32) (i32.const 0))
      (table (export "tab") 2 funcref)
      (func (export "mix") (param i32 i64 f32 f64) (result i64) (local.get 1))
      (func (export "vec") (param v128) (result v128) (local.get 0))
      (func (export "ref") (param externref) (result funcref) (ref.null func)))
    """
)


def test_a_module_describes_its_exports_and_imports_without_wasmtime_py(engine: Engine) -> None:
    module = native_setup.Module.compile(engine.engine, MODULE)
    assert module.exports() == [
        ("memory", "memory", None),
        ("counter", "global", None),
        ("tab", "table", None),
        ("mix", "func", Signature(("i32", "i64", "f32", "f64"), ("i64",))),
        ("vec", "func", Signature(("v128",), ("v128",))),
        ("ref", "func", Signature(("externref",), ("funcref",))),
    ]
    assert module.imports() == [
        ("atoll:log", "write", "func", Signature(("i32", "i32"), ())),
        ("env", "table", "table", None),
        ("env", "g", "global", None),
    ]
    # what is serialized deserializes into the same module
    again = native_setup.Module.deserialize(engine.engine, module.serialize())
    assert again.exports() == module.exports()


def test_a_module_that_does_not_compile_raises_wasmtimes_error(engine: Engine) -> None:
    with pytest.raises(wasmtime.WasmtimeError, match="failed to parse"):
        native_setup.Module.compile(engine.engine, b"\0asm\x01\0\0\0\xff")
    with pytest.raises(wasmtime.WasmtimeError):
        native_setup.Module.deserialize(engine.engine, b"not a serialized module")


def test_the_linker_pre_links_and_reports_what_is_missing(engine: Engine) -> None:
    linker = native_setup.Linker(engine.engine)
    empty = native_setup.Module.compile(engine.engine, wat("(module)"))
    assert linker.instantiate_pre(empty).ptr().value
    with pytest.raises(wasmtime.WasmtimeError, match="unknown import"):
        linker.instantiate_pre(native_setup.Module.compile(engine.engine, MODULE))


def test_wasmtime_py_views_share_the_c_objects(engine: Engine) -> None:
    module = native_setup.Module.compile(
        engine.engine, wat('(module (func (export "answer") (result i32) (i32.const 42)))')
    )
    linker = native_setup.Linker(engine.engine).to_wasmtime_py()
    assert isinstance(linker, wasmtime.Linker)
    py_module = module.to_wasmtime_py()
    store = wasmtime.Store(linker.engine)
    store.set_epoch_deadline(1_000_000)
    instance = linker.instantiate_pre(py_module).instantiate(store)
    func = instance.exports(store)["answer"]
    assert isinstance(func, wasmtime.Func)
    assert func(store) == 42


def test_a_functype_is_made_from_a_signature() -> None:
    sig = Signature(("i32", "i64", "f32", "f64"), ("i32",))
    functype = native_setup.FuncType(sig)
    assert native_setup.functype_signature(functype.ptr().value or 0) == sig
