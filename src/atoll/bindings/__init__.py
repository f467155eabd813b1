"""What ``env`` holds: wasm modules, KV namespaces, vars (and, with deploys, secrets).

The host functions bindings provide to wasm guests (``atoll:kv``:
``kv.host.host_functions()``; ``atoll:http``: ``outbound.host.host_functions()``) are wired
into the linker by ``worker.Runtime``; importing this package registers nothing.
"""

from atoll.bindings.env import Env
from atoll.bindings.wasm import WasmModuleBinding

__all__ = ["Env", "WasmModuleBinding"]
