"""What ``env`` holds: wasm modules, KV namespaces, vars (and, with deploys, secrets).

Importing this package registers the host functions bindings provide to wasm
guests (``atoll:kv``, ``atoll:http``), so they are in every linker built afterwards.
"""

from atoll.bindings.env import Env
from atoll.bindings.kv import host as _kv_host  # noqa: F401  (registers atoll:kv)
from atoll.bindings.outbound import host as _http_host  # noqa: F401  (registers atoll:http)
from atoll.bindings.wasm import WasmModuleBinding

__all__ = ["Env", "WasmModuleBinding"]
