"""my-worker: a Python worker (no wasm), the shape of every atoll worker.

``fetch`` runs once per request. ``env`` holds what atoll.toml binds: here
the var ``GREETING``; add ``[wasm_modules]`` to call WebAssembly from here.
"""

from __future__ import annotations

import json
from typing import Any

from atoll import ExecutionContext, Request, Response


async def fetch(request: Request, env: Any, ctx: ExecutionContext) -> Response:
    if request.path == "/json":
        data = {
            "method": request.method,
            "path": request.path,
            "query": dict(request.query.items()),
        }
        return Response(json.dumps(data), headers={"content-type": "application/json"})
    body = await request.bytes()
    ctx.log(f"{request.method} {request.path} ({len(body)} bytes)")
    name = request.query.get("name") or "world"
    lines = [
        f"{env.GREETING}, {name}!",
        f"method: {request.method}",
        f"path:   {request.path}",
        f"body:   {len(body)} bytes",
    ]
    return Response("\n".join(lines) + "\n")
