"""my-worker: a Python entry that calls a C WebAssembly module.

The module (``c/greeter.c``, built to ``build/greeter.wasm``) is bound as
``env.GREETER``. Strings cross with the alloc/dealloc convention of atoll's
wasm ABI: a ``str`` argument is copied into the guest with its ``alloc`` and
passed as ``(ptr, len)``; ``.text(...)`` reads a ``(ptr << 32) | len``
result back as a ``str``; atoll frees the buffers with ``dealloc``.
"""

from __future__ import annotations

from typing import Any

from atoll import ExecutionContext, Request, Response


async def fetch(request: Request, env: Any, ctx: ExecutionContext) -> Response:
    name = request.query.get("name") or "world"
    greeter = env.GREETER.instantiate()  # a fresh instance: its own memory, gone after the request
    greeting: str = greeter.exports.greet.text(name)  # str in, str out
    vowels: int = greeter.exports.count_vowels(name)  # str in, number out
    return Response(f"{greeting}\nThere are {vowels} vowels in '{name}'.\n")
