"""atoll's WASI preview 1: every function links where wasmtime's would, with the same types."""

from __future__ import annotations

import pytest
import wasmtime

from atoll.runtime.wasi import preview1

PROVIDED = {(fn.module, fn.name): fn for fn in preview1.host_functions()}
FUNCTIONS = sorted(name for module, name in PROVIDED if module == preview1.MODULE)


def test_every_preview1_function_is_provided() -> None:
    # The full preview-1 ABI (46 functions), so any WASI program links.
    assert len(FUNCTIONS) == 46


@pytest.mark.parametrize("name", FUNCTIONS)
def test_signature_matches_wasmtimes_own_wasi(name: str) -> None:
    fn = PROVIDED[(preview1.MODULE, name)]
    params = " ".join(str(p) for p in fn.params)
    results = " ".join(str(r) for r in fn.results)
    text = (
        f'(module (import "{preview1.MODULE}" "{name}" (func (param {params}) (result {results}))))'
    )
    engine = wasmtime.Engine()
    module = wasmtime.Module(engine, text)
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    store = wasmtime.Store(engine)
    store.set_wasi(wasmtime.WasiConfig())
    linker.instantiate(store, module)  # raises if the import's type differs from wasmtime's
