"""What ``env`` holds: wasm modules, KV namespaces, vars (and, with deploys, secrets)."""

from atoll.bindings.env import Env
from atoll.bindings.wasm import WasmModuleBinding

__all__ = ["Env", "WasmModuleBinding"]
