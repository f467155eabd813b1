"""kv-counter: a wasm guest counts in KV; Python reads the same keys.

GET /NAME        the guest adds one to the counter NAME and the response shows it
GET /peek/NAME   Python reads the counter without changing it
"""

from atoll import Response


async def fetch(request, env, ctx):
    path = request.path.strip("/")
    if path.startswith("peek/"):
        name = path.removeprefix("peek/")
        value = await env.COUNTS.get(name)  # what the guest wrote, read from Python
        return Response(f"{name}: {value or 0}\n")
    name = path or "hits"
    count = env.COUNTER.instantiate().exports.increment(name)
    if count < 0:  # an atoll:kv error code; the reason is in the request's log
        return Response(f"KV error {count}\n", status=500)
    return Response(f"{name}: {count}\n")
